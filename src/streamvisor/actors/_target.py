"""What a handle talks to: an actor's `ActorRef`, or a `NamedRef` that finds whoever holds the
actor's registered name at each call (and so follows it across restarts)."""

from __future__ import annotations

from typing import Any, Final

from streamvisor.supervisor import ActorRef, NamedRef, NoSuchActor

__all__ = ["RESTART_WAIT", "Target", "call", "current"]

#: Seconds a handle by name waits, within its call's timeout, for an actor being restarted
#: (`NamedRef.restart_wait`): a supervised restart takes milliseconds; a second is generous.
RESTART_WAIT: Final = 1.0

#: A handle's address: a fixed ref (tests, embedding outside a tree) or a registered name.
Target = ActorRef | NamedRef


async def call(
    target: Target,
    request: object,
    timeout: float | None,  # noqa: ASYNC109
    *,
    retry_on_exit: bool = False,
) -> Any:
    """``target.call``; ``retry_on_exit`` (for requests safe to repeat) applies to a `NamedRef`
    only: a fixed ref that exited has no successor.

    Raises what the actor answered with ``Caller.fail``, and ``CallTimeout``, ``ActorExited``,
    ``NoSuchActor`` (a name nobody holds) as the runtime does.
    """
    if isinstance(target, NamedRef):
        return await target.call(request, timeout, retry_on_exit=retry_on_exit)
    return await target.call(request, timeout=timeout)


def current(target: Target) -> ActorRef:
    """The live actor behind ``target`` now (a fixed ref is returned as is, even if it exited).

    Raises ``NoSuchActor`` for a name nobody holds.
    """
    if isinstance(target, ActorRef):
        return target
    ref = target.whereis()
    if ref is None:
        raise NoSuchActor(target.name)
    return ref
