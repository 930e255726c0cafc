"""`EventBus.statistics`: the bus's totals, ended subscriptions included, and its open ones."""

from __future__ import annotations

import pytest

from streamvisor.supervisor import (
    BusStatistics,
    EventBus,
    Missed,
    Overflow,
    SubscriberOverflow,
)


def totals(bus: EventBus[int]) -> tuple[int, int, int, int, int]:
    s = bus.statistics()
    return s.subscriptions, s.delivered, s.dropped, s.missed_notices, s.disconnected


class TestBusStatistics:
    def test_a_new_bus_has_counted_nothing(self) -> None:
        """No subscription, nothing delivered, dropped or noticed."""
        assert EventBus[int]().statistics() == BusStatistics(0, 0, 0, 0, 0)

    async def test_open_subscriptions_are_counted_until_their_block_exits(self) -> None:
        """A subscription counts from entering its block to leaving it; one made but never
        entered does not count."""
        bus = EventBus[int]()
        bus.subscribe("a")  # never entered
        async with bus.subscribe("a"), bus.subscribe("b.*"):
            assert bus.statistics().subscriptions == 2
        assert bus.statistics().subscriptions == 0

    async def test_drops_not_yet_reported_stay_counted_when_the_subscriber_leaves(self) -> None:
        """A subscriber that leaves with a gap it never read keeps its drops in the totals: a
        dropped counter never goes down."""
        bus = EventBus[int]()
        async with bus.subscribe("t", buffer=2):
            for item in range(5):
                bus.publish("t", item)
            assert totals(bus)[2] == 3
        assert totals(bus)[2] == 3

    async def test_drops_and_missed_notices_survive_the_subscription(self) -> None:
        """A full buffer drops; the `Missed` notice is counted when received; both stay in the
        totals after the subscription ends, beside what was delivered."""
        bus = EventBus[int]()
        async with bus.subscribe("t", buffer=2) as sub:
            for item in range(5):
                bus.publish("t", item)
            assert totals(bus) == (1, 0, 3, 0, 0)
            assert sub.drain() == [Missed(3, topic="t"), 3, 4]
            assert totals(bus) == (1, 2, 3, 1, 0)
        assert totals(bus) == (0, 2, 3, 1, 0)
        async with bus.subscribe("t", buffer=1) as again:
            bus.publish("t", 5)
            assert await again.receive() == 5
        assert totals(bus) == (0, 3, 3, 1, 0)

    async def test_a_gap_not_yet_reported_counts_as_dropped_once(self) -> None:
        """Items dropped in a gap the subscriber never learnt of (it left first) count once,
        before and after it leaves."""
        bus = EventBus[int]()
        async with bus.subscribe("t", buffer=1):
            bus.publish_many("t", [1, 2, 3])
            assert bus.statistics().dropped == 2
        assert bus.statistics().dropped == 2
        assert bus.statistics().missed_notices == 0

    async def test_a_disconnected_subscriber_is_counted_and_stays_open_until_it_leaves(
        self,
    ) -> None:
        """A DISCONNECT subscriber that overflows is counted as disconnected (and its overflowing
        item as dropped); it is still open until its block exits."""
        bus = EventBus[int]()
        with pytest.raises(SubscriberOverflow):  # noqa: PT012 (the overflow is raised on receive)
            async with bus.subscribe("t", buffer=1, overflow=Overflow.DISCONNECT) as sub:
                bus.publish("t", 1)
                bus.publish("t", 2)
                assert totals(bus) == (1, 0, 1, 0, 1)
                assert await sub.receive() == 1
                await sub.receive()
        assert totals(bus) == (0, 1, 1, 0, 1)

    async def test_a_closed_bus_keeps_its_totals(self) -> None:
        """Closing the bus ends the subscriptions; what they received is still counted."""
        bus = EventBus[int]()
        async with bus.subscribe("**") as sub:
            bus.publish("x", 1)
            bus.close()
            assert [item async for item in sub] == [1]
        assert totals(bus) == (0, 1, 0, 0, 0)
