"""`observe_tree`: a snapshot of a supervision tree for observers (Erlang's ``observer``).

Read in the caller's task, without a message: trio runs one task at a time, so no table is
seen half-changed, and a snapshot never waits for a busy supervisor's turn. Restart counts and
last exits come from each supervisor's `ExitLog` of its children; a child that never exited
costs nothing to keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from ._reason import ExitReason
from ._ref import ActorRef, MailboxStatistics
from ._spec import ChildType
from ._supervisor import ObservedChild, _Supervising

__all__ = ["TreeNode", "observe_tree"]

_NO_REASONS: Mapping[str, int] = MappingProxyType({})


@attrs.frozen
class TreeNode:
    """One actor of a supervision tree, as `observe_tree` saw it.

    Attributes:
        id: Its child id under its supervisor (None for the root and a dynamic supervisor's
            children, which OTP leaves ``undefined``).
        name: Its registered name, if any (``"files"``, ``"session.s1"``).
        label: How logs name it (the name, the id, or the class and a serial).
        kind: ``"supervisor"`` or ``"worker"``.
        actor: The running actor's class name; None while it is not running.
        alive: Whether it is running now.
        restarting: True between failed restart attempts (OTP ``restarting``).
        restarts: Times its supervisor restarted it since the supervisor started.
        restart_reasons: Those restarts by reason (``"crashed:RuntimeError"``, ``"killed"``).
        last_exit: Why it last exited (None: it never did).
        last_exit_at: Wall-clock time (``time.time()``) of that exit.
        mailbox: Its mailbox counters while it runs (`MailboxStatistics`), else None.
        children: A supervisor's children in start order (at most ``max_children`` of them);
            under a worker, the actors it runs itself (`Actor.observed_children`).
        omitted: Children left out of ``children`` by ``max_children``.
        child_restarts: A supervisor's restarts of its children by reason since it started,
            children that are gone included (what a restarts counter adds up).
    """

    id: str | None
    name: str | None
    label: str
    kind: Literal["supervisor", "worker"]
    actor: str | None
    alive: bool
    restarting: bool = False
    restarts: int = 0
    restart_reasons: Mapping[str, int] = _NO_REASONS
    last_exit: ExitReason | None = None
    last_exit_at: float | None = None
    mailbox: MailboxStatistics | None = None
    children: tuple[TreeNode, ...] = ()
    omitted: int = 0
    child_restarts: Mapping[str, int] = _NO_REASONS

    def walk(self) -> list[TreeNode]:
        """This node and every node below it, depth first, parents before their children."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def observe_tree(ref: ActorRef, *, max_children: int | None = None) -> TreeNode:
    """The tree under ``ref`` (a supervisor or any actor) as it is now.

    ``max_children`` bounds the children listed per supervisor (the first ones in start order;
    the rest are counted in ``omitted``) -- a dynamic supervisor may hold thousands of sessions.
    Raises ``ValueError`` for a negative ``max_children``.
    """
    if max_children is not None and (type(max_children) is not int or max_children < 0):
        raise ValueError(f"max_children must be an int >= 0 or None, got {max_children!r}")
    return _node(ObservedChild(None, ref.name, _type_of(ref), ref, False, None), max_children)


def _type_of(ref: ActorRef) -> ChildType:
    return ChildType.SUPERVISOR if isinstance(ref._actor, _Supervising) else ChildType.WORKER


def _node(seen: ObservedChild, max_children: int | None) -> TreeNode:
    """``seen`` and, below it, a supervisor's children or the actors a worker runs itself."""
    ref, exits = seen.ref, seen.exits
    alive = ref is not None and ref.alive
    table: list[ObservedChild] = []
    child_restarts = _NO_REASONS
    if ref is not None and alive:
        actor = ref._actor
        if isinstance(actor, _Supervising):
            child_restarts = MappingProxyType(dict(actor._restart_totals))
            table = actor._observed()
        else:
            table = [
                ObservedChild(key, inner.name, _type_of(inner), inner, False, None)
                for key, inner in actor.observed_children().items()
            ]
    shown = table if max_children is None else table[:max_children]
    return TreeNode(
        id=seen.id,
        name=seen.name,
        label=ref.label if ref is not None else seen.name or seen.id or "?",
        kind="supervisor" if seen.type is ChildType.SUPERVISOR else "worker",
        actor=type(ref._actor).__name__ if ref is not None and alive else None,
        alive=alive,
        restarting=seen.restarting,
        restarts=exits.restarts if exits is not None else 0,
        restart_reasons=(
            MappingProxyType(dict(exits.reasons)) if exits is not None else _NO_REASONS
        ),
        last_exit=exits.last if exits is not None else None,
        last_exit_at=exits.last_at if exits is not None else None,
        mailbox=ref.statistics() if ref is not None and alive else None,
        children=tuple(_node(child, max_children) for child in shown),
        omitted=len(table) - len(shown),
        child_restarts=child_restarts,
    )
