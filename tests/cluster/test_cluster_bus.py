"""`ClusterBus` logic: what is forwarded, what is delivered from other nodes, what is dropped as
a duplicate, and what a survivor learns of a dead node's open streams. The bridge is a list here;
the real one is tested against a real nats-server in the bridge's tests."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import attrs
import trio
import trio.lowlevel
import trio.testing

from streamvisor.actors import BackgroundStatus
from streamvisor.cluster._bus import ClusterBus
from streamvisor.cluster._codec import decode, encode
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import Missed


@attrs.frozen
class Msg:
    topic: str
    payload: bytes
    origin: str
    seq: int = 0
    msg_id: str | None = None


class Bridge:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, str | None]] = []

    def publish(self, topic: str, payload: bytes, *, msg_id: str | None = None) -> None:
        self.sent.append((topic, payload, msg_id))


def ev(
    seq: int, type: str = "response.output_text.delta", rid: str = "resp_1", api: Any = "responses"
) -> StreamEvent:
    return StreamEvent(type, seq, {"type": type, "delta": str(seq)}, rid, "s1", api, 1.0)


def remote(topic: str, item: object, origin: str = "node-b") -> Msg:
    payload = encode(item)
    assert payload is not None
    return Msg(topic, payload, origin)


def bus_with_bridge(node: str = "node-a") -> tuple[ClusterBus, Bridge]:
    bus = ClusterBus(node)
    bridge = Bridge()
    bus.attach(bridge)
    return bus, bridge


def received(bus: ClusterBus, pattern: str = "**") -> Any:
    return bus.subscribe(pattern)


async def test_local_publish_reaches_local_subscribers_and_the_bridge() -> None:
    bus, bridge = bus_with_bridge()
    async with bus.subscribe("session.*") as sub:
        assert bus.publish("session.s1", ev(0)) == 1
        assert sub.receive_nowait() == ev(0)
    [(topic, payload, msg_id)] = bridge.sent
    assert (topic, msg_id) == ("session.s1", "session.s1/resp_1/0")
    assert decode(payload) == ev(0)
    assert bus.forwarded == 1


async def test_before_attach_and_for_unknown_kinds_publishing_is_local_only() -> None:
    bus = ClusterBus("node-a")
    async with bus.subscribe("x") as sub:
        bus.publish("x", ev(0))
        assert sub.receive_nowait() == ev(0)
    assert bus.unforwarded == 1
    bridge = Bridge()
    bus.attach(bridge)
    bus.publish("x", {"not": "a record"})
    assert bridge.sent == []
    assert bus.unforwarded == 2


async def test_keepalives_are_delivered_locally_but_not_forwarded() -> None:
    bus, bridge = bus_with_bridge()
    async with bus.subscribe("x") as sub:
        bus.publish("x", ev(0))
        bus.publish("x", ev(0, "keepalive"))
        assert [sub.receive_nowait().type for _ in range(2)] == [
            "response.output_text.delta",
            "keepalive",
        ]
    assert len(bridge.sent) == 1


async def test_other_nodes_events_are_delivered_and_our_own_are_skipped() -> None:
    bus, bridge = bus_with_bridge()
    async with bus.subscribe("session.**") as sub:
        assert bus.deliver(remote("session.s1", ev(0), origin="node-b")) == 1
        assert bus.deliver(remote("session.s1", ev(1), origin="node-a")) == 0
        status = BackgroundStatus("resp_9", "queued", None, None, 1.0, "s1")
        assert bus.deliver(remote("session.s1", status)) == 1
        assert sub.receive_nowait() == ev(0)
        assert sub.receive_nowait() == status
        assert sub.statistics().buffer_used == 0
    assert bridge.sent == []  # nothing delivered from elsewhere is sent again
    assert bus.received == 2


async def test_a_replayed_stream_is_not_delivered_twice() -> None:
    """A survivor resumes from an older cursor: what every node already saw is dropped, on the
    survivor (its own publishes) and elsewhere (deliveries), and new events pass."""
    survivor, bridge = bus_with_bridge("node-c")
    async with survivor.subscribe("session.s1") as sub:
        for seq in range(5):  # the dead node's events, as JetStream delivered them
            survivor.deliver(remote("session.s1", ev(seq), origin="node-a"))
        for seq in range(3, 7):  # the survivor resumes after cursor 2
            survivor.publish("session.s1", ev(seq))
        seen = [sub.receive_nowait().sequence_number for _ in range(7)]
        assert seen == list(range(7))
        assert sub.statistics().buffer_used == 0
    assert survivor.duplicates == 2
    assert [m for _, _, m in bridge.sent] == ["session.s1/resp_1/5", "session.s1/resp_1/6"]


async def test_duplicates_are_per_topic_and_response() -> None:
    bus, _ = bus_with_bridge()
    async with bus.subscribe("**") as sub:
        bus.publish("session.s1", ev(0))
        bus.publish("background.resp_1", ev(0))
        bus.publish("session.s1", ev(0, rid="resp_2"))
        assert sub.statistics().buffer_used == 3


async def test_nothing_after_a_terminal_event_is_delivered() -> None:
    """A late duplicate, or a stale node still streaming what a survivor ended, is dropped."""
    bus, _ = bus_with_bridge()
    async with bus.subscribe("x") as sub:
        bus.publish("x", ev(0))
        bus.publish("x", ev(1, "response.completed"))
        bus.deliver(remote("x", ev(1, "response.completed")))
        bus.deliver(remote("x", ev(0)))
        bus.deliver(remote("x", ev(2)))
        bus.publish("x", ev(3))
        assert sub.statistics().buffer_used == 2
    assert bus.open_streams() == []
    assert bus.duplicates == 4


async def test_a_bridge_that_refuses_a_publish_does_not_break_the_publisher() -> None:
    from streamvisor.cluster import PublishBacklogFull

    class Full(Bridge):
        def publish(self, topic: str, payload: bytes, *, msg_id: str | None = None) -> None:
            raise PublishBacklogFull(3)

    bus = ClusterBus("node-a")
    bus.attach(Full())
    async with bus.subscribe("x") as sub:
        assert bus.publish("x", ev(0)) == 1
        assert sub.receive_nowait() == ev(0)
    assert (bus.forwarded, bus.unforwarded) == (0, 1)


async def test_a_survivor_knows_a_dead_nodes_open_streams_and_ends_them_everywhere() -> None:
    bus, bridge = bus_with_bridge("node-c")
    bus.deliver(remote("session.chat", ev(0, rid="chatcmpl-1", api="chat"), origin="node-a"))
    bus.deliver(remote("session.chat", ev(1, rid="chatcmpl-1", api="chat"), origin="node-a"))
    bus.deliver(remote("session.other", ev(0, rid="chatcmpl-2", api="chat"), origin="node-b"))
    bus.deliver(remote("session.done", ev(0, "response.completed", rid="r3"), origin="node-a"))
    [open_a] = bus.open_streams("node-a")
    assert (open_a.topic, open_a.response_id, open_a.last, open_a.api) == (
        "session.chat",
        "chatcmpl-1",
        1,
        "chat",
    )
    async with bus.subscribe("session.chat") as sub:
        event = bus.end_stream(open_a, "node_lost", "node node-a stopped; its stream cannot resume")
        got = sub.receive_nowait()
    assert got == event
    assert (event.type, event.sequence_number, event.data["code"], event.api) == (
        "error",
        2,
        "node_lost",
        "chat",
    )
    assert event.terminal
    assert decode(bridge.sent[-1][1]) == event
    assert bus.open_streams("node-a") == []
    assert len(bus.open_streams()) == 1


async def test_an_undecodable_payload_is_counted_and_skipped() -> None:
    bus, _ = bus_with_bridge()
    async with bus.subscribe("x") as sub:
        assert bus.deliver(Msg("x", b"garbage", "node-b")) == 0
        assert sub.statistics().buffer_used == 0
    assert bus.undecodable == 1


async def test_missed_notices_still_work() -> None:
    bus, _ = bus_with_bridge()
    async with bus.subscribe("x", buffer=1) as sub:
        bus.publish("x", ev(0))
        bus.publish("x", ev(1))
        assert sub.receive_nowait() == Missed(1, topic="x")


async def test_publish_many_forwards_and_filters_like_publish() -> None:
    bus, bridge = bus_with_bridge()
    async with bus.subscribe("x") as sub:
        assert bus.publish_many("x", [ev(0), ev(1), ev(1), ev(2)]) == 3
        assert [sub.receive_nowait().sequence_number for _ in range(3)] == [0, 1, 2]
    assert [msg_id for _, _, msg_id in bridge.sent] == ["x/resp_1/0", "x/resp_1/1", "x/resp_1/2"]
    assert bus.duplicates == 1


async def test_run_delivers_a_backlog_in_order_with_a_checkpoint_every_few_hundred() -> None:
    """What waits in the channel is delivered without a checkpoint per message (each costs a
    trip through trio's scheduler), yet other tasks still run during a long backlog."""
    bus = ClusterBus("node-a")
    send, receive = trio.open_memory_channel[Any](math.inf)
    for seq in range(600):
        send.send_nowait(remote("session.s1", ev(seq)))
    send.close()
    seen: list[int] = []

    async def probe() -> None:
        while bus.received < 600:
            seen.append(bus.received)
            await trio.lowlevel.checkpoint()

    async with bus.subscribe("session.**") as sub:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(bus.run, receive)
            nursery.start_soon(probe)
        got = [sub.receive_nowait().sequence_number for _ in range(600)]
    assert got == list(range(600))
    between = sorted(set(seen) - {0})
    assert 1 <= len(between) <= 3, between


async def test_run_does_not_keep_the_last_message_while_it_waits() -> None:
    """A node's delivery loop lives as long as the node: waiting for the next message, it
    used to keep the last one (its whole payload, a ``response.completed`` say). Checked once
    every task is blocked, without a message more (which would replace the one kept)."""
    bus = ClusterBus("node-a")
    send, receive = trio.open_memory_channel[Any](math.inf)
    last = remote("session.s1", ev(0))
    gone = weakref.ref(last)
    async with bus.subscribe("session.**") as sub, trio.open_nursery() as nursery:
        nursery.start_soon(bus.run, receive)
        send.send_nowait(last)
        del last
        await trio.testing.wait_all_tasks_blocked()
        assert sub.receive_nowait() == ev(0)
        gc.collect()
        assert gone() is None
        nursery.cancel_scope.cancel()


async def test_an_event_with_a_lone_surrogate_or_nan_is_forwarded_not_raised() -> None:
    """A frame json.loads accepted (a "\\ud83d" escape, NaN) reaches local subscribers and the
    bridge; publishing it used to raise out of the streaming worker."""
    bus, bridge = bus_with_bridge()
    odd = {"type": "response.output_text.delta", "delta": "\ud83d", "logprob": math.nan}
    event = StreamEvent("response.output_text.delta", 0, odd, "resp_1", "s1", "responses", 1.0)
    async with bus.subscribe("x") as sub:
        assert bus.publish("x", event) == 1
        assert bus.publish("x", ev(1)) == 1
        assert sub.receive_nowait().data["delta"] == "\ud83d"
        assert sub.receive_nowait() == ev(1)
    assert (bus.forwarded, bus.unforwarded) == (2, 0)
    other = ClusterBus("node-b")
    async with other.subscribe("x") as sub:
        for topic, payload, _ in bridge.sent:
            assert other.deliver(Msg(topic, payload, "node-a")) == 1
        first = sub.receive_nowait()
    assert first.data["delta"] == "\ud83d"
    assert math.isnan(first.data["logprob"])
