"""One event vocabulary for both APIs: `StreamEvent`.

Responses frames are passed on as they are (the parsed JSON object is `data`); Chat chunks are
mapped into the same semantic names by `ChatAccumulator.feed_chunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

__all__ = ["TERMINAL_TYPES", "Api", "StreamEvent"]

Api = Literal["chat", "responses"]

#: Event types after which a stream is over (events after them may still arrive and are passed on).
TERMINAL_TYPES: frozenset[str] = frozenset(
    {
        "response.completed",
        "response.failed",
        "response.incomplete",
        "response.cancelled",
        "error",
    }
)


@attrs.frozen(slots=True, weakref_slot=False)
class StreamEvent:
    """One event of a stream, as delivered to consumers.

    Built once per frame on the hot path, so it carries no validators: the parser is the only
    producer and fills every field correctly. `data` is shared, never copied: treat it as
    read-only.

    Attributes:
        type: The OpenAI semantic name (`response.output_text.delta`, `error`, `keepalive`, ...).
        sequence_number: Gapless per stream. For Responses, the server's number (the resume
            cursor); assigned locally from the previous one for old streams that lack it and for
            Chat (from 0). A frame without a number inside a numbered stream (a bare
            `event: keepalive`) carries the current cursor (-1 before any) and does not move it.
        data: The frame's parsed JSON object (Responses) or the mapped fields (Chat).
        response_id: The response (or chat completion) id, once known.
        session_id: The caller's session id, passed through.
        api: "chat" or "responses".
        received_at: Wall clock (`time.time()`) when the network chunk holding the frame
            arrived, for display only.
    """

    type: str
    sequence_number: int
    data: Mapping[str, Any] = attrs.field(hash=False)
    response_id: str | None = None
    session_id: str | None = None
    api: Api = "responses"
    received_at: float = 0.0

    @property
    def terminal(self) -> bool:
        """True for completed / failed / incomplete / cancelled / error."""
        return self.type in TERMINAL_TYPES


_FIELDS = ("type", "sequence_number", "data", "response_id", "session_id", "api", "received_at")
_EventFactory = Callable[[str, int, Any, "str | None", "str | None", Any, float], StreamEvent]


def _event_factory() -> _EventFactory:
    """`StreamEvent(type, sequence_number, data, response_id, session_id, api, received_at)`,
    a third faster: it fills the slots directly instead of through the frozen class's
    `object.__setattr__` calls (one event per frame makes that the parsers' biggest fixed cost).
    Only valid while StreamEvent's fields are plain (no validator, converter or on_setattr
    hook to skip); otherwise the class itself is returned. Used by both parsers (`_chat.py`,
    `_stream.py`).
    """
    fields = attrs.fields(StreamEvent)
    hooks: list[object] = [h for f in fields for h in (f.validator, f.converter, f.on_setattr)]
    if tuple(f.name for f in fields) != _FIELDS or any(h is not None for h in hooks):
        return StreamEvent
    new = object.__new__
    cls = StreamEvent
    s0, s1, s2, s3, s4, s5, s6 = (getattr(cls, f.name).__set__ for f in fields)

    def new_event(
        type: str,
        sequence_number: int,
        data: Any,
        response_id: str | None,
        session_id: str | None,
        api: Any,
        received_at: float,
    ) -> StreamEvent:
        event: StreamEvent = new(cls)
        s0(event, type)
        s1(event, sequence_number)
        s2(event, data)
        s3(event, response_id)
        s4(event, session_id)
        s5(event, api)
        s6(event, received_at)
        return event

    return new_event


#: Build a `StreamEvent` on the parsers' hot path (see `_event_factory`).
new_event = _event_factory()
