"""NatsBridge: events across nodes through JetStream, and commands by request/reply.

Two `NatsBridge` instances on one server stand for two nodes. Every wait is bounded; where a
test must show that something did NOT arrive, it publishes a sentinel afterwards and checks
what came before it.
"""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
import trio
import trio.lowlevel

from streamvisor.cluster import (
    BridgeClosed,
    HandlerFailed,
    InvalidSubject,
    Message,
    NatsBridge,
    NatsUnavailable,
    NoResponders,
    PayloadTooLarge,
    RequestTimeout,
    StreamRefused,
)

from .conftest_nats import NatsNames, open_node

#: Generous bounds: a loaded CI core, not the expected time (milliseconds here).
WAIT = 10.0


async def receive(channel: trio.MemoryReceiveChannel[Message], count: int) -> list[Message]:
    messages = []
    with trio.fail_after(WAIT):
        while len(messages) < count:
            messages.append(await channel.receive())
    return messages


async def until_sentinel(channel: trio.MemoryReceiveChannel[Message]) -> list[Message]:
    """Everything received before the message on topic ``sentinel``."""
    messages = []
    with trio.fail_after(WAIT):
        async for message in channel:
            if message.topic == "sentinel":
                return messages
            messages.append(message)
    raise AssertionError("the channel ended before the sentinel")


def bridge_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("streamvisor-nats")]


class TestPublishSubscribe:
    async def test_an_event_published_on_one_node_reaches_a_subscriber_on_another(
        self, nats_names: NatsNames
    ) -> None:
        """Topic, payload, origin, msg_id and the stream sequence all arrive."""
        async with (
            open_node(nats_names, "node-a") as a,
            open_node(nats_names, "node-b") as b,
            b.subscribe("session.*.delta") as events,
        ):
            a.publish("session.s1.delta", b"hello", msg_id="s1:1")
            a.publish("session.s2.delta", b"world")
            first, second = await receive(events, 2)
        assert first == Message("session.s1.delta", b"hello", first.seq, "node-a", "s1:1")
        assert second == Message("session.s2.delta", b"world", first.seq + 1, "node-a", None)

    async def test_a_nodes_own_events_are_delivered_to_it_too(self, nats_names: NatsNames) -> None:
        async with open_node(nats_names, "solo") as node, node.subscribe("**") as events:
            node.publish("x", b"1")
            (message,) = await receive(events, 1)
        assert (message.topic, message.origin) == ("x", "solo")

    async def test_skip_origin_leaves_out_a_nodes_own_events(self, nats_names: NatsNames) -> None:
        """A node that delivered its own events in-process does not get them back; every
        other node's still arrive, in order."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            a.subscribe("**", skip_origin="a") as events,
        ):
            a.publish("x", b"mine")
            b.publish("x", b"theirs")
            a.publish("x", b"mine again")
            b.publish("x", b"theirs again")
            got = await receive(events, 2)
            await a.flush()
        assert [(m.payload, m.origin) for m in got] == [(b"theirs", "b"), (b"theirs again", "b")]
        assert got[0].seq < got[1].seq

    async def test_skip_origin_leaves_out_only_that_exact_node(self, nats_names: NatsNames) -> None:
        """Node ``a`` skips its own events, not those of ``ab`` or ``a-b`` (the origin is the
        subject's token after the prefix: it must match the whole token)."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "ab") as ab,
            open_node(nats_names, "a-b") as ba,
            a.subscribe("**", skip_origin="a") as events,
        ):
            a.publish("x", b"mine")
            await a.flush()
            ab.publish("x", b"from ab")
            await ab.flush()
            ba.publish("x", b"from a-b")
            got = await receive(events, 2)
        assert [(m.payload, m.origin) for m in got] == [(b"from ab", "ab"), (b"from a-b", "a-b")]

    async def test_a_node_id_that_is_no_subject_token_is_refused(
        self, nats_names: NatsNames
    ) -> None:
        """The node id is a token of every subject the node publishes on."""
        for node_id in ("b a", "a.b", "a*", "", "é"):
            with pytest.raises(InvalidSubject, match="node id"):
                async with open_node(nats_names, node_id):
                    pass  # pragma: no cover

    async def test_replaying_everything_gives_events_only(self, nats_names: NatsNames) -> None:
        """Each bridge announces itself on the stream when it opens; a subscriber replaying
        the stream from its start gets the events, not the announcements."""
        async with open_node(nats_names, "a") as a, open_node(nats_names, "b") as b:
            a.publish("x", b"1")
            await a.flush()
            b.publish("x", b"2")
            await b.flush()
            async with a.subscribe("**", after=0) as events:
                got = await receive(events, 2)
                b.publish("sentinel", b"")
                assert await until_sentinel(events) == []
        assert [(m.origin, m.payload) for m in got] == [("a", b"1"), ("b", b"2")]

    async def test_double_star_matches_the_bare_prefix_and_everything_below_it(
        self, nats_names: NatsNames
    ) -> None:
        """'a.**' gets 'a' and 'a.b.c'; not 'ab' nor 'b.a'."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            b.subscribe("a.**") as events,
            b.subscribe("sentinel") as done,
        ):
            for topic in ("a", "ab", "a.b", "b.a", "a.b.c"):
                a.publish(topic, topic.encode())
            a.publish("a.sentinel.x", b"")
            a.publish("sentinel", b"")
            await receive(done, 1)
            got = await receive(events, 4)
        assert [m.topic for m in got] == ["a", "a.b", "a.b.c", "a.sentinel.x"]

    async def test_per_topic_order_holds_across_interleaved_topics(
        self, nats_names: NatsNames
    ) -> None:
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            b.subscribe("t.**") as events,
        ):
            for n in range(600):
                a.publish(f"t.{n % 3}", str(n).encode())
            got = await receive(events, 600)
        for topic in ("t.0", "t.1", "t.2"):
            numbers = [int(m.payload) for m in got if m.topic == topic]
            assert numbers == sorted(numbers)
            assert len(numbers) == 200
        assert [m.seq for m in got] == list(range(got[0].seq, got[0].seq + 600))

    async def test_a_topic_nats_cannot_carry_is_refused_before_anything_is_queued(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            with pytest.raises(InvalidSubject, match="reads as a wildcard"):
                a.publish("a.b>c", b"")
            with pytest.raises(InvalidSubject, match="only allowed as the last"):
                a.subscribe("**.a")
            assert a.statistics().published == 0

    async def test_a_payload_above_the_servers_limit_is_refused_at_publish(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            with pytest.raises(PayloadTooLarge) as caught:
                a.publish("big", b"x" * (caught_limit := 1024 * 1024 + 1))
            assert caught.value.size == caught_limit
            assert a.statistics().published == 0

    async def test_a_stream_whose_subjects_overlap_another_is_refused_by_name(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a"):
            clash = NatsNames(nats_names.url, f"{nats_names.stream}_CLASH", nats_names.prefix)
            with pytest.raises(StreamRefused, match="overlap") as caught:
                async with open_node(clash, "b"):
                    raise AssertionError("unreachable")
        assert caught.value.stream == clash.stream

    async def test_flush_returns_once_everything_before_it_is_stored(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            for n in range(2500):  # more than one batch
                a.publish("f", str(n).encode())
            with trio.fail_after(WAIT):
                await a.flush()
            stats = a.statistics()
        assert (stats.published, stats.acked, stats.backlog) == (2500, 2500, 0)

    async def test_events_published_while_the_sender_lingers_go_out_as_one_batch(
        self, nats_names: NatsNames
    ) -> None:
        """A publish that wakes the idle sender is held for ``linger``, and what follows it
        within that time joins its batch (at a low rate each event was a batch of its own)."""
        # 50 ms of publishing inside a 0.5 s linger: room for a slow CI core.
        async with open_node(nats_names, "a", linger=0.5) as a, a.subscribe("**") as events:
            for n in range(5):
                a.publish("l", str(n).encode())
                await trio.sleep(0.01)
            got = await receive(events, 5)
            stats = a.statistics()
        assert [int(m.payload) for m in got] == list(range(5))
        assert (stats.published, stats.batches) == (5, 1)

    async def test_under_load_a_batch_starts_at_most_once_per_interval(
        self, nats_names: NatsNames
    ) -> None:
        """Events published without pause for 0.3 s with a 0.1 s interval leave in at most
        five batches (the first at once, then one per interval: a slow core makes fewer, never
        more), in order. (With interval 0 the same publishing went out in about 110 batches.)"""
        async with (
            open_node(nats_names, "a", linger=0.0, interval=0.1) as a,
            a.subscribe("**") as events,
        ):
            start = trio.current_time()
            sent = 0
            while trio.current_time() - start < 0.3:
                a.publish("i", str(sent).encode())
                sent += 1
                await trio.sleep(0.002)
            elapsed = trio.current_time() - start
            got = await receive(events, sent)
            stats = a.statistics()
        assert [int(m.payload) for m in got] == list(range(sent))
        assert 2 <= stats.batches <= 2 + elapsed / 0.1

    @pytest.mark.parametrize("option", ["linger", "interval"])
    @pytest.mark.parametrize("value", [-0.001, 1.001])
    async def test_a_linger_or_interval_outside_zero_to_one_second_is_refused(
        self, nats_names: NatsNames, option: str, value: float
    ) -> None:
        with pytest.raises(ValueError, match=option):
            async with open_node(nats_names, "a", **{option: value}):
                raise AssertionError("unreachable")


class TestOtherNodes:
    """`subscribe_others`: every other node's events, and JetStream never sends a node its
    own."""

    async def test_the_listed_nodes_events_arrive_and_the_nodes_own_are_not_asked_for(
        self, nats_names: NatsNames
    ) -> None:
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            a.subscribe_others(["b"], after=await a.last_seq()) as events,
        ):
            (feed,) = a._feeds
            assert feed.filters == (f"{nats_names.prefix}.~", f"{nats_names.prefix}.b.>")
            a.publish("x", b"mine")
            b.publish("x", b"theirs")
            a.publish("x", b"mine again")
            b.publish("x", b"theirs again")
            await a.flush()
            b.publish("sentinel", b"")
            got = await until_sentinel(events)
        assert [(m.payload, m.origin) for m in got] == [(b"theirs", "b"), (b"theirs again", "b")]

    async def test_a_node_that_joins_later_is_received_from_its_first_event(
        self, nats_names: NatsNames
    ) -> None:
        """The newcomer was not listed: its announcement adds it, and nothing it published
        is missed or doubled, while a listed node's events flow on, all in stream order."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            a.subscribe_others(["b"], after=await a.last_seq()) as events,
        ):
            for n in range(50):
                b.publish("x", b"b%d" % n)
            async with open_node(nats_names, "c") as c:
                for n in range(100):
                    c.publish("x", b"c%d" % n)
                    if n % 2:
                        b.publish("x", b"b%d" % (50 + n // 2))
                await c.flush()
                await b.flush()
                c.publish("sentinel", b"")
                got = await until_sentinel(events)
            (feed,) = a._feeds
            assert feed.members == {"b", "c"}
        assert [m.payload for m in got if m.origin == "c"] == [b"c%d" % n for n in range(100)]
        assert [m.payload for m in got if m.origin == "b"] == [b"b%d" % n for n in range(100)]
        assert [m.seq for m in got] == sorted({m.seq for m in got})

    async def test_two_newcomers_at_once_are_both_received(self, nats_names: NatsNames) -> None:
        """Two nodes join one after the other, each publishing at once: both are added, and
        nothing of either is missed. (Whether the second announcement comes while the consumer
        is still being recreated for the first is up to timing here; that case is made certain
        in test_nats_consumer.py.)"""
        async with (
            open_node(nats_names, "a") as a,
            a.subscribe_others([], after=await a.last_seq()) as events,
            open_node(nats_names, "b") as b,
            open_node(nats_names, "c") as c,
        ):
            for n in range(20):
                b.publish("x", b"b%d" % n)
                c.publish("x", b"c%d" % n)
            await b.flush()
            await c.flush()
            c.publish("sentinel", b"")
            got = await until_sentinel(events)
        assert [m.payload for m in got if m.origin == "b"] == [b"b%d" % n for n in range(20)]
        assert [m.payload for m in got if m.origin == "c"] == [b"c%d" % n for n in range(20)]

    async def test_the_consumer_delivers_nothing_past_an_announcement_before_it_is_recreated(
        self, nats_names: NatsNames
    ) -> None:
        """The stream holds: c's hello, c's first events, then b's. Node a's bridge reads
        them in one go (its thread is held while they are stored): b's events must wait for
        the consumer that also asks for c's, or a would skip c's first events."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            a.subscribe_others(["b"], after=await a.last_seq()) as events,
        ):
            a._loop.call_soon_threadsafe(time.sleep, 0.5)  # a's bridge thread is held
            async with open_node(nats_names, "c") as c:
                for n in range(10):
                    c.publish("x", b"c%d" % n)
                await c.flush()
                for n in range(10):
                    b.publish("x", b"b%d" % n)
                await b.flush()
                c.publish("sentinel", b"")
                got = await until_sentinel(events)
        assert [m.payload for m in got] == [b"c%d" % n for n in range(10)] + [
            b"b%d" % n for n in range(10)
        ]

    async def test_a_bad_argument_is_refused_at_once(self, nats_names: NatsNames) -> None:
        async with open_node(nats_names, "a") as a:
            with pytest.raises(InvalidSubject, match="node id"):
                a.subscribe_others(["b.c"], after=0)
            with pytest.raises(ValueError, match="after"):
                a.subscribe_others(["b"], after=-1)


class TestReplay:
    async def test_a_cursor_replays_what_followed_it_then_continues_live(
        self, nats_names: NatsNames
    ) -> None:
        """after=N: every stored event with seq > N, then live ones; no gap, no duplicate."""
        async with open_node(nats_names, "a") as a, open_node(nats_names, "b") as b:
            async with a.subscribe("r.*") as own:
                for n in range(10):
                    a.publish(f"r.{n % 2}", str(n).encode())
                stored = await receive(own, 10)
            cursor = stored[4].seq
            async with b.subscribe("r.*", after=cursor) as events:
                replayed = await receive(events, 5)
                for n in range(10, 15):
                    a.publish(f"r.{n % 2}", str(n).encode())
                live = await receive(events, 5)
        got = replayed + live
        assert [int(m.payload) for m in got] == list(range(5, 15))
        assert [m.seq for m in got] == list(range(cursor + 1, cursor + 11))

    async def test_live_only_starts_after_what_is_already_stored(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            a.publish("old", b"")
            await a.flush()
            async with a.subscribe("**") as events:
                a.publish("new", b"")
                (message,) = await receive(events, 1)
        assert message.topic == "new"


class TestDeduplication:
    async def test_a_repeated_msg_id_is_stored_once_whoever_publishes_it(
        self, nats_names: NatsNames
    ) -> None:
        """A survivor re-publishing a dead node's events after a takeover adds nothing."""
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            b.subscribe("**") as events,
        ):
            a.publish("d", b"first", msg_id="event-1")
            a.publish("d", b"again", msg_id="event-1")
            await a.flush()
            b.publish("d", b"takeover", msg_id="event-1")
            b.publish("d", b"other", msg_id="event-2")
            await b.flush()
            b.publish("sentinel", b"")
            got = await until_sentinel(events)
        assert [(m.payload, m.msg_id) for m in got] == [
            (b"first", "event-1"),
            (b"other", "event-2"),
        ]


class TestCommands:
    async def test_a_request_is_answered_by_the_handler_on_the_serving_node(
        self, nats_names: NatsNames
    ) -> None:
        seen: list[bytes] = []

        async def handler(payload: bytes) -> bytes:
            seen.append(payload)
            await trio.lowlevel.checkpoint()  # runs in trio: trio calls work here
            return payload.upper()

        subject = f"{nats_names.prefix}-cmd.node-b"
        async with (
            open_node(nats_names, "a") as a,
            open_node(nats_names, "b") as b,
            b.serve(subject, handler),
        ):
            with trio.fail_after(WAIT):
                replies = [await a.request(subject, b"ping", timeout=WAIT) for _ in range(3)]
        assert replies == [b"PING"] * 3
        assert seen == [b"ping"] * 3

    async def test_a_handler_that_raises_is_reported_to_the_requester(
        self, nats_names: NatsNames
    ) -> None:
        async def handler(payload: bytes) -> bytes:
            raise LookupError(f"no session {payload.decode()}")

        subject = f"{nats_names.prefix}-cmd.fail"
        async with open_node(nats_names, "a") as a, a.serve(subject, handler):
            with pytest.raises(HandlerFailed, match="LookupError: no session s9"):
                await a.request(subject, b"s9", timeout=WAIT)

    async def test_nobody_serving_the_subject_raises_no_responders(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            with trio.fail_after(WAIT), pytest.raises(NoResponders):
                await a.request(f"{nats_names.prefix}-cmd.nobody", b"", timeout=WAIT)

    async def test_a_handler_that_does_not_answer_in_time_raises_request_timeout(
        self, nats_names: NatsNames
    ) -> None:
        async def handler(payload: bytes) -> bytes:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        subject = f"{nats_names.prefix}-cmd.slow"
        async with open_node(nats_names, "a") as a, a.serve(subject, handler):
            with trio.fail_after(WAIT), pytest.raises(RequestTimeout) as caught:
                await a.request(subject, b"", timeout=0.2)
        assert isinstance(caught.value, TimeoutError)


class TestLifeCycle:
    async def test_closing_stops_the_thread_and_the_bridge_refuses_more_work(
        self, nats_names: NatsNames
    ) -> None:
        before = bridge_threads()
        async with open_node(nats_names, "closer") as node, node.subscribe("**"):
            assert node.connected
            assert len(bridge_threads()) == len(before) + 1
            node.publish("last", b"")
        assert bridge_threads() == before
        assert not node.connected
        with pytest.raises(BridgeClosed):
            node.publish("x", b"")
        with pytest.raises(BridgeClosed):
            await node.flush()

    async def test_events_published_just_before_closing_are_stored(
        self, nats_names: NatsNames
    ) -> None:
        """Close flushes (bounded) before it disconnects."""
        async with open_node(nats_names, "a") as a:
            for n in range(100):
                a.publish("c", str(n).encode())
        async with open_node(nats_names, "b") as b, b.subscribe("c", after=0) as events:
            got = await receive(events, 100)
        assert [int(m.payload) for m in got] == list(range(100))

    async def test_an_unreachable_server_fails_open_without_leaking_the_thread(self) -> None:
        before = bridge_threads()
        with trio.fail_after(WAIT), pytest.raises(NatsUnavailable):
            async with NatsBridge.open("nats://127.0.0.1:1", node_id="x", connect_timeout=1):
                raise AssertionError("unreachable")
        assert bridge_threads() == before


class TestMsgIds:
    async def test_without_auto_ids_an_event_carries_only_the_callers_id(
        self, nats_names: NatsNames
    ) -> None:
        async with (
            open_node(nats_names, "a", auto_msg_ids=False) as a,
            a.subscribe("**") as events,
        ):
            a.publish("m", b"1")
            a.publish("m", b"1")
            a.publish("m", b"2", msg_id="mine")
            got = await receive(events, 3)
        assert [(m.payload, m.msg_id) for m in got] == [(b"1", None), (b"1", None), (b"2", "mine")]

    async def test_a_msg_id_in_the_bridges_own_namespace_is_refused(
        self, nats_names: NatsNames
    ) -> None:
        async with open_node(nats_names, "a") as a:
            with pytest.raises(ValueError, match="~sv~"):
                a.publish("m", b"", msg_id="~sv~forged")
            with pytest.raises(ValueError, match="printable ASCII"):
                a.publish("m", b"", msg_id="two\nlines")


class TestBackpressure:
    async def test_a_subscriber_that_falls_behind_holds_jetstream_back_and_loses_nothing(
        self, nats_names: NatsNames
    ) -> None:
        """Its buffer stays near ``buffer`` plus one flow-control window, not the stream."""
        total = 30_000
        async with open_node(nats_names, "a", max_backlog=total) as a:
            for n in range(total):
                a.publish("bp", str(n).encode())
            await a.flush()
            async with a.subscribe("bp", after=0, buffer=500) as events:
                with trio.fail_after(WAIT):
                    while a.statistics().flow_control_held == 0:
                        await trio.sleep(0.01)
                held_at = events.statistics().current_buffer_used
                got = await receive(events, total)
        assert held_at < total // 2
        assert [int(m.payload) for m in got] == list(range(total))


class Blob(bytearray):
    """A payload that can be weakly referenced (bytes cannot), to tell when it is gone."""


class TestRetention:
    async def test_the_publisher_does_not_keep_its_last_batch_while_it_waits(
        self, nats_names: NatsNames
    ) -> None:
        """The bridge's publishing loop lives as long as the node: waiting, idle, for the next
        publish, it kept the last batch (every payload in it). No publish more here (it would
        replace the batch kept): the bridge's thread is polled until it has let go."""
        async with open_node(nats_names, "a") as a:
            payload = Blob(b'{"event": 1}')
            gone = weakref.ref(payload)
            a.publish("t.x", payload)  # type: ignore[arg-type]  # bytes-like will do
            del payload
            await a.flush()
            with trio.fail_after(WAIT):
                gc.collect()
                while gone() is not None:
                    await trio.sleep(0.01)
                    gc.collect()
