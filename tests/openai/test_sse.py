"""The SSE decoder frames events exactly as httpx-sse does, for any split of any input."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from httpx_sse._decoders import SSEDecoder as OracleDecoder
from httpx_sse._decoders import SSELineDecoder
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.openai._sse import SSEDecoder

from .conftest import split_at


def decode(body: bytes, cuts: Iterable[int] = ()) -> list[tuple[str, bytes]]:
    decoder = SSEDecoder()
    out: list[tuple[str, bytes]] = []
    for piece in split_at(body, cuts):
        out.extend(decoder.feed(piece))
    return out + decoder.close()


def oracle(body: bytes) -> list[tuple[str, bytes]]:
    """httpx-sse's own line and event decoders (what `EventSource.aiter_sse` runs)."""
    lines = SSELineDecoder()
    events = OracleDecoder()
    out = []
    text = body.decode("utf-8")
    for line in [*lines.decode(text), *lines.flush()] if text else []:
        sse = events.decode(line.rstrip("\n"))
        if sse is not None:
            out.append((sse.event, sse.data.encode()))
    return out


def meaningful(events: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """Without empty `message` events (httpx-sse also dispatches id/retry-only frames)."""
    return [e for e in events if e != ("message", b"")]


class TestFraming:
    def test_chat_data_lines_and_the_done_sentinel_are_plain_message_events(self) -> None:
        """`data: [DONE]` is not special to SSE: it arrives as a message whose data is [DONE]."""
        body = b'data: {"a":1}\n\ndata: [DONE]\n\n'
        assert decode(body) == [("message", b'{"a":1}'), ("message", b"[DONE]")]
        assert oracle(body) == decode(body)

    def test_responses_event_and_data_lines_make_one_named_event(self) -> None:
        body = b'event: response.created\ndata: {"type":"response.created"}\n\n'
        assert decode(body) == [("response.created", b'{"type":"response.created"}')]

    def test_multi_line_data_is_joined_with_newlines(self) -> None:
        assert decode(b"data: a\ndata: b\ndata:\n\n") == [("message", b"a\nb\n")]

    def test_comments_are_skipped_even_between_fields(self) -> None:
        body = b": keepalive comment\nevent: x\n: another\ndata: 1\n\n: trailing\n\n"
        assert decode(body) == [("x", b"1")]

    @pytest.mark.parametrize("eol", [b"\r\n", b"\r", b"\n"])
    def test_every_line_ending_is_accepted(self, eol: bytes) -> None:
        body = b"event: x" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + eol
        assert decode(body) == [("x", b"1"), ("message", b"2")]

    def test_a_crlf_split_between_two_chunks_is_one_line_end(self) -> None:
        body = b"data: 1\r\n\r\ndata: 2\r\n\r\n"
        for cut in range(1, len(body)):
            assert decode(body, [cut]) == [("message", b"1"), ("message", b"2")], cut

    def test_an_event_name_without_data_is_still_delivered(self) -> None:
        """`event: keepalive` frames with no data reach the stream (it passes them on)."""
        assert decode(b"event: keepalive\n\n") == [("keepalive", b"")]

    def test_an_event_cut_off_by_eof_is_discarded_and_reported(self) -> None:
        decoder = SSEDecoder()
        assert decoder.feed(b'data: {"a":1}\n\ndata: {"b"') == [("message", b'{"a":1}')]
        assert decoder.close() == []
        assert decoder.truncated

    def test_eof_after_only_comments_reports_nothing_lost(self) -> None:
        decoder = SSEDecoder()
        decoder.feed(b"data: 1\n\n: bye\n")
        assert decoder.close() == []
        assert not decoder.truncated

    def test_a_leading_byte_order_mark_is_dropped_even_when_split(self) -> None:
        body = b"\xef\xbb\xbfdata: 1\n\n"
        for cut in range(1, 4):
            assert decode(body, [cut]) == [("message", b"1")]

    def test_field_without_space_and_field_without_colon(self) -> None:
        assert decode(b"event:x\ndata:1\ndata\n\n") == [("x", b"1\n")]

    def test_id_and_retry_are_remembered_but_unknown_fields_ignored(self) -> None:
        decoder = SSEDecoder()
        assert decoder.feed(b"id: 7\nretry: 1500\nfoo: bar\ndata: x\n\n") == [("message", b"x")]
        assert (decoder.last_event_id, decoder.retry) == ("7", 1500)

    def test_utf8_split_inside_a_character_survives(self) -> None:
        body = 'data: {"t":"héllo ✓"}\n\n'.encode()
        for cut in range(1, len(body)):
            assert decode(body, [cut]) == [("message", '{"t":"héllo ✓"}'.encode())]


_FIELD = st.sampled_from(["data", "event", "id", "retry", ":", "data", "data", "foo"])
_VALUE = st.text(alphabet='ab {}"é:', max_size=6)
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
def test_the_decoder_agrees_with_httpx_sse_for_any_input_and_any_split(
    body: str, data: st.DataObject
) -> None:
    """Differential test: same events as httpx-sse's decoder (ending the body with a blank line
    so both see the same complete events), whatever the chunking."""
    raw = (body + "\n\n").encode()
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=8))
    assert meaningful(decode(raw, cuts)) == meaningful(oracle(raw))
