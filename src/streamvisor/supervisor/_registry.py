"""Names → actors (OTP local names, NM-01), as an explicit object passed down the tree."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import trio

from ._errors import ActorExited, AlreadyStarted, CallTimeout, InvalidTimeout, NoSuchActor
from ._ref import _valid_timeout

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["NamedRef", "Registry"]


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

    def ref(self, name: str, *, restart_wait: float = 0.0) -> NamedRef:
        """The actor registered as ``name``, addressed by name (OTP ``gen_server:call(Name, …)``):
        every call looks the name up again, so the handle never goes stale across restarts.
        See `NamedRef`."""
        return NamedRef(self, name, restart_wait=restart_wait)

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


class NamedRef:
    """An actor addressed by its registered name, like a registered name in OTP.

    It holds no ``ActorRef``: each ``call``/``cast``/``send`` finds whoever holds the name now,
    so a handle built on it follows its actor across restarts. ``restart_wait`` (seconds) is how
    long a call waits, within its own timeout, for the name to be registered again when nobody
    holds it (a supervised actor between its exit and its restart); 0 fails at once with
    ``NoSuchActor``, as OTP's ``noproc``.
    """

    __slots__ = ("name", "registry", "restart_wait")

    def __init__(self, registry: Registry, name: str, *, restart_wait: float = 0.0) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered name is a non-empty str, got {name!r}")
        if not (restart_wait >= 0):
            raise ValueError(f"restart_wait must be >= 0, got {restart_wait!r}")
        self.registry = registry
        self.name = name
        self.restart_wait = restart_wait

    def __repr__(self) -> str:
        return f"<NamedRef {self.name!r} {self.whereis()!r}>"

    def whereis(self) -> ActorRef | None:
        """The live actor holding the name now, or None."""
        return self.registry.whereis(self.name)

    @property
    def alive(self) -> bool:
        """True while some live actor holds the name."""
        return self.whereis() is not None

    async def resolve(self, timeout: float | None = None) -> ActorRef:  # noqa: ASYNC109
        """The live actor holding the name, waiting up to ``min(timeout, restart_wait)`` for it
        to be registered again. Raises ``NoSuchActor`` if nobody holds it by then."""
        ref = self.registry.whereis(self.name)
        if ref is not None:
            return ref
        bound = self.restart_wait if timeout is None else min(timeout, self.restart_wait)
        if bound <= 0:
            raise NoSuchActor(self.name)
        try:
            return await self.registry.wait_for(self.name, timeout=bound)
        except trio.TooSlowError:
            raise NoSuchActor(self.name) from None

    async def call(
        self,
        request: object,
        timeout: float | None = 5.0,  # noqa: ASYNC109
        *,
        retry_on_exit: bool = False,
    ) -> Any:
        """``ActorRef.call`` on whoever holds the name.

        ``retry_on_exit=True`` (for requests that are safe to repeat) sends the request again to
        the restarted actor when the one called exits during the call, within the same timeout
        (once the exiting one has freed the name; ``NoSuchActor`` if nobody takes it over).

        Raises ``NoSuchActor`` (nobody holds the name, see ``restart_wait``), ``CallTimeout``
        (no reply within ``timeout``), ``InvalidTimeout`` (NaN or negative), ``ActorExited``
        (the actor died during the call and ``retry_on_exit`` is off), and whatever the actor
        answered with ``Caller.fail``.
        """
        if timeout is not None and not _valid_timeout(timeout):
            raise InvalidTimeout(timeout)
        deadline = trio.current_time() + (math.inf if timeout is None else timeout)
        while True:
            remaining = None if timeout is None else max(0.0, deadline - trio.current_time())
            ref = await self.resolve(remaining)
            if timeout is not None:
                remaining = max(0.0, deadline - trio.current_time())
            try:
                return await ref.call(request, timeout=remaining)
            except ActorExited:
                if not retry_on_exit:
                    raise
                # A stopping actor refuses calls while it still holds the name: wait until it has
                # exited and freed it (within the call's time) before looking for a successor.
                with trio.move_on_after(max(0.0, deadline - trio.current_time())):
                    await ref.wait()
                if ref.alive:
                    raise CallTimeout(ref, math.inf if timeout is None else timeout) from None

    def cast(self, message: object) -> None:
        """``ActorRef.cast`` to whoever holds the name; dropped if nobody does (OTP GS-04)."""
        self.registry.cast(self.name, message)

    def send(self, message: object) -> None:
        """``ActorRef.send`` to whoever holds the name; dropped if nobody does."""
        self.registry.send(self.name, message)
