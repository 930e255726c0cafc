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

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ActorsLayerError",
    "AnimatedGifNotAllowed",
    "AssistantsShapeNotAllowed",
    "BackgroundError",
    "EmptyFile",
    "FileAccessError",
    "FileInputError",
    "FileRejected",
    "FileTooLarge",
    "InvalidBackgroundRequest",
    "InvalidDataURL",
    "InvalidInputPart",
    "MalformedFile",
    "MissingFile",
    "NotARegularFile",
    "NotRegistered",
    "OutsideAllowedRoots",
    "PathIsADirectory",
    "RequestLimitExceeded",
    "ResponseGone",
    "UnknownPurpose",
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


# ------------------------------------------------------------------------------------------------
# background (BackgroundPoller, actors/_background.py)::
#
#     ActorsLayerError
#     └── BackgroundError                     anything the background poller rejects or fails at
#         ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
#         ├── ResponseGone (LookupError)      the server no longer knows the id (404: unknown, or
#         │                                   deleted after its retention window); .response_id
#         └── NotRegistered                   created server-side, but the registry write failed:
#                                             .response_id, .response (cancel it, or track it)
#
# The registry store's own errors (``UnknownResponse(KeyError)``, ``StoreError``, ...) and the
# wire layer's (``OutcomeUnknownError``, ``CancelRejected``, ...) pass through unchanged.


class BackgroundError(ActorsLayerError):
    """Root of the errors raised by the background poller itself."""


class InvalidBackgroundRequest(BackgroundError, ValueError):
    """A background create or track rejected before any I/O; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResponseGone(BackgroundError, LookupError):
    """The server answered 404 for this response: an unknown id, or one deleted after its
    retention window. A tracked response is marked ``failed`` (``last_error`` starts with
    ``response_gone:``) when this is seen."""

    def __init__(self, response_id: str, detail: str | None = None) -> None:
        message = f"response {response_id!r} is gone from the server (404)"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.response_id = response_id
        self.detail = detail


class NotRegistered(BackgroundError):
    """The server created the response, but recording it in the registry failed.

    The response runs server-side untracked: ``response`` is what the server answered, so the
    caller can cancel it (or retry the tracking). ``__cause__`` is the store's error.
    """

    def __init__(self, response_id: str, response: Mapping[str, Any]) -> None:
        super().__init__(
            f"response {response_id!r} was created but could not be recorded in the registry; "
            "it is not being polled"
        )
        self.response_id = response_id
        self.response = response
