"""Three daemon processes as one cluster; a node killed (SIGKILL) or paused (SIGSTOP) mid-stream.

Real everything: the session's PostgreSQL and NATS (`conftest`), one embedded OpenAI server in
this test's process (every node talks to it), three ``python -m streamvisor daemon`` processes
(`LocalCluster`), and a subscriber on node B reading ``session.**`` from B's gateway over SSE.
Work is started on node A through A's gateway; then A is killed. What B's subscriber must see:

* the durable Responses stream goes on to ``response.completed``, resumed by a survivor, with
  gapless sequence numbers, no duplicate, and every delta's text once (the final text);
* the foreground Chat stream ends with one ``error`` event, code ``node_lost``;
* the background response owned by a session reaches its terminal status;

all within a bound of twice the lease TTL plus the streams' own time.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamvisor.cluster._local import LocalCluster, NodeProcess
from streamvisor.mockapi import MockAPIConfig, serve

from ._support import sql
from .conftest_nats import delete_stream

pytestmark = pytest.mark.slow

TTL = 1.5
LONG = {"mock_scenario": "long:400", "mock_token_delay_ms": "8"}


@asynccontextmanager
async def running_cluster(
    tmp_path: Path, dsn: str, nats_url: str, server_url: str, count: int = 3
) -> AsyncIterator[LocalCluster]:
    cluster = LocalCluster(
        tmp_path,
        postgres_dsn=dsn,
        nats_url=nats_url,
        openai_base_url=server_url,
        lease_ttl=TTL,
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
                data = json.loads(sse.data)
                if sse.event == "background.status":
                    self.statuses.append(data)
                elif "sequence_number" in data and data.get("response_id"):
                    self.events[data["response_id"]].append(data)
                self.changed.set()
                self.changed = trio.Event()

    async def until(self, predicate: Any, within: float) -> None:
        with trio.fail_after(within):
            while not predicate():
                await self.changed.wait()


async def post(http: httpx.AsyncClient, node: NodeProcess, path: str, body: Any) -> Any:
    response = await http.post(f"{node.url}{path}", headers=node.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["sequence_number"] for e in events if e["type"] != "keepalive"]


async def test_a_killed_node_is_taken_over_without_gap_or_duplicate(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(tmp_path, pg_dsn, nats_url, server.url) as cluster,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        a, b, _c = cluster.nodes.values()
        watcher = Watcher()
        ready = trio.Event()
        nursery.start_soon(watcher.run, b, http, ready)
        await ready.wait()
        durable = await post(
            http, a, "/sessions/sa/responses", {"model": "gpt-4o", "input": "go", "metadata": LONG}
        )
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
        background = await post(
            http,
            a,
            "/background",
            {
                "model": "gpt-4o",
                "input": "go",
                "owner": "sb",
                "metadata": {"mock_queue_ms": "1500"},
            },
        )
        rid, cid, bid = durable["response_id"], chat["response_id"], background["id"]
        await watcher.until(
            lambda: len(watcher.events[rid]) >= 30 and len(watcher.events[cid]) >= 30, 20
        )
        a.kill()
        killed = trio.current_time()

        def over() -> bool:
            done = watcher.events[rid] and watcher.events[rid][-1]["terminal"]
            chat_done = watcher.events[cid] and watcher.events[cid][-1]["terminal"]
            bg_done = any(s["response_id"] == bid and s["terminal"] for s in watcher.statuses)
            return bool(done and chat_done and bg_done)

        await watcher.until(over, 4 * TTL + 15)
        took = trio.current_time() - killed
        healths = [
            (await http.get(f"{node.url}/health", headers=node.headers)).json()["cluster"]
            for node in (b, _c)
        ]
        nursery.cancel_scope.cancel()
        seen_before_kill = 30
        takeovers = [
            (node.node_id, line)
            for node in cluster.nodes.values()
            if node is not a
            for line in node.log_path.read_text().splitlines()
            if '"cluster.took_over"' in line and '"dead"' in line
        ]

    events = watcher.events[rid]
    assert seqs(events) == list(range(len(seqs(events)))), seqs(events)
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["data"]["response"]["output"][0]["content"][0]["text"]
    assert text == final
    chat_events = watcher.events[cid]
    assert seqs(chat_events) == list(range(len(chat_events)))
    assert [e["type"] for e in chat_events].count("error") == 1
    assert chat_events[-1]["type"] == "error"
    assert chat_events[-1]["data"]["code"] == "node_lost"
    assert chat_events[-1]["api"] == "chat"
    finals = [s for s in watcher.statuses if s["response_id"] == bid and s["terminal"]]
    assert finals[0]["status"] == "completed"
    assert took < 4 * TTL + 15
    # One survivor took node-1 over: it resumed the durable stream, polled the background
    # response and ended the Chat stream; the stream went on well past the kill.
    [(survivor, line)] = takeovers
    took_over = json.loads(line)
    by_node = {health["node_id"]: health for health in healths}
    assert by_node[survivor]["took_over"] == ["node-1"]
    assert all(health["leased"] and health["token"] == 1 for health in healths)
    assert by_node["node-2"]["received"] > 0
    assert (took_over["dead"], took_over["resumed"], took_over["polled"], took_over["ended"]) == (
        "node-1",
        1,
        1,
        1,
    )
    assert len(events) > 3 * seen_before_kill


async def test_a_paused_node_is_taken_over_and_fenced_when_it_wakes(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """SIGSTOP past the lease: a survivor takes the durable stream over; on SIGCONT the paused
    node finds its lease lost, stops its stale children, joins again with a new token and owns
    nothing it had; its stale stream changes nothing subscribers see."""
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(tmp_path, pg_dsn, nats_url, server.url) as cluster,
        httpx.AsyncClient(timeout=30) as http,
        trio.open_nursery() as nursery,
    ):
        a, b, _c = cluster.nodes.values()
        watcher = Watcher()
        ready = trio.Event()
        nursery.start_soon(watcher.run, b, http, ready)
        await ready.wait()
        durable = await post(
            http, a, "/sessions/sp/responses", {"model": "gpt-4o", "input": "go", "metadata": LONG}
        )
        rid = durable["response_id"]
        await watcher.until(lambda: len(watcher.events[rid]) >= 30, 20)
        a.pause()
        await watcher.until(lambda: bool(watcher.events[rid][-1]["terminal"]), 4 * TTL + 15)
        a.resume()

        def fenced_and_back() -> bool:
            log = a.log_path.read_text()
            return '"cluster.fenced"' in log and '"cluster.rejoined"' in log

        with trio.fail_after(4 * TTL + 10):
            while not fenced_and_back():
                await trio.sleep(0.05)
        # The session now lives on the survivor; asked through the woken node, its command is
        # routed there and answered.
        streams = await http.get(f"{a.url}/sessions/sp/streams", headers=a.headers)
        nursery.cancel_scope.cancel()
    assert streams.status_code == 200, streams.text
    events = watcher.events[rid]
    assert seqs(events) == list(range(len(seqs(events))))
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["data"]["response"]["output"][0]["content"][0]["text"]
    rows = sql(pg_dsn, "SELECT node_id FROM responses WHERE response_id = %s", rid)
    assert rows[0][0] != "node-1"
    owner = sql(pg_dsn, "SELECT node_id FROM sessions WHERE session_id = 'sp'")
    assert owner[0][0] != "node-1"
    woken = a.log_path.read_text()
    assert '"cluster.rejoined"' in woken
    assert woken.count('"cluster.took_over"') == 0


async def test_any_node_serves_a_session_another_node_owns(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """Commands for a session reach its owner through any node's gateway: start, list, stop."""
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
        first = await post(
            http, a, "/sessions/sx/responses", {"model": "gpt-4o", "input": "go", "metadata": LONG}
        )
        # Through B: a second stream of A's session runs on A.
        second = await post(
            http,
            b,
            "/sessions/sx/chat",
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "go"}],
                "metadata": LONG,
            },
        )
        listed = (await http.get(f"{b.url}/sessions/sx/streams", headers=b.headers)).json()
        stopped = await post(http, b, "/sessions/sx/stop", {})
        await watcher.until(
            lambda: all(
                watcher.events[t["response_id"]]
                and watcher.events[t["response_id"]][-1]["terminal"]
                for t in (first, second)
            ),
            15,
        )
        missing = await http.post(f"{b.url}/sessions/sx/wait/stream-99", headers=b.headers, json={})
        nursery.cancel_scope.cancel()
    assert {s["stream_id"] for s in listed["streams"]} == {first["stream_id"], second["stream_id"]}
    assert {o["status"] for o in stopped["outcomes"]} == {"cancelled"}
    assert {o["stream_id"] for o in stopped["outcomes"]} == {
        first["stream_id"],
        second["stream_id"],
    }
    for ticket in (first, second):
        assert watcher.events[ticket["response_id"]][-1]["type"] == "response.cancelled"
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "UnknownStream"
    owner = sql(pg_dsn, "SELECT node_id FROM sessions WHERE session_id = 'sx'")
    assert owner == [("node-1",)]


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    victim=st.sampled_from(["owner", "bystander"]),
    how=st.sampled_from(["kill", "pause"]),
    after=st.integers(min_value=1, max_value=250),
)
async def test_random_kill_schedules_lose_and_repeat_nothing(
    pg_engine: Any, nats_url: str, victim: str, how: str, after: int
) -> None:
    """Whichever node dies (the one streaming, or one only watching), however (SIGKILL, or
    SIGSTOP past its lease and SIGCONT after), whenever: a subscriber on a surviving node sees
    the durable stream whole, in order, once."""
    dsn = pg_engine.create_database()
    with tempfile.TemporaryDirectory(prefix="sv-kills-") as directory:
        async with (
            serve(MockAPIConfig(token_delay=0.005)) as server,
            running_cluster(Path(directory), dsn, nats_url, server.url) as cluster,
            httpx.AsyncClient(timeout=30) as http,
            trio.open_nursery() as nursery,
        ):
            a, b, c = cluster.nodes.values()
            target = a if victim == "owner" else c
            watcher = Watcher()
            ready = trio.Event()
            nursery.start_soon(watcher.run, b, http, ready)
            await ready.wait()
            ticket = await post(
                http,
                a,
                "/sessions/sr/responses",
                {"model": "gpt-4o", "input": "go", "metadata": LONG},
            )
            rid = ticket["response_id"]
            await watcher.until(lambda: len(watcher.events[rid]) >= after, 20)
            if how == "kill":
                target.kill()
            else:
                target.pause()
            await watcher.until(lambda: bool(watcher.events[rid][-1]["terminal"]), 4 * TTL + 20)
            target.resume()
            nursery.cancel_scope.cancel()
    events = watcher.events[rid]
    assert seqs(events) == list(range(len(seqs(events))))
    assert events[-1]["type"] == "response.completed"
    text = "".join(e["data"]["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == events[-1]["data"]["response"]["output"][0]["content"][0]["text"]


async def test_a_subscriber_that_moves_to_another_node_resumes_from_its_cursor(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """Every frame of a cluster node's /events carries its JetStream sequence; the subscriber's
    node dies under it, it reconnects to another with Last-Event-ID and misses nothing, twice
    nothing."""
    async with (
        serve(MockAPIConfig(token_delay=0.005)) as server,
        running_cluster(tmp_path, pg_dsn, nats_url, server.url) as cluster,
        httpx.AsyncClient(timeout=30) as http,
    ):
        a, b, c = cluster.nodes.values()
        seen: list[dict[str, Any]] = []
        ids: list[int] = []
        halfway, lost, done = trio.Event(), trio.Event(), trio.Event()

        async def read(node: NodeProcess, headers: dict[str, str]) -> None:
            """Every stream event, until the node goes away under the reader (or a cancel:
            never a break, which would leave httpx's body generators half-read)."""
            try:
                async with httpx_sse.aconnect_sse(
                    http,
                    "GET",
                    f"{node.url}/events",
                    params={"topic": "session.mv"},
                    headers={**node.headers, **headers},
                ) as source:
                    async for sse in source.aiter_sse():
                        if sse.event.startswith("response."):
                            data = json.loads(sse.data)
                            ids.append(int(sse.id))
                            seen.append(data)
                            if len(seen) >= 40:
                                halfway.set()
                            if data["terminal"]:
                                done.set()
            except httpx.TransportError:
                lost.set()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read, b, {})
                await trio.sleep(0.3)  # subscribed before the stream starts
                await post(
                    http,
                    a,
                    "/sessions/mv/responses",
                    {"model": "gpt-4o", "input": "go", "metadata": LONG},
                )
                await halfway.wait()
                b.kill()
                await lost.wait()
                assert not seen[-1]["terminal"]
                nursery.start_soon(read, c, {"Last-Event-ID": str(ids[-1])})
                await done.wait()
                nursery.cancel_scope.cancel()
    assert ids == sorted(set(ids))
    numbers = [e["sequence_number"] for e in seen]
    assert numbers == list(range(len(numbers)))
    assert seen[-1]["type"] == "response.completed"
