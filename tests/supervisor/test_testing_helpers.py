"""streamvisor.testing: the helpers users get for their own tests."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from streamvisor.supervisor import ExitReason, start_actor
from streamvisor.testing import Crash, Crashable, ExitWith, Recorder, Stall, Trace, quiesce


class TestTrace:
    async def test_wait_for_wakes_when_the_condition_becomes_true(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        trace = Trace()

        async def later() -> None:
            await trio.sleep(2)
            trace.record("tick", "x")

        nursery.start_soon(later)
        await trace.wait_count("tick", "x", 1, timeout=5)
        assert trio.current_time() == pytest.approx(2)

    async def test_wait_for_raises_TooSlowError_instead_of_hanging(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        with pytest.raises(trio.TooSlowError):
            await Trace().wait_for(lambda events: bool(events), timeout=1)

    def test_of_and_count_filter_by_kind_and_tag(self) -> None:
        trace = Trace()
        trace.record("init", "a")
        trace.record("init", "b")
        trace.record("terminate", "a", ExitReason.normal())
        assert trace.of("init") == [("init", "a"), ("init", "b")]
        assert trace.count("init", "a") == 1


class TestActors:
    async def test_Recorder_records_calls_casts_and_infos_in_order(
        self, nursery: trio.Nursery
    ) -> None:
        trace = Trace()
        ref = await start_actor(nursery, Recorder(trace, "r", reply=42))
        ref.cast("c")
        ref.send("i")
        assert await ref.call("q") == 42
        assert trace.events == [("cast", "r", "c"), ("info", "r", "i"), ("call", "r", "q")]

    async def test_Crashable_obeys_crash_exit_and_stall_commands(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        trace = Trace()
        a = await start_actor(nursery, Crashable("a", trace))
        b = await start_actor(nursery, Crashable("b", trace))
        assert await a.call(Stall(3)) == "stalled"
        error = KeyError("k")
        a.cast(Crash(error))
        assert await a.wait() == ExitReason.crashed(error)
        assert await b.call(ExitWith(ExitReason.shutdown("x"))) == "ok"
        assert await b.wait() == ExitReason.shutdown("x")
        assert trace.of("terminate") == [
            ("terminate", "a", ExitReason.crashed(error)),
            ("terminate", "b", ExitReason.shutdown("x")),
        ]

    async def test_quiesce_returns_once_every_task_is_blocked(self, nursery: trio.Nursery) -> None:
        trace = Trace()
        ref = await start_actor(nursery, Recorder(trace))
        ref.cast(1)
        await quiesce()
        assert trace.events == [("cast", "recorder", 1)]
