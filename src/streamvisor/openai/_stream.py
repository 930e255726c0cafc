"""`EventStream`: an open SSE response decoded into `StreamEvent`s and accumulated.

Per network read, taken straight from the response's connection when the body is not encoded
(`_body_chunks`, `_body.coalesced_body`): one `SSEParser.feed` (OpenAI's frame shape read with
string methods, anything else by httpx-sse's decoders). Per event: one JSON parse of its `data`
text, one `StreamEvent`, one accumulator step; no copies, no validation models. Unknown event
types (and `keepalive`) are passed on and consume their sequence number. Events are decoded and
accumulated one at a time, as they are delivered, so the accumulator's cursor never runs ahead of
what the consumer has seen.

Closing early is clean under trio: the body's async generators (ours, or httpx's and httpcore's)
are never left suspended for the garbage collector. `aclose()` closes the response and then runs
the body iterator to its end (a closed connection ends it at once with a ReadError), bounded and
shielded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import trio

from ._body import coalesced_body
from ._chat import ChatAccumulator
from ._errors import (
    MalformedStreamError,
    OutcomeUnknownError,
    SequenceError,
    StreamError,
    StreamInterrupted,
)
from ._events import TERMINAL_TYPES, Api, StreamEvent, new_event
from ._json import loads as _loads  # a frame's JSON, as json.loads reads it
from ._responses import ResponseAccumulator, normalize_error
from ._retry import RateLimits
from ._sse import Frame, SSEParser

__all__ = ["EventStream"]


_DRAIN_TIMEOUT = 1.0
_IDENTITY = ("", "identity")


def _body_chunks(response: httpx.Response) -> tuple[AsyncIterator[bytes], bool]:
    """The body's chunks, and whether they bypass `aiter_bytes()` (read straight from the
    response's connection or its byte stream: the caller then closes the response at the body's
    end and names the request in a transport error, as `aiter_raw` and `aiter_bytes` would).

    `Response.aiter_bytes()` runs every chunk through two more async generators (`aiter_raw`,
    then the content decoder and the re-chunker). A body without a content encoding needs
    neither: it is read as `aiter_raw` does (marking the stream consumed), one piece per
    network read (`coalesced_body`: h11 straight from the connection), or, where that does not
    apply (a mock transport, HTTP/2), one piece per HTTP chunk from the response's own byte
    stream. A compressed body (or one already read, as `httpx.Response(content=...)` is) goes
    through `aiter_bytes()` as before.
    """
    stream = response.stream
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if (
        encoding in _IDENTITY
        and isinstance(stream, httpx.AsyncByteStream)
        and not response.is_stream_consumed
        and not response.is_closed
    ):
        response.is_stream_consumed = True
        return coalesced_body(response) or stream.__aiter__(), True
    return response.aiter_bytes(), False


class EventStream:
    """The events of one streamed response; iterate it with `async for`.

    Obtained from `OpenAIClient.stream_chat`, `stream_response` or `resume_response` (async
    context managers that close the connection on exit). Iteration:

    * yields every event in order, including unknown types, `keepalive`, and events after the
      terminal one (e.g. `response.rate_limits.updated`); duplicates of a resume are dropped;
    * ends normally after the terminal event (Chat: `[DONE]`; Responses: EOF, or `linger`
      seconds of silence after the terminal event);
    * raises `StreamError` after yielding an `error` frame and whatever followed it;
    * raises `StreamInterrupted` (with `.cursor`) on EOF, a drop or the idle (read) timeout
      before a terminal event, `MalformedStreamError` on an undecodable frame;
    * raises `SequenceError` on a gap in `sequence_number` (Responses);
    * raises `OutcomeUnknownError` instead of `StreamInterrupted` when a background create's
      stream is lost before its first event named the response (it may exist server-side).
    """

    def __init__(
        self,
        response: httpx.Response,
        *,
        api: Api,
        accumulator: ChatAccumulator | ResponseAccumulator,
        session_id: str | None = None,
        response_id: str | None = None,
        rate_limits: RateLimits | None = None,
        background: bool = False,
        linger: float = 2.0,
    ) -> None:
        self.response = response
        self.api: Api = api
        self.accumulator = accumulator
        self.session_id = session_id
        self.request_id: str | None = response.headers.get("x-request-id")
        #: The `x-ratelimit-*` headers of the stream's response, if any.
        self.rate_limits = rate_limits
        self._response_id = response_id
        self._linger = linger
        self._background = background
        self._sse = SSEParser()
        self._chunks, self._direct = _body_chunks(response)
        self._body_done = False
        self._sse_closed = False
        # The events of the current chunk not decoded yet.
        self._frames: Iterator[Frame] = iter(())
        # When the current chunk arrived: the `received_at` of the events it carries.
        self._received = 0.0
        self._queue: list[StreamEvent] = []
        self._qi = 0
        self._terminal = False
        self._finished = False
        self._raised = False
        self._error: StreamEvent | None = None
        # Whether the server numbers its events (a resume always is; old streams are not).
        self._numbered = accumulator.cursor is not None
        self._decode = self._decode_responses if api == "responses" else self._decode_chat
        self._chat = accumulator if isinstance(accumulator, ChatAccumulator) else None
        #: Events yielded so far (the client's ``statistics`` reads it: one increment per event,
        #: the only thing metrics add to this loop).
        self.delivered = 0
        # How it ended, once known (see `outcome`).
        self._ended: str | None = None

    @property
    def response_id(self) -> str | None:
        if self._response_id is None:
            self._response_id = self.accumulator.response_id
        return self._response_id

    @property
    def cursor(self) -> int | None:
        """The last sequence number delivered: resume with `starting_after=cursor`."""
        return self.accumulator.cursor

    @property
    def terminal_seen(self) -> bool:
        """True once the terminal event (not `error`) was delivered."""
        return self._terminal

    @property
    def outcome(self) -> str:
        """How the stream ended, as far as it got: its last terminal event's name
        (``completed``, ``failed``, ``incomplete``, ``cancelled``, or ``error`` for an error
        frame), ``interrupted`` (dropped, idle or a sequence gap before the end), ``malformed``
        (an undecodable frame), or ``stopped`` (closed by its consumer before any of those)."""
        return self._ended or "stopped"

    async def aclose(self) -> None:
        """Stop decoding and close the connection (idempotent, bounded, shielded)."""
        self._finished = True
        with trio.move_on_after(_DRAIN_TIMEOUT, shield=True):
            await self.response.aclose()
            if not self._body_done:
                self._body_done = True
                try:
                    async for _ in self._chunks:
                        pass
                except Exception:  # the closed connection ends the body with a ReadError
                    pass

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> StreamEvent:
        try:
            while True:
                queue = self._queue
                if queue:  # the rest of a Chat chunk that mapped to several events
                    event = queue[self._qi]
                    self._qi += 1
                    if self._qi == len(queue):
                        self._queue, self._qi = [], 0
                    self.delivered += 1
                    return event
                decode = self._decode
                # The hot path: the current chunk's next frame (decoding may finish the stream).
                for frame in () if self._finished else self._frames:
                    decoded = decode(frame)
                    if decoded is not None:
                        self.delivered += 1
                        return decoded
                    if self._finished:
                        break
                if self._finished:
                    return self._end()
                invalid = self._sse.invalid
                if invalid is not None:
                    raise self._malformed(invalid.object[invalid.start :], "invalid UTF-8")
                chunk = None
                if not self._body_done:
                    try:
                        if self._terminal or self._error is not None:
                            chunk = await self._straggler()
                        else:
                            chunk = await self._chunks.__anext__()
                    except (StopAsyncIteration, httpx.TransportError) as exc:
                        await self._body_ended(exc)
                if chunk is not None:
                    self._received = time.time()
                    self._frames = iter(self._sse.feed(chunk))
                elif self._body_done and not self._sse_closed:
                    self._sse_closed = True
                    self._frames = iter(self._sse.close())
                else:
                    self._finished = True
        except StreamInterrupted as exc:
            if self._background and self.response_id is None:
                raise OutcomeUnknownError(
                    "a background response stream was lost before it named its response; the "
                    "response may exist server-side (queued or running), so do not create it "
                    "again blindly",
                    method=self.response.request.method,
                    url=str(self.response.request.url),
                    request_id=self.request_id,
                ) from exc
            raise

    def _end(self) -> StreamEvent:
        if self._raised:
            raise StopAsyncIteration
        if self._error is not None:
            err = normalize_error(self._error.data)
            error, self._error = self._error, None
            self._raised = True  # raise once; iterating again just stops
            raise StreamError(
                str(err["message"]),
                event=error,
                request_id=self.request_id,
                code=err["code"],
                type=err["type"],
                param=err["param"],
                body=error.data,
            )
        if not self._terminal and not self.accumulator.done:
            # (A resume seeded with an already terminal snapshot has nothing left to receive:
            # its empty body is the normal end, not an interruption.)
            self._raised = True
            self._ended = "interrupted"
            raise StreamInterrupted(
                "stream ended before its terminal event",
                cursor=self.cursor,
                response_id=self.response_id,
                request_id=self.request_id,
            )
        raise StopAsyncIteration

    async def _straggler(self) -> bytes | None:
        """A chunk after the terminal event, or None after `linger` seconds without one: the body
        should end right after the terminal event (or the error frame and the `response.failed`
        that may follow it), so stragglers are waited for only briefly."""
        with trio.move_on_after(self._linger):
            return await self._chunks.__anext__()
        return None

    async def _body_ended(self, exc: StopAsyncIteration | httpx.TransportError) -> None:
        """The body ended (`StopAsyncIteration`) or broke; raises `StreamInterrupted` for a
        drop before the terminal event."""
        self._body_done = True
        if isinstance(exc, StopAsyncIteration):
            if self._direct:  # as `aiter_raw` does at the end of the body: release at once
                await self.response.aclose()
            return
        if self._direct:  # as `aiter_bytes`'s request context does
            exc.request = self.response.request
        if self._terminal or self._error is not None:
            return
        self._finished = self._raised = True
        self._ended = "interrupted"
        kind = "idle timeout" if isinstance(exc, httpx.TimeoutException) else "connection lost"
        raise StreamInterrupted(
            f"stream interrupted ({kind}): {type(exc).__name__}",
            cursor=self.cursor,
            response_id=self.response_id,
            request_id=self.request_id,
        ) from exc

    def _malformed(self, data: str | bytes, why: str) -> MalformedStreamError:
        self._finished = self._raised = True
        self._error = None
        self._ended = "malformed"
        return MalformedStreamError(
            f"malformed stream frame ({why}): {data[:200]!r}",
            cursor=self.cursor,
            response_id=self.response_id,
            request_id=self.request_id,
        )

    def _decode_responses(self, frame: Frame) -> StreamEvent | None:
        data: Any
        sse_event, raw = frame
        if raw:
            try:
                data = _loads(raw)
            except ValueError:
                if raw.startswith("[DONE]"):  # a Chat-style terminator
                    self._finished = True
                    return None
                raise self._malformed(raw, "invalid JSON") from None
            if type(data) is not dict:
                raise self._malformed(raw, "not a JSON object")
            etype = data.get("type") or sse_event
        else:
            etype = sse_event
            if etype == "message":
                return None  # an empty frame carries nothing
            data = {"type": etype}
        seq = data.get("sequence_number")
        rid = self._response_id
        if rid is None:
            resp = data.get("response")
            if type(resp) is dict:
                rid = self._response_id = resp.get("id")
        if type(seq) is not int:
            last = self.accumulator.cursor
            if raw and not self._numbered:
                seq = 0 if last is None else last + 1  # an old stream: number it locally
            else:
                # No position of its own in a numbered stream (e.g. a bare `event: keepalive`):
                # delivered at the current cursor, never moving it.
                seq = -1 if last is None else last
                event = StreamEvent(
                    etype, seq, data, rid, self.session_id, "responses", self._received
                )
                acc = self.accumulator
                assert isinstance(acc, ResponseAccumulator)
                acc.apply(event)
                return event
        elif not self._numbered:
            self._numbered = True
        event = new_event(etype, seq, data, rid, self.session_id, "responses", self._received)
        try:
            accepted = self.accumulator.feed(event)
        except Exception as exc:
            self._finished = self._raised = True
            self._ended = "interrupted" if isinstance(exc, SequenceError) else "malformed"
            raise
        if not accepted:
            return None
        if etype in TERMINAL_TYPES:
            self._ended = etype.rpartition(".")[2]
            if etype == "error":
                self._error = event
            else:
                self._terminal = True
        return event

    def _decode_chat(self, frame: Frame) -> StreamEvent | None:
        raw = frame[1]
        acc = self._chat
        if not raw or acc is None:
            return None
        try:
            data = _loads(raw)
        except ValueError:
            if raw.startswith("[DONE]"):
                self._finished = True
                if self._error is not None:
                    return None
                self._terminal = True
                final = acc.finish()
                self._ended = final.type.rpartition(".")[2]
                return final
            raise self._malformed(raw, "invalid JSON") from None
        if type(data) is not dict:
            raise self._malformed(raw, "not a JSON object")
        event = acc._feed_delta(data, self._received)
        if event is not None:
            return event
        events = acc._feed_chunk(data, self._received)
        if not events:
            return None
        first = events[0]
        if first.type == "error":
            self._error = first
            self._ended = "error"
        if len(events) > 1:
            self._queue.extend(events[1:])
        return first
