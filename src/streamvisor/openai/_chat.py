"""`ChatAccumulator`: Chat Completions chunks mapped into the Responses vocabulary and assembled.

`feed_chunk(chunk)` is the parser's path (`EventStream` calls its two halves directly: the
lone-content-delta fast path, then the general case): it accumulates the chunk and returns the
mapped events (sequence numbers from 0). `finish()` (on `data: [DONE]`) returns the terminal
event whose `data["response"]` is the assembled chat completion. `feed(event)` rebuilds the same
state from mapped events (e.g. on a subscriber's side).

Mapping (docs/contracts.md §2):

* first chunk → `response.created` (`data["response"]`: id, model, created, status in_progress)
* `delta.content` → `response.output_text.delta` (`delta`, `output_index` = choice index)
* `delta.refusal` → `response.refusal.delta`
* first fragment of tool call *i* → `response.output_item.added` (`item`: a function_call with
  `call_id`, `name`; `tool_index` = i), then every non-empty `arguments` piece →
  `response.function_call_arguments.delta` (`call_id`, `name`, `delta`, `tool_index`)
* `finish_reason` → `response.output_item.done` (`finish_reason`, `item`: the choice so far)
* `{"error": {...}}` → `error` (flat `code`, `message`, `param`, `type`)
* `[DONE]` → `response.completed`, or `response.incomplete` when any choice finished with
  `length` / `content_filter`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ._events import StreamEvent, new_event
from ._responses import Pieces, in_sequence, normalize_error

__all__ = ["ChatAccumulator"]

_INCOMPLETE_REASONS = frozenset({"length", "content_filter"})


class _ToolCall:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self, id: str | None, type: str, name: str | None) -> None:
        self.id = id
        self.type = type
        self.name = name
        self.arguments = Pieces()

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments.text()},
        }


class _Choice:
    __slots__ = (
        "content",
        "finish_reason",
        "function_call",
        "logprobs",
        "refusal",
        "role",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content = Pieces()
        self.refusal = Pieces()
        self.tool_calls: dict[int, _ToolCall] = {}
        self.function_call: _ToolCall | None = None
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def as_dict(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": self.role,
            "content": self.content.text() if self.content else None,
            "refusal": self.refusal.text() if self.refusal else None,
        }
        if self.tool_calls:
            message["tool_calls"] = [self.tool_calls[i].as_dict() for i in sorted(self.tool_calls)]
        if self.function_call is not None:
            fc = self.function_call.as_dict()["function"]
            message["function_call"] = fc
        return {
            "index": index,
            "message": message,
            "finish_reason": self.finish_reason,
            "logprobs": self.logprobs,
        }


class ChatAccumulator:
    """Assembles a chat completion from chunks (or from mapped events); keeps the cursor.

    Args:
        session_id: Copied onto every event produced by `feed_chunk` / `finish`.
    """

    __slots__ = (
        "_choices",
        "_cursor",
        "_final",
        "_meta",
        "_seq",
        "_usage",
        "duplicates",
        "error",
        "final_type",
        "response_id",
        "session_id",
    )

    def __init__(self, *, session_id: str | None = None) -> None:
        self.session_id = session_id
        self.response_id: str | None = None
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}
        self._usage: Any = None
        self._seq = -1
        self._cursor: int | None = None
        self._final: dict[str, Any] | None = None
        #: The terminal event type once finished (`response.completed` / `.incomplete`).
        self.final_type: str | None = None
        #: The normalised `error` frame (`code`, `message`, `param`, `type`), if one arrived.
        self.error: dict[str, Any] | None = None
        #: Events dropped by `feed` because their number was at or below the cursor.
        self.duplicates = 0

    # -- reading ---------------------------------------------------------------------------

    @property
    def cursor(self) -> int | None:
        """The last sequence number produced or accepted."""
        return self._cursor

    @property
    def done(self) -> bool:
        return self._final is not None

    @property
    def snapshot(self) -> dict[str, Any]:
        """The chat completion assembled so far (a new dict on every read)."""
        if self._final is not None:
            return self._final
        return self._build()

    @property
    def result(self) -> dict[str, Any] | None:
        """The final chat completion (after `[DONE]`), else None."""
        return self._final

    @property
    def output_text(self) -> str:
        """The content of choice 0 so far."""
        choice = self._choices.get(0)
        return choice.content.text() if choice is not None else ""

    def _build(self) -> dict[str, Any]:
        completion: dict[str, Any] = {
            "id": self.response_id,
            "object": "chat.completion",
            "created": self._meta.get("created"),
            "model": self._meta.get("model"),
            "choices": [self._choices[i].as_dict(i) for i in sorted(self._choices)],
            "usage": self._usage,
        }
        for key in ("system_fingerprint", "service_tier"):
            if key in self._meta:
                completion[key] = self._meta[key]
        return completion

    # -- the parser's path -----------------------------------------------------------------

    def _event(self, type: str, data: dict[str, Any], now: float) -> StreamEvent:
        self._seq = seq = self._seq + 1
        self._cursor = seq
        return new_event(type, seq, data, self.response_id, self.session_id, "chat", now)

    def feed_chunk(
        self, chunk: Mapping[str, Any], *, now: float | None = None
    ) -> list[StreamEvent]:
        """Accumulate one decoded `data:` object; return the events it maps to (often one).

        `now` is the events' `received_at` (default: the current wall clock).
        """
        if now is None:
            now = time.time()
        event = self._feed_delta(chunk, now)
        if event is not None:
            return [event]
        return self._feed_chunk(chunk, now)

    def _feed_delta(self, chunk: Mapping[str, Any], now: float) -> StreamEvent | None:
        """The hot path of `feed_chunk` (the stream calls it first): a chunk that is one content
        delta of a known choice and nothing else is accumulated and its one event returned;
        for any other chunk nothing changes and None is returned."""
        choices = chunk.get("choices")
        if not choices or len(choices) != 1 or self.response_id is None:
            return None
        ch = choices[0]
        delta = ch.get("delta")
        if (
            not delta
            or len(delta) != 1
            or ch.get("finish_reason") is not None
            or ch.get("logprobs")
            or chunk.get("usage")
            or chunk.get("error")
        ):
            return None
        text = delta.get("content")
        idx = ch.get("index", 0)
        st = self._choices.get(idx)
        if not text or st is None:
            return None
        st.content.append(text)
        self._seq = self._cursor = seq = self._seq + 1
        rid = self.response_id
        data = {
            "type": "response.output_text.delta",
            "delta": text,
            "output_index": idx,
            "content_index": 0,
            "item_id": rid,
        }
        return new_event("response.output_text.delta", seq, data, rid, self.session_id, "chat", now)

    def _feed_chunk(self, chunk: Mapping[str, Any], now: float) -> list[StreamEvent]:
        """`feed_chunk` for every chunk `_feed_delta` declined."""
        choices = chunk.get("choices")
        error = chunk.get("error")
        if error:
            self.error = normalize_error(chunk)
            return [self._event("error", {"type": "error", "error": error}, now)]
        events: list[StreamEvent] = []
        if self.response_id is None:
            self.response_id = chunk.get("id")
            meta = self._meta
            meta["created"] = chunk.get("created")
            meta["model"] = chunk.get("model")
            resp = {
                "id": self.response_id,
                "object": "chat.completion",
                "created": meta["created"],
                "model": meta["model"],
                "status": "in_progress",
            }
            for key in ("system_fingerprint", "service_tier"):
                if chunk.get(key) is not None:
                    resp[key] = chunk[key]
            events.append(
                self._event("response.created", {"type": "response.created", "response": resp}, now)
            )
        for key in ("system_fingerprint", "service_tier"):
            value = chunk.get(key)
            if value is not None:
                self._meta[key] = value
        for ch in choices or ():
            idx = ch.get("index", 0)
            st = self._choices.get(idx)
            if st is None:
                st = self._choices[idx] = _Choice()
            delta = ch.get("delta")
            logprobs = ch.get("logprobs")
            if delta:
                text = delta.get("content")
                if text:
                    st.content.append(text)
                    events.append(
                        self._text_delta("response.output_text.delta", text, idx, now, logprobs)
                    )
                refusal = delta.get("refusal")
                if refusal:
                    st.refusal.append(refusal)
                    events.append(
                        self._text_delta("response.refusal.delta", refusal, idx, now, logprobs)
                    )
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    for frag in tool_calls:
                        self._tool_fragment(st, idx, frag, events, now)
                fcall = delta.get("function_call")
                if fcall:
                    self._function_call(st, idx, fcall, events, now)
                role = delta.get("role")
                if role:
                    st.role = role
            if logprobs:
                if st.logprobs is None:
                    st.logprobs = {}
                for key, values in logprobs.items():
                    if values:
                        st.logprobs.setdefault(key, []).extend(values)
            reason = ch.get("finish_reason")
            if reason:
                st.finish_reason = reason
                events.append(
                    self._event(
                        "response.output_item.done",
                        {
                            "type": "response.output_item.done",
                            "output_index": idx,
                            "finish_reason": reason,
                            "item": st.as_dict(idx),
                        },
                        now,
                    )
                )
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        return events

    def _text_delta(
        self, kind: str, piece: str, idx: int, now: float, logprobs: Any = None
    ) -> StreamEvent:
        """An ``output_text`` or ``refusal`` delta of choice ``idx`` (`_feed_delta` inlines the
        former on its hot path); the chunk's ``logprobs``, if any, ride along."""
        data = {
            "type": kind,
            "delta": piece,
            "output_index": idx,
            "content_index": 0,
            "item_id": self.response_id,
        }
        if logprobs:
            data["logprobs"] = logprobs
        return self._event(kind, data, now)

    def _tool_fragment(
        self,
        st: _Choice,
        idx: int,
        frag: Mapping[str, Any],
        events: list[StreamEvent],
        now: float,
    ) -> None:
        tidx = frag.get("index", 0)
        fn = frag.get("function") or {}
        call = st.tool_calls.get(tidx)
        if call is None:
            call = st.tool_calls[tidx] = _ToolCall(
                frag.get("id"), frag.get("type") or "function", fn.get("name")
            )
            item = {
                "type": "function_call",
                "id": call.id,
                "call_id": call.id,
                "name": call.name,
                "arguments": "",
                "status": "in_progress",
            }
            events.append(
                self._event(
                    "response.output_item.added",
                    {
                        "type": "response.output_item.added",
                        "output_index": idx,
                        "tool_index": tidx,
                        "item": item,
                    },
                    now,
                )
            )
        else:
            # Later fragments may complete fields the first one lacked.
            if call.id is None and frag.get("id"):
                call.id = frag["id"]
            if fn.get("name") and not call.name:
                call.name = fn["name"]
        piece = fn.get("arguments")
        if piece:
            call.arguments.append(piece)
            events.append(self._arguments_delta(idx, tidx, call.id, call.name, piece, now))

    def _function_call(
        self,
        st: _Choice,
        idx: int,
        fcall: Mapping[str, Any],
        events: list[StreamEvent],
        now: float,
    ) -> None:
        call = st.function_call
        if call is None:
            call = st.function_call = _ToolCall(None, "function", fcall.get("name"))
        elif fcall.get("name") and not call.name:
            call.name = fcall["name"]
        piece = fcall.get("arguments")
        if piece:
            call.arguments.append(piece)
            events.append(self._arguments_delta(idx, None, None, call.name, piece, now))

    def _arguments_delta(
        self,
        idx: int,
        tidx: int | None,
        call_id: str | None,
        name: str | None,
        piece: str,
        now: float,
    ) -> StreamEvent:
        """`response.function_call_arguments.delta` for a tool call (``tidx``) or the legacy
        function call (``tidx`` None)."""
        return self._event(
            "response.function_call_arguments.delta",
            {
                "type": "response.function_call_arguments.delta",
                "output_index": idx,
                "tool_index": tidx,
                "call_id": call_id,
                "item_id": call_id,
                "name": name,
                "delta": piece,
            },
            now,
        )

    def finish(self) -> StreamEvent:
        """The terminal event for `data: [DONE]`, carrying the assembled completion."""
        final = self._final = self._build()
        reasons = {c.finish_reason for c in self._choices.values()}
        kind = "response.incomplete" if reasons & _INCOMPLETE_REASONS else "response.completed"
        self.final_type = kind
        return self._event(kind, {"type": kind, "response": final}, time.time())

    # -- the replay path -------------------------------------------------------------------

    def feed(self, event: StreamEvent) -> bool:
        """Rebuild state from one mapped chat event. Returns False for a duplicate.

        Raises:
            SequenceError: the event's number skips ahead of `cursor + 1`; nothing was applied.
        """
        seq = event.sequence_number
        if not in_sequence(self._cursor, seq, self):
            self.duplicates += 1
            return False
        self._cursor = self._seq = seq
        if self._final is not None:
            return True
        data, kind = event.data, event.type
        if kind == "response.output_text.delta":
            self._choice(data).content.append(data.get("delta") or "")
        elif kind == "response.function_call_arguments.delta":
            st = self._choice(data)
            tidx = data.get("tool_index")
            if tidx is None:
                call = st.function_call
                if call is None:
                    call = st.function_call = _ToolCall(None, "function", data.get("name"))
            else:
                call = st.tool_calls.get(tidx)
                if call is None:
                    call = st.tool_calls[tidx] = _ToolCall(
                        data.get("call_id"), "function", data.get("name")
                    )
            call.arguments.append(data.get("delta") or "")
        elif kind == "response.refusal.delta":
            self._choice(data).refusal.append(data.get("delta") or "")
        elif kind == "response.output_item.added":
            item = data.get("item") or {}
            self._choice(data).tool_calls[data.get("tool_index") or 0] = _ToolCall(
                item.get("call_id"), "function", item.get("name")
            )
        elif kind == "response.output_item.done":
            self._choice(data).finish_reason = data.get("finish_reason")
        elif kind == "response.created":
            resp = data.get("response") or {}
            self.response_id = resp.get("id")
            self._meta["created"] = resp.get("created")
            self._meta["model"] = resp.get("model")
        elif kind in ("response.completed", "response.incomplete"):
            self._final = dict(data.get("response") or {})
            self.final_type = kind
        elif kind == "error":
            self.error = normalize_error(data)
        return True

    def _choice(self, data: Mapping[str, Any]) -> _Choice:
        idx = data.get("output_index") or 0
        st = self._choices.get(idx)
        if st is None:
            st = self._choices[idx] = _Choice()
        return st
