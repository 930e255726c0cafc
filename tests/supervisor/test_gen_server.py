"""gen_server semantics (GS-01..07) and the triotp call bugs (§2.1) they guard against."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.supervisor import (
    Actor,
    ActorExited,
    AlreadyStarted,
    Caller,
    CallingSelf,
    CallTimeout,
    ExitReason,
    NoReply,
    Registry,
    StopActor,
    start_actor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Stall, Trace


class Echo(Actor):
    """Replies with what it got; records casts and infos."""

    def __init__(self, trace: Trace | None = None) -> None:
        self.trace = trace or Trace()

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        return request

    async def handle_cast(self, message: Any) -> None:
        self.trace.record("cast", message)

    async def handle_info(self, message: Any) -> None:
        self.trace.record("info", message)


class SlowInit(Actor):
    def __init__(self, trace: Trace) -> None:
        self.trace = trace

    async def init(self) -> None:
        await trio.sleep(1)
        self.trace.record("init done")

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        return "ready"


class Deferred(Actor):
    """Replies to every call from a spawned task after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.replied: list[object] = []

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if request == "ping":
            return "pong"
        self.spawn(self._reply_later, request, caller)
        return NoReply

    async def _reply_later(self, request: object, caller: Caller) -> None:
        await trio.sleep(self.delay)
        caller.reply(("late", request))
        self.replied.append(request)


class TestGS01SynchronousStart:
    async def test_GS01_start_returns_only_after_init_succeeded_and_the_name_is_registered(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """start_actor returns after init completed, with the name already resolvable."""
        registry = Registry()
        ref = await start_actor(nursery, SlowInit(trace), name="slow", registry=registry)
        assert trace.events == [("init done",)]
        assert registry.whereis("slow") is ref
        assert await ref.call("x") == "ready"

    async def test_GS01_init_raising_makes_the_start_raise_that_error_and_frees_the_name(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        """The exception from init comes out of the start, unwrapped."""
        registry = Registry()
        error = ValueError("bad config")
        with pytest.raises(ValueError, match="bad config") as info:
            await start_actor(
                nursery, Crashable("c", trace, init_error=error), name="c", registry=registry
            )
        assert info.value is error
        assert registry.whereis("c") is None

    async def test_GS01_a_taken_name_raises_AlreadyStarted_with_the_existing_ref(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        """Starting under a registered name fails and names the holder, without running init."""
        registry = Registry()
        first = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        with pytest.raises(AlreadyStarted) as info:
            await start_actor(nursery, Crashable("b", trace), name="a", registry=registry)
        assert info.value.ref is first
        assert trace.of("init") == [("init", "a")]


class TestGS02Call:
    async def test_GS02_call_returns_the_reply(self, nursery: trio.Nursery) -> None:
        ref = await start_actor(nursery, Echo())
        assert await ref.call({"x": 1}) == {"x": 1}

    async def test_GS02_call_to_an_actor_that_already_exited_raises_ActorExited(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        """A dead callee is reported with its exit reason, at once."""
        ref = await start_actor(nursery, Crashable("c", trace))
        await ref.stop(ExitReason.shutdown("bye"))
        with pytest.raises(ActorExited) as info:
            await ref.call("ping")
        assert info.value.reason == ExitReason.shutdown("bye")

    async def test_GS02_callee_crashing_during_the_call_raises_ActorExited_instead_of_hanging(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        """triotp bug 2: a raising handle_call must not leave a timeout-less caller blocked."""
        ref = await start_actor(nursery, Crashable("c", trace))
        error = KeyError("k")
        with trio.fail_after(5), pytest.raises(ActorExited) as info:
            await ref.call(Crash(error), timeout=None)
        assert info.value.reason == ExitReason.crashed(error)
        assert info.value.reason.exception is error

    async def test_GS02_callers_queued_behind_a_crash_all_get_ActorExited(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Calls still in the mailbox when the callee dies fail with its reason."""
        ref = await start_actor(nursery, Crashable("c", trace))
        outcomes: list[str] = []

        async def ping() -> None:
            try:
                await ref.call("ping", timeout=None)
                outcomes.append("pong")
            except ActorExited as exc:
                outcomes.append(exc.reason.kind)

        with trio.fail_after(5):
            async with trio.open_nursery() as callers:
                ref.cast(Stall(1))
                ref.cast(Crash())
                for _ in range(3):
                    callers.start_soon(ping)
        assert outcomes == ["crashed"] * 3

    async def test_GS02_a_call_that_gets_no_reply_raises_CallTimeout_a_TimeoutError(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        start = trio.current_time()
        with pytest.raises(TimeoutError) as info:
            await ref.call(Stall(), timeout=2.5)
        assert isinstance(info.value, CallTimeout)
        assert trio.current_time() - start == pytest.approx(2.5)

    async def test_GS02_call_waits_for_mailbox_space_under_its_own_timeout(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Backpressure: a call to a full mailbox blocks, and its timeout covers that wait."""

        class Tiny(Crashable):
            mailbox_size = 1

        ref = await start_actor(nursery, Tiny("t", trace))
        ref.cast(Stall(10))  # being handled
        ref.cast("ping")  # fills the mailbox
        await trio.testing.wait_all_tasks_blocked()
        assert ref.statistics().used == 1
        with pytest.raises(CallTimeout):
            await ref.call("ping", timeout=1)
        assert ref.statistics().waiting_senders == 0

    async def test_GS02_an_actor_calling_itself_gets_CallingSelf(
        self, nursery: trio.Nursery
    ) -> None:
        class Narcissus(Actor):
            async def handle_call(self, request: Any, caller: Caller) -> Any:
                try:
                    await self.ref.call("again")
                except CallingSelf:
                    return "refused"
                return "deadlock"

        ref = await start_actor(nursery, Narcissus())
        assert await ref.call("x") == "refused"


class TestGS03LateReplies:
    async def test_GS03_a_reply_after_the_caller_timed_out_is_dropped_and_the_callee_lives_on(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        """triotp bug 1: the late reply must not crash the server."""
        actor = Deferred(delay=2)
        ref = await start_actor(nursery, actor)
        with pytest.raises(CallTimeout):
            await ref.call("work", timeout=1)
        await trio.sleep(2)
        assert actor.replied == ["work"]  # the work was still done
        assert ref.alive
        assert await ref.call("ping") == "pong"


class TestGS04Cast:
    async def test_GS04_cast_goes_to_handle_cast_and_send_to_handle_info_in_order(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Echo(trace))
        ref.cast(1)
        ref.send(2)
        ref.cast(3)
        await ref.call("sync")
        assert trace.events == [("cast", 1), ("info", 2), ("cast", 3)]

    async def test_GS04_cast_and_send_to_a_dead_actor_never_raise(
        self, nursery: trio.Nursery
    ) -> None:
        ref = await start_actor(nursery, Echo())
        await ref.stop()
        ref.cast("lost")
        ref.send("lost")
        assert ref.statistics().dropped == 0

    async def test_GS04_cast_to_a_full_mailbox_is_dropped_counted_and_logged(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class Small(Crashable):
            mailbox_size = 2

        ref = await start_actor(nursery, Small("s", trace))
        ref.cast(Stall(1))
        await trio.testing.wait_all_tasks_blocked()
        with capture_logs() as logs:
            for _ in range(5):
                ref.cast("ping")
        stats = ref.statistics()
        assert (stats.used, stats.size, stats.dropped) == (2, 2, 3)
        assert [e["dropped"] for e in logs if e["event"] == "mailbox_overflow"] == [1, 2]
        assert all(e["log_level"] == "warning" for e in logs)


class TestGS05Replies:
    async def test_GS05_NoReply_lets_another_task_reply_later(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
    ) -> None:
        ref = await start_actor(nursery, Deferred(delay=3))
        start = trio.current_time()
        assert await ref.call("job") == ("late", "job")
        assert trio.current_time() - start == pytest.approx(3)

    async def test_GS05_StopActor_with_reply_answers_the_caller_then_stops(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        assert await ref.call(ExitWith(ExitReason.shutdown("done"))) == "ok"
        assert await ref.wait() == ExitReason.shutdown("done")
        assert trace.of("terminate") == [("terminate", "c", ExitReason.shutdown("done"))]

    async def test_GS05_StopActor_without_reply_fails_the_caller_with_the_stop_reason(
        self, nursery: trio.Nursery
    ) -> None:
        class Quitter(Actor):
            async def handle_call(self, request: Any, caller: Caller) -> Any:
                raise StopActor(ExitReason.normal())

        ref = await start_actor(nursery, Quitter())
        with pytest.raises(ActorExited) as info:
            await ref.call("bye")
        assert info.value.reason == ExitReason.normal()


class TestGS06Crashes:
    async def test_GS06_a_callback_exception_crashes_the_actor_and_terminate_runs(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        error = RuntimeError("boom")
        with capture_logs() as logs:
            ref.cast(Crash(error))
            reason = await ref.wait()
        assert reason == ExitReason.crashed(error)
        assert trace.of("terminate") == [("terminate", "c", reason)]
        crash = [e for e in logs if e["event"] == "actor_crashed"]
        assert crash[0]["log_level"] == "error"
        assert crash[0]["actor"] == ref.label

    async def test_GS06_terminate_is_bounded_by_terminate_timeout(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class Stubborn(Crashable):
            terminate_timeout = 2.0

        ref = await start_actor(nursery, Stubborn("s", trace, stall_terminate=100))
        start = trio.current_time()
        ref.cast(Crash())
        await ref.wait()
        assert trio.current_time() - start == pytest.approx(2.0)

    async def test_GS06_a_raising_spawned_task_crashes_its_actor_and_terminate_runs(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        error = OSError("link down")

        class Owner(Crashable):
            async def init(self) -> None:
                self.spawn(self.fail_later)

            async def fail_later(self) -> None:
                await trio.sleep(1)
                raise error

        ref = await start_actor(nursery, Owner("o", trace))
        assert await ref.wait() == ExitReason.crashed(error)
        assert trace.of("terminate") == [("terminate", "o", ExitReason.crashed(error))]

    async def test_GS06_spawned_tasks_are_cancelled_when_the_actor_stops(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class Owner(Crashable):
            async def handle_call(self, request: Any, caller: Caller) -> Any:
                self.spawn(self.forever)
                return "spawned"

            async def forever(self) -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    self.trace.record("spawned task ended")

        ref = await start_actor(nursery, Owner("o", trace))
        assert await ref.call("go") == "spawned"
        assert await ref.call("go") == "spawned"
        assert ref._nursery is not None
        await ref.stop()
        assert trace.count("spawned task ended") == 2

    async def test_GS06_an_actor_that_never_spawns_opens_no_nursery(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        """An idle actor is one task: its nursery is opened lazily, on first spawn."""
        ref = await start_actor(nursery, Crashable("c", trace))
        assert await ref.call("ping") == "pong"
        assert ref._nursery is None


class TestGS07Stop:
    async def test_GS07_stop_runs_terminate_and_returns_the_exit_reason(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        ref.cast("ping")  # queued messages are handled before the stop
        assert await ref.stop(ExitReason.normal()) == ExitReason.normal()
        assert trace.of("terminate") == [("terminate", "c", ExitReason.normal())]
        assert not ref.alive

    async def test_GS07_stop_of_a_dead_actor_raises_ActorExited(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        await ref.stop()
        with pytest.raises(ActorExited):
            await ref.stop()

    async def test_GS07_a_stop_that_times_out_raises_CallTimeout(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        ref.cast(Stall(60))
        with pytest.raises(CallTimeout):
            await ref.stop(timeout=1)
        assert ref.alive
        assert await ref.wait() == ExitReason.shutdown()

    async def test_GS07_an_abnormal_stop_reason_is_logged_as_an_error(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        ref = await start_actor(nursery, Crashable("c", trace))
        with capture_logs() as logs:
            await ref.stop(ExitReason.crashed(RuntimeError("operator said so")))
        assert [e["log_level"] for e in logs if e["event"] == "actor_crashed"] == ["error"]


class TestMailboxStatistics:
    async def test_statistics_report_used_size_peak_and_dropped(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class Box(Crashable):
            mailbox_size = 4

        ref = await start_actor(nursery, Box("b", trace))
        ref.cast(Stall(1))
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            ref.cast("ping")
        await trio.sleep(2)
        stats = ref.statistics()
        assert (stats.used, stats.size, stats.peak, stats.dropped) == (0, 4, 3, 0)


class TestMailboxThroughput:
    async def test_a_burst_is_served_in_batches_between_checkpoints(
        self, nursery: trio.Nursery
    ) -> None:
        """640 queued casts take about 640 / 64 passes of the scheduler, not 640 (one per
        message), and the actor still yields between batches: a task that counts passes runs
        while the burst is served."""
        done = trio.Event()
        handled: list[int] = []
        passes_seen: list[int] = []
        passes = 0

        class Counter(Actor):
            mailbox_size = 1024

            async def handle_cast(self, message: Any) -> None:
                handled.append(message)
                passes_seen.append(passes)
                if len(handled) == 640:
                    done.set()

        ref = await start_actor(nursery, Counter())
        for i in range(640):
            ref.cast(i)

        async def count_passes() -> None:
            nonlocal passes
            while not done.is_set():
                passes += 1
                await trio.lowlevel.checkpoint()

        nursery.start_soon(count_passes)
        with trio.fail_after(5):
            await done.wait()
        assert handled == list(range(640))
        assert 5 <= len(set(passes_seen)) <= 40

    async def test_a_kill_stops_a_batch_between_two_messages(self, nursery: trio.Nursery) -> None:
        """A kill is honoured before the next queued message, as at ``receive``: a killed actor
        handles nothing more, even with a burst still queued."""
        handled: list[int] = []

        class Victim(Actor):
            mailbox_size = 1024

            async def handle_cast(self, message: Any) -> None:
                handled.append(message)
                if message == 3:
                    self.ref.kill()

        ref = await start_actor(nursery, Victim())
        for i in range(200):
            ref.cast(i)
        reason = await ref.wait()
        assert reason.kind == "killed"
        assert handled == [0, 1, 2, 3]
