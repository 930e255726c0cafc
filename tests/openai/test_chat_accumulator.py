"""ChatAccumulator maps chunks into the Responses vocabulary and assembles the completion."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from streamvisor.openai import ChatAccumulator, SequenceError, StreamEvent
from streamvisor.openai._events import new_event
from streamvisor.openai._responses import FOLD
from tests._recorded import RECORDED

from .conftest import frames

CHAT = sorted(p.name for p in RECORDED.glob("*_chat_*.sse"))


def chunk(*choices: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "created": 1, "model": "gpt-4o", "choices": list(choices), **top}


def choice(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "finish_reason": finish}


def run(chunks: list[dict[str, Any]]) -> tuple[ChatAccumulator, list[StreamEvent]]:
    acc = ChatAccumulator(session_id="s1")
    events = [e for c in chunks for e in acc.feed_chunk(c)]
    events.append(acc.finish())
    return acc, events


class TestMapping:
    def test_the_first_chunk_becomes_response_created(self) -> None:
        _, events = run([chunk(choice(role="assistant", content=""))])
        assert events[0].type == "response.created"
        assert events[0].data["response"]["id"] == "chatcmpl-1"
        assert events[0].api == "chat"
        assert events[0].session_id == "s1"
        assert events[0].response_id == "chatcmpl-1"

    def test_content_becomes_output_text_deltas_with_the_choice_index(self) -> None:
        _, events = run([chunk(choice(content="Hel")), chunk(choice(content="lo"))])
        deltas = [e for e in events if e.type == "response.output_text.delta"]
        assert [(e.data["delta"], e.data["output_index"]) for e in deltas] == [
            ("Hel", 0),
            ("lo", 0),
        ]

    def test_refusal_becomes_refusal_deltas(self) -> None:
        acc, events = run([chunk(choice(refusal="No")), chunk(choice(refusal=" way"))])
        assert [e.data["delta"] for e in events if e.type == "response.refusal.delta"] == [
            "No",
            " way",
        ]
        assert acc.result is not None
        assert acc.result["choices"][0]["message"]["refusal"] == "No way"

    def test_tool_calls_are_assembled_by_index_with_their_first_fragment_fields(self) -> None:
        first = {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "f", "arguments": ""},
        }
        second = {
            "index": 1,
            "id": "call_b",
            "type": "function",
            "function": {"name": "g", "arguments": '{"y"'},
        }
        acc, events = run(
            [
                chunk(choice(tool_calls=[first])),
                chunk(choice(tool_calls=[{"index": 0, "function": {"arguments": '{"x":'}}])),
                chunk(choice(tool_calls=[{"index": 0, "function": {"arguments": "1}"}}])),
                chunk(choice(tool_calls=[second])),
                chunk(choice(tool_calls=[{"index": 1, "function": {"arguments": ":2}"}}])),
                chunk(choice(finish="tool_calls")),
            ]
        )
        assert acc.result is not None
        calls = acc.result["choices"][0]["message"]["tool_calls"]
        assert calls == [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"y":2}'}},
        ]
        added = [
            e.data["item"]["call_id"] for e in events if e.type == "response.output_item.added"
        ]
        assert added == ["call_a", "call_b"]
        args = [
            (e.data["call_id"], e.data["name"], e.data["delta"])
            for e in events
            if e.type == "response.function_call_arguments.delta"
        ]
        assert args == [
            ("call_a", "f", '{"x":'),
            ("call_a", "f", "1}"),
            ("call_b", "g", '{"y"'),
            ("call_b", "g", ":2}"),
        ]

    def test_interleaved_choices_of_n_greater_than_one_stay_apart(self) -> None:
        acc, _ = run(
            [
                chunk(choice(0, content="a"), choice(1, content="x")),
                chunk(choice(1, content="y")),
                chunk(choice(0, content="b")),
                chunk(choice(1, finish="stop")),
                chunk(choice(0, finish="stop")),
            ]
        )
        assert acc.result is not None
        assert [
            (c["index"], c["message"]["content"], c["finish_reason"]) for c in acc.result["choices"]
        ] == [(0, "ab", "stop"), (1, "xy", "stop")]

    def test_the_usage_chunk_with_no_choices_fills_usage(self) -> None:
        usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        acc, events = run(
            [chunk(choice(content="a")), chunk(choice(finish="stop")), chunk(usage=usage)]
        )
        assert acc.result is not None
        assert acc.result["usage"] == usage
        assert events[-1].data["response"]["usage"] == usage

    def test_a_finish_reason_becomes_output_item_done_with_the_choice(self) -> None:
        _, events = run([chunk(choice(content="a")), chunk(choice(finish="stop"))])
        done = [e for e in events if e.type == "response.output_item.done"]
        assert len(done) == 1
        assert done[0].data["finish_reason"] == "stop"
        assert done[0].data["item"]["message"]["content"] == "a"

    @pytest.mark.parametrize(
        ("reason", "terminal"),
        [
            ("stop", "response.completed"),
            ("tool_calls", "response.completed"),
            ("length", "response.incomplete"),
            ("content_filter", "response.incomplete"),
        ],
    )
    def test_the_finish_reason_decides_completed_or_incomplete(
        self, reason: str, terminal: str
    ) -> None:
        acc, events = run([chunk(choice(content="a")), chunk(choice(finish=reason))])
        assert events[-1].type == terminal
        assert events[-1].terminal
        assert acc.final_type == terminal

    def test_a_mid_stream_error_frame_becomes_an_error_event(self) -> None:
        acc = ChatAccumulator()
        acc.feed_chunk(chunk(choice(content="a")))
        (event,) = acc.feed_chunk(
            {
                "error": {
                    "message": "overloaded",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        )
        assert event.type == "error"
        assert event.terminal
        assert acc.error == {
            "message": "overloaded",
            "type": "server_error",
            "param": None,
            "code": None,
        }

    def test_sequence_numbers_count_from_zero_without_gaps(self) -> None:
        _, events = run(
            [chunk(choice(content="a")), chunk(choice(content="b")), chunk(choice(finish="stop"))]
        )
        assert [e.sequence_number for e in events] == list(range(len(events)))

    def test_a_missing_usage_and_obfuscation_key_is_fine(self) -> None:
        acc, _ = run([{"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}])
        assert acc.result is not None
        assert acc.result["usage"] is None


class TestReplay:
    @pytest.mark.parametrize("name", CHAT)
    def test_feeding_the_mapped_events_rebuilds_the_same_completion(self, name: str) -> None:
        acc, events = run(frames((RECORDED / name).read_bytes()))
        replica = ChatAccumulator()
        for event in events[:-1]:
            replica.feed(event)
        assert replica.snapshot["choices"] == acc.snapshot["choices"]
        replica.feed(events[-1])
        assert replica.result == acc.result

    def test_replay_drops_duplicates_and_rejects_gaps(self) -> None:
        _, events = run([chunk(choice(content="a")), chunk(choice(content="b"))])
        replica = ChatAccumulator()
        replica.feed(events[0])
        replica.feed(events[1])
        assert not replica.feed(events[1])
        assert replica.duplicates == 1
        with pytest.raises(SequenceError):
            replica.feed(events[3])
        assert replica.output_text == "a"


class TestFinished:
    """After `finish`, the text read back is the completion's."""

    def test_the_completion_and_output_text_hold_every_delta(self) -> None:
        words = [f"w{i} 😊" for i in range(3 * FOLD + 1)]
        acc, _ = run([chunk(choice(content=w)) for w in words] + [chunk(choice(finish="stop"))])
        assert acc.result is not None
        assert acc.result["choices"][0]["message"]["content"] == "".join(words)
        assert acc.output_text == "".join(words)
        assert acc.snapshot is acc.result

    def test_after_finish_only_choice_zero_is_the_output_text(self) -> None:
        acc, _ = run([chunk(choice(1, content="other"))])
        assert acc.output_text == ""
        acc, _ = run([chunk(choice(0, refusal="no"))])
        assert acc.output_text == ""
        acc, _ = run([chunk(choice(1, content="b"), choice(0, content="a"))])
        assert acc.output_text == "a"


class TestFastEventConstruction:
    """The parsers' `new_event` builds exactly what `StreamEvent(...)` builds, only faster."""

    def test_it_fills_the_slots_directly_while_the_fields_are_plain(self) -> None:
        assert new_event is not StreamEvent  # if this fails, the fast path silently went away

    def test_the_event_equals_the_one_the_class_builds(self) -> None:
        args = ("response.output_text.delta", 3, {"delta": "x"}, "r1", "s1", "chat", 12.5)
        fast, slow = new_event(*args), StreamEvent(*args)
        assert fast == slow
        assert hash(fast) == hash(slow)
        assert attrs.asdict(fast, recurse=False) == attrs.asdict(slow, recurse=False)
        assert fast.terminal is False

    def test_the_event_stays_frozen(self) -> None:
        event = new_event("error", 0, {}, None, None, "responses", 0.0)
        assert event.terminal
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.type = "x"  # type: ignore[misc]
