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
response); subscribe to the topic before calling them to see every event. A durable create whose
connection is lost before that first event cannot be resumed (its response id is unknown): the
call raises the client's ``OutcomeUnknownError``.

Bound: a session runs at most `SessionDeps.max_streams` streams at once (8 by default); each holds
one HTTP connection for its whole life.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import attrs
import httpx
import structlog
import trio

from streamvisor.config import SessionsSection
from streamvisor.openai import (
    APIConnectionError,
    APIError,
    APIStatusError,
    CancelRejected,
    ChatAccumulator,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    OpenAIClient,
    OpenAIError,
    RateLimitError,
    ResponseAccumulator,
    SequenceError,
    StreamError,
    StreamEvent,
    StreamInterrupted,
    apply_model_rules,
    is_reasoning_model,
)
from streamvisor.supervisor import (
    Actor,
    ActorExited,
    ActorRef,
    AlreadyStarted,
    Caller,
    DynamicSupervisor,
    DynamicSupervisorRef,
    EventBus,
    ExitReason,
    NoReply,
    NoSuchActor,
    Registry,
    Restart,
    StartChildError,
)

from ._errors import (
    InvalidSessionId,
    InvalidSessionRequest,
    StreamLost,
    StreamStopped,
    TooManyStreams,
    UnknownStream,
)
from ._tracker import DurableTracker

__all__ = [
    "CHAT_ROLES",
    "INPUT_ROLES",
    "DurableTracker",
    "SessionDeps",
    "SessionHandle",
    "SessionState",
    "StreamInfo",
    "StreamOutcome",
    "StreamTicket",
    "StreamingSession",
    "open_session",
    "session_factory",
    "session_name",
    "session_topic",
    "sessions_supervisor",
]

log = structlog.get_logger("streamvisor.actors")

Api = Literal["chat", "responses"]

#: Roles a Chat Completions message may have.
CHAT_ROLES: frozenset[str] = frozenset(
    {"system", "developer", "user", "assistant", "tool", "function"}
)
_ASSISTANT_PAYLOADS = ("content", "tool_calls", "function_call", "refusal", "audio")
#: Roles a Responses input message may have.
INPUT_ROLES: frozenset[str] = frozenset({"system", "developer", "user", "assistant"})

_SESSION_ID = re.compile(r"^[A-Za-z0-9_\-:@+=]{1,128}$")
_RESUMABLE = (StreamInterrupted, SequenceError, APIConnectionError)
_RETRY_STATUS = (RateLimitError, InternalServerError, ConflictError)
_TERMINAL_STATUSES = frozenset({"completed", "failed", "incomplete", "cancelled"})
#: Finished outcomes remembered per session for `SessionHandle.wait` (oldest forgotten first).
_OUTCOMES_KEPT = 256


# ---------------------------------------------------------------------------------------------
# Values


def _at_least(low: float) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= low:
            raise ValueError(f"{attribute.name} must be a number >= {low}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class SessionDeps:
    """Everything a session worker needs, passed in explicitly (no globals).

    Attributes:
        client: The shared wire client.
        bus: The event bus; events go to ``session.<id>``.
        config: The ``[sessions]`` section (durable default, mailbox size, stop timeout).
        tracker: The background poller's `DurableTracker`; None disables durable streams
            (a durable request is then rejected at the call).
        max_streams: Streams one session runs at once (each holds a connection).
        cursor_every: A durable stream reports its cursor to the tracker every this many events
            (and at the end).
        resume_attempts: Consecutive failed resumes (no event received) before a durable stream
            is handed over to polling.
        resume_backoff / resume_backoff_max: The delay before resume attempt n >= 2 is
            ``min(resume_backoff * 2**(n-2), resume_backoff_max)``; the first is immediate.
        cleanup_timeout: Bound (seconds, shielded) on each step of a stream's wind-down (the
            server-side cancel, the tracker's ``stream_finished``); at most a quarter of
            ``config.stop_timeout`` is used, so a shutdown finishes within it.
        call_timeout: Bound on one tracker call made while streaming.
    """

    client: OpenAIClient
    bus: EventBus[Any]
    config: SessionsSection = attrs.field(factory=SessionsSection)
    tracker: DurableTracker | None = None
    max_streams: int = attrs.field(default=8, validator=_at_least(1))
    cursor_every: int = attrs.field(default=32, validator=_at_least(1))
    resume_attempts: int = attrs.field(default=5, validator=_at_least(1))
    resume_backoff: float = attrs.field(default=0.2, validator=_at_least(0))
    resume_backoff_max: float = attrs.field(default=5.0, validator=_at_least(0))
    cleanup_timeout: float = attrs.field(default=2.0, validator=_at_least(0))
    call_timeout: float = attrs.field(default=5.0, validator=_at_least(0))


@attrs.frozen
class StreamTicket:
    """A stream the session accepted and started (its first event is published).

    Attributes:
        stream_id: The session's name for it (``stream-N``), for `wait` and `stop`.
        session_id: The session it belongs to.
        api: "chat" or "responses".
        model: The model asked for.
        durable: Whether it survives drops and worker restarts (background + resume).
        response_id: The response (or chat completion) id from the first event.
        topic: Where its events are published (``session.<id>``).
    """

    stream_id: str
    session_id: str
    api: Api
    model: str
    durable: bool
    response_id: str | None
    topic: str


@attrs.frozen
class StreamOutcome:
    """How a stream ended.

    Attributes:
        stream_id / response_id: Which stream.
        status: "completed", "incomplete", "failed" (the API said so), "cancelled" (stopped by a
            caller or by the session's shutdown), "error" (the stream broke; see `error`; a
            durable response whose fate is unknown is handed to the poller), or "in_progress"
            (a durable stream handed over to the background poller, which now follows it).
        response: The final Response (Responses) or chat completion (Chat), or the partial one
            accumulated so far when the stream did not complete.
        error: The typed error that ended the stream, if any.
        last_sequence_number: The last sequence number published for it, if any.
    """

    stream_id: str
    response_id: str | None
    status: str
    response: Mapping[str, Any] | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)
    last_sequence_number: int | None = None

    @property
    def ok(self) -> bool:
        """True for a stream that completed."""
        return self.status == "completed"


@attrs.frozen
class StreamInfo:
    """One active stream, as `SessionHandle.streams` lists it.

    ``state`` is "starting" (no event yet), "streaming", "resuming" (a durable stream between
    connections) or "stopping".
    """

    stream_id: str
    api: Api
    model: str
    durable: bool
    response_id: str | None
    cursor: int | None
    state: str


@attrs.define(eq=False)
class _Record:
    """A stream as `SessionState` remembers it across worker restarts."""

    stream_id: str
    api: Api
    model: str
    body: dict[str, Any]
    durable: bool
    response_id: str | None = None
    #: The last *published* sequence number of a server event (written right after each
    #: publish): the resume cursor.
    cursor: int | None = None
    #: The type of the terminal event the session published itself ("error" or
    #: "response.cancelled"), once it did: subscribers consider the stream over.
    ended: str | None = None
    #: The accumulator of the current connection (its snapshot seeds a resume).
    accumulator: ChatAccumulator | ResponseAccumulator | None = None
    tracked: bool = False
    terminal: bool = False
    stopping: bool = False


@attrs.define(eq=False)
class SessionState:
    """What a session keeps across its worker's restarts: in-flight streams (with their cursors)
    and recently finished outcomes. Held by the child factory (`session_factory`), so the
    restarted worker gets the same object."""

    session_id: str
    streams: dict[str, _Record] = attrs.field(factory=dict)
    outcomes: OrderedDict[str, StreamOutcome] = attrs.field(factory=OrderedDict)
    #: How many workers have started on this state (1 for the first, then one per restart).
    starts: int = 0
    _ids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    def next_stream_id(self) -> str:
        return f"stream-{next(self._ids)}"

    def remember(self, outcome: StreamOutcome) -> None:
        self.outcomes[outcome.stream_id] = outcome
        while len(self.outcomes) > _OUTCOMES_KEPT:
            self.outcomes.popitem(last=False)


# ---------------------------------------------------------------------------------------------
# Request validation (runs in the caller's task: nothing reaches the worker or the network)


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it can name a session; raise `InvalidSessionId` otherwise.

    It must be 1-128 characters of letters, digits and ``_-:@+=`` (one topic segment)."""
    if not isinstance(session_id, str):
        raise InvalidSessionId(session_id, "must be a str")
    if not _SESSION_ID.match(session_id):
        raise InvalidSessionId(session_id, "use 1-128 letters, digits or _-:@+= (no dots)")
    return session_id


def session_topic(session_id: str) -> str:
    """The bus topic of a session's events: ``session.<id>``."""
    return f"session.{session_id}"


def session_name(session_id: str) -> str:
    """The name a session worker is registered under."""
    return f"session.{session_id}"


def _reject(sid: str | None, field: str, message: str) -> InvalidSessionRequest:
    return InvalidSessionRequest(sid, field, message)


def _check_model(sid: str | None, model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise _reject(sid, "model", "must be a non-empty str")
    return model


def _check_params(sid: str | None, params: Mapping[str, Any], reserved: Mapping[str, str]) -> None:
    for key, why in reserved.items():
        if key in params:
            raise _reject(sid, key, why)


def _check_messages(sid: str | None, messages: object) -> list[Any]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise _reject(sid, "messages", "must be a list of message objects")
    if not messages:
        raise _reject(sid, "messages", "must not be empty")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise _reject(sid, where, f"must be an object, got {type(msg).__name__}")
        role = msg.get("role")
        if role not in CHAT_ROLES:
            raise _reject(
                sid, f"{where}.role", f"unknown role {role!r}; one of {sorted(CHAT_ROLES)}"
            )
        if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
            raise _reject(sid, f"{where}.tool_call_id", "a tool message needs its tool_call_id")
        if role == "assistant":
            if all(msg.get(k) is None for k in _ASSISTANT_PAYLOADS):
                raise _reject(sid, where, "an assistant message needs content or tool_calls")
        elif msg.get("content") is None:
            raise _reject(sid, f"{where}.content", f"a {role} message needs content")
    return list(messages)


def build_chat_body(
    model: object, messages: object, params: Mapping[str, Any], *, session_id: str | None = None
) -> dict[str, Any]:
    """The Chat Completions create body for a session stream, model rules applied.

    Raises:
        InvalidSessionRequest: an empty or malformed ``messages`` (unknown role, a tool message
            without ``tool_call_id``, ...), a reserved parameter (``model``, ``messages``,
            ``stream``), a bad ``n``, or ``max_tokens`` and ``max_completion_tokens`` that
            disagree for a reasoning model (one would have to be dropped silently).
    """
    model = _check_model(session_id, model)
    msgs = _check_messages(session_id, messages)
    _check_params(
        session_id,
        params,
        {
            "model": "pass the model as the first argument",
            "messages": "pass the messages as the second argument",
            "stream": "session streams always stream",
        },
    )
    n = params.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _reject(session_id, "n", f"must be an int >= 1, got {n!r}")
    effort = params.get("reasoning_effort")
    if (
        is_reasoning_model(model, effort if isinstance(effort, str) else None)
        and params.get("max_tokens") is not None
        and params.get("max_completion_tokens") is not None
        and params["max_tokens"] != params["max_completion_tokens"]
    ):
        raise _reject(
            session_id,
            "max_tokens",
            f"{model} takes only max_completion_tokens; max_tokens={params['max_tokens']!r} "
            f"contradicts max_completion_tokens={params['max_completion_tokens']!r}",
        )
    body: dict[str, Any] = {"model": model, "messages": msgs, **params}
    body.setdefault("stream_options", {"include_usage": True})
    return _apply_rules("chat", body, session_id)


def _check_input(sid: str | None, value: object) -> Any:
    if isinstance(value, str):
        if not value:
            raise _reject(sid, "input", "must not be empty")
        return value
    if isinstance(value, bytes) or not isinstance(value, Sequence):
        raise _reject(sid, "input", "must be a str or a list of input items")
    if not value:
        raise _reject(sid, "input", "must not be empty")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise _reject(sid, where, f"must be an object, got {type(item).__name__}")
        if "role" in item:
            if item["role"] not in INPUT_ROLES:
                raise _reject(
                    sid,
                    f"{where}.role",
                    f"unknown role {item['role']!r}; one of {sorted(INPUT_ROLES)}",
                )
            if item.get("content") is None:
                raise _reject(sid, f"{where}.content", "an input message needs content")
        elif not isinstance(item.get("type"), str):
            raise _reject(sid, where, "an input item needs a role or a type")
    return list(value)


def build_responses_body(
    model: object, input: object, params: Mapping[str, Any], *, session_id: str | None = None
) -> dict[str, Any]:
    """The Responses create body for a session stream (without the durable flags), rules applied.

    Raises:
        InvalidSessionRequest: an empty or malformed ``input`` (unknown role, an item without
            role or type), a reserved parameter (``model``, ``input``, ``stream``,
            ``background``), ``max_tokens`` (the Responses API calls it ``max_output_tokens``),
            ``max_output_tokens`` below 16, or both ``previous_response_id`` and
            ``conversation``.
    """
    model = _check_model(session_id, model)
    checked = _check_input(session_id, input)
    _check_params(
        session_id,
        params,
        {
            "model": "pass the model as the first argument",
            "input": "pass the input as the second argument",
            "stream": "session streams always stream",
            "background": "use durable=True for a background (resumable) stream",
            "max_tokens": "the Responses API calls it max_output_tokens",
        },
    )
    limit = params.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 16):
        raise _reject(session_id, "max_output_tokens", f"must be an int >= 16, got {limit!r}")
    if params.get("previous_response_id") is not None and params.get("conversation") is not None:
        raise _reject(
            session_id, "conversation", "previous_response_id and conversation exclude each other"
        )
    body: dict[str, Any] = {"model": model, "input": checked, **params}
    return _apply_rules("responses", body, session_id)


def _apply_rules(api: Api, body: dict[str, Any], sid: str | None) -> dict[str, Any]:
    new, dropped = apply_model_rules(api, body)
    if dropped:
        log.info("session.params_dropped", session=sid, model=new["model"], params=list(dropped))
    return new


# ---------------------------------------------------------------------------------------------
# Messages (private to this module)


@attrs.frozen
class _Start:
    api: Api
    model: str
    body: dict[str, Any]
    durable: bool | None


@attrs.frozen
class _Wait:
    stream_id: str


@attrs.frozen
class _Stop:
    stream_id: str | None


@attrs.frozen
class _Streams:
    pass


@attrs.frozen
class _Failed:
    """A reply that the handle raises."""

    error: BaseException = attrs.field(eq=False)


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
            self.state.streams.pop(record.stream_id, None)
            self.state.remember(self._final(record))
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
        return await super().handle_call(request, caller)

    def _start(self, request: _Start, caller: Caller) -> Any:
        sid = self.session_id
        if len(self._active) >= self.deps.max_streams:
            return _Failed(TooManyStreams(sid, self.deps.max_streams))
        body = request.body
        durable = False
        if request.api == "responses":
            durable = (
                self.deps.config.durable_responses if request.durable is None else request.durable
            )
            if durable:
                if self.deps.tracker is None:
                    return _Failed(
                        InvalidSessionRequest(
                            sid, "durable", "durable streams need a tracker (the background poller)"
                        )
                    )
                if body.get("store") is False:
                    return _Failed(
                        InvalidSessionRequest(
                            sid, "store", "a durable stream is stored (store=True) to be resumed"
                        )
                    )
                body = {**body, "background": True, "store": True}
        record = _Record(
            self.state.next_stream_id(), request.api, request.model, body, durable=durable
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
            return _Failed(UnknownStream(self.session_id, stream_id))
        return outcome

    def _stop(self, stream_id: str | None, caller: Caller) -> Any:
        if stream_id is None:
            targets = list(self._active.values())
        else:
            one = self._active.get(stream_id)
            if one is None:
                outcome = self.state.outcomes.get(stream_id)
                if outcome is None:
                    return _Failed(UnknownStream(self.session_id, stream_id))
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
        self.state.streams.pop(rec.stream_id, None)
        self.state.remember(outcome)
        self._active.pop(rec.stream_id, None)
        stream.outcome = outcome
        if stream.starter is not None:
            starter, stream.starter = stream.starter, None
            if outcome.error is not None:
                starter.reply(_Failed(outcome.error))
            else:
                starter.reply(_Failed(StreamStopped(self.session_id, rec.stream_id, "stopped")))
        for notify in stream.on_done:
            notify(outcome)
        stream.done.set()

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
        publish = self.deps.bus.publish
        topic = self.topic
        try:
            if rec.api == "chat":
                opener = client.stream_chat(rec.body, session_id=self.session_id)
            else:
                opener = client.stream_response(rec.body, session_id=self.session_id)
            async with opener as events:
                rec.accumulator = events.accumulator
                async for event in events:
                    publish(topic, event)
                    rec.cursor = event.sequence_number
                    if stream.starter is not None and event.type != "error":
                        rec.response_id = event.response_id or events.response_id
                        self._started(stream)
                    if event.terminal:
                        rec.terminal = True
        except StreamError as exc:  # the `error` frame itself was published
            raise _Broken(exc, "failed", reported=True) from exc
        except (OpenAIError, httpx.HTTPError) as exc:
            raise _Broken(exc) from exc
        return self._final(rec)

    async def _durable(self, stream: _Stream) -> StreamOutcome:
        rec = stream.record
        deps = self.deps
        client = deps.client
        tracker = deps.tracker
        assert tracker is not None
        publish = deps.bus.publish
        topic = self.topic
        every = deps.cursor_every
        note = tracker.note_cursor
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
                        publish(topic, event)
                        seq = rec.cursor = event.sequence_number
                        progressed = True
                        if rec.response_id is None:
                            rec.response_id = event.response_id or events.response_id
                            if rec.response_id is not None:
                                self._started(stream)
                                await self._track(rec)
                            elif event.type != "error":  # (an `error` ends it: StreamError)
                                raise _Broken(
                                    StreamInterrupted(
                                        "the first event of a durable stream named no response",
                                        cursor=seq,
                                    )
                                )
                        elif not rec.tracked:  # resumed by a restarted worker before tracking
                            await self._track(rec)
                        count += 1
                        if count % every == 0 and rec.response_id is not None:
                            note(rec.response_id, seq)
                        if event.terminal:
                            rec.terminal = True
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
            except (OpenAIError, httpx.HTTPError) as exc:
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
            # The stream goes on; only its durability across a daemon restart is at risk.
            log.warning(
                "session.track_failed",
                session=self.session_id,
                response_id=rec.response_id,
                error=repr(exc),
            )
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
        self.state.streams.pop(rec.stream_id, None)
        self.state.remember(self._outcome(rec, status, None, error))


# ---------------------------------------------------------------------------------------------
# The supervisor side


def session_factory(
    session_id: str, deps: SessionDeps, state: SessionState | None = None
) -> functools.partial[StreamingSession]:
    """The child factory of one session: ``partial(StreamingSession, session_id, deps, state)``.

    It holds the `SessionState`, so every worker it builds (the first, and each restart) shares
    it. Raises `InvalidSessionId`."""
    check_session_id(session_id)
    return functools.partial(
        StreamingSession, session_id, deps, state if state is not None else SessionState(session_id)
    )


def _build(factory: Callable[[], StreamingSession]) -> StreamingSession:
    return factory()


def sessions_supervisor(
    config: SessionsSection | None = None,
    *,
    max_children: int | None = None,
    intensity: int = 3,
    period: float = 5.0,
) -> DynamicSupervisor:
    """The ``sessions`` dynamic supervisor: ``start_child(session_factory(...))`` starts one.

    Children are transient (a session stopped normally stays stopped; a crashed one restarts)
    and get ``config.stop_timeout`` seconds to stop their streams at shutdown. Raises
    ``InvalidSupervisorFlags``/``InvalidChildSpec`` for bad flags."""
    config = config if config is not None else SessionsSection()
    return DynamicSupervisor(
        _build,
        restart=Restart.TRANSIENT,
        shutdown=config.stop_timeout,
        max_children=max_children,
        intensity=intensity,
        period=period,
    )


async def open_session(
    sessions: DynamicSupervisorRef,
    session_id: str,
    deps: SessionDeps,
    *,
    timeout: float | None = 60.0,  # noqa: ASYNC109
) -> SessionHandle:
    """The session's handle, starting its worker under ``sessions`` if it is not running.

    With a registry on ``sessions``, the worker is registered as ``session.<id>`` and the handle
    follows it across restarts; without one, every call starts a new worker.

    Raises:
        InvalidSessionId: an unusable id.
        StartChildError / MaxChildren / ActorExited: as ``DynamicSupervisorRef.start_child``.
    """
    check_session_id(session_id)
    registry = sessions.registry
    if registry is None:
        ref = await sessions.start_child(session_factory(session_id, deps))
        return SessionHandle(ref, session_id, timeout=timeout)
    name = session_name(session_id)
    found = registry.whereis(name)
    if found is not None:
        ref = found
    else:
        try:
            ref = await sessions.start_child(session_factory(session_id, deps), name=name)
        except StartChildError as exc:
            if not isinstance(exc.__cause__, AlreadyStarted):
                raise
            ref = exc.__cause__.ref
    return SessionHandle(ref, session_id, registry=registry, timeout=timeout)


class SessionHandle:
    """A typed facade over a session worker's ref. Requests are validated here, in the
    caller's task, before anything reaches the worker or the network.

    Every method may also raise ``ActorExited`` (the worker died during the call and no
    restarted one was found), ``NoSuchActor`` (the session is not running) and ``CallTimeout``
    (no answer within ``timeout``; the request may still take effect).
    """

    def __init__(
        self,
        ref: ActorRef,
        session_id: str,
        *,
        registry: Registry | None = None,
        timeout: float | None = 60.0,
    ) -> None:
        self._ref = ref
        self.session_id = check_session_id(session_id)
        self._registry = registry
        self._name = session_name(session_id)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<SessionHandle {self.session_id} {self._ref!r}>"

    @property
    def topic(self) -> str:
        """Where the session's events are published."""
        return session_topic(self.session_id)

    @property
    def ref(self) -> ActorRef:
        """The current worker's ref (it changes when the worker restarts)."""
        return self._current()

    def _current(self) -> ActorRef:
        if not self._ref.alive and self._registry is not None:
            ref = self._registry.whereis(self._name)
            if ref is not None:
                self._ref = ref
        return self._ref

    async def _resolve(self, timeout: float | None) -> ActorRef:  # noqa: ASYNC109
        """The live worker, waiting (briefly) for a restart in progress."""
        ref = self._current()
        if ref.alive or self._registry is None:
            return ref
        bound = 1.0 if timeout is None else min(timeout, 1.0)
        try:
            self._ref = await self._registry.wait_for(self._name, timeout=bound)
        except trio.TooSlowError:
            raise NoSuchActor(self._name) from None
        return self._ref

    async def _call(self, request: object, *, retry: bool, timeout: float | None) -> Any:  # noqa: ASYNC109
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        while True:
            ref = await self._resolve(timeout)
            remaining = deadline - trio.current_time()
            try:
                reply = await ref.call(request, timeout=None if timeout is None else remaining)
            except ActorExited:
                if not retry or self._registry is None:
                    raise
                continue
            if isinstance(reply, _Failed):
                raise reply.error
            return reply

    async def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> StreamTicket:
        """Start a Chat Completions stream; return once its first event is published.

        ``params`` are the API's create parameters (``tools``, ``max_completion_tokens``, ...);
        the reasoning-model rules are applied (e.g. ``temperature`` is dropped for o3).

        Raises:
            InvalidSessionRequest: a bad request (see `build_chat_body`); nothing was sent.
            TooManyStreams: the session already runs its maximum of streams.
            APIStatusError, APIConnectionError, StreamInterrupted, ...: the stream failed before
                its first event (after the client's retries); nothing was published.
            StreamStopped: a ``stop`` (or the session's shutdown) came before the first event.
        """
        body = build_chat_body(model, messages, params, session_id=self.session_id)
        return cast(
            StreamTicket,
            await self._call(_Start("chat", model, body, None), retry=False, timeout=self.timeout),
        )

    async def respond(
        self, model: str, input: Any, *, durable: bool | None = None, **params: Any
    ) -> StreamTicket:
        """Start a Responses stream; return once its first event is published.

        ``durable`` (default: the ``[sessions] durable_responses`` setting) makes it a
        background stream that survives connection drops and worker restarts.

        Raises:
            InvalidSessionRequest: a bad request (see `build_responses_body`), ``store=False``
                with a durable stream, or a durable stream without a tracker; nothing was sent.
            TooManyStreams: the session already runs its maximum of streams.
            OutcomeUnknownError: a durable create whose answer (or first event) was lost: the
                response may exist server-side, and is not tracked.
            StreamError: the server's first event was an `error` frame (it was published).
            APIStatusError, APIConnectionError, StreamInterrupted, StreamStopped: as `chat`.
        """
        body = build_responses_body(model, input, params, session_id=self.session_id)
        if durable is not None and not isinstance(durable, bool):
            raise InvalidSessionRequest(self.session_id, "durable", "must be a bool or None")
        return cast(
            StreamTicket,
            await self._call(
                _Start("responses", model, body, durable), retry=False, timeout=self.timeout
            ),
        )

    async def wait(
        self,
        stream_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> StreamOutcome:
        """Wait for a stream to end and return its outcome (also for one already finished,
        among the session's last 256). Follows the worker across restarts.

        Raises:
            UnknownStream: no such stream (or it was forgotten).
            CallTimeout (a TimeoutError): not finished within ``timeout`` (None: no limit).
        """
        return cast(StreamOutcome, await self._call(_Wait(stream_id), retry=True, timeout=timeout))

    async def stop(self, stream_id: str | None = None) -> list[StreamOutcome]:
        """Stop one stream (or all of the session's): close its connection, cancel a durable
        response server-side, publish ``response.cancelled``. Returns the outcomes once they
        are stopped (a finished stream's outcome as it was).

        Raises:
            UnknownStream: no such stream.
        """
        return cast(
            "list[StreamOutcome]",
            await self._call(_Stop(stream_id), retry=False, timeout=self.timeout),
        )

    async def streams(self) -> list[StreamInfo]:
        """The session's active streams."""
        return cast(
            "list[StreamInfo]", await self._call(_Streams(), retry=True, timeout=self.timeout)
        )
