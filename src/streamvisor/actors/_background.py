"""`BackgroundPoller`: the durable registry of background responses, their polling, cancel, resume.

The tree under it::

    background  (BackgroundPoller)       calls: create / poll / cancel / get / active / track ...
    └── pollers (DynamicSupervisor, transient children, its own restart intensity)
        ├── ResponsePoller resp_a        one per polled response; exits when it is terminal
        └── ResponsePoller resp_b

Every tracked response lives in the SQLite registry (`RegistryStore`) before anything else happens
to it, and every poller starts from the registry, so neither a poller crash nor a daemon restart
-- even ``kill -9`` -- loses a response: `init` adopts every non-terminal entry as polling. If the
pollers' supervisor gives up (its restart intensity), the background poller crashes with it and
its own supervisor decides.

Status changes are published as `BackgroundStatus` on ``background.<id>`` and, for an owned
response, on ``session.<owner>`` (see `_background_status`). A response the server answers 404
for (expired, deleted) is recorded as ``failed`` with ``last_error`` ``response_gone: ...`` and
``metadata["gone"]`` true: the six API statuses stay the only statuses, and a consumer that only
knows them sees it as finished. ``insufficient_quota`` (and 401/403) stop its polling with a
`PollingStopped` notice; the response stays active in the registry for ``poll()`` or a restart.

Long calls (create, poll, cancel) run in tasks linked to the actor, so it keeps answering while
the network is slow; a caller that times out does not undo them (a create still gets tracked).
"""

from __future__ import annotations

import contextlib
import json
import math
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final, Protocol, runtime_checkable

import attrs
import structlog
import trio

from ..config import BackgroundSection
from ..openai import (
    CancelRejected,
    NotFoundError,
    OpenAIClient,
    OpenAIError,
    OutcomeUnknownError,
    StreamEvent,
    apply_model_rules,
)
from ..openai import EventStream as _EventStream
from ..supervisor import (
    Actor,
    ActorRef,
    Caller,
    DynamicSupervisor,
    DynamicSupervisorRef,
    ExitReason,
    NoReply,
    NoSuchActor,
    Registry,
    Restart,
    start_actor,
)
from ..supervisor._bus import EventBus
from ._background_pollers import (
    ResponsePoller,
    Shared,
    mark_gone,
    observe,
    publish,
)
from ._background_status import BackgroundStatus, poll_delay
from ._errors import ActorsLayerError, InvalidBackgroundRequest, NotRegistered, ResponseGone
from ._store import (
    RESPONSE_STATUSES,
    TERMINAL_STATUSES,
    DuplicateResponse,
    RegistryStore,
    StoreError,
    TrackedResponse,
)

__all__ = [
    "BackgroundHandle",
    "BackgroundPoller",
    "BackgroundStream",
    "DurableTracker",
    "open_background_poller",
]

log = structlog.get_logger("streamvisor.background")

#: Errors a call reports to its caller; anything else is a bug and crashes the actor.
_CALLER_ERRORS: Final = (OpenAIError, ActorsLayerError, StoreError, ValueError)
#: Bound on closing the registry and stopping the pollers.
_CLOSE_TIMEOUT: Final = 10.0
#: A create's ``input`` larger than this (JSON bytes) is not copied into the registry.
_MAX_STORED_INPUT: Final = 64 * 1024
#: Reserved by the API or by this poller: ``create`` sets them itself.
_RESERVED: Final = frozenset({"model", "input", "background", "store", "stream"})


# ------------------------------------------------------------------------------------ messages


@attrs.frozen
class _Failed:
    error: Exception


@attrs.frozen
class _Create:
    body: Mapping[str, Any]
    owner: str | None


@attrs.frozen
class _Poll:
    response_id: str


@attrs.frozen
class _Cancel:
    response_id: str


@attrs.frozen
class _Get:
    response_id: str


@attrs.frozen
class _Active:
    pass


@attrs.frozen
class _Track:
    response_id: str
    owner: str
    model: str
    request: Mapping[str, Any]
    cursor: int | None


@attrs.frozen
class _StreamFinished:
    response_id: str
    status: str
    response: Mapping[str, Any] | None


@attrs.frozen
class _Cursor:
    response_id: str
    cursor: int


@attrs.frozen
class _Observed:
    response_id: str
    status: str
    response: Mapping[str, Any] | None


@attrs.frozen
class _StreamInfo:
    pass


# -------------------------------------------------------------------------------------- helpers


def _check_owner(owner: str | None) -> None:
    if owner is None:
        return
    if not isinstance(owner, str) or not owner or any(c in owner for c in ".*"):
        raise InvalidBackgroundRequest(
            f"owner must be a session id without '.' or '*' (a bus topic segment), got {owner!r}"
        )


def _registry_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The create body as the registry keeps it: a large ``input`` (images as data URLs...) is
    replaced by a note, so that the registry stays small."""
    stored = dict(body)
    if "input" in stored:
        size = len(json.dumps(stored["input"], default=str))
        if size > _MAX_STORED_INPUT:
            stored["input"] = None
            stored["input_omitted_bytes"] = size
    return stored


def _seed(response: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot a resumed stream's events apply to. A GET shows output up to *now*, not up to
    ``starting_after``, so an active response's output is left out rather than doubled; the
    terminal event carries the whole Response."""
    seed = dict(response)
    if seed.get("status") not in TERMINAL_STATUSES:
        seed["output"] = []
    return seed


# ---------------------------------------------------------------------------------- the actor


class BackgroundPoller(Actor):
    """The background-response registry and its supervised pollers (see the module docstring).

    Args:
        client: The shared wire client (its retry policy applies to each poll).
        bus: Where `BackgroundStatus` / `PollingStopped` records and resumed events go.
        section: Intervals, backoff, TTL and the registry path (``":memory:"`` allowed: a private
            database that lives as long as this actor).
        registry_path: Overrides ``section.registry_path``.
        wall_clock: Wall-clock seconds for persisted timestamps and the TTL (``time.time``).
        random: Random numbers in [0, 1) for the backoff jitter.
        poller_intensity / poller_period: The pollers' supervisor gives up (and takes this actor
            down) after more than ``poller_intensity`` poller restarts in ``poller_period`` s.
        cursor_flush: Seconds durable-stream cursors (``note_cursor``) are batched before being
            written.

    ``init`` raises the store's errors (``CorruptStore``, ``UnsupportedSchema``, ``StoreError``,
    ``OSError``) when the registry cannot be opened: the start fails, nothing else runs.
    """

    mailbox_size = 4096

    def __init__(
        self,
        *,
        client: OpenAIClient,
        bus: EventBus[Any],
        section: BackgroundSection,
        registry_path: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        poller_intensity: int = 10,
        poller_period: float = 60.0,
        cursor_flush: float = 0.25,
    ) -> None:
        self._client = client
        self._bus = bus
        self._section = section
        self._path = registry_path if registry_path is not None else section.registry_path
        self._wall_clock = wall_clock
        self._random = random
        self._intensity = poller_intensity
        self._period = poller_period
        self._cursor_flush = cursor_flush
        self._stack = AsyncExitStack()
        self._shared: Shared | None = None
        self._adopt: list[str] = []
        self._pollers: DynamicSupervisorRef | None = None
        self._ready = trio.Event()
        self._stopping = False
        self._cursors: dict[str, int] = {}
        self._cursors_dirty = trio.Event()

    # -- lifecycle -----------------------------------------------------------------------------

    async def init(self) -> None:
        try:
            store = await self._stack.enter_async_context(RegistryStore.open(self._path))
            adopted = await store.active()
            for record in adopted:
                if record.mode != "poll":  # its stream died with the previous daemon
                    await store.update(record.response_id, mode="poll")
        except BaseException:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._stack.aclose()
            raise
        self._shared = Shared(
            client=self._client,
            bus=self._bus,
            store=store,
            section=self._section,
            wall_clock=self._wall_clock,
            random=self._random,
        )
        self._adopt = [record.response_id for record in adopted]
        if adopted:
            log.info("background.adopting", count=len(adopted), path=self._path)
        self.spawn(self._supervise)
        self.spawn(self._cleanup_loop)
        self.spawn(self._flush_loop)

    async def terminate(self, reason: ExitReason) -> None:
        self._stopping = True
        if self._pollers is not None and self._pollers.alive:
            with trio.move_on_after(_CLOSE_TIMEOUT):
                await self._pollers.stop(timeout=None)
        try:
            await self._flush_cursors()
        except StoreError as exc:
            log.warning("background.cursor_flush_failed", error=str(exc))
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self._stack.aclose()

    @property
    def shared(self) -> Shared:
        assert self._shared is not None, "used before init"
        return self._shared

    async def _supervise(self) -> None:
        """Run the pollers' supervisor; adopt the registry's active responses; crash if the
        supervisor gives up. Closes the registry on the way out (also after a kill)."""
        try:
            async with trio.open_nursery() as nursery:
                pollers = DynamicSupervisor(
                    self._new_poller,
                    restart=Restart.TRANSIENT,
                    shutdown=1.0,
                    intensity=self._intensity,
                    period=self._period,
                )
                ref = await start_actor(nursery, pollers)
                assert isinstance(ref, DynamicSupervisorRef)
                self._pollers = ref
                for response_id in self._adopt:
                    await self._start_poller(response_id, 0.0)
                self._adopt = []
                self._ready.set()
                reason = await ref.wait()
                if not self._stopping:
                    raise RuntimeError(f"the background pollers' supervisor exited: {reason}")
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._stack.aclose()

    def _new_poller(self, response_id: str, first_delay: float) -> ResponsePoller:
        return ResponsePoller(self.shared, response_id, first_delay)

    async def _start_poller(self, response_id: str, first_delay: float) -> None:
        if self.shared.polling(response_id):
            self.shared.pollers[response_id].wake()
            return
        assert self._pollers is not None
        await self._pollers.start_child(response_id, first_delay)

    async def _ensure_polled(self, record: TrackedResponse | None, first_delay: float) -> None:
        if record is not None and not record.is_terminal and record.mode == "poll":
            await self._ready.wait()
            await self._start_poller(record.response_id, first_delay)

    def _wake(self, response_id: str) -> None:
        poller = self.shared.pollers.get(response_id)
        if poller is not None and poller.ref.alive:
            poller.wake()

    async def _cleanup_loop(self) -> None:
        """Remove terminal entries older than ``terminal_ttl``, now and every cleanup_interval."""
        section = self._section
        while True:
            try:
                removed = await self.shared.store.purge_terminal(
                    section.terminal_ttl, now=self._wall_clock()
                )
            except StoreError as exc:
                log.warning("background.cleanup_failed", error=str(exc))
            else:
                if removed:
                    log.info("background.cleaned", count=len(removed))
            await trio.sleep(section.cleanup_interval)

    async def _flush_loop(self) -> None:
        while True:
            await self._cursors_dirty.wait()
            await trio.sleep(self._cursor_flush)
            try:
                await self._flush_cursors()
            except StoreError as exc:
                log.warning("background.cursor_flush_failed", error=str(exc))

    async def _flush_cursors(self, only: str | None = None) -> None:
        if only is not None:
            pending = {only: self._cursors.pop(only)} if only in self._cursors else {}
        else:
            pending, self._cursors = self._cursors, {}
            self._cursors_dirty = trio.Event()
        for response_id, cursor in pending.items():
            with contextlib.suppress(KeyError):  # UnknownResponse: no longer tracked
                await self.shared.store.record_cursor(response_id, cursor, at=self._wall_clock())

    # -- messages ------------------------------------------------------------------------------

    def _answer(self, caller: Caller, work: Callable[[], Awaitable[object]]) -> Any:
        """Run ``work`` in a linked task and reply with its result (or its caller error)."""

        async def run() -> None:
            try:
                value = await work()
            except _CALLER_ERRORS as exc:
                caller.reply(_Failed(exc))
            else:
                caller.reply(value)

        self.spawn(run)
        return NoReply

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, _Create):
            return self._answer(caller, lambda: self._create(request.body, request.owner))
        if isinstance(request, _Poll):
            return self._answer(caller, lambda: self._poll(request.response_id))
        if isinstance(request, _Cancel):
            return self._answer(caller, lambda: self._cancel(request.response_id))
        try:
            if isinstance(request, _Get):
                return await self.shared.store.get(request.response_id)
            if isinstance(request, _Active):
                return await self.shared.store.active()
            if isinstance(request, _Track):
                return await self._track(request)
            if isinstance(request, _StreamFinished):
                return await self._stream_finished(request)
            if isinstance(request, _StreamInfo):
                return (self._client, self._bus)
        except _CALLER_ERRORS as exc:
            return _Failed(exc)
        return await super().handle_call(request, caller)

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, _Cursor):
            previous = self._cursors.get(message.response_id, -1)
            self._cursors[message.response_id] = max(previous, message.cursor)
            self._cursors_dirty.set()
        elif isinstance(message, _Observed):
            try:
                await observe(self.shared, message.response_id, message.response, message.status)
            except StoreError as exc:
                log.warning("background.observe_failed", error=str(exc))
            if message.status in TERMINAL_STATUSES:
                self._wake(message.response_id)
        else:
            await super().handle_cast(message)

    # -- the operations ------------------------------------------------------------------------

    async def _create(self, body: Mapping[str, Any], owner: str | None) -> TrackedResponse:
        shared = self.shared
        try:
            response = await shared.client.create_response(body)
        except OutcomeUnknownError as exc:
            log.exception(
                "background.create_outcome_unknown",
                model=body.get("model"),
                owner=owner,
                request_id=exc.request_id,
                hint="the response may exist server-side; it is not tracked",
            )
            raise
        response_id = response.get("id")
        if not isinstance(response_id, str) or not response_id:
            raise InvalidBackgroundRequest(f"the server's answer has no response id: {response!r}")
        status = response.get("status")
        if status not in RESPONSE_STATUSES:
            status = "queued"
        at = self._wall_clock()
        terminal = status in TERMINAL_STATUSES
        try:
            record = await shared.store.add(
                TrackedResponse(
                    response_id=response_id,
                    status=status,
                    model=str(body["model"]),
                    created_at=at,
                    owner=owner,
                    mode="poll",
                    terminal_at=at if terminal else None,
                    request=_registry_request(body),
                )
            )
        except StoreError as exc:
            log.exception("background.not_registered", response_id=response_id)
            raise NotRegistered(response_id, response) from exc
        publish(shared.bus, BackgroundStatus(response_id, status, None, response, at, owner))
        log.info("background.created", response_id=response_id, status=status, owner=owner)
        await self._ensure_polled(record, poll_delay(None, self._section))
        return record

    async def _poll(self, response_id: str) -> dict[str, Any]:
        shared = self.shared
        try:
            polled = await shared.client.retrieve_response(response_id)
        except NotFoundError as err:
            await mark_gone(shared, response_id, err)
            raise ResponseGone(response_id, str(err)) from err
        if await shared.store.find(response_id) is not None:
            await shared.store.record_poll(response_id, at=self._wall_clock())
            record = await observe(shared, response_id, polled.response, polled.status or "")
            await self._ensure_polled(record, poll_delay(polled.poll_after, self._section))
        return polled.response

    async def _cancel(self, response_id: str) -> dict[str, Any]:
        shared = self.shared
        try:
            response = await shared.client.cancel_response(response_id)
        except NotFoundError as err:
            await mark_gone(shared, response_id, err)
            raise ResponseGone(response_id, str(err)) from err
        except CancelRejected as err:
            if err.status is None:  # not a background response: nothing to cancel
                raise
            # It finished before the cancel got there: report how it finished.
            log.info("background.cancel_raced", response_id=response_id, status=err.status)
            return await self._poll(response_id)
        await observe(shared, response_id, response, str(response.get("status", "")))
        self._wake(response_id)
        return response

    async def _track(self, request: _Track) -> TrackedResponse:
        shared = self.shared
        at = self._wall_clock()
        try:
            record = await shared.store.add(
                TrackedResponse(
                    response_id=request.response_id,
                    status="queued",
                    model=request.model,
                    created_at=at,
                    owner=request.owner,
                    mode="stream",
                    cursor=request.cursor,
                    request=_registry_request(request.request),
                )
            )
        except DuplicateResponse:  # the session's worker restarted and tracks it again
            record = await shared.store.get(request.response_id)
            if not record.is_terminal:
                record = await shared.store.update(
                    request.response_id, owner=request.owner, mode="stream"
                )
            if request.cursor is not None:
                record = await shared.store.record_cursor(request.response_id, request.cursor)
            return record
        note = BackgroundStatus(request.response_id, "queued", None, None, at, request.owner)
        publish(shared.bus, note)
        return record

    async def _stream_finished(self, request: _StreamFinished) -> TrackedResponse | None:
        shared = self.shared
        await self._flush_cursors(request.response_id)
        record = await shared.store.find(request.response_id)
        if record is None:
            log.warning("background.untracked_stream", response_id=request.response_id)
            return None
        if request.status in RESPONSE_STATUSES:
            record = await observe(shared, request.response_id, request.response, request.status)
        if record is not None and not record.is_terminal:
            # The stream ended without a terminal event: polling takes over from here.
            record = await shared.store.update(request.response_id, mode="poll")
            await self._ensure_polled(record, 0.0)
        return record


# --------------------------------------------------------------------------------- the handle


@runtime_checkable
class DurableTracker(Protocol):
    """How a durable session stream tells the registry about its response (contracts §4.1)."""

    async def track_stream(
        self,
        *,
        response_id: str,
        owner: str,
        model: str,
        request: Mapping[str, Any],
        cursor: int | None,
    ) -> None: ...

    def note_cursor(self, response_id: str, cursor: int) -> None: ...

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None: ...


class BackgroundStream:
    """The events of a resumed background response (from `BackgroundHandle.stream`).

    Iterating yields `StreamEvent`s exactly as the underlying `EventStream` does (and raises as it
    does: ``StreamInterrupted`` with ``.cursor`` on a drop, ``StreamError``...), publishing each on
    ``background.<id>``; a terminal event also updates the registry.
    """

    def __init__(self, events: _EventStream, bus: EventBus[Any], ref: ActorRef, rid: str) -> None:
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
    def events(self) -> _EventStream:
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
                self._ref.cast(_Observed(self.response_id, response["status"], response))
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
        if isinstance(result, _Failed):
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
        _check_owner(owner)
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
        result: TrackedResponse = await self._call(_Create(body, owner), timeout)
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
        result: dict[str, Any] = await self._call(_Poll(response_id), timeout)
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
        result: dict[str, Any] = await self._call(_Cancel(response_id), timeout)
        return result

    async def get(
        self,
        response_id: str,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> TrackedResponse:
        """The registry's record of ``response_id``. Raises ``UnknownResponse`` (a KeyError)."""
        result: TrackedResponse = await self._call(_Get(response_id), timeout)
        return result

    async def active(
        self,
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> list[TrackedResponse]:
        """Every tracked response that is not terminal, oldest first."""
        result: list[TrackedResponse] = await self._call(_Active(), timeout)
        return result

    @asynccontextmanager
    async def stream(
        self, response_id: str, starting_after: int | None = None
    ) -> AsyncIterator[BackgroundStream]:
        """Resume a background response's event stream (a real resume: the server sends only the
        events after ``starting_after``; None replays from ``response.created``).

        With ``starting_after`` the stream has no ``response.created``, so the accumulator is
        seeded from a GET (see `_seed`). Each event is also published on ``background.<id>``.

        Raises on entry:
            ResponseGone: 404.
            BadRequestError: the response was not created with ``background: true``.
            APIStatusError / APIConnectionError: the GET failed.
        While iterating: as ``EventStream`` (``StreamInterrupted`` with ``.cursor``, ...).
        """
        ref = self.ref
        client, bus = await self._call(_StreamInfo(), 5.0)
        async with AsyncExitStack() as stack:
            try:
                snapshot = None
                if starting_after is not None:
                    snapshot = _seed((await client.retrieve_response(response_id)).response)
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
        session streams it). Tracking it again (a restarted session worker) updates the owner
        and moves the cursor forward. Raises ``InvalidBackgroundRequest`` for a bad owner."""
        _check_owner(owner)
        await self._call(_Track(response_id, owner, model, request, cursor), 5.0)

    def note_cursor(self, response_id: str, cursor: int) -> None:
        """Record the last published sequence number (a cast: never blocks, never raises;
        written in batches)."""
        try:
            self.ref.cast(_Cursor(response_id, cursor))
        except NoSuchActor:
            log.warning("background.cursor_dropped", response_id=response_id, cursor=cursor)

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None:
        """The durable stream ended. A terminal ``status`` is recorded (and notified); any other
        (the stream broke and the session gave up) hands the response over to polling."""
        await self._call(_StreamFinished(response_id, status, response), 10.0)


# ---------------------------------------------------------------------------------- embedding


@asynccontextmanager
async def open_background_poller(
    *,
    client: OpenAIClient,
    bus: EventBus[Any],
    section: BackgroundSection,
    **options: Any,
) -> AsyncIterator[BackgroundHandle]:
    """Run a `BackgroundPoller` for the block (outside a supervision tree: tests, scripts).

    ``options`` are `BackgroundPoller`'s keyword arguments. On exit the poller is stopped
    gracefully (pollers stopped, cursors flushed, registry closed). Raises what ``init`` raises.
    """
    async with trio.open_nursery() as nursery:
        ref = await start_actor(
            nursery, BackgroundPoller(client=client, bus=bus, section=section, **options)
        )
        try:
            yield BackgroundHandle(ref)
        finally:
            if ref.alive:
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await ref.stop(timeout=math.inf)
