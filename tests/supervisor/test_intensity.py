"""Restart intensity, escalation and failed restarts (INT-01..04)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.supervisor import (
    ActorExited,
    ChildSpec,
    ExitReason,
    Restart,
    Supervisor,
    start_supervisor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Trace

from .test_strategies import ref_of, workers


def failing_restarts(trace: Trace, id: str, failures: int | None) -> ChildSpec:
    """A child whose first start succeeds and whose next ``failures`` starts (None: all) fail."""

    def factory() -> Crashable:
        attempt = trace.count("init", id)
        fails = attempt >= 1 and (failures is None or attempt <= failures)
        return Crashable(id, trace, init_error=OSError(f"attempt {attempt}") if fails else None)

    return ChildSpec.worker(id, factory)


class TestINT01Counting:
    async def test_INT01_restarts_are_counted_per_supervisor_not_per_child(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """triotp bug 6: three children crashing once each exceed intensity=2 together."""
        sup = await start_supervisor(nursery, workers(trace, ["a", "b", "c"]), intensity=2)
        for id in ["a", "b", "c"]:
            ref = await ref_of(sup, id)
            ref.cast(Crash())
            await ref.wait()
        assert await sup.wait() == ExitReason.shutdown()
        assert trace.count("init") == 3 + 2

    async def test_INT01_restarts_older_than_the_period_are_forgotten(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, workers(trace, ["a"]), intensity=1, period=5)
        for n in range(2, 5):
            (await ref_of(sup, "a")).cast(Crash())
            await trace.wait_count("init", "a", n)
            await trio.sleep(5.5)
        assert sup.alive

    async def test_INT01_two_restarts_inside_the_period_exceed_intensity_1(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, workers(trace, ["a"]), intensity=1, period=5)
        (await ref_of(sup, "a")).cast(Crash())
        await trace.wait_count("init", "a", 2)
        await trio.sleep(4.9)
        (await ref_of(sup, "a")).cast(Crash())
        assert await sup.wait() == ExitReason.shutdown()

    async def test_INT01_intensity_0_gives_up_on_the_first_restart(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, workers(trace, ["a"]), intensity=0)
        (await ref_of(sup, "a")).cast(Crash())
        assert await sup.wait() == ExitReason.shutdown()
        assert trace.count("init", "a") == 1


class TestINT02Exceeded:
    async def test_INT02_exceeding_intensity_stops_all_children_then_the_supervisor(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, workers(trace, ["a", "b", "c"]), intensity=0)
        with capture_logs() as logs:
            (await ref_of(sup, "b")).cast(Crash())
            assert await sup.wait() == ExitReason.shutdown()
        assert [(e[1], e[2]) for e in trace.of("terminate")] == [
            ("b", ExitReason.crashed(RuntimeError())),
            ("c", ExitReason.shutdown()),
            ("a", ExitReason.shutdown()),
        ]
        give_up = [e for e in logs if e["event"] == "reached_max_restart_intensity"]
        assert len(give_up) == 1
        assert give_up[0]["log_level"] == "error"
        assert give_up[0]["supervisor"] == "supervisor"
        assert give_up[0]["reason"] == ExitReason.shutdown()
        events = [e["event"] for e in logs]
        assert events.index("reached_max_restart_intensity") < events.index("supervisor_stopped")

    async def test_INT02_a_permanent_child_exiting_normally_also_escalates(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """triotp bug 7: a normal give-up must not leave a silently shrunken supervisor."""
        sup = await start_supervisor(nursery, workers(trace, ["a"]), intensity=1)
        for _ in range(2):
            ref = await ref_of(sup, "a")
            ref.cast(ExitWith(ExitReason.normal()))
            await ref.wait()
        assert await sup.wait() == ExitReason.shutdown()

    async def test_INT02_open_supervisor_raises_ActorExited_when_its_supervisor_gives_up(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        from streamvisor.supervisor import open_supervisor

        async def crash_and_wait_forever() -> None:
            async with open_supervisor(workers(trace, ["a"]), intensity=0) as sup:
                (await ref_of(sup, "a")).cast(Crash())
                await trio.sleep_forever()

        with trio.fail_after(10), pytest.raises(ActorExited) as info:
            await crash_and_wait_forever()
        assert info.value.reason == ExitReason.shutdown()


def sub_supervisor(trace: Trace, restart: Restart) -> ChildSpec:
    return ChildSpec.supervisor(
        "sub",
        lambda: Supervisor(workers(trace, ["leaf"]), intensity=0),
        restart=restart,
    )


async def crash_leaf(top: object, trace: Trace) -> None:
    from streamvisor.supervisor import SupervisorRef

    assert isinstance(top, SupervisorRef)
    sub = await ref_of(top, "sub")
    assert isinstance(sub, SupervisorRef)
    (await ref_of(sub, "leaf")).cast(Crash())
    await sub.wait()


class TestINT03Escalation:
    async def test_INT03_a_transient_sub_supervisor_giving_up_is_a_normal_exit_not_restarted(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        top = await start_supervisor(
            nursery, [sub_supervisor(trace, Restart.TRANSIENT)], intensity=0
        )
        with capture_logs() as logs:
            await crash_leaf(top, trace)
            await trio.sleep(1)
        assert top.alive
        [info] = await top.which_children()
        assert info.ref is None
        assert not [e for e in logs if e["event"] == "child_terminated" and e["child"] == "sub"]

    async def test_INT03_a_permanent_sub_supervisor_is_restarted_and_counts_to_the_parent(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        top = await start_supervisor(
            nursery, [sub_supervisor(trace, Restart.PERMANENT)], intensity=1
        )
        await crash_leaf(top, trace)
        await trace.wait_count("init", "leaf", 2)  # the sub-supervisor came back with its leaf
        assert top.alive
        await crash_leaf(top, trace)  # the parent's second restart within 5 s
        assert await top.wait() == ExitReason.shutdown()
        assert trace.count("init", "leaf") == 2


class TestINT04FailedRestarts:
    async def test_INT04_a_failed_restart_is_retried_until_it_succeeds(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, [failing_restarts(trace, "w", 2)], intensity=10)
        (await ref_of(sup, "w")).cast(Crash())
        await trace.wait_count("init", "w", 4)
        assert await (await ref_of(sup, "w")).call("ping") == "pong"

    async def test_INT04_other_requests_are_served_between_restart_attempts(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class SlowFail(Crashable):
            async def init(self) -> None:
                await trio.sleep(1)
                await super().init()

        def factory() -> Crashable:
            attempt = trace.count("init", "w")
            error = OSError("down") if 1 <= attempt <= 3 else None
            return SlowFail("w", trace, init_error=error)

        sup = await start_supervisor(nursery, [ChildSpec.worker("w", factory)], intensity=10)
        (await ref_of(sup, "w")).cast(Crash())
        seen: list[bool] = []
        with trio.fail_after(60):
            while trace.count("init", "w") < 5:
                [info] = await sup.which_children()
                seen.append(info.restarting)
                await trio.sleep(0.5)
        assert True in seen  # a request answered while the child was "restarting"
        await trace.wait_count("init", "w", 5)
        assert (await sup.which_children())[0].restarting is False

    async def test_INT04_a_child_that_keeps_failing_to_start_exceeds_the_intensity(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, [failing_restarts(trace, "w", None)], intensity=3)
        with capture_logs() as logs:
            (await ref_of(sup, "w")).cast(Crash())
            assert await sup.wait() == ExitReason.shutdown()
        assert trace.count("init", "w") == 1 + 3  # the first start, then 3 failed attempts
        assert [e["event"] for e in logs].count("child_restart_failed") == 3
        assert "reached_max_restart_intensity" in [e["event"] for e in logs]
