"""What a file is and whether the API will take it: sniffing, limits, readable roots, dedup.

Pure logic for the FileActor. Nothing here is async: the actor runs :func:`load_file` (the only
function that touches the file system) in a worker thread with ``trio.to_thread.run_sync``.

* MIME types come from the **content**, never from the file name (the Erlang original guessed them
  from the extension): :func:`sniff` checks the signatures of the types the API accepts itself,
  asks ``puremagic`` about everything else, and classifies text (JSON, JSONL, plain) by parsing it.
* :class:`FileRules` holds the API's limits (per-file, per-image, batch) and the MIME types each
  upload purpose accepts; :func:`check_content` applies them to bytes.
* :class:`ReadableRoots` confines reads to configured directories (``..`` and symlinks resolved).
* :func:`content_digest` and :class:`DedupIndex` let identical uploads reuse one ``file_id``.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import os
import re
import stat
import types
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs
import puremagic

from ._errors import (
    AnimatedGifNotAllowed,
    EmptyFile,
    FileTooLarge,
    MalformedFile,
    MissingFile,
    NotARegularFile,
    OutsideAllowedRoots,
    PathIsADirectory,
    UnknownPurpose,
    UnreadableFile,
    UnsupportedFileType,
)

__all__ = [
    "DEFAULT_RULES",
    "DOCUMENT_TYPES",
    "IMAGE_TYPES",
    "JSONL_TYPES",
    "MIB",
    "DedupIndex",
    "FileRules",
    "LoadedFile",
    "Purpose",
    "ReadableRoots",
    "SniffResult",
    "check_content",
    "check_image",
    "content_digest",
    "count_gif_frames",
    "load_file",
    "parse_purpose",
    "sniff",
]

MIB = 1024 * 1024


class Purpose(enum.StrEnum):
    """The ``purpose`` values ``POST /v1/files`` accepts."""

    ASSISTANTS = "assistants"
    BATCH = "batch"
    FINE_TUNE = "fine-tune"
    VISION = "vision"
    USER_DATA = "user_data"
    EVALS = "evals"


def parse_purpose(purpose: Purpose | str, path: str = "<request>") -> Purpose:
    """Return ``purpose`` as a :class:`Purpose`.

    Raises:
        UnknownPurpose: it is not one of the six upload purposes (names ``path`` in the message).
    """
    try:
        return Purpose(purpose)
    except ValueError:
        raise UnknownPurpose(path, str(purpose), [p.value for p in Purpose]) from None


# --------------------------------------------------------------------------------------------
# Sniffing

#: What images the API accepts (GIF only when it has a single frame).
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})

#: JSON Lines, as :func:`sniff` names it: every non-blank line is a JSON object.
JSONL_TYPES = frozenset({"application/jsonl"})

_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Documents a Responses ``input_file`` (and a ``user_data`` upload) may hold: PDF, text the sniffer
#: can tell apart by content (plain, HTML, JSON, JSONL, XML) and the Office Open XML formats.
#: Markdown, CSV and source code are text/plain by content and so are covered by it.
DOCUMENT_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/html",
        "application/json",
        "application/jsonl",
        "application/xml",
        _DOCX,
        _PPTX,
        _XLSX,
    }
)

Source = Literal["signature", "text", "puremagic", "fallback"]


@attrs.frozen
class SniffResult:
    """What the bytes are, judged from their content alone."""

    #: The MIME type, e.g. ``"image/png"``; ``"application/octet-stream"`` when unknown.
    mime_type: str
    #: The usual extension with its dot, e.g. ``".png"``; ``""`` when unknown.
    extension: str
    #: How it was decided: an exact ``signature`` check, parsing as ``text``, ``puremagic``'s
    #: table, or the ``fallback`` for unrecognised bytes.
    source: Source = attrs.field(
        validator=attrs.validators.in_(("signature", "text", "puremagic", "fallback"))
    )
    #: 1.0 for signature and text decisions; puremagic's own score otherwise; 0.0 for fallback.
    confidence: float = attrs.field(validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])


def _signature(data: bytes) -> SniffResult | None:
    # The types the API cares most about are checked here exactly, not left to a scored table.
    def found(mime: str, ext: str) -> SniffResult:
        return SniffResult(mime, ext, "signature", 1.0)

    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return found("image/png", ".png")
    if data.startswith(b"\xff\xd8\xff") and len(data) > 3 and data[3] not in (0x00, 0xFF):
        return found("image/jpeg", ".jpg")
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return found("image/gif", ".gif")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return found("image/webp", ".webp")
    if data.startswith(b"%PDF-"):
        return found("application/pdf", ".pdf")
    if data.startswith(b"PK\x03\x04"):
        return _office(data)
    return None


def _office(data: bytes) -> SniffResult | None:
    # puremagic scores any ZIP as docx, pptx or xlsx alike; the archive's own layout decides.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" in names:
        for prefix, mime, ext in (
            ("word/", _DOCX, ".docx"),
            ("ppt/", _PPTX, ".pptx"),
            ("xl/", _XLSX, ".xlsx"),
        ):
            if any(name.startswith(prefix) for name in names):
                return SniffResult(mime, ext, "signature", 1.0)
    return SniffResult("application/zip", ".zip", "signature", 1.0)


#: C0 controls other than tab, newlines, form feed and escape, and DEL: not in text files.
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def _as_text(data: bytes) -> str | None:
    if _BINARY_BYTES.search(data):
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None


def _is_jsonl(text: str) -> bool:
    # Line by line without building a list: batch files run to 200 MB.
    seen = False
    for line in io.StringIO(text):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            return False
        if not isinstance(value, dict):
            return False
        seen = True
    return seen


def _text_kind(text: str) -> SniffResult:
    if _is_jsonl(text):
        return SniffResult("application/jsonl", ".jsonl", "text", 1.0)
    try:
        json.loads(text)
    except ValueError:
        pass
    else:
        return SniffResult("application/json", ".json", "text", 1.0)
    return SniffResult("text/plain", ".txt", "text", 1.0)


#: puremagic scores a match by the length of its signature (0.1 per byte, 0.8 from 9 bytes).
#: Below this score a match is a 2-4 byte coincidence that text easily hits ("BM", "MZ", ...).
_PUREMAGIC_TRUSTED = 0.5

#: The text formats puremagic may name for UTF-8 text. Its other guesses for text ("text/x-python"
#: for a file starting "import os", "message/rfc822" for one starting "From:") are plain text to
#: the API, and naming them would refuse ordinary text files.
_TEXT_FORMATS = frozenset({"text/html", "application/xml", "image/svg+xml"})


def _puremagic(data: bytes) -> SniffResult | None:
    try:
        matches = puremagic.magic_string(data)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type:
            ext = match.extension if isinstance(match.extension, str) else ""
            return SniffResult(match.mime_type, ext, "puremagic", float(match.confidence))
    return None


def sniff(data: bytes) -> SniffResult:
    """Say what ``data`` is, from its content alone (a file name is never consulted).

    In order: exact signatures (PNG, JPEG, GIF, WEBP, PDF, ZIP and docx/pptx/xlsx by the archive's
    layout). UTF-8 text is JSON Lines or JSON if it parses as such, HTML/XML/SVG if ``puremagic``
    is confident of it, else ``text/plain``. Other bytes get ``puremagic``'s best match, else
    ``application/octet-stream``. Never raises (empty bytes included).
    """
    found = _signature(data)
    if found is not None:
        return found
    if not data:
        return SniffResult("application/octet-stream", "", "fallback", 0.0)
    text = _as_text(data)
    guess = _puremagic(data)
    if text is not None and text.strip():
        kind = _text_kind(text)
        if kind.mime_type != "text/plain":
            return kind
        if (
            guess is not None
            and guess.mime_type in _TEXT_FORMATS
            and guess.confidence >= _PUREMAGIC_TRUSTED
        ):
            return guess
        return kind
    if guess is not None:
        return guess
    return SniffResult("application/octet-stream", "", "fallback", 0.0)


def count_gif_frames(data: bytes, stop_after: int | None = None) -> int:
    """Count the image descriptors of a GIF by walking its block structure.

    Extensions and image data are skipped sub-block by sub-block, so bytes inside them (comments,
    pixel data) are never mistaken for frames. Counting stops early once ``stop_after`` is reached.

    Raises:
        ValueError: the data is not a GIF, or its structure is truncated or corrupt (the message
            says where).
    """
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise ValueError("no GIF87a/GIF89a header")
    if len(data) < 13:
        raise ValueError("truncated logical screen descriptor")
    pos = 13
    flags = data[10]
    if flags & 0x80:
        pos += 3 * (2 << (flags & 0x07))

    def skip_sub_blocks(pos: int) -> int:
        while True:
            if pos >= len(data):
                raise ValueError(f"truncated data sub-blocks at byte {pos}")
            size = data[pos]
            pos += 1 + size
            if size == 0:
                return pos

    frames = 0
    while True:
        if pos >= len(data):
            raise ValueError(f"missing trailer (0x3B) at byte {pos}")
        introducer = data[pos]
        if introducer == 0x3B:
            return frames
        if introducer == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif introducer == 0x2C:  # image descriptor, optional local colour table, image data
            if pos + 10 > len(data):
                raise ValueError(f"truncated image descriptor at byte {pos}")
            local = data[pos + 9]
            pos += 10
            if local & 0x80:
                pos += 3 * (2 << (local & 0x07))
            pos = skip_sub_blocks(pos + 1)  # +1: the LZW minimum code size
            frames += 1
            if stop_after is not None and frames >= stop_after:
                return frames
        else:
            raise ValueError(f"unexpected block introducer 0x{introducer:02X} at byte {pos}")


# --------------------------------------------------------------------------------------------
# Rules


def _default_allowed() -> dict[Purpose, frozenset[str]]:
    return {
        Purpose.VISION: IMAGE_TYPES,
        Purpose.BATCH: JSONL_TYPES,
        Purpose.FINE_TUNE: JSONL_TYPES,
        Purpose.EVALS: JSONL_TYPES,
        Purpose.USER_DATA: DOCUMENT_TYPES | IMAGE_TYPES,
        Purpose.ASSISTANTS: DOCUMENT_TYPES | IMAGE_TYPES,
    }


def _to_allowed(value: Mapping[Purpose | str, frozenset[str]]) -> Mapping[Purpose, frozenset[str]]:
    allowed = _default_allowed()
    allowed.update({Purpose(k): frozenset(v) for k, v in value.items()})
    return types.MappingProxyType(allowed)


@attrs.frozen
class FileRules:
    """The limits and allowed types a file must meet, with the API's published defaults.

    Sizes are in bytes (MiB multiples). ``allowed_types`` overrides the default allow-list of the
    purposes it names; the others keep theirs.
    """

    #: Any single uploaded file (the Files API limit: 512 MB).
    max_file_bytes: int = attrs.field(default=512 * MIB, validator=attrs.validators.gt(0))
    #: One image, uploaded for ``vision`` or sent inline (20 MB).
    max_image_bytes: int = attrs.field(default=20 * MIB, validator=attrs.validators.gt(0))
    #: A ``batch`` input file (200 MB).
    max_batch_bytes: int = attrs.field(default=200 * MIB, validator=attrs.validators.gt(0))
    #: Images in one request (500).
    max_images_per_request: int = attrs.field(default=500, validator=attrs.validators.gt(0))
    #: Image bytes in one request, counted over inline data URLs (50 MB).
    max_request_image_bytes: int = attrs.field(default=50 * MIB, validator=attrs.validators.gt(0))
    #: MIME types each purpose accepts (see the module's ``*_TYPES`` constants).
    allowed_types: Mapping[Purpose, frozenset[str]] = attrs.field(
        factory=dict, converter=_to_allowed, hash=False
    )
    #: MIME types an inline Responses ``input_file`` / Chat ``file`` part may carry.
    input_file_types: frozenset[str] = attrs.field(default=DOCUMENT_TYPES, converter=frozenset)

    def size_limit(self, purpose: Purpose) -> int:
        """The byte limit for a file of ``purpose`` (images and batch files have tighter ones)."""
        if purpose is Purpose.VISION:
            return min(self.max_image_bytes, self.max_file_bytes)
        if purpose is Purpose.BATCH:
            return min(self.max_batch_bytes, self.max_file_bytes)
        return self.max_file_bytes


DEFAULT_RULES = FileRules()


def check_content(
    data: bytes,
    purpose: Purpose | str,
    *,
    rules: FileRules = DEFAULT_RULES,
    path: str = "<data>",
) -> SniffResult:
    """Check ``data`` against ``rules`` for ``purpose`` and return what it is.

    Images (of any purpose) must also be at most ``max_image_bytes`` and, if GIF, have one frame.

    Raises:
        UnknownPurpose: ``purpose`` is not an upload purpose.
        EmptyFile: ``data`` is empty.
        FileTooLarge: over the limit for the purpose (or for an image).
        UnsupportedFileType: the sniffed type is not allowed for the purpose.
        AnimatedGifNotAllowed: a GIF with more than one frame.
        MalformedFile: a GIF whose block structure is broken.
    """
    purpose = parse_purpose(purpose, path)
    if not data:
        raise EmptyFile(path)
    limit = rules.size_limit(purpose)
    if len(data) > limit:
        raise FileTooLarge(path, len(data), limit, purpose.value)
    found = sniff(data)
    allowed = rules.allowed_types[purpose]
    if found.mime_type not in allowed:
        raise UnsupportedFileType(path, found.mime_type, purpose.value, allowed)
    check_image(data, found, rules=rules, path=path, purpose=purpose.value)
    return found


def check_image(
    data: bytes,
    found: SniffResult,
    *,
    rules: FileRules = DEFAULT_RULES,
    path: str = "<data>",
    purpose: str | None = None,
) -> None:
    """Apply the image-only rules (size, single-frame GIF) when ``found`` is an image type.

    Raises:
        FileTooLarge: over ``max_image_bytes``.
        AnimatedGifNotAllowed: a GIF with more than one frame.
        MalformedFile: a GIF whose block structure is broken.
    """
    if found.mime_type not in IMAGE_TYPES:
        return
    if len(data) > rules.max_image_bytes:
        raise FileTooLarge(path, len(data), rules.max_image_bytes, purpose)
    if found.mime_type == "image/gif":
        try:
            frames = count_gif_frames(data, stop_after=2)
        except ValueError as exc:
            raise MalformedFile(path, "image/gif", str(exc)) from None
        if frames == 0:
            raise MalformedFile(path, "image/gif", "no image frames")
        if frames > 1:
            raise AnimatedGifNotAllowed(path, frames)


# --------------------------------------------------------------------------------------------
# Reading under roots


def _resolve_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.is_absolute():
        raise ValueError(f"readable root {str(root)!r} must be an absolute path")
    return path.resolve()


def _to_roots(value: object) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset):
        raise TypeError(f"readable roots must be a path or a collection of paths, not {value!r}")
    return tuple(_resolve_root(r) for r in value)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


@attrs.frozen
class ReadableRoots:
    """The directories files may be read from; everything else is refused.

    Roots must be absolute and are resolved once (symlinks followed) at construction. A requested
    path is resolved the same way, so ``..`` segments and symlinks that lead outside every root
    are caught; relative paths are taken relative to the first root.

    The check narrows, but cannot close, the window in which another process swaps a directory for
    a symlink between resolving and opening: :meth:`read` re-checks the opened file's identity.
    """

    roots: tuple[Path, ...] = attrs.field(converter=_to_roots)

    @roots.validator
    def _non_empty(
        self, _attribute: attrs.Attribute[tuple[Path, ...]], value: tuple[Path, ...]
    ) -> None:
        if not value:
            raise ValueError("at least one readable root is required")

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """Return the real path of ``path`` if it lies under a root.

        Raises:
            MissingFile: nothing exists there (including a dangling symlink).
            OutsideAllowedRoots: it resolves outside every root.
            UnreadableFile: the OS refused to resolve it (e.g. a symlink loop, permissions).
        """
        shown = os.fspath(path)
        if "\0" in shown:
            # The OS cannot name such a file; Path.resolve would raise a bare ValueError.
            raise UnreadableFile(shown, "the path contains a NUL byte")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        try:
            real = candidate.resolve(strict=True)
        except FileNotFoundError:
            # Say "outside" rather than "missing" when the path would escape anyway, so the
            # answer does not reveal what exists outside the roots.
            if not self._inside(Path(os.path.realpath(candidate))):
                raise OutsideAllowedRoots(shown, self._names()) from None
            raise MissingFile(shown) from None
        except (OSError, RuntimeError) as exc:
            raise UnreadableFile(shown, str(exc)) from None
        if not self._inside(real):
            raise OutsideAllowedRoots(shown, self._names(), str(real))
        return real

    def read(self, path: str | os.PathLike[str], limit: int) -> tuple[Path, bytes]:
        """Resolve ``path`` under the roots and read at most ``limit`` bytes of it.

        The file is read with a cap of ``limit + 1`` bytes, so a file that grows past the limit
        while being read is caught without reading the rest. Returns the resolved path and bytes.

        Raises:
            MissingFile, OutsideAllowedRoots: see :meth:`resolve`.
            PathIsADirectory: it is a directory.
            NotARegularFile: it is a pipe, socket or device.
            FileTooLarge: it is (or becomes) larger than ``limit`` (``purpose`` is None here).
            UnreadableFile: permission denied or an I/O error.
        """
        shown = os.fspath(path)
        real = self.resolve(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags)
        except IsADirectoryError:
            raise PathIsADirectory(shown) from None
        except FileNotFoundError:
            raise MissingFile(shown) from None
        except OSError as exc:
            raise UnreadableFile(shown, exc.strerror or str(exc)) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathIsADirectory(shown)
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(shown, _kind(info.st_mode))
            if self.resolve(path) != real or not _same_file(os.stat(real), info):
                raise OutsideAllowedRoots(shown, self._names(), str(real))
            if info.st_size > limit:
                raise FileTooLarge(shown, info.st_size, limit, None)
            try:
                data = _read_capped(fd, limit + 1)
            except OSError as exc:
                raise UnreadableFile(shown, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise FileTooLarge(shown, len(data), limit, None)
        return real, data

    def _inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def _names(self) -> list[str]:
        return [str(root) for root in self.roots]


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_capped(fd: int, cap: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < cap:
        chunk = os.read(fd, min(cap - len(chunks), MIB))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


@attrs.frozen
class LoadedFile:
    """A file read under the roots and checked for its purpose: ready to upload."""

    #: The path as the caller gave it (used in errors and logs).
    path: str
    #: Its resolved real path.
    real_path: Path
    #: The name to upload it under (the real file's base name; never used to decide its type).
    filename: str
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    purpose: Purpose
    sniffed: SniffResult
    #: :func:`content_digest` of ``data``.
    digest: str


def load_file(
    path: str | os.PathLike[str],
    purpose: Purpose | str,
    *,
    roots: ReadableRoots,
    rules: FileRules = DEFAULT_RULES,
) -> LoadedFile:
    """Read ``path`` under ``roots`` and check it for ``purpose``. Blocking: run it in a thread.

    Raises:
        UnknownPurpose: ``purpose`` is not an upload purpose.
        MissingFile, OutsideAllowedRoots, PathIsADirectory, NotARegularFile, UnreadableFile:
            the file cannot be read as asked (see :meth:`ReadableRoots.read`).
        EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedGifNotAllowed, MalformedFile:
            the content breaks a rule (see :func:`check_content`).
    """
    shown = os.fspath(path)
    parsed = parse_purpose(purpose, shown)
    limit = rules.size_limit(parsed)
    try:
        real, data = roots.read(path, limit)
    except FileTooLarge as exc:
        raise FileTooLarge(shown, exc.size, exc.limit, parsed.value) from None
    found = check_content(data, parsed, rules=rules, path=shown)
    return LoadedFile(
        path=shown,
        real_path=real,
        filename=real.name,
        data=data,
        purpose=parsed,
        sniffed=found,
        digest=content_digest(data),
    )


# --------------------------------------------------------------------------------------------
# Deduplication


def content_digest(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits: the identity used for deduplication."""
    return hashlib.sha256(data).hexdigest()


@attrs.define
class DedupIndex:
    """(content digest, purpose) → the ``file_id`` already holding those bytes for that purpose.

    Pure bookkeeping, owned by one actor (not thread-safe). The same bytes uploaded for two
    purposes are two files, so the purpose is part of the key.
    """

    _by_key: dict[tuple[str, Purpose], str] = attrs.field(factory=dict, init=False)
    _by_file: dict[str, set[tuple[str, Purpose]]] = attrs.field(factory=dict, init=False)

    def get(self, digest: str, purpose: Purpose | str) -> str | None:
        """The file id recorded for these bytes and purpose, or None.

        Raises:
            UnknownPurpose: ``purpose`` is not an upload purpose.
        """
        return self._by_key.get((digest, parse_purpose(purpose)))

    def add(self, digest: str, purpose: Purpose | str, file_id: str) -> None:
        """Record that ``file_id`` holds these bytes for ``purpose`` (replacing an older entry).

        Raises:
            UnknownPurpose: ``purpose`` is not an upload purpose.
        """
        key = (digest, parse_purpose(purpose))
        previous = self._by_key.get(key)
        if previous is not None:
            self._forget(previous, key)
        self._by_key[key] = file_id
        self._by_file.setdefault(file_id, set()).add(key)

    def evict(self, file_id: str) -> bool:
        """Forget every entry pointing at ``file_id`` (it was deleted). True if there were any."""
        keys = self._by_file.pop(file_id, set())
        for key in keys:
            del self._by_key[key]
        return bool(keys)

    def _forget(self, file_id: str, key: tuple[str, Purpose]) -> None:
        keys = self._by_file[file_id]
        keys.discard(key)
        if not keys:
            del self._by_file[file_id]

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._by_file
