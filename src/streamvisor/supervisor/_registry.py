"""Names → actors (OTP local names, NM-01), as an explicit object passed down the tree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ._errors import AlreadyStarted, NoSuchActor

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["Registry"]


class Registry:
    """One name ↔ one live actor.

    A supervisor passes its registry to every child it starts (children inherit it). A name is
    registered before the actor's ``init`` runs and freed when the actor exits, so a restarted
    child registers it again. Waiting for a name uses a ``trio.Event``, never polling.
    """

    __slots__ = ("_names", "_waiters")

    def __init__(self) -> None:
        self._names: dict[str, ActorRef] = {}
        self._waiters: dict[str, trio.Event] = {}

    def whereis(self, name: str) -> ActorRef | None:
        """The live actor registered as ``name``, or None."""
        ref = self._names.get(name)
        return ref if ref is not None and ref.alive else None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(name for name, ref in self._names.items() if ref.alive)

    async def wait_for(self, name: str, timeout: float | None = None) -> ActorRef:  # noqa: ASYNC109
        """Wait until an actor is registered as ``name`` and return it.

        Raises ``trio.TooSlowError`` if none is within ``timeout`` seconds (None: wait forever).
        """
        with trio.fail_after(float("inf") if timeout is None else timeout):
            while True:
                ref = self.whereis(name)
                if ref is not None:
                    return ref
                event = self._waiters.get(name)
                if event is None:
                    event = self._waiters[name] = trio.Event()
                await event.wait()

    async def call(
        self,
        name: str,
        request: object,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> Any:
        """``ActorRef.call`` on the actor registered as ``name``.

        Raises ``NoSuchActor`` if no live actor has that name, and whatever ``ActorRef.call``
        raises (``CallTimeout``, ``ActorExited``).
        """
        ref = self.whereis(name)
        if ref is None:
            raise NoSuchActor(name)
        return await ref.call(request, timeout=timeout)

    def cast(self, name: str, message: object) -> None:
        """``ActorRef.cast`` to ``name``; silently dropped if no such actor (OTP GS-04)."""
        ref = self.whereis(name)
        if ref is not None:
            ref.cast(message)

    def send(self, name: str, message: object) -> None:
        """``ActorRef.send`` (→ ``handle_info``) to ``name``; silently dropped if no such actor."""
        ref = self.whereis(name)
        if ref is not None:
            ref.send(message)

    def _register(self, name: str, ref: ActorRef) -> None:
        existing = self.whereis(name)
        if existing is not None:
            raise AlreadyStarted(existing, f"name {name!r}")
        self._names[name] = ref
        event = self._waiters.pop(name, None)
        if event is not None:
            event.set()

    def _unregister(self, name: str, ref: ActorRef) -> None:
        if self._names.get(name) is ref:
            del self._names[name]
