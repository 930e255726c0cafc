"""Looking inside the daemon and its embedded server from the test's own thread, and at the bus
from outside (the gateway's ``/events``)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import trio

from streamvisor.mockapi import Fault, RecordedRequest
from streamvisor.openai import StreamEvent
from streamvisor.testing import EventRecorder, GatewayThread


def inject(running: GatewayThread, fault: Fault, method: str, path: str, times: int = 1) -> None:
    """Make the next ``times`` upstream requests matching ``method`` and ``path`` fail."""
    running.run_sync(lambda: running.mockapi.inject(fault, method=method, path=path, times=times))


def mark(running: GatewayThread) -> int:
    """A bookmark in the embedded server's request log (see `seen_since`)."""
    return int(running.run_sync(lambda: len(running.mockapi.requests)))


def seen_since(running: GatewayThread, bookmark: int) -> list[RecordedRequest]:
    """The requests the embedded server received after ``bookmark``."""
    return list(running.run_sync(lambda: running.mockapi.requests[bookmark:]))


def resumes_of(requests: Sequence[RecordedRequest], response_id: str) -> list[int]:
    """The ``starting_after`` of every streamed resume of ``response_id``, in order."""
    return [
        int(r.query["starting_after"])
        for r in requests
        if r.method == "GET"
        and r.path == f"/v1/responses/{response_id}"
        and "starting_after" in r.query
    ]


def creates(requests: Sequence[RecordedRequest], path: str = "/v1/responses") -> int:
    """How many of ``requests`` were POSTs to ``path``."""
    return sum(1 for r in requests if r.method == "POST" and r.path == path)


class BusWatch:
    """What the daemon's bus published on a topic while the watch was open."""

    def __init__(self, running: GatewayThread, recorder: EventRecorder) -> None:
        self._running, self._recorder = running, recorder

    def events(self, response_id: str, timeout: float = 10.0) -> list[StreamEvent]:
        """The events of ``response_id``, once its terminal event was published."""
        self._running.run(self._recorder.wait_terminal, response_id, timeout)
        return self._recorder.events(response_id=response_id)

    def all(self) -> list[Any]:
        """Everything published so far, without waiting."""
        return list(self._running.run_sync(lambda: self._recorder.items))


@contextlib.contextmanager
def watching(running: GatewayThread, topic: str) -> Iterator[BusWatch]:
    """Subscribe to ``topic`` on the daemon's bus for the block (subscribed on entry)."""
    opened = threading.Event()
    held: dict[str, Any] = {}

    async def hold() -> None:
        held["stop"] = stop = trio.Event()
        async with EventRecorder.open(running.daemon, topic) as recorder:
            held["recorder"] = recorder
            opened.set()
            await stop.wait()

    holder = threading.Thread(target=running.run, args=(hold,), name=f"watch {topic}")
    holder.start()
    try:
        if not opened.wait(10):
            raise AssertionError(f"could not subscribe to {topic}")
        yield BusWatch(running, held["recorder"])
    finally:
        if "stop" in held:
            running.run_sync(held["stop"].set)
        holder.join(10)


@contextlib.contextmanager
def listening(running: GatewayThread, topic: str) -> Iterator[list[dict[str, Any]]]:
    """Read ``GET /events?topic=...`` from the gateway for the block (subscribed on entry) and
    collect each event's JSON until the first terminal one; the list fills as they come."""
    received: list[dict[str, Any]] = []
    subscribed, finished = threading.Event(), threading.Event()

    def read() -> None:
        with (
            httpx.Client(timeout=10) as http,
            http.stream(
                "GET",
                f"{running.url}/events",
                params={"topic": topic},
                headers={"authorization": f"Bearer {running.token}"},
            ) as response,
        ):
            for line in response.iter_lines():
                if line.startswith(": subscribed"):
                    subscribed.set()
                elif line.startswith("data: "):
                    received.append(json.loads(line[len("data: ") :]))
                    if received[-1].get("terminal"):
                        finished.set()
                        return

    reader = threading.Thread(target=read, name=f"/events {topic}")
    reader.start()
    try:
        if not subscribed.wait(10):
            raise AssertionError(f"GET /events?topic={topic} did not subscribe")
        yield received
        if not finished.wait(10):
            raise AssertionError(f"no terminal event on {topic} within 10 s")
    finally:
        reader.join(10)
