"""ResponseAccumulator follows every rule of reference §3.4."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from streamvisor.openai import ResponseAccumulator, SequenceError, StreamEvent
from streamvisor.openai._responses import FOLD, Pieces
from tests._recorded import RECORDED

from .conftest import frames

RESPONSES = sorted(p.name for p in RECORDED.glob("*_responses_*.sse"))


def ev(type: str, seq: int, **data: Any) -> StreamEvent:
    return StreamEvent(type, seq, {"type": type, "sequence_number": seq, **data})


def events_of(name: str) -> list[StreamEvent]:
    out = []
    for i, data in enumerate(frames((RECORDED / name).read_bytes())):
        out.append(StreamEvent(data["type"], data.get("sequence_number", i), data))
    return out


def strings(response: dict[str, Any]) -> list[Any]:
    """The accumulated strings of every output item (what deltas build)."""
    out: list[Any] = []
    for item in response["output"]:
        kind = item["type"]
        if kind == "message":
            out.append([p.get("text", p.get("refusal")) for p in item["content"]])
        elif kind == "function_call":
            out.append((item["call_id"], item["arguments"]))
        elif kind == "reasoning":
            out.append([s["text"] for s in item.get("summary") or []])
        else:
            out.append(kind)
    return out


_AUTHORITATIVE = (".done", "response.completed", "response.failed", "response.incomplete")


def created(seq: int = 0, **response: Any) -> StreamEvent:
    return ev(
        "response.created",
        seq,
        response={"id": "resp_1", "status": "in_progress", "output": [], **response},
    )


_EMPTY_TEXT: list[dict[str, Any]] = [{"type": "output_text", "text": ""}]


def added(seq: int, output_index: int, **item: Any) -> StreamEvent:
    """`response.output_item.added` carrying `item` at `output_index`."""
    return ev("response.output_item.added", seq, output_index=output_index, item=item)


def text_delta(seq: int, delta: str, content_index: int = 0) -> StreamEvent:
    """`response.output_text.delta` for output item 0."""
    return ev(
        "response.output_text.delta", seq, output_index=0, content_index=content_index, delta=delta
    )


def with_message(content: list[dict[str, Any]] | None = None) -> ResponseAccumulator:
    """An accumulator fed `response.created` (seq 0) and a message item added at 0 (seq 1)."""
    acc = ResponseAccumulator()
    acc.feed(created())
    acc.feed(
        added(
            1, 0, type="message", content=copy.deepcopy(_EMPTY_TEXT) if content is None else content
        )
    )
    return acc


class TestDeltas:
    @pytest.mark.parametrize("name", RESPONSES)
    def test_deltas_alone_rebuild_every_string_of_the_final_response(self, name: str) -> None:
        """Without any `.done` or terminal event, the snapshot already has the final strings."""
        events = events_of(name)
        final = events[-1].data["response"]
        acc = ResponseAccumulator()
        kept = [e for e in events if not e.type.endswith(_AUTHORITATIVE)]
        for seq, event in enumerate(kept):
            acc.feed(StreamEvent(event.type, seq, event.data))
        snapshot = acc.snapshot
        assert snapshot is not None
        assert strings(snapshot) == strings(final)
        assert acc.anomalies == 0
        assert not acc.done

    @pytest.mark.parametrize("name", RESPONSES)
    def test_accumulating_never_mutates_the_events(self, name: str) -> None:
        events = events_of(name)
        before = copy.deepcopy([e.data for e in events])
        acc = ResponseAccumulator()
        for event in events:
            acc.feed(event)
            assert acc.snapshot is not None
        assert [e.data for e in events] == before

    def test_text_refusal_arguments_and_summary_deltas_append_to_their_fields(self) -> None:
        acc = ResponseAccumulator()
        acc.feed(created())
        acc.feed(added(1, 0, type="message", id="m", content=[]))
        acc.feed(
            ev(
                "response.content_part.added",
                2,
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            )
        )
        acc.feed(
            ev(
                "response.content_part.added",
                3,
                output_index=0,
                content_index=1,
                part={"type": "refusal", "refusal": ""},
            )
        )
        acc.feed(text_delta(4, "He"))
        acc.feed(ev("response.refusal.delta", 5, output_index=0, content_index=1, delta="No"))
        acc.feed(text_delta(6, "llo"))
        acc.feed(added(7, 1, type="function_call", call_id="c", arguments=""))
        acc.feed(ev("response.function_call_arguments.delta", 8, output_index=1, delta='{"a"'))
        acc.feed(ev("response.function_call_arguments.delta", 9, output_index=1, delta=":1}"))
        acc.feed(added(10, 2, type="reasoning", summary=[]))
        acc.feed(
            ev(
                "response.reasoning_summary_part.added",
                11,
                output_index=2,
                summary_index=0,
                part={"type": "summary_text", "text": ""},
            )
        )
        acc.feed(
            ev(
                "response.reasoning_summary_text.delta",
                12,
                output_index=2,
                summary_index=0,
                delta="think",
            )
        )
        acc.feed(added(13, 3, type="code_interpreter_call", code=""))
        acc.feed(ev("response.code_interpreter_call_code.delta", 14, output_index=3, delta="1+"))
        acc.feed(ev("response.code_interpreter_call_code.delta", 15, output_index=3, delta="1"))
        snap = acc.snapshot
        assert snap is not None
        assert snap["output"][0]["content"] == [
            {"type": "output_text", "text": "Hello", "annotations": []},
            {"type": "refusal", "refusal": "No"},
        ]
        assert snap["output"][1]["arguments"] == '{"a":1}'
        assert snap["output"][2]["summary"] == [{"type": "summary_text", "text": "think"}]
        assert snap["output"][3]["code"] == "1+1"
        assert acc.output_text == "Hello"

    def test_reading_the_snapshot_between_deltas_keeps_appending(self) -> None:
        acc = with_message()
        seen = []
        for seq, piece in enumerate(["a", "b", "c"], start=2):
            acc.feed(text_delta(seq, piece))
            seen.append(acc.output_text)
        assert seen == ["a", "ab", "abc"]

    def test_done_events_overwrite_what_deltas_built(self) -> None:
        acc = with_message()
        acc.feed(text_delta(2, "Hi"))
        acc.feed(ev("response.output_text.done", 3, output_index=0, content_index=0, text="Hello!"))
        acc.feed(text_delta(4, "?"))
        assert acc.output_text == "Hello!?"

    def test_annotations_are_placed_at_their_index(self) -> None:
        acc = with_message([{"type": "output_text", "text": "", "annotations": []}])
        acc.feed(
            ev(
                "response.output_text.annotation.added",
                2,
                output_index=0,
                content_index=0,
                annotation_index=0,
                annotation={"type": "url_citation", "url": "u"},
            )
        )
        acc.feed(
            ev(
                "response.output_text.annotation.added",
                3,
                output_index=0,
                content_index=0,
                annotation_index=1,
                annotation={"type": "url_citation", "url": "v"},
            )
        )
        snap = acc.snapshot
        assert snap is not None
        assert [a["url"] for a in snap["output"][0]["content"][0]["annotations"]] == ["u", "v"]

    def test_a_delta_for_a_missing_item_is_ignored_and_counted(self) -> None:
        acc = ResponseAccumulator()
        acc.feed(created())
        acc.feed(ev("response.output_text.delta", 1, output_index=5, content_index=0, delta="x"))
        assert acc.anomalies == 1
        assert acc.snapshot is not None
        assert acc.snapshot["output"] == []


class TestLifecycle:
    def test_queued_and_in_progress_update_the_status(self) -> None:
        acc = ResponseAccumulator()
        acc.feed(created(status="queued"))
        assert acc.status == "queued"
        acc.feed(
            ev(
                "response.in_progress",
                1,
                response={"id": "resp_1", "status": "in_progress", "output": []},
            )
        )
        assert acc.status == "in_progress"
        assert acc.response_id == "resp_1"

    @pytest.mark.parametrize(
        "terminal", ["response.completed", "response.failed", "response.incomplete"]
    )
    def test_every_terminal_event_gives_its_final_response(self, terminal: str) -> None:
        """Unlike the SDK, failed and incomplete also return their final Response."""
        final = {
            "id": "resp_1",
            "status": terminal.split(".")[1],
            "output": [],
            "incomplete_details": {"reason": "max_output_tokens"},
        }
        acc = ResponseAccumulator()
        acc.feed(created())
        acc.feed(ev(terminal, 1, response=final))
        assert acc.done
        assert acc.result == final
        assert acc.status == final["status"]

    def test_events_after_completed_advance_the_cursor_but_never_overwrite_it(self) -> None:
        final = {"id": "resp_1", "status": "completed", "output": []}
        acc = ResponseAccumulator()
        acc.feed(created())
        acc.feed(ev("response.completed", 1, response=final))
        assert acc.feed(ev("response.rate_limits.updated", 2, rate_limits=[]))
        assert acc.feed(
            ev("response.in_progress", 3, response={"id": "resp_1", "status": "in_progress"})
        )
        assert acc.result == final
        assert acc.status == "completed"
        assert acc.cursor == 3

    def test_an_error_keeps_the_partial_snapshot_and_a_following_failed_is_final(self) -> None:
        acc = with_message()
        acc.feed(text_delta(2, "part"))
        acc.feed(ev("error", 3, code="server_error", message="boom", param=None))
        assert acc.error == {"code": "server_error", "message": "boom", "param": None, "type": None}
        assert not acc.done
        assert acc.output_text == "part"
        failed = {
            "id": "resp_1",
            "status": "failed",
            "error": {"code": "server_error"},
            "output": [],
        }
        acc.feed(ev("response.failed", 4, response=failed))
        assert acc.result == failed

    def test_the_nested_gateway_error_form_is_normalised(self) -> None:
        acc = ResponseAccumulator()
        acc.feed(
            ev(
                "error",
                0,
                error={
                    "type": "invalid_request_error",
                    "code": "bad",
                    "message": "nope",
                    "param": "x",
                },
            )
        )
        assert acc.error == {
            "code": "bad",
            "message": "nope",
            "param": "x",
            "type": "invalid_request_error",
        }


class TestOrderAndResume:
    def test_a_gap_raises_and_leaves_the_state_untouched(self) -> None:
        acc = ResponseAccumulator()
        acc.feed(created())
        acc.feed(ev("response.in_progress", 1, response={"status": "in_progress"}))
        with pytest.raises(SequenceError) as info:
            acc.feed(ev("response.completed", 3, response={"status": "completed"}))
        assert (info.value.expected, info.value.got) == (2, 3)
        assert isinstance(info.value, ValueError)
        assert acc.cursor == 1
        assert not acc.done

    def test_duplicates_are_dropped_silently_and_counted(self) -> None:
        acc = with_message()
        delta = text_delta(2, "x")
        assert acc.feed(delta)
        assert not acc.feed(delta)
        assert not acc.feed(created())
        assert acc.duplicates == 2
        assert acc.output_text == "x"

    def test_resume_without_created_is_seeded_from_a_snapshot_and_skips_seen_events(
        self,
    ) -> None:
        """Recording 11 replays from seq 1; seeded at the create stream's seq N it drops 1..N."""
        create = events_of("10_responses_background_stream_create.sse")
        resume = events_of("11_responses_background_resume_starting_after_0.sse")
        for cut in range(2, len(create) - 1):
            first = ResponseAccumulator()
            for event in create[: cut + 1]:
                first.feed(event)
            seed = copy.deepcopy(first.snapshot)
            second = ResponseAccumulator(seed, cursor=first.cursor)
            delivered = [e for e in resume if second.feed(e)]
            assert [e.sequence_number for e in delivered] == list(range(cut + 1, 17))
            assert second.duplicates == cut
            assert second.result == resume[-1].data["response"]
            assert first.snapshot == seed, "the seed is copied, never mutated"

    def test_resume_from_a_seed_rebuilds_the_text_before_the_terminal_event(self) -> None:
        create = events_of("10_responses_background_stream_create.sse")
        resume = events_of("11_responses_background_resume_starting_after_0.sse")
        first = ResponseAccumulator()
        for event in create[:9]:  # through a few text deltas
            first.feed(event)
        second = ResponseAccumulator(first.snapshot, cursor=first.cursor)
        for event in resume:
            if event.type.startswith("response.output_text.delta"):
                second.feed(event)
            elif event.sequence_number > first.cursor:  # type: ignore[operator]
                break
        assert "2 + 2 equals 4."[: len(second.output_text)] == second.output_text

    def test_resume_with_no_seed_adopts_the_first_lifecycle_snapshot(self) -> None:
        resume = events_of("11_responses_background_resume_starting_after_0.sse")
        acc = ResponseAccumulator(cursor=0)
        for event in resume:
            acc.feed(event)
        assert acc.result == resume[-1].data["response"]
        assert acc.anomalies == 0

    def test_a_terminal_seed_is_already_done(self) -> None:
        acc = ResponseAccumulator({"id": "r", "status": "completed", "output": []}, cursor=9)
        assert acc.done
        assert acc.cursor == 9


class TestPieces:
    """A string arriving in deltas is kept in blocks of FOLD pieces, never re-joined."""

    def test_every_fold_pieces_become_one_block_and_the_text_is_unchanged(self) -> None:
        pieces = Pieces("<")
        words = [f"w{i}é " for i in range(3 * FOLD + 5)]
        for word in words:
            pieces.append(word)
        # Three blocks (the first holds the initial value too), then the 6 newest pieces.
        assert pieces.blocks == 3
        assert len(pieces) == 3 + 6
        assert pieces.text() == "<" + "".join(words)
        assert len(pieces) == 1

    def test_blocks_are_joined_once(self) -> None:
        """Appending is linear: a fold joins the pieces after the last block, not the blocks."""
        pieces = Pieces()
        for i in range(2 * FOLD):
            pieces.append(str(i % 10))
        first_block = pieces.parts[0]
        for _ in range(FOLD):
            pieces.append("x")
        assert pieces.parts[0] is first_block

    def test_an_empty_string_stays_empty(self) -> None:
        assert not Pieces()
        assert Pieces().text() == ""
        assert not Pieces()  # reading it did not make it non-empty

    @pytest.mark.parametrize("count", [FOLD - 2, FOLD - 1, FOLD, 2 * FOLD - 1, 2 * FOLD])
    def test_a_snapshot_read_at_a_fold_shows_every_delta(self, count: int) -> None:
        # A part's pieces start with its value before the first delta (""), so FOLD - 1 deltas
        # fold into exactly one block: the snapshot once took that for "nothing appended" and
        # showed the part's old value (an empty text, also what a durable resume was seeded
        # with).
        acc = with_message()
        words = [f"w{i} " for i in range(count)]
        for seq, word in enumerate(words, start=2):
            acc.feed(text_delta(seq, word))
        assert acc.output_text == "".join(words)

    def test_a_long_text_accumulates_exactly(self) -> None:
        acc = with_message()
        words = [f"{i} ✓" for i in range(10 * FOLD + 3)]
        for seq, word in enumerate(words, start=2):
            acc.feed(text_delta(seq, word))
            if seq % 97 == 0:  # a read in the middle of the stream
                assert acc.output_text == "".join(words[: seq - 1])
        assert acc.output_text == "".join(words)


class TestOneCopyOfALongText:
    """The `.done` events and the terminal event repeat the whole text; each arrives decoded
    into a string of its own, and the accumulator makes them hold the one it already has."""

    def finished(self, text: str) -> tuple[ResponseAccumulator, list[StreamEvent]]:
        """A message streamed as `text`, then its four authoritative repeats, each a distinct
        but equal string (as `json.loads` makes them)."""

        def again() -> str:
            return "".join(list(text))  # equal, not the same object

        part = {"type": "output_text", "text": "", "annotations": []}
        item = {"type": "message", "id": "msg_1", "role": "assistant", "content": [part]}
        done_part = {**part, "text": again()}
        done_item = {**item, "content": [{**part, "text": again()}]}
        instructions = "Answer briefly, in the voice of a ship's log. " * 4
        final = {
            "id": "resp_1",
            "status": "completed",
            "instructions": "".join(list(instructions)),
            "output": [{**item, "content": [{**part, "text": again()}]}],
        }
        acc = ResponseAccumulator()
        events = [
            created(instructions=instructions),
            added(1, 0, **item),
            ev("response.content_part.added", 2, output_index=0, content_index=0, part=part),
            text_delta(3, text[:10]),
            text_delta(4, text[10:]),
            ev("response.output_text.done", 5, output_index=0, content_index=0, text=again()),
            ev("response.content_part.done", 6, output_index=0, content_index=0, part=done_part),
            ev("response.output_item.done", 7, output_index=0, item=done_item),
            ev("response.completed", 8, response=final),
        ]
        for event in events:
            acc.feed(event)
        return acc, events

    def test_the_repeats_hold_the_text_of_text_done(self) -> None:
        text = "Ahoy 😊 — " + "the sea was calm today. " * 20
        acc, events = self.finished(text)
        first = events[5].data["text"]
        repeats = [
            events[6].data["part"]["text"],
            events[7].data["item"]["content"][0]["text"],
            events[8].data["response"]["output"][0]["content"][0]["text"],
        ]
        assert first == text
        assert all(repeat is first for repeat in repeats)
        assert acc.output_text is first
        # `response.created`'s instructions, repeated by `response.completed`, are shared too.
        created_instructions = events[0].data["response"]["instructions"]
        assert events[8].data["response"]["instructions"] is created_instructions

    def test_short_strings_keep_their_own(self) -> None:
        _, events = self.finished("short")
        assert events[6].data["part"]["text"] == "short"
        assert events[6].data["part"]["text"] is not events[5].data["text"]

    def test_a_done_event_that_differs_keeps_its_value(self) -> None:
        acc = with_message()
        acc.feed(text_delta(2, "x" * 100))
        acc.feed(
            ev("response.output_text.done", 3, output_index=0, content_index=0, text="y" * 100)
        )
        part = {"type": "output_text", "text": "z" * 100}
        acc.feed(ev("response.content_part.done", 4, output_index=0, content_index=0, part=part))
        assert part["text"] == "z" * 100
        assert acc.output_text == "z" * 100

    def test_a_deeply_nested_terminal_response_is_walked_within_bounds(self) -> None:
        nested: dict[str, Any] = {"leaf": "v" * 100}
        for _ in range(5000):
            nested = {"n": nested}
        acc = ResponseAccumulator()
        acc.feed(created(metadata=copy.deepcopy({"n": {"leaf": "v" * 100}})))
        acc.feed(
            ev(
                "response.completed",
                1,
                response={"id": "resp_1", "status": "completed", "output": [], "metadata": nested},
            )
        )
        assert acc.result is not None
        assert acc.result["metadata"] is nested
