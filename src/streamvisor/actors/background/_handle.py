"""`BackgroundHandle`: the typed facade of the background poller (and a `DurableTracker`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final

import structlog

from streamvisor.openai import (
    EventStream,
    NotFoundError,
    StreamEvent,
    apply_model_rules,
)
from streamvisor.supervisor import ActorRef, NoSuchActor, Registry
from streamvisor.supervisor._bus import EventBus

from ._errors import InvalidBackgroundRequest, ResponseGone
from ._messages import (
    Active,
    Cancel,
    Create,
    Cursor,
    Failed,
    Get,
    Observed,
    Poll,
    StreamFinished,
    StreamInfo,
    Track,
    check_owner,
    seed_snapshot,
)
from ._records import TrackedResponse
from ._tracker import DurableTracker

__all__ = ["BackgroundHandle", "BackgroundStream", "DurableTracker"]

log = structlog.get_logger("streamvisor.background")

#: Reserved by the API or by the poller: ``create`` sets them itself.
_RESERVED: Final = frozenset({"model", "input", "background", "store", "stream"})


# --------------------------------------------------------------------------------- the handle


class BackgroundStream:
    """The events of a resumed background response (from `BackgroundHandle.stream`).

    Iterating yields `StreamEvent`s exactly as the underlying `EventStream` does (and raises as it
    does: ``StreamInterrupted`` with ``.cursor`` on a drop, ``StreamError``...), publishing each on
    ``background.<id>``; a terminal event also updates the registry. A resume of a response that
    was already finished (the seeding GET said so) from its last event receives nothing and ends
    cleanly (the wire layer knows the seeded snapshot is terminal); ``events.accumulator.result``
    holds the final Response.
    """

    def __init__(self, events: EventStream, bus: EventBus[Any], ref: ActorRef, rid: str) -> None:
        self._events = events
        self._bus = bus
        self._ref = ref
        self._topic = f"background.{rid}"
        self.response_id = rid

    @property
    def cursor(self) -> int | None:
        """The last sequence number delivered: resume with ``starting_after=cursor``."""
        return self._events.cursor

    @property
    def events(self) -> EventStream:
        """The underlying stream (its ``accumulator`` holds the Response so far)."""
        return self._events

    def __aiter__(self) -> BackgroundStream:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._events.__anext__()
        self._bus.publish(self._topic, event)
        if event.terminal and event.type != "error":
            response = event.data.get("response")
            if isinstance(response, Mapping) and isinstance(response.get("status"), str):
                self._ref.cast(Observed(self.response_id, response["status"], response))
        return event


class BackgroundHandle:
    """The typed facade of a running `BackgroundPoller`; also a `DurableTracker`.

    Build it from the poller's ref, or with `from_registry` to follow the poller across restarts.
    Every call may raise, besides what it lists: ``ActorExited`` (the poller stopped or crashed
    during the call), ``CallTimeout`` (no answer within ``timeout``; the operation itself goes
    on), ``NoSuchActor`` (`from_registry`: no poller registered), ``StoreError`` (the registry
    failed).
    """

    def __init__(self, ref: ActorRef) -> None:
        self._fixed: ActorRef | None = ref
        self._registry: Registry | None = None
        self._name = ""

    @classmethod
    def from_registry(cls, registry: Registry, name: str) -> BackgroundHandle:
        """A handle that looks the poller up by ``name`` on every call."""
        handle = cls.__new__(cls)
        handle._fixed, handle._registry, handle._name = None, registry, name
        return handle

    @property
    def ref(self) -> ActorRef:
        """The poller's current ref. Raises ``NoSuchActor`` (registry handle, none running)."""
        if self._fixed is not None:
            return self._fixed
        assert self._registry is not None
        ref = self._registry.whereis(self._name)
        if ref is None:
            raise NoSuchActor(self._name)
        return ref

    async def _call(self, message: object, timeout: float | None) -> Any:  # noqa: ASYNC109
        result = await self.ref.call(message, timeout=timeout)
        if isinstance(result, Failed):
            raise result.error
        return result

    async def create(
        self,
        input: Any,
        model: str,
        *,
        owner: str | None = None,
        timeout: float | None = 120.0,  # noqa: ASYNC109
        **params: Any,
    ) -> TrackedResponse:
        """Create a background response, register it, and start polling it.

        Forces ``background: true`` and ``store: true``: without ``store`` the server deletes a
        background response about 10 minutes after creation, and this poller must be able to
        GET (and resume) it for as long as it runs. The reasoning-model rules are applied (e.g.
        ``temperature`` dropped for o-series). A create whose outcome is unknown (the answer was
        lost after the request may have arrived) is never retried: that could start a duplicate
        job. Returns the registry record (``status`` as the server answered, usually queued).

        Raises:
            InvalidBackgroundRequest: ``model`` empty, ``owner`` not a topic segment, or
                ``stream`` requested (stream through a session instead) -- before any I/O.
            OutcomeUnknownError: the response may or may not exist server-side.
            NotRegistered: created, but the registry write failed (``.response`` to cancel it).
            APIStatusError / APIConnectionError (and subclasses): the create failed.
        """
        if not isinstance(model, str) or not model:
            raise InvalidBackgroundRequest(f"model must be a non-empty string, got {model!r}")
        check_owner(owner)
        if params.get("stream"):
            raise InvalidBackgroundRequest(
                "create() does not stream; a session streams durable responses"
            )
        for key in ("background", "store"):
            if key in params and params[key] is not True:
                log.warning("background.param_forced", param=key, given=params[key])
        params = {k: v for k, v in params.items() if k not in _RESERVED}
        body = {"model": model, "input": input, **params, "background": True, "store": True}
        body, dropped = apply_model_rules("responses", body)
        if dropped:
            log.info("background.params_dropped", model=model, params=list(dropped))
        result: TrackedResponse = await self._call(Create(body, owner), timeout)
        return result

    async def poll(
        self,
        response_id: str,
        *,
        timeout: float | None = 60.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """GET the response now; update the registry (and notify) if it is tracked; return it.

        An active tracked response whose polling had stopped (e.g. on a quota error) is polled
        again from here on.

        Raises:
            ResponseGone: 404 (the response is marked gone if tracked).
            APIStatusError / APIConnectionError: the GET failed.
        """
        result: dict[str, Any] = await self._call(Poll(response_id), timeout)
        return result

    async def cancel(
        self,
        response_id: str,
        *,
        timeout: float | None = 60.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Cancel a background response; return the Response in its final state.

        Cancelling a queued or in-progress response answers ``cancelled``; cancelling it again is
        idempotent. A cancel that lost the race with the response finishing (400 "Cannot cancel
        a completed response.") is not an error: the final state is fetched and returned.

        Raises:
            ResponseGone: unknown or expired id (404).
            CancelRejected: the response is not a background response (``.status`` None).
            APIStatusError / APIConnectionError: the call failed.
        """
        result: dict[str, Any] = await self._call(Cancel(response_id), timeout)
        return result

    async def get(
        self,
        response_id: str,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> TrackedResponse:
        """The registry's record of ``response_id``. Raises ``UnknownResponse`` (a KeyError)."""
        result: TrackedResponse = await self._call(Get(response_id), timeout)
        return result

    async def active(
        self,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> list[TrackedResponse]:
        """Every tracked response that is not terminal, oldest first."""
        result: list[TrackedResponse] = await self._call(Active(), timeout)
        return result

    @asynccontextmanager
    async def stream(
        self, response_id: str, starting_after: int | None = None
    ) -> AsyncIterator[BackgroundStream]:
        """Resume a background response's event stream (a real resume: the server sends only the
        events after ``starting_after``; None replays from ``response.created``).

        With ``starting_after`` the stream has no ``response.created``, so the accumulator is
        seeded from a GET (`seed_snapshot`: output that began before the cursor is left out; the
        terminal event carries the whole Response). Each event is also published on
        ``background.<id>``.

        Raises on entry:
            ResponseGone: 404.
            BadRequestError: the response was not created with ``background: true``.
            APIStatusError / APIConnectionError: the GET failed.
        While iterating: as ``EventStream`` (``StreamInterrupted`` with ``.cursor``, ...).
        """
        ref = self.ref
        client, bus = await self._call(StreamInfo(), 5.0)
        async with AsyncExitStack() as stack:
            try:
                snapshot = None
                if starting_after is not None:
                    snapshot = seed_snapshot((await client.retrieve_response(response_id)).response)
                events = await stack.enter_async_context(
                    client.resume_response(
                        response_id, starting_after=starting_after, snapshot=snapshot
                    )
                )
            except NotFoundError as err:
                raise ResponseGone(response_id, str(err)) from err
            yield BackgroundStream(events, bus, ref, response_id)

    # -- DurableTracker ------------------------------------------------------------------------

    async def track_stream(
        self,
        *,
        response_id: str,
        owner: str,
        model: str,
        request: Mapping[str, Any],
        cursor: int | None,
    ) -> None:
        """Register a durable session stream's response (``mode="stream"``: not polled while the
        session streams it); returns once the record is committed (a ``kill -9`` after that
        loses nothing). Tracking it again (a restarted session worker) updates the owner and
        moves the cursor forward. Raises ``InvalidBackgroundRequest`` for a bad owner."""
        check_owner(owner)
        await self._call(Track(response_id, owner, model, request, cursor), 5.0)

    def note_cursor(self, response_id: str, cursor: int) -> None:
        """Record the last published sequence number (a cast: never blocks, never raises;
        written in batches)."""
        try:
            self.ref.cast(Cursor(response_id, cursor))
        except NoSuchActor:
            log.warning("background.cursor_dropped", response_id=response_id, cursor=cursor)

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None:
        """The durable stream ended. A terminal ``status`` is recorded (and notified); any other
        (the stream broke and the session gave up) hands the response over to polling."""
        await self._call(StreamFinished(response_id, status, response), 10.0)
