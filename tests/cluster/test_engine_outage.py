"""PostgreSQL or NATS away for a while, under two daemon processes: each node serves on what it
can, refuses new durable work with a typed error (503 on the gateway), and recovers by itself
once the engine is back; a stream running through a NATS outage reaches the other node whole."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from streamvisor.cluster import NatsServer, PostgresServer
from streamvisor.mockapi import MockAPIConfig, serve

from .test_failover import LONG, TTL, Watcher, post, running_cluster, seqs

pytestmark = pytest.mark.slow

SHORT = {"mock_scenario": "long:20", "mock_token_delay_ms": "5"}


@pytest.fixture
def own_nats() -> Iterator[NatsServer]:
    """A NATS server of this test's own, to stop and start again."""
    with (
        tempfile.TemporaryDirectory(prefix="sv-nats-") as directory,
        NatsServer(Path(directory)) as server,
    ):
        yield server


async def durable_until_accepted(
    http: httpx.AsyncClient, node: object, within: float
) -> dict[str, object]:
    """Start a durable stream on ``node``, retrying while it answers 503; its ticket."""
    from streamvisor.cluster import NodeProcess

    assert isinstance(node, NodeProcess)
    with trio.fail_after(within):
        while True:
            answer = await http.post(
                f"{node.url}/sessions/later/responses",
                headers=node.headers,
                json={"model": "gpt-4o", "input": "go", "metadata": SHORT},
            )
            if answer.status_code == 200:
                ticket: dict[str, object] = answer.json()
                return ticket
            assert answer.status_code == 503, answer.text
            await trio.sleep(0.1)


async def test_postgresql_away_then_back(
    pg_dsn: str, pg_stoppable: PostgresServer, nats_url: str, tmp_path: Path
) -> None:
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(tmp_path, pg_dsn, nats_url, server.url, count=2) as cluster,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        a, b = cluster.nodes.values()
        watcher = Watcher()
        ready = trio.Event()
        nursery.start_soon(watcher.run, b, http, ready)
        await ready.wait()
        chat = await post(
            http,
            a,
            "/sessions/sc/chat",
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "go"}],
                "metadata": LONG,
            },
        )
        await trio.to_thread.run_sync(pg_stoppable.stop)
        # A new session cannot be placed without the directory; the running one cannot start
        # durable work without the registry. Both say why.
        unplaced = await http.post(
            f"{a.url}/sessions/sd/responses",
            headers=a.headers,
            json={"model": "gpt-4o", "input": "go", "metadata": SHORT},
        )
        refused = await http.post(
            f"{a.url}/sessions/sc/responses",
            headers=a.headers,
            json={"model": "gpt-4o", "input": "go", "metadata": SHORT},
        )
        cid = chat["response_id"]
        await watcher.until(lambda: bool(watcher.events[cid][-1]["terminal"]), 20)
        await trio.to_thread.run_sync(pg_stoppable.start)
        later = await durable_until_accepted(http, a, 6 * TTL + 20)
        lid = str(later["response_id"])
        await watcher.until(
            lambda: bool(watcher.events[lid] and watcher.events[lid][-1]["terminal"]), 20
        )
        nursery.cancel_scope.cancel()
    assert unplaced.status_code == 503, unplaced.text
    assert unplaced.json()["error"]["type"] == "EngineUnavailable"
    assert "PostgreSQL" in unplaced.json()["error"]["message"]
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "TrackingFailed"
    chat_events = watcher.events[cid]
    assert chat_events[-1]["type"] == "response.completed"  # served on through the outage
    assert seqs(chat_events) == list(range(len(chat_events)))
    assert watcher.events[lid][-1]["type"] == "response.completed"


async def test_nats_away_then_back(pg_dsn: str, own_nats: NatsServer, tmp_path: Path) -> None:
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(tmp_path, pg_dsn, own_nats.url, server.url, count=2) as cluster,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        a, b = cluster.nodes.values()
        watcher = Watcher()
        ready = trio.Event()
        nursery.start_soon(watcher.run, b, http, ready)
        await ready.wait()
        durable = await post(
            http, a, "/sessions/sn/responses", {"model": "gpt-4o", "input": "go", "metadata": LONG}
        )
        rid = durable["response_id"]
        await watcher.until(lambda: len(watcher.events[rid]) >= 20, 20)
        await trio.to_thread.run_sync(own_nats.stop)
        with trio.fail_after(10):
            while True:  # the node notices; new durable work is refused meanwhile
                refused = await http.post(
                    f"{a.url}/sessions/sd/responses",
                    headers=a.headers,
                    json={"model": "gpt-4o", "input": "go", "metadata": SHORT},
                )
                if refused.status_code != 200:
                    break
                await trio.sleep(0.1)
        await trio.sleep(1.0)  # the stream goes on on A meanwhile
        await trio.to_thread.run_sync(own_nats.start)
        await watcher.until(lambda: bool(watcher.events[rid][-1]["terminal"]), 30)
        later = await durable_until_accepted(http, a, 20)
        nursery.cancel_scope.cancel()
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "TrackingFailed"
    events = watcher.events[rid]
    assert seqs(events) == list(range(len(seqs(events))))
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["data"]["response"]["output"][0]["content"][0]["text"]
    assert later["response_id"]
