"""Image and file input parts: the Responses and Chat shapes, data URLs, request limits."""

from __future__ import annotations

import base64
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionContentPartImageParam
from openai.types.chat.chat_completion_content_part_param import File as ChatFileParam
from openai.types.responses import ResponseInputFile, ResponseInputImage

from streamvisor import _samples as samples
from streamvisor.actors.files._errors import (
    AnimatedGifNotAllowed,
    AssistantsShapeNotAllowed,
    EmptyFile,
    FileRejected,
    FileTooLarge,
    InvalidDataURL,
    InvalidInputPart,
    MalformedFile,
    RequestLimitExceeded,
    UnsupportedFileType,
)
from streamvisor.actors.files._inputs import (
    InputTotals,
    chat_file_part,
    chat_image_part,
    decode_data_url,
    encode_data_url,
    file_input,
    image_input,
    validate_input,
    validate_inputs,
)
from streamvisor.actors.files._rules import FileRules

PNG = samples.png()
PDF = samples.pdf()
PNG_URL = encode_data_url(PNG, "image/png")
PDF_URL = encode_data_url(PDF, "application/pdf")
SMALL = FileRules(max_image_bytes=1024, max_images_per_request=3, max_request_image_bytes=2000)


class TestDataURLs:
    """`encode_data_url` / `decode_data_url` are exact inverses and strict about input."""

    @given(
        data=st.binary(max_size=512),
        mime_type=st.from_regex(r"\A[a-z]{1,10}/[a-z0-9.+-]{1,20}\Z"),
    )
    def test_decoding_an_encoded_url_gives_back_type_and_bytes(
        self, data: bytes, mime_type: str
    ) -> None:
        """Any bytes and MIME type survive the round trip unchanged."""
        url = encode_data_url(data, mime_type)
        assert url.startswith(f"data:{mime_type};base64,")
        assert decode_data_url(url) == (mime_type, data)

    @given(data=st.binary(min_size=1, max_size=256))
    def test_a_payload_with_a_non_base64_character_is_refused(self, data: bytes) -> None:
        """Appending a non-base64 character is always refused."""
        with pytest.raises(InvalidDataURL):
            decode_data_url(encode_data_url(data, "image/png") + "*")

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            pytest.param("https://x/y.png", "not a data: URL", id="not-data"),
            pytest.param("data:image/png;base64", "no ','", id="no-comma"),
            pytest.param("data:;base64,AAAA", "has no MIME type", id="no-mime"),
            pytest.param("data:image/png,AAAA", "is not ';base64'", id="not-base64"),
            pytest.param("data:image/png;base64,AA A=", "not valid base64", id="space"),
            pytest.param("data:image/png;base64,AAA", "not valid base64", id="bad-padding"),
            pytest.param("data:image/png;base64,A-_A", "not valid base64", id="urlsafe"),
        ],
    )
    def test_malformed_urls_are_invalid(self, url: str, message: str) -> None:
        """Each defect is named, with the part it concerns."""
        with pytest.raises(InvalidDataURL, match=message) as info:
            decode_data_url(url, path="parts[2]")
        assert info.value.path == "parts[2]"
        assert info.value.rule == "data_url"
        assert str(info.value).startswith("parts[2]: ")


class TestImageInput:
    """`image_input` builds Responses `input_image` parts."""

    def test_a_file_id_becomes_an_input_image_with_detail(self) -> None:
        """The uploaded-file form, as the SDK's model parses it."""
        part = image_input(file_id="file-abc", detail="high")
        assert part == {"type": "input_image", "file_id": "file-abc", "detail": "high"}
        assert ResponseInputImage.model_validate(part).file_id == "file-abc"

    @pytest.mark.parametrize(
        ("data", "mime_type"),
        [
            (samples.png(), "image/png"),
            (samples.jpeg(), "image/jpeg"),
            (samples.webp(), "image/webp"),
            (samples.static_gif(), "image/gif"),
        ],
    )
    def test_bytes_become_a_data_url_typed_by_content(self, data: bytes, mime_type: str) -> None:
        """The data URL's MIME type is the sniffed one."""
        part = image_input(data=data)
        assert part == {
            "type": "input_image",
            "image_url": encode_data_url(data, mime_type),
            "detail": "auto",
        }
        assert ResponseInputImage.model_validate(part).detail == "auto"

    def test_original_detail_is_accepted(self) -> None:
        """`original` is a Responses detail value."""
        assert image_input(file_id="file-1", detail="original")["detail"] == "original"

    def test_a_declared_mime_type_the_bytes_contradict_is_refused(self) -> None:
        """Declaring image/png for JPEG bytes is an error, not a relabel."""
        with pytest.raises(InvalidDataURL, match="declared image/png but the bytes are image/jpeg"):
            image_input(data=samples.jpeg(), mime_type="image/png", name="photo")

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            pytest.param(
                {"data": PDF}, UnsupportedFileType, "content is application/pdf", id="pdf"
            ),
            pytest.param(
                {"data": samples.animated_gif()}, AnimatedGifNotAllowed, "animated GIF", id="anim"
            ),
            pytest.param({"data": samples.truncated_gif()}, MalformedFile, "malformed", id="trunc"),
            pytest.param({"data": b""}, EmptyFile, "is empty", id="empty"),
            pytest.param(
                {"data": samples.png(40, 40)}, FileTooLarge, "limit for an inline input", id="big"
            ),
            pytest.param(
                {"url": "ftp://host/a.png"},
                InvalidInputPart,
                "https://, http:// or data:",
                id="ftp",
            ),
            pytest.param({"file_id": "file-1", "detail": "max"}, InvalidInputPart, "detail 'max'"),
            pytest.param({"file_id": " "}, InvalidInputPart, "non-empty string", id="blank-id"),
        ],
    )
    def test_bad_images_name_the_image_and_the_rule(
        self, kwargs: dict[str, Any], error: type[FileRejected], message: str
    ) -> None:
        """Each refusal is typed and names the image."""
        with pytest.raises(error, match=message) as info:
            image_input(**kwargs, rules=SMALL, name="diagram")
        assert info.value.path == "diagram"
        assert str(info.value).startswith("diagram: ")

    def test_an_https_url_is_passed_through(self) -> None:
        """Remote URLs are the API's to fetch."""
        part = image_input(url="https://example.com/a.png", detail="low")
        assert part == {
            "type": "input_image",
            "image_url": "https://example.com/a.png",
            "detail": "low",
        }

    def test_a_data_url_is_checked_like_bytes(self) -> None:
        """A data URL whose header lies about its bytes is refused."""
        with pytest.raises(InvalidDataURL, match="declared image/gif"):
            image_input(url=encode_data_url(PNG, "image/gif"))

    @pytest.mark.parametrize(
        "kwargs", [{}, {"file_id": "file-1", "url": "https://x/a.png"}, {"data": PNG, "url": "x"}]
    )
    def test_exactly_one_source_is_required(self, kwargs: dict[str, Any]) -> None:
        """Neither or several sources is a programming error."""
        with pytest.raises(TypeError, match="exactly one of file_id=, data=, url="):
            image_input(**kwargs)


class TestFileInput:
    """`file_input` builds Responses `input_file` parts."""

    def test_a_file_id(self) -> None:
        """The uploaded-file form."""
        part = file_input(file_id="file-9")
        assert part == {"type": "input_file", "file_id": "file-9"}
        assert ResponseInputFile.model_validate(part).file_id == "file-9"

    def test_bytes_become_file_data_with_the_filename(self) -> None:
        """file_data is a data URL typed by content, and carries the filename."""
        part = file_input(data=PDF, filename="report.bin")
        assert part == {"type": "input_file", "filename": "report.bin", "file_data": PDF_URL}
        assert ResponseInputFile.model_validate(part).filename == "report.bin"

    def test_a_file_url(self) -> None:
        """Remote documents are passed by URL."""
        assert file_input(url="https://example.com/r.pdf") == {
            "type": "input_file",
            "file_url": "https://example.com/r.pdf",
        }

    def test_bytes_without_a_filename_are_refused(self) -> None:
        """The API requires filename with file_data."""
        with pytest.raises(TypeError, match="needs filename="):
            file_input(data=PDF)

    def test_an_image_is_not_a_document(self) -> None:
        """Images go through input_image; input_file takes documents."""
        with pytest.raises(UnsupportedFileType, match="'input_file' does not accept") as info:
            file_input(data=PNG, filename="a.png")
        assert info.value.path == "a.png"

    def test_a_non_web_url_is_refused(self) -> None:
        """Only http(s) file URLs."""
        with pytest.raises(InvalidInputPart, match="https:// or http://"):
            file_input(url="file:///etc/passwd")


class TestChatParts:
    """The Chat Completions shapes."""

    def test_image_part_from_bytes(self) -> None:
        """`image_url` holds an object with url and detail."""
        part = chat_image_part(data=PNG, detail="low")
        assert part == {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}}
        pydantic.TypeAdapter(ChatCompletionContentPartImageParam).validate_python(part)

    def test_image_part_from_url(self) -> None:
        """URLs pass through."""
        part = chat_image_part(url="https://e.com/a.jpg")
        assert part["image_url"] == {"url": "https://e.com/a.jpg", "detail": "auto"}

    def test_chat_has_no_original_detail(self) -> None:
        """Chat accepts auto, low and high only."""
        with pytest.raises(InvalidInputPart, match="detail 'original'"):
            chat_image_part(url="https://e.com/a.jpg", detail="original")

    def test_file_part_from_id_and_from_bytes(self) -> None:
        """`file` holds file_id, or file_data with filename."""
        assert chat_file_part(file_id="file-1") == {"type": "file", "file": {"file_id": "file-1"}}
        part = chat_file_part(data=PDF, filename="r.pdf")
        assert part == {"type": "file", "file": {"file_data": PDF_URL, "filename": "r.pdf"}}
        pydantic.TypeAdapter(ChatFileParam).validate_python(part)

    def test_file_part_bytes_need_a_filename(self) -> None:
        """As in Responses."""
        with pytest.raises(TypeError, match="needs filename="):
            chat_file_part(data=PDF)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestValidateInput:
    """`validate_input` checks hand-built parts."""

    @pytest.mark.parametrize(
        "part",
        [
            pytest.param({"type": "input_text", "text": "hi"}, id="text"),
            pytest.param({"type": "input_image", "file_id": "file-1"}, id="image-id-no-detail"),
            pytest.param({"type": "input_image", "image_url": PNG_URL, "detail": "high"}, id="png"),
            pytest.param({"type": "input_image", "image_url": "https://e.com/a.png"}, id="url"),
            pytest.param({"type": "input_file", "file_id": "file-2"}, id="file-id"),
            pytest.param(
                {"type": "input_file", "file_data": PDF_URL, "filename": "a.pdf"}, id="file-data"
            ),
            pytest.param({"type": "input_file", "file_url": "https://e.com/a.pdf"}, id="file-url"),
        ],
    )
    def test_good_responses_parts_pass(self, part: dict[str, Any]) -> None:
        """Valid parts raise nothing."""
        validate_input(part)

    def test_built_parts_validate(self) -> None:
        """Whatever the builders make, the validator accepts."""
        for part in (
            image_input(data=PNG),
            image_input(file_id="file-1", detail="original"),
            file_input(data=PDF, filename="r.pdf"),
        ):
            validate_input(part)
        for part in (chat_image_part(data=PNG), chat_file_part(data=PDF, filename="r.pdf")):
            validate_input(part, api="chat")

    def test_the_assistants_image_file_shape_says_what_to_use(self) -> None:
        """The Erlang original's shape is refused with the Responses replacement spelled out."""
        part = {"type": "image_file", "image_file": {"file_id": "file-xyz"}}
        with pytest.raises(AssistantsShapeNotAllowed) as info:
            validate_input(part, path="parts[0]")
        message = str(info.value)
        assert message.startswith("parts[0]: 'image_file' is the Assistants API shape")
        assert "{'type': 'input_image', 'file_id': 'file-xyz', 'detail': 'auto'}" in message
        assert info.value.rule == "responses_shape"
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize(
        ("part", "error", "message"),
        [
            pytest.param("text", InvalidInputPart, "must be an object, not str", id="not-object"),
            pytest.param({"text": "x"}, InvalidInputPart, "needs a string 'type'", id="no-type"),
            pytest.param(
                {"type": "input_image", "file_id": "f", "image_url": PNG_URL},
                InvalidInputPart,
                "exactly one of 'image_url' and 'file_id'",
                id="both",
            ),
            pytest.param(
                {"type": "input_image", "detail": "auto"},
                InvalidInputPart,
                "exactly one of 'image_url' and 'file_id'",
                id="neither",
            ),
            pytest.param(
                {"type": "input_image", "file_id": "f", "detail": "ultra"},
                InvalidInputPart,
                "detail 'ultra' is not one of auto, high, low, original",
                id="bad-detail",
            ),
            pytest.param(
                {"type": "input_image", "image_url": {"url": PNG_URL}},
                InvalidInputPart,
                "the Chat Completions shape",
                id="chat-url-object",
            ),
            pytest.param(
                {"type": "image_url", "image_url": {"url": PNG_URL}},
                InvalidInputPart,
                "'image_url' is the Chat Completions shape",
                id="chat-part",
            ),
            pytest.param(
                {"type": "input_image", "image_url": "data:image/png;base64,***"},
                InvalidDataURL,
                "not valid base64",
                id="bad-base64",
            ),
            pytest.param(
                {"type": "input_image", "image_url": "data:image/jpeg;base64," + _b64(PNG)},
                InvalidDataURL,
                "declared image/jpeg but the bytes are image/png",
                id="mime-mismatch",
            ),
            pytest.param(
                {
                    "type": "input_image",
                    "image_url": "data:image/jpg;base64," + _b64(samples.jpeg()),
                },
                InvalidDataURL,
                "declared image/jpg but the bytes are image/jpeg",
                id="jpg-is-not-a-mime-type",
            ),
            pytest.param(
                {
                    "type": "input_image",
                    "image_url": encode_data_url(samples.animated_gif(), "image/gif"),
                },
                AnimatedGifNotAllowed,
                "animated GIF",
                id="animated-gif",
            ),
            pytest.param(
                {"type": "input_image", "image_url": encode_data_url(PDF, "application/pdf")},
                UnsupportedFileType,
                "'input_image' does not accept",
                id="pdf-as-image",
            ),
            pytest.param(
                {"type": "input_file", "file_id": "f", "file_url": "https://e.com/a.pdf"},
                InvalidInputPart,
                "exactly one of file_id, file_url, file_data",
                id="file-both",
            ),
            pytest.param(
                {"type": "input_file", "file_data": PDF_URL},
                InvalidInputPart,
                "file_data needs a 'filename'",
                id="file-data-no-name",
            ),
            pytest.param(
                {"type": "input_file", "file_data": _b64(PDF), "filename": "a.pdf"},
                InvalidDataURL,
                "not a data: URL",
                id="file-data-bare-base64",
            ),
        ],
    )
    def test_bad_responses_parts_are_refused_naming_the_part(
        self, part: object, error: type[FileRejected], message: str
    ) -> None:
        """Each defect has its own error, naming the part."""
        with pytest.raises(error, match=message) as info:
            validate_input(part, path="input[0].content[1]")
        assert info.value.path == "input[0].content[1]"

    @pytest.mark.parametrize(
        ("part", "message"),
        [
            pytest.param(
                {"type": "input_image", "file_id": "f"},
                "'input_image' is the Responses shape; Chat Completions takes {'type': 'image_url'",
                id="responses-image",
            ),
            pytest.param({"type": "image_url", "image_url": "https://x"}, "needs an object"),
            pytest.param(
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "original"}},
                "detail 'original'",
            ),
            pytest.param({"type": "file", "file": {}}, "exactly one of file_id, file_data"),
            pytest.param({"type": "file"}, "needs a 'file' object"),
        ],
    )
    def test_bad_chat_parts_are_refused(self, part: dict[str, Any], message: str) -> None:
        """In chat mode the Chat shapes are required."""
        with pytest.raises(InvalidInputPart, match=message):
            validate_input(part, api="chat")

    def test_the_assistants_shape_is_refused_in_chat_too(self) -> None:
        """And the message points at the Chat image shape."""
        part = {"type": "image_file", "image_file": {"file_id": "file-1"}}
        with pytest.raises(AssistantsShapeNotAllowed, match="'type': 'image_url'"):
            validate_input(part, api="chat")

    def test_an_inline_image_counts_its_bytes(self) -> None:
        """The totals count the image and its decoded size."""
        part = {"type": "input_image", "image_url": PNG_URL}
        assert validate_input(part) == InputTotals(images=1, image_bytes=len(PNG))


class TestValidateInputs:
    """`validate_inputs` checks a whole request and its per-request limits."""

    def test_a_string_input_is_fine(self) -> None:
        """Plain text has no parts to check."""
        assert validate_inputs("hello") == InputTotals()

    def test_messages_are_entered_and_their_parts_labelled(self) -> None:
        """An error inside a message names input[i].content[j]."""
        items = [
            {"role": "user", "content": "plain"},
            {"role": "user", "content": [{"type": "input_text", "text": "x"}, {"type": "bad"}]},
            {"role": "user", "content": [{"type": "image_file", "image_file": {"file_id": "f"}}]},
        ]
        with pytest.raises(AssistantsShapeNotAllowed) as info:
            validate_inputs(items)
        assert info.value.path == "input[2].content[0]"

    def test_bare_parts_are_labelled_by_position(self) -> None:
        """A list of parts (no messages) is checked part by part."""
        with pytest.raises(InvalidInputPart) as info:
            validate_inputs([{"type": "input_text", "text": "x"}, {"type": "input_image"}])
        assert info.value.path == "input[1]"

    def test_totals_add_up_over_messages(self) -> None:
        """Images by id count toward the number, inline ones also toward the bytes."""
        items = [
            {"role": "user", "content": [image_input(data=PNG), image_input(file_id="f")]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
            image_input(url="https://e.com/a.png"),
        ]
        assert validate_inputs(items) == InputTotals(images=3, image_bytes=len(PNG))

    def test_too_many_images_is_refused(self) -> None:
        """More than max_images_per_request images."""
        parts = [image_input(file_id=f"file-{i}") for i in range(4)]
        with pytest.raises(RequestLimitExceeded) as info:
            validate_inputs(parts, rules=SMALL)
        err = info.value
        assert (err.path, err.rule, err.total, err.limit) == (
            "request",
            "max_images_per_request",
            4,
            3,
        )
        assert str(err) == "request: images: 4 exceeds the per-request limit of 3"

    def test_too_many_inline_image_bytes_is_refused(self) -> None:
        """The decoded sizes of data-URL images are summed."""
        image = samples.png(25, 25)
        parts = [image_input(data=image), image_input(data=image)]
        rules = FileRules(max_request_image_bytes=2 * len(image) - 1)
        assert validate_inputs(parts[:1], rules=rules).image_bytes == len(image)
        with pytest.raises(RequestLimitExceeded) as info:
            validate_inputs(parts, rules=rules)
        assert (info.value.rule, info.value.total) == ("max_request_image_bytes", 2 * len(image))

    def test_chat_messages_are_checked_in_chat_mode(self) -> None:
        """The same walk works for Chat messages."""
        messages = [{"role": "user", "content": [chat_image_part(data=PNG)]}]
        assert validate_inputs(messages, api="chat") == InputTotals(images=1, image_bytes=len(PNG))
