"""Local names (NM-01).

NM-02 (``{via, Mod, Name}``) does not apply: OTP needs ``via`` because the name table is global
per node, so alternative registries must plug into every ``gen`` call. Here the ``Registry`` is an
explicit object passed to ``start_actor``/supervisors and inherited by children, so a different
naming scheme is simply a different ``Registry`` instance — there is no global table to route
around.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    ChildSpec,
    NoSuchActor,
    Registry,
    Supervisor,
    open_supervisor,
    start_actor,
)
from streamvisor.testing import Crashable, Recorder, Trace

from .test_strategies import workers


class TestNM01Names:
    async def test_NM01_a_name_is_freed_when_its_actor_exits(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        ref = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        assert registry.names() == ["a"]
        await ref.stop()
        assert registry.whereis("a") is None
        assert registry.names() == []

    async def test_NM01_a_freed_name_can_be_taken_again(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        first = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        await first.stop()
        second = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        assert registry.whereis("a") is second

    async def test_NM01_call_to_an_unregistered_name_raises_NoSuchActor(self) -> None:
        with pytest.raises(LookupError) as info:
            await Registry().call("ghost", "hello")
        assert isinstance(info.value, NoSuchActor)
        assert info.value.name == "ghost"

    def test_NM01_cast_and_send_to_an_unregistered_name_are_silently_dropped(self) -> None:
        registry = Registry()
        registry.cast("ghost", "hello")
        registry.send("ghost", "hello")

    async def test_NM01_registry_call_and_cast_reach_the_named_actor(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        await start_actor(nursery, Recorder(trace, "r", reply="ok"), name="r", registry=registry)
        registry.cast("r", 1)
        registry.send("r", 2)
        assert await registry.call("r", 3) == "ok"
        assert trace.events == [("cast", "r", 1), ("info", "r", 2), ("call", "r", 3)]

    async def test_NM01_wait_for_wakes_when_the_name_is_registered(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()

        async def start_later() -> None:
            await trio.sleep(3)
            await start_actor(nursery, Crashable("late", trace), name="late", registry=registry)

        nursery.start_soon(start_later)
        start = trio.current_time()
        ref = await registry.wait_for("late", timeout=10)
        assert trio.current_time() - start == pytest.approx(3)
        assert ref.name == "late"

    async def test_NM01_wait_for_times_out_with_TooSlowError(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        with pytest.raises(trio.TooSlowError):
            await Registry().wait_for("never", timeout=2)

    async def test_NM01_children_of_nested_supervisors_inherit_the_registry(
        self, trace: Trace
    ) -> None:
        registry = Registry()
        inner = ChildSpec.supervisor(
            "inner", lambda: Supervisor(workers(trace, ["leaf"])), name="inner"
        )
        async with open_supervisor([inner], registry=registry, name="top") as top:
            assert registry.names() == ["inner", "leaf", "top"]
            assert registry.whereis("top") is top
            assert await registry.call("leaf", "ping") == "pong"
        assert registry.names() == []
