"""Whether image bytes are a whole, still picture: checked by a maintained decoder (Pillow).

Signatures (:mod:`._sniff`) say what an image claims to be; :func:`check_image_structure` opens it
with Pillow restricted to that one format, refuses it before decoding if it has too many pixels,
then runs ``verify()`` (chunk CRCs, structure) and, on a second open, ``load()`` (decodes the first
frame): each catches truncations the other misses. Pure and synchronous; the file actor calls it
in a worker thread.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

from PIL import Image, UnidentifiedImageError

from ._errors import AnimatedImageNotAllowed, MalformedFile, TooManyPixels

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "PILLOW_FORMATS", "check_image_structure"]

#: Pillow's format name for each image type the API accepts.
PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}

#: Pillow's own decompression-bomb threshold (``Image.MAX_IMAGE_PIXELS``), about 89.5 million
#: pixels: a 20 MB PNG of one colour can claim billions, and ``load()`` would allocate them all.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

#: Formats whose animations Pillow reports. Animated GIFs are counted by the block walker of
#: :func:`~._sniff.count_gif_frames`; a multi-picture JPEG (MPO) is a still photo to the API.
_ANIMATED_FORMATS = frozenset({"PNG", "WEBP"})


def check_image_structure(data: bytes, mime_type: str, *, max_pixels: int, path: str) -> None:
    """Check that ``data`` is a whole, single-frame image of ``mime_type``, at most ``max_pixels``.

    Raises:
        TooManyPixels: width x height over ``max_pixels`` (checked before any pixel is decoded),
            or over Pillow's decompression-bomb limit.
        AnimatedImageNotAllowed: an animated PNG (APNG) or WEBP.
        MalformedFile: Pillow cannot identify, verify or decode it: truncated, corrupt, a bad CRC.
        KeyError: ``mime_type`` is not one of :data:`PILLOW_FORMATS` (a caller's mistake).
    """
    formats = [PILLOW_FORMATS[mime_type]]
    with _decoding(path, mime_type, max_pixels):
        image = Image.open(io.BytesIO(data), formats=formats)
    with image:
        pixels = image.width * image.height
        if pixels > max_pixels:
            raise TooManyPixels(path, mime_type, pixels, max_pixels)
        if image.format in _ANIMATED_FORMATS and getattr(image, "is_animated", False):
            raise AnimatedImageNotAllowed(path, mime_type, getattr(image, "n_frames", 2))
        with _decoding(path, mime_type, max_pixels):
            image.verify()
    # verify() leaves the image unusable, and misses truncated pixel data in some formats (a JPEG
    # cut before its end marker, a PNG whose IDAT is short): decoding the first frame catches it.
    with (
        _decoding(path, mime_type, max_pixels),
        Image.open(io.BytesIO(data), formats=formats) as again,
    ):
        # A JPEG is decoded at 1/8 scale: every entropy-coded byte is still read (a truncation is
        # still caught), but a 12-megapixel photo takes 0.6 MB instead of 36 MB. Other formats
        # ignore the draft request.
        again.draft(again.mode, ((again.width + 7) // 8, (again.height + 7) // 8))
        again.load()


@contextlib.contextmanager
def _decoding(path: str, mime_type: str, max_pixels: int) -> Iterator[None]:
    """Turn whatever the decoder raises into the typed error it means."""
    try:
        yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Over Pillow's own bomb limit (a warning, where warnings are errors): refused at open.
        raise TooManyPixels(path, mime_type, None, max_pixels) from None
    except Exception as exc:
        # A decoder fed hostile bytes raises more than OSError (SyntaxError for a bad PNG CRC,
        # ValueError, EOFError, struct.error, ...): whatever it is, the image is not whole.
        raise MalformedFile(path, mime_type, _reason(exc)) from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "not decodable as this image type"
    return str(exc) or type(exc).__name__
