"""The original's callback style: `handle_stream_events` and `format_stream_event`.

The Erlang system let a caller run `handle_stream_events(Handler, Timeout)`: a receive loop where
the handler returned `continue`, `{continue, NewTimeout}`, `stop` or `{error, Reason}`, and
`format_stream_event/1` turned an event into a display type (`text_delta`, `tool_calls`,
`completion_finished`, ...). Both are kept here over any async iterable of events — normally a
bus `Subscription` — with the same contract, typed.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from typing import Any, Final, TypeAlias

import attrs
import trio

from .actors import BackgroundStatus, PollingStopped, ToolCall, ToolResult
from .openai import StreamEvent
from .supervisor import Missed

__all__ = [
    "CONTINUE",
    "STOP",
    "Continue",
    "HandlerError",
    "HandlerResult",
    "Stop",
    "StreamIdleTimeout",
    "display_type",
    "format_stream_event",
    "handle_stream_events",
]


@attrs.frozen
class Continue:
    """Keep going; with `timeout`, wait at most that long for the next event from now on."""

    timeout: float | None = attrs.field(default=None)

    @timeout.validator
    def _check(self, _: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and not value > 0:
            raise ValueError(f"Continue(timeout={value!r}): a timeout must be > 0 seconds")


@attrs.frozen
class Stop:
    """Stop handling; the events seen so far are returned."""


CONTINUE: Final = Continue()
STOP: Final = Stop()


class StreamIdleTimeout(TimeoutError):
    """No event arrived within the handler's idle timeout.

    Attributes:
        timeout: The idle timeout that expired, in seconds.
        events: The events handled before it expired.
    """

    def __init__(self, timeout: float, events: list[object]) -> None:
        super().__init__(f"no stream event within {timeout:g} s ({len(events)} handled before)")
        self.timeout = timeout
        self.events = events


class HandlerError(Exception):
    """The handler asked to stop with an error (the original's `{error, Reason}`).

    A handler may return it or raise it; either way `handle_stream_events` raises it, with the
    events handled so far on `.events`.
    """

    def __init__(self, reason: object) -> None:
        super().__init__(f"stream handler stopped with an error: {reason!r}")
        self.reason = reason
        self.events: list[object] = []


HandlerResult: TypeAlias = Continue | Stop | HandlerError | None
Handler: TypeAlias = Callable[[Any], HandlerResult | Awaitable[HandlerResult]]


async def handle_stream_events(
    events: AsyncIterable[Any],
    handler: Handler,
    timeout: float | None = 30.0,  # noqa: ASYNC109 - an idle timeout per event, the original API
    *,
    stop_on_terminal: bool = True,
) -> list[Any]:
    """Feed each event to `handler` until it says stop, a terminal event passes, or time runs out.

    `handler(event)` (plain or async) returns `CONTINUE` (or None), `Continue(timeout=T)` to change
    the idle timeout, `STOP`, or a `HandlerError` (returned or raised). With `stop_on_terminal`,
    a terminal event (`event.terminal`) is handed to the handler and then ends the loop — the
    original's `stream_complete` / `stream_error`.

    Returns the list of events handled, in order.

    Raises:
        StreamIdleTimeout: no event within the current idle timeout (`timeout=None`: wait forever).
        HandlerError: the handler returned or raised one.
        Whatever the event source raises (e.g. `SubscriberOverflow` for a disconnected
        subscriber) and whatever else the handler raises.
    """
    seen: list[Any] = []
    idle = timeout
    iterator = aiter(events)
    while True:
        try:
            with trio.fail_after(idle if idle is not None else float("inf")):
                event = await anext(iterator)
        except StopAsyncIteration:
            return seen
        except trio.TooSlowError:
            raise StreamIdleTimeout(idle if idle is not None else float("inf"), seen) from None
        seen.append(event)
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                result = await result
        except HandlerError as err:
            err.events = seen
            raise
        if isinstance(result, HandlerError):
            result.events = seen
            raise result
        if isinstance(result, Stop):
            return seen
        if isinstance(result, Continue) and result.timeout is not None:
            idle = result.timeout
        elif result is not None and not isinstance(result, Continue):
            raise TypeError(
                f"stream handler returned {result!r}; expected CONTINUE, Continue(timeout=...), "
                "STOP or a HandlerError"
            )
        if stop_on_terminal and getattr(event, "terminal", False):
            return seen


#: The original's display types, and a short name of the same kind for every other event of
#: either API, so that one stream's lines read alike.
_DISPLAY: Final[Mapping[str, str]] = {
    "response.created": "stream_started",
    "response.queued": "queued",
    "response.in_progress": "in_progress",
    "response.output_text.delta": "text_delta",
    "response.output_text.done": "text_done",
    "response.output_text.annotation.added": "annotation_added",
    "response.refusal.delta": "refusal_delta",
    "response.refusal.done": "refusal_done",
    "response.output_item.added": "item_started",
    "response.output_item.done": "item_done",
    "response.content_part.added": "part_started",
    "response.content_part.done": "part_done",
    "response.function_call_arguments.delta": "tool_call_delta",
    "response.function_call_arguments.done": "tool_calls",
    "response.custom_tool_call_input.delta": "tool_call_delta",
    "response.custom_tool_call_input.done": "tool_calls",
    "response.reasoning_summary_part.added": "reasoning_part_started",
    "response.reasoning_summary_part.done": "reasoning_part_done",
    "response.reasoning_summary_text.delta": "reasoning_delta",
    "response.reasoning_summary_text.done": "reasoning_done",
    "response.reasoning_text.delta": "reasoning_delta",
    "response.reasoning_text.done": "reasoning_done",
    "response.completed": "completion_finished",
    "response.incomplete": "completion_incomplete",
    "response.failed": "completion_failed",
    "response.cancelled": "completion_cancelled",
    "error": "stream_error",
    "keepalive": "keepalive",
}

_CAMEL_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def display_type(event: object) -> str:
    """The original's display type for an event (`text_delta`, `tool_calls`, ...).

    Every label is a short snake_case name: an event type the table does not know loses its
    ``response.`` prefix (``response.web_search_call.searching``: ``web_search_call_searching``);
    a record that is not a stream event is named after its class (``tool_call``,
    ``polling_stopped``), a background status change is ``background_status``.
    """
    if isinstance(event, StreamEvent):
        known = _DISPLAY.get(event.type)
        return known or event.type.removeprefix("response.").replace(".", "_")
    if isinstance(event, Missed):
        return "missed_events"
    if isinstance(event, BackgroundStatus):
        return "background_status"
    return _CAMEL_HUMP.sub("_", type(event).__name__).lower()


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_stream_event(event: object) -> str:
    """One human-readable line for an event: `[display_type] detail`.

    Deltas show their text as is; tool calls their name and arguments (an agent's results what
    they returned); terminal events the final status (and the error, if any); bus notices how
    many events a slow subscriber missed; background status changes the transition.
    """
    kind = display_type(event)
    if isinstance(event, Missed):
        return f"[{kind}] {event.count} event(s) dropped for a slow subscriber"
    if isinstance(event, BackgroundStatus):
        arrow = f"{event.previous} → {event.status}" if event.previous else event.status
        return f"[{kind}] {event.response_id}: {arrow}"
    if isinstance(event, PollingStopped):
        return f"[{kind}] {event.response_id} ({event.status}): {event.error}"
    if isinstance(event, ToolCall):
        return f"[{kind}] {event.name}({event.arguments})"
    if isinstance(event, ToolResult):
        flag = " (error)" if event.is_error else ""
        return f"[{kind}] {event.name} returned {_short(event.output)}{flag}"
    if not isinstance(event, StreamEvent):
        return f"[{kind}] {event!r}"
    data = event.data
    if "delta" in data and isinstance(data["delta"], str):
        return f"[{kind}] {data['delta']}"
    if event.type == "response.function_call_arguments.done":
        return f"[{kind}] {data.get('name') or '?'}({data.get('arguments', '')})"
    if event.type == "error":
        code = data.get("code") or data.get("type") or "error"
        return f"[{kind}] {code}: {data.get('message', '')}"
    response = data.get("response")
    if isinstance(response, Mapping):
        status = response.get("status")
        choices = response.get("choices")
        if status is None and isinstance(choices, list):  # a chat completion
            reasons = sorted(
                {str(c.get("finish_reason")) for c in choices if c.get("finish_reason")}
            )
            status = ",".join(sorted(str(r) for r in reasons)) or None
        rid = response.get("id", event.response_id)
        detail = f"{rid} {status}" if status else str(rid or "")
        error = response.get("error")
        if isinstance(error, Mapping) and error:
            detail += f" ({error.get('code')}: {error.get('message')})"
        incomplete = response.get("incomplete_details")
        if isinstance(incomplete, Mapping) and incomplete:
            detail += f" ({incomplete.get('reason')})"
        return f"[{kind}] {detail}".rstrip()
    if "finish_reason" in data:  # a chat choice finished
        return f"[{kind}] choice {data.get('output_index', 0)} finished: {data['finish_reason']}"
    item = data.get("item")
    if isinstance(item, Mapping):
        name = item.get("name")
        return f"[{kind}] {item.get('type')}{f' {name}' if name else ''}"
    return f"[{kind}] {_short(dict(data))}"
