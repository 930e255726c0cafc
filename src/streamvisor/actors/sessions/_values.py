"""A session's values: its dependencies, tickets, outcomes, stream info, the state that outlives
its worker, and the messages between the worker and its handle."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from streamvisor.config import SessionsSection
from streamvisor.openai import ChatAccumulator, OpenAIClient, ResponseAccumulator
from streamvisor.supervisor import EventBus

from .._histogram import DELIVERY_BUCKETS, Histogram
from ..background._tracker import DurableTracker
from ._eventlog import EventLog
from ._requests import Api

__all__ = [
    "SessionDeps",
    "SessionState",
    "StreamInfo",
    "StreamOutcome",
    "StreamTicket",
]

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
        event_log: Where streams started with ``keep_events`` keep their events (`EventLog`);
            None: such a request is rejected at the call.
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
        delivery: Where every stream counts its events' delivery latency: seconds from the
            arrival of the network chunk that carried an event (``received_at``) to the end of
            its publication on the bus (the daemon's metrics read it).
    """

    client: OpenAIClient
    bus: EventBus[Any]
    config: SessionsSection = attrs.field(factory=SessionsSection)
    tracker: DurableTracker | None = None
    event_log: EventLog | None = None
    max_streams: int = attrs.field(default=8, validator=_at_least(1))
    cursor_every: int = attrs.field(default=32, validator=_at_least(1))
    resume_attempts: int = attrs.field(default=5, validator=_at_least(1))
    resume_backoff: float = attrs.field(default=0.2, validator=_at_least(0))
    resume_backoff_max: float = attrs.field(default=5.0, validator=_at_least(0))
    cleanup_timeout: float = attrs.field(default=2.0, validator=_at_least(0))
    call_timeout: float = attrs.field(default=5.0, validator=_at_least(0))
    delivery: Histogram = attrs.field(factory=lambda: Histogram(DELIVERY_BUCKETS))


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
    #: Its server events go to the session's `EventLog` as they are published.
    keep_events: bool = False


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

    def remember(self, outcome: StreamOutcome, results_kept: int = _OUTCOMES_KEPT) -> None:
        """Keep `outcome` for `SessionHandle.wait`: the newest `_OUTCOMES_KEPT` outcomes, of
        which only the newest `results_kept` keep their ``response`` (the whole output: text,
        items, usage); older ones keep their status, ids, error and last sequence number. A
        session that streams on would otherwise hold 256 whole responses."""
        outcomes = self.outcomes
        outcomes[outcome.stream_id] = outcome
        outcomes.move_to_end(outcome.stream_id)
        while len(outcomes) > _OUTCOMES_KEPT:
            outcomes.popitem(last=False)
        if len(outcomes) > results_kept:
            # The one outcome that just left the newest `results_kept` lets its response go.
            older = next(itertools.islice(reversed(outcomes), results_kept, None))
            kept = outcomes[older]
            if kept.response is not None:
                outcomes[older] = attrs.evolve(kept, response=None)


# ---------------------------------------------------------------------------------------------
# Messages (between the worker and its handle)


@attrs.frozen
class _Start:
    api: Api
    model: str
    body: dict[str, Any]
    durable: bool | None
    keep_events: bool = False


@attrs.frozen
class _Adopt:
    """Resume a durable stream another worker (on another node) left: see `SessionHandle.adopt`."""

    response_id: str
    model: str
    body: dict[str, Any]
    cursor: int | None


@attrs.frozen
class _Wait:
    stream_id: str


@attrs.frozen
class _Stop:
    stream_id: str | None


@attrs.frozen
class _Streams:
    pass
