"""Three daemon processes as one cluster; a node killed (SIGKILL) or paused (SIGSTOP) mid-stream.

Real everything: the session's PostgreSQL and NATS (`conftest`), one embedded OpenAI server in
this test's process (every node talks to it), three ``python -m streamvisor daemon`` processes
(`LocalCluster`), and a subscriber on node B reading ``session.**`` from B's gateway over SSE
(`_processes.scene`). Work is started on node A through A's gateway; then A is killed. What B's
subscriber must see:

* the durable Responses stream goes on to ``response.completed``, resumed by a survivor, with
  gapless sequence numbers, no duplicate, and every delta's text once (the final text);
* the foreground Chat stream ends with one ``error`` event, code ``node_lost``;
* the background response owned by a session reaches its terminal status;

all within a bound of twice the lease TTL plus the streams' own time.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamvisor.cluster import NodeProcess

from ._processes import CHAT, DURABLE, TTL, assert_whole, scene, seqs
from ._support import sql

pytestmark = pytest.mark.slow


def took_over_lines(nodes: list[NodeProcess]) -> list[tuple[str, dict[str, Any]]]:
    """Every ``cluster.took_over`` a node logged: (the node, the log line)."""
    return [
        (node.node_id, json.loads(line))
        for node in nodes
        for line in node.log_path.read_text().splitlines()
        if '"cluster.took_over"' in line and '"dead"' in line
    ]


async def test_a_killed_node_is_taken_over_without_gap_or_duplicate(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    async with scene(tmp_path, pg_dsn, nats_url) as s:
        a, b, c = s.nodes
        watcher = s.watcher
        rid = (await s.post(a, "/sessions/sa/responses", DURABLE))["response_id"]
        cid = (await s.post(a, "/sessions/sc/chat", CHAT))["response_id"]
        queued = {"model": "gpt-4o", "input": "go", "owner": "sb"}
        background = {**queued, "metadata": {"mock_queue_ms": "1500"}}
        bid = (await s.post(a, "/background", background))["id"]
        before_kill = 30
        await watcher.until(
            lambda: min(len(watcher.events[rid]), len(watcher.events[cid])) >= before_kill, 20
        )
        a.kill()
        killed = trio.current_time()

        def over() -> bool:
            background_done = any(
                s["response_id"] == bid and s["terminal"] for s in watcher.statuses
            )
            return watcher.ended(rid) and watcher.ended(cid) and background_done

        await watcher.until(over, 4 * TTL + 15)
        took = trio.current_time() - killed
        healths = [
            (await s.http.get(f"{node.url}/health", headers=node.headers)).json()["cluster"]
            for node in (b, c)
        ]
    events = watcher.events[rid]
    assert_whole(events)
    assert len(events) > 3 * before_kill  # it went on well past the kill
    chat_events = watcher.events[cid]
    assert seqs(chat_events) == list(range(len(chat_events)))
    assert [e["type"] for e in chat_events].count("error") == 1
    assert (chat_events[-1]["type"], chat_events[-1]["api"]) == ("error", "chat")
    assert chat_events[-1]["data"]["code"] == "node_lost"
    finals = [s for s in watcher.statuses if s["response_id"] == bid and s["terminal"]]
    assert finals[0]["status"] == "completed"
    assert took < 4 * TTL + 15
    # One survivor took node-1 over: it resumed the durable stream, polled the background
    # response and ended the Chat stream; /health says so.
    [(survivor, line)] = took_over_lines([b, c])
    assert (line["dead"], line["resumed"], line["polled"], line["ended"]) == ("node-1", 1, 1, 1)
    by_node = {health["node_id"]: health for health in healths}
    assert by_node[survivor]["took_over"] == ["node-1"]
    assert all(health["leased"] and health["token"] == 1 for health in healths)
    assert by_node["node-2"]["received"] > 0


async def test_a_paused_node_is_taken_over_and_fenced_when_it_wakes(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """SIGSTOP past the lease: a survivor takes the durable stream over; on SIGCONT the paused
    node finds its lease lost, stops its stale children, joins again with a new token and owns
    nothing it had; its stale stream changes nothing subscribers see."""
    async with scene(tmp_path, pg_dsn, nats_url) as s:
        a = s.nodes[0]
        rid = (await s.post(a, "/sessions/sp/responses", DURABLE))["response_id"]
        await s.watcher.until(lambda: len(s.watcher.events[rid]) >= 30, 20)
        a.pause()
        await s.watcher.until(lambda: s.watcher.ended(rid), 4 * TTL + 15)
        a.resume()

        def fenced_and_back() -> bool:
            log = a.log_path.read_text()
            return '"cluster.fenced"' in log and '"cluster.rejoined"' in log

        with trio.fail_after(4 * TTL + 10):
            while not fenced_and_back():
                await trio.sleep(0.05)
        # The session now lives on the survivor; asked through the woken node, its command is
        # routed there and answered.
        streams = await s.http.get(f"{a.url}/sessions/sp/streams", headers=a.headers)
    assert streams.status_code == 200, streams.text
    assert_whole(s.watcher.events[rid])
    [(owner,)] = sql(pg_dsn, "SELECT node_id FROM responses WHERE response_id = %s", rid)
    assert owner != "node-1"
    assert sql(pg_dsn, "SELECT node_id FROM sessions WHERE session_id = 'sp'") == [(owner,)]
    assert took_over_lines([a]) == []


async def test_any_node_serves_a_session_another_node_owns(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """Commands for a session reach its owner through any node's gateway: start, list, stop."""
    async with scene(tmp_path, pg_dsn, nats_url, count=2) as s:
        a, b = s.nodes
        first = await s.post(a, "/sessions/sx/responses", DURABLE)
        second = await s.post(b, "/sessions/sx/chat", CHAT)  # through B, it runs on A
        listed = (await s.http.get(f"{b.url}/sessions/sx/streams", headers=b.headers)).json()
        stopped = await s.post(b, "/sessions/sx/stop", {})
        await s.watcher.until(
            lambda: all(s.watcher.ended(t["response_id"]) for t in (first, second)), 15
        )
        missing = await s.send(b, "/sessions/sx/wait/stream-99", {})
    both = {first["stream_id"], second["stream_id"]}
    assert {stream["stream_id"] for stream in listed["streams"]} == both
    assert {o["stream_id"] for o in stopped["outcomes"]} == both
    assert {o["status"] for o in stopped["outcomes"]} == {"cancelled"}
    for ticket in (first, second):
        assert s.watcher.events[ticket["response_id"]][-1]["type"] == "response.cancelled"
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "UnknownStream"
    assert sql(pg_dsn, "SELECT node_id FROM sessions WHERE session_id = 'sx'") == [("node-1",)]


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
    with tempfile.TemporaryDirectory(prefix="sv-kills-") as directory:
        async with scene(Path(directory), pg_engine.create_database(), nats_url) as s:
            a, _b, c = s.nodes
            target = a if victim == "owner" else c
            rid = (await s.post(a, "/sessions/sr/responses", DURABLE))["response_id"]
            await s.watcher.until(lambda: len(s.watcher.events[rid]) >= after, 20)
            if how == "kill":
                target.kill()
            else:
                target.pause()
            await s.watcher.until(lambda: s.watcher.ended(rid), 4 * TTL + 20)
            target.resume()
    assert_whole(s.watcher.events[rid])


async def test_a_subscriber_that_moves_to_another_node_resumes_from_its_cursor(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """Every frame of a cluster node's /events carries its JetStream sequence; the subscriber's
    node dies under it, it reconnects to another with Last-Event-ID and misses nothing, twice
    nothing."""
    async with scene(tmp_path, pg_dsn, nats_url, watch=2) as s:  # (the scene's watcher on C)
        a, b, c = s.nodes
        seen: list[dict[str, Any]] = []
        ids: list[int] = []
        halfway, lost, done = trio.Event(), trio.Event(), trio.Event()

        async def read(node: NodeProcess, headers: dict[str, str]) -> None:
            """Every stream event, until the node goes away under the reader (or a cancel:
            never a break, which would leave httpx's body generators half-read)."""
            try:
                async with httpx_sse.aconnect_sse(
                    s.http,
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
                await s.post(a, "/sessions/mv/responses", DURABLE)
                await halfway.wait()
                b.kill()
                await lost.wait()
                assert not seen[-1]["terminal"]
                nursery.start_soon(read, c, {"Last-Event-ID": str(ids[-1])})
                await done.wait()
                nursery.cancel_scope.cancel()
    assert ids == sorted(set(ids))
    assert_whole(seen)


async def test_a_quiet_event_stream_stays_open_through_its_keepalives(
    pg_dsn: str, nats_url: str, tmp_path: Path
) -> None:
    """A cluster node's /events sends keepalive comments while nothing happens, and the events
    that come after them still arrive (a keepalive once ended the stream)."""
    async with scene(
        tmp_path, pg_dsn, nats_url, count=1, watch=0, env={"STREAMVISOR_GATEWAY_KEEPALIVE": "0.1"}
    ) as s:
        (a,) = s.nodes
        lines: list[str] = []
        quiet, arrived = trio.Event(), trio.Event()

        async def read() -> None:
            async with s.http.stream(
                "GET", f"{a.url}/events", params={"topic": "session.kq"}, headers=a.headers
            ) as response:
                async for line in response.aiter_lines():
                    lines.append(line)
                    if lines.count(": keepalive") >= 3:
                        quiet.set()
                    if line.startswith("event: response.completed"):
                        arrived.set()

        with trio.fail_after(20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                await quiet.wait()
                await s.post(a, "/sessions/kq/responses", {"model": "gpt-4o", "input": "hi"})
                await arrived.wait()
                nursery.cancel_scope.cancel()
    assert "event: shutdown" not in lines
    assert any(line.startswith("id: ") for line in lines)
