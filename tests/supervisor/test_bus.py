"""The event bus: topic matching, isolation of slow subscribers, overflow policies, cleanup."""

from __future__ import annotations

import re

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from streamvisor.supervisor._bus import (
    BusClosed,
    BusError,
    EventBus,
    InvalidPattern,
    InvalidTopic,
    Missed,
    Overflow,
    SubscriberOverflow,
    Subscription,
    pattern_matches,
)


def reference_match(pattern: str, topic: str) -> bool:
    """An independent matcher: the pattern translated to a regular expression."""
    segments = pattern.split(".")
    one = r"[^.]+"
    if segments[-1] == "**":
        fixed = [one if s == "*" else re.escape(s) for s in segments[:-1]]
        regex = r"\.".join(fixed) + r"(\.[^.]+)*" if fixed else one + r"(\.[^.]+)*"
    else:
        regex = r"\.".join(one if s == "*" else re.escape(s) for s in segments)
    return re.fullmatch(regex, topic) is not None


class TestPatterns:
    @pytest.mark.parametrize(
        ("pattern", "topic", "expected"),
        [
            ("a", "a", True),
            ("a", "b", False),
            ("a.b", "a.b", True),
            ("a.b", "a", False),
            ("a.b", "a.b.c", False),
            ("a.*", "a.b", True),
            ("a.*", "a", False),
            ("a.*", "a.b.c", False),
            ("*", "a", True),
            ("*", "a.b", False),
            ("*.b", "a.b", True),
            ("*.b", "a.c", False),
            ("a.*.c", "a.x.c", True),
            ("a.*.c", "a.x.y.c", False),
            ("a.**", "a", True),
            ("a.**", "a.b", True),
            ("a.**", "a.b.c.d", True),
            ("a.**", "b.a", False),
            ("a.**", "ab", False),
            ("**", "a", True),
            ("**", "a.b.c", True),
            ("*.**", "a", True),
            ("a.*.**", "a", False),
            ("a.*.**", "a.b", True),
            ("a.*.**", "a.b.c", True),
            ("session.s1", "session.s10", False),
        ],
    )
    def test_wildcards_match_as_the_table_says(
        self, pattern: str, topic: str, expected: bool
    ) -> None:
        """`*` is exactly one segment, a trailing `**` zero or more, anything else is exact."""
        assert pattern_matches(pattern, topic) is expected

    @pytest.mark.parametrize(
        "pattern",
        [
            *("", "a..b", ".a", "a.", "a.**.b", "**.a", "a*", "a.b*c", "***"),
            *("\x00", "session.\x00", "session s1", " ", "a.b\n", "a.\u202eb", "a.\u2028"),
        ],
    )
    def test_an_invalid_pattern_is_a_value_error_naming_it(self, pattern: str) -> None:
        """Malformed patterns are rejected at `subscribe`, with the pattern in the message."""
        bus: EventBus[int] = EventBus()
        with pytest.raises(InvalidPattern) as info:
            bus.subscribe(pattern)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, BusError)
        assert info.value.pattern == pattern
        assert repr(pattern) in str(info.value)

    @pytest.mark.parametrize(
        "topic", ["", "a..b", ".a", "a.", "a.*", "a.**", "a*", "a\x00", "a b", "a.b\n", "\t"]
    )
    def test_an_invalid_topic_is_a_value_error_naming_it(self, topic: str) -> None:
        """Publishing on a malformed topic (or one with wildcards) raises `InvalidTopic`."""
        bus: EventBus[int] = EventBus()
        with pytest.raises(InvalidTopic) as info:
            bus.publish(topic, 1)
        assert isinstance(info.value, ValueError)
        assert info.value.topic == topic
        assert repr(topic) in str(info.value)

    @settings(max_examples=300, deadline=None)
    @given(
        segments=st.lists(st.sampled_from(["a", "b", "*"]), min_size=0, max_size=4),
        globstar=st.booleans(),
        topic=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=5),
    )
    def test_matching_agrees_with_a_reference_regex_matcher(
        self, segments: list[str], globstar: bool, topic: list[str]
    ) -> None:
        """For any valid pattern and topic, the matcher agrees with a regex translation."""
        if globstar:
            segments = [*segments, "**"]
        if not segments:
            segments = ["*"]
        pattern, dotted = ".".join(segments), ".".join(topic)
        assert pattern_matches(pattern, dotted) is reference_match(pattern, dotted)


class TestPublish:
    async def test_publish_returns_the_number_of_matching_subscribers(self) -> None:
        """The count covers exact and wildcard subscribers, and nobody else."""
        bus: EventBus[int] = EventBus()
        async with (
            bus.subscribe("a.b"),
            bus.subscribe("a.*"),
            bus.subscribe("a.**"),
            bus.subscribe("b.*"),
        ):
            assert bus.publish("a.b", 1) == 3
            assert bus.publish("a", 2) == 1
            assert bus.publish("c", 3) == 0
            assert bus.subscriber_count("a.b") == 3

    async def test_each_subscriber_receives_its_items_in_publish_order(self) -> None:
        """Items arrive in the order they were published, across topics the pattern matches."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("s.*") as sub:
            for i in range(50):
                bus.publish(f"s.{i % 3}", i)
            assert sub.drain() == list(range(50))

    async def test_a_waiting_receiver_is_woken_by_a_publish(self) -> None:
        """A task blocked in `receive` gets the next published item."""
        bus: EventBus[str] = EventBus()
        got: list[str | Missed] = []
        async with bus.subscribe("t") as sub, trio.open_nursery() as nursery:

            async def receiver() -> None:
                got.append(await sub.receive())

            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
            assert got == []
            bus.publish("t", "hello")
        assert got == ["hello"]

    async def test_subscribing_later_sees_a_topic_already_published_on(self) -> None:
        """The topic cache is updated when a subscriber arrives after the topic was resolved."""
        bus: EventBus[int] = EventBus()
        assert bus.publish("x.y", 0) == 0
        async with bus.subscribe("x.*") as wild, bus.subscribe("x.y") as exact:
            assert bus.publish("x.y", 1) == 2
            assert wild.drain() == [1]
            assert exact.drain() == [1]
        assert bus.publish("x.y", 2) == 0

    async def test_publish_many_is_publish_in_a_loop(self) -> None:
        """A batch reaches every matching subscriber in order, like one publish per item."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t") as one, bus.subscribe("*") as two:
            assert bus.publish_many("t", iter(range(5))) == 2
            assert bus.publish_many("t", []) == 2
            assert one.drain() == [0, 1, 2, 3, 4]
            assert two.drain() == [0, 1, 2, 3, 4]

    @settings(max_examples=60, deadline=None)
    @given(
        buffer=st.integers(min_value=1, max_value=6),
        batches=st.lists(st.integers(min_value=0, max_value=9), max_size=6),
        policy=st.sampled_from(list(Overflow)),
        reads=st.lists(st.integers(min_value=0, max_value=4), max_size=6),
    )
    async def test_publish_many_delivers_exactly_what_single_publishes_would(
        self, buffer: int, batches: list[int], policy: Overflow, reads: list[int]
    ) -> None:
        """Same items, same `Missed` notices, same statistics, whatever the batch sizes."""
        outcomes = []
        for batched in (False, True):
            bus: EventBus[int] = EventBus(default_buffer=buffer, default_overflow=policy)
            seen: list[object] = []
            async with bus.subscribe("t") as sub:
                counter = 0
                for size, read in zip(batches, [*reads, *[0] * len(batches)], strict=False):
                    items = list(range(counter, counter + size))
                    counter += size
                    if batched:
                        bus.publish_many("t", items)
                    else:
                        for item in items:
                            bus.publish("t", item)
                    try:
                        seen.extend(sub.drain(read))
                    except SubscriberOverflow:
                        seen.append("overflow")
                try:
                    seen.extend(sub.drain())
                except SubscriberOverflow:
                    seen.append("overflow")
                outcomes.append((seen, sub.statistics()))
        assert outcomes[0] == outcomes[1]


class TestIsolation:
    async def test_a_stalled_subscriber_never_stops_the_publisher_or_the_others(self) -> None:
        """Publishing 10 buffers' worth past a subscriber that never reads loses nothing else."""
        bus: EventBus[int] = EventBus(default_buffer=8)
        received: list[int | Missed] = []
        async with (
            bus.subscribe("t") as stalled,
            bus.subscribe("t", buffer=80) as live,
            trio.open_nursery() as nursery,
        ):

            async def reader() -> None:
                async for item in live:
                    received.append(item)

            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(80):
                assert bus.publish("t", i) == 2  # synchronous: it cannot wait on anyone
            await trio.testing.wait_all_tasks_blocked()
            assert received == list(range(80))
            assert stalled.statistics().buffer_used == 8
            bus.close()

    async def test_a_thousand_subscribers_each_get_every_item_in_order(self) -> None:
        """Fan-out to many concurrent readers delivers every item to each, in order."""
        bus: EventBus[int] = EventBus()
        results: dict[int, list[int | Missed]] = {}

        async def reader(index: int, task_status: trio.TaskStatus[None]) -> None:
            async with bus.subscribe("fan.out") as sub:
                task_status.started()
                results[index] = [item async for item in sub]

        async with trio.open_nursery() as nursery:
            for index in range(1000):
                await nursery.start(reader, index)
            assert bus.subscriber_count("fan.out") == 1000
            for i in range(20):
                bus.publish("fan.out", i)
                if i % 5 == 0:
                    await trio.testing.wait_all_tasks_blocked()
            bus.close()
        assert len(results) == 1000
        assert all(got == list(range(20)) for got in results.values())


class TestDropOldest:
    async def test_the_missed_notice_counts_exactly_and_precedes_the_next_item(self) -> None:
        """With buffer 3 and 10 items unread, the subscriber sees Missed(7) then the last 3."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=3) as sub:
            for i in range(10):
                bus.publish("t", i)
            assert sub.drain() == [Missed(7, topic="t"), 7, 8, 9]
            bus.publish("t", 10)
            assert sub.drain() == [10]  # no notice once caught up

    async def test_each_gap_gets_its_own_notice(self) -> None:
        """Notices are per gap: reading between bursts yields one notice per burst."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=2) as sub:
            for i in range(5):
                bus.publish("t", i)
            assert sub.receive_nowait() == Missed(3, topic="t")
            assert sub.receive_nowait() == 3
            for i in range(5, 9):
                bus.publish("t", i)
            # 4 was still buffered; 5 and 6 were dropped.
            assert sub.drain() == [Missed(3, topic="t"), 7, 8]

    async def test_a_gap_across_several_topics_has_no_single_topic(self) -> None:
        """`Missed.topic` is None when the dropped items came from different topics."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("s.*", buffer=1) as sub:
            bus.publish("s.a", 0)
            bus.publish("s.a", 1)
            bus.publish("s.b", 2)
            assert sub.drain() == [Missed(2, topic=None), 2]

    async def test_statistics_count_deliveries_drops_notices_and_peak(self) -> None:
        """The counters describe what happened to the subscriber's items."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=4) as sub:
            for i in range(6):
                bus.publish("t", i)
            sub.drain(3)  # Missed(2), 2, 3
            stats = sub.statistics()
            assert (stats.delivered, stats.dropped, stats.missed_notices) == (2, 2, 1)
            assert (stats.buffer_used, stats.buffer_peak, stats.max_buffer) == (2, 4, 4)
            assert stats.overflow is Overflow.DROP_OLDEST
            assert stats.pattern == "t"

    async def test_a_gap_is_logged_once_not_once_per_dropped_item(self) -> None:
        """Lagging is reported per gap, so a stalled subscriber cannot flood the log."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=2) as sub:
            with capture_logs() as logs:
                for i in range(100):
                    bus.publish("t", i)
                sub.drain()
                for i in range(3):
                    bus.publish("t", i)
        lagging = [entry for entry in logs if entry["event"] == "subscriber_lagging"]
        assert (
            lagging
            == [
                {
                    "event": "subscriber_lagging",
                    "log_level": "warning",
                    "pattern": "t",
                    "buffer": 2,
                    "topic": "t",
                }
            ]
            * 2
        )

    async def test_missed_rejects_a_non_positive_count(self) -> None:
        """A notice always reports at least one missed item."""
        with pytest.raises(ValueError, match="count"):
            Missed(0)


class TestDisconnect:
    async def test_overflow_ends_the_iteration_with_subscriber_overflow(self) -> None:
        """Buffered items are still delivered, then iteration raises, naming pattern and buffer."""
        bus: EventBus[int] = EventBus(default_overflow=Overflow.DISCONNECT)
        seen: list[int | Missed] = []
        async with bus.subscribe("job.*", buffer=3) as sub:
            for i in range(5):
                bus.publish("job.1", i)

            async def consume() -> None:
                async for item in sub:
                    seen.append(item)

            with pytest.raises(SubscriberOverflow) as info:
                await consume()
        assert seen == [0, 1, 2]
        assert info.value.pattern == "job.*"
        assert info.value.buffer == 3
        assert "'job.*'" in str(info.value)
        assert "3" in str(info.value)
        assert isinstance(info.value, trio.BrokenResourceError)

    async def test_a_disconnect_is_logged_with_pattern_and_buffer(self) -> None:
        """Operators can see which subscriber the bus dropped."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("a.*", buffer=1, overflow=Overflow.DISCONNECT):
            with capture_logs() as logs:
                for i in range(5):
                    bus.publish("a.b", i)
        assert logs == [
            {
                "event": "subscriber_disconnected",
                "log_level": "warning",
                "pattern": "a.*",
                "buffer": 1,
            }
        ]

    async def test_a_disconnected_subscriber_is_removed_at_once(self) -> None:
        """The overflowing publish already reaches one fewer subscriber after it."""
        bus: EventBus[int] = EventBus()
        async with (
            bus.subscribe("t", buffer=1, overflow=Overflow.DISCONNECT) as weak,
            bus.subscribe("t") as strong,
        ):
            assert bus.publish("t", 0) == 2
            bus.publish("t", 1)  # overflows `weak`
            assert bus.subscriber_count("t") == 1
            assert bus.publish("t", 2) == 1
            assert weak.statistics().dropped == 1
            assert strong.drain() == [0, 1, 2]


class TestLifecycle:
    async def test_leaving_the_context_unsubscribes(self) -> None:
        """After the block, publishes no longer reach the subscription."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t.*") as sub:
            assert bus.subscriber_count("t.x") == 1
        assert bus.subscriber_count("t.x") == 0
        assert bus.publish("t.x", 1) == 0
        with pytest.raises(trio.ClosedResourceError):
            sub.receive_nowait()

    async def test_leaving_the_context_discards_what_was_pending(self) -> None:
        """Buffered items and a pending `Missed` notice are freed with the subscription."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=1) as sub:
            bus.publish("t", 1)
            bus.publish("t", 2)
        assert sub.statistics().buffer_used == 0
        with pytest.raises(trio.ClosedResourceError):
            sub.receive_nowait()

    async def test_an_error_in_the_block_still_unsubscribes(self) -> None:
        """Unsubscribing does not depend on the block ending normally."""
        bus: EventBus[int] = EventBus()
        with pytest.raises(KeyError):
            async with bus.subscribe("t"):
                raise KeyError("boom")
        assert bus.subscriber_count("t") == 0

    async def test_cancellation_while_waiting_unsubscribes(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A subscriber cancelled inside `receive` leaves nothing registered or parked."""
        bus: EventBus[int] = EventBus()
        with trio.move_on_after(1) as scope:
            async with bus.subscribe("t") as sub:
                await sub.receive()
        assert scope.cancelled_caught
        assert bus.subscriber_count("t") == 0
        assert bus.publish("t", 1) == 0

    async def test_exiting_the_context_wakes_a_task_waiting_in_it(self) -> None:
        """A receiver parked on a subscription that is closed gets `ClosedResourceError`."""
        bus: EventBus[int] = EventBus()
        sub = bus.subscribe("t")
        failures: list[BaseException] = []

        async def receiver() -> None:
            try:
                await sub.receive()
            except trio.ClosedResourceError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery, sub:
            nursery.start_soon(receiver)
            await trio.testing.wait_all_tasks_blocked()
        assert len(failures) == 1

    async def test_closing_the_bus_ends_iteration_after_the_buffer_drains(self) -> None:
        """`close` is EndOfChannel for every subscriber: `async for` ends after buffered items."""
        bus: EventBus[int] = EventBus()
        got: list[int | Missed] = []
        async with bus.subscribe("t") as sub:
            bus.publish("t", 1)
            bus.publish("t", 2)
            bus.close()
            async for item in sub:
                got.append(item)
            with pytest.raises(trio.EndOfChannel):
                await sub.receive()
        assert got == [1, 2]
        assert bus.publish("t", 3) == 0

    async def test_closing_the_bus_wakes_waiting_receivers(self) -> None:
        """A subscriber parked in `async for` finishes its loop when the bus closes."""
        bus: EventBus[int] = EventBus()
        finished = trio.Event()

        async def reader() -> None:
            async with bus.subscribe("t") as sub:
                async for _ in sub:
                    pass
            finished.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            bus.close()
            bus.close()  # idempotent
        assert finished.is_set()
        assert bus.closed

    async def test_a_parked_receiver_keeps_what_it_was_woken_with(self) -> None:
        """An item (or the bus's end) handed to a waiting receiver survives a close right after."""
        bus: EventBus[int] = EventBus()
        outcomes: list[object] = []

        async def receiver(sub: Subscription[int]) -> None:
            try:
                outcomes.append(await sub.receive())
            except trio.EndOfChannel:
                outcomes.append("end")

        async with trio.open_nursery() as nursery:
            async with bus.subscribe("t") as first:
                nursery.start_soon(receiver, first)
                await trio.testing.wait_all_tasks_blocked()
                bus.publish("t", 7)  # the context exits before the receiver runs
            async with bus.subscribe("t") as second:
                nursery.start_soon(receiver, second)
                await trio.testing.wait_all_tasks_blocked()
                bus.close()
        assert outcomes == [7, "end"]

    async def test_subscribing_to_a_closed_bus_raises_bus_closed(self) -> None:
        """A closed bus takes no new subscribers."""
        bus: EventBus[int] = EventBus()
        bus.close()
        with pytest.raises(BusClosed, match="'t'"):
            async with bus.subscribe("t"):
                pass  # pragma: no cover

    async def test_receiving_before_entering_is_an_error(self) -> None:
        """A subscription is live only inside its `async with`."""
        bus: EventBus[int] = EventBus()
        sub = bus.subscribe("t")
        with pytest.raises(RuntimeError, match="async with"):
            await sub.receive()

    async def test_a_subscription_cannot_be_entered_twice(self) -> None:
        """Each `subscribe()` is one registration."""
        bus: EventBus[int] = EventBus()
        sub = bus.subscribe("t")
        async with sub:
            pass
        with pytest.raises(RuntimeError, match="once"):
            async with sub:
                pass  # pragma: no cover

    async def test_two_tasks_cannot_wait_on_one_subscription(self) -> None:
        """A second concurrent receiver gets `BusyResourceError`."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t") as sub, trio.open_nursery() as nursery:
            nursery.start_soon(sub.receive)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await sub.receive()
            bus.publish("t", 1)

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"buffer": 0}, ValueError),
            ({"buffer": 1.5}, TypeError),
            ({"overflow": "drop_oldest"}, TypeError),
        ],
    )
    async def test_bad_buffer_or_policy_is_rejected_at_subscribe(
        self, kwargs: dict[str, object], error: type[Exception]
    ) -> None:
        """Buffer sizes are ints >= 1 and policies are `Overflow` members."""
        bus: EventBus[int] = EventBus()
        with pytest.raises(error):
            bus.subscribe("t", **kwargs)  # type: ignore[arg-type]


class TestKeepingUp:
    """A subscriber catches up with a burst instead of taking one item per scheduling pass."""

    async def test_async_for_takes_a_buffered_burst_without_yielding_each_item(self) -> None:
        """After its first (checkpointing) item, `async for` takes up to 64 buffered items
        without a checkpoint; the 66th item checkpoints again.

        Deterministic: a cancelled scope turns the next checkpoint into `Cancelled`, so the count
        of items received before it is exactly the number taken without checkpointing (a ticker
        task would race the consumer within trio's randomly ordered scheduling pass)."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t") as sub:
            for i in range(200):
                bus.publish("t", i)
            received: list[int | Missed] = []
            with trio.CancelScope() as scope:
                async for item in sub:
                    received.append(item)
                    if len(received) == 1:
                        scope.cancel()
            assert received == list(range(65))
            assert sub.receive_nowait() == 65, "the checkpoint that was cancelled lost no item"

    async def test_async_for_still_waits_and_ends_like_receive(self) -> None:
        """With nothing buffered it waits for the publisher; a closed bus ends the loop."""
        bus: EventBus[int] = EventBus()
        got: list[int] = []
        async with bus.subscribe("t") as sub, trio.open_nursery() as nursery:

            async def publish_later() -> None:
                await trio.testing.wait_all_tasks_blocked()
                bus.publish("t", 1)
                await trio.testing.wait_all_tasks_blocked()
                bus.close()

            nursery.start_soon(publish_later)
            async for item in sub:
                assert isinstance(item, int)
                got.append(item)
        assert got == [1]

    async def test_a_cancelled_iteration_stops_within_the_budget(self) -> None:
        """Cancellation is noticed at the next checkpoint, at most 64 items later."""
        bus: EventBus[int] = EventBus(default_buffer=1000)
        taken = 0
        async with bus.subscribe("t") as sub:
            for i in range(500):
                bus.publish("t", i)
            with trio.CancelScope() as scope:
                async for _ in sub:
                    taken += 1
                    if taken == 10:
                        scope.cancel()
        assert 10 < taken <= 10 + 64

    async def test_receive_batch_takes_everything_buffered_at_once(self) -> None:
        """One call returns the whole burst (or `limit` of it), in order."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t") as sub:
            for i in range(10):
                bus.publish("t", i)
            assert await sub.receive_batch(limit=4) == [0, 1, 2, 3]
            assert await sub.receive_batch(limit=1) == [4]
            assert await sub.receive_batch() == [5, 6, 7, 8, 9]

    async def test_receive_batch_keeps_what_it_took_when_the_bus_closed_behind_it(self) -> None:
        """The end is reported by the next call, never instead of the items already taken."""
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t") as sub:
            bus.publish("t", 1)
            bus.close()
            assert await sub.receive_batch() == [1]
            with pytest.raises(trio.EndOfChannel):
                await sub.receive_batch()

    async def test_receive_batch_puts_the_notice_before_the_items(self) -> None:
        bus: EventBus[int] = EventBus()
        async with bus.subscribe("t", buffer=2) as sub:
            for i in range(5):
                bus.publish("t", i)
            assert await sub.receive_batch() == [Missed(3, topic="t"), 3, 4]
            stats = sub.statistics()
            assert (stats.delivered, stats.dropped, stats.missed_notices) == (2, 3, 1)
