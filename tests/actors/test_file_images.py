"""Image structure, checked by Pillow: whole, still, and of a decodable size."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from streamvisor import _samples as samples
from streamvisor.actors.files._errors import (
    AnimatedGifNotAllowed,
    AnimatedImageNotAllowed,
    FileRejected,
    MalformedFile,
    TooManyPixels,
)
from streamvisor.actors.files._inputs import image_input
from streamvisor.actors.files._roots import ReadableRoots, load_file
from streamvisor.actors.files._rules import FileRules, check_content


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` greyscale pixels, with 10 bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + _chunk(b"IEND", b"")
    )


def _idat_at(png: bytes) -> tuple[int, int]:
    """Where the IDAT chunk's data starts, and its length."""
    at = png.index(b"IDAT")
    return at + 4, struct.unpack(">I", png[at - 4 : at])[0]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (2, 2), colour) for colour in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], lossless=True)
    return out.getvalue()


PNG = samples.png(40, 40)
JPEG = samples.jpeg()
_SOF = JPEG.index(b"\xff\xc0")
IDAT, IDAT_LEN = _idat_at(PNG)


class TestSamples:
    """The hand-built samples the demos and tests use are real, decodable images."""

    @pytest.mark.parametrize(
        ("data", "mime"),
        [
            pytest.param(samples.png(), "image/png", id="png-1x1"),
            pytest.param(PNG, "image/png", id="png-40x40"),
            pytest.param(JPEG, "image/jpeg", id="jpeg"),
            pytest.param(samples.static_gif(), "image/gif", id="gif89a"),
            pytest.param(samples.static_gif(b"87a"), "image/gif", id="gif87a"),
            pytest.param(samples.gif_with_decoy_bytes(), "image/gif", id="gif-decoy"),
            pytest.param(samples.webp(), "image/webp", id="webp"),
        ],
    )
    def test_a_sample_image_passes_every_check(self, data: bytes, mime: str) -> None:
        """Sniffed as its type, and accepted for vision by the structural checks."""
        assert check_content(data, "vision").mime_type == mime
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size[0] >= 1


BROKEN = [
    pytest.param(PNG[: IDAT + IDAT_LEN // 2], "PNG", id="png-cut-in-idat"),
    pytest.param(PNG[:-12], "PNG", id="png-cut-before-iend"),
    pytest.param(_flip(PNG, IDAT + IDAT_LEN), "PNG", id="png-bad-idat-crc"),
    pytest.param(_flip(PNG, IDAT + 5), "PNG", id="png-corrupt-idat"),
    pytest.param(_flip(PNG, 29), "PNG", id="png-bad-ihdr-crc"),
    pytest.param(JPEG[:-2], "JPEG", id="jpeg-without-end-marker"),
    pytest.param(JPEG[: len(JPEG) // 2], "JPEG", id="jpeg-cut-in-half"),
    pytest.param(JPEG[: _SOF + 4] + b"\0" * 7 + JPEG[_SOF + 11 :], "JPEG", id="jpeg-garbage-frame"),
    pytest.param(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2, "JPEG", id="jpeg-garbage-body"),
    pytest.param(samples.webp()[:-4], "WEBP", id="webp-cut"),
    pytest.param(samples.truncated_gif(), "GIF", id="gif-cut"),
]


class TestBrokenImages:
    """A truncated or corrupt image is refused with MalformedFile, a FileRejected."""

    @pytest.mark.parametrize(("data", "fmt"), BROKEN)
    def test_a_broken_image_is_malformed(self, data: bytes, fmt: str) -> None:
        """Whatever is wrong with it, the error names the type and the file."""
        with pytest.raises(MalformedFile, match=r"^x: is a malformed image/") as info:
            check_content(data, "vision", path="x")
        assert isinstance(info.value, FileRejected)
        assert info.value.rule == "well_formed"
        assert info.value.mime_type == f"image/{fmt.lower()}"

    @pytest.mark.parametrize(
        ("data", "caught_by"),
        [
            pytest.param(JPEG[:-2], "load", id="jpeg-without-end-marker"),
            pytest.param(PNG[:-12], "verify", id="png-cut-before-iend"),
            pytest.param(_flip(PNG, IDAT + IDAT_LEN), "verify", id="png-bad-idat-crc"),
        ],
    )
    def test_verify_and_load_each_catch_what_the_other_misses(
        self, data: bytes, caught_by: str
    ) -> None:
        """Why both run: Pillow's verify() passes a JPEG cut before its end marker, and load()
        decodes a PNG with a bad CRC or cut before IEND; the check refuses all of them."""
        other = "verify" if caught_by == "load" else "load"
        with Image.open(io.BytesIO(data)) as image:
            getattr(image, other)()  # passes: this check alone would let it through
        with pytest.raises(MalformedFile):
            check_content(data, "vision")

    def test_a_truncated_png_on_disk_is_refused_by_load_file(self, tmp_path: Path) -> None:
        """The file actor's path: read under the roots, then checked."""
        (tmp_path / "cut.png").write_bytes(PNG[:-12])
        with pytest.raises(MalformedFile, match=r"cut\.png: is a malformed image/png"):
            load_file(tmp_path / "cut.png", "vision", roots=ReadableRoots([tmp_path]))

    def test_a_truncated_png_inline_is_refused(self) -> None:
        """The inline path: an input_image part from bytes."""
        with pytest.raises(MalformedFile):
            image_input(data=PNG[: IDAT + 8], name="inline.png")

    def test_a_broken_png_is_refused_for_any_purpose(self) -> None:
        """A user_data upload of a broken PNG is refused too: images of any purpose are checked."""
        with pytest.raises(MalformedFile):
            check_content(PNG[:-12], "user_data")


class TestAnimation:
    """Animated images are refused, whatever their format."""

    @pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("WEBP", "image/webp")])
    def test_an_animated_png_or_webp_is_refused(self, fmt: str, mime: str) -> None:
        """APNG and animated WEBP: AnimatedImageNotAllowed, with the frame count."""
        data = _animated(fmt)
        with pytest.raises(AnimatedImageNotAllowed, match="only still images") as info:
            check_content(data, "vision", path="anim")
        assert not isinstance(info.value, AnimatedGifNotAllowed)
        assert (info.value.mime_type, info.value.frames, info.value.rule) == (
            mime,
            3,
            "non_animated",
        )

    def test_an_animated_gif_keeps_its_own_error(self) -> None:
        """The GIF rule is the API's own: its leaf stays, under AnimatedImageNotAllowed."""
        with pytest.raises(AnimatedGifNotAllowed) as info:
            check_content(samples.animated_gif(3), "vision")
        assert isinstance(info.value, AnimatedImageNotAllowed)
        assert (info.value.mime_type, info.value.rule) == ("image/gif", "non_animated_gif")

    def test_a_single_frame_apng_is_still(self) -> None:
        """One frame saved as APNG is not an animation."""
        out = io.BytesIO()
        Image.new("RGB", (2, 2)).save(out, "PNG", save_all=True)
        check_content(out.getvalue(), "vision")


class TestPixels:
    """Images claiming more pixels than may be decoded are refused before decoding."""

    def test_an_image_over_the_rule_is_refused_before_decoding(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """width x height over max_image_pixels: TooManyPixels with the count; nothing decoded."""
        loaded: list[object] = []
        real_load: Callable[[Image.Image], object] = Image.Image.load
        monkeypatch.setattr(
            Image.Image, "load", lambda self: loaded.append(self) or real_load(self)
        )
        with pytest.raises(TooManyPixels, match="1600 pixels, over the limit of 100") as info:
            check_content(PNG, "vision", rules=FileRules(max_image_pixels=100))
        assert (info.value.pixels, info.value.limit, info.value.rule) == (
            1600,
            100,
            "max_image_pixels",
        )
        assert isinstance(info.value, FileRejected)
        assert loaded == []

    @pytest.mark.parametrize(
        ("width", "height"),
        [
            pytest.param(10_000, 10_000, id="over-the-rule"),
            pytest.param(30_000, 30_000, id="over-pillows-bomb-limit"),
        ],
    )
    def test_a_decompression_bomb_is_a_typed_error(self, width: int, height: int) -> None:
        """A tiny PNG claiming 100 or 900 million pixels is TooManyPixels, never decoded."""
        data = _png_claiming(width, height)
        assert len(data) < 100
        with pytest.raises(TooManyPixels):
            check_content(data, "vision")

    def test_the_limit_is_a_validated_rule(self) -> None:
        """max_image_pixels must be positive."""
        with pytest.raises(ValueError, match="max_image_pixels"):
            FileRules(max_image_pixels=0)
