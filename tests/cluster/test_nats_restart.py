"""The server (or a consumer) goes away and comes back: nothing is lost or delivered twice.

These tests own their server (a `NatsServer` in the test's tmp dir, on a fixed port so clients
reconnect to it), since they stop it; JetStream's file store survives the restart.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
import trio
import trio.lowlevel

from streamvisor.cluster import NatsServer, NatsUnavailable, NoResponders, PublishBacklogFull

from .conftest_nats import NatsNames, open_node
from .test_nats_bridge import WAIT, bridge_threads, receive


@pytest.fixture
def own_server(tmp_path: Path) -> NatsServer:
    server = NatsServer(tmp_path)
    server.start()
    yield server  # type: ignore[misc]
    server.kill()


async def test_events_published_during_an_outage_arrive_after_it_without_gap_or_duplicate(
    own_server: NatsServer,
) -> None:
    """Kill the server mid-stream: flush reports it (bounded), the backlog is sent once the
    server is back, and a subscriber on another node resumes from its last sequence."""
    names = NatsNames(own_server.url, "RESTART", "r.ev")
    options = {"flush_timeout": 0.5, "ack_timeout": 0.5}
    async with open_node(names, "a", **options) as a, open_node(names, "b", **options) as b:
        async with b.subscribe("**", after=0) as events:
            for n in range(100):
                a.publish(f"s.{n % 4}", str(n).encode())
            await a.flush()
            before = await receive(events, 100)

            own_server.kill()
            with trio.fail_after(WAIT):
                while a.connected:
                    await trio.sleep(0.01)
            for n in range(100, 200):
                a.publish(f"s.{n % 4}", str(n).encode())
            with pytest.raises(NatsUnavailable, match="not acked"):
                await a.flush()
            assert a.statistics().backlog == 100

            await trio.to_thread.run_sync(own_server.start)
            with trio.fail_after(WAIT):
                await a.flush()
            after = await receive(events, 100)
            for n in range(200, 210):  # and live delivery continues
                a.publish(f"s.{n % 4}", str(n).encode())
            live = await receive(events, 10)
        stats_a, stats_b = a.statistics(), b.statistics()
    got = before + after + live
    assert [int(m.payload) for m in got] == list(range(210))
    # Sequences 1 and 2 are the two bridges' announcements (no events: not delivered).
    assert [m.seq for m in got] == list(range(3, 213))
    assert stats_a.reconnects >= 1
    assert stats_b.consumer_resets >= 1


async def test_a_restart_the_publisher_has_not_noticed_yet_loses_nothing(
    own_server: NatsServer,
) -> None:
    """Events sent into a dying connection (no ack ever comes) are sent again, and JetStream's
    msg-id dedup keeps the ones that were in fact stored from appearing twice; a live-only
    subscriber (opened before the restart) sees every event after its start exactly once."""
    names = NatsNames(own_server.url, "BLIND", "b.ev")
    options = {"ack_timeout": 0.3}
    async with open_node(names, "a", **options) as a, open_node(names, "b", **options) as b:
        a.publish("old", b"")
        await a.flush()
        async with b.subscribe("s.*") as events:
            for n in range(300):
                a.publish(f"s.{n % 3}", str(n).encode())
                if n == 150:
                    own_server.stop()
                    own_server.start()
                if n % 50 == 0:
                    await trio.lowlevel.checkpoint()  # let batches go out around the restart
            with trio.fail_after(WAIT):
                await a.flush()
            got = await receive(events, 300)
    assert sorted(int(m.payload) for m in got) == list(range(300))
    assert [m.seq for m in got] == sorted({m.seq for m in got})
    assert a.statistics().reconnects == 1


async def test_the_backlog_is_bounded_while_the_server_is_away(own_server: NatsServer) -> None:
    """Past max_backlog unacked events, publish refuses (typed) instead of growing or
    dropping; closing with the server still away is bounded and leaks no thread."""
    names = NatsNames(own_server.url, "BOUNDED", "bd.ev")
    with trio.fail_after(WAIT):
        async with open_node(names, "a", max_backlog=5, flush_timeout=0.3) as a:
            own_server.kill()
            while a.connected:
                await trio.sleep(0.01)
            for n in range(5):
                a.publish("x", str(n).encode())
            with pytest.raises(PublishBacklogFull) as caught:
                a.publish("x", b"5")
            assert caught.value.backlog == 5
            assert a.statistics().published == 5
    assert bridge_threads() == []


async def test_a_consumer_deleted_on_the_server_is_recreated_from_the_last_delivered_seq(
    nats_names: NatsNames,
) -> None:
    """No disconnect, just silence: the missed heartbeats bring the consumer back (about 3 s),
    and the events stored meanwhile arrive without gap or duplicate."""
    async with (
        open_node(nats_names, "a") as a,
        open_node(nats_names, "b") as b,
        b.subscribe("h.*") as events,
    ):
        a.publish("h.1", b"0")
        first = await receive(events, 1)
        await trio.to_thread.run_sync(_delete_consumers, nats_names)
        for n in range(1, 6):
            a.publish("h.1", str(n).encode())
        rest = await receive(events, 5)
        assert b.statistics().consumer_resets >= 1
    got = first + rest
    assert [int(m.payload) for m in got] == list(range(6))
    assert [m.seq for m in got] == list(range(got[0].seq, got[0].seq + 6))


def _delete_consumers(names: NatsNames) -> None:
    """Delete every consumer of the test's stream from a separate (asyncio) client."""

    async def delete() -> None:
        nc = await nats.connect(names.url, allow_reconnect=False, connect_timeout=2)
        try:
            js = nc.jetstream()
            for info in await js.consumers_info(names.stream):
                await js.delete_consumer(names.stream, info.name)
        finally:
            await nc.close()

    asyncio.run(delete())


async def test_serving_resumes_after_a_restart(own_server: NatsServer) -> None:
    """nats-py re-subscribes after reconnecting: a served subject answers again."""
    names = NatsNames(own_server.url, "SERVE", "sv2.ev")

    async def echo(payload: bytes) -> bytes:
        return payload

    async with (
        open_node(names, "a") as a,
        open_node(names, "b") as b,
        b.serve("cmd.b", echo),
    ):
        assert await a.request("cmd.b", b"before", timeout=WAIT) == b"before"
        own_server.kill()
        await trio.to_thread.run_sync(own_server.start)
        with trio.fail_after(WAIT):
            while not (a.connected and b.connected):
                await trio.sleep(0.01)
            while True:  # b's re-subscription may land a moment after a reconnects
                try:
                    reply = await a.request("cmd.b", b"after", timeout=1.0)
                    break
                except NoResponders:
                    await trio.sleep(0.05)
    assert reply == b"after"
