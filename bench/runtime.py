"""Runtime benchmarks: the OTP layer and the event bus against bare trio, side by side.

Rows (each ratio is measured against a bare-trio reference in the same run):

* call round-trips/s vs a bare memory-channel ping-pong (target >= 0.40x)
* cast messages/s vs bare memory-channel sends
* restart latency, crash -> replacement ready, vs catching the crash and a bare `nursery.start`
* event-bus fan-out, 1 publisher -> 1,000 subscribers: vs a memory channel per subscriber, and
  with one stalled subscriber vs without (target: the stalled one costs nothing, >= 0.90x)
* memory per idle actor (100,000 of them) vs a bare task waiting on a memory channel, each in a
  fresh subprocess (target <= 1.5x)
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio
import trio.testing

from bench._common import Row, Table, at_least, at_most, call_in_subprocess, rss_bytes
from streamvisor.supervisor import Actor, Caller, ChildSpec, open_supervisor, start_actor
from streamvisor.supervisor._bus import EventBus, Missed, Subscription

__all__ = ["idle_actors", "idle_bare_tasks", "main"]

#: Casts per burst: within an actor's default mailbox (100), so none is dropped.
_CAST_BURST = 100


@attrs.frozen
class Sizes:
    repeats: int
    round_trips: int
    casts: int
    restarts: int
    subscribers: int
    events: int
    idle_tasks: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(
            repeats=3,
            round_trips=20_000,
            casts=100_000,
            restarts=2_000,
            subscribers=1_000,
            events=400,
            idle_tasks=100_000,
        )

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            repeats=1,
            round_trips=200,
            casts=1_000,
            restarts=20,
            subscribers=20,
            events=50,
            idle_tasks=1_000,
        )


def main(*, smoke: bool = False) -> Table:
    """Run every runtime row and return the table (printed as it goes)."""
    sizes = Sizes.smoke() if smoke else Sizes.full()
    table = Table.for_run("runtime", smoke=smoke)
    trio.run(_in_process_rows, table, sizes)
    _memory_rows(table, sizes)
    table.note(
        f"rates: best of {sizes.repeats} runs, interleaved with their references; latency: "
        "mean over the restarts of the best run; memory: RSS delta in a fresh process per kind"
    )
    return table


async def _in_process_rows(table: Table, sizes: Sizes) -> None:
    await _actor_rows(table, sizes)
    await _bus_rows(table, sizes)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------------------------------------
# Bare-trio references for call, cast and restart


async def _bare_ping_pong(round_trips: int) -> float:
    """Reference for call: a request channel and a reply channel between two tasks. Per second."""
    request_send, request_receive = trio.open_memory_channel[int](64)
    reply_send, reply_receive = trio.open_memory_channel[int](64)

    async def server() -> None:
        async for request in request_receive:
            await reply_send.send(request)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        start = time.perf_counter()
        for i in range(round_trips):
            await request_send.send(i)
            assert await reply_receive.receive() == i
        elapsed = time.perf_counter() - start
        request_send.close()
    return _rate(round_trips, elapsed)


async def _bare_sends(messages: int, burst: int) -> float:
    """Reference for cast: `send_nowait` into a channel a task consumes. Messages per second."""
    send, receive = trio.open_memory_channel[int](burst)
    handled = 0

    async def consumer() -> None:
        nonlocal handled
        async for _ in receive:
            handled += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        start = time.perf_counter()
        for first in range(0, messages, burst):
            for i in range(first, min(first + burst, messages)):
                send.send_nowait(i)
            await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        send.close()
    assert handled == messages
    return _rate(messages, elapsed)


class _Crash(Exception):
    pass


async def _bare_restarts(restarts: int) -> float:
    """Reference for restart: catch a task's crash, then `nursery.start` a new one. Seconds each."""
    total = 0.0

    async def child(crash: trio.Event, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await crash.wait()
        raise _Crash

    crashed_at = 0.0
    for _ in range(restarts + 1):
        try:
            async with trio.open_nursery() as nursery:
                crash = trio.Event()
                await nursery.start(child, crash)
                if crashed_at:
                    total += time.perf_counter() - crashed_at
                crashed_at = time.perf_counter()
                crash.set()
        except* _Crash:
            pass
    return total / restarts


# ---------------------------------------------------------------------------------------------
# The runtime's actors, measured against the bare references above


class _Echo(Actor):
    """Replies to a call with the request; counts casts."""

    def __init__(self) -> None:
        self.casts = 0

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if request == "casts":
            return self.casts
        return request

    async def handle_cast(self, message: Any) -> None:
        self.casts += 1


async def _actor_calls(round_trips: int) -> float:
    async with trio.open_nursery() as nursery:
        ref = await start_actor(nursery, _Echo())
        start = time.perf_counter()
        for i in range(round_trips):
            assert await ref.call(i, timeout=None) == i
        elapsed = time.perf_counter() - start
        await ref.stop()
    return _rate(round_trips, elapsed)


async def _actor_casts(messages: int, burst: int) -> float:
    async with trio.open_nursery() as nursery:
        ref = await start_actor(nursery, _Echo())
        start = time.perf_counter()
        for first in range(0, messages, burst):
            for i in range(first, min(first + burst, messages)):
                ref.cast(i)
            await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        handled = await ref.call("casts", timeout=None)
        assert handled == messages, f"{messages - handled} casts dropped"
        await ref.stop()
    return _rate(messages, elapsed)


class _Crashy(Actor):
    """Reports when it is ready; crashes on the cast "crash"."""

    def __init__(self, ready: Callable[[], None]) -> None:
        self._ready = ready

    async def init(self) -> None:
        self._ready()

    async def handle_cast(self, message: Any) -> None:
        raise _Crash


async def _actor_restarts(restarts: int) -> float:
    """Crash a permanent child and time until its replacement's init has run. Seconds each."""
    ready_times: list[float] = []
    ready = trio.Event()

    def on_ready() -> None:
        ready_times.append(time.perf_counter())
        ready.set()

    spec = ChildSpec.worker("crashy", lambda: _Crashy(on_ready))
    total = 0.0
    async with open_supervisor([spec], intensity=restarts + 1, period=3600) as sup:
        for _ in range(restarts):
            [child] = await sup.which_children()
            assert child.ref is not None, "the child is not running"
            ready = trio.Event()
            crashed_at = time.perf_counter()
            child.ref.cast("crash")
            await ready.wait()
            total += ready_times[-1] - crashed_at
    return total / restarts


async def _actor_rows(table: Table, sizes: Sizes) -> None:
    calls = ping_pong = 0.0
    casts = sends = 0.0
    for _ in range(sizes.repeats):  # interleaved, so that outside load hits both sides alike
        calls = max(calls, await _actor_calls(sizes.round_trips))
        ping_pong = max(ping_pong, await _bare_ping_pong(sizes.round_trips))
        casts = max(casts, await _actor_casts(sizes.casts, _CAST_BURST))
        sends = max(sends, await _bare_sends(sizes.casts, _CAST_BURST))
    table.add(
        Row(
            "actor call round-trips",
            calls,
            "calls/s",
            ping_pong,
            "memory-channel ping-pong",
            at_least(0.40),
        )
    )
    table.add(Row("actor casts handled", casts, "msgs/s", sends, "memory-channel sends"))
    restart = bare_restart = float("inf")
    for _ in range(sizes.repeats):
        restart = min(restart, await _actor_restarts(sizes.restarts))
        bare_restart = min(bare_restart, await _bare_restarts(sizes.restarts))
    table.add(
        Row(
            "restart latency, crash -> replacement ready",
            restart * 1e6,
            "us",
            bare_restart * 1e6,
            "catch the crash + nursery.start",
        )
    )


# ---------------------------------------------------------------------------------------------
# Event bus fan-out


@attrs.frozen
class FanOut:
    """One fan-out run: end-to-end events/s, and deliveries/s counting only the publisher's time."""

    events_per_s: float
    publish_deliveries_per_s: float


async def _fan_out_channels(subscribers: int, events: int, burst: int) -> FanOut:
    """Reference: one trio memory channel per subscriber, `send_nowait` to each."""
    sends: list[trio.MemorySendChannel[int]] = []
    counts = [0] * subscribers

    async def consume(index: int, receive: trio.MemoryReceiveChannel[int]) -> None:
        async for _ in receive:
            counts[index] += 1

    publishing = 0.0
    async with trio.open_nursery() as nursery:
        for index in range(subscribers):
            send, receive = trio.open_memory_channel[int](1024)
            sends.append(send)
            nursery.start_soon(consume, index, receive)
        await trio.testing.wait_all_tasks_blocked()
        start = time.perf_counter()
        for first in range(0, events, burst):
            burst_start = time.perf_counter()
            for i in range(first, min(first + burst, events)):
                for send in sends:
                    send.send_nowait(i)
            publishing += time.perf_counter() - burst_start
            await trio.testing.wait_all_tasks_blocked()
        elapsed = time.perf_counter() - start
        for send in sends:
            send.close()
    assert counts == [events] * subscribers, "a reference subscriber lost events"
    return FanOut(_rate(events, elapsed), _rate(events * subscribers, publishing))


async def _fan_out_bus(subscribers: int, events: int, burst: int, *, stalled: bool) -> FanOut:
    """The event bus; with `stalled`, one of the subscribers never reads and is always full."""
    bus: EventBus[int] = EventBus(default_buffer=1024)
    live = subscribers - 1
    counts = [0] * live

    async def consume(index: int, task_status: trio.TaskStatus[None]) -> None:
        async with bus.subscribe("bench.fan") as sub:
            task_status.started()
            async for item in sub:
                if not isinstance(item, Missed):
                    counts[index] += 1

    publishing = 0.0
    async with trio.open_nursery() as nursery:
        for index in range(live):
            await nursery.start(consume, index)
        async with bus.subscribe("bench.*") as last:
            if stalled:  # start full, so that every publish takes the overflow path
                bus.publish_many("bench.prefill", range(1024))
            else:
                nursery.start_soon(_drain_forever, last)
            await trio.testing.wait_all_tasks_blocked()
            start = time.perf_counter()
            for first in range(0, events, burst):
                burst_start = time.perf_counter()
                for i in range(first, min(first + burst, events)):
                    bus.publish("bench.fan", i)
                publishing += time.perf_counter() - burst_start
                await trio.testing.wait_all_tasks_blocked()
            elapsed = time.perf_counter() - start
            if stalled:
                assert last.statistics().dropped == events, "the stalled subscriber was not full"
            bus.close()
    assert counts == [events] * live, "a live subscriber lost events"
    return FanOut(_rate(events, elapsed), _rate(events * subscribers, publishing))


async def _drain_forever(sub: Subscription[int]) -> None:
    async for _ in sub:
        pass


async def _publish_side(subscribers: int, events: int, batch: int) -> float:
    """Publisher-side deliveries/s to subscribers that read nothing yet (buffers never full)."""
    bus: EventBus[int] = EventBus(default_buffer=events)
    items = list(range(events))
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(subscribers):
            await stack.enter_async_context(bus.subscribe("bench.batch"))
        start = time.perf_counter()
        if batch == 1:
            for item in items:
                bus.publish("bench.batch", item)
        else:
            for first in range(0, events, batch):
                bus.publish_many("bench.batch", items[first : first + batch])
        elapsed = time.perf_counter() - start
    return _rate(events * subscribers, elapsed)


async def _bus_rows(table: Table, sizes: Sizes) -> None:
    subs, events, burst = sizes.subscribers, sizes.events, 100
    runs: dict[str, list[FanOut]] = {"channels": [], "free": [], "stalled": []}
    for _ in range(sizes.repeats):  # interleaved, so that a burst of outside load hits all three
        runs["channels"].append(await _fan_out_channels(subs, events, burst))
        runs["free"].append(await _fan_out_bus(subs, events, burst, stalled=False))
        runs["stalled"].append(await _fan_out_bus(subs, events, burst, stalled=True))
    channels, free, stalled = (
        FanOut(
            max(run.events_per_s for run in runs[key]),
            max(run.publish_deliveries_per_s for run in runs[key]),
        )
        for key in ("channels", "free", "stalled")
    )
    table.add(
        Row(
            f"bus fan-out 1 -> {subs:,} subscribers, end to end",
            free.events_per_s,
            "events/s",
            channels.events_per_s,
            "a memory channel per subscriber",
        )
    )
    table.add(
        Row(
            f"bus publish to {subs:,} subscribers, publisher side",
            free.publish_deliveries_per_s,
            "deliv/s",
            channels.publish_deliveries_per_s,
            "send_nowait on a channel per subscriber",
        )
    )
    table.add(
        Row(
            "bus fan-out with 1 of them stalled, end to end",
            stalled.events_per_s,
            "events/s",
            free.events_per_s,
            "the same fan-out, nobody stalled",
            at_least(0.90),
        )
    )
    table.add(
        Row(
            "bus publish with 1 of them stalled, publisher side",
            stalled.publish_deliveries_per_s,
            "deliv/s",
            free.publish_deliveries_per_s,
            "the same publishes, nobody stalled",
            at_least(0.90),
        )
    )
    single, batched = 0.0, 0.0
    for _ in range(sizes.repeats):
        single = max(single, await _publish_side(subs, events, 1))
        batched = max(batched, await _publish_side(subs, events, 16))
    table.add(
        Row(
            f"bus publish_many, batches of 16, {subs:,} subscribers",
            batched,
            "deliv/s",
            single,
            "publish, one item at a time",
        )
    )


# ---------------------------------------------------------------------------------------------
# Memory per idle task, each kind in a fresh subprocess


def _measure_idle(spawn: Callable[[trio.Nursery, int], Awaitable[Any]], n: int) -> float:
    """Bytes of RSS per idle task: spawn `n`, let them park, compare RSS with the baseline."""
    result: list[float] = []

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await spawn(nursery, 64)  # warm up allocator pools and code paths
            await trio.testing.wait_all_tasks_blocked()
            gc.collect()
            before = rss_bytes()
            await spawn(nursery, n)
            await trio.testing.wait_all_tasks_blocked()
            gc.collect()
            result.append((rss_bytes() - before) / n)
            nursery.cancel_scope.cancel()

    trio.run(run)
    return result[0]


def idle_bare_tasks(n: int) -> float:
    """Subprocess entry: bytes per bare trio task parked on its own memory channel."""
    keep: list[trio.MemorySendChannel[object]] = []

    async def idle(receive: trio.MemoryReceiveChannel[object]) -> None:
        async for _ in receive:
            pass

    async def spawn(nursery: trio.Nursery, count: int) -> None:
        for _ in range(count):
            send, receive = trio.open_memory_channel[object](64)
            keep.append(send)
            nursery.start_soon(idle, receive)

    return _measure_idle(spawn, n)


class _Idle(Actor):
    """An actor with nothing to do: parked on its empty mailbox."""


def idle_actors(n: int) -> float:
    """Subprocess entry: bytes per idle actor started with `start_actor`."""

    async def spawn(nursery: trio.Nursery, count: int) -> None:
        for _ in range(count):
            await start_actor(nursery, _Idle())

    return _measure_idle(spawn, n)


def _memory_rows(table: Table, sizes: Sizes) -> None:
    n = sizes.idle_tasks
    bare = call_in_subprocess("bench.runtime:idle_bare_tasks", n, core=0)
    actor = call_in_subprocess("bench.runtime:idle_actors", n, core=0)
    table.add(
        Row(
            f"memory per idle actor ({n:,} of them)",
            actor,
            "bytes",
            bare,
            "a bare task waiting on a channel",
            at_most(1.5),
        )
    )
