"""The bus's items between nodes: every kind round-trips; anything else is refused by name."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from streamvisor.actors import BackgroundStatus, PollingStopped, ToolCall, ToolResult
from streamvisor.cluster._codec import UndecodableItem, decode, dedup_key, encode
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import Missed

from .._json_values import JSON_VALUES, same

EVENT = StreamEvent(
    type="response.output_text.delta",
    sequence_number=7,
    data={"type": "response.output_text.delta", "delta": "héllo", "n": 2**70},
    response_id="resp_1",
    session_id="s1",
    api="responses",
    received_at=1700000000.25,
)

ITEMS = [
    EVENT,
    StreamEvent("error", 3, {"code": "x"}, None, None, "chat", 0.0),
    BackgroundStatus("resp_1", "completed", "in_progress", {"id": "resp_1"}, 1.5, "s1"),
    BackgroundStatus(
        "resp_2", "failed", None, None, 2.0, None, error="response_gone: 404", gone=True
    ),
    PollingStopped("resp_3", "queued", "quota", "insufficient_quota", 3.0, "s2"),
    ToolCall(agent_id="a", call_id="call_1", name="add", arguments='{"a": 1}', request=1),
    ToolResult(
        agent_id="a", call_id="call_1", name="add", output="2", is_error=False, duration=0.5
    ),
]


@pytest.mark.parametrize("item", ITEMS, ids=lambda item: type(item).__name__)
def test_every_kind_round_trips(item: object) -> None:
    payload = encode(item)
    assert payload is not None
    back = decode(payload)
    assert type(back) is type(item)
    assert back == item
    if isinstance(item, StreamEvent):
        assert isinstance(back, StreamEvent)
        assert back.data == item.data  # not part of eq
        assert back.received_at == item.received_at


def test_big_integers_stay_integers() -> None:
    back = decode(encode(EVENT) or b"")
    assert isinstance(back, StreamEvent)
    assert back.data["n"] == 2**70


def test_a_kind_with_no_codec_is_not_forwarded() -> None:
    assert encode(Missed(3)) is None
    assert encode({"plain": "dict"}) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{}", "not a \\[kind"),
        (b"[]", "not a \\[kind"),
        (b'["z", {}]', "unknown kind"),
        (b'["e", "t"]', "7 fields"),
        (b'["e", "t", "1", {}, null, null, "responses", 0]', "wrong type"),
        (b'["e", "t", 1, {}, null, null, "smtp", 0]', "wrong type"),
        (b'["s", {"response_id": "r"}]', "bad BackgroundStatus"),
        (
            b'["s", {"response_id": "r", "status": "nope", "previous": null, "response": null, '
            b'"at": 1}]',
            "bad BackgroundStatus",
        ),
    ],
)
def test_anything_else_is_refused_by_name(payload: bytes, reason: str) -> None:
    with pytest.raises(UndecodableItem, match=reason):
        decode(payload)


def test_the_payload_is_compact_json() -> None:
    plain = StreamEvent("response.output_text.delta", 7, {"delta": "héllo"}, "r", "s", "chat", 0.0)
    payload = encode(plain)
    assert payload is not None
    assert b" " not in payload.replace(b"\xc3\xa9", b"")
    assert json.loads(payload)[0] == "e"


def test_a_payload_orjson_cannot_write_exactly_is_marked_and_still_compact_json() -> None:
    payload = encode(EVENT)  # an integer past 64 bits
    assert payload is not None
    assert payload.startswith(b"=")
    assert b" " not in payload
    assert json.loads(payload[1:])[3]["n"] == 2**70


def test_dedup_keys_name_a_stream_event_by_topic_response_and_sequence() -> None:
    assert dedup_key("session.s1", EVENT) == "session.s1/resp_1/7"
    keepalive = StreamEvent("keepalive", 7, {}, "resp_1", "s1", "responses", 0.0)
    assert dedup_key("session.s1", keepalive) is None
    assert dedup_key("session.s1", ITEMS[2]) is None


#: What `json.loads` makes of an OpenAI-compatible server's frame, and the wire layer passes on
#: unchanged: a lone surrogate from a "\ud83d" escape (half an emoji), NaN and infinities from
#: the NaN/Infinity tokens or an overflowing literal, integers past 64 bits, negative zero.
ODD_VALUES = json.loads(
    '{"delta": "half \\ud83d an emoji", "key \\udc00": 1, "nan": NaN, "inf": Infinity,'
    ' "ninf": -Infinity, "huge": 1e400, "big": 123456789012345678901234567890,'
    ' "small": -9223372036854775809, "zero": -0.0, "nested": [{"x": NaN, "s": "\\udfff"}]}'
)


@pytest.mark.parametrize("key", sorted(ODD_VALUES))
def test_whatever_json_loads_made_of_a_frame_crosses_exactly(key: str) -> None:
    """Every value the wire layer can hand on crosses intact: the node that streams it must
    not fail to forward it (it used to raise: UnicodeEncodeError, ValueError), and the others
    must not receive null for NaN or a float for a big integer."""
    data = {"type": "response.output_text.delta", key: ODD_VALUES[key]}
    event = StreamEvent("response.output_text.delta", 4, data, "resp_1", "s1", "responses", 0.5)
    payload = encode(event)
    assert payload is not None
    back = decode(payload)
    assert isinstance(back, StreamEvent)
    assert same(back.data, data)


def test_every_odd_value_at_once_crosses_exactly() -> None:
    event = StreamEvent("response.completed", 9, ODD_VALUES, "resp_1", None, "responses", 1.0)
    back = decode(encode(event) or b"")
    assert isinstance(back, StreamEvent)
    assert same(back.data, ODD_VALUES)


def test_odd_values_in_a_record_cross_exactly() -> None:
    status = BackgroundStatus("resp_1", "completed", None, dict(ODD_VALUES), 1.5, "s1")
    back = decode(encode(status) or b"")
    assert isinstance(back, BackgroundStatus)
    assert same(back.response, status.response)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value_crosses_exactly(value: object) -> None:
    data = {"type": "response.output_text.delta", "value": value}
    event = StreamEvent("response.output_text.delta", 1, data, "resp_1", "s1", "chat", 2.5)
    back = decode(encode(event) or b"")
    assert isinstance(back, StreamEvent)
    assert same(back.data, data)
