"""The ``/v1`` stream relays: a session's stream to one SDK client, and a response's replay.

A relayed stream is a session stream on the bus like any other: the relay subscribes to the
session's topic *before* it starts the stream (or reads the event log), so it misses nothing,
and keeps only the events of its own response. Responses events go out as the frames they were
(`client_view` hides background mode from a client that did not ask for it); chat events are
turned back into chunks (`ChatChunks`).

A Responses relay never sends a gap or a duplicate: it remembers the last sequence number sent
and skips anything at or below it, and whatever it cannot take from the bus -- a ``Missed``
notice (it fell behind), a stream that ended without its terminal event (the session handed it
over to polling, or stopped) -- it takes from the daemon's `EventLog`, then from the API itself
(``starting_after`` the last number sent), resuming there after a drop like a session does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from ..actors import LogRead, SessionHandle
from ..openai import (
    APIConnectionError,
    InternalServerError,
    RateLimitError,
    SequenceError,
    StreamEvent,
    StreamInterrupted,
    check_id,
)
from ..supervisor import Missed, Overflow, Subscription
from ._http import Responder
from ._v1_wire import ChatChunks, client_view, padding, sse_event

if TYPE_CHECKING:
    from ._app import GatewayApp

__all__ = ["SSE_HEADERS", "relay_chat", "relay_response", "resume_response"]

log = structlog.get_logger("streamvisor.gateway")

SSE_HEADERS: Final = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}
#: A Responses relay's bus buffer: past this many unread events it catches up from the log.
_BUFFER: Final = 65536
#: A chat relay's: a chat stream cannot be replayed, so the relay holds what its client has not
#: read yet -- at most the whole completion (a client that stops reading holds that much).
_CHAT_BUFFER: Final = 1 << 22
#: Events sent to the client in one write (one ASGI message) when more are waiting.
_BATCH: Final = 256
#: Attempts to resume from the API in a row that receive nothing before the relay gives up.
_UPSTREAM_ATTEMPTS: Final = 5
_UPSTREAM_RETRY = (StreamInterrupted, SequenceError, APIConnectionError, RateLimitError)


# ------------------------------------------------------------------------------------- chat


async def relay_chat(
    app: GatewayApp,
    out: Responder,
    session: SessionHandle,
    model: Any,
    messages: Any,
    params: dict[str, Any],
    chunks: ChatChunks,
) -> None:
    """Start a chat stream in ``session`` and send it to the client as chunks until
    ``[DONE]`` (or the API's error frame). Errors before the first event are raised (the
    caller answers them with a status); a chat stream cannot be resumed, so one that breaks
    afterwards ends with an error frame."""
    async with _subscribe(app, session.topic, _CHAT_BUFFER) as sub:
        ticket = await session.chat(model, messages, **params)
        rid = ticket.response_id
        await out.start(200, SSE_HEADERS)
        while True:
            items = await _receive(app, sub)
            if items is None:
                return
            if not items:
                await out.write(": keepalive\n\n")
                continue
            text: list[str] = []
            done = False
            for item in items:
                if isinstance(item, Missed):
                    text.append(
                        'data: {"error":{"message":"the relay fell behind the stream",'
                        '"type":"server_error","param":null,"code":"relay_overflow"}}\n\n'
                    )
                    done = True
                    break
                if not isinstance(item, StreamEvent) or item.response_id != rid:
                    continue
                text.extend(chunks.frames(item))
                if item.terminal:
                    done = True
                    break
            if text:
                await out.write("".join(text))
            if done:
                return


def _subscribe(app: GatewayApp, topic: str, buffer: int = _BUFFER) -> Subscription[Any]:
    # Drop-oldest whatever ``[bus]`` says: a relay that falls behind catches up from the log.
    return app.daemon.subscribe(topic, buffer=buffer, overflow=Overflow.DROP_OLDEST)


async def _receive(app: GatewayApp, sub: Subscription[Any]) -> list[Any] | None:
    """The next items of ``sub`` (at least one), ``[]`` after ``keepalive`` seconds of silence,
    None when the bus closed (the daemon is stopping)."""
    try:
        waiting = sub.drain(_BATCH)  # what queued up while the last batch was being written
    except trio.EndOfChannel:
        return None
    if waiting:
        return waiting  # no deadline to set up: the caller's write checkpoints
    with trio.move_on_after(app.keepalive):
        try:
            return await sub.receive_batch(_BATCH)
        except trio.EndOfChannel:
            return None
    return []


# -------------------------------------------------------------------------------- responses


class _ResponseRelay:
    """One response's events to one client, in order, each once (see the module docstring)."""

    def __init__(
        self,
        app: GatewayApp,
        out: Responder,
        response_id: str,
        *,
        background: bool,
        resumable: bool = True,
        client_after: int | None = None,
        obfuscate: bool = True,
    ) -> None:
        self.app = app
        self.out = out
        self.response_id = response_id
        self.background = background
        #: The API can resume it (a background response): the relay may go upstream.
        self.resumable = resumable
        #: The last upstream sequence number handled (the cursor for the log and the API).
        self.last: int | None = None
        #: Events hidden from this client so far (its numbers are the upstream's minus these).
        self.hidden = 0
        #: The client's own cursor: its numbers at or below it are not sent again.
        self.client_after = client_after
        #: Pad the deltas of a plain stream (``stream_options.include_obfuscation``).
        self.obfuscate = obfuscate
        self._done = False

    def finished(self) -> bool:
        """The terminal event was sent."""
        return self._done

    def _frame(self, seq: int, type_: str, data: Mapping[str, Any]) -> str | None:
        """The frame for one event, or None (already sent, or hidden from this client).

        A client that did not ask for background mode sees the numbering of a plain stream:
        the events hidden from it (``response.queued``, ``keepalive``) are not counted."""
        if self.last is not None and seq <= self.last:
            return None
        self.last = seq
        if type_ in _TERMINAL:
            self._done = True
        view = client_view(type_, data, self.background)
        if view is None:
            self.hidden += 1
            return None
        number = seq - self.hidden
        if self.client_after is not None and number <= self.client_after:
            return None
        if (
            self.obfuscate
            and not self.background
            and type_.endswith(".delta")
            and "obfuscation" not in view
        ):
            # The API pads a plain stream's deltas (not a background one's, which the daemon
            # streams upstream): the client gets the padding it would have had.
            view = {**view, "sequence_number": number, "obfuscation": padding()}
        elif self.hidden:
            view = {**view, "sequence_number": number}
        return sse_event(type_, view)

    async def send_frames(self, frames: list[str]) -> None:
        if frames:
            await self.out.write("".join(frames))

    async def from_log(self) -> bool:
        """Send what the event log holds after the cursor. True if the stream is over."""
        await self.send_read(await self.app.daemon.event_log.read(self.response_id, self.last))
        return self.finished()

    async def send_read(self, read: LogRead) -> None:
        """Send the frames of a log read (each at most once, as `_frame` decides)."""
        await self.send_frames([f for f in (self._frame(s, t, d) for s, t, d in read.frames) if f])

    async def live(self, sub: Subscription[Any], session: SessionHandle | None) -> None:
        """Send the response's events from the session's topic until its terminal event; fall
        back to the log and the API when the bus cannot tell the rest."""
        rid = self.response_id
        while not self.finished():
            items = await _receive(self.app, sub)
            if items is None:
                return  # the daemon is stopping
            if not items:  # silence: keep the connection alive; is the stream still running?
                await self.out.write(": keepalive\n\n")
                if self.resumable and (session is None or not await _streaming(session, rid)):
                    await self.from_log()
                    if not self.finished():
                        await self.upstream()
                    return
                continue
            frames: list[str] = []
            for item in items:
                if isinstance(item, Missed):
                    await self.send_frames(frames)
                    frames = []
                    await self.from_log()
                    continue
                if not isinstance(item, StreamEvent) or item.response_id != rid:
                    continue
                data = item.data
                if data.get("origin") == "session" or (
                    item.type == "response.cancelled" and "reason" in data
                ):
                    # The session's own ending: it stopped following the response (handed
                    # over to polling, given up, stopped). The API still has the rest.
                    await self.send_frames(frames)
                    frames = []
                    if item.type == "response.cancelled" or not self.resumable:
                        await self.send_frames([sse_event(item.type, data)])
                        return
                    await self.from_log()
                    if not self.finished():
                        await self.upstream()
                    return
                if self.last is not None and item.sequence_number > self.last + 1:
                    await self.send_frames(frames)  # a gap the bus dropped: the log has it
                    frames = []
                    await self.from_log()
                frame = self._frame(item.sequence_number, item.type, data)
                if frame is not None:
                    frames.append(frame)
                if self.finished():
                    break
            await self.send_frames(frames)

    async def upstream(self) -> None:
        """Resume from the API after the cursor, as a session resumes a durable stream (the
        response's headers go out once the first resume is open, if they had not)."""
        failures = 0
        while not self.finished():
            progressed = False
            try:
                async with self.app.daemon.background.stream(self.response_id, self.last) as events:
                    if not self.out.started:  # the API's refusal of the first open is a status
                        await self.out.start(200, SSE_HEADERS)
                    async for event in events:
                        frame = self._frame(event.sequence_number, event.type, event.data)
                        progressed = True
                        if frame is not None:
                            await self.out.write(frame)
                        if self.finished():
                            return
                if self.finished():
                    return
                raise StreamInterrupted("the stream ended without a terminal event", cursor=None)
            except (*_UPSTREAM_RETRY, InternalServerError) as exc:
                failures = 0 if progressed else failures + 1
                if failures >= _UPSTREAM_ATTEMPTS:
                    raise
                log.info(
                    "v1.resume_upstream",
                    response_id=self.response_id,
                    cursor=self.last,
                    attempt=failures + 1,
                    error=type(exc).__name__,
                )
                if failures:
                    await trio.sleep(min(0.2 * 2.0 ** (failures - 1), 5.0))


_TERMINAL: Final = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.cancelled", "error"}
)


async def _streaming(session: SessionHandle, response_id: str) -> bool:
    """Whether ``session`` still runs the stream of ``response_id``."""
    try:
        return any(s.response_id == response_id for s in await session.streams())
    except Exception:  # the session is gone: it runs nothing
        return False


async def relay_response(
    app: GatewayApp,
    out: Responder,
    session: SessionHandle,
    model: Any,
    input: Any,
    params: dict[str, Any],
    *,
    durable: bool,
    background: bool,
) -> None:
    """Start a Responses stream in ``session`` (keeping its events in the log) and send it to
    the client until its terminal event. Errors before the first event are raised."""
    daemon = app.daemon
    async with _subscribe(app, session.topic) as sub:
        ticket = await session.respond(model, input, durable=durable, keep_events=True, **params)
        rid = ticket.response_id
        assert rid is not None  # a ticket is handed out with its first event
        daemon.event_log.annotate(rid, session_id=session.session_id, background=background)
        options = params.get("stream_options")
        obfuscate = (
            not isinstance(options, Mapping) or options.get("include_obfuscation") is not False
        )
        relay = _ResponseRelay(
            app, out, rid, background=background, resumable=durable, obfuscate=obfuscate
        )
        await out.start(200, SSE_HEADERS)
        await relay.live(sub, session)


async def resume_response(
    app: GatewayApp, out: Responder, response_id: str, after: int | None, *, obfuscate: bool = True
) -> None:
    """``GET /v1/responses/{id}?stream=true&starting_after=N``: the events after N from the
    daemon's log, then live from the session still streaming it, else from the API.

    The log is read from its start: the client's numbers (see `_ResponseRelay._frame`) are
    counted, not stored."""
    daemon = app.daemon
    check_id(response_id, "response_id")
    known = daemon.event_log.known(response_id)
    session = None if known is None or known.session_id is None else known.session_id
    async with _subscribe(app, f"session.{session or '_'}") as sub:
        handle = None if session is None else daemon.session(session)
        running = handle is not None and await _streaming(handle, response_id)
        read = await daemon.event_log.read(response_id, None)
        if read.response is None or not (read.frames or running):
            # Not a stream the daemon kept (or kept nothing of): the API's own resume, its
            # errors as its status (404 for a deleted response).
            relay = _ResponseRelay(app, out, response_id, background=True)
            relay.last = after
            await relay.upstream()
            return
        relay = _ResponseRelay(
            app,
            out,
            response_id,
            background=read.response.background is not False,
            client_after=after,
            obfuscate=obfuscate,
        )
        await out.start(200, SSE_HEADERS)
        await relay.send_read(read)
        # Not kept for the rest of the stream: every event logged so far, decoded again.
        del read
        if relay.finished():
            return
        if running:
            await relay.live(sub, handle)
        else:  # the log lacks the rest (truncated, or the session no longer follows it)
            await relay.upstream()
