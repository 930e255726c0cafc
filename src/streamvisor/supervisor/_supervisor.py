"""OTP supervisors: strategies, restart types, intensity with escalation, ordered shutdown."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

import attrs
import structlog
import trio

from ._actor import Actor, _prepare, _start_prepared
from ._errors import (
    ActorError,
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    InvalidChildSpec,
    StartChildError,
)
from ._reason import KILLED, SHUTDOWN, ExitReason, GivenUp
from ._ref import _EXIT, ActorRef, Caller, NoReply, StopActor, _Item
from ._registry import Registry
from ._spec import (
    AutoShutdown,
    ChildSpec,
    ChildType,
    Restart,
    RestartBudget,
    Shutdown,
    Strategy,
    check_childspecs,
    check_flags,
    check_observer,
    check_significance,
)

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "Supervisor",
    "SupervisorRef",
    "open_supervisor",
    "start_supervisor",
]

log = structlog.get_logger("streamvisor.supervisor")


@attrs.frozen(slots=True)
class ChildInfo:
    """One row of ``which_children`` (DYN-05)."""

    id: str | None
    #: The running child, or None when stopped or between restart attempts.
    ref: ActorRef | None
    #: True between failed restart attempts (OTP ``restarting``).
    restarting: bool
    type: ChildType


@attrs.frozen(slots=True)
class ChildCounts:
    """``count_children`` (DYN-06): all specs, running children, specs per type."""

    specs: int
    active: int
    supervisors: int
    workers: int


class ExitLog:
    """What a supervisor saw of one child's exits, for observers (`observe_tree`): its restarts
    by reason and its last exit. Made at the child's first exit, so a child that never exits
    costs nothing."""

    __slots__ = ("last", "last_at", "reasons", "restarts")

    def __init__(self) -> None:
        self.restarts = 0
        #: Restarts by reason key (`reason_key`).
        self.reasons: dict[str, int] = {}
        self.last: ExitReason | None = None
        #: Wall-clock time (``time.time()``) of the last exit.
        self.last_at: float | None = None


def reason_key(reason: ExitReason) -> str:
    """A short, bounded label for an exit reason: its kind, and for a crash the exception's
    class (``"crashed:RuntimeError"``) -- never the exception's message."""
    if reason.kind == "crashed" and reason.exception is not None:
        return f"crashed:{type(reason.exception).__name__}"
    return reason.kind


@attrs.frozen(slots=True)
class ObservedChild:
    """One child as `observe_tree` reads it from its supervisor's table."""

    id: str | None
    name: str | None
    type: ChildType
    ref: ActorRef | None
    restarting: bool
    exits: ExitLog | None


class _Child:
    __slots__ = ("exits", "last_reason", "ref", "restarting", "restarts", "spec")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.ref: ActorRef | None = None
        self.restarting = False
        #: This child's own restart timestamps (for its `RestartBudget`), made at its first
        #: restart.
        self.restarts: deque[float] | None = None
        self.last_reason: ExitReason | None = None
        self.exits: ExitLog | None = None


@attrs.frozen(slots=True)
class _ChildExit:
    ref: ActorRef
    reason: ExitReason


class _ChildWatch:
    """The supervisor's monitor on one child (SD-05): turns its exit into a mailbox notice."""

    __slots__ = ("sup",)

    def __init__(self, sup: ActorRef) -> None:
        self.sup = sup

    def _on_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        self.sup._deliver_system((_EXIT, _ChildExit(ref, reason), None))


@attrs.frozen(slots=True)
class _TryAgain:
    """A restart that failed is tried again (INT-04), between other requests."""

    child: object


# Requests (handle_call payloads).
@attrs.frozen(slots=True)
class _StartChild:
    spec: ChildSpec


@attrs.frozen(slots=True)
class _ById:
    op: str
    id: str


_WHICH = "which_children"
_COUNT = "count_children"


def _expected_shutdown(spec: ChildSpec, reason: ExitReason, killed_after_timeout: bool) -> bool:
    """SD-05: exit reasons that do not deserve a ``shutdown_error`` report."""
    if killed_after_timeout:
        return False
    if spec.shutdown == "brutal_kill" and reason.kind == "killed":
        return True
    if reason == SHUTDOWN:
        return True
    return spec.restart is not Restart.PERMANENT and reason.is_normal


def _restart_due(restart: Restart, reason: ExitReason) -> bool:
    """Whether a child of this restart type is restarted after exiting with ``reason``."""
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and not reason.is_normal)


def _exit_reported(restart: Restart, reason: ExitReason) -> bool:
    """Whether a child's exit deserves a ``child_terminated`` report (CH-05)."""
    return restart is Restart.PERMANENT or not reason.is_normal


def _exceeds_intensity(restarts: deque[float], intensity: int, period: float) -> bool:
    """Record a restart now in ``restarts``; True when more than ``intensity`` of them fall
    within the last ``period`` seconds (INT-01)."""
    now = trio.current_time()
    while restarts and restarts[0] < now - period:
        restarts.popleft()
    restarts.append(now)
    return len(restarts) > intensity


async def _stop_refs(
    refs: Sequence[ActorRef],
    shutdown: Shutdown,
    on_timeout: Callable[[ActorRef, float], None],
) -> list[ExitReason]:
    """Stop ``refs`` per ``shutdown``, all at once: kill them (``brutal_kill``), or ask them to
    stop and give them one shared timer, then kill whoever is still running (``on_timeout(ref,
    timeout)`` is called first). Returns their exit reasons, after every one has exited."""
    if shutdown == "brutal_kill":
        for ref in refs:
            ref._exit_signal(KILLED)
    else:
        for ref in refs:
            ref._request_stop(SHUTDOWN)
        timeout = math.inf if shutdown == "infinity" else float(shutdown)
        with trio.move_on_after(timeout):
            for ref in refs:
                await ref.wait()
        for ref in refs:
            if ref.alive:
                on_timeout(ref, timeout)
                ref._exit_signal(KILLED)
    return [await ref.wait() for ref in refs]


async def _shutdown_child(sup_label: str, child: _Child) -> None:
    """Stop one child per its spec: graceful request → bounded wait → kill → wait (SD-02..04)."""
    ref = child.ref
    child.ref = None
    if ref is None or not ref.alive:
        return
    spec = child.spec
    killed_after_timeout = False

    def timed_out(ref: ActorRef, timeout: float) -> None:
        nonlocal killed_after_timeout
        killed_after_timeout = True
        log.warning("shutdown_timeout", supervisor=sup_label, child=spec.id, timeout=timeout)

    [reason] = await _stop_refs([ref], spec.shutdown, timed_out)
    if _expected_shutdown(spec, reason, killed_after_timeout):
        log.debug("child_shutdown", supervisor=sup_label, child=spec.id, reason=reason)
    else:
        log.error("shutdown_error", supervisor=sup_label, child=spec.id, reason=reason)


class SupervisorRef(ActorRef):
    """A running ``Supervisor``: an ``ActorRef`` plus OTP's dynamic-children API.

    Every request is a call to the supervisor with ``timeout=None`` by default (OTP
    ``infinity``); besides the errors listed, each may raise ``ActorExited`` if the supervisor
    is gone and ``CallTimeout`` if a ``timeout`` is given and expires.
    """

    __slots__ = ()

    async def start_child(self, spec: ChildSpec, *, timeout: float | None = None) -> ActorRef:  # noqa: ASYNC109  # DYN-01
        """Add ``spec`` as the last child and start it; return its ref.

        Raises ``AlreadyStarted`` (id running), ``AlreadyPresent`` (id stopped or restarting),
        ``InvalidChildSpec`` (not a spec, or significant under ``AutoShutdown.NEVER``) and
        ``StartChildError`` (its factory or ``init`` raised; the spec is not kept).
        """
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpec(f"not a ChildSpec: {spec!r}")
        return cast(ActorRef, await self.call(_StartChild(spec), timeout=timeout))

    async def terminate_child(self, id: str, *, timeout: float | None = None) -> None:  # noqa: ASYNC109  # DYN-02
        """Stop the child per its shutdown spec; keep its spec (unless temporary). Not a restart,
        never triggers auto-shutdown. Raises ``ChildNotFound``."""
        await self.call(_ById("terminate", id), timeout=timeout)

    async def restart_child(self, id: str, *, timeout: float | None = None) -> ActorRef:  # noqa: ASYNC109  # DYN-03
        """Start a stopped child again. Raises ``ChildNotFound``, ``ChildRunning``,
        ``ChildRestarting``, ``StartChildError``."""
        return cast(ActorRef, await self.call(_ById("restart", id), timeout=timeout))

    async def delete_child(self, id: str, *, timeout: float | None = None) -> None:  # noqa: ASYNC109  # DYN-04
        """Forget a stopped child's spec. Raises ``ChildNotFound``, ``ChildRunning``,
        ``ChildRestarting``."""
        await self.call(_ById("delete", id), timeout=timeout)

    async def which_children(self, *, timeout: float | None = None) -> list[ChildInfo]:  # noqa: ASYNC109  # DYN-05
        """All children **in start order** (OTP lists newest first; we list oldest first)."""
        return cast("list[ChildInfo]", await self.call(_WHICH, timeout=timeout))

    async def count_children(self, *, timeout: float | None = None) -> ChildCounts:  # noqa: ASYNC109  # DYN-06
        return cast(ChildCounts, await self.call(_COUNT, timeout=timeout))

    def which_children_nowait(self) -> list[ChildInfo]:
        """`which_children` read in the caller's task, without a message: a snapshot of the
        supervisor's table (trio runs one task at a time, so it is never seen half-changed).
        For answers that must not wait for the supervisor's turn (a health check under load).
        Raises ``ActorExited`` if the supervisor has exited."""
        return cast(Supervisor, self._live_actor())._which()

    def count_children_nowait(self) -> ChildCounts:
        """`count_children` without a message, as `which_children_nowait`."""
        return cast(Supervisor, self._live_actor())._count()

    async def get_childspec(self, id: str, *, timeout: float | None = None) -> ChildSpec:  # noqa: ASYNC109  # DYN-07
        """The child's full spec. Raises ``ChildNotFound``."""
        return cast(ChildSpec, await self.call(_ById("get_childspec", id), timeout=timeout))


class _Tracked(Protocol):
    """A supervisor's record of one child: its running ref, whether a restart is pending, its
    own recent restarts and why it last exited (for its `RestartBudget`)."""

    ref: ActorRef | None
    restarting: bool
    restarts: deque[float] | None
    last_reason: ExitReason | None
    exits: ExitLog | None


_C = TypeVar("_C", bound=_Tracked)


class _Supervising(Actor, Generic[_C]):
    """What `Supervisor` and `DynamicSupervisor` share: a child's exit is dispatched to
    ``_child_exited``, a failed restart is retried (`_TryAgain`), restarts are counted against
    intensity/period (and each child's restart budget), and every child is stopped when the
    supervisor ends."""

    __slots__ = ("_children", "_restart_totals", "_restarts", "intensity", "on_give_up", "period")

    _children: list[_C]
    _restarts: deque[float]
    #: Its children's restarts by reason key since it started, children gone included.
    _restart_totals: dict[str, int]
    intensity: int
    period: float
    on_give_up: Callable[[GivenUp], object] | None

    _eager_nursery: ClassVar[bool] = True
    mailbox_size: ClassVar[float] = math.inf
    terminate_timeout: ClassVar[float] = math.inf

    async def terminate(self, reason: ExitReason) -> None:
        await self._stop_all()
        log.info("supervisor_stopped", supervisor=self._ref.label, reason=reason)

    async def _stop_all(self) -> None:
        raise NotImplementedError

    async def _child_exited(self, child: _C, reason: ExitReason) -> None:
        raise NotImplementedError

    async def _restart(self, child: _C) -> None:
        raise NotImplementedError

    def _observed(self) -> list[ObservedChild]:
        """Every child as an observer sees it, in start order (read in the caller's task)."""
        raise NotImplementedError

    def _note_exit(self, child: _C, reason: ExitReason, restarted: bool) -> None:
        """Keep ``child``'s exit for observers: its last exit, and if it is restarted for it,
        its restart counts and this supervisor's totals."""
        exits = child.exits
        if exits is None:
            exits = child.exits = ExitLog()
        exits.last, exits.last_at = reason, time.time()
        if restarted:
            exits.restarts += 1
            key = reason_key(reason)
            exits.reasons[key] = exits.reasons.get(key, 0) + 1
            totals = self._restart_totals
            totals[key] = totals.get(key, 0) + 1

    async def _launch(
        self, child: _C, actor: Actor, name: str | None, label: str | None, type: ChildType
    ) -> ActorRef:
        """Start ``actor`` (registered as ``name``, logged as ``label``) as ``child``'s running
        incarnation, watched by this supervisor. Raises ``InvalidChildSpec`` when the factory
        returned no ``Actor``, or no supervisor for a ``ChildType.SUPERVISOR`` child (its
        shutdown would wait forever on a worker); else what the start raises."""
        if not isinstance(actor, Actor):
            raise InvalidChildSpec(f"child {label!r}: the factory returned {actor!r}, not an Actor")
        if type is ChildType.SUPERVISOR and not isinstance(actor, _Supervising):
            raise InvalidChildSpec(
                f"child {label!r}: a supervisor child's factory returned {actor!r}, "
                "not a Supervisor or DynamicSupervisor"
            )
        ref, receive = _prepare(actor, name, self._ref._registry, label)
        ref._add_watcher(_ChildWatch(self._ref))
        nursery = self._ref._nursery
        assert nursery is not None
        await _start_prepared(nursery, actor, ref, receive)
        child.ref = ref
        child.restarting = False
        log.debug("child_started", supervisor=self._ref.label, child=ref.label)
        return ref

    def _add_restart(self) -> bool:
        """Record a restart; True when the intensity is exceeded (INT-01)."""
        return _exceeds_intensity(self._restarts, self.intensity, self.period)

    def _budget_of(self, child: _C) -> RestartBudget | None:
        raise NotImplementedError

    def _over_budget(self, child: _C) -> bool:
        """Record a restart of ``child``; True when it exceeds its own budget (BUD-01). Called
        before `_add_restart`, so the attempt that exceeds a budget is not counted (BUD-03)."""
        budget = self._budget_of(child)
        if budget is None:
            return False
        if child.restarts is None:
            child.restarts = deque()
        return _exceeds_intensity(child.restarts, budget.intensity, budget.period)

    def _notify_give_up(
        self, child: _C, id: str | None, name: str | None, args: tuple[object, ...]
    ) -> None:
        """BUD-01/02: log that ``child`` was given up (its record is already removed) and tell
        ``on_give_up``; an observer's exception is logged, never raised."""
        budget = self._budget_of(child)
        assert budget is not None
        child.restarting = False
        reason = child.last_reason if child.last_reason is not None else KILLED
        label = id if id is not None else name
        log.error(
            "child_given_up",
            supervisor=self._ref.label,
            child=label,
            reason=reason,
            intensity=budget.intensity,
            period=budget.period,
        )
        if self.on_give_up is None:
            return
        try:
            self.on_give_up(GivenUp(self._ref, name, args, reason, budget, id))
        except Exception:
            log.exception("give_up_observer_failed", supervisor=self._ref.label, child=label)

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, _ChildExit):
            if trio.current_effective_deadline() == -math.inf:
                return  # we are being torn down (cancelled): restarting would be pointless
            for child in self._children:
                if child.ref is message.ref:
                    child.ref = None
                    await self._child_exited(child, message.reason)
                    return
        elif isinstance(message, _TryAgain):
            for child in self._children:
                if child is message.child:
                    if child.restarting:
                        await self._restart(child)
                    return
        else:
            await super().handle_info(message)


class Supervisor(_Supervising[_Child]):
    """An OTP supervisor, itself an actor (so it can be a child: ``ChildSpec.supervisor``).

    Children start in order, each synchronously (SUP-02); if one fails the started ones are
    stopped in reverse and the start raises ``StartChildError`` (SUP-03). Restarts follow the
    strategy and each child's restart type. More than ``intensity`` restarts within ``period``
    seconds (counted per supervisor) logs ``reached_max_restart_intensity``, stops every child in
    reverse start order and exits with reason ``shutdown`` (INT-01..03). A child with a
    ``restart_budget`` that would exceed it is given up alone: not restarted (nor its group),
    its spec removed, ``on_give_up(GivenUp)`` told (BUD-01..05).

    Raises ``InvalidSupervisorFlags`` / ``InvalidChildSpec`` / ``DuplicateChildId`` at
    construction.
    """

    __slots__ = ("auto_shutdown", "strategy")

    _ref_class: ClassVar[type[ActorRef]] = SupervisorRef
    trap_exits = True

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
        on_give_up: Callable[[GivenUp], object] | None = None,
    ) -> None:
        check_flags(strategy, intensity, period, auto_shutdown)
        check_observer(on_give_up)
        specs = check_childspecs(children, auto_shutdown)
        self.strategy = strategy
        self.intensity = intensity
        self.period = period
        self.auto_shutdown = auto_shutdown
        self.on_give_up = on_give_up
        self._children = [_Child(spec) for spec in specs]
        self._restarts: deque[float] = deque()
        self._restart_totals = {}

    # -- lifecycle -----------------------------------------------------------------------------

    async def init(self) -> None:
        started: list[_Child] = []
        for child in list(self._children):
            try:
                await self._start(child)
            except Exception as exc:
                for done in reversed(started):
                    await _shutdown_child(self._ref.label, done)
                raise StartChildError(child.spec.id, exc) from exc
            if child.ref is not None:
                started.append(child)

    async def _start(self, child: _Child) -> ActorRef:
        spec = child.spec
        return await self._launch(child, spec.factory(), spec.name, spec.id, spec.type)

    async def _stop_all(self) -> None:
        for child in reversed(self._children):
            child.restarting = False
            await _shutdown_child(self._ref.label, child)

    async def _give_up(self) -> None:
        await self._stop_all()
        raise StopActor(SHUTDOWN)

    # -- child exits and restarts --------------------------------------------------------------

    async def _child_exited(self, child: _Child, reason: ExitReason) -> None:
        spec = child.spec
        if _exit_reported(spec.restart, reason):
            log.error("child_terminated", supervisor=self._ref.label, child=spec.id, reason=reason)
        due = _restart_due(spec.restart, reason)
        self._note_exit(child, reason, due)
        if due:
            child.last_reason = reason
            await self._restart(child)
            return
        if spec.restart is Restart.TEMPORARY:
            self._children.remove(child)
        if spec.significant and self._auto_shutdown_due():
            log.info("auto_shutdown", supervisor=self._ref.label, child=spec.id)
            await self._give_up()

    def _auto_shutdown_due(self) -> bool:
        if self.auto_shutdown is AutoShutdown.ANY_SIGNIFICANT:
            return True
        if self.auto_shutdown is AutoShutdown.ALL_SIGNIFICANT:
            return not any(
                c.spec.significant and (c.ref is not None or c.restarting) for c in self._children
            )
        return False

    def _resume_pending_group(self) -> None:
        """A child whose restart was pending left the group: retry the next pending member."""
        for other in self._children:
            if other.restarting:
                self._ref.send(_TryAgain(other))
                return

    def _budget_of(self, child: _Child) -> RestartBudget | None:
        return child.spec.restart_budget

    async def _give_up_child(self, child: _Child) -> None:
        """BUD-01: forget ``child`` instead of restarting it (its siblings are untouched)."""
        spec = child.spec
        self._children.remove(child)
        self._notify_give_up(child, spec.id, spec.name, ())
        if child.restarting:  # a group restart that waited on it goes on without it
            self._resume_pending_group()
        if spec.significant and self._auto_shutdown_due():  # AS-02: it is not restarted
            log.info("auto_shutdown", supervisor=self._ref.label, child=spec.id)
            await self._give_up()

    async def _restart(self, child: _Child) -> None:
        if self._over_budget(child):
            await self._give_up_child(child)
            return
        if self._add_restart():
            log.error(
                "reached_max_restart_intensity",
                supervisor=self._ref.label,
                child=child.spec.id,
                intensity=self.intensity,
                period=self.period,
                reason=SHUTDOWN,
            )
            await self._give_up()
        children = self._children
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        else:
            index = children.index(child)
            group = list(children if self.strategy is Strategy.ONE_FOR_ALL else children[index:])
            for other in reversed(group):
                if other is not child and other.ref is not None:
                    await _shutdown_child(self._ref.label, other)
            for other in group:  # SUP-08: temporary siblings are not restarted
                if other is not child and other.spec.restart is Restart.TEMPORARY:
                    children.remove(other)
            group = [c for c in group if c in children]
        for position, member in enumerate(group):
            if member.ref is not None:
                continue
            try:
                await self._start(member)
            except Exception as exc:
                log.exception(
                    "child_restart_failed",
                    supervisor=self._ref.label,
                    child=member.spec.id,
                    error=repr(exc),
                )
                member.last_reason = ExitReason.crashed(exc)
                for rest in group[position:]:
                    rest.restarting = True
                self._ref.send(_TryAgain(member))  # INT-04: serve other requests meanwhile
                return
            log.info("child_restarted", supervisor=self._ref.label, child=member.spec.id)

    # -- requests ------------------------------------------------------------------------------

    def _which(self) -> list[ChildInfo]:
        return [ChildInfo(c.spec.id, c.ref, c.restarting, c.spec.type) for c in self._children]

    def _observed(self) -> list[ObservedChild]:
        return [
            ObservedChild(c.spec.id, c.spec.name, c.spec.type, c.ref, c.restarting, c.exits)
            for c in self._children
        ]

    def _count(self) -> ChildCounts:
        workers = sum(c.spec.type is ChildType.WORKER for c in self._children)
        return ChildCounts(
            specs=len(self._children),
            active=sum(c.ref is not None for c in self._children),
            supervisors=len(self._children) - workers,
            workers=workers,
        )

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        try:
            if isinstance(request, _StartChild):
                return await self._start_child(request.spec)
            if isinstance(request, _ById):
                return await self._by_id(request.op, request.id)
            if request == _WHICH:
                return self._which()
            if request == _COUNT:
                return self._count()
        except (ActorError, ValueError) as exc:
            caller._fail(exc)
            return NoReply
        return await super().handle_call(request, caller)

    def _find(self, id: str) -> _Child:
        for child in self._children:
            if child.spec.id == id:
                return child
        raise ChildNotFound(id, "not found")

    async def _start_child(self, spec: ChildSpec) -> ActorRef:
        check_significance(spec, self.auto_shutdown)
        for existing in self._children:
            if existing.spec.id == spec.id:
                if existing.ref is not None:
                    raise AlreadyStarted(existing.ref, f"child {spec.id!r}")
                raise AlreadyPresent(spec.id, "already present")
        child = _Child(spec)
        try:
            ref = await self._start(child)
        except Exception as exc:
            raise StartChildError(spec.id, exc) from exc
        self._children.append(child)
        return ref

    async def _by_id(self, op: str, id: str) -> object:
        child = self._find(id)
        if op == "get_childspec":
            return child.spec
        if op == "terminate":
            was_restarting, child.restarting = child.restarting, False
            await _shutdown_child(self._ref.label, child)
            if child.spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            if was_restarting:
                # Its group's other pending members would otherwise wait for a retry forever.
                self._resume_pending_group()
            return None
        if child.ref is not None:
            raise ChildRunning(id, "running")
        if child.restarting:
            raise ChildRestarting(id, "restarting")
        if op == "delete":
            self._children.remove(child)
            return None
        try:
            return await self._start(child)
        except Exception as exc:
            raise StartChildError(id, exc) from exc


def _prepare_supervisor(
    children: Sequence[ChildSpec],
    strategy: Strategy,
    intensity: int,
    period: float,
    auto_shutdown: AutoShutdown,
    registry: Registry | None,
    name: str | None,
    on_give_up: Callable[[GivenUp], object] | None,
) -> tuple[Supervisor, ActorRef, trio.MemoryReceiveChannel[_Item]]:
    """A `Supervisor` and its prepared ref (not started yet), for the two ways of starting one."""
    supervisor = Supervisor(
        children,
        strategy=strategy,
        intensity=intensity,
        period=period,
        auto_shutdown=auto_shutdown,
        on_give_up=on_give_up,
    )
    ref, receive = _prepare(
        supervisor, name, registry if registry is not None else Registry(), name or "supervisor"
    )
    return supervisor, ref, receive


async def start_supervisor(
    nursery: trio.Nursery,
    children: Sequence[ChildSpec] = (),
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: int = 1,
    period: float = 5,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    registry: Registry | None = None,
    name: str | None = None,
    on_give_up: Callable[[GivenUp], object] | None = None,
) -> SupervisorRef:
    """Start a supervisor in ``nursery``; return once all its children started (SUP-02).

    ``registry`` defaults to a fresh ``Registry``; children inherit it. ``on_give_up`` is told
    of each child given up over its ``restart_budget`` (a plain callable). Raises
    ``InvalidSupervisorFlags``/``InvalidChildSpec``/``DuplicateChildId`` for bad arguments,
    ``StartChildError`` if a child failed to start (SUP-03), ``AlreadyStarted`` if ``name`` is
    taken. Stop it with ``await ref.stop()``.
    """
    supervisor, ref, receive = _prepare_supervisor(
        children, strategy, intensity, period, auto_shutdown, registry, name, on_give_up
    )
    return cast(SupervisorRef, await _start_prepared(nursery, supervisor, ref, receive))


@asynccontextmanager
async def open_supervisor(
    children: Sequence[ChildSpec] = (),
    *,
    strategy: Strategy = Strategy.ONE_FOR_ONE,
    intensity: int = 1,
    period: float = 5,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    registry: Registry | None = None,
    name: str | None = None,
    on_give_up: Callable[[GivenUp], object] | None = None,
) -> AsyncIterator[SupervisorRef]:
    """Run a supervisor for the body of an ``async with``; on exit, stop its children in reverse
    start order (each per its shutdown spec) and wait for it.

    If the supervisor exits on its own (intensity exceeded, auto-shutdown), the body is cancelled
    and ``ActorExited`` (with its reason) is raised from the ``async with``. Cancelling the
    enclosing scope kills the whole tree without the graceful phase. Raises as
    ``start_supervisor``.
    """
    supervisor, ref, receive = _prepare_supervisor(
        children, strategy, intensity, period, auto_shutdown, registry, name, on_give_up
    )
    exited_by_itself = False
    error: Exception | None = None

    async def watch(body: trio.CancelScope) -> None:
        nonlocal exited_by_itself
        await ref.wait()
        if ref._stop_reason is None:
            exited_by_itself = True
            body.cancel()

    # Errors are re-raised outside the nursery, so the caller sees them unwrapped.
    async with trio.open_nursery() as nursery:
        try:
            await _start_prepared(nursery, supervisor, ref, receive)
        except Exception as exc:
            error = exc
        else:
            body = trio.CancelScope()
            nursery.start_soon(watch, body)
            try:
                with body:
                    yield cast(SupervisorRef, ref)
            except Exception as exc:
                error = exc
            finally:
                ref._request_stop(SHUTDOWN)
                await ref.wait()
    if error is not None:
        raise error
    if exited_by_itself:
        assert ref.reason is not None
        raise ActorExited(ref, ref.reason)
