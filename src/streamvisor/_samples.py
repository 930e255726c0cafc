"""Tiny, valid media files built by hand, for the demos and the file-rule tests (byte-exact and
with no encoder in the loop; the file actor checks them with Pillow like any other image).

Each builder returns the bytes of a real file of its format: PNG with IHDR/IDAT/IEND and correct
CRCs, a baseline JPEG with its own quantisation and Huffman tables, GIF87a/89a with proper block
structure (static, animated, and a static one whose data contains the bytes a naive scan would take
for a second frame), a lossless WEBP, and a PDF with a correct cross-reference table.
"""

from __future__ import annotations

import random
import struct
import zlib

__all__ = [
    "animated_gif",
    "gif_with_decoy_bytes",
    "jpeg",
    "pdf",
    "png",
    "png_image",
    "static_gif",
    "truncated_gif",
    "webp",
]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_image(width: int, height: int, colour_type: int, raw: bytes) -> bytes:
    """An 8-bit PNG of ``colour_type`` (0 greyscale, 2 RGB) whose scanlines (each led by its
    filter byte) are ``raw``."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def png(width: int = 1, height: int = 1) -> bytes:
    """A greyscale 8-bit PNG of the given size, filled with (seeded, incompressible) noise."""
    noise = random.Random(width * 65536 + height)
    raw = b"".join(b"\x00" + noise.randbytes(width) for _ in range(height))  # filter + pixels
    return png_image(width, height, 0, raw)


def jpeg() -> bytes:
    """A 1x1 baseline greyscale JPEG (one DC and one AC Huffman code, both of length 1)."""
    soi, eoi = b"\xff\xd8", b"\xff\xd9"
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 1, 1, 1) + b"\x01\x11\x00"
    counts = b"\x01" + b"\x00" * 15  # one code of length 1
    dht_dc = b"\xff\xc4" + struct.pack(">H", 20) + b"\x00" + counts + b"\x00"  # DC: category 0
    dht_ac = b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + counts + b"\x00"  # AC: EOB
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x00\x3f\x00"
    scan = b"\x3f"  # DC code '0', EOB code '0', padded with ones
    return soi + app0 + dqt + sof0 + dht_dc + dht_ac + sos + scan + eoi


_GIF_SCREEN = (
    struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
)  # 2-colour table
_GIF_FRAME = (
    b"\x21\xf9\x04\x04\x0a\x00\x00\x00"  # graphic control extension: 0.1 s delay
    + b"\x2c"
    + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
    + b"\x02\x02\x44\x01\x00"  # LZW minimum code size 2, one sub-block, terminator
)
_NETSCAPE_LOOP = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"


def static_gif(version: bytes = b"89a") -> bytes:
    """A one-frame 1x1 GIF."""
    return b"GIF" + version + _GIF_SCREEN + _GIF_FRAME + b"\x3b"


def animated_gif(frames: int = 2) -> bytes:
    """A looping 1x1 GIF with `frames` frames."""
    return b"GIF89a" + _GIF_SCREEN + _NETSCAPE_LOOP + _GIF_FRAME * frames + b"\x3b"


def gif_with_decoy_bytes() -> bytes:
    """A one-frame GIF whose comment holds graphic-control and image-descriptor bytes.

    A byte search for `21 F9 04` or `00 2C` counts extra frames here; a block parser does not.
    """
    decoy = b"\x00\x21\xf9\x04\x00\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"
    comment = b"\x21\xfe" + bytes([len(decoy)]) + decoy + b"\x00"
    return b"GIF89a" + _GIF_SCREEN + comment + _NETSCAPE_LOOP + _GIF_FRAME + b"\x3b"


def truncated_gif() -> bytes:
    """A GIF cut off in the middle of its only frame's image data."""
    return static_gif()[:-4]


def webp() -> bytes:
    """A 1x1 lossless (VP8L) WEBP."""
    vp8l = b"\x2f\x00\x00\x00\x00\x07\x10\x11\x11\x88\x88\xfe\x07\x00"  # 14-byte 1x1 bitstream
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    body = b"WEBP" + chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf(
    text: str = "hello",
    *,
    font_size: int = 12,
    at: tuple[int, int] = (10, 10),
    page: tuple[int, int] = (100, 100),
) -> bytes:
    """A one-page PDF 1.4 (``page`` points wide and high) showing ``text`` in Helvetica of
    ``font_size`` at ``at``, with a correct xref table."""
    stream = f"BT /F1 {font_size} Tf {at[0]} {at[1]} Td ({text}) Tj ET".encode()
    media_box = f"[0 0 {page[0]} {page[1]}]".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + media_box + b" /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)
