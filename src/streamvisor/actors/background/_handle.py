"""`BackgroundHandle`: the typed facade of the background poller (and a `DurableTracker`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final

import structlog

from streamvisor.openai import (
    EventStream,
    NotFoundError,
    StreamEvent,
    apply_model_rules,
    check_request,
)
from streamvisor.supervisor import ActorRef, Registry
from streamvisor.supervisor._bus import EventBus

from .._target import RESTART_WAIT, Target, call, current
from ._errors import InvalidBackgroundRequest, ResponseGone
from ._messages import (
    Active,
    Adopt,
    Cancel,
    Create,
    Cursor,
    Get,
    Observed,
    Poll,
    Recent,
    StreamFinished,
    StreamInfo,
    Track,
    check_owner,
    check_response_id,
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

    def __init__(self, events: EventStream, bus: EventBus[Any], poller: Target, rid: str) -> None:
        self._events = events
        self._bus = bus
        self._poller = poller
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
                self._poller.cast(Observed(self.response_id, response["status"], response))
        return event


class BackgroundHandle:
    """The typed facade of a running `BackgroundPoller`; also a `DurableTracker`.

    Build it over the poller's ref, or over its registered name (a `NamedRef`, or
    `from_registry`) to follow the poller across restarts. Ids and parameters are checked here,
    in the caller's task, before anything reaches the poller or the network. Every call may
    raise, besides what it lists: ``ActorExited`` (the poller stopped or crashed during the
    call), ``CallTimeout`` (no answer within ``timeout``; the operation itself goes on),
    ``NoSuchActor`` (a handle by name: no poller registered, nor restarted within the name's
    ``restart_wait``), ``StoreError`` (the registry failed).
    """

    def __init__(self, target: Target) -> None:
        self._target = target

    @classmethod
    def from_registry(cls, registry: Registry, name: str) -> BackgroundHandle:
        """A handle that finds the poller registered as ``name`` at every call (waiting up to a
        second for one being restarted)."""
        return cls(registry.ref(name, restart_wait=RESTART_WAIT))

    @property
    def ref(self) -> ActorRef:
        """The poller's current ref. Raises ``NoSuchActor`` (a handle by name, none running)."""
        return current(self._target)

    async def create(
        self,
        input: Any,
        model: str,
        *,
        owner: str | None = None,
        force_store: bool = True,
        timeout: float | None = 120.0,  # noqa: ASYNC109
        **params: Any,
    ) -> TrackedResponse:
        """Create a background response, register it, and start polling it.

        ``force_store=False`` sends ``store`` as ``params`` has it, or not at all (the API's
        default: a background response is kept about ten minutes) -- what ``/v1`` does for a
        client that chose.

        Forces ``background: true`` and (unless ``force_store=False``) ``store: true``: without
        ``store`` the server deletes a
        background response about 10 minutes after creation, and this poller must be able to
        GET (and resume) it for as long as it runs. The reasoning-model rules are applied (e.g.
        ``temperature`` dropped for o-series). A create whose outcome is unknown (the answer was
        lost after the request may have arrived) is never retried: that could start a duplicate
        job. Returns the registry record (``status`` as the server answered, usually queued).

        Raises:
            InvalidBackgroundRequest: ``model`` empty, ``owner`` not a topic segment, or
                ``stream`` requested (stream through a session instead) -- before any I/O.
            InvalidParameter: ``input`` or a parameter is not plain JSON (NaN, ±Infinity, a
                non-JSON object, too deep); ``.field`` names it (``temperature``,
                ``input[0].content``) -- before any I/O.
            OutcomeUnknownError: the response may or may not exist server-side.
            NotRegistered: created, but the registry write failed (``.response`` to cancel it).
            APIStatusError / APIConnectionError (and subclasses): the create failed.
        """
        body = self._create_body(input, model, owner, force_store, params)
        result: TrackedResponse = await call(self._target, Create(body, owner), timeout)
        return result

    async def create_with_response(
        self,
        input: Any,
        model: str,
        *,
        owner: str | None = None,
        force_store: bool = True,
        timeout: float | None = 120.0,  # noqa: ASYNC109
        **params: Any,
    ) -> tuple[TrackedResponse, dict[str, Any]]:
        """`create`, answering the registry's record and the API's own answer to the create (the
        Response, usually ``queued``). Raises as `create`."""
        request = Create(self._create_body(input, model, owner, force_store, params), owner, True)
        result: tuple[TrackedResponse, dict[str, Any]] = await call(self._target, request, timeout)
        return result

    @staticmethod
    def _create_body(
        input: Any, model: str, owner: str | None, force_store: bool, params: dict[str, Any]
    ) -> dict[str, Any]:
        """The create body (flags forced, model rules applied), checked before any hop."""
        if not isinstance(model, str) or not model:
            raise InvalidBackgroundRequest(f"model must be a non-empty string, got {model!r}")
        check_owner(owner)
        if params.get("stream"):
            raise InvalidBackgroundRequest(
                "create() does not stream; a session streams durable responses"
            )
        forced = ("background", "store") if force_store else ("background",)
        for key in forced:
            if key in params and params[key] is not True:
                log.warning("background.param_forced", param=key, given=params[key])
        store = params.get("store")
        if store is not None and not isinstance(store, bool):
            raise InvalidBackgroundRequest(f"store must be a bool, not {store!r}")
        params = {k: v for k, v in params.items() if k not in _RESERVED}
        body = {"model": model, "input": input, **params, "background": True}
        if force_store:
            body["store"] = True
        elif store is not None:
            body["store"] = store
        check_request(body)
        body, dropped = apply_model_rules("responses", body)
        if dropped:
            log.info("background.params_dropped", model=model, params=list(dropped))
        return body

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
            InvalidResponseId: not a response id the API issues (before any I/O).
            ResponseGone: 404 (the response is marked gone if tracked).
            APIStatusError / APIConnectionError: the GET failed.
        """
        poll = Poll(check_response_id(response_id))
        result: dict[str, Any] = await call(self._target, poll, timeout)
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
            InvalidResponseId: not a response id the API issues (before any I/O).
            ResponseGone: unknown or expired id (404).
            CancelRejected: the response is not a background response (``.status`` None).
            APIStatusError / APIConnectionError: the call failed.
        """
        cancel = Cancel(check_response_id(response_id))
        result: dict[str, Any] = await call(self._target, cancel, timeout)
        return result

    async def get(
        self,
        response_id: str,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> TrackedResponse:
        """The registry's record of ``response_id``. Raises ``UnknownResponse`` (a KeyError), or
        ``InvalidResponseId`` (before any hop to the poller) for an id the API cannot issue."""
        get = Get(check_response_id(response_id))
        result: TrackedResponse = await call(self._target, get, timeout)
        return result

    async def active(
        self,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> list[TrackedResponse]:
        """Every tracked response that is not terminal, oldest first."""
        result: list[TrackedResponse] = await call(self._target, Active(), timeout)
        return result

    async def recent(
        self,
        limit: int = 50,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> list[TrackedResponse]:
        """The newest ``limit`` tracked responses, terminal ones included (as long as the
        registry keeps them: ``[background] terminal_ttl``), newest first. Raises ``ValueError`` for
        a ``limit`` that is not an int >= 0."""
        if type(limit) is not int or limit < 0:
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        result: list[TrackedResponse] = await call(self._target, Recent(limit), timeout)
        return result

    async def adopt(
        self,
        response_ids: Sequence[str],
        *,
        timeout: float | None = 30.0,  # noqa: ASYNC109
    ) -> list[str]:
        """Follow by polling these responses, which the registry holds for this poller already
        (a cluster node took them over from one that died). Returns the ids now polled (a
        terminal or unknown one is skipped)."""
        ids = tuple(check_response_id(rid) for rid in response_ids)
        result: list[str] = await call(self._target, Adopt(ids), timeout)
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
            InvalidResponseId: not a response id the API issues (before any I/O).
            InvalidBackgroundRequest: ``starting_after`` is not None or an int >= 0.
            ResponseGone: 404.
            BadRequestError: the response was not created with ``background: true``.
            APIStatusError / APIConnectionError: the GET failed.
        While iterating: as ``EventStream`` (``StreamInterrupted`` with ``.cursor``, ...).
        """
        check_response_id(response_id)
        if starting_after is not None and (
            type(starting_after) is not int or not 0 <= starting_after < 2**63
        ):
            raise InvalidBackgroundRequest(
                f"starting_after must be None or a sequence number >= 0, not {starting_after!r}"
            )
        client, bus = await call(self._target, StreamInfo(), 5.0)
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
            yield BackgroundStream(events, bus, self._target, response_id)

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
        await call(self._target, Track(response_id, owner, model, request, cursor), 5.0)

    def note_cursor(self, response_id: str, cursor: int) -> None:
        """Record the last published sequence number (a cast: never blocks, never raises;
        written in batches)."""
        self._cast(Cursor(response_id, cursor), "background.cursor_dropped", cursor=cursor)

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None:
        """The durable stream ended. A terminal ``status`` is recorded (and notified); any other
        (the stream broke and the session gave up) hands the response over to polling."""
        await call(self._target, StreamFinished(response_id, status, response), 10.0)

    def stream_abandoned(self, response_id: str) -> None:
        """The stream's session was given up: hand its response over to polling (a cast: never
        blocks, never raises; logged if the poller is not running)."""
        message = StreamFinished(response_id, "in_progress", None)
        self._cast(message, "background.stream_abandoned_dropped")

    def _cast(self, message: Cursor | StreamFinished, dropped: str, **context: Any) -> None:
        """Cast ``message`` to the poller running now (one lookup), or log ``dropped``."""
        target = self._target
        ref = target if isinstance(target, ActorRef) else target.whereis()
        if ref is not None:
            ref.cast(message)
        else:
            log.warning(dropped, response_id=message.response_id, **context)
