"""The original's callback API: `handle_stream_events` and `format_stream_event`."""

from __future__ import annotations

import re
import typing
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from openai.types.responses import ResponseStreamEvent

from streamvisor._handlers import (
    CONTINUE,
    STOP,
    Continue,
    HandlerError,
    StreamIdleTimeout,
    display_type,
    format_stream_event,
    handle_stream_events,
)
from streamvisor.actors import BackgroundStatus, PollingStopped, ToolCall, ToolResult
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import Missed


def ev(type: str, seq: int, **data: Any) -> StreamEvent:
    return StreamEvent(type=type, sequence_number=seq, data={"type": type, **data})


TEXT = [
    ev("response.created", 0, response={"id": "resp_1", "status": "in_progress"}),
    ev("response.output_text.delta", 1, delta="Hel"),
    ev("response.output_text.delta", 2, delta="lo"),
    ev("response.completed", 3, response={"id": "resp_1", "status": "completed"}),
    ev("response.rate_limits.updated", 4),
]


class paced:
    """An event source that sleeps `gaps[i]` before event i (a class: nothing to finalize)."""

    def __init__(self, events: Sequence[object], gaps: Sequence[float] = ()) -> None:
        self._events = list(events)
        self._gaps = list(gaps)
        self._index = 0

    def __aiter__(self) -> paced:
        return self

    async def __anext__(self) -> Any:
        if self._index >= len(self._events):
            raise StopAsyncIteration
        index = self._index
        self._index += 1
        await trio.sleep(self._gaps[index] if index < len(self._gaps) else 0)
        return self._events[index]


class TestHandleStreamEvents:
    async def test_collects_events_until_the_terminal_one_inclusive(self) -> None:
        """A terminal event is handed to the handler, then ends the loop."""
        handled: list[str] = []
        seen = await handle_stream_events(paced(TEXT), lambda e: handled.append(e.type))
        assert [e.type for e in seen] == [e.type for e in TEXT[:4]]
        assert handled == [e.type for e in TEXT[:4]]

    async def test_stop_ends_the_loop_early(self) -> None:
        """A handler returning STOP gets no further events."""
        seen = await handle_stream_events(
            paced(TEXT), lambda e: STOP if e.type.endswith("delta") else CONTINUE
        )
        assert [e.sequence_number for e in seen] == [0, 1]

    async def test_async_handlers_are_awaited(self) -> None:
        """An async handler works the same as a plain one."""
        calls: list[int] = []

        async def handler(event: StreamEvent) -> Continue:
            await trio.lowlevel.checkpoint()
            calls.append(event.sequence_number)
            return CONTINUE

        await handle_stream_events(paced(TEXT), handler)
        assert calls == [0, 1, 2, 3]

    async def test_idle_timeout_raises_with_what_was_handled(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """No event within the idle timeout raises StreamIdleTimeout carrying the events so far."""
        with pytest.raises(StreamIdleTimeout) as info:
            await handle_stream_events(paced(TEXT, gaps=[0, 0, 31]), lambda e: None, timeout=30)
        assert info.value.timeout == 30
        assert [e.sequence_number for e in info.value.events] == [0, 1]
        assert isinstance(info.value, TimeoutError)

    async def test_continue_with_a_timeout_changes_the_idle_timeout(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """Continue(timeout=T) lets a slow phase through (the original's {continue, NewTimeout})."""
        seen = await handle_stream_events(
            paced(TEXT, gaps=[0, 0, 50]), lambda e: Continue(timeout=60), timeout=1
        )
        assert len(seen) == 4

    async def test_end_of_source_returns_what_was_seen(self) -> None:
        """A source that ends without a terminal event returns normally."""
        seen = await handle_stream_events(paced(TEXT[1:3]), lambda e: None)
        assert len(seen) == 2

    async def test_handler_error_returned_or_raised_is_raised_with_events(self) -> None:
        """{error, Reason}: returned or raised, it surfaces with the events handled."""
        with pytest.raises(HandlerError) as returned:
            await handle_stream_events(paced(TEXT), lambda e: HandlerError("bad token"))
        assert returned.value.reason == "bad token"
        assert len(returned.value.events) == 1

        def raising(event: StreamEvent) -> None:
            if event.sequence_number == 2:
                raise HandlerError("boom")

        with pytest.raises(HandlerError) as raised:
            await handle_stream_events(paced(TEXT), raising)
        assert [e.sequence_number for e in raised.value.events] == [0, 1, 2]

    async def test_a_wrong_return_value_is_a_type_error(self) -> None:
        """Anything but CONTINUE/Continue/STOP/HandlerError/None is refused, naming it."""
        with pytest.raises(TypeError, match="'ok'"):
            await handle_stream_events(paced(TEXT), lambda e: "ok")  # type: ignore[arg-type,return-value]

    def test_continue_rejects_a_non_positive_timeout(self) -> None:
        """Continue(timeout=0) is a programming error caught at construction."""
        with pytest.raises(ValueError, match="timeout"):
            Continue(timeout=0)


class TestFormatStreamEvent:
    @pytest.mark.parametrize(
        ("event", "line"),
        [
            (TEXT[1], "[text_delta] Hel"),
            (ev("response.refusal.delta", 1, delta="No"), "[refusal_delta] No"),
            (
                ev("response.function_call_arguments.done", 5, name="get_weather", arguments="{}"),
                "[tool_calls] get_weather({})",
            ),
            (TEXT[3], "[completion_finished] resp_1 completed"),
            (
                ev(
                    "response.incomplete",
                    9,
                    response={
                        "id": "r",
                        "status": "incomplete",
                        "incomplete_details": {"reason": "max_output_tokens"},
                    },
                ),
                "[completion_incomplete] r incomplete (max_output_tokens)",
            ),
            (
                ev("error", 2, code="server_error", message="oops"),
                "[stream_error] server_error: oops",
            ),
            (
                ev("response.output_item.added", 1, item={"type": "function_call", "name": "f"}),
                "[item_started] function_call f",
            ),
            (Missed(3), "[missed_events] 3 event(s) dropped for a slow subscriber"),
            (
                ev("response.output_item.done", 7, output_index=0, finish_reason="stop", item={}),
                "[item_done] choice 0 finished: stop",
            ),
            (
                ev(
                    "response.completed",
                    8,
                    response={"id": "chatcmpl-1", "choices": [{"finish_reason": "tool_calls"}]},
                ),
                "[completion_finished] chatcmpl-1 tool_calls",
            ),
        ],
    )
    def test_lines(self, event: object, line: str) -> None:
        """Each kind of event gets a readable one-line form."""
        assert format_stream_event(event) == line

    def test_an_unknown_event_type_gets_a_short_name_of_the_same_kind(self) -> None:
        """A type the table does not know loses its `response.` prefix and its dots."""
        event = ev("response.rate_limits.updated", 4)
        assert display_type(event) == "rate_limits_updated"
        assert format_stream_event(event).startswith("[rate_limits_updated] ")

    def test_every_responses_event_type_the_sdk_knows_gets_a_short_snake_case_label(
        self,
    ) -> None:
        """One labelling: no raw `response.*` name ever sits beside the short ones."""
        union = typing.get_args(ResponseStreamEvent)[0]
        types = [
            typing.get_args(m.model_fields["type"].annotation)[0] for m in typing.get_args(union)
        ]
        assert "response.reasoning_summary_part.added" in types
        labels = {t: display_type(ev(t, 0)) for t in [*types, "keepalive"]}
        assert {
            t: label for t, label in labels.items() if not re.fullmatch(r"[a-z_]+", label)
        } == {}

    @pytest.mark.parametrize(
        ("event", "line"),
        [
            (
                ev("response.reasoning_summary_part.added", 4, part={"type": "summary_text"}),
                '[reasoning_part_started] {"type":"response.reasoning_summary_part.added",'
                '"part":{"type":"summary_text"}}',
            ),
            (
                ev("response.content_part.done", 9),
                '[part_done] {"type":"response.content_part.done"}',
            ),
            (
                ToolCall("helper", "call_1", "calculator", '{"a":1}', 1),
                '[tool_call] calculator({"a":1})',
            ),
            (
                ToolResult("helper", "call_1", "calculator", "boom", True, 0.1),
                "[tool_result] calculator returned boom (error)",
            ),
            (
                BackgroundStatus("resp_1", "completed", "in_progress", {}, 1.0, None),
                "[background_status] resp_1: in_progress → completed",
            ),
            (
                PollingStopped("resp_1", "queued", "insufficient quota", "insufficient_quota", 1.0),
                "[polling_stopped] resp_1 (queued): insufficient quota",
            ),
        ],
    )
    def test_records_beside_the_stream_are_labelled_alike(self, event: object, line: str) -> None:
        """Agent and background records get snake_case labels and a readable detail."""
        assert format_stream_event(event) == line
