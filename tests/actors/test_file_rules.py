"""File rules: content sniffing, API limits per purpose, reading under roots, deduplication."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import attrs
import pytest

from streamvisor import _samples as samples
from streamvisor.actors._errors import ActorsLayerError
from streamvisor.actors.files import _sniff as _file_sniff
from streamvisor.actors.files._dedup import DedupIndex, content_digest
from streamvisor.actors.files._errors import (
    AnimatedGifNotAllowed,
    EmptyFile,
    FileAccessError,
    FileInputError,
    FileRejected,
    FileTooLarge,
    MalformedFile,
    UnknownPurpose,
    UnsupportedFileType,
)
from streamvisor.actors.files._roots import ReadableRoots, load_file
from streamvisor.actors.files._rules import DEFAULT_RULES, MIB, FileRules, Purpose, check_content
from streamvisor.actors.files._sniff import (
    DOCUMENT_TYPES,
    IMAGE_TYPES,
    JSONL_TYPES,
    SniffResult,
    count_gif_frames,
    sniff,
)


def _zip(**members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in members.items():
            archive.writestr(name.replace("__", "/"), text)
    return buffer.getvalue()


DOCX = _zip(**{"[Content_Types].xml": "<Types/>", "word__document.xml": "<w:document/>"})
XLSX = _zip(**{"[Content_Types].xml": "<Types/>", "xl__workbook.xml": "<workbook/>"})
JSONL = b'{"custom_id": "r1", "method": "POST"}\n{"custom_id": "r2", "method": "POST"}\n'
TEXT = "Grüße, plain text\nwith two lines\n".encode()


class TestSniff:
    """`sniff` decides the type from the bytes alone."""

    @pytest.mark.parametrize(
        ("data", "mime_type", "extension", "source"),
        [
            pytest.param(samples.png(), "image/png", ".png", "signature", id="png"),
            pytest.param(samples.jpeg(), "image/jpeg", ".jpg", "signature", id="jpeg"),
            pytest.param(samples.static_gif(), "image/gif", ".gif", "signature", id="gif89a"),
            pytest.param(samples.static_gif(b"87a"), "image/gif", ".gif", "signature", id="gif87a"),
            pytest.param(samples.webp(), "image/webp", ".webp", "signature", id="webp"),
            pytest.param(samples.pdf(), "application/pdf", ".pdf", "signature", id="pdf"),
            pytest.param(DOCX, _file_sniff._DOCX, ".docx", "signature", id="docx"),
            pytest.param(XLSX, _file_sniff._XLSX, ".xlsx", "signature", id="xlsx"),
            pytest.param(JSONL, "application/jsonl", ".jsonl", "text", id="jsonl"),
            pytest.param(
                b'{"a": 1}\r\n\r\n{"b": 2}\r\n', "application/jsonl", ".jsonl", "text", id="crlf"
            ),
            pytest.param(
                '{"s": "a\u2028b"}\n{"t": 1}\n'.encode(),
                "application/jsonl",
                ".jsonl",
                "text",
                id="u2028-inside-a-string",
            ),
            pytest.param(
                b'{"one": 1}', "application/jsonl", ".jsonl", "text", id="one-line-object"
            ),
            pytest.param(b"[1, 2,\n 3]\n", "application/json", ".json", "text", id="json-array"),
            pytest.param(
                b'{\n "a": 1\n}\n', "application/json", ".json", "text", id="json-multiline"
            ),
            pytest.param(TEXT, "text/plain", ".txt", "text", id="utf8-text"),
            pytest.param(
                b"BM is not a bitmap\n", "text/plain", ".txt", "text", id="weak-magic-text"
            ),
            pytest.param(b"import os\nprint(os.sep)\n", "text/plain", ".txt", "text", id="python"),
            pytest.param(
                b"From: a@b.c\nSubject: hi\n\nbody\n", "text/plain", ".txt", "text", id="mail"
            ),
            pytest.param(b"a,b,c\n1,2,3\n", "text/plain", ".txt", "text", id="csv"),
            pytest.param(b"# Title\n\n* item\n", "text/plain", ".txt", "text", id="markdown"),
            pytest.param(
                b'<svg xmlns="http://www.w3.org/2000/svg"></svg>',
                "image/svg+xml",
                ".svg",
                "puremagic",
                id="svg",
            ),
            pytest.param(
                b"<!DOCTYPE html><html><body>hi</body></html>",
                "text/html",
                ".html",
                "puremagic",
                id="html",
            ),
            pytest.param(
                b"\x00\x01\x02\x03garbage", "application/octet-stream", "", "fallback", id="binary"
            ),
            pytest.param(b"", "application/octet-stream", "", "fallback", id="empty"),
        ],
    )
    def test_sniff_names_the_type_from_content(
        self, data: bytes, mime_type: str, extension: str, source: str
    ) -> None:
        """Each format is recognised by its bytes, with the decision's source."""
        found = sniff(data)
        assert (found.mime_type, found.extension, found.source) == (mime_type, extension, source)

    def test_a_zip_that_is_not_office_is_a_zip(self) -> None:
        """A plain ZIP is not mistaken for a docx (puremagic alone would say it is one)."""
        assert sniff(_zip(readme="hello")).mime_type == "application/zip"

    def test_a_png_signature_without_ihdr_is_not_trusted_as_png(self) -> None:
        """The PNG check is the full signature plus the IHDR chunk, not a prefix."""
        assert sniff(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).source != "signature"

    def test_sniff_results_are_frozen_and_validated(self) -> None:
        """A SniffResult cannot be changed, and its confidence stays within 0..1."""
        found = sniff(samples.png())
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            found.mime_type = "image/gif"  # type: ignore[misc]
        with pytest.raises(ValueError, match="confidence"):
            SniffResult("image/png", ".png", "signature", 1.5)


class TestGifFrames:
    """`count_gif_frames` walks the GIF block structure."""

    @pytest.mark.parametrize(
        ("data", "frames"),
        [
            pytest.param(samples.static_gif(), 1, id="static"),
            pytest.param(samples.static_gif(b"87a"), 1, id="gif87a"),
            pytest.param(samples.animated_gif(2), 2, id="two-frames"),
            pytest.param(samples.animated_gif(5), 5, id="five-frames"),
            pytest.param(samples.gif_with_decoy_bytes(), 1, id="decoy-comment"),
        ],
    )
    def test_frames_are_counted_by_image_descriptors(self, data: bytes, frames: int) -> None:
        """Each image descriptor is one frame; extensions and data sub-blocks are skipped."""
        assert count_gif_frames(data) == frames

    def test_bytes_inside_a_comment_are_not_frames(self) -> None:
        """The decoy GIF holds the marker bytes a byte search would count, yet has one frame."""
        data = samples.gif_with_decoy_bytes()
        assert data.count(b"\x21\xf9\x04") == 2
        assert data.count(b"\x00\x2c") >= 2
        assert count_gif_frames(data) == 1

    def test_counting_stops_early_when_asked(self) -> None:
        """With stop_after, counting ends once that many frames were seen."""
        assert count_gif_frames(samples.animated_gif(5), stop_after=2) == 2

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            pytest.param(samples.png(), "no GIF87a/GIF89a header", id="not-gif"),
            pytest.param(b"GIF89a\x01\x00", "truncated logical screen", id="short-header"),
            pytest.param(samples.truncated_gif(), "truncated data sub-blocks", id="truncated"),
            pytest.param(samples.static_gif()[:-1], "missing trailer", id="no-trailer"),
            pytest.param(
                samples.static_gif()[:-1] + b"\x99\x3b",
                "unexpected block introducer 0x99",
                id="junk",
            ),
        ],
    )
    def test_broken_structure_is_a_value_error_saying_where(
        self, data: bytes, message: str
    ) -> None:
        """A corrupt or truncated GIF is reported, not guessed at."""
        with pytest.raises(ValueError, match=message):
            count_gif_frames(data)


class TestFileRules:
    """`FileRules` carries the API's limits and allow-lists, and can be tightened."""

    def test_defaults_are_the_published_limits(self) -> None:
        """512 MB files, 20 MB images, 200 MB batch files, 500 images and 50 MB per request."""
        rules = FileRules()
        assert rules.max_file_bytes == 512 * MIB
        assert rules.max_image_bytes == 20 * MIB
        assert rules.max_batch_bytes == 200 * MIB
        assert rules.max_images_per_request == 500
        assert rules.max_request_image_bytes == 50 * MIB

    @pytest.mark.parametrize(
        ("purpose", "limit"),
        [
            (Purpose.VISION, 20 * MIB),
            (Purpose.BATCH, 200 * MIB),
            (Purpose.USER_DATA, 512 * MIB),
            (Purpose.FINE_TUNE, 512 * MIB),
        ],
    )
    def test_size_limit_depends_on_the_purpose(self, purpose: Purpose, limit: int) -> None:
        """Vision and batch have tighter limits than the general one."""
        assert DEFAULT_RULES.size_limit(purpose) == limit

    def test_default_allow_lists(self) -> None:
        """Vision takes images, batch/fine-tune/evals JSONL, user_data documents and images."""
        allowed = DEFAULT_RULES.allowed_types
        assert allowed[Purpose.VISION] == IMAGE_TYPES
        assert allowed[Purpose.BATCH] == allowed[Purpose.FINE_TUNE] == JSONL_TYPES
        assert allowed[Purpose.EVALS] == JSONL_TYPES
        assert allowed[Purpose.USER_DATA] == DOCUMENT_TYPES | IMAGE_TYPES
        assert "application/pdf" in allowed[Purpose.ASSISTANTS]

    def test_overriding_one_purpose_keeps_the_others(self) -> None:
        """allowed_types replaces only the purposes it names."""
        rules = FileRules(allowed_types={"user_data": frozenset({"application/pdf"})})
        assert rules.allowed_types[Purpose.USER_DATA] == frozenset({"application/pdf"})
        assert rules.allowed_types[Purpose.VISION] == IMAGE_TYPES

    def test_rules_are_immutable_and_hashable(self) -> None:
        """The allow-lists cannot be changed behind the frozen record's back."""
        rules = FileRules()
        with pytest.raises(TypeError):
            rules.allowed_types[Purpose.VISION] = frozenset()  # type: ignore[index]
        assert hash(rules) == hash(FileRules())
        assert rules == DEFAULT_RULES

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_file_bytes": 0},
            {"max_image_bytes": -1},
            {"max_images_per_request": 0},
            {"allowed_types": {"pictures": frozenset()}},
        ],
    )
    def test_bad_rules_are_rejected_at_construction(self, kwargs: dict[str, object]) -> None:
        """Non-positive limits and unknown purposes fail when the rules are built."""
        with pytest.raises(ValueError):
            FileRules(**kwargs)  # type: ignore[arg-type]


SMALL = FileRules(max_file_bytes=4096, max_image_bytes=1024, max_batch_bytes=2048)


class TestCheckContent:
    """`check_content` applies the rules of a purpose to bytes."""

    @pytest.mark.parametrize(
        ("data", "purpose", "mime_type"),
        [
            pytest.param(samples.png(), "vision", "image/png", id="png-vision"),
            pytest.param(samples.jpeg(), "vision", "image/jpeg", id="jpeg-vision"),
            pytest.param(samples.webp(), "vision", "image/webp", id="webp-vision"),
            pytest.param(samples.static_gif(), "vision", "image/gif", id="static-gif-vision"),
            pytest.param(samples.gif_with_decoy_bytes(), "vision", "image/gif", id="decoy-gif"),
            pytest.param(JSONL, "batch", "application/jsonl", id="jsonl-batch"),
            pytest.param(JSONL, "fine-tune", "application/jsonl", id="jsonl-fine-tune"),
            pytest.param(JSONL, "evals", "application/jsonl", id="jsonl-evals"),
            pytest.param(samples.pdf(), "user_data", "application/pdf", id="pdf-user-data"),
            pytest.param(TEXT, "user_data", "text/plain", id="text-user-data"),
            pytest.param(samples.png(), "user_data", "image/png", id="png-user-data"),
            pytest.param(DOCX, "assistants", _file_sniff._DOCX, id="docx-assistants"),
        ],
    )
    def test_acceptable_content_passes(self, data: bytes, purpose: str, mime_type: str) -> None:
        """Allowed types within the limits are accepted and their sniffed type returned."""
        assert check_content(data, purpose, rules=SMALL).mime_type == mime_type

    @pytest.mark.parametrize(
        ("data", "purpose", "mime_type"),
        [
            pytest.param(samples.pdf(), "vision", "application/pdf", id="pdf-vision"),
            pytest.param(b"[1, 2]", "batch", "application/json", id="json-array-batch"),
            pytest.param(TEXT, "fine-tune", "text/plain", id="text-fine-tune"),
            pytest.param(samples.png(), "batch", "image/png", id="png-batch"),
            pytest.param(b"\x00\x01binary", "user_data", "application/octet-stream", id="binary"),
            pytest.param(
                b'<svg xmlns="http://www.w3.org/2000/svg"/>', "vision", "image/svg+xml", id="svg"
            ),
        ],
    )
    def test_disallowed_types_name_the_file_type_and_purpose(
        self, data: bytes, purpose: str, mime_type: str
    ) -> None:
        """UnsupportedFileType names the file, its type, the purpose and what is allowed."""
        with pytest.raises(UnsupportedFileType) as info:
            check_content(data, purpose, rules=SMALL, path="in.bin")
        err = info.value
        assert (err.path, err.mime_type, err.purpose, err.rule) == (
            "in.bin",
            mime_type,
            purpose,
            "allowed_types",
        )
        assert err.allowed == tuple(sorted(SMALL.allowed_types[Purpose(purpose)]))
        assert str(err).startswith(f"in.bin: content is {mime_type}, which {purpose!r}")
        assert isinstance(err, ValueError)

    @pytest.mark.parametrize("purpose", ["vision", "user_data", "assistants"])
    def test_animated_gifs_are_rejected_for_every_purpose(self, purpose: str) -> None:
        """An animated GIF is refused wherever images are allowed."""
        with pytest.raises(AnimatedGifNotAllowed) as info:
            check_content(samples.animated_gif(3), purpose, path="cat.gif")
        assert info.value.path == "cat.gif"
        assert info.value.rule == "non_animated_gif"
        assert "cat.gif: is an animated GIF" in str(info.value)

    def test_a_corrupt_gif_is_malformed(self) -> None:
        """A GIF whose structure breaks off is MalformedFile, with the reason."""
        with pytest.raises(MalformedFile, match=r"bad\.gif: is a malformed image/gif: truncated"):
            check_content(samples.truncated_gif(), "vision", path="bad.gif")

    def test_a_gif_without_frames_is_malformed(self) -> None:
        """A header, a screen and a trailer make no image."""
        empty_gif = samples.static_gif()[:19] + b"\x3b"
        with pytest.raises(MalformedFile, match="no image frames"):
            check_content(empty_gif, "vision", path="none.gif")

    def test_empty_content_is_rejected(self) -> None:
        """No bytes, no upload."""
        with pytest.raises(EmptyFile, match=r"^e\.txt: is empty$") as info:
            check_content(b"", "user_data", path="e.txt")
        assert info.value.rule == "non_empty"

    @pytest.mark.parametrize(
        ("data", "purpose", "limit"),
        [
            pytest.param(samples.png(40, 40), "vision", 1024, id="image-limit"),
            pytest.param(samples.png(40, 40), "user_data", 1024, id="image-limit-any-purpose"),
            pytest.param(JSONL * 30, "batch", 2048, id="batch-limit"),
            pytest.param(samples.pdf("x" * 5000), "user_data", 4096, id="file-limit"),
        ],
    )
    def test_oversized_content_names_size_limit_and_purpose(
        self, data: bytes, purpose: str, limit: int
    ) -> None:
        """FileTooLarge carries the size, the limit broken and the purpose."""
        with pytest.raises(FileTooLarge) as info:
            check_content(data, purpose, rules=SMALL, path="big")
        err = info.value
        assert (err.size, err.limit, err.purpose, err.rule) == (
            len(data),
            limit,
            purpose,
            "max_bytes",
        )
        assert str(err) == (
            f"big: is {len(data)} bytes, over the {limit} bytes limit for purpose {purpose!r}"
        )

    def test_unknown_purpose_is_rejected(self) -> None:
        """Only the six upload purposes exist."""
        with pytest.raises(UnknownPurpose, match=r"a\.png: unknown purpose 'pictures'") as info:
            check_content(samples.png(), "pictures", path="a.png")
        assert "vision" in info.value.allowed


class TestLoadFile:
    """`load_file` reads under the roots and checks the content for the purpose."""

    def test_a_good_file_is_loaded_with_its_sniffed_type_and_digest(self, tmp_path: Path) -> None:
        """Everything the FileActor needs to upload comes back in one record."""
        (tmp_path / "d.png").write_bytes(samples.png())
        loaded = load_file(tmp_path / "d.png", "vision", roots=ReadableRoots([tmp_path]))
        assert loaded.filename == "d.png"
        assert loaded.real_path == tmp_path / "d.png"
        assert loaded.data == samples.png()
        assert loaded.purpose is Purpose.VISION
        assert loaded.sniffed.mime_type == "image/png"
        assert loaded.digest == hashlib.sha256(samples.png()).hexdigest()

    def test_the_name_never_decides_the_type(self, tmp_path: Path) -> None:
        """x.png holding PDF bytes is a PDF: accepted as user_data, refused for vision."""
        (tmp_path / "x.png").write_bytes(samples.pdf())
        roots = ReadableRoots([tmp_path])
        assert load_file(tmp_path / "x.png", "user_data", roots=roots).sniffed.mime_type == (
            "application/pdf"
        )
        with pytest.raises(UnsupportedFileType) as info:
            load_file(tmp_path / "x.png", "vision", roots=roots)
        assert info.value.mime_type == "application/pdf"
        assert info.value.path == str(tmp_path / "x.png")

    def test_the_size_error_carries_the_purpose(self, tmp_path: Path) -> None:
        """A file over the purpose's limit is refused while reading, purpose named."""
        (tmp_path / "big.png").write_bytes(samples.png(40, 40))
        with pytest.raises(FileTooLarge, match="limit for purpose 'vision'") as info:
            load_file(tmp_path / "big.png", "vision", roots=ReadableRoots([tmp_path]), rules=SMALL)
        assert (info.value.limit, info.value.purpose) == (1024, "vision")

    def test_an_empty_file_is_rejected(self, tmp_path: Path) -> None:
        """Zero bytes on disk is EmptyFile."""
        (tmp_path / "e.jsonl").write_bytes(b"")
        with pytest.raises(EmptyFile, match=r"e\.jsonl: is empty"):
            load_file(tmp_path / "e.jsonl", "batch", roots=ReadableRoots([tmp_path]))

    def test_a_bad_purpose_fails_before_any_read(self, tmp_path: Path) -> None:
        """UnknownPurpose names the path even when the file does not exist."""
        with pytest.raises(UnknownPurpose, match="ghost: unknown purpose"):
            load_file(tmp_path / "ghost", "bogus", roots=ReadableRoots([tmp_path]))

    def test_every_error_is_a_file_input_error_of_the_layer(self) -> None:
        """Access errors are OSErrors, content errors ValueErrors, all under one root."""
        assert issubclass(FileAccessError, OSError)
        assert issubclass(FileRejected, ValueError)
        for cls in (FileAccessError, FileRejected):
            assert issubclass(cls, FileInputError)
            assert issubclass(cls, ActorsLayerError)


class TestDedup:
    """Identical bytes for the same purpose map to one file id."""

    def test_content_digest_is_sha256_hex(self) -> None:
        """The digest is the standard SHA-256 of the bytes."""
        assert content_digest(b"abc") == (
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )

    def test_a_recorded_upload_is_found_again(self) -> None:
        """add then get returns the file id."""
        index = DedupIndex()
        index.add("d1", "vision", "file-1")
        assert index.get("d1", Purpose.VISION) == "file-1"
        assert "file-1" in index
        assert len(index) == 1

    def test_the_purpose_is_part_of_the_key(self) -> None:
        """The same bytes for another purpose are another file."""
        index = DedupIndex()
        index.add("d1", "vision", "file-1")
        assert index.get("d1", "user_data") is None

    def test_deleting_a_file_evicts_all_its_entries(self) -> None:
        """evict forgets every key of the file and reports whether there were any."""
        index = DedupIndex()
        index.add("d1", "vision", "file-1")
        index.add("d1", "user_data", "file-1")
        index.add("d2", "vision", "file-2")
        assert index.evict("file-1") is True
        assert index.get("d1", "vision") is None
        assert index.get("d1", "user_data") is None
        assert index.get("d2", "vision") == "file-2"
        assert index.evict("file-1") is False
        assert len(index) == 1

    def test_a_newer_upload_replaces_the_older_entry(self) -> None:
        """Evicting the replaced id leaves the new mapping intact."""
        index = DedupIndex()
        index.add("d1", "vision", "file-old")
        index.add("d1", "vision", "file-new")
        assert "file-old" not in index
        assert index.evict("file-old") is False
        assert index.get("d1", "vision") == "file-new"

    def test_an_unknown_purpose_is_rejected(self) -> None:
        """Keys use real purposes only."""
        with pytest.raises(UnknownPurpose):
            DedupIndex().get("d1", "pictures")
