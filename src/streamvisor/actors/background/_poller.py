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
Registry calls (track, stream finished, get) wait for their group commit in linked tasks too: the
mailbox never waits for the disk, and ``active`` (what ``status()`` asks) is answered from the
store's memory. The registry is opened in the namespace of the client's base URL.
"""

from __future__ import annotations

import contextlib
import math
import random as _random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final

import structlog
import trio

from streamvisor.config import BackgroundSection
from streamvisor.openai import (
    CancelRejected,
    NotFoundError,
    OpenAIClient,
    OpenAIError,
    OutcomeUnknownError,
)
from streamvisor.supervisor import (
    Actor,
    ActorExited,
    ActorRef,
    Caller,
    DynamicSupervisor,
    DynamicSupervisorRef,
    ExitReason,
    GivenUp,
    NoReply,
    Restart,
    RestartBudget,
    start_actor,
)
from streamvisor.supervisor._bus import EventBus

from .._errors import ActorsLayerError
from .._given_up import GIVEN_UP_CODE, given_up_message
from ._errors import BackgroundError, DuplicateResponse, NotRegistered, ResponseGone, StoreError
from ._handle import BackgroundHandle, BackgroundStream, DurableTracker
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
    registry_request,
)
from ._pollers import ResponsePoller, Shared, mark_gone, observe, publish
from ._records import RESPONSE_STATUSES, TERMINAL_STATUSES, TrackedResponse
from ._status import BackgroundStatus, PollingStopped, poll_delay
from ._store import RegistryStore, RegistryView, ResponseStore, registry_namespace

__all__ = [
    "BackgroundHandle",
    "BackgroundPoller",
    "BackgroundStatus",
    "BackgroundStream",
    "DurableTracker",
    "PollingStopped",
    "open_background_poller",
]

log = structlog.get_logger("streamvisor.background")

#: Errors a call reports to its caller; anything else is a bug and crashes the actor.
_CALLER_ERRORS: Final = (OpenAIError, ActorsLayerError, StoreError, ValueError)
#: Bound on closing the registry and stopping the pollers.
_CLOSE_TIMEOUT: Final = 10.0


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
        poller_budget: Each poller's own restart budget: a poller restarting more often is
            given up alone, and a `PollingStopped` (code ``restart_budget_exhausted``) is
            published for its response, which stays active in the registry (``poll()`` resumes
            it). None: only ``poller_intensity`` applies.
        cursor_flush: Seconds durable-stream cursors (``note_cursor``) are batched before being
            written.
        view: Where this poller's open store is shown to readers that must not wait for it
            (`RegistryView`, ``Daemon.status()``).
        namespace: Whose records this poller sees in the registry (default: the client's base
            URL, `registry_namespace`; the daemon passes `EMBEDDED_NAMESPACE` for its embedded
            server).
        open_store: Opens the registry for a namespace instead of the SQLite file (a cluster
            node's PostgreSQL store); None: ``RegistryStore.open(registry_path)``.

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
        poller_budget: RestartBudget | None = None,
        cursor_flush: float = 0.25,
        view: RegistryView | None = None,
        namespace: str | None = None,
        open_store: Callable[[str], AbstractAsyncContextManager[ResponseStore]] | None = None,
    ) -> None:
        self._client = client
        self._open_store = open_store
        self._bus = bus
        self._section = section
        self._path = registry_path if registry_path is not None else section.registry_path
        self._wall_clock = wall_clock
        self._random = random
        self._intensity = poller_intensity
        self._period = poller_period
        self._poller_budget = poller_budget
        self._cursor_flush = cursor_flush
        self._stack = AsyncExitStack()
        self._shared: Shared | None = None
        self._adopt: list[str] = []
        self._pollers: DynamicSupervisorRef | None = None
        self._ready = trio.Event()
        self._stopping = False
        self._cursors: dict[str, int] = {}
        self._cursors_dirty = trio.Event()
        self._view = view
        self._namespace = (
            namespace if namespace is not None else registry_namespace(client.settings.base_url)
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def init(self) -> None:
        try:
            opener: AbstractAsyncContextManager[ResponseStore]
            if self._open_store is None:
                opener = RegistryStore.open(self._path, namespace=self._namespace)
            else:
                opener = self._open_store(self._namespace)
            store = await self._stack.enter_async_context(opener)
            if self._view is not None:
                store.count_into(self._view.counters)
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
        if self._view is not None:
            self._view.attach(store)
        self._adopt = [record.response_id for record in adopted]
        if adopted:
            log.info("background.adopting", count=len(adopted), path=self._path)
        self.spawn(self._supervise)
        self.spawn(self._cleanup_loop)
        self.spawn(self._flush_loop)

    async def terminate(self, reason: ExitReason) -> None:
        self._stopping = True
        if self._pollers is not None and self._pollers.alive:
            with trio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(ActorExited):
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

    def observed_children(self) -> Mapping[str, ActorRef]:
        """The pollers' supervisor, for `observe_tree` (its restarts, each poller)."""
        pollers = self._pollers
        return {"pollers": pollers} if pollers is not None and pollers.alive else {}

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
                    restart_budget=self._poller_budget,
                    on_give_up=self._poller_given_up,
                )
                ref = await start_actor(nursery, pollers, label="background.pollers")
                assert isinstance(ref, DynamicSupervisorRef)
                self._pollers = ref
                for response_id in self._adopt:
                    await self._start_poller(response_id, 0.0)
                self._adopt = []
                self._ready.set()
                reason = await ref.wait()
                if not self._stopping:
                    raise RuntimeError(f"the background pollers' supervisor exited: {reason}")
                # A graceful stop: ``terminate`` still flushes cursors into the registry; the
                # actor's nursery cancels this task once it is done.
                await trio.sleep_forever()
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._stack.aclose()

    def _new_poller(self, response_id: str, first_delay: float) -> ResponsePoller:
        return ResponsePoller(self.shared, response_id, first_delay)

    def _poller_given_up(self, given: GivenUp) -> None:
        """The pollers' supervisor gave up on one poller (over ``poller_budget``)."""
        response_id = given.args[0] if given.args else None
        if not isinstance(response_id, str) or not self.ref.alive:
            log.warning("background.given_up_unknown_poller", args=repr(given.args))
            return
        self.spawn(self._report_given_up, response_id, given)

    async def _report_given_up(self, response_id: str, given: GivenUp) -> None:
        """Tell ``background.<id>`` (and the owner's session) that polling stopped, and why."""
        try:
            record = await self.shared.store.find(response_id)
        except StoreError as exc:
            log.warning("background.lookup_failed", response_id=response_id, error=str(exc))
            return
        if record is None or record.is_terminal:
            return
        text = given_up_message(given)
        at = self._wall_clock()
        note = PollingStopped(response_id, record.status, text, GIVEN_UP_CODE, at, record.owner)
        publish(self.shared.bus, note)
        log.error("background.poller_given_up", response_id=response_id, error=text)

    async def _start_poller(self, response_id: str, first_delay: float) -> None:
        if self.shared.polling(response_id):
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
        if pending:  # one operation for them all; an id no longer tracked is skipped
            await self.shared.store.record_cursors(pending, at=self._wall_clock())

    # -- messages ------------------------------------------------------------------------------

    def _answer(self, caller: Caller, work: Callable[[], Awaitable[object]]) -> Any:
        """Run ``work`` in a linked task and reply with its result; a caller error fails the
        call (``caller.fail``), anything else crashes the actor (a bug)."""

        async def run() -> None:
            try:
                value = await work()
            except _CALLER_ERRORS as exc:
                caller.fail(exc)
            else:
                caller.reply(value)

        self.spawn(run)
        return NoReply

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, Create):
            return self._answer(caller, lambda: self._create(request))
        if isinstance(request, Poll):
            return self._answer(caller, lambda: self._poll(request.response_id))
        if isinstance(request, Cancel):
            return self._answer(caller, lambda: self._cancel(request.response_id))
        # Registry writes and reads wait for their group commit in linked tasks: the mailbox
        # never waits for the store (``active`` is served from the store's memory).
        if isinstance(request, Track):
            return self._track_nowait(request, caller)
        if isinstance(request, StreamFinished):
            return self._answer(caller, lambda: self._stream_finished(request))
        if isinstance(request, Get):
            return self._answer(caller, lambda: self.shared.store.get(request.response_id))
        if isinstance(request, Recent):
            return self._answer(caller, lambda: self._recent(request.limit))
        if isinstance(request, Adopt):
            return self._answer(caller, lambda: self._adopt_records(request.response_ids))
        try:
            if isinstance(request, Active):  # loaded by init: no checkpoint, no disk
                return self.shared.store.active_nowait()
            if isinstance(request, StreamInfo):
                return (self._client, self._bus)
        except _CALLER_ERRORS as exc:
            return caller.fail(exc)
        return await super().handle_call(request, caller)

    async def _recent(self, limit: int) -> list[TrackedResponse]:
        # Oldest first from either store (terminal rows are bounded by `terminal_ttl`).
        records = await self.shared.store.all()
        return records[::-1][:limit]

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, Cursor):
            previous = self._cursors.get(message.response_id, -1)
            self._cursors[message.response_id] = max(previous, message.cursor)
            self._cursors_dirty.set()
        elif isinstance(message, Observed):
            self.spawn(self._observed, message)
        elif isinstance(message, StreamFinished):  # DurableTracker.stream_abandoned
            self.spawn(self._abandoned, message)
        else:
            await super().handle_cast(message)

    async def _abandoned(self, message: StreamFinished) -> None:
        try:
            await self._stream_finished(message)
        except _CALLER_ERRORS as exc:
            log.warning("background.hand_over_failed", error=str(exc))

    async def _observed(self, message: Observed) -> None:
        try:
            await observe(self.shared, message.response_id, message.response, message.status)
        except StoreError as exc:
            log.warning("background.observe_failed", error=str(exc))
        if message.status in TERMINAL_STATUSES:
            self._wake(message.response_id)

    # -- the operations ------------------------------------------------------------------------

    async def _create(self, request: Create) -> Any:
        """Create, register and follow; the record (or ``(record, Response)``, as asked)."""
        body, owner = request.body, request.owner
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
            raise BackgroundError(f"the server's create answer has no response id: {response!r}")
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
                    request=registry_request(body),
                )
            )
        except StoreError as exc:
            log.exception("background.not_registered", response_id=response_id)
            raise NotRegistered(response_id, response) from exc
        publish(shared.bus, BackgroundStatus(response_id, status, None, response, at, owner))
        log.info("background.created", response_id=response_id, status=status, owner=owner)
        await self._ensure_polled(record, poll_delay(None, self._section))
        return (record, response) if request.with_response else record

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

    def _track_nowait(self, request: Track, caller: Caller) -> Any:
        """The common case of a track, on the hot path of every durable stream's ticket: the
        record is added and the caller answered straight from the commit (`add_nowait`), with
        no task in between. A duplicate (a restarted session worker tracks again) updates the
        record it finds (`_track_again`)."""
        shared = self.shared
        try:

            def committed(added: TrackedResponse | None, error: BaseException | None) -> None:
                if added is not None:
                    publish(shared.bus, _queued(added))
                    caller.reply(added)
                elif isinstance(error, _CALLER_ERRORS) and not isinstance(error, DuplicateResponse):
                    caller.fail(error)
                elif not self.ref.alive:
                    pass  # the poller exited since: its death already failed the call
                elif isinstance(error, DuplicateResponse):
                    self._answer(caller, lambda: self._track_again(request))
                else:  # a bug: crash the actor with it, as a linked task would
                    self.spawn(_reraise, error)

            shared.store.add_nowait(self._stream_record(request), committed)
        except _CALLER_ERRORS as exc:
            return caller.fail(exc)
        return NoReply

    def _stream_record(self, request: Track) -> TrackedResponse:
        return TrackedResponse(
            response_id=request.response_id,
            status="queued",
            model=request.model,
            created_at=self._wall_clock(),
            owner=request.owner,
            mode="stream",
            cursor=request.cursor,
            request=registry_request(request.request),
        )

    async def _track_again(self, request: Track) -> TrackedResponse:
        """A track of a response already in the registry: the session's worker restarted and
        tracks it again. It takes over (owner, mode) and the cursor moves forward."""
        store = self.shared.store
        record = await store.get(request.response_id)
        if not record.is_terminal:
            record = await store.update(request.response_id, owner=request.owner, mode="stream")
        if request.cursor is not None:
            record = await store.record_cursor(request.response_id, request.cursor)
        return record

    async def _adopt_records(self, response_ids: tuple[str, ...]) -> list[str]:
        """Poll every active record of ``response_ids`` (a stream's record too: no stream of
        this node follows it), as ``init`` adopts a restarted daemon's."""
        polled: list[str] = []
        store = self.shared.store
        for response_id in response_ids:
            record = await store.find(response_id)
            if record is None or record.is_terminal:
                continue
            if record.mode != "poll":
                record = await store.update(response_id, mode="poll")
            await self._ensure_polled(record, 0.0)
            polled.append(response_id)
        if polled:
            log.info("background.adopted", count=len(polled))
        return polled

    async def _stream_finished(self, request: StreamFinished) -> TrackedResponse | None:
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


def _queued(record: TrackedResponse) -> BackgroundStatus:
    """The ``queued`` notice of a newly tracked response."""
    return BackgroundStatus(
        record.response_id, "queued", None, None, record.created_at, record.owner
    )


async def _reraise(error: BaseException | None) -> None:
    assert error is not None
    raise error


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
    gracefully (pollers stopped, cursors flushed, registry closed). Raises what ``init`` raises
    (e.g. ``CorruptStore``) as is; an error in the block propagates wrapped by the nursery that
    runs the poller, as trio does.
    """
    failed: Exception | None = None
    async with trio.open_nursery() as nursery:
        poller = BackgroundPoller(client=client, bus=bus, section=section, **options)
        try:
            ref = await start_actor(nursery, poller)
        except Exception as exc:
            failed = exc
        else:
            try:
                yield BackgroundHandle(ref)
            finally:
                if ref.alive:
                    with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                        await ref.stop(timeout=math.inf)
    if failed is not None:
        raise failed
