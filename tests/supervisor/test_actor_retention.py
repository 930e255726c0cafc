"""An idle actor keeps nothing of what it handled or ran.

A session's actor used to keep, for the rest of its life, the first stream it spawned (the
arguments of the task whose `spawn` gave the actor its nursery: the stream's request body, its
accumulator, all its text) and, while waiting for its next message, the last message it handled.
Each test waits until every task is blocked (the actor parked on its mailbox) without sending
another message, which would have replaced the one kept.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import trio
import trio.testing

from streamvisor.supervisor import Actor, Caller, start_actor


class Payload:
    """Something an actor is handed; weakly referenceable so a test can tell when it is gone."""


class Handler(Actor):
    """Handles calls, casts and infos; spawns a task on ``("spawn", payload)``."""

    def __init__(self) -> None:
        self.ran = 0

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, tuple) and request[0] == "spawn":
            self.spawn(self._work, request[1])
            return "spawned"
        return "ok"

    async def handle_cast(self, message: Any) -> None:
        pass

    async def handle_info(self, message: Any) -> None:
        pass

    async def _work(self, payload: Payload) -> None:
        await trio.lowlevel.checkpoint()
        self.ran += 1


async def _gone(ref: weakref.ref[Payload]) -> bool:
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    return ref() is None


async def test_the_last_call_is_not_kept_while_the_actor_waits() -> None:
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, Handler())
        payload = Payload()
        gone = weakref.ref(payload)
        assert await actor.call(payload) == "ok"
        del payload
        assert await _gone(gone)
        nursery.cancel_scope.cancel()


async def test_the_last_cast_and_info_are_not_kept_while_the_actor_waits() -> None:
    async with trio.open_nursery() as nursery:
        actor = await start_actor(nursery, Handler())
        cast, info = Payload(), Payload()
        gone_cast, gone_info = weakref.ref(cast), weakref.ref(info)
        actor.cast(cast)
        actor.send(info)
        del cast, info
        assert await _gone(gone_cast)
        assert await _gone(gone_info)
        nursery.cancel_scope.cancel()


async def test_the_task_that_gave_the_actor_its_nursery_lets_its_arguments_go() -> None:
    async with trio.open_nursery() as nursery:
        handler = Handler()
        actor = await start_actor(nursery, handler)
        first, second = Payload(), Payload()
        gone_first, gone_second = weakref.ref(first), weakref.ref(second)
        assert await actor.call(("spawn", first)) == "spawned"  # the upgrade: a nursery now
        assert await actor.call(("spawn", second)) == "spawned"  # into the nursery
        del first, second
        assert await _gone(gone_first)
        assert await _gone(gone_second)
        assert handler.ran == 2
        nursery.cancel_scope.cancel()
