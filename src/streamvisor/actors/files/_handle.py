"""`FilesHandle`: the typed facade over the `FileActor`, what ``daemon.files`` is.

Arguments are checked here, in the caller's task (file ids, upload names, sources); the pure input
validators (``image_input``, ``validate_inputs``, ...) run here too, with the actor's rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any, Literal

from streamvisor.config import FilesSection
from streamvisor.openai import InvalidId, check_id
from streamvisor.supervisor import Registry

from .._target import RESTART_WAIT, Target, call
from . import _inputs as _file_inputs
from ._actor import (
    FileSource,
    FilesStatistics,
    _Content,
    _Delete,
    _Inline,
    _List,
    _Retrieve,
    _shown,
    _Statistics,
    _Upload,
    rules_for_section,
)
from ._errors import InvalidFileId, InvalidFileName, InvalidInputPart, UnreadableFile
from ._inputs import RESPONSES_DETAILS, Api, InputTotals
from ._rules import Purpose, check_listed_purpose, parse_purpose

__all__ = ["FilesHandle"]


def _check_file_id(file_id: object) -> str:
    try:
        return check_id(file_id, "file_id")
    except InvalidId as exc:
        raise InvalidFileId(file_id) from exc


def _as_source(source: object) -> FileSource:
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        if not isinstance(path, str):
            raise TypeError("a path must be text; pass file contents as bytes")
        if "\0" in path:
            raise UnreadableFile(path, "the path contains a NUL byte")
        return source
    raise TypeError(f"expected a path or bytes, not {type(source).__name__}")


_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def _check_filename(filename: object) -> str | None:
    if filename is None:
        return None
    if not isinstance(filename, str) or not filename.strip() or _BAD_NAME.search(filename):
        raise InvalidFileName(filename)
    return filename


class FilesHandle:
    """The typed facade over the file actor: what ``daemon.files`` is.

    Build it over a ref (``FilesHandle(ref, section)``) or, to follow the actor across restarts,
    over its registered name (``FilesHandle(registry.ref("files"), section)``, or
    ``FilesHandle.registered(registry, "files", section)``).

    Every async method raises, besides what it lists:

    * ``CallTimeout`` — no answer within ``timeout`` (None: wait as long as the actor works; its
      network calls are bounded by the client's timeouts and retry policy). The request still
      completes in the actor (an upload is then in the dedup index).
    * ``ActorExited`` — the actor stopped or crashed before answering.
    * ``NoSuchActor`` — (handles by name) no live actor holds the name, nor is restarted
      within the name's ``restart_wait``.
    """

    __slots__ = ("_target", "rules")

    def __init__(self, target: Target, section: FilesSection | None = None) -> None:
        self._target = target
        #: The rules the actor applies (from the same section), for the pure validators.
        self.rules = rules_for_section(section if section is not None else FilesSection())

    @classmethod
    def registered(
        cls, registry: Registry, name: str = "files", section: FilesSection | None = None
    ) -> FilesHandle:
        """A handle that finds the actor registered as ``name`` at every call (survives
        restarts; waits up to a second for one being restarted)."""
        return cls(registry.ref(name, restart_wait=RESTART_WAIT), section)

    def __repr__(self) -> str:
        return f"<FilesHandle {self._target!r}>"

    async def _call(self, request: object, timeout: float | None) -> Any:  # noqa: ASYNC109
        return await call(self._target, request, timeout)

    # -- uploads -------------------------------------------------------------------------------

    async def upload(
        self,
        source: FileSource,
        *,
        purpose: Purpose | str = "user_data",
        filename: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the runtime's call(timeout=)
    ) -> dict[str, Any]:
        """Upload a file (a path under the readable roots, or bytes) and return its FileObject.

        The type is sniffed from the content and sent as the part's ``Content-Type``; the name
        (``filename``, else the file's own name, else ``upload<ext>``) never decides it. Files up
        to ``upload_threshold`` bytes go through ``POST /files``, larger ones through the Uploads
        API in parallel parts. When dedupe is on, bytes already uploaded for ``purpose`` return
        the existing FileObject (as first uploaded, under its first name) without network I/O.

        Raises:
            UnknownPurpose: ``purpose`` is not an upload purpose (before any hop to the actor).
            OutsideAllowedRoots, MissingFile, PathIsADirectory, NotARegularFile, UnreadableFile:
                the path cannot be read as asked (a NUL byte in it: ``UnreadableFile``, raised
                before any hop to the actor).
            EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedGifNotAllowed, MalformedFile:
                the content breaks a rule for ``purpose``.
            FileUploadFailed: the API failed the upload (``__cause__`` is the wire error; an
                Uploads-API upload was cancelled server-side first).
            InvalidFileName: ``filename`` is empty or holds control characters or a ``/``.
            TypeError: ``source`` is neither a path nor bytes.
        """
        source, filename = _as_source(source), _check_filename(filename)
        parsed = parse_purpose(purpose, _shown(source, filename))
        result: dict[str, Any] = await self._call(_Upload(source, parsed, filename), timeout)
        return result

    async def image_input(
        self,
        source: FileSource,
        *,
        detail: str = "auto",
        via: Literal["file_id", "data_url"] = "file_id",
        filename: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """A Responses ``input_image`` part for an image file or bytes.

        ``via="file_id"`` uploads it (purpose ``vision``, deduplicated) and references the file;
        ``via="data_url"`` inlines it as ``data:<sniffed type>;base64,...``.

        Raises:
            InvalidInputPart: ``detail`` is not auto/low/high/original (before any I/O).
            ValueError: ``via`` is neither ``"file_id"`` nor ``"data_url"``.
            UnsupportedFileType: the content is not PNG, JPEG, WEBP or GIF.
            AnimatedGifNotAllowed, FileTooLarge, EmptyFile, MalformedFile, the file-access
            errors, FileUploadFailed, InvalidFileName, TypeError: as for :meth:`upload`.
        """
        source, filename = _as_source(source), _check_filename(filename)
        name = _shown(source, filename)
        if detail not in RESPONSES_DETAILS:
            raise InvalidInputPart(
                name, f"detail {detail!r} is not one of {', '.join(sorted(RESPONSES_DETAILS))}"
            )
        if via == "file_id":
            file = await self._call(_Upload(source, Purpose.VISION, filename), timeout)
            return _file_inputs.image_input(file_id=file["id"], detail=detail, name=name)
        if via == "data_url":
            part: dict[str, Any] = await self._call(
                _Inline(source, "input_image", filename, detail), timeout
            )
            return part
        raise ValueError(f"via must be 'file_id' or 'data_url', not {via!r}")

    async def file_input(
        self,
        source: FileSource,
        *,
        via: Literal["file_id", "data"] = "file_id",
        filename: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """A Responses ``input_file`` part for a document (PDF, text, JSON, Office, ...).

        ``via="file_id"`` uploads it (purpose ``user_data``, deduplicated) and references the
        file; ``via="data"`` inlines it as ``file_data`` with ``filename`` (default: the file's
        name, or ``file<ext>`` for bytes).

        Raises:
            ValueError: ``via`` is neither ``"file_id"`` nor ``"data"``.
            UnsupportedFileType: the content is not a type an ``input_file`` may carry.
            FileTooLarge, EmptyFile, the file-access errors, FileUploadFailed, InvalidFileName,
            TypeError: as for :meth:`upload`.
        """
        source, filename = _as_source(source), _check_filename(filename)
        if via == "file_id":
            request = _Upload(source, Purpose.USER_DATA, filename, kind="input_file")
            file = await self._call(request, timeout)
            return _file_inputs.file_input(file_id=file["id"])
        if via == "data":
            part: dict[str, Any] = await self._call(
                _Inline(source, "input_file", filename), timeout
            )
            return part
        raise ValueError(f"via must be 'file_id' or 'data', not {via!r}")

    # -- pure validation (no hop to the actor) -------------------------------------------------

    def validate_input(
        self, part: object, *, api: Api = "responses", path: str = "part"
    ) -> InputTotals:
        """Check one hand-built content part; see ``_file_inputs.validate_input``.

        Raises:
            AssistantsShapeNotAllowed, InvalidInputPart, InvalidDataURL, EmptyFile, FileTooLarge,
            UnsupportedFileType, AnimatedGifNotAllowed, MalformedFile: the part is not valid.
        """
        return _file_inputs.validate_input(part, api=api, rules=self.rules, path=path)

    def validate_inputs(
        self, items: str | Iterable[object], *, api: Api = "responses"
    ) -> InputTotals:
        """Check a whole ``input`` (or Chat messages); see ``_file_inputs.validate_inputs``.

        Raises:
            RequestLimitExceeded: too many images or inline image bytes in the request.
            Any error of :meth:`validate_input`, for the first bad part.
        """
        return _file_inputs.validate_inputs(items, api=api, rules=self.rules)

    # -- the Files API -------------------------------------------------------------------------

    async def list(
        self,
        *,
        purpose: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Every file (of ``purpose``, if given), following the pages to the end.

        Raises:
            TypeError: ``purpose`` is neither a str nor None (before any hop to the actor).
            UnknownPurpose: ``purpose`` is no purpose the API lists files by (a ``ValueError``).
            APIStatusError, APIConnectionError (``streamvisor.openai``): the API failed.
        """
        if purpose is not None and not isinstance(purpose, str):
            raise TypeError(f"purpose must be a str or None, not {type(purpose).__name__}")
        if purpose is not None:
            check_listed_purpose(purpose)
        files: list[dict[str, Any]] = await self._call(_List(purpose), timeout)
        return files

    async def retrieve(
        self,
        file_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The FileObject of ``file_id``.

        Raises:
            InvalidFileId: not a file id the API issues (before any hop to the actor).
            NotFoundError: no such file (it is also forgotten by the dedup index).
            APIStatusError, APIConnectionError: the API failed.
        """
        file: dict[str, Any] = await self._call(_Retrieve(_check_file_id(file_id)), timeout)
        return file

    async def content(
        self,
        file_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> bytes:
        """The bytes of ``file_id``.

        Raises:
            InvalidFileId: not a file id the API issues (before any hop to the actor).
            NotFoundError: no such file (it is also forgotten by the dedup index).
            BadRequestError: the API does not hand back files of that purpose.
            APIStatusError, APIConnectionError: the API failed.
        """
        data: bytes = await self._call(_Content(_check_file_id(file_id)), timeout)
        return data

    async def delete(
        self,
        file_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Delete ``file_id`` (evicting it from the dedup index first); returns the API's answer.

        Raises:
            InvalidFileId: not a file id the API issues (before any hop to the actor).
            NotFoundError: no such file.
            APIStatusError, APIConnectionError: the API failed.
        """
        result: dict[str, Any] = await self._call(_Delete(_check_file_id(file_id)), timeout)
        return result

    async def statistics(self, *, timeout: float | None = 5.0) -> FilesStatistics:  # noqa: ASYNC109
        """What the actor has done so far (answered at once, between other messages)."""
        stats: FilesStatistics = await self._call(_Statistics(), timeout)
        return stats
