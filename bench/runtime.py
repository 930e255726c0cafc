"""Runtime benchmarks: the OTP layer and the event bus against bare trio, side by side.

Rows (each ratio is measured against a bare-trio reference in the same run):

* call round-trips/s vs a bare memory-channel ping-pong (target >= 0.40x)
* cast messages/s vs bare memory-channel sends
* restart latency, crash -> replacement ready, vs catching the crash and a bare `nursery.start`
* event-bus fan-out, 1 publisher -> 1,000 subscribers: vs a memory channel per subscriber, and
  with one stalled subscriber vs without (target: the stalled one costs nothing, >= 0.90x)
* subscribers that take their events with `receive_batch()` vs with `async for`, same fan-out,
  end to end (target: the batch costs less, >= 1.0x the rate)
* memory per idle actor (100,000 of them) vs a bare task waiting on a memory channel, each in a
  fresh subprocess (target <= 1.5x)

How the bus rows are measured. They are timed in CPU time of the trio thread
(`time.thread_time`), not wall time: the fan-outs are CPU-bound in that one thread and never
sleep, so CPU time is their wall time minus what other processes (other benchmarks on a
2-core machine) take of the core. The garbage collector runs before each timed stretch and is
off during it, so a collection cannot land in one variant only.

The stalled-subscriber rows need more: even CPU time swings by tens of percent from one 50 ms
stretch to the next when something else shares the machine (caches, the host's sibling
threads), which made whole-run comparisons read anywhere from 0.7x to 1.2x. So the two
fan-outs, one with a subscriber that never reads (full from the start: every publish takes the
overflow path) and one without, stay up side by side in the same trio run and take bursts of
100 events in turn. A pair is one burst to each, back to back, the first one alternating; each
pair gives a ratio (stalled rate / free rate), end to end (publish until every subscriber has
taken the burst) and publisher side (the publish loop alone). A row shows the pair whose ratio
is the median of 101 pairs, and a note under the rows gives the pairs' min, quartiles and max,
so the spread is in sight. A slowdown longer than a pair hits both sides of it alike; a shorter
one spoils a few pairs, which the median ignores. The `receive_batch()` row is measured the same
way, in bursts of 16 (what a session publishes between two yields): its difference to `async
for` is about a microsecond per event, far below what a whole daemon run can resolve
(`bench/daemon`'s row of it swings by +-10% from run to run on this machine).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any

import attrs
import trio
import trio.testing

from bench._common import Row, Table, at_least, at_most, call_in_subprocess, rss_bytes
from streamvisor.actors.sessions._session import _PUBLISH_BUDGET
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
    stall_pairs: int
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
            stall_pairs=101,
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
            stall_pairs=3,
            idle_tasks=1_000,
        )


def main(*, smoke: bool = False) -> Table:
    """Run every runtime row and return the table (printed as it goes)."""
    sizes = Sizes.smoke() if smoke else Sizes.full()
    table = Table.for_run("runtime", smoke=smoke)
    trio.run(_in_process_rows, table, sizes)
    _memory_rows(table, sizes)
    table.note(
        f"rates: best of {sizes.repeats} runs, interleaved with their references (the bus rows in "
        "CPU time; the stalled rows: the median pair, see above); latency: mean over the "
        "restarts of the best run; memory: RSS delta in a fresh process per kind"
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

#: The clock of every bus row: CPU time of this (the trio) thread. The fan-outs are CPU-bound in
#: one thread and never sleep (`wait_all_tasks_blocked` wakes as soon as the consumers are done),
#: so this is their wall time minus what other processes take of the core.
_cpu = time.thread_time


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Collect, then keep the collector off for the block: a full collection with the fan-outs'
    thousands of tasks alive (~0.1 s) must not land in one variant of a comparison only. The
    timed work makes no reference cycles, so nothing piles up meanwhile."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        with _no_gc():
            start = _cpu()
            for first in range(0, events, burst):
                burst_start = _cpu()
                for i in range(first, min(first + burst, events)):
                    for send in sends:
                        send.send_nowait(i)
                publishing += _cpu() - burst_start
                await trio.testing.wait_all_tasks_blocked()
            elapsed = _cpu() - start
        for send in sends:
            send.close()
    assert counts == [events] * subscribers, "a reference subscriber lost events"
    return FanOut(_rate(events, elapsed), _rate(events * subscribers, publishing))


@attrs.define(eq=False)
class _BusFanOut:
    """A bus with its subscribers running, published to in bursts (`_open_bus_fan_out`)."""

    bus: EventBus[int]
    #: Items received by each live subscriber.
    counts: list[int]
    #: The live subscribers take what is buffered with `receive_batch()`, not `async for`.
    batch: bool = False
    #: Items published so far.
    published: int = 0

    @property
    def subscribers(self) -> int:
        """Every subscriber: the live ones counted in `counts`, and the last one (stalled or
        draining, see `_open_bus_fan_out`)."""
        return len(self.counts) + 1

    async def consume(self, index: int, task_status: trio.TaskStatus[None]) -> None:
        counts = self.counts
        async with self.bus.subscribe("bench.fan") as sub:
            task_status.started()
            if self.batch:
                with contextlib.suppress(trio.EndOfChannel):
                    while True:
                        for item in await sub.receive_batch():
                            if not isinstance(item, Missed):
                                counts[index] += 1
            else:
                async for item in sub:
                    if not isinstance(item, Missed):
                        counts[index] += 1

    async def burst(self, size: int) -> tuple[float, float]:
        """Publish `size` items and wait until every subscriber has taken them; return the
        publisher's seconds and the end-to-end seconds (CPU time)."""
        bus, first = self.bus, self.published
        start = _cpu()
        for i in range(first, first + size):
            bus.publish("bench.fan", i)
        published = _cpu()
        await trio.testing.wait_all_tasks_blocked()
        done = _cpu()
        self.published += size
        return published - start, done - start


@contextlib.asynccontextmanager
async def _open_bus_fan_out(
    subscribers: int, *, stalled: bool, batch: bool = False
) -> AsyncIterator[_BusFanOut]:
    """The event bus with `subscribers` subscribers; with `stalled`, one of them never reads and
    is always full; with `batch`, the others read with `receive_batch()`. On leaving, checks
    that no live subscriber lost an item."""
    bus: EventBus[int] = EventBus(default_buffer=1024)
    live = subscribers - 1
    fan = _BusFanOut(bus, [0] * live, batch)
    async with trio.open_nursery() as nursery:
        for index in range(live):
            await nursery.start(fan.consume, index)
        async with bus.subscribe("bench.*") as last:
            if stalled:  # start full, so that every publish takes the overflow path
                bus.publish_many("bench.prefill", range(1024))
            else:
                nursery.start_soon(_drain_forever, last)
            await trio.testing.wait_all_tasks_blocked()
            yield fan
            if stalled:
                dropped = last.statistics().dropped
                assert dropped == fan.published, "the stalled subscriber was not full"
            bus.close()
    assert fan.counts == [fan.published] * live, "a live subscriber lost events"


async def _fan_out_bus(subscribers: int, events: int, burst: int) -> FanOut:
    """The event bus, nobody stalled: the counterpart of `_fan_out_channels`."""
    publishing = elapsed = 0.0
    async with _open_bus_fan_out(subscribers, stalled=False) as fan:
        with _no_gc():
            for first in range(0, events, burst):
                published, done = await fan.burst(min(burst, events - first))
                publishing += published
                elapsed += done
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
        with _no_gc():
            start = _cpu()
            if batch == 1:
                for item in items:
                    bus.publish("bench.batch", item)
            else:
                for first in range(0, events, batch):
                    bus.publish_many("bench.batch", items[first : first + batch])
            elapsed = _cpu() - start
    return _rate(events * subscribers, elapsed)


@attrs.frozen
class Paired:
    """A variant measured against its reference in interleaved pairs; the row shows the pair
    whose ratio is the median, so its ratio is the median of the pairs' ratios."""

    value: float
    reference: float
    #: Every pair's ratio, sorted.
    ratios: tuple[float, ...]

    @classmethod
    def of(cls, pairs: Sequence[tuple[float, float]]) -> Paired:
        """From (value, reference) pairs; an odd number of them has a true median pair."""
        ranked = sorted(pairs, key=lambda pair: pair[0] / pair[1])
        value, reference = ranked[len(ranked) // 2]
        return cls(value, reference, tuple(value / reference for value, reference in ranked))

    def spread(self) -> str:
        """The pairs' ratios: min [first quartile, median, third quartile] max."""
        ratios, last = self.ratios, len(self.ratios) - 1
        quartiles = "/".join(f"{ratios[round(last * q)]:.2f}" for q in (0.25, 0.5, 0.75))
        return f"{ratios[0]:.2f} [{quartiles}] {ratios[-1]:.2f}"


async def _stalled_vs_free(subscribers: int, pairs: int, burst: int) -> tuple[Paired, Paired]:
    """One stalled subscriber vs none: (end to end, publisher side) over `pairs` burst pairs.

    Both fan-outs run side by side in this trio run, one waiting (parked, costing nothing) while
    the other takes a burst. A pair is one burst to each, back to back, in alternating order; its
    ratio is the stalled fan-out's rate over the free one's. A slowdown from outside that lasts
    longer than a pair (~0.1 s) hits both sides of it alike, and the median ignores the pairs
    that one straddled.
    """
    async with (
        _open_bus_fan_out(subscribers, stalled=False) as free,
        _open_bus_fan_out(subscribers, stalled=True) as stalled,
    ):
        return await _side_by_side(stalled, free, pairs, burst)


async def _side_by_side(
    variant: _BusFanOut, reference: _BusFanOut, pairs: int, burst: int
) -> tuple[Paired, Paired]:
    """`pairs` bursts to each fan-out in turn, the first alternating: (end to end, publisher
    side) of the variant against the reference (see `_stalled_vs_free`)."""
    end_to_end: list[tuple[float, float]] = []
    publisher: list[tuple[float, float]] = []
    deliveries = burst * reference.subscribers
    with _no_gc():
        for index in range(pairs):
            if index % 2:
                variant_s, reference_s = await variant.burst(burst), await reference.burst(burst)
            else:
                reference_s, variant_s = await reference.burst(burst), await variant.burst(burst)
            publisher.append((deliveries / variant_s[0], deliveries / reference_s[0]))
            end_to_end.append((burst / variant_s[1], burst / reference_s[1]))
    return Paired.of(end_to_end), Paired.of(publisher)


async def _batch_vs_iteration(subscribers: int, pairs: int, burst: int) -> Paired:
    """Subscribers reading with `receive_batch()` vs `async for`: end to end, paired as the
    stalled rows are."""
    async with (
        _open_bus_fan_out(subscribers, stalled=False) as iterating,
        _open_bus_fan_out(subscribers, stalled=False, batch=True) as batching,
    ):
        end_to_end, _ = await _side_by_side(batching, iterating, pairs, burst)
    return end_to_end


async def _bus_rows(table: Table, sizes: Sizes) -> None:
    subs, events, burst = sizes.subscribers, sizes.events, 100
    runs: dict[str, list[FanOut]] = {"channels": [], "free": []}
    for _ in range(sizes.repeats):  # interleaved, so that a burst of outside load hits both
        runs["channels"].append(await _fan_out_channels(subs, events, burst))
        runs["free"].append(await _fan_out_bus(subs, events, burst))
    channels, free = (
        FanOut(
            max(run.events_per_s for run in runs[key]),
            max(run.publish_deliveries_per_s for run in runs[key]),
        )
        for key in ("channels", "free")
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
    end_to_end, publisher = await _stalled_vs_free(subs, sizes.stall_pairs, burst)
    table.add(
        Row(
            "bus fan-out with 1 of them stalled, end to end",
            end_to_end.value,
            "events/s",
            end_to_end.reference,
            "the same fan-out, nobody stalled",
            at_least(0.90),
        )
    )
    table.add(
        Row(
            "bus publish with 1 of them stalled, publisher side",
            publisher.value,
            "deliv/s",
            publisher.reference,
            "the same publishes, nobody stalled",
            at_least(0.90),
        )
    )
    table.note(
        f"stalled rows: the median of {len(end_to_end.ratios)} pairs of bursts of {burst} events, "
        "one to each fan-out, in CPU time; ratios of the pairs min [quartiles] max: end to end "
        f"{end_to_end.spread()}, publisher side {publisher.spread()}"
    )
    drained = await _batch_vs_iteration(subs, sizes.stall_pairs, _PUBLISH_BUDGET)
    table.add(
        Row(
            "bus subscribers taking receive_batch(), end to end",
            drained.value,
            "events/s",
            drained.reference,
            "the same fan-out, async for",
            at_least(1.0),
        )
    )
    table.note(
        f"receive_batch() row: the median of {len(drained.ratios)} pairs of bursts of "
        f"{_PUBLISH_BUDGET} events (a session's publishes between two yields), in CPU time; "
        f"ratios of the pairs min [quartiles] max: {drained.spread()}"
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
