"""The FileActor: validated, deduplicated, bounded uploads; image and file inputs; list/delete.

The Erlang original (``openai_files.erl``) guessed MIME types from file names, read any path it
was given, uploaded inside its gen_server call (one slow upload blocked every other request) and
returned Assistants-shaped image parts. Here:

* files are read only under the configured roots and checked against the API's rules in a worker
  thread (:func:`~streamvisor.actors.files._roots.load_file`); the MIME type comes from the bytes
  and is what the multipart part (or the Upload's ``mime_type``) declares;
* each request runs in a task linked to the actor, so the mailbox keeps flowing; uploads hold one
  of ``max_concurrent_uploads`` slots while they read and send;
* files up to ``upload_threshold`` go through ``POST /files``, larger ones through the Uploads API
  in parallel parts (cancelled server-side if anything fails);
* identical uploads (same bytes, same purpose) are deduplicated: one already done is answered from
  the index without network I/O, one in flight is joined (both callers get its result);
  ``delete`` evicts;
* a bad file, or a failure at the API, is returned to the caller as a typed error and the actor
  keeps serving; only a bug crashes it (and its supervisor restarts it).

:class:`FilesHandle` (in ``_files_handle.py``) is the typed facade callers use; the messages are
private to the two modules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import structlog
import trio

from streamvisor.config import FilesSection
from streamvisor.openai import NotFoundError, OpenAIClient, OpenAIError, UploadFailed
from streamvisor.supervisor import Actor, Caller, NoReply

from .._errors import ActorsLayerError
from . import _inputs as _file_inputs
from ._dedup import DedupIndex, content_digest
from ._errors import FileUploadFailed, UnsupportedFileType
from ._roots import ReadableRoots, load_file
from ._rules import FileRules, Purpose, check_content
from ._sniff import sniff

__all__ = [
    "EXPIRY_MARGIN",
    "FileActor",
    "FileSource",
    "FilesStatistics",
    "rules_for_section",
]

log = structlog.get_logger("streamvisor.actors.files")

#: What the upload calls take: a path (read under the roots) or the bytes themselves.
FileSource = str | os.PathLike[str] | bytes

_Kind = Literal["upload", "input_image", "input_file"]

#: A deduplicated file is reused only if it outlives the answer by this much (seconds): the
#: caller must still be able to use the id it gets (``batch`` files expire after 30 days).
EXPIRY_MARGIN = 300.0


def rules_for_section(section: FilesSection) -> FileRules:
    """The :class:`FileRules` a ``[files]`` section configures (API defaults for the rest)."""
    return FileRules(max_file_bytes=section.max_file_bytes, max_image_bytes=section.max_image_bytes)


def _roots_for_section(section: FilesSection) -> ReadableRoots:
    # Relative roots are taken relative to the working directory when the actor is built.
    base = Path.cwd()
    return ReadableRoots(tuple(base / Path(root).expanduser() for root in section.roots))


def _shown(source: FileSource, filename: str | None) -> str:
    if isinstance(source, bytes):
        return filename or "<bytes>"
    return os.fspath(source)


# --------------------------------------------------------------------------------------------
# Messages (private: callers use FilesHandle)


def _source_repr(source: FileSource) -> str:
    return f"<{len(source)} bytes>" if isinstance(source, bytes) else repr(source)


@attrs.frozen
class _Upload:
    source: FileSource = attrs.field(repr=_source_repr)
    purpose: Purpose
    filename: str | None
    #: "input_file": the file will be referenced by an ``input_file`` part, so its type must be
    #: one an ``input_file`` may carry (checked before any network I/O).
    kind: _Kind = "upload"


@attrs.frozen
class _Inline:
    source: FileSource = attrs.field(repr=_source_repr)
    kind: _Kind
    filename: str | None
    detail: str = "auto"


@attrs.frozen
class _List:
    purpose: str | None


@attrs.frozen
class _Retrieve:
    file_id: str


@attrs.frozen
class _Content:
    file_id: str


@attrs.frozen
class _Delete:
    file_id: str


@attrs.frozen
class _Statistics:
    pass


_Request = _Upload | _Inline | _List | _Retrieve | _Content | _Delete


@attrs.frozen
class FilesStatistics:
    """A snapshot of the file actor's work since it started."""

    #: Uploads sent to the API (``POST /files`` or the Uploads API).
    uploads: int
    #: Of those, through the Uploads API (in parts).
    multipart_uploads: int
    #: Uploads answered from the dedup index, without network I/O.
    deduplicated: int
    #: Uploads that joined an identical upload already in flight.
    coalesced: int
    #: Uploads sending right now.
    in_flight: int
    #: The most uploads ever sending at once (at most ``max_concurrent_uploads``).
    peak_in_flight: int
    #: (content, purpose) pairs in the dedup index.
    indexed: int


# --------------------------------------------------------------------------------------------
# Blocking work (run in worker threads)


@attrs.frozen
class _Prepared:
    """Bytes read (if needed) and checked for a purpose: ready to send."""

    name: str
    filename: str
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    purpose: Purpose
    mime_type: str
    digest: str


def _prepare(
    request: _Upload, roots: ReadableRoots, rules: FileRules, hash_content: bool
) -> _Prepared:
    name = _shown(request.source, request.filename)
    if isinstance(request.source, bytes):
        data = request.source
        found = check_content(data, request.purpose, rules=rules, path=name)
        filename = request.filename or f"upload{found.extension or '.bin'}"
        mime_type = found.mime_type
    else:
        loaded = load_file(request.source, request.purpose, roots=roots, rules=rules)
        data, mime_type = loaded.data, loaded.sniffed.mime_type
        filename = request.filename or loaded.filename
    if request.kind == "input_file" and mime_type not in rules.input_file_types:
        raise UnsupportedFileType(name, mime_type, "input_file", rules.input_file_types)
    return _Prepared(
        name=name,
        filename=filename,
        data=data,
        purpose=request.purpose,
        mime_type=mime_type,
        digest=content_digest(data) if hash_content else "",
    )


def _inline_part(request: _Inline, roots: ReadableRoots, rules: FileRules) -> dict[str, Any]:
    name = _shown(request.source, request.filename)
    purpose = Purpose.VISION if request.kind == "input_image" else Purpose.USER_DATA
    if isinstance(request.source, bytes):
        data, filename = request.source, request.filename
    else:
        loaded = load_file(request.source, purpose, roots=roots, rules=rules)
        data, filename = loaded.data, request.filename or loaded.filename
    if request.kind == "input_image":
        return _file_inputs.image_input(data=data, detail=request.detail, rules=rules, name=name)
    if not filename:
        filename = f"file{sniff(data).extension or '.bin'}"
    return _file_inputs.file_input(data=data, filename=filename, rules=rules)


# --------------------------------------------------------------------------------------------
# The actor


class _Flight:
    """An upload in progress that identical uploads wait for instead of sending again."""

    __slots__ = ("done", "error", "file")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.file: dict[str, Any] | None = None
        self.error: Exception | None = None


class FileActor(Actor):
    """Owns the uploads of the daemon: reading under roots, checking, dedup, the API calls.

    Construct it with the shared client and the ``[files]`` section; start it under a supervisor
    (``ChildSpec.worker("files", lambda: FileActor(client, section), name="files")``) and talk to
    it through a :class:`FilesHandle`. ``max_concurrent_uploads`` bounds the uploads reading or
    sending at once (each large upload also sends ``upload_parallelism`` parts at once);
    ``list_page_size`` is the ``limit`` of each ``GET /files`` page (None: the API's default).
    ``wall_clock`` (Unix seconds) is read only to compare with a file's ``expires_at``: a
    deduplicated file about to expire is uploaded again rather than reused.

    Raises (at construction) ``ValueError`` for a bad bound or page size.
    """

    def __init__(
        self,
        client: OpenAIClient,
        section: FilesSection | None = None,
        *,
        max_concurrent_uploads: int = 4,
        list_page_size: int | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_concurrent_uploads < 1:
            raise ValueError(f"max_concurrent_uploads must be >= 1, got {max_concurrent_uploads}")
        if list_page_size is not None and not 1 <= list_page_size <= 10_000:
            raise ValueError(f"list_page_size must be in 1..10000, got {list_page_size}")
        self.section = section if section is not None else FilesSection()
        self.client = client
        self.rules = rules_for_section(self.section)
        self.roots = _roots_for_section(self.section)
        self.list_page_size = list_page_size
        self.max_concurrent_uploads = max_concurrent_uploads
        self._slots = trio.CapacityLimiter(max_concurrent_uploads)
        self._wall_clock = wall_clock
        # Dedup state: (sha256, purpose) -> file id, and the FileObject each id was answered with.
        self._index = DedupIndex()
        self._files: dict[str, dict[str, Any]] = {}
        self._flights: dict[tuple[str, Purpose], _Flight] = {}
        self._uploads = 0
        self._multipart = 0
        self._deduplicated = 0
        self._coalesced = 0
        self._in_flight = 0
        self._peak = 0

    # -- callbacks -----------------------------------------------------------------------------

    async def init(self) -> None:
        for root in self.roots.roots:
            if not await trio.Path(root).is_dir():
                log.warning("files.root_missing", actor=self.ref.label, root=str(root))

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        # A refusal is ``caller.fail``: the caller's error, never raised here (raising from a
        # callback would crash the actor).
        if isinstance(request, _Statistics):
            return self._statistics()
        if not isinstance(request, _Request):
            return caller.fail(TypeError(f"FileActor does not understand {request!r}"))
        self.spawn(self._answer, request, caller)
        return NoReply

    async def _answer(self, request: _Request, caller: Caller) -> None:
        try:
            result = await self._run(request)
        except (ActorsLayerError, OpenAIError) as exc:
            # The caller's bad file or the API's refusal: theirs to handle, not a reason to crash.
            log.info(
                "files.request_failed",
                actor=self.ref.label,
                request=repr(request),
                error=type(exc).__name__,
                reason=str(exc),
            )
            caller.fail(exc)
        else:
            caller.reply(result)

    async def _run(self, request: _Request) -> Any:
        if isinstance(request, _Upload):
            return await self._upload(request)
        if isinstance(request, _Inline):
            async with self._slots:
                return await trio.to_thread.run_sync(_inline_part, request, self.roots, self.rules)
        if isinstance(request, _List):
            pages = self.client.list_files(purpose=request.purpose, limit=self.list_page_size)
            return [item async for item in pages]
        if isinstance(request, _Retrieve):
            return await self._forgetting_missing(request.file_id, self.client.retrieve_file)
        if isinstance(request, _Content):
            return await self._forgetting_missing(request.file_id, self.client.file_content)
        # Evict before the call: an upload racing this delete must not be answered with the id.
        self._evict(request.file_id)
        return await self.client.delete_file(request.file_id)

    async def _forgetting_missing(
        self, file_id: str, fetch: Callable[[str], Awaitable[object]]
    ) -> object:
        try:
            return await fetch(file_id)
        except NotFoundError:
            # Deleted behind our back (another process, the API's expiry): stop reusing it.
            self._evict(file_id)
            raise

    # -- uploads -------------------------------------------------------------------------------

    async def _upload(self, request: _Upload) -> dict[str, Any]:
        dedupe = self.section.dedupe
        flight: _Flight | None = None
        async with self._slots:
            prepared = await trio.to_thread.run_sync(
                _prepare, request, self.roots, self.rules, dedupe
            )
            key = (prepared.digest, prepared.purpose)
            if dedupe:
                known = self._reusable(key)
                if known is not None:
                    self._deduplicated += 1
                    log.debug("files.deduplicated", actor=self.ref.label, file_id=known["id"])
                    return dict(known)
                flight = self._flights.get(key)
            if flight is None:
                return await self._lead(prepared, key if dedupe else None)
        # The same bytes are being uploaded for the same purpose: wait without holding a slot.
        self._coalesced += 1
        await flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.file is not None
        return dict(flight.file)

    async def _lead(self, prepared: _Prepared, key: tuple[str, Purpose] | None) -> dict[str, Any]:
        flight = _Flight()
        if key is not None:
            self._flights[key] = flight
        try:
            file = await self._send(prepared)
            flight.file = file
            if key is not None:
                self._index.add(*key, file["id"])
                self._files[file["id"]] = file
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            if key is not None and self._flights.get(key) is flight:
                del self._flights[key]
            if flight.file is None and flight.error is None:
                # Cancelled (the actor is stopping): its waiters are being cancelled too, but
                # never leave one asleep on an event nobody sets.
                stopped = RuntimeError("the upload was cancelled: the file actor is stopping")
                flight.error = FileUploadFailed(prepared.name, prepared.purpose.value, stopped)
            flight.done.set()
        return dict(file)

    async def _send(self, prepared: _Prepared) -> dict[str, Any]:
        purpose = prepared.purpose.value
        large = len(prepared.data) > self.section.upload_threshold
        self._uploads += 1
        self._multipart += large
        self._in_flight += 1
        self._peak = max(self._peak, self._in_flight)
        try:
            if large:
                file = await self._send_in_parts(prepared)
            else:
                try:
                    file = await self.client.upload_file(
                        prepared.data,
                        filename=prepared.filename,
                        purpose=purpose,
                        content_type=prepared.mime_type,
                    )
                except OpenAIError as exc:
                    raise FileUploadFailed(prepared.name, purpose, exc) from exc
        finally:
            self._in_flight -= 1
        log.info(
            "files.uploaded",
            actor=self.ref.label,
            file_id=file.get("id"),
            purpose=purpose,
            bytes=len(prepared.data),
            mime_type=prepared.mime_type,
            via="uploads" if large else "files",
        )
        return file

    async def _send_in_parts(self, prepared: _Prepared) -> dict[str, Any]:
        purpose = prepared.purpose.value
        try:
            upload = await self.client.upload_large(
                prepared.data,
                filename=prepared.filename,
                purpose=purpose,
                mime_type=prepared.mime_type,
                part_size=self.section.part_size,
                max_concurrency=self.section.upload_parallelism,
            )
        except UploadFailed as exc:
            raise FileUploadFailed(prepared.name, purpose, exc, exc.upload_id) from exc
        except OpenAIError as exc:
            raise FileUploadFailed(prepared.name, purpose, exc) from exc
        file = upload.get("file")
        if not isinstance(file, dict) or not isinstance(file.get("id"), str):
            cause = ValueError(f"the completed upload carries no file object: {upload!r}")
            raise FileUploadFailed(prepared.name, purpose, cause, upload.get("id"))
        return file

    # -- bookkeeping ---------------------------------------------------------------------------

    def _reusable(self, key: tuple[str, Purpose]) -> dict[str, Any] | None:
        file_id = self._index.get(*key)
        if file_id is None:
            return None
        file = self._files[file_id]
        expires_at = file.get("expires_at")
        expiring = (
            isinstance(expires_at, int | float)
            and not isinstance(expires_at, bool)
            and expires_at - EXPIRY_MARGIN <= self._wall_clock()
        )
        if expiring:
            self._evict(file_id)
            return None
        return file

    def _evict(self, file_id: str) -> None:
        self._files.pop(file_id, None)
        if self._index.evict(file_id):
            log.debug("files.evicted", actor=self.ref.label, file_id=file_id)

    def _statistics(self) -> FilesStatistics:
        return FilesStatistics(
            uploads=self._uploads,
            multipart_uploads=self._multipart,
            deduplicated=self._deduplicated,
            coalesced=self._coalesced,
            in_flight=self._in_flight,
            peak_in_flight=self._peak,
            indexed=len(self._index),
        )
