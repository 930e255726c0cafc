"""One event vocabulary for both APIs: `StreamEvent`.

Responses frames are passed on as they are (the parsed JSON object is `data`); Chat chunks are
mapped into the same semantic names by `ChatAccumulator.feed_chunk`.
"""

from __future__ import annotations

from collections.abc import Mapping
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
        received_at: Wall clock (`time.time()`) at decoding, for display only.
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
