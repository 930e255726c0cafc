"""``python -m bench.cluster_bridge [--rate N] [--seconds S] [--smoke]``: what the NATS bridge
costs per event, and how long an event takes from one node to another.

Two `NatsBridge` instances (two nodes) in this process, one throwaway nats-server. Node A
publishes at a steady rate (``--rate`` events/s, in ticks of 5 ms); node B subscribes to
everything and records, per event, publish -> delivery into B's trio task (the payload carries
the publish time). Then a saturation row: A publishes as fast as the backlog allows.

CPU is read for this process only (nats-server is another process, not counted), over the
measured stretch: ``process`` is every thread (trio's, and both bridges' asyncio threads),
``trio`` is the trio thread alone (`time.thread_time`): the share the daemon's own core pays.
Both are divided by the events delivered, so one "event" is one publish on A plus its delivery
on B. The last row is `NatsBridge.publish` alone: a synchronous append, no thread hop.
"""

from __future__ import annotations

import argparse
import gc
import struct
import tempfile
import time
from pathlib import Path

import trio

from bench._common import quiet_logs
from streamvisor.cluster import NatsBridge, NatsServer

__all__ = ["main"]

_STAMP = struct.Struct("<q")
_PAD = b"x" * 120  # a small event, about a delta's size


async def _paced(url: str, rate: int, seconds: float, stream: str) -> dict[str, float]:
    """A publishes ``rate`` events/s for ``seconds``; B receives them all."""
    total = int(rate * seconds)
    tick = 0.005
    per_tick = max(1, round(rate * tick))
    latencies: list[float] = []
    async with (
        NatsBridge.open(url, node_id="a", stream=stream, subject_prefix=stream) as a,
        NatsBridge.open(url, node_id="b", stream=stream, subject_prefix=stream) as b,
        b.subscribe("bench.**") as events,
    ):
        done = trio.Event()

        async def consume() -> None:
            async for message in events:
                latencies.append(time.perf_counter_ns() - _STAMP.unpack_from(message.payload)[0])
                if len(latencies) == total:
                    done.set()
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            gc.collect()
            cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
            start = trio.current_time()
            sent = 0
            while sent < total:
                for _ in range(min(per_tick, total - sent)):
                    a.publish(
                        f"bench.s{sent % 16}.delta",
                        _STAMP.pack(time.perf_counter_ns()) + _PAD,
                    )
                    sent += 1
                await trio.sleep_until(start + (sent // per_tick) * tick)
            with trio.fail_after(30):
                await done.wait()
            cpu, thread = time.process_time() - cpu, time.thread_time() - thread
            wall = time.perf_counter() - wall
    latencies.sort()
    return {
        "events": total,
        "events_per_s": total / wall,
        "us_process": cpu / total * 1e6,
        "us_trio": thread / total * 1e6,
        "p50_ms": latencies[len(latencies) // 2] / 1e6,
        "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
        "max_ms": latencies[-1] / 1e6,
    }


async def _saturated(url: str, total: int, stream: str) -> dict[str, float]:
    """A publishes ``total`` events as fast as the bridge takes them; B receives them all."""
    async with (
        NatsBridge.open(url, node_id="a", stream=stream, subject_prefix=stream) as a,
        NatsBridge.open(url, node_id="b", stream=stream, subject_prefix=stream) as b,
        b.subscribe("bench.**") as events,
    ):
        received = 0

        async def consume() -> None:
            nonlocal received
            async for _ in events:
                received += 1
                if received == total:
                    return

        gc.collect()
        cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            payload = _STAMP.pack(0) + _PAD
            for n in range(total):
                a.publish(f"bench.s{n % 16}.delta", payload)
                if n % 1000 == 999:
                    await trio.sleep(0)  # let deliveries in, as a daemon would
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        wall = time.perf_counter() - wall
    return {
        "events": total,
        "events_per_s": total / wall,
        "us_process": cpu / total * 1e6,
        "us_trio": thread / total * 1e6,
    }


async def _publish_call(url: str, total: int, stream: str) -> float:
    """CPU of one `NatsBridge.publish` call in the trio thread (what the daemon's core pays per
    event on the publishing side), over ``total`` calls in a row."""
    async with NatsBridge.open(
        url, node_id="a", stream=stream, subject_prefix=stream, max_backlog=total + 1
    ) as a:
        payload = _STAMP.pack(0) + _PAD
        topics = [f"bench.s{n}.delta" for n in range(16)]
        gc.collect()
        thread = time.thread_time()
        for n in range(total):
            a.publish(topics[n % 16], payload)
        thread = time.thread_time() - thread
        await a.flush()
    return thread / total * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_bridge", description=__doc__)
    parser.add_argument("--rate", type=int, default=10_000, help="paced events/s (10,000)")
    parser.add_argument("--seconds", type=float, default=5.0, help="paced duration (5 s)")
    parser.add_argument("--burst", type=int, default=50_000, help="saturation events (50,000)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: prove it runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.seconds, args.burst = 1000, 0.2, 1000
    quiet_logs()
    with tempfile.TemporaryDirectory() as directory, NatsServer(Path(directory)) as server:
        paced = trio.run(_paced, server.url, args.rate, args.seconds, "BENCH_PACED")
        burst = trio.run(_saturated, server.url, args.burst, "BENCH_BURST")
        call = trio.run(_publish_call, server.url, args.burst, "BENCH_CALL")
    print("== bench.cluster_bridge: two bridges, one nats-server, 136-byte events ==")
    print(
        f"paced     {paced['events']:>7.0f} events at {args.rate}/s: "
        f"{paced['events_per_s']:>9,.0f} events/s  "
        f"{paced['us_process']:6.1f} us CPU/event (process)  "
        f"{paced['us_trio']:5.1f} us (trio thread)  "
        f"latency p50 {paced['p50_ms']:.2f} ms  p99 {paced['p99_ms']:.2f} ms  "
        f"max {paced['max_ms']:.2f} ms"
    )
    print(
        f"saturated {burst['events']:>7.0f} events:          "
        f"{burst['events_per_s']:>9,.0f} events/s  "
        f"{burst['us_process']:6.1f} us CPU/event (process)  "
        f"{burst['us_trio']:5.1f} us (trio thread)"
    )
    print(f"publish() alone: {call:.2f} us CPU per call in the trio thread")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
