"""How the demos print a stream: tokens inline as they arrive (Markdown made readable for a
terminal), every other event on a line of its own, and a summary of what the stream amounted to."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import trio

from ._console import Console, TerminalMarkdown
from ._handlers import CONTINUE, Continue, display_type, format_stream_event
from .openai import StreamEvent

__all__ = ["StreamStats", "describe", "output_text", "stream_printer"]


_QUIET: Final = frozenset(
    {
        # Each delta is shown as it arrives; these only restate or frame them.
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "keepalive",
    }
)


@attrs.define
class StreamStats:
    """What a printed stream amounted to, for the summary."""

    started: float = attrs.field(factory=trio.current_time)
    first_token: float | None = None
    #: When the first reasoning-summary token arrived (before any text, on reasoning models).
    first_reasoning: float | None = None
    #: When the first piece of a tool call's arguments arrived (a stream may have no text).
    first_tool_call: float | None = None
    #: How many events of each kind (`display_type`).
    events: Counter[str] = attrs.field(factory=Counter)
    text: list[str] = attrs.field(factory=list)
    reasoning: list[str] = attrs.field(factory=list)
    sequence: list[int] = attrs.field(factory=list)
    final: StreamEvent | None = None

    @property
    def gapless(self) -> bool:
        """Whether the events' sequence numbers ran without a gap."""
        start = self.sequence[0] if self.sequence else 0
        return self.sequence == list(range(start, start + len(self.sequence)))

    def summary(self) -> str:
        now = trio.current_time()
        if self.first_token is not None:
            first = f"first text token after {self.first_token - self.started:.2f}s"
            if self.first_reasoning is not None:
                first += f" (reasoning from {self.first_reasoning - self.started:.2f}s)"
        elif self.first_tool_call is not None:
            # No text to time: the call's arguments were the stream's first tokens.
            first = f"first tool-call delta after {self.first_tool_call - self.started:.2f}s"
        else:
            first = "no text tokens"
        status = self.final.type.removeprefix("response.") if self.final is not None else "-"
        return (
            f"{status}: {sum(self.events.values())} events, {len(self.text)} text deltas, "
            f"{first}, {now - self.started:.2f}s in all, "
            f"sequence numbers {'gapless' if self.gapless else 'with gaps'}"
        )


#: The streamed text a printer shows as it arrives, by event type: its label on the console.
_STREAMED: Final = {
    "response.output_text.delta": "assistant",
    "response.reasoning_summary_text.delta": "reasoning",
    "response.reasoning_text.delta": "reasoning",
}


def stream_printer(
    console: Console, stats: StreamStats, *, verbose: bool = False, canned: bool = False
) -> Callable[[object], Continue]:
    """A `handle_stream_events` handler: tokens inline (Markdown made readable; labelled
    "(canned)" when the embedded server wrote them), everything else one line each."""
    markdown = TerminalMarkdown(bold=console.tty)
    streaming: str | None = None  # the label whose text `markdown` holds

    def flush() -> None:
        nonlocal streaming
        if streaming is not None:
            console.token(streaming, markdown.finish())
            streaming = None

    def on_event(event: object) -> Continue:
        nonlocal streaming
        if not isinstance(event, StreamEvent):
            flush()
            console.line(f"  {format_stream_event(event)}")
            return CONTINUE
        stats.events[display_type(event)] += 1
        stats.sequence.append(event.sequence_number)
        delta = event.data.get("delta")
        label = _STREAMED.get(event.type)
        if label is not None and isinstance(delta, str):
            label += " (canned)" if canned else ""
            if label != streaming:
                flush()
                streaming = label
            if event.type == "response.output_text.delta":
                stats.first_token = stats.first_token or trio.current_time()
                stats.text.append(delta)
            else:
                stats.first_reasoning = stats.first_reasoning or trio.current_time()
                stats.reasoning.append(delta)
            console.token(label, markdown.feed(delta))
            return CONTINUE
        flush()
        if event.type == "response.function_call_arguments.delta" and isinstance(delta, str):
            stats.first_tool_call = stats.first_tool_call or trio.current_time()
            console.token(f"→ tool call {event.data.get('name') or ''}".rstrip(), delta)
        elif event.type.endswith(".delta") or (event.type in _QUIET and not verbose):
            pass
        else:
            console.line(f"  #{event.sequence_number:<3} {describe(event)}")
        if event.terminal:
            stats.final = event
        return CONTINUE

    return on_event


def describe(event: StreamEvent) -> str:
    """`format_stream_event`, shortened where it would repeat what the deltas or the stream's
    first line showed (the response id: on ``stream_started`` only)."""
    data = event.data
    kind = f"[{display_type(event)}]"
    if isinstance(data.get("text"), str) and event.type.endswith(".done"):
        return f"{kind} {len(data['text'])} chars"
    part = data.get("part")
    if isinstance(part, Mapping):
        index = data.get("summary_index", data.get("content_index"))
        return f"{kind} {part.get('type')} #{index} of output {data.get('output_index')}"
    line = format_stream_event(event)
    response = data.get("response")
    if isinstance(response, Mapping) and event.type != "response.created":
        line = line.replace(f" {response.get('id')}", "", 1)
        # `[queued] queued` says it twice.
        return kind if line == f"{kind} {display_type(event)}" else line
    return line


def output_text(response: Mapping[str, Any] | None) -> str:
    """The text of a Response (``output[*].content[*].text``) or of a chat completion."""
    if not response:
        return ""
    pieces: list[str] = []
    for item in response.get("output") or []:
        parts = item.get("content") if isinstance(item, Mapping) else None
        for part in parts or []:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
    for choice in response.get("choices") or []:
        content = (choice.get("message") or {}).get("content")
        if isinstance(content, str):
            pieces.append(content)
    return "".join(pieces)
