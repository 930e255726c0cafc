"""DynamicSupervisor: many children of one template (SUP-07)."""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    ChildNotFound,
    ChildSpec,
    DynamicSupervisor,
    DynamicSupervisorRef,
    ExitReason,
    InvalidChildSpec,
    MaxChildren,
    Registry,
    Restart,
    Shutdown,
    StartChildError,
    open_supervisor,
    start_actor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Trace


async def start_dynamic(
    nursery: trio.Nursery,
    trace: Trace,
    *,
    stall: float = 0.0,
    registry: Registry | None = None,
    restart: Restart = Restart.PERMANENT,
    shutdown: Shutdown = 5.0,
    max_children: int | None = None,
    intensity: int = 1,
) -> DynamicSupervisorRef:
    dsup = DynamicSupervisor(
        lambda tag: Crashable(tag, trace, stall_terminate=stall),
        restart=restart,
        shutdown=shutdown,
        max_children=max_children,
        intensity=intensity,
    )
    ref = await start_actor(nursery, dsup, registry=registry or Registry())
    return cast(DynamicSupervisorRef, ref)


class TestSUP07DynamicSupervisor:
    async def test_SUP07_start_child_calls_the_factory_with_the_args_and_returns_the_ref(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace)
        ref = await dsup.start_child("s1")
        assert await ref.call("ping") == "pong"
        assert trace.of("init") == [("init", "s1")]

    async def test_SUP07_children_are_restarted_with_the_same_args_and_name(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()
        dsup = await start_dynamic(nursery, trace, registry=registry)
        old = await dsup.start_child("s1", name="session.s1")
        old.cast(Crash())
        await old.wait()
        new = await registry.wait_for("session.s1", timeout=5)
        assert new is not old
        assert trace.of("init") == [("init", "s1"), ("init", "s1")]

    async def test_SUP07_max_children_is_enforced(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, max_children=1)
        await dsup.start_child("a")
        with pytest.raises(MaxChildren):
            await dsup.start_child("b")

    async def test_SUP07_a_failing_start_raises_StartChildError(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(
            nursery,
            DynamicSupervisor(lambda: Crashable("x", trace, init_error=OSError("no"))),
        )
        dsup = cast(DynamicSupervisorRef, ref)
        with pytest.raises(StartChildError) as info:
            await dsup.start_child()
        assert isinstance(info.value.__cause__, OSError)
        assert await dsup.which_children() == []

    async def test_SUP07_terminate_child_takes_a_ref_and_forgets_the_child(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace)
        a = await dsup.start_child("a")
        b = await dsup.start_child("b")
        await dsup.terminate_child(a)
        assert a.reason == ExitReason.shutdown()
        assert [(i.id, i.ref) for i in await dsup.which_children()] == [(None, b)]
        with pytest.raises(ChildNotFound):
            await dsup.terminate_child(a)

    async def test_SUP07_temporary_and_normally_exiting_transient_children_are_forgotten(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, restart=Restart.TRANSIENT)
        a = await dsup.start_child("a")
        a.cast(ExitWith(ExitReason.normal()))
        await a.wait()
        await trio.sleep(1)
        assert (await dsup.count_children()).specs == 0

    async def test_SUP07_children_stop_in_parallel_under_one_shared_timer(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, stall=2.0, shutdown=5.0)
        refs = [await dsup.start_child(t) for t in "abc"]
        start = trio.current_time()
        await dsup.stop(timeout=None)
        assert trio.current_time() - start == pytest.approx(2.0)
        assert [r.reason for r in refs] == [ExitReason.shutdown()] * 3

    async def test_SUP07_children_still_running_when_the_shared_timer_expires_are_killed(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, stall=100.0, shutdown=5.0)
        refs = [await dsup.start_child(t) for t in "abc"]
        start = trio.current_time()
        await dsup.stop(timeout=None)
        assert trio.current_time() - start == pytest.approx(5.0)
        assert [r.reason for r in refs] == [ExitReason.killed()] * 3

    async def test_SUP07_intensity_is_counted_across_all_children(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, intensity=1)
        a, b = await dsup.start_child("a"), await dsup.start_child("b")
        a.cast(Crash())
        await a.wait()
        b.cast(Crash())
        assert await dsup.wait() == ExitReason.shutdown()

    async def test_SUP07_a_dynamic_supervisor_is_a_child_of_a_static_one(
        self, trace: Trace
    ) -> None:
        spec = ChildSpec.supervisor(
            "sessions", lambda: DynamicSupervisor(lambda tag: Crashable(tag, trace))
        )
        async with open_supervisor([spec]) as sup:
            [info] = await sup.which_children()
            assert isinstance(info.ref, DynamicSupervisorRef)
            child = await info.ref.start_child("s1")
            assert await child.call("ping") == "pong"
        assert child.reason == ExitReason.shutdown()

    def test_SUP07_bad_template_options_are_rejected(self) -> None:
        with pytest.raises(InvalidChildSpec):
            DynamicSupervisor(Crashable, max_children=-1)
        with pytest.raises(InvalidChildSpec):
            DynamicSupervisor(Crashable, shutdown="never")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="intensity"):
            DynamicSupervisor(Crashable, intensity=-1)
