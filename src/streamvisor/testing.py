"""Helpers for testing code built on ``streamvisor.supervisor`` (as ``trio.testing`` is for trio).

* ``Trace`` — an append-only event log that actors write and tests await (no polling);
* ``Recorder`` — an actor that records every call, cast and info it receives into a ``Trace``;
* ``Crashable`` — a child actor that crashes, exits or stalls on command, and records its
  ``init``/``terminate`` into a ``Trace`` (so restarts are observable across instances);
* ``quiesce()`` — wait until every task is blocked (pair it with ``autojump_clock``).

All waits take a ``timeout`` and raise ``trio.TooSlowError`` rather than hang.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio
import trio.testing

from streamvisor.supervisor import Actor, Caller, ExitReason, StopActor

__all__ = ["Crash", "Crashable", "ExitWith", "Recorder", "Stall", "Trace", "quiesce"]

Event = tuple[Any, ...]


class Trace:
    """Events recorded by actors under test, in order, with awaitable conditions."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed: trio.Event | None = None

    def record(self, *event: Any) -> None:
        """Append ``event`` (a tuple; by convention ``(kind, actor_tag, ...)``)."""
        self.events.append(event)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def of(self, kind: str, tag: object = None) -> list[Event]:
        """The events of one kind (and actor tag, if given), in order."""
        return [e for e in self.events if e[0] == kind and (tag is None or e[1] == tag)]

    def count(self, kind: str, tag: object = None) -> int:
        return len(self.of(kind, tag))

    async def wait_for(
        self,
        predicate: Callable[[Sequence[Event]], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the runtime's call(timeout=)
    ) -> None:
        """Wait until ``predicate(events)`` holds. Raises ``trio.TooSlowError`` after
        ``timeout`` seconds."""
        with trio.fail_after(timeout):
            while not predicate(self.events):
                if self._changed is None:
                    self._changed = trio.Event()
                await self._changed.wait()

    async def wait_count(
        self,
        kind: str,
        tag: object,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until at least ``n`` events of ``kind`` for ``tag`` were recorded."""
        await self.wait_for(lambda _: self.count(kind, tag) >= n, timeout)


async def quiesce() -> None:
    """Return once every other task is blocked (``trio.testing.wait_all_tasks_blocked``)."""
    await trio.testing.wait_all_tasks_blocked()


class Recorder(Actor):
    """Records ``("call"|"cast"|"info", tag, message)`` for everything it receives; calls are
    answered with ``reply`` (default None)."""

    def __init__(self, trace: Trace, tag: str = "recorder", reply: object = None) -> None:
        self.trace = trace
        self.tag = tag
        self.reply = reply

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        self.trace.record("call", self.tag, request)
        return self.reply

    async def handle_cast(self, message: Any) -> None:
        self.trace.record("cast", self.tag, message)

    async def handle_info(self, message: Any) -> None:
        self.trace.record("info", self.tag, message)


@attrs.frozen
class Crash:
    """Command: raise ``error`` from the callback (cast or call)."""

    error: Exception = attrs.field(factory=lambda: RuntimeError("crash on command"))


@attrs.frozen
class ExitWith:
    """Command: stop with ``reason`` (``StopActor``); a call gets ``"ok"`` first."""

    reason: ExitReason = attrs.field(factory=ExitReason.normal)


@attrs.frozen
class Stall:
    """Command: sleep ``seconds`` inside the callback (a call then gets ``"stalled"``)."""

    seconds: float = math.inf


class Crashable(Actor):
    """A child that does what it is told. Records ``("init", tag)``, ``("terminate", tag,
    reason)``; answers the call ``"ping"`` with ``"pong"``; obeys ``Crash``, ``ExitWith`` and
    ``Stall`` sent by call or cast. ``init_error`` makes ``init`` raise it (a failed start);
    ``stall_terminate`` makes ``terminate`` sleep that long (to test shutdown timeouts)."""

    def __init__(
        self,
        tag: str,
        trace: Trace,
        *,
        init_error: Exception | None = None,
        stall_terminate: float = 0.0,
    ) -> None:
        self.tag = tag
        self.trace = trace
        self.init_error = init_error
        self.stall_terminate = stall_terminate

    async def init(self) -> None:
        self.trace.record("init", self.tag)
        if self.init_error is not None:
            raise self.init_error

    async def _obey(self, command: Any) -> Any:
        if isinstance(command, Crash):
            raise command.error
        if isinstance(command, ExitWith):
            raise StopActor(command.reason, reply="ok")
        if isinstance(command, Stall):
            await trio.sleep(command.seconds)
            return "stalled"
        if command == "ping":
            return "pong"
        raise ValueError(f"unknown command {command!r}")

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        return await self._obey(request)

    async def handle_cast(self, message: Any) -> None:
        await self._obey(message)

    async def terminate(self, reason: ExitReason) -> None:
        self.trace.record("terminate", self.tag, reason)
        if self.stall_terminate:
            await trio.sleep(self.stall_terminate)
