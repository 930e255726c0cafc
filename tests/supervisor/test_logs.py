"""The structured log events the runtime promises (start, exit, restart, give-up, shutdown)."""

from __future__ import annotations

import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.supervisor import ExitReason, open_supervisor, start_supervisor
from streamvisor.testing import Crash, Trace

from .test_strategies import ref_of, workers


class TestLogEvents:
    async def test_a_crash_and_restart_log_terminated_then_restarted_with_names_and_reason(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        with capture_logs() as logs:
            async with open_supervisor(workers(trace, ["a"]), name="root") as sup:
                (await ref_of(sup, "a")).cast(Crash(ValueError("bad")))
                await trace.wait_count("init", "a", 2)
        events = [(e["event"], e.get("supervisor"), e.get("child")) for e in logs]
        assert events.index(("child_started", "root", "a")) < events.index(
            ("child_terminated", "root", "a")
        )
        assert events.index(("child_terminated", "root", "a")) < events.index(
            ("child_restarted", "root", "a")
        )
        [terminated] = [e for e in logs if e["event"] == "child_terminated"]
        assert terminated["reason"] == ExitReason.crashed(ValueError())
        [crashed] = [e for e in logs if e["event"] == "actor_crashed"]
        assert (crashed["actor"], crashed["log_level"]) == ("a", "error")
        [stopped] = [e for e in logs if e["event"] == "supervisor_stopped"]
        assert (stopped["supervisor"], stopped["reason"]) == ("root", ExitReason.shutdown())

    async def test_a_normal_shutdown_logs_no_errors(self, trace: Trace) -> None:
        with capture_logs() as logs:
            async with open_supervisor(workers(trace, ["a", "b"])):
                pass
        assert [e for e in logs if e["log_level"] == "error"] == []
        assert [e["child"] for e in logs if e["event"] == "child_shutdown"] == ["b", "a"]

    async def test_a_give_up_is_logged_once_with_the_supervisor_name(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, workers(trace, ["a"]), intensity=0, name="sub")
        with capture_logs() as logs:
            (await ref_of(sup, "a")).cast(Crash())
            await sup.wait()
        give_ups = [e for e in logs if e["event"] == "reached_max_restart_intensity"]
        assert [(e["supervisor"], e["child"], e["intensity"]) for e in give_ups] == [
            ("sub", "a", 0)
        ]
