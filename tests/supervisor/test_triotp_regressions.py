"""Regressions for the triotp weaknesses listed in reference §2.1 that other modules do not already
name (bugs 1, 2, 6, 7, 9 are covered by GS-03, GS-02, INT-01, INT-02 and SUP-02 tests)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.supervisor import Actor, ActorRef, Caller, Registry, open_supervisor, start_actor
from streamvisor.testing import Crash, Trace

from .test_strategies import ref_of, workers


class Fatal(BaseException):
    """Not an Exception: must never be mistaken for a crash to restart."""


class TestTriotpRegressions:
    async def test_bug3_a_handler_can_return_an_exception_object_as_a_plain_value(
        self, nursery: trio.Nursery
    ) -> None:
        class Returner(Actor):
            async def handle_call(self, request: Any, caller: Caller) -> Any:
                return ValueError("just data")

        ref = await start_actor(nursery, Returner())
        reply = await ref.call("x")
        assert isinstance(reply, ValueError)
        assert ref.alive

    async def test_bug4_two_actors_casting_to_each_other_do_not_deadlock(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        class Volley(Actor):
            peer: ActorRef

            async def handle_call(self, request: Any, caller: Caller) -> Any:
                self.peer = request
                return None

            async def handle_cast(self, n: int) -> None:
                trace.record("hit", n)
                if n < 200:
                    self.peer.cast(n + 1)

        a = await start_actor(nursery, Volley())
        b = await start_actor(nursery, Volley())
        await a.call(b)
        await b.call(a)
        with trio.fail_after(5):
            a.cast(0)
            await trace.wait_count("hit", 200, 1)

    async def test_bug5_cast_to_a_name_whose_child_is_restarting_is_silently_dropped(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()
        async with open_supervisor(workers(trace, ["a"]), registry=registry) as sup:
            old = await ref_of(sup, "a")
            old.cast(Crash())
            await old.wait()
            registry.cast("a", "ping")  # between exit and restart: no error
            assert await (await registry.wait_for("a")).call("ping") == "pong"

    async def test_bug8_a_BaseException_in_a_child_is_never_turned_into_a_restart(
        self, trace: Trace
    ) -> None:
        async def crash_fatally() -> None:
            async with open_supervisor(workers(trace, ["a"]), intensity=10) as sup:
                (await ref_of(sup, "a")).cast(Crash(Fatal()))  # type: ignore[arg-type]
                await trio.sleep_forever()

        with trio.fail_after(5), pytest.RaisesGroup(Fatal, flatten_subgroups=True):
            await crash_fatally()
        assert trace.count("init", "a") == 1
