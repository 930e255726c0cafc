"""What the multi-process cluster tests share: daemon processes against one embedded OpenAI
server, a subscriber on one node's gateway, and the checks every stream must pass."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import httpx_sse
import trio

from streamvisor.cluster import LocalCluster, NodeProcess
from streamvisor.mockapi import MockAPIConfig, serve

from .conftest_nats import delete_stream

#: Every node's lease: a dead node is taken over within about twice this.
TTL = 1.5
#: A stream long enough to outlive a kill and a takeover (400 tokens, 8 ms apart).
LONG = {"mock_scenario": "long:400", "mock_token_delay_ms": "8"}
SHORT = {"mock_scenario": "long:20", "mock_token_delay_ms": "5"}
DURABLE = {"model": "gpt-4o", "input": "go", "metadata": LONG}
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "go"}],
    "metadata": LONG,
}


@asynccontextmanager
async def running_cluster(
    directory: Path,
    dsn: str,
    nats_url: str,
    server_url: str,
    count: int = 3,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[LocalCluster]:
    """``count`` daemon processes (node-1...), stopped and their JetStream stream deleted after;
    ``env``: more settings for every node."""
    cluster = LocalCluster(
        directory,
        postgres_dsn=dsn,
        nats_url=nats_url,
        openai_base_url=server_url,
        lease_ttl=TTL,
        extra_env=env or {},
    )
    try:
        await trio.to_thread.run_sync(cluster.start, count)
        yield cluster
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(cluster.stop)
            await delete_stream(nats_url, "STREAMVISOR")


class Watcher:
    """Everything a node's gateway streams on ``session.**``, by stream."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.statuses: list[dict[str, Any]] = []
        self.changed = trio.Event()

    async def run(self, node: NodeProcess, http: httpx.AsyncClient, ready: trio.Event) -> None:
        async with httpx_sse.aconnect_sse(
            http, "GET", f"{node.url}/events", params={"topic": "session.**"}, headers=node.headers
        ) as source:
            ready.set()
            async for sse in source.aiter_sse():
                if not sse.data:
                    # httpx-sse 0.4 dispatches an empty event for a keepalive comment once an
                    # `id` was seen (the SSE spec dispatches nothing without data): skip it.
                    continue
                data = json.loads(sse.data)
                if sse.event == "background.status":
                    self.statuses.append(data)
                elif "sequence_number" in data and data.get("response_id"):
                    self.events[data["response_id"]].append(data)
                self.changed.set()
                self.changed = trio.Event()

    async def until(self, predicate: Callable[[], object], within: float) -> None:
        with trio.fail_after(within):
            while not predicate():
                await self.changed.wait()

    def ended(self, response_id: str) -> bool:
        """Whether the stream's terminal event arrived."""
        events = self.events[response_id]
        return bool(events and events[-1]["terminal"])


@attrs.define
class Scene:
    """A running cluster, an HTTP client and a watcher on one of its nodes."""

    cluster: LocalCluster
    nodes: list[NodeProcess]
    http: httpx.AsyncClient
    watcher: Watcher

    async def post(self, node: NodeProcess, path: str, body: Any) -> Any:
        """POST through ``node``'s gateway; the JSON answer (it must be a 200)."""
        return await post(self.http, node, path, body)

    async def send(self, node: NodeProcess, path: str, body: Any) -> httpx.Response:
        """POST through ``node``'s gateway; the answer, whatever it is."""
        return await self.http.post(f"{node.url}{path}", headers=node.headers, json=body)


@asynccontextmanager
async def scene(
    directory: Path,
    dsn: str,
    nats_url: str,
    *,
    count: int = 3,
    watch: int = 1,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Scene]:
    """One embedded OpenAI server, ``count`` nodes (``env``: more settings for each), a watcher
    subscribed on node ``watch`` (0-based) before anything starts."""
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(directory, dsn, nats_url, server.url, count, env) as cluster,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        nodes = list(cluster.nodes.values())
        watcher = Watcher()
        ready = trio.Event()
        nursery.start_soon(watcher.run, nodes[watch], http, ready)
        await ready.wait()
        yield Scene(cluster, nodes, http, watcher)
        nursery.cancel_scope.cancel()


async def post(http: httpx.AsyncClient, node: NodeProcess, path: str, body: Any) -> Any:
    response = await http.post(f"{node.url}{path}", headers=node.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["sequence_number"] for e in events if e["type"] != "keepalive"]


def assert_whole(events: list[dict[str, Any]]) -> None:
    """A durable stream as a subscriber must see it: gapless from 0, once each, completed, its
    deltas' text the final text."""
    numbers = seqs(events)
    assert numbers == list(range(len(numbers))), numbers
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["data"]["response"]["output"][0]["content"][0]["text"]
