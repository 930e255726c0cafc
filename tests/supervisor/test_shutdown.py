"""Ordered shutdown with per-child timeouts (SD-01..06)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.supervisor import ChildSpec, ExitReason, Restart, Shutdown, open_supervisor
from streamvisor.testing import Crashable, Trace

from .test_strategies import ref_of, workers


def stalling(trace: Trace, id: str, shutdown: Shutdown, stall: float) -> ChildSpec:
    return ChildSpec.worker(
        id, lambda: Crashable(id, trace, stall_terminate=stall), shutdown=shutdown
    )


class TestSD01Order:
    async def test_SD01_children_stop_one_at_a_time_in_reverse_start_order(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        specs = [stalling(trace, i, 5.0, 1.0) for i in ["a", "b", "c"]]
        async with open_supervisor(specs):
            start = trio.current_time()
        assert [e[1] for e in trace.of("terminate")] == ["c", "b", "a"]
        assert trio.current_time() - start == pytest.approx(3.0)  # sequential, not parallel


class TestSD02BrutalKill:
    async def test_SD02_brutal_kill_cancels_at_once_without_terminate(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor([stalling(trace, "a", "brutal_kill", 0)]) as sup:
            ref = await ref_of(sup, "a")
            start = trio.current_time()
            with capture_logs() as logs:
                await sup.terminate_child("a")
        assert ref.reason == ExitReason.killed()
        assert trio.current_time() == start
        assert trace.of("terminate") == []
        assert "shutdown_error" not in [e["event"] for e in logs]


class TestSD03Timeout:
    async def test_SD03_a_child_that_stops_in_time_exits_with_shutdown_after_terminate(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor([stalling(trace, "a", 5.0, 2.0)]) as sup:
            ref = await ref_of(sup, "a")
            with capture_logs() as logs:
                await sup.terminate_child("a")
        assert ref.reason == ExitReason.shutdown()
        assert trace.of("terminate") == [("terminate", "a", ExitReason.shutdown())]
        assert "shutdown_error" not in [e["event"] for e in logs]

    async def test_SD03_a_child_still_running_after_the_timeout_is_killed_and_reported(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor([stalling(trace, "a", 2.0, 60.0)]) as sup:
            ref = await ref_of(sup, "a")
            start = trio.current_time()
            with capture_logs() as logs:
                await sup.terminate_child("a")
        assert trio.current_time() - start == pytest.approx(2.0)
        assert ref.reason == ExitReason.killed()
        [error] = [e for e in logs if e["event"] == "shutdown_error"]
        assert error["log_level"] == "error"
        assert error["reason"] == ExitReason.killed()


class TestSD04Infinity:
    async def test_SD04_infinity_waits_as_long_as_the_child_needs(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor([stalling(trace, "a", "infinity", 3600.0)]) as sup:
            ref = await ref_of(sup, "a")
            start = trio.current_time()
        assert trio.current_time() - start == pytest.approx(3600.0)
        assert ref.reason == ExitReason.shutdown()

    def test_SD04_infinity_is_the_default_for_supervisor_children(self) -> None:
        from streamvisor.supervisor import Supervisor

        assert ChildSpec.supervisor("s", Supervisor).shutdown == "infinity"


class TestSD05Reasons:
    async def test_SD05_a_child_whose_terminate_crashes_is_reported_as_a_shutdown_error(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class BadTerminate(Crashable):
            async def terminate(self, reason: ExitReason) -> None:
                raise RuntimeError("cleanup failed")

        async with open_supervisor(
            [ChildSpec.worker("a", lambda: BadTerminate("a", trace))]
        ) as sup:
            ref = await ref_of(sup, "a")
            with capture_logs() as logs:
                await sup.terminate_child("a")
        assert ref.reason is not None
        assert ref.reason.kind == "crashed"
        assert [e["child"] for e in logs if e["event"] == "shutdown_error"] == ["a"]

    async def test_SD05_supervisor_caused_exits_are_not_restarts(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """The supervisor knows which exits it caused: terminate_child is not a crash."""
        async with open_supervisor(workers(trace, ["a"]), intensity=0) as sup:
            await sup.terminate_child("a")
            await trio.sleep(1)
            assert sup.alive
            assert trace.count("init", "a") == 1


class TestSD06Terminate:
    async def test_SD06_terminate_runs_on_graceful_shutdown(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"], restart=Restart.TRANSIENT)):
            pass
        assert trace.of("terminate") == [("terminate", "a", ExitReason.shutdown())]

    async def test_SD06_terminate_never_runs_on_kill(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor([stalling(trace, "a", "brutal_kill", 0)]):
            pass
        assert trace.of("terminate") == []

    async def test_SD06_cancelling_the_enclosing_scope_kills_the_tree_without_terminate(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Kill maps to cancellation: no graceful phase (documented trio limit)."""
        with trio.move_on_after(1):
            async with open_supervisor(workers(trace, ["a", "b"])) as sup:
                a = await ref_of(sup, "a")
                await trio.sleep_forever()
        assert a.reason == ExitReason.killed()
        assert trace.of("terminate") == []
