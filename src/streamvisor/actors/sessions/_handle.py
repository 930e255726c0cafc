"""A session's outside: `SessionHandle` (the typed facade over its worker), `open_session`, and
the ``sessions`` supervisor's side (`session_factory`, `sessions_supervisor`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from streamvisor.config import SessionsSection
from streamvisor.supervisor import (
    ActorRef,
    AlreadyStarted,
    DynamicSupervisor,
    DynamicSupervisorRef,
    GivenUp,
    Restart,
    RestartBudget,
    StartChildError,
)

from .._target import RESTART_WAIT, Target, call, current
from ._errors import InvalidSessionRequest
from ._given_up import report_session_given_up
from ._requests import (
    build_chat_body,
    build_responses_body,
    check_respond_flags,
    check_session_id,
    check_stream_id,
    session_name,
    session_topic,
)
from ._session import StreamingSession
from ._values import (
    SessionDeps,
    SessionState,
    StreamInfo,
    StreamOutcome,
    StreamTicket,
    _Adopt,
    _Start,
    _Stop,
    _Streams,
    _Wait,
)

__all__ = ["SessionHandle", "open_session", "session_factory", "sessions_supervisor"]


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
    restart_budget: RestartBudget | None = None,
    on_give_up: Callable[[GivenUp], object] | None = None,
) -> DynamicSupervisor:
    """The ``sessions`` dynamic supervisor: ``start_child(session_factory(...))`` starts one.

    Children are transient (a session stopped normally stays stopped; a crashed one restarts)
    and get ``config.stop_timeout`` seconds to stop their streams at shutdown. With a
    ``restart_budget``, a session restarting more often is given up alone and ``on_give_up``
    (default `report_session_given_up`: a terminal ``error`` event on ``session.<id>``) is
    called; the id can be opened again. Raises ``InvalidSupervisorFlags``/``InvalidChildSpec``
    for bad flags."""
    config = config if config is not None else SessionsSection()
    return DynamicSupervisor(
        _build,
        restart=Restart.TRANSIENT,
        shutdown=config.stop_timeout,
        max_children=max_children,
        intensity=intensity,
        period=period,
        restart_budget=restart_budget,
        on_give_up=on_give_up if on_give_up is not None else report_session_given_up,
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
    if registry.whereis(name) is None:
        try:
            await sessions.start_child(session_factory(session_id, deps), name=name)
        except StartChildError as exc:
            if not isinstance(exc.__cause__, AlreadyStarted):
                raise
    named = registry.ref(name, restart_wait=RESTART_WAIT)
    return SessionHandle(named, session_id, timeout=timeout)


class SessionHandle:
    """A typed facade over a session worker. Requests are validated here, in the caller's task,
    before anything reaches the worker or the network.

    Build it over the worker's registered name (``registry.ref("session.<id>")``, what
    `open_session` does: the handle follows the worker across restarts) or over a fixed
    ``ActorRef``.

    Every method may also raise ``ActorExited`` (the worker died during the call), ``NoSuchActor``
    (the session is not running, nor restarted within the name's ``restart_wait``) and
    ``CallTimeout`` (no answer within ``timeout``; the request may still take effect).
    """

    def __init__(self, target: Target, session_id: str, *, timeout: float | None = 60.0) -> None:
        self._target = target
        self.session_id = check_session_id(session_id)
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<SessionHandle {self.session_id} {self._target!r}>"

    @property
    def topic(self) -> str:
        """Where the session's events are published."""
        return session_topic(self.session_id)

    @property
    def ref(self) -> ActorRef:
        """The current worker's ref (it changes when the worker restarts).

        Raises ``NoSuchActor`` (a handle by name) when no worker holds the name now."""
        return current(self._target)

    async def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> StreamTicket:
        """Start a Chat Completions stream; return once its first event is published.

        ``params`` are the API's create parameters (``tools``, ``max_completion_tokens``, ...);
        the reasoning-model rules are applied (e.g. ``temperature`` is dropped for o3).

        Raises:
            InvalidSessionRequest: a bad request (see `build_chat_body`); nothing was sent.
            InvalidParameter: a value in ``messages``/``params`` that is not plain JSON (NaN,
                ±Infinity, ...); ``.field`` names it; nothing was sent.
            TooManyStreams: the session already runs its maximum of streams.
            APIStatusError, APIConnectionError, StreamInterrupted, ...: the stream failed before
                its first event (after the client's retries); nothing was published.
            StreamStopped: a ``stop`` (or the session's shutdown) came before the first event.
        """
        body = build_chat_body(model, messages, params, session_id=self.session_id)
        return cast(
            StreamTicket,
            await call(self._target, _Start("chat", model, body, None), self.timeout),
        )

    async def respond(
        self,
        model: str,
        input: Any,
        *,
        durable: bool | None = None,
        keep_events: bool = False,
        **params: Any,
    ) -> StreamTicket:
        """Start a Responses stream; return once its first event is published.

        ``durable`` (default: the ``[sessions] durable_responses`` setting) makes it a
        background stream that survives connection drops and worker restarts. ``keep_events``
        keeps every server event in the daemon's event log (``[eventlog]``), from which it can
        be replayed after a cursor (`EventLog.read`) for as long as the log's retention.

        Raises:
            InvalidSessionRequest: a bad request (see `build_responses_body`), ``store=False``
                with a durable stream, a durable stream without a tracker, or ``keep_events``
                without an event log; nothing was sent.
            InvalidParameter: a value that is not plain JSON (``.field``: ``input[2].content``).
            TooManyStreams: the session already runs its maximum of streams.
            OutcomeUnknownError: a durable create whose answer (or first event) was lost: the
                response may exist server-side, and is not tracked.
            StreamError: the server's first event was an `error` frame (it was published).
            APIStatusError, APIConnectionError, StreamInterrupted, StreamStopped: as `chat`.
        """
        body = build_responses_body(model, input, params, session_id=self.session_id)
        check_respond_flags(self.session_id, durable, keep_events)
        start = _Start("responses", model, body, durable, keep_events)
        return cast(StreamTicket, await call(self._target, start, self.timeout))

    async def wait(
        self,
        stream_id: str,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> StreamOutcome:
        """Wait for a stream to end and return its outcome (also for one already finished,
        among the session's last 256). Follows the worker across restarts. The outcomes of the
        session's newest ``[sessions] results_kept`` finished streams (16) keep their
        ``response``; older ones keep their status, ids, error and last sequence number, with
        ``response`` None.

        Raises:
            InvalidStreamId: not a stream id a session hands out (``stream-<n>``).
            UnknownStream: no such stream (or it was forgotten).
            CallTimeout (a TimeoutError): not finished within ``timeout`` (None: no limit).
        """
        check_stream_id(self.session_id, stream_id)
        return cast(
            StreamOutcome,
            await call(self._target, _Wait(stream_id), timeout, retry_on_exit=True),
        )

    async def stop(self, stream_id: str | None = None) -> list[StreamOutcome]:
        """Stop one stream (or all of the session's): close its connection, cancel a durable
        response server-side, publish ``response.cancelled``. Returns the outcomes once they
        are stopped (a finished stream's outcome as it was).

        Raises:
            InvalidStreamId: not a stream id a session hands out (``stream-<n>``).
            UnknownStream: no such stream.
        """
        if stream_id is not None:
            check_stream_id(self.session_id, stream_id)
        return cast("list[StreamOutcome]", await call(self._target, _Stop(stream_id), self.timeout))

    async def streams(self) -> list[StreamInfo]:
        """The session's active streams."""
        return cast(
            "list[StreamInfo]",
            await call(self._target, _Streams(), self.timeout, retry_on_exit=True),
        )

    async def adopt(
        self,
        response_id: str,
        *,
        model: str,
        request: Mapping[str, Any],
        cursor: int | None,
    ) -> str:
        """Resume here a durable stream a worker on another node left (a cluster takeover):
        from ``cursor`` (the registry's; None: from its start), publishing on this session's
        topic, with the response already tracked by this node's registry. Returns its stream id
        (the same one if it is already being resumed here). ``wait`` and ``stop`` work on it as
        on any stream.
        """
        if not isinstance(response_id, str) or not response_id:
            raise InvalidSessionRequest(self.session_id, "response_id", "must be a non-empty str")
        if cursor is not None and (type(cursor) is not int or cursor < 0):
            raise InvalidSessionRequest(self.session_id, "cursor", "must be an int >= 0 or None")
        body = {**request, "background": True, "store": True, "stream": True}
        adopt = _Adopt(response_id, model, body, cursor)
        return cast(str, await call(self._target, adopt, self.timeout))
