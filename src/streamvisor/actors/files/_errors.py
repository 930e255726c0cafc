"""The file actor's errors: files and input parts that cannot be sent, and uploads that failed.

The whole tree of the actors layer is drawn in ``streamvisor/actors/_errors.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import ActorsLayerError, shown

__all__ = [
    "AnimatedGifNotAllowed",
    "AnimatedImageNotAllowed",
    "AssistantsShapeNotAllowed",
    "EmptyFile",
    "FileAccessError",
    "FileInputError",
    "FileRejected",
    "FileTooLarge",
    "FileUploadFailed",
    "InvalidDataURL",
    "InvalidFileId",
    "InvalidFileName",
    "InvalidInputPart",
    "MalformedFile",
    "MissingFile",
    "NotARegularFile",
    "OutsideAllowedRoots",
    "PathIsADirectory",
    "RequestLimitExceeded",
    "TooManyPixels",
    "UnknownPurpose",
    "UnreadableFile",
    "UnsupportedFileType",
]


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
    """The path is not reachable under a readable root without symlinks or ``..``.

    One message for every such path (outside, missing outside, a directory, a symlink or a
    ``..`` on the way): it never depends on what exists beyond the roots. ``.roots`` lists them.
    """

    rule = "allowed_roots"

    def __init__(self, path: str, roots: Iterable[str]) -> None:
        self.roots = tuple(roots)
        super().__init__(
            path,
            "is not under the readable roots (no symlinks or '..' are followed); "
            f"allowed: {', '.join(self.roots)}",
        )


class MissingFile(FileAccessError, FileNotFoundError):
    """Nothing exists at the path, under its root."""

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


class DeclaredTypeMismatch(FileRejected):
    """The content's signature says another type than the one declared for it (the Uploads
    API's ``mime_type``)."""

    rule = "declared_type"

    def __init__(self, path: str, mime_type: str, declared: str) -> None:
        self.mime_type = mime_type
        self.declared = declared
        super().__init__(path, f"content is {mime_type}, declared as {declared}")


class AnimatedImageNotAllowed(FileRejected):
    """The image is animated (``frames`` > 1): the API looks at still images only."""

    rule = "non_animated"

    def __init__(self, path: str, mime_type: str, frames: int) -> None:
        self.mime_type = mime_type
        self.frames = frames
        super().__init__(path, self._describe())

    def _describe(self) -> str:
        kind = f"an animated {self.mime_type} ({self.frames} frames)"
        return f"is {kind}; only still images are accepted"


class AnimatedGifNotAllowed(AnimatedImageNotAllowed):
    """The GIF has more than one frame: the API accepts only non-animated GIFs."""

    rule = "non_animated_gif"

    def __init__(self, path: str, frames: int) -> None:
        super().__init__(path, "image/gif", frames)

    def _describe(self) -> str:
        return f"is an animated GIF ({self.frames}+ frames); only non-animated GIFs are accepted"


class TooManyPixels(FileRejected):
    """The image claims more pixels than may be decoded (a decompression bomb, or just huge).

    ``pixels`` is width x height, or None when the decoder refused it before saying (over its
    own, higher, limit); ``limit`` is the rule's.
    """

    rule = "max_image_pixels"

    def __init__(self, path: str, mime_type: str, pixels: int | None, limit: int) -> None:
        self.mime_type = mime_type
        self.pixels = pixels
        self.limit = limit
        count = f"{pixels} pixels" if pixels is not None else "too many pixels to decode"
        super().__init__(path, f"is a {mime_type} of {count}, over the limit of {limit} pixels")


class MalformedFile(FileRejected):
    """The content claims a format (by its signature) but its structure is broken."""

    rule = "well_formed"

    def __init__(self, path: str, mime_type: str, reason: str) -> None:
        self.mime_type = mime_type
        self.reason = reason
        super().__init__(path, f"is a malformed {mime_type}: {reason}")


class UnknownPurpose(FileRejected):
    """The purpose is not one the Files API accepts (at upload, or to list by)."""

    rule = "purpose"
    #: The argument at fault (as the other refusals name theirs).
    field = "purpose"

    def __init__(self, path: str, purpose: str, allowed: Iterable[str]) -> None:
        self.purpose = purpose
        self.allowed = tuple(allowed)
        super().__init__(
            path, f"unknown purpose {purpose!r:.40}; expected one of {', '.join(self.allowed)}"
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


# --------------------------------------------------------------------------------------------
# FileActor (``_files.py``, ``_files_handle.py``)
#
#     ActorsLayerError
#     ├── FileUploadFailed                  the API refused or failed an upload of a good file;
#                                           .path, .purpose, .upload_id; __cause__: the wire error
#     ├── InvalidFileId (ValueError)        not an API file id; .field ("file_id"), .value
#     └── InvalidFileName (ValueError)      an upload name the API cannot carry; .filename


class FileUploadFailed(ActorsLayerError):
    """An upload of a file that passed every local check failed at the API.

    ``path`` names the file (or the caller's name for in-memory bytes), ``purpose`` the upload
    purpose, ``upload_id`` the Uploads-API upload (cancelled server-side before this is raised)
    or None for a single ``POST /files``. The wire error (``streamvisor.openai.OpenAIError``) is
    chained as ``__cause__`` and kept in ``.cause``.
    """

    rule = "upload"

    def __init__(
        self, path: str, purpose: str, cause: BaseException, upload_id: str | None = None
    ) -> None:
        self.path = path
        self.purpose = purpose
        self.cause = cause
        self.upload_id = upload_id
        via = f"upload {upload_id} (cancelled)" if upload_id is not None else "POST /files"
        super().__init__(f"{path}: upload for purpose {purpose!r} failed via {via}: {cause}")


class InvalidFileId(ActorsLayerError, ValueError):
    """A file id that the API cannot have issued: not a str matching the wire's
    ``API_ID_PATTERN`` in full. ``field`` is ``"file_id"``; ``value`` (also ``file_id``) is what
    was given."""

    def __init__(self, file_id: object, field: str = "file_id") -> None:
        self.file_id = self.value = file_id
        self.field = field
        super().__init__(f"invalid {field} {shown(file_id)}: not a file id the API issues")


class InvalidFileName(ActorsLayerError, ValueError):
    """An upload name that is empty, not a string, or holds control characters or a ``/``."""

    def __init__(self, filename: object) -> None:
        self.filename = filename
        super().__init__(f"not a usable upload file name: {filename!r}")
