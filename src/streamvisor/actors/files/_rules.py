"""Whether the API will take a file: upload purposes, limits and allowed types.

:class:`FileRules` holds the API's limits (per-file, per-image, batch) and the MIME types each
upload purpose accepts; :func:`check_content` applies them to bytes (named by
:func:`~streamvisor.actors.files._sniff.sniff`). Pure logic for the FileActor: nothing here is
async or touches the file system.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from typing import Final

import attrs

from ._errors import (
    AnimatedGifNotAllowed,
    EmptyFile,
    FileTooLarge,
    MalformedFile,
    UnknownPurpose,
    UnsupportedFileType,
)
from ._images import DEFAULT_MAX_IMAGE_PIXELS, check_image_structure
from ._sniff import DOCUMENT_TYPES, IMAGE_TYPES, JSONL_TYPES, SniffResult, count_gif_frames, sniff

__all__ = [
    "DEFAULT_RULES",
    "MIB",
    "FileRules",
    "Purpose",
    "check_content",
    "check_image",
    "parse_purpose",
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


#: What ``GET /v1/files?purpose=`` filters on: the upload purposes and what the API itself writes.
LISTED_PURPOSES: Final = frozenset(
    [p.value for p in Purpose] + ["assistants_output", "batch_output", "fine-tune-results"]
)


def check_listed_purpose(purpose: str) -> str:
    """``purpose`` if files can be listed by it. Raises `UnknownPurpose` otherwise."""
    if purpose not in LISTED_PURPOSES:
        raise UnknownPurpose("<list>", str(purpose), sorted(LISTED_PURPOSES))
    return purpose


def parse_purpose(purpose: Purpose | str, path: str = "<request>") -> Purpose:
    """Return ``purpose`` as a :class:`Purpose`.

    Raises:
        UnknownPurpose: it is not one of the six upload purposes (names ``path`` in the message).
    """
    try:
        return Purpose(purpose)
    except ValueError:
        raise UnknownPurpose(path, str(purpose), [p.value for p in Purpose]) from None


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
    #: Pixels (width x height) an image may claim; more is refused before decoding, as a
    #: decompression bomb (Pillow's threshold, about 89.5 million).
    max_image_pixels: int = attrs.field(
        default=DEFAULT_MAX_IMAGE_PIXELS, validator=attrs.validators.gt(0)
    )
    #: Images in one request (500).
    max_images_per_request: int = attrs.field(default=500, validator=attrs.validators.gt(0))
    #: Image bytes in one request, counted over inline data URLs (50 MB).
    max_request_image_bytes: int = attrs.field(default=50 * MIB, validator=attrs.validators.gt(0))
    #: MIME types each purpose accepts (see the ``*_TYPES`` constants of ``_file_sniff``).
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

    Images (of any purpose) must also pass :func:`check_image`.

    Raises:
        UnknownPurpose: ``purpose`` is not an upload purpose.
        EmptyFile: ``data`` is empty.
        FileTooLarge: over the limit for the purpose (or for an image).
        UnsupportedFileType: the sniffed type is not allowed for the purpose.
        AnimatedImageNotAllowed, MalformedFile, TooManyPixels: an image that is not a whole still
            picture of a decodable size (see :func:`check_image`).
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
    """Apply the image-only rules when ``found`` is an image type: at most ``max_image_bytes``,
    a single frame, at most ``max_image_pixels``, and whole (Pillow verifies and decodes it).

    Raises:
        FileTooLarge: over ``max_image_bytes``.
        AnimatedGifNotAllowed: a GIF with more than one frame (an AnimatedImageNotAllowed).
        AnimatedImageNotAllowed: an animated PNG (APNG) or WEBP.
        TooManyPixels: width x height over ``max_image_pixels``: refused before decoding.
        MalformedFile: truncated or corrupt (a GIF's block structure, a PNG's CRCs, pixel data
            the decoder cannot finish).
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
    check_image_structure(data, found.mime_type, max_pixels=rules.max_image_pixels, path=path)
