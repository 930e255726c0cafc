"""SSEParser: httpx-sse's decoders driven chunk by chunk, whatever the chunk boundaries."""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import pytest
from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.openai._sse import SSEParser

from .conftest import split_at


def decode(body: bytes, cuts: Iterable[int] = ()) -> list[tuple[str, str]]:
    """The (event, data) pairs of `body` delivered in pieces cut at `cuts`, EOF included."""
    parser = SSEParser()
    out: list[tuple[str, str]] = []
    for piece in split_at(body, cuts):
        out.extend(parser.feed(piece))
    out.extend(parser.close())
    return out


def by_httpx_sse(body: bytes) -> list[tuple[str, str]]:
    """What httpx-sse's own `aiter_sse` makes of `body` (its line and event decoders, fed the
    whole text; `aiter_text` would decode it the same, keeping a leading BOM we drop)."""
    text = body.decode().removeprefix("\ufeff")
    lines, fields = SSELineDecoder(), SSEDecoder()
    events = [fields.decode(line) for line in [*lines.decode(text), *lines.flush()]]
    return [(sse.event, sse.data) for sse in events if sse is not None]


def every_cut(body: bytes) -> range:
    return range(1, len(body))


class TestTheHttpxSseClassesWeDrive:
    """httpx_sse._decoders is private: these fail loudly if an upgrade changes its shape."""

    def test_the_line_decoder_takes_text_and_returns_lines_and_flushes(self) -> None:
        lines = SSELineDecoder()
        assert inspect.signature(lines.decode).parameters.keys() == {"text"}
        assert inspect.signature(lines.flush).parameters.keys() == set()
        assert lines.decode("data: 1\r") == []
        assert lines.decode("\ndata: 2\n\npart") == ["data: 1", "data: 2", ""]
        assert lines.flush() == ["part"]

    def test_the_event_decoder_takes_one_line_and_dispatches_on_a_blank_one(self) -> None:
        events = SSEDecoder()
        assert inspect.signature(events.decode).parameters.keys() == {"line"}
        assert events.decode("event: x") is None
        assert events.decode("data: 1") is None
        sse = events.decode("")
        assert isinstance(sse, ServerSentEvent)
        assert (sse.event, sse.data) == ("x", "1")


class TestFraming:
    def test_chat_data_lines_and_the_done_sentinel_are_plain_message_events(self) -> None:
        """`data: [DONE]` is not special to SSE: it arrives as a message whose data is [DONE]."""
        body = b'data: {"a":1}\n\ndata: [DONE]\n\n'
        assert decode(body) == [("message", '{"a":1}'), ("message", "[DONE]")]

    def test_responses_event_and_data_lines_make_one_named_event(self) -> None:
        body = b'event: response.created\ndata: {"type":"response.created"}\n\n'
        assert decode(body) == [("response.created", '{"type":"response.created"}')]

    def test_multi_line_data_is_joined_with_newlines(self) -> None:
        assert decode(b"data: a\ndata: b\ndata:\n\n") == [("message", "a\nb\n")]

    def test_comments_are_skipped_even_between_fields(self) -> None:
        body = b": keepalive comment\nevent: x\n: another\ndata: 1\n\n: trailing\n\n"
        assert decode(body) == [("x", "1")]

    @pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"], ids=["crlf", "cr", "lf"])
    def test_every_line_ending_is_accepted_at_every_split(self, eol: bytes) -> None:
        body = b"event: x" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + eol
        for cut in every_cut(body):
            assert decode(body, [cut]) == [("x", "1"), ("message", "2")], cut

    def test_an_event_name_without_data_is_still_delivered(self) -> None:
        """`event: keepalive` frames with no data reach the stream (it passes them on)."""
        assert decode(b"event: keepalive\n\n") == [("keepalive", "")]


class TestChunkBoundaries:
    def test_a_crlf_split_between_two_chunks_is_one_line_end(self) -> None:
        """The CR ends one chunk, the LF starts the next: no extra blank line, no lost event."""
        parser = SSEParser()
        assert parser.feed(b"data: 1\r") == []
        assert parser.feed(b"\ndata: 2\r") == []
        assert parser.feed(b"\n\r") == []  # that CR may be half of a CRLF: wait
        assert parser.feed(b"\n") == [("message", "1\n2")]
        assert parser.close() == []

    def test_a_character_split_between_chunks_waits_for_its_last_byte(self) -> None:
        body = 'data: {"t":"héllo ✓ 🙂"}\n\n'.encode()
        for cut in every_cut(body):
            assert decode(body, [cut]) == [("message", '{"t":"héllo ✓ 🙂"}')], cut

    def test_one_byte_chunks_decode_like_the_whole_body(self) -> None:
        body = "event: a\r\ndata: é\r\n\r\n: c\rdata: ✓\r\r".encode()
        assert decode(body, every_cut(body)) == decode(body) == [("a", "é"), ("message", "✓")]

    def test_a_leading_byte_order_mark_is_dropped_even_when_split(self) -> None:
        body = b"\xef\xbb\xbfdata: 1\n\n"
        for cut in range(1, 4):
            assert decode(body, [cut]) == [("message", "1")], cut

    def test_only_a_leading_byte_order_mark_is_dropped(self) -> None:
        assert decode("data: \ufeffx\n\n".encode()) == [("message", "\ufeffx")]


class TestEndOfBody:
    def test_an_event_cut_off_by_eof_is_discarded_not_half_parsed(self) -> None:
        parser = SSEParser()
        assert parser.feed(b'data: {"a":1}\n\ndata: {"b"') == [("message", '{"a":1}')]
        assert parser.close() == []

    def test_an_event_whose_last_line_ends_without_a_blank_line_is_discarded(self) -> None:
        assert decode(b"data: 1\n\ndata: 2\n") == [("message", "1")]

    def test_a_final_cr_held_back_at_eof_still_dispatches(self) -> None:
        """`data: 1\\r\\r`: the last CR waits for a possible LF; EOF makes it a line end."""
        parser = SSEParser()
        assert parser.feed(b"data: 1\r\r") == []
        assert parser.close() == [("message", "1")]

    def test_a_character_cut_off_by_eof_is_dropped_with_its_event(self) -> None:
        assert decode(b"data: 1\n\ndata: \xc3") == [("message", "1")]


class TestInvalidUtf8:
    def test_the_events_before_the_bad_byte_are_returned_then_invalid_is_set(self) -> None:
        parser = SSEParser()
        events = parser.feed(b"data: 1\n\ndata: \xff\n\ndata: 3\n\n")
        assert events == [("message", "1")]
        assert parser.invalid is not None
        assert parser.invalid.object[parser.invalid.start :].startswith(b"\xff")

    def test_nothing_is_decoded_after_invalid_bytes(self) -> None:
        parser = SSEParser()
        parser.feed(b"data: \xc3(\n\n")
        assert parser.feed(b"data: 2\n\n") == []
        assert parser.close() == []

    def test_a_bad_byte_after_a_split_character_is_still_caught(self) -> None:
        parser = SSEParser()
        assert parser.feed(b"data: 1\n\ndata: \xe2\x9c") == [("message", "1")]
        assert parser.invalid is None
        assert parser.feed(b"\xff\n\n") == []
        assert parser.invalid is not None


_FIELD = st.sampled_from(["data", "event", "id", "retry", ":", "data", "data", "foo"])
_VALUE = st.text(alphabet='ab {}"é✓🙂:', max_size=6)
_EOL = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_bodies(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        if draw(st.booleans()):
            parts.append(draw(_EOL))  # blank line: dispatch
            continue
        field = draw(_FIELD)
        sep = draw(st.sampled_from([": ", ":", ""])) if field != ":" else ""
        parts.append(field + sep + draw(_VALUE) + draw(_EOL))
    return "".join(parts)


@settings(max_examples=300, deadline=None)
@given(body=sse_bodies(), data=st.data())
def test_any_split_of_any_body_decodes_like_the_whole_body(body: str, data: st.DataObject) -> None:
    """Chunk boundaries (inside characters, inside CRLF, anywhere) never change the events."""
    raw = body.encode()
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=8))
    assert decode(raw, cuts) == decode(raw)


_OPENAI_FIELD = st.sampled_from(["data", "event", "data", "event", "id", ":", "data"])
_OPENAI_VALUE = st.text(alphabet='ab {}"é:\x00', max_size=5)


@st.composite
def openai_like_bodies(draw: st.DrawFn) -> str:
    """Mostly OpenAI's own frames (so the fast path is taken), with now and then what it does
    not read itself: comments, ids, repeated fields, fields without a colon, CR line ends."""
    parts = []
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.integers(0, 4)) == 0:
            field = draw(_OPENAI_FIELD)
            sep = draw(st.sampled_from([": ", ":", "", ":  "])) if field != ":" else ""
            parts.append(field + sep + draw(_OPENAI_VALUE) + draw(_EOL))
            continue
        frame = f"data:{draw(st.sampled_from([' ', '', '  ']))}{draw(_OPENAI_VALUE)}\n\n"
        if draw(st.booleans()):
            frame = f"event:{draw(st.sampled_from([' ', '', '  ']))}{draw(_OPENAI_VALUE)}\n" + frame
        parts.append(frame)
    return "".join(parts)


class TestTheFastPath:
    """OpenAI's frames are read by one regular expression; anything else by httpx-sse."""

    @settings(max_examples=400, deadline=None)
    @given(body=st.one_of(openai_like_bodies(), sse_bodies()), data=st.data())
    def test_it_reads_every_body_as_httpx_sse_does_at_any_split(
        self, body: str, data: st.DataObject
    ) -> None:
        raw = body.encode()
        cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=6))
        assert decode(raw, cuts) == by_httpx_sse(raw)

    def test_openai_frames_take_the_fast_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def unused(self: SSEParser, text: str) -> list[tuple[str, str]]:
            raise AssertionError(f"httpx-sse's decoders were given {text!r}")

        monkeypatch.setattr(SSEParser, "_decoded", unused)
        parser = SSEParser()
        body = b'event: response.created\ndata: {"a":1}\n\ndata: [DONE]\n\nevent:\ndata:x\n\n'
        assert parser.feed(body) == [
            ("response.created", '{"a":1}'),
            ("message", "[DONE]"),
            ("message", "x"),
        ]

    def test_a_partial_frame_waits_in_the_decoders_and_the_fast_path_resumes(self) -> None:
        parser = SSEParser()
        assert parser.feed(b"data: 1\n\ndata: 2") == [("message", "1")]
        assert not parser._clean
        assert parser.feed(b"\n\n") == [("message", "2")]
        assert parser._clean
        assert parser.feed(b"data: 3\n\n") == [("message", "3")]

    @pytest.mark.parametrize(
        "body",
        [
            b": comment\ndata: 1\n\n",
            b"id: 7\ndata: 1\n\n",
            b"data: 1\ndata: 2\n\n",
            b"data\n\n",
            b"retry: 10\ndata: 1\n\n",
            b"data: 1\r\n\r\n",
            b"data: 1\n\n\n",
        ],
    )
    def test_other_shapes_go_to_httpx_sse(self, body: bytes) -> None:
        assert decode(body) == by_httpx_sse(body)
