"""Links, monitors and trap_exits (LM-01..03)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    ActorExited,
    ActorRef,
    Caller,
    Down,
    Exit,
    ExitReason,
    Monitor,
    start_actor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Trace

from .test_strategies import ref_of, workers


class Watcher(Crashable):
    """Links or monitors on command and records what arrives in handle_info."""

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, tuple) and request[0] == "link":
            self.link(request[1])
            return "linked"
        if isinstance(request, tuple) and request[0] == "unlink":
            self.unlink(request[1])
            return "unlinked"
        if isinstance(request, tuple) and request[0] == "monitor":
            self.monitor_ref = self.monitor(request[1])
            return "monitoring"
        if request == "busy_then_demonitor":
            await trio.sleep(2)
            self.monitor_ref.demonitor()
            return "demonitored"
        return await super().handle_call(request, caller)

    async def handle_info(self, message: Any) -> None:
        self.trace.record("info", self.tag, message)

    monitor_ref: Monitor


class Trapper(Watcher):
    trap_exits = True


async def pair(
    nursery: trio.Nursery, trace: Trace, watcher: type[Watcher] = Watcher
) -> tuple[ActorRef, ActorRef]:
    w = await start_actor(nursery, watcher("w", trace))
    t = await start_actor(nursery, Crashable("t", trace))
    return w, t


class TestLM01Links:
    async def test_LM01_an_abnormal_exit_kills_a_linked_non_trapping_actor_with_that_reason(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("link", t))
        error = RuntimeError("peer failed")
        t.cast(Crash(error))
        assert await w.wait() == ExitReason.crashed(error)
        assert trace.of("terminate", "w") == []  # an exit signal is not a graceful stop

    async def test_LM01_links_are_bidirectional(self, nursery: trio.Nursery, trace: Trace) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("link", t))
        w.cast(Crash())
        assert (await t.wait()).kind == "crashed"

    async def test_LM01_a_normal_exit_signal_is_ignored(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("link", t))
        t.cast(ExitWith(ExitReason.normal()))
        await t.wait()
        await trio.sleep(1)
        assert w.alive

    async def test_LM01_shutdown_is_not_normal_for_a_link_and_kills_the_peer(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("link", t))
        await t.stop(ExitReason.shutdown())
        assert await w.wait() == ExitReason.shutdown()

    async def test_LM01_a_trapping_actor_gets_Exit_messages_instead_of_dying(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace, Trapper)
        await w.call(("link", t))
        t.cast(Crash())
        reason = await t.wait()
        await trace.wait_count("info", "w", 1)
        assert trace.of("info", "w") == [("info", "w", Exit(t, reason))]
        assert w.alive

    async def test_LM01_kill_cannot_be_trapped_by_the_killed_actor(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        w = await start_actor(nursery, Trapper("w", trace))
        w.kill()
        assert await w.wait() == ExitReason.killed()

    async def test_LM01_unlink_removes_the_link_both_ways(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("link", t))
        await w.call(("unlink", t))
        t.cast(Crash())
        await t.wait()
        await trio.sleep(1)
        assert w.alive

    async def test_LM01_linking_to_a_dead_actor_gives_noproc(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        trapper = await start_actor(nursery, Trapper("trap", trace))
        plain = await start_actor(nursery, Watcher("plain", trace))
        dead = await start_actor(nursery, Crashable("dead", trace))
        await dead.stop()
        await trapper.call(("link", dead))
        await trace.wait_count("info", "trap", 1)
        assert trace.of("info", "trap") == [("info", "trap", Exit(dead, ExitReason.noproc()))]
        with pytest.raises(ActorExited):
            await plain.call(("link", dead))
        assert (await plain.wait()).kind == "crashed"


class TestLM02Monitors:
    async def test_LM02_a_plain_task_monitor_gets_Down_with_the_reason(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        t = await start_actor(nursery, Crashable("t", trace))
        monitor = t.monitor()
        t.cast(ExitWith(ExitReason.shutdown("bye")))
        assert await monitor.wait() == Down(t, ExitReason.shutdown("bye"))

    async def test_LM02_monitoring_a_dead_actor_gives_an_immediate_noproc_Down(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        t = await start_actor(nursery, Crashable("t", trace))
        await t.stop()
        assert t.monitor().down == Down(t, ExitReason.noproc())

    async def test_LM02_n_monitors_give_n_downs(self, nursery: trio.Nursery, trace: Trace) -> None:
        t = await start_actor(nursery, Crashable("t", trace))
        monitors = [t.monitor() for _ in range(3)]
        t.cast(Crash())
        downs = [await m.wait() for m in monitors]
        assert len(downs) == 3
        assert all(d.ref is t and d.reason.kind == "crashed" for d in downs)

    async def test_LM02_an_actor_monitor_delivers_Down_to_handle_info_and_never_kills(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("monitor", t))
        t.cast(Crash())
        reason = await t.wait()
        await trace.wait_count("info", "w", 1)
        assert trace.of("info", "w") == [("info", "w", Down(t, reason))]
        assert w.alive

    async def test_LM02_demonitor_removes_the_monitor_and_flushes_a_queued_Down(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        w, t = await pair(nursery, trace)
        await w.call(("monitor", t))
        async with trio.open_nursery() as inner:
            inner.start_soon(w.call, "busy_then_demonitor")
            await trio.sleep(1)
            t.cast(Crash())  # its Down is queued while the watcher is busy
        assert await w.call("ping") == "pong"
        assert trace.of("info", "w") == []

    async def test_LM02_a_plain_demonitor_before_the_exit_means_no_Down(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        t = await start_actor(nursery, Crashable("t", trace))
        monitor = t.monitor()
        monitor.demonitor()
        await t.stop()
        assert monitor.down is not None
        assert monitor.down.reason == ExitReason.noproc()


class TestLM03Supervisors:
    async def test_LM03_a_killed_supervisor_takes_its_children_with_it(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        from streamvisor.supervisor import start_supervisor

        sup = await start_supervisor(nursery, workers(trace, ["a", "b"]))
        a, b = await ref_of(sup, "a"), await ref_of(sup, "b")
        sup.kill()
        assert await sup.wait() == ExitReason.killed()
        assert (a.reason, b.reason) == (ExitReason.killed(), ExitReason.killed())

    async def test_LM03_a_child_crash_reaches_the_supervisor_as_a_message_not_an_exception(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Child errors never reach the supervisor's nursery: siblings are untouched."""
        from streamvisor.supervisor import start_supervisor

        sup = await start_supervisor(nursery, workers(trace, ["a", "b"]), intensity=5)
        b = await ref_of(sup, "b")
        (await ref_of(sup, "a")).cast(Crash(ValueError("x")))
        await trace.wait_count("init", "a", 2)
        assert b.alive
        assert sup.alive
