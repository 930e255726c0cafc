"""PostgreSQL or NATS away for a while, under two daemon processes: each node serves on what it
can, refuses new durable work with a typed error (503 on the gateway), and recovers by itself
once the engine is back; a stream running through a NATS outage reaches the other node whole."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from streamvisor.cluster import NatsServer, NodeProcess, PostgresServer

from ._processes import CHAT, DURABLE, SHORT, TTL, Scene, assert_whole, scene, seqs

pytestmark = pytest.mark.slow

BRIEF = {"model": "gpt-4o", "input": "go", "metadata": SHORT}


@pytest.fixture
def own_nats() -> Iterator[NatsServer]:
    """A NATS server of this test's own, to stop and start again."""
    with (
        tempfile.TemporaryDirectory(prefix="sv-nats-") as directory,
        NatsServer(Path(directory)) as server,
    ):
        yield server


async def accepted_after_refusals(s: Scene, node: NodeProcess, within: float) -> dict[str, Any]:
    """Start a durable stream on ``node``, retrying while it answers 503; its ticket."""
    with trio.fail_after(within):
        while True:
            answer = await s.send(node, "/sessions/later/responses", BRIEF)
            if answer.status_code == 200:
                ticket: dict[str, Any] = answer.json()
                return ticket
            assert answer.status_code == 503, answer.text
            await trio.sleep(0.1)


async def test_postgresql_away_then_back(
    pg_dsn: str, pg_stoppable: PostgresServer, nats_url: str, tmp_path: Path
) -> None:
    async with scene(tmp_path, pg_dsn, nats_url, count=2) as s:
        a = s.nodes[0]
        cid = (await s.post(a, "/sessions/sc/chat", CHAT))["response_id"]
        await trio.to_thread.run_sync(pg_stoppable.stop)
        # A new session cannot be placed without the directory; the running one cannot start
        # durable work without the registry. Both say why.
        unplaced = await s.send(a, "/sessions/sd/responses", BRIEF)
        refused = await s.send(a, "/sessions/sc/responses", BRIEF)
        await s.watcher.until(lambda: s.watcher.ended(cid), 20)
        await trio.to_thread.run_sync(pg_stoppable.start)
        lid = (await accepted_after_refusals(s, a, 6 * TTL + 20))["response_id"]
        await s.watcher.until(lambda: s.watcher.ended(lid), 20)
    assert unplaced.status_code == 503, unplaced.text
    assert unplaced.json()["error"]["type"] == "EngineUnavailable"
    assert "PostgreSQL" in unplaced.json()["error"]["message"]
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "TrackingFailed"
    chat_events = s.watcher.events[cid]
    assert chat_events[-1]["type"] == "response.completed"  # served on through the outage
    assert seqs(chat_events) == list(range(len(chat_events)))
    assert s.watcher.events[lid][-1]["type"] == "response.completed"


async def test_nats_away_then_back(pg_dsn: str, own_nats: NatsServer, tmp_path: Path) -> None:
    async with scene(tmp_path, pg_dsn, own_nats.url, count=2) as s:
        a = s.nodes[0]
        rid = (await s.post(a, "/sessions/sn/responses", DURABLE))["response_id"]
        await s.watcher.until(lambda: len(s.watcher.events[rid]) >= 20, 20)
        await trio.to_thread.run_sync(own_nats.stop)
        with trio.fail_after(10):
            while True:  # the node notices; new durable work is refused meanwhile
                refused = await s.send(a, "/sessions/sd/responses", BRIEF)
                if refused.status_code != 200:
                    break
                await trio.sleep(0.1)
        await trio.sleep(1.0)  # the stream goes on on A meanwhile
        await trio.to_thread.run_sync(own_nats.start)
        await s.watcher.until(lambda: s.watcher.ended(rid), 30)
        later = await accepted_after_refusals(s, a, 20)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["type"] == "TrackingFailed"
    assert_whole(s.watcher.events[rid])
    assert later["response_id"]
