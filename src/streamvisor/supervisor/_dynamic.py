"""A supervisor of many children of one template (OTP simple_one_for_one, SUP-07; Elixir's
DynamicSupervisor), with optional per-child restart budgets.

Per-child restart budgets are this runtime's extension to OTP, for supervisors of many
independent children (sessions, agents, pollers) where one child crash-looping must not take its
siblings down: ``DynamicSupervisor(restart_budget=...)`` for every child of the template,
``ChildSpec(restart_budget=...)`` for one child of a static `Supervisor`. The checklist IDs its
tests use:

* **BUD-01** With a ``restart_budget``, each child counts its own restarts; one that would
  exceed ``intensity`` restarts within ``period`` seconds is *given up*: not restarted, removed
  (``which_children`` no longer lists it), logged as ``child_given_up`` with its last exit reason.
  Its siblings and the supervisor keep running (under ``one_for_all``/``rest_for_one`` its group
  is not restarted either; a significant child given up counts for auto-shutdown, AS-02).
* **BUD-02** The owner learns it: ``on_give_up(GivenUp)`` is called (a plain callable, in the
  supervisor's task; it must not block; an exception from it is logged and ignored).
* **BUD-03** Restarts within a child's budget still count toward the supervisor's own intensity
  (INT-01 holds: intensity is per supervisor), but the attempt that exceeds a budget is not a
  restart and is not counted. So a child whose budget fits inside the supervisor's (``budget
  .intensity <= intensity`` and ``budget.period >= period``) can never make it give up alone;
  many children failing together (something they share is broken) still escalate (INT-02).
* **BUD-04** Failed restart attempts (INT-04) count toward the child's budget too: a child whose
  start keeps failing is given up, its last start error as the reason (``crashed``).
* **BUD-05** A given-up child is forgotten, not blacklisted: ``start_child`` with the same args
  and name starts a new child with a fresh budget.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, cast

import attrs
import structlog

from ._actor import Actor
from ._errors import ActorError, ChildNotFound, InvalidChildSpec, MaxChildren, StartChildError
from ._reason import SHUTDOWN, ExitReason, GivenUp
from ._ref import ActorRef, Caller, NoReply, StopActor
from ._spec import (
    AutoShutdown,
    ChildType,
    Restart,
    RestartBudget,
    Shutdown,
    Strategy,
    _check_budget,
    check_flags,
    check_observer,
)
from ._supervisor import (
    ChildCounts,
    ChildInfo,
    ExitLog,
    ObservedChild,
    _exit_reported,
    _restart_due,
    _stop_refs,
    _Supervising,
    _TryAgain,
)

__all__ = ["DynamicSupervisor", "DynamicSupervisorRef"]

log = structlog.get_logger("streamvisor.supervisor")


class _Dyn:
    __slots__ = ("args", "exits", "last_reason", "name", "ref", "restarting", "restarts")

    def __init__(self, args: tuple[object, ...], name: str | None) -> None:
        self.args = args
        self.name = name
        self.ref: ActorRef | None = None
        self.restarting = False
        #: This child's own restart timestamps (for its `RestartBudget`), made at its first
        #: restart: an empty deque is 760 bytes, and most of 1,000 sessions never restart.
        self.restarts: deque[float] | None = None
        self.last_reason: ExitReason | None = None
        self.exits: ExitLog | None = None


@attrs.frozen(slots=True)
class _Start:
    args: tuple[object, ...]
    name: str | None


@attrs.frozen(slots=True)
class _Terminate:
    ref: ActorRef


_WHICH = "which_children"
_COUNT = "count_children"


class DynamicSupervisorRef(ActorRef):
    """A running ``DynamicSupervisor``. Requests are calls with ``timeout=None`` by default; each
    may also raise ``ActorExited`` (supervisor gone) and ``CallTimeout`` (``timeout`` given)."""

    __slots__ = ()

    async def start_child(
        self,
        *args: object,
        name: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ActorRef:
        """Start ``factory(*args)`` (registered as ``name``, if given) and return its ref.

        Raises ``MaxChildren`` at the limit, ``StartChildError`` if the factory or ``init``
        raised or ``name`` is taken (``__cause__``: the error, e.g. ``AlreadyStarted``).
        """
        return cast(ActorRef, await self.call(_Start(args, name), timeout=timeout))

    async def terminate_child(
        self,
        ref: ActorRef,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> None:
        """Stop the child (per the template's shutdown) and forget it. Raises ``ChildNotFound``
        for a ref that is not (or no longer) its child."""
        await self.call(_Terminate(ref), timeout=timeout)

    async def which_children(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[ChildInfo]:
        """All children in start order; ``id`` is None (OTP: ``undefined``)."""
        return cast("list[ChildInfo]", await self.call(_WHICH, timeout=timeout))

    async def count_children(
        self,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ChildCounts:
        return cast(ChildCounts, await self.call(_COUNT, timeout=timeout))

    def which_children_nowait(self) -> list[ChildInfo]:
        """`which_children` read in the caller's task, without a message (see
        ``SupervisorRef.which_children_nowait``). Raises ``ActorExited`` if it has exited."""
        return cast(DynamicSupervisor, self._live_actor())._which()

    def count_children_nowait(self) -> ChildCounts:
        """`count_children` without a message, as `which_children_nowait`."""
        return cast(DynamicSupervisor, self._live_actor())._count()


def _check_template(
    restart: object, shutdown: object, max_children: object, budget: object
) -> None:
    _check_budget(None, None, budget)
    if not isinstance(restart, Restart):
        raise InvalidChildSpec(f"restart must be a Restart: {restart!r}")
    if shutdown not in ("brutal_kill", "infinity") and (
        isinstance(shutdown, bool)
        or not isinstance(shutdown, int | float)
        or not (shutdown >= 0 and math.isfinite(shutdown))
    ):
        raise InvalidChildSpec(
            f"shutdown must be seconds, 'brutal_kill' or 'infinity': {shutdown!r}"
        )
    if max_children is not None and (
        isinstance(max_children, bool) or not isinstance(max_children, int) or max_children < 0
    ):
        raise InvalidChildSpec(f"max_children must be an int >= 0 or None: {max_children!r}")


class DynamicSupervisor(_Supervising[_Dyn]):
    """Children started on demand from one template: ``factory(*args)`` returns the Actor.

    Each child is restarted per ``restart`` with the same args (and name); intensity is counted
    per supervisor as for ``Supervisor``. At stop, all children are stopped **in parallel** under
    one shared ``shutdown`` timer (SUP-07), then killed if still running.

    With a ``restart_budget``, a child that would exceed it is given up alone -- not restarted,
    forgotten, ``on_give_up(GivenUp)`` called; a budget that fits inside the intensity means one
    child alone can never exhaust the intensity that stops every child (BUD-01..05 above).

    Raises ``InvalidSupervisorFlags``/``InvalidChildSpec`` at construction.
    """

    __slots__ = (
        "factory",
        "max_children",
        "restart",
        "restart_budget",
        "shutdown",
        "type",
    )

    _ref_class: ClassVar[type[ActorRef]] = DynamicSupervisorRef

    def __init__(
        self,
        factory: Callable[..., Actor],
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: Shutdown = 5.0,
        type: ChildType = ChildType.WORKER,
        max_children: int | None = None,
        intensity: int = 1,
        period: float = 5,
        restart_budget: RestartBudget | None = None,
        on_give_up: Callable[[GivenUp], object] | None = None,
    ) -> None:
        check_flags(Strategy.ONE_FOR_ONE, intensity, period, AutoShutdown.NEVER)
        _check_template(restart, shutdown, max_children, restart_budget)
        check_observer(on_give_up)
        if not callable(factory):
            raise InvalidChildSpec(f"a child factory must be callable: {factory!r}")
        self.factory = factory
        self.restart = restart
        self.shutdown = shutdown
        self.type = type
        self.max_children = max_children
        self.intensity = intensity
        self.period = period
        self.restart_budget = restart_budget
        self.on_give_up = on_give_up
        self._children: list[_Dyn] = []
        self._restarts: deque[float] = deque()
        self._restart_totals = {}

    async def _start(self, child: _Dyn) -> ActorRef:
        return await self._launch(
            child, self.factory(*child.args), child.name, child.name, self.type
        )

    async def _stop_all(self) -> None:
        refs = [c.ref for c in self._children if c.ref is not None]
        for child in self._children:
            child.ref = None
            child.restarting = False
        await self._stop_refs(refs)

    async def _stop_refs(self, refs: list[ActorRef]) -> None:
        """SUP-07: ask everyone at once, one shared timer, then kill the rest."""

        def timed_out(ref: ActorRef, timeout: float) -> None:
            log.warning("shutdown_timeout", supervisor=self._ref.label, child=ref.label)

        await _stop_refs(refs, self.shutdown, timed_out)

    async def _child_exited(self, child: _Dyn, reason: ExitReason) -> None:
        if _exit_reported(self.restart, reason):
            log.error(
                "child_terminated", supervisor=self._ref.label, child=child.name, reason=reason
            )
        due = _restart_due(self.restart, reason)
        self._note_exit(child, reason, due)
        if due:
            child.last_reason = reason
            await self._restart(child)
        else:
            self._children.remove(child)

    def _budget_of(self, child: _Dyn) -> RestartBudget | None:
        return self.restart_budget

    async def _restart(self, child: _Dyn) -> None:
        if self._over_budget(child):  # BUD-01: forget it, tell the owner
            self._children.remove(child)
            self._notify_give_up(child, None, child.name, child.args)
            return
        if self._add_restart():
            log.error(
                "reached_max_restart_intensity",
                supervisor=self._ref.label,
                intensity=self.intensity,
                period=self.period,
                reason=SHUTDOWN,
            )
            await self._stop_all()
            raise StopActor(SHUTDOWN)
        try:
            await self._start(child)
        except Exception as exc:
            log.exception("child_restart_failed", supervisor=self._ref.label, child=child.name)
            child.last_reason = ExitReason.crashed(exc)
            child.restarting = True
            self._ref.send(_TryAgain(child))
            return
        log.info("child_restarted", supervisor=self._ref.label, child=child.name)

    def _which(self) -> list[ChildInfo]:
        return [ChildInfo(None, c.ref, c.restarting, self.type) for c in self._children]

    def _observed(self) -> list[ObservedChild]:
        return [
            ObservedChild(None, c.name, self.type, c.ref, c.restarting, c.exits)
            for c in self._children
        ]

    def _count(self) -> ChildCounts:
        n = len(self._children)
        sups = n if self.type is ChildType.SUPERVISOR else 0
        return ChildCounts(
            specs=n,
            active=sum(c.ref is not None for c in self._children),
            supervisors=sups,
            workers=n - sups,
        )

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        try:
            if isinstance(request, _Start):
                return await self._start_child(request)
            if isinstance(request, _Terminate):
                for child in self._children:
                    if child.ref is request.ref:
                        self._children.remove(child)
                        child.ref = None
                        await self._stop_refs([request.ref])
                        return None
                raise ChildNotFound(request.ref, "not a child")
            if request == _WHICH:
                return self._which()
            if request == _COUNT:
                return self._count()
        except ActorError as exc:
            caller._fail(exc)
            return NoReply
        return await super().handle_call(request, caller)

    async def _start_child(self, request: _Start) -> ActorRef:
        if self.max_children is not None and len(self._children) >= self.max_children:
            raise MaxChildren(None, f"max_children={self.max_children} reached")
        child = _Dyn(request.args, request.name)
        try:
            ref = await self._start(child)
        except Exception as exc:
            raise StartChildError(None, exc) from exc
        self._children.append(child)
        return ref
