"""`StreamingSession`: one streaming worker per session id, under the ``sessions`` supervisor.

A session runs its Chat Completions and Responses streams as tasks linked to the worker, so its
mailbox keeps being served while they stream. Each task publishes every `StreamEvent` to the
bus topic ``session.<id>`` itself, the moment it is decoded: one hop per event (the bus's
``send_nowait`` per subscriber), no mailbox hop, no copy (the client stamps ``session_id`` on the
event when it builds it).

Durable streams (Responses, the default): created with ``background: true, stream: true,
store: true``, announced to the `DurableTracker` (the background poller), resumed with
``starting_after=<last published sequence number>`` when the connection drops, and, when the
worker itself crashes and is restarted, resumed by the new worker from `SessionState` (which the
sessions supervisor's child factory holds, so it outlives any one worker). Subscribers see neither
a gap nor a duplicate: the cursor is written right after each publish, with no checkpoint in
between, and the resumed accumulator drops anything at or below it.

Foreground streams (Chat, or ``durable=False``) cannot be resumed: one that breaks ends with a
terminal ``error`` event carrying the typed error; one lost with a crashed worker gets that event
from the restarted worker. ``stop`` closes the connection (and cancels a durable response
server-side) and publishes ``response.cancelled``. When the session is shut down, foreground
streams are closed the same way and durable ones are handed over to polling, not cancelled.

``chat``/``respond`` return once the stream's first event is published (so the ticket names the
response); subscribe to the topic before calling them to see every event. A durable stream's first
event is published, and its ticket handed out, only once its response is committed to the
tracker's registry: a ticketed durable stream survives even a ``kill -9`` of the daemon. If the
tracker cannot record it, the response is cancelled and the call raises `TrackingFailed`. A
durable create whose connection is lost before that first event cannot be resumed (its response
id is unknown): the call raises the client's ``OutcomeUnknownError``.

Bound: a session runs at most `SessionDeps.max_streams` streams at once (8 by default); each holds
one HTTP connection for its whole life.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import httpx
import structlog
import trio

from streamvisor.openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    CancelRejected,
    ChatAccumulator,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    OpenAIError,
    RateLimitError,
    ResponseAccumulator,
    SequenceError,
    StreamError,
    StreamEvent,
    StreamInterrupted,
)
from streamvisor.supervisor import Actor, Caller, ExitReason, NoReply

from ._errors import (
    InvalidSessionRequest,
    StreamLost,
    StreamStopped,
    TooManyStreams,
    TrackingFailed,
    UnknownStream,
)
from ._requests import check_session_id, session_topic
from ._values import (
    SessionDeps,
    SessionState,
    StreamInfo,
    StreamOutcome,
    StreamTicket,
    _Adopt,
    _Record,
    _Start,
    _Stop,
    _Streams,
    _Wait,
)

__all__ = ["StreamingSession"]

log = structlog.get_logger("streamvisor.actors")

_RESUMABLE = (StreamInterrupted, SequenceError, APIConnectionError)
_RETRY_STATUS = (RateLimitError, InternalServerError, ConflictError)
_TERMINAL_STATUSES = frozenset({"completed", "failed", "incomplete", "cancelled"})
#: What a stream's request or connection may fail with: reported (to the caller of chat/respond,
#: or as an `error` event), never a crash. A request the wire refuses is an `OpenAIError` too
#: (`InvalidParameter`, `InvalidId`); anything else from the stream's own code is a bug.
_CALLER_ERRORS = (OpenAIError, httpx.HTTPError)
#: Events a stream task publishes between two checkpoints. A network read that brings many
#: events (a client that fell behind) is otherwise decoded and published whole before the
#: subscribers run, moving the backlog from the socket into their bus buffers as decoded
#: events (about 1.2 KiB each for a Responses text delta, 0.3 KiB for a Chat one). Yielding
#: every 16 lets them keep within about 16 events of it. Measured (`python -m bench daemon`
#: sizes, 1,000 streams, two runs each): peak subscriber backlog 105-134 -> 31-34 events, RSS
#: per stream Responses 173-180 -> 113 KiB, Chat 106-113 -> 96-97 KiB, CPU per event within
#: the run-to-run noise. The checkpoint is cancel-shielded: it adds no cancellation point,
#: so the cursor is still written right after each publish.
_PUBLISH_BUDGET = 16


# ---------------------------------------------------------------------------------------------
# The worker


@attrs.define(eq=False)
class _Stream:
    record: _Record
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    starter: Caller | None = None
    #: Why the stream is being wound down: "stop" (a caller) or "shutdown" (the session).
    ending: str | None = None
    phase: str = "starting"
    outcome: StreamOutcome | None = None
    on_done: list[Callable[[StreamOutcome], None]] = attrs.field(factory=list)
    done: trio.Event = attrs.field(factory=trio.Event)


class _Broken(Exception):
    """Internal: a stream ended without its terminal event (carries the error to report)."""

    def __init__(self, error: BaseException, status: str = "error", *, reported: bool = False):
        super().__init__(str(error))
        self.error = error
        self.status = status
        #: Subscribers already got the terminal event (the server's `error` frame).
        self.reported = reported


class StreamingSession(Actor):
    """The worker of one session: runs its streams, publishes their events on ``session.<id>``.

    Start it under the sessions supervisor with `session_factory` / `open_session`; talk to it
    through a `SessionHandle`. ``state`` (a `SessionState`) must outlive the worker for durable
    streams to be resumed after a restart: the factory holds it.

    Raises `InvalidSessionId` at construction for an unusable id, ``ValueError`` for a state of
    another session.
    """

    def __init__(
        self, session_id: str, deps: SessionDeps, state: SessionState | None = None
    ) -> None:
        check_session_id(session_id)
        if state is None:
            state = SessionState(session_id)
        elif state.session_id != session_id:
            raise ValueError(f"state of session {state.session_id!r} given to {session_id!r}")
        self.session_id = session_id
        self.deps = deps
        self.state = state
        self.topic = session_topic(session_id)
        self._active: dict[str, _Stream] = {}
        # Two shielded steps per wind-down, each bounded: a shutdown ends within stop_timeout.
        self._cleanup = min(deps.cleanup_timeout, deps.config.stop_timeout / 4)
        # The mailbox size is a class attribute of Actor; this session's comes from config.
        setattr(self, "mailbox_size", deps.config.mailbox_size)  # noqa: B010

    # -- lifecycle ---------------------------------------------------------------------------

    async def init(self) -> None:
        self.state.starts += 1
        if self.state.starts > 1:
            log.info(
                "session.restarted",
                session=self.session_id,
                starts=self.state.starts,
                in_flight=len(self.state.streams),
            )
        for record in list(self.state.streams.values()):
            self._recover(record)

    def _recover(self, record: _Record) -> None:
        """Take over a stream the previous worker left in flight."""
        if record.ended is None and record.terminal and not record.durable:
            # It ended; only the bookkeeping was left.
            self._retire(record, self._final(record))
            return
        if record.ended is not None and not (record.durable and record.response_id):
            status = "cancelled" if record.ended == "response.cancelled" else "error"
            self._remember(record, status, None)
            return
        if (
            record.ended is not None
            or record.terminal
            or record.stopping
            or (record.durable and record.response_id)
        ):
            stream = _Stream(record, phase="resuming")
            if record.ended is not None:
                # Subscribers already got its terminal event; the poller finds out the rest.
                stream.ending = "settle"
            elif record.stopping:
                stream.ending = "stop"
            self._active[record.stream_id] = stream
            self.spawn(self._run, stream)
            return
        # A foreground stream (or a durable one that never got its first event) cannot resume.
        error = StreamLost(self.session_id, record.stream_id)
        if record.cursor is not None:
            self._publish_error(record, error)
        self._remember(record, "error", error)

    async def terminate(self, reason: ExitReason) -> None:
        if not reason.is_normal:
            # A crash: leave every stream in SessionState for the restarted worker to resume.
            return
        streams = list(self._active.values())
        for stream in streams:
            if stream.ending is None:
                stream.ending = "shutdown"
            stream.phase = "stopping"
            stream.scope.cancel()
        for stream in streams:
            await stream.done.wait()

    # -- calls -------------------------------------------------------------------------------

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, _Start):
            return self._start(request, caller)
        if isinstance(request, _Wait):
            return self._wait(request.stream_id, caller)
        if isinstance(request, _Stop):
            return self._stop(request.stream_id, caller)
        if isinstance(request, _Streams):
            return [self._info(s) for s in self._active.values()]
        if isinstance(request, _Adopt):
            return self._adopt(request)
        return await super().handle_call(request, caller)

    def _adopt(self, request: _Adopt) -> str:
        """Resume a durable stream a worker elsewhere left (a cluster node that died), from the
        registry's cursor, as a restarted worker resumes its own: what subscribers already saw
        is dropped by the cursor (and, across nodes, by the cluster bus). Returns its stream id;
        the same response adopted twice is resumed once."""
        for stream in self._active.values():
            if stream.record.response_id == request.response_id:
                return stream.record.stream_id
        record = _Record(
            self.state.next_stream_id(),
            "responses",
            request.model,
            request.body,
            durable=True,
            response_id=request.response_id,
            cursor=request.cursor,
            tracked=True,
        )
        self.state.streams[record.stream_id] = record
        log.info(
            "session.adopted",
            session=self.session_id,
            stream=record.stream_id,
            response_id=request.response_id,
            cursor=request.cursor,
        )
        self._recover(record)
        return record.stream_id

    def _start(self, request: _Start, caller: Caller) -> Any:
        sid = self.session_id
        if len(self._active) >= self.deps.max_streams:
            return caller.fail(TooManyStreams(sid, self.deps.max_streams))
        body = request.body
        durable = False
        if request.api == "responses":
            durable = (
                self.deps.config.durable_responses if request.durable is None else request.durable
            )
            if durable:
                if self.deps.tracker is None:
                    return caller.fail(
                        InvalidSessionRequest(
                            sid, "durable", "durable streams need a tracker (the background poller)"
                        )
                    )
                if body.get("store") is False:
                    return caller.fail(
                        InvalidSessionRequest(
                            sid, "store", "a durable stream is stored (store=True) to be resumed"
                        )
                    )
                body = {**body, "background": True, "store": True}
        if request.keep_events and self.deps.event_log is None:
            return caller.fail(
                InvalidSessionRequest(sid, "keep_events", "this daemon keeps no event log")
            )
        record = _Record(
            self.state.next_stream_id(),
            request.api,
            request.model,
            body,
            durable=durable,
            keep_events=request.keep_events,
        )
        self.state.streams[record.stream_id] = record
        stream = _Stream(record, starter=caller)
        self._active[record.stream_id] = stream
        self.spawn(self._run, stream)
        return NoReply

    def _wait(self, stream_id: str, caller: Caller) -> Any:
        stream = self._active.get(stream_id)
        if stream is not None:
            stream.on_done.append(caller.reply)
            return NoReply
        outcome = self.state.outcomes.get(stream_id)
        if outcome is None:
            return caller.fail(UnknownStream(self.session_id, stream_id))
        return outcome

    def _stop(self, stream_id: str | None, caller: Caller) -> Any:
        if stream_id is None:
            targets = list(self._active.values())
        else:
            one = self._active.get(stream_id)
            if one is None:
                outcome = self.state.outcomes.get(stream_id)
                if outcome is None:
                    return caller.fail(UnknownStream(self.session_id, stream_id))
                return [outcome]
            targets = [one]
        if not targets:
            return []
        results: dict[str, StreamOutcome] = {}
        order = [s.record.stream_id for s in targets]

        def collect(outcome: StreamOutcome) -> None:
            results[outcome.stream_id] = outcome
            if len(results) == len(order):
                caller.reply([results[i] for i in order])

        for stream in targets:
            stream.on_done.append(collect)
            if stream.ending is None:
                stream.ending = "stop"
                stream.record.stopping = True
                stream.phase = "stopping"
                stream.scope.cancel()
        return NoReply

    def _info(self, stream: _Stream) -> StreamInfo:
        rec = stream.record
        return StreamInfo(
            rec.stream_id,
            rec.api,
            rec.model,
            rec.durable,
            rec.response_id,
            rec.cursor,
            stream.phase,
        )

    # -- the stream task ---------------------------------------------------------------------

    async def _run(self, stream: _Stream) -> None:
        """One stream, start to end. Runs linked to the worker: an unexpected exception crashes
        the worker (and a restarted one resumes the stream from `SessionState`)."""
        rec = stream.record
        outcome: StreamOutcome | None = None
        if stream.ending is None:
            with stream.scope:
                try:
                    if rec.terminal:
                        outcome = await self._finish_durable(rec, None)
                    elif rec.durable:
                        outcome = await self._durable(stream)
                    else:
                        outcome = await self._foreground(stream)
                except _Broken as broken:
                    outcome = await self._broken(stream, broken)
        elif stream.ending == "settle":
            await self._tracker_finished(rec, "in_progress", None)
            outcome = self._outcome(rec, "in_progress", None, None)
        if outcome is None:  # stopped (by a caller, or the session's shutdown)
            outcome = await self._wind_down(stream)
        self._done(stream, outcome)

    def _done(self, stream: _Stream, outcome: StreamOutcome) -> None:
        rec = stream.record
        self._retire(rec, outcome)
        self._active.pop(rec.stream_id, None)
        stream.outcome = outcome
        if stream.starter is not None:
            starter, stream.starter = stream.starter, None
            if isinstance(outcome.error, Exception):
                starter.fail(outcome.error)
            else:
                starter.fail(StreamStopped(self.session_id, rec.stream_id, "stopped"))
        for notify in stream.on_done:
            notify(outcome)
        stream.done.set()

    def _publisher(self, rec: _Record) -> Callable[[str, StreamEvent], object]:
        """How a stream publishes a server event: the bus, and the event log when the stream
        keeps its events (one closure, chosen once: the usual stream pays nothing for it)."""
        publish = self.deps.bus.publish
        event_log = self.deps.event_log
        if not rec.keep_events or event_log is None:
            return publish
        append = event_log.append

        def publish_and_keep(topic: str, event: StreamEvent) -> object:
            append(event)
            return publish(topic, event)

        return publish_and_keep

    def _ticket(self, stream: _Stream) -> StreamTicket:
        rec = stream.record
        return StreamTicket(
            rec.stream_id,
            self.session_id,
            rec.api,
            rec.model,
            rec.durable,
            rec.response_id,
            self.topic,
        )

    def _started(self, stream: _Stream) -> None:
        """The first event was published: answer the caller of chat/respond."""
        stream.phase = "streaming"
        starter, stream.starter = stream.starter, None
        if starter is not None:
            starter.reply(self._ticket(stream))

    async def _foreground(self, stream: _Stream) -> StreamOutcome:
        rec = stream.record
        client = self.deps.client
        publish = self._publisher(rec)
        topic = self.topic
        # The delivery latency, counted inline (Histogram.observe without the call): measured
        # (`python -m bench metrics`) at about 0.19 us per event, time.time() included.
        delivery = self.deps.delivery
        counts, bounds, clock = delivery.counts, delivery.bounds, time.time
        try:
            if rec.api == "chat":
                opener = client.stream_chat(rec.body, session_id=self.session_id)
            else:
                opener = client.stream_response(rec.body, session_id=self.session_id)
            async with opener as events:
                rec.accumulator = events.accumulator
                published = 0
                async for event in events:
                    publish(topic, event)
                    delay = clock() - event.received_at
                    counts[bisect_left(bounds, delay)] += 1
                    delivery.sum += delay
                    rec.cursor = event.sequence_number
                    if stream.starter is not None and event.type != "error":
                        rec.response_id = event.response_id or events.response_id
                        self._started(stream)
                    if event.terminal:
                        rec.terminal = True
                    published += 1
                    if published % _PUBLISH_BUDGET == 0:
                        await trio.lowlevel.cancel_shielded_checkpoint()
        except StreamError as exc:  # the `error` frame itself was published
            raise _Broken(exc, "failed", reported=True) from exc
        except _CALLER_ERRORS as exc:
            raise _Broken(exc) from exc
        return self._final(rec)

    async def _durable(self, stream: _Stream) -> StreamOutcome:
        rec = stream.record
        deps = self.deps
        client = deps.client
        tracker = deps.tracker
        assert tracker is not None
        publish = self._publisher(rec)
        topic = self.topic
        every = deps.cursor_every
        note = tracker.note_cursor
        delivery = deps.delivery  # counted inline, as in `_foreground`
        counts, bounds, clock = delivery.counts, delivery.bounds, time.time
        failures = 0
        while True:
            progressed = False
            try:
                if rec.response_id is None:
                    opener = client.stream_response(rec.body, session_id=self.session_id)
                else:
                    opener = client.resume_response(
                        rec.response_id,
                        starting_after=rec.cursor,
                        snapshot=self._seed(rec),
                        session_id=self.session_id,
                    )
                async with opener as events:
                    stream.phase = "streaming" if rec.response_id else "starting"
                    rec.accumulator = events.accumulator
                    count = 0
                    async for event in events:
                        if rec.response_id is None:
                            rec.response_id = event.response_id or events.response_id
                        if rec.response_id is not None and not rec.tracked:
                            # Durable means durable: the response is committed to the registry
                            # before its first event is published and its ticket handed out.
                            await self._track(rec)
                        publish(topic, event)
                        delay = clock() - event.received_at
                        counts[bisect_left(bounds, delay)] += 1
                        delivery.sum += delay
                        seq = rec.cursor = event.sequence_number
                        progressed = True
                        if stream.starter is not None and rec.response_id is not None:
                            self._started(stream)
                        elif rec.response_id is None and event.type != "error":
                            raise _Broken(  # (an `error` ends it with StreamError)
                                StreamInterrupted(
                                    "the first event of a durable stream named no response",
                                    cursor=seq,
                                )
                            )
                        count += 1
                        if count % every == 0 and rec.response_id is not None:
                            note(rec.response_id, seq)
                        if event.terminal:
                            rec.terminal = True
                        if count % _PUBLISH_BUDGET == 0:
                            await trio.lowlevel.cancel_shielded_checkpoint()
                break
            except StreamError as exc:  # an `error` frame (published, terminal for subscribers)
                return await self._finish_durable(rec, exc)
            except (*_RESUMABLE, *_RETRY_STATUS) as exc:
                if rec.response_id is None:
                    raise _Broken(exc) from exc
                if isinstance(exc, InsufficientQuotaError):  # permanent: no point retrying
                    return await self._hand_over(rec, exc)
                failures = 0 if progressed else failures + 1
                if failures >= deps.resume_attempts:
                    return await self._hand_over(rec, exc)
                stream.phase = "resuming"
                log.info(
                    "session.resume",
                    session=self.session_id,
                    stream=rec.stream_id,
                    response_id=rec.response_id,
                    cursor=rec.cursor,
                    attempt=failures + 1,
                    error=type(exc).__name__,
                )
                if failures:
                    await trio.sleep(
                        min(deps.resume_backoff * 2.0 ** (failures - 1), deps.resume_backoff_max)
                    )
            except _CALLER_ERRORS as exc:
                if rec.response_id is None:
                    raise _Broken(exc) from exc
                return await self._hand_over(rec, exc)
        return await self._finish_durable(rec, None)

    def _seed(self, rec: _Record) -> Mapping[str, Any] | None:
        acc = rec.accumulator
        if isinstance(acc, ResponseAccumulator) and acc.cursor == rec.cursor:
            return acc.snapshot
        return None

    async def _track(self, rec: _Record) -> None:
        """Record the response with the tracker; return once it is committed.

        If that fails (or takes longer than ``call_timeout``) the stream cannot be durable: the
        response is cancelled server-side (bounded), the tracker is told it ended, and
        `_Broken` with `TrackingFailed` ends the stream -- the caller of ``respond`` gets the
        error instead of a ticket, having seen no event."""
        tracker = self.deps.tracker
        assert tracker is not None
        assert rec.response_id is not None
        try:
            with trio.fail_after(self.deps.call_timeout):
                await tracker.track_stream(
                    response_id=rec.response_id,
                    owner=self.session_id,
                    model=rec.model,
                    request=rec.body,
                    cursor=rec.cursor,
                )
        except Exception as exc:  # includes trio.TooSlowError
            log.warning(
                "session.track_failed",
                session=self.session_id,
                response_id=rec.response_id,
                error=repr(exc),
            )
            status, response = "in_progress", None
            with trio.move_on_after(self._cleanup, shield=True):
                try:
                    response = await self.deps.client.cancel_response(rec.response_id)
                    status = str(response.get("status", "cancelled"))
                except CancelRejected as rejected:  # it finished first
                    status = rejected.status or status
                except OpenAIError as cancel_error:
                    log.warning(
                        "session.cancel_failed",
                        session=self.session_id,
                        response_id=rec.response_id,
                        error=repr(cancel_error),
                    )
            # In case the registry got it after all (a late commit): it is not followed.
            await self._tracker_finished(rec, status, response)
            error = TrackingFailed(self.session_id, rec.stream_id, rec.response_id)
            error.__cause__ = exc
            raise _Broken(error) from exc
        # Set only once the call returned: a worker killed during it re-tracks on restart.
        rec.tracked = True

    async def _tracker_finished(
        self, rec: _Record, status: str, response: Mapping[str, Any] | None
    ) -> None:
        tracker = self.deps.tracker
        if tracker is None or rec.response_id is None:
            return
        if rec.cursor is not None:
            tracker.note_cursor(rec.response_id, rec.cursor)
        with trio.move_on_after(self._cleanup, shield=True) as scope:
            try:
                await tracker.stream_finished(rec.response_id, status, response)
            except Exception as exc:
                log.warning(
                    "session.tracker_failed",
                    session=self.session_id,
                    response_id=rec.response_id,
                    status=status,
                    error=repr(exc),
                )
        if scope.cancelled_caught:
            log.warning(
                "session.tracker_timeout", session=self.session_id, response_id=rec.response_id
            )

    async def _finish_durable(self, rec: _Record, error: BaseException | None) -> StreamOutcome:
        """The stream published its terminal event: tell the tracker how the response ended.

        After an `error` frame without a terminal Response the response's fate is unknown (it
        may still run in the background): the poller is handed it to find out."""
        acc = rec.accumulator
        response = None if acc is None else (acc.result or acc.snapshot)
        status = acc.status if isinstance(acc, ResponseAccumulator) else None
        if status is not None and status in _TERMINAL_STATUSES:
            await self._tracker_finished(rec, status, acc.result if acc is not None else None)
            return self._outcome(rec, status, response, error)
        if error is None:  # `_durable` returns only after a terminal event
            error = StreamError("the stream ended without a final response")
        await self._tracker_finished(rec, "in_progress", None)
        return self._outcome(rec, "error", response, error)

    async def _hand_over(self, rec: _Record, exc: BaseException) -> StreamOutcome:
        """Resuming keeps failing: the poller takes the response over; subscribers are told."""
        log.warning(
            "session.handover",
            session=self.session_id,
            stream=rec.stream_id,
            response_id=rec.response_id,
            cursor=rec.cursor,
            error=repr(exc),
        )
        self._publish_error(rec, exc, handed_over=True)
        await self._tracker_finished(rec, "in_progress", None)
        acc = rec.accumulator
        return self._outcome(rec, "in_progress", None if acc is None else acc.snapshot, exc)

    async def _broken(self, stream: _Stream, broken: _Broken) -> StreamOutcome:
        rec = stream.record
        error = broken.error
        if broken.reported:
            pass
        elif stream.starter is None:
            # Subscribers saw events of this stream: it ends with an `error` event, not silence.
            self._publish_error(rec, error)
        else:  # nothing was published; the caller of chat/respond gets the error
            log.info(
                "session.start_failed",
                session=self.session_id,
                stream=rec.stream_id,
                error=repr(error),
            )
        acc = rec.accumulator
        response = None if acc is None else (acc.result or acc.snapshot)
        return self._outcome(rec, broken.status, response, error)

    async def _wind_down(self, stream: _Stream) -> StreamOutcome:
        """The stream's connection is closed; finish a stop or a shutdown."""
        rec = stream.record
        acc = rec.accumulator
        response: Mapping[str, Any] | None = None if acc is None else (acc.result or acc.snapshot)
        if stream.ending == "shutdown" and rec.durable and rec.response_id is not None:
            await self._tracker_finished(rec, "in_progress", None)
            return self._outcome(rec, "in_progress", response, None)
        cancel_error: BaseException | None = None
        status = "cancelled"
        if stream.ending == "stop" and rec.durable and rec.response_id is not None:
            with trio.move_on_after(self._cleanup, shield=True) as scope:
                try:
                    response = await self.deps.client.cancel_response(rec.response_id)
                except CancelRejected as exc:  # it finished first; stopping is still done
                    cancel_error = exc
                except OpenAIError as exc:
                    cancel_error = exc
            if scope.cancelled_caught:
                cancel_error = TimeoutError("the server-side cancel timed out")
            if cancel_error is not None and not isinstance(cancel_error, CancelRejected):
                log.warning(
                    "session.cancel_failed",
                    session=self.session_id,
                    response_id=rec.response_id,
                    error=repr(cancel_error),
                )
        why = "stopped by the caller" if stream.ending == "stop" else "the session was stopped"
        if rec.cursor is not None and rec.ended is None:
            # Subscribers saw it start: it ends with a terminal event.
            seq = rec.cursor + 1
            data: dict[str, Any] = {
                "type": "response.cancelled",
                "sequence_number": seq,
                "reason": "stopped_by_caller" if stream.ending == "stop" else "session_stopped",
                "message": why,
                "response": response,
            }
            if cancel_error is not None:
                data["cancel_error"] = {
                    "type": type(cancel_error).__name__,
                    "message": str(cancel_error),
                }
            self._emit(rec, "response.cancelled", seq, data)
        if rec.durable and rec.response_id is not None:
            if cancel_error is None or isinstance(cancel_error, CancelRejected):
                await self._tracker_finished(rec, "cancelled", response)
            else:  # it may still run server-side: let the poller follow it
                await self._tracker_finished(rec, "in_progress", None)
        if rec.cursor is None:
            error: BaseException | None = StreamStopped(self.session_id, rec.stream_id, why)
        else:
            error = cancel_error
        return self._outcome(rec, status, response, error)

    # -- publishing synthetic events -------------------------------------------------------

    def _emit(self, rec: _Record, type_: str, seq: int, data: dict[str, Any]) -> None:
        """Publish an event the session makes itself (continuing the stream's numbering)."""
        if rec.ended is not None:  # one terminal event per stream
            return
        event = StreamEvent(
            type_, seq, data, rec.response_id, self.session_id, rec.api, time.time()
        )
        self.deps.bus.publish(self.topic, event)
        rec.ended = type_

    def _publish_error(
        self, rec: _Record, error: BaseException, *, handed_over: bool = False
    ) -> None:
        seq = 0 if rec.cursor is None else rec.cursor + 1
        data: dict[str, Any] = {
            "type": "error",
            "sequence_number": seq,
            "code": getattr(error, "code", None),
            "message": str(error),
            "param": getattr(error, "param", None),
            "error_type": type(error).__name__,
            "status": error.status_code if isinstance(error, APIStatusError) else None,
            "request_id": error.request_id if isinstance(error, APIError) else None,
            "origin": "session",
        }
        if handed_over:
            data["handed_over_to_polling"] = True
        self._emit(rec, "error", seq, data)

    def _final(self, rec: _Record) -> StreamOutcome:
        """The outcome of a foreground stream whose terminal event was published."""
        acc = rec.accumulator
        assert acc is not None
        response = acc.result or acc.snapshot
        if acc.error is not None and not acc.done:  # it ended with the server's `error` frame
            error = StreamError(str(acc.error["message"]), code=acc.error["code"])
            return self._outcome(rec, "failed", response, error)
        if isinstance(acc, ChatAccumulator):
            final = acc.final_type or "response.completed"
            return self._outcome(rec, final.rsplit(".", 1)[-1], response, None)
        status = acc.status
        if status is None or status not in _TERMINAL_STATUSES:
            status = "completed"
        return self._outcome(rec, status, response, None)

    def _outcome(
        self,
        rec: _Record,
        status: str,
        response: Mapping[str, Any] | None,
        error: BaseException | None,
    ) -> StreamOutcome:
        last = rec.cursor
        if rec.ended is not None:  # the session's own terminal event followed the server's
            last = 0 if last is None else last + 1
        return StreamOutcome(rec.stream_id, rec.response_id, status, response, error, last)

    def _remember(self, rec: _Record, status: str, error: BaseException | None) -> None:
        self._retire(rec, self._outcome(rec, status, None, error))

    def _retire(self, rec: _Record, outcome: StreamOutcome) -> None:
        """Forget a finished stream's record; keep its outcome for `wait`."""
        self.state.streams.pop(rec.stream_id, None)
        self.state.remember(outcome, self.deps.config.results_kept)
