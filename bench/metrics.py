"""Metrics benchmark: what the daemon's Prometheus metrics add per event, and what a scrape costs.

``python -m bench metrics`` (not part of ``all``: a micro-benchmark, seconds long). Per event the
metrics add exactly two things, both measured here with `timeit` on the code as it runs:

* the OpenAI client's stream counts each event it yields (``EventStream.delivered += 1``): the
  row decodes a recorded-shape Responses stream through a real `EventStream` (in memory, no
  socket) and is its own reference -- the whole per-event cost of the wire layer;
* a session stream times each event's delivery into the latency histogram (``time.time()``, a
  bisect, two additions: the lines inlined in ``_session.py``), against the same decode.

Target: the metrics' share of the decode's per-event cost stays at most 10 %; the absolute
number (budget: well under 0.5 us per event) is printed as the row's value. The last row is one
scrape of a daemon-sized collector (1,000 open bus subscriptions), for scale only.
"""

from __future__ import annotations

import json
import time
import timeit
from bisect import bisect_left
from typing import Any

import httpx
import trio

from bench._common import Row, Table, at_most
from streamvisor._metrics import DaemonMetrics, MetricsCollector
from streamvisor.actors import RegistryView
from streamvisor.actors._histogram import DELIVERY_BUCKETS, Histogram
from streamvisor.openai import (
    ClientSettings,
    EventStream,
    OpenAIClient,
    ResponseAccumulator,
    StreamEvent,
)
from streamvisor.supervisor import EventBus, open_supervisor

_SSE = {"content-type": "text/event-stream"}


def _body(deltas: int) -> bytes:
    """A Responses stream: created, ``deltas`` text deltas, completed (the recorded shape)."""
    response = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    frames = [{"type": "response.created", "sequence_number": 0, "response": response}]
    for n in range(deltas):
        frames.append(
            {
                "type": "response.output_text.delta",
                "sequence_number": n + 1,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": " token",
                "logprobs": [],
            }
        )
    done = {**response, "status": "completed"}
    frames.append({"type": "response.completed", "sequence_number": deltas + 1, "response": done})
    return b"".join(f"event: {f['type']}\ndata: {json.dumps(f)}\n\n".encode() for f in frames)


async def _decode_seconds(body: bytes, events: int, repeats: int) -> float:
    """Best per-event seconds of decoding ``body`` through a real `EventStream`."""
    best = float("inf")
    for _ in range(repeats):
        response = httpx.Response(200, headers=_SSE, content=body)
        stream = EventStream(response, api="responses", accumulator=ResponseAccumulator())
        started = time.perf_counter()
        async for _event in stream:
            pass
        best = min(best, (time.perf_counter() - started) / events)
        assert stream.delivered == events
    return best


def _per_call(statement: Any, number: int, repeats: int) -> float:
    return min(timeit.repeat(statement, number=number, repeat=repeats)) / number


def _delivery_seconds(number: int, repeats: int) -> float:
    """Per-event seconds of the session's inlined delivery timing, less an empty loop's."""
    event = StreamEvent(
        "response.output_text.delta", 1, {}, "resp_1", "s1", "responses", time.time()
    )
    delivery = Histogram(DELIVERY_BUCKETS)
    counts, bounds, clock = delivery.counts, delivery.bounds, time.time

    def timed() -> None:
        delay = clock() - event.received_at
        counts[bisect_left(bounds, delay)] += 1
        delivery.sum += delay

    def empty() -> None:
        pass

    return _per_call(timed, number, repeats) - _per_call(empty, number, repeats)


def _count_seconds(number: int, repeats: int) -> float:
    """Per-event seconds of ``EventStream.delivered += 1``, less an empty call's."""
    response = httpx.Response(200, headers=_SSE, content=b"")
    stream = EventStream(response, api="responses", accumulator=ResponseAccumulator())

    def counted() -> None:
        stream.delivered += 1

    def empty() -> None:
        pass

    return _per_call(counted, number, repeats) - _per_call(empty, number, repeats)


async def _scrape_seconds(subscriptions: int, repeats: int) -> float:
    """Seconds of one scrape of a collector over a bus with ``subscriptions`` open ones."""
    bus = EventBus[Any]()
    settings = ClientSettings(api_key=None, base_url="http://127.0.0.1:9/v1")
    async with OpenAIClient.open(settings) as client, open_supervisor([]) as root:
        metrics = DaemonMetrics(
            MetricsCollector(
                client=client,
                bus=bus,
                delivery=Histogram(DELIVERY_BUCKETS),
                registry_view=RegistryView(),
                root=root,
            )
        )
        subs = [bus.subscribe(f"session.s{n}") for n in range(subscriptions)]
        for sub in subs:
            await sub.__aenter__()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            metrics.exposition()
            best = min(best, time.perf_counter() - started)
        for sub in subs:
            await sub.__aexit__(None, None, None)
    return best


def main(*, smoke: bool = False) -> Table:
    """Run the rows and return the table (printed as it goes)."""
    table = Table.for_run("metrics", smoke=smoke)
    deltas = 200 if smoke else 20_000
    number, repeats = (10_000, 2) if smoke else (1_000_000, 5)
    events = deltas + 2
    decode = trio.run(_decode_seconds, _body(deltas), events, repeats)
    count = _count_seconds(number, repeats)
    delivery = _delivery_seconds(number, repeats)
    reference = "EventStream decode per event (Responses delta)"
    table.add(Row("wire: decode one Responses delta", decode * 1e9, "ns/event"))
    table.add(
        Row(
            "metrics: EventStream.delivered += 1",
            count * 1e9,
            "ns/event",
            decode * 1e9,
            reference,
            at_most(0.1),
        )
    )
    table.add(
        Row(
            "metrics: delivery latency into its histogram",
            delivery * 1e9,
            "ns/event",
            decode * 1e9,
            reference,
            at_most(0.1),
        )
    )
    table.add(
        Row(
            "metrics: both (what an event pays)",
            (count + delivery) * 1e9,
            "ns/event",
            decode * 1e9,
            reference,
            at_most(0.1),
        )
    )
    subscriptions = 100 if smoke else 1_000
    scrape = trio.run(_scrape_seconds, subscriptions, repeats)
    table.add(Row(f"scrape: exposition, {subscriptions:,} open subscriptions", scrape * 1e3, "ms"))
    table.note(
        f"per event: best of {repeats} timeit runs of {number:,} calls, less an empty call's; "
        f"decode: best of {repeats} passes over {events:,} events"
    )
    return table
