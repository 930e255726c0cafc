"""What a file is, from its content -- never from its name (the Erlang original guessed MIME types
from the extension).

:func:`sniff` checks the signatures of the types the API accepts itself, asks ``puremagic`` about
everything else, and classifies text (JSON, JSONL, plain) by parsing it; :func:`count_gif_frames`
tells a still GIF from an animation. Pure and synchronous.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Literal

import attrs
import puremagic

from ._errors import DeclaredTypeMismatch

__all__ = [
    "DOCUMENT_TYPES",
    "IMAGE_TYPES",
    "JSONL_TYPES",
    "SniffResult",
    "check_declared_type",
    "count_gif_frames",
    "sniff",
]


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


def check_declared_type(data: bytes, declared: str, path: str = "<upload part>") -> None:
    """Refuse ``data`` (an upload's first bytes) whose exact signature names another type than
    ``declared``. Only signatures decide (a part of text proves nothing). Raises
    `DeclaredTypeMismatch`."""
    found = _signature(data)
    if found is not None and found.mime_type != declared.split(";", 1)[0].strip().lower():
        raise DeclaredTypeMismatch(path, found.mime_type, declared)
