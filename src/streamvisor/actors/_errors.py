"""The errors of the actors layer.

The tree (each leaf also subclasses the builtin it specialises, so ``except ValueError`` and
``except OSError`` keep working)::

    ActorsLayerError                      root: anything the domain actors reject or fail at
    └── FileInputError                    a file or input part that cannot be sent; .path, .rule
        ├── FileAccessError (OSError)     the file could not be read as asked
        │   ├── OutsideAllowedRoots (PermissionError)   .roots: the path resolves outside them
        │   ├── MissingFile (FileNotFoundError)
        │   ├── NotARegularFile                         .kind: "fifo", "socket", "device", ...
        │   │   └── PathIsADirectory (IsADirectoryError)
        │   └── UnreadableFile                          .reason: the OS's explanation
        └── FileRejected (ValueError)     the bytes or the request break a rule of the API
            ├── EmptyFile
            ├── FileTooLarge              .size, .limit, .purpose (None for an inline part)
            ├── UnsupportedFileType       .mime_type, .purpose, .allowed
            ├── AnimatedGifNotAllowed     .frames
            ├── MalformedFile             .mime_type, .reason
            ├── UnknownPurpose            .purpose, .allowed
            └── InvalidInputPart          .reason: a hand-built input part is wrong
                ├── AssistantsShapeNotAllowed   an Assistants ``image_file`` part
                ├── InvalidDataURL              bad header, bad base64, MIME mismatch
                └── RequestLimitExceeded        .total, .limit: too many images or image bytes

Every ``FileInputError`` names what it concerns in ``.path`` (a filesystem path, the caller's name
for in-memory bytes, or ``parts[i]`` for a hand-built input part) and the rule broken in ``.rule``
(a stable short string such as ``"max_bytes"``, for mapping to HTTP statuses and metrics).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamvisor.openai import InvalidRequestError

__all__ = [
    "ActorsLayerError",
    "AnimatedGifNotAllowed",
    "AssistantsShapeNotAllowed",
    "EmptyFile",
    "FileAccessError",
    "FileInputError",
    "FileRejected",
    "FileTooLarge",
    "InvalidDataURL",
    "InvalidInputPart",
    "InvalidSessionId",
    "InvalidSessionRequest",
    "MalformedFile",
    "MissingFile",
    "NotARegularFile",
    "OutsideAllowedRoots",
    "PathIsADirectory",
    "RequestLimitExceeded",
    "SessionError",
    "StreamLost",
    "StreamStopped",
    "TooManyStreams",
    "UnknownPurpose",
    "UnknownStream",
    "UnreadableFile",
    "UnsupportedFileType",
]


class ActorsLayerError(Exception):
    """Root of the errors raised by ``streamvisor.actors`` itself."""


class FileInputError(ActorsLayerError):
    """A file, or an input part, that cannot be sent to the API.

    ``path`` names the file (or ``parts[i]``), ``rule`` the rule it broke.
    """

    rule: str = "file_input"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class FileAccessError(FileInputError, OSError):
    """The file could not be read as asked (missing, outside the roots, not a file, I/O error)."""

    rule = "readable"


class OutsideAllowedRoots(FileAccessError, PermissionError):
    """The path, once ``..`` and symlinks are resolved, lies outside every readable root."""

    rule = "allowed_roots"

    def __init__(self, path: str, roots: Iterable[str], resolved: str | None = None) -> None:
        self.roots = tuple(roots)
        self.resolved = resolved
        where = f" (resolves to {resolved})" if resolved is not None else ""
        super().__init__(
            path, f"is outside the readable roots{where}; allowed: {', '.join(self.roots)}"
        )


class MissingFile(FileAccessError, FileNotFoundError):
    """Nothing exists at the path (or a symlink on the way is dangling)."""

    rule = "exists"

    def __init__(self, path: str) -> None:
        super().__init__(path, "no such file")


class NotARegularFile(FileAccessError):
    """The path is not a regular file: ``kind`` says what it is instead."""

    rule = "regular_file"

    def __init__(self, path: str, kind: str) -> None:
        self.kind = kind
        super().__init__(path, f"is a {kind}, not a regular file")


class PathIsADirectory(NotARegularFile, IsADirectoryError):
    """The path is a directory."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "directory")


class UnreadableFile(FileAccessError):
    """The OS refused or failed the read (permissions, I/O error); ``reason`` is its explanation."""

    rule = "readable"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"cannot be read: {reason}")


class FileRejected(FileInputError, ValueError):
    """The content, or the request around it, breaks a rule of the API."""

    rule = "content"


class EmptyFile(FileRejected):
    """The file has no bytes (the API rejects empty uploads)."""

    rule = "non_empty"

    def __init__(self, path: str) -> None:
        super().__init__(path, "is empty")


def _fmt_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n} bytes ({n / (1024 * 1024):.1f} MiB)"
    return f"{n} bytes"


class FileTooLarge(FileRejected):
    """The content is over the size limit for its purpose (``purpose`` None: an inline part).

    ``size`` is at least ``limit + 1`` when the file grew past the limit while being read.
    """

    rule = "max_bytes"

    def __init__(self, path: str, size: int, limit: int, purpose: str | None) -> None:
        self.size = size
        self.limit = limit
        self.purpose = purpose
        scope = f"purpose {purpose!r}" if purpose is not None else "an inline input"
        super().__init__(
            path, f"is {_fmt_size(size)}, over the {_fmt_size(limit)} limit for {scope}"
        )


class UnsupportedFileType(FileRejected):
    """The sniffed MIME type is not accepted for the purpose (or input kind)."""

    rule = "allowed_types"

    def __init__(self, path: str, mime_type: str, purpose: str, allowed: Iterable[str]) -> None:
        self.mime_type = mime_type
        self.purpose = purpose
        self.allowed = tuple(sorted(allowed))
        super().__init__(
            path,
            f"content is {mime_type}, which {purpose!r} does not accept; "
            f"allowed: {', '.join(self.allowed)}",
        )


class AnimatedGifNotAllowed(FileRejected):
    """The GIF has more than one frame: the API accepts only non-animated GIFs."""

    rule = "non_animated_gif"

    def __init__(self, path: str, frames: int) -> None:
        self.frames = frames
        super().__init__(
            path, f"is an animated GIF ({frames}+ frames); only non-animated GIFs are accepted"
        )


class MalformedFile(FileRejected):
    """The content claims a format (by its signature) but its structure is broken."""

    rule = "well_formed"

    def __init__(self, path: str, mime_type: str, reason: str) -> None:
        self.mime_type = mime_type
        self.reason = reason
        super().__init__(path, f"is a malformed {mime_type}: {reason}")


class UnknownPurpose(FileRejected):
    """The purpose is not one the Files API accepts at upload."""

    rule = "purpose"

    def __init__(self, path: str, purpose: str, allowed: Iterable[str]) -> None:
        self.purpose = purpose
        self.allowed = tuple(allowed)
        super().__init__(
            path, f"unknown purpose {purpose!r}; expected one of {', '.join(self.allowed)}"
        )


class InvalidInputPart(FileRejected):
    """A hand-built input part is not a valid part for the API it is meant for."""

    rule = "input_part"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path, reason)


class AssistantsShapeNotAllowed(InvalidInputPart):
    """An Assistants-API ``image_file`` part, which the Responses API does not accept."""

    rule = "responses_shape"


class InvalidDataURL(InvalidInputPart):
    """A ``data:`` URL with a bad header, bad base64, or a MIME type its bytes contradict."""

    rule = "data_url"


class RequestLimitExceeded(InvalidInputPart):
    """The parts of one request together exceed a per-request limit (image count or bytes)."""

    def __init__(self, path: str, rule: str, total: int, limit: int, what: str) -> None:
        self.rule = rule
        self.total = total
        self.limit = limit
        super().__init__(path, f"{what}: {total} exceeds the per-request limit of {limit}")


# ---------------------------------------------------------------------------------------------
# Streaming sessions (``_session.py``)::
#
#     ActorsLayerError
#     └── SessionError                        a session refused or lost a stream; .session_id
#         ├── InvalidSessionRequest (streamvisor.openai.InvalidRequestError, so ValueError)
#         │                                   rejected at the call, before any network I/O; .field
#         ├── InvalidSessionId (ValueError)   not usable as a topic segment / registry name
#         ├── TooManyStreams (RuntimeError)   the session already runs .limit streams
#         ├── UnknownStream (LookupError)     no stream (running or remembered) with .stream_id
#         ├── StreamStopped                   the stream was stopped before its first event
#         └── StreamLost                      a foreground stream died with its worker (restart)


class SessionError(ActorsLayerError):
    """A streaming session refused a request or lost a stream. ``session_id`` names it."""

    def __init__(self, session_id: str | None, message: str) -> None:
        super().__init__(message if session_id is None else f"session {session_id}: {message}")
        self.session_id = session_id
        self.message = message


class InvalidSessionRequest(SessionError, InvalidRequestError):
    """A chat/respond request rejected before any network I/O; ``field`` names the culprit."""

    def __init__(self, session_id: str | None, field: str, message: str) -> None:
        super().__init__(session_id, f"{field}: {message}")
        self.field = field


class InvalidSessionId(SessionError, ValueError):
    """A session id that cannot be a topic segment (``session.<id>``) or a registered name."""

    def __init__(self, session_id: object, reason: str) -> None:
        super().__init__(None, f"invalid session id {session_id!r}: {reason}")
        self.reason = reason


class TooManyStreams(SessionError, RuntimeError):
    """The session already runs ``limit`` streams; stop or wait for one first."""

    def __init__(self, session_id: str, limit: int) -> None:
        super().__init__(session_id, f"already running {limit} streams (the limit)")
        self.limit = limit


class UnknownStream(SessionError, LookupError):
    """No running or remembered stream has this ``stream_id``."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(session_id, f"no stream {stream_id!r}")
        self.stream_id = stream_id


class StreamStopped(SessionError):
    """The stream was stopped (by a caller or the session's shutdown) before its first event."""

    def __init__(self, session_id: str, stream_id: str, why: str) -> None:
        super().__init__(session_id, f"stream {stream_id} was stopped before it started ({why})")
        self.stream_id = stream_id
        self.why = why


class StreamLost(SessionError):
    """A foreground stream ended with its worker (a crash); only durable streams survive that."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(
            session_id,
            f"stream {stream_id} was lost when the session worker restarted "
            "(only durable Responses streams are resumed)",
        )
        self.stream_id = stream_id
