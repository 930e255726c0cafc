"""Leases, fencing tokens and take-over: a node that lost its lease can never write again
with its old token, and its work moves to exactly one survivor."""

from __future__ import annotations

import threading
import time
from typing import Any

import attrs
import pytest
import trio

from streamvisor.actors.background._records import TrackedResponse
from streamvisor.cluster import ClusterStore, Fenced, LeaseLost, NotOwner

from ._support import LONG, SHORT, T0, eventually, node, rec, sql, until_expired


class TestTokens:
    async def test_every_join_of_a_node_id_gets_a_higher_token(self, pg_dsn: str) -> None:
        """Tokens are never reused: not after a restart of the node id, not after a rejoin."""
        async with node(pg_dsn, "n1") as first:
            assert first.token == 1
        async with node(pg_dsn, "n1") as second:
            assert second.token == 2
            assert await second.rejoin() == 3
            assert second.token == 3
        assert sql(pg_dsn, "SELECT node_id, token FROM nodes") == [("n1", 3)]

    async def test_a_restarted_node_id_fences_its_previous_incarnation(self, pg_dsn: str) -> None:
        """Two processes with one node id: the later join wins, the earlier one is fenced."""
        async with node(pg_dsn, "n1") as old, node(pg_dsn, "n1") as new:
            await new.add(rec("mine"))
            with pytest.raises(Fenced) as info:
                await old.add(rec("stale"))
            assert (info.value.node_id, info.value.token) == ("n1", 1)
            assert "n1" in str(info.value)
            assert "1" in str(info.value)
            with pytest.raises(LeaseLost, match="token is now 2"):
                await old.renew()
        assert sql(pg_dsn, "SELECT response_id, token FROM responses") == [("mine", 2)]


class TestLease:
    async def test_renew_extends_the_lease_on_the_database_clock(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1", ttl=LONG) as store:
            left = await store.renew()
            assert LONG - 1 < left <= LONG
            rows = sql(
                pg_dsn, "SELECT extract(epoch FROM lease_expires - clock_timestamp()) FROM nodes"
            )
            assert LONG - 1 < float(rows[0][0]) <= LONG

    async def test_the_nodes_own_clock_plays_no_part(
        self, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A node whose wall clock is a day off still holds (and renews) its lease."""
        async with node(pg_dsn, "n1", ttl=LONG) as store:
            monkeypatch.setattr(time, "time", lambda: 86_400.0)
            assert await store.renew() > LONG - 1
            await store.add(rec())
            assert await store.expired_nodes() == []

    async def test_an_expired_lease_cannot_be_renewed(self, pg_dsn: str) -> None:
        """Once the lease passed (database clock), renew raises LeaseLost: the token is dead."""
        async with node(pg_dsn, "n1", ttl=SHORT) as store:
            await until_expired(pg_dsn, "n1")
            with pytest.raises(LeaseLost, match="expired") as info:
                await store.renew()
            assert (info.value.node_id, info.value.token) == ("n1", 1)

    async def test_a_node_whose_lease_expired_cannot_write(self, pg_dsn: str) -> None:
        """Every write of an expired token raises Fenced, and nothing is written."""
        async with node(pg_dsn, "n1", ttl=SHORT) as store:
            await store.add(rec("a"))
            await store.claim_session("s1")
            await until_expired(pg_dsn, "n1")
            for call in (
                store.add(rec("b")),
                store.update("a", owner="x"),
                store.record_status("a", "completed", at=T0 + 1),
                store.record_cursor("a", 3),
                store.record_poll("a", at=T0 + 1),
                store.remove("a"),
                store.purge_terminal(0, T0),
                store.claim_session("s2"),
                store.release_session("s1"),
            ):
                with pytest.raises(Fenced):
                    await call
            assert await store.get("a") == rec("a")  # reads still work
        assert sql(pg_dsn, "SELECT response_id, status, owner FROM responses") == [
            ("a", "queued", None)
        ]
        assert sql(pg_dsn, "SELECT session_id FROM sessions") == [("s1",)]

    async def test_rejoin_after_a_lost_lease_writes_again(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1", ttl=SHORT) as store:
            await store.add(rec("a"))
            await until_expired(pg_dsn, "n1")
            with pytest.raises(LeaseLost):
                await store.renew()
            assert await store.rejoin() == 2
            await store.record_cursor("a", 1)
        assert sql(pg_dsn, "SELECT token, cursor FROM responses") == [(2, 1)]

    async def test_other_nodes_lists_every_node_that_joined_alive_or_not(self, pg_dsn: str) -> None:
        """The nodes whose events a node asks JetStream for: a node that left stays listed
        (its events may still be in flight), the asking node is not."""
        async with node(pg_dsn, "n1") as n1, node(pg_dsn, "n2") as n2:
            assert await n1.other_nodes() == ["n2"]
            async with node(pg_dsn, "n3") as n3:
                await n3.leave()
            assert await n1.other_nodes() == ["n2", "n3"]
            assert await n2.other_nodes() == ["n1", "n3"]

    async def test_a_node_taken_over_long_ago_is_not_listed_until_it_joins_again(
        self, pg_dsn: str
    ) -> None:
        """Nodes under fresh ids (a pod name each start) must not grow every filter forever."""
        async with node(pg_dsn, "n1") as n1:
            async with node(pg_dsn, "n2") as n2:
                await n2.leave()
            assert await n1.take_over("n2") == []
            # Its lease ran out just now: what it published may still be on its way.
            assert await n1.other_nodes() == ["n2"]
            assert await n1.other_nodes(settled_after=0.0) == []
            async with node(pg_dsn, "n2"):  # it joins again
                assert await n1.other_nodes(settled_after=0.0) == ["n2"]

    async def test_leave_expires_the_lease_at_once(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1") as leaving, node(pg_dsn, "n2") as survivor:
            await leaving.add(rec("a"))
            assert await survivor.expired_nodes() == []
            await leaving.leave()
            assert await survivor.expired_nodes() == ["n1"]
            with pytest.raises(Fenced):
                await leaving.add(rec("b"))
            assert await survivor.take_over("n1") == [rec("a")]
            assert await survivor.expired_nodes() == []  # taken over once, not at every look
            assert await survivor.take_over("n1") is None


class TestTakeOver:
    async def test_a_survivor_takes_over_records_and_sessions_and_fences_the_dead(
        self, pg_dsn: str
    ) -> None:
        async with node(pg_dsn, "n1", ttl=SHORT) as dead, node(pg_dsn, "n2") as survivor:
            await dead.add(rec("b", created_at=T0 + 1))
            await dead.add(rec("a"))
            await dead.add(rec("done", status="completed", terminal_at=T0))
            await dead.claim_session("s1")
            await survivor.active()  # the mirror is loaded: take-over must show in it
            await until_expired(pg_dsn, "n1")
            assert await survivor.expired_nodes() == ["n1"]

            taken = await survivor.take_over("n1")

            assert taken == [rec("a"), rec("b", created_at=T0 + 1)]  # active, oldest first
            assert survivor.active_nowait() == taken
            assert await survivor.session_owner("s1") == "n2"
            assert await survivor.node_sessions() == ["s1"]
            assert sorted(sql(pg_dsn, "SELECT response_id, node_id, token FROM responses")) == [
                ("a", "n2", 1),
                ("b", "n2", 1),
                ("done", "n2", 1),
            ]
            # The dead node's token was bumped: renewing fails, its writes are fenced.
            assert sql(pg_dsn, "SELECT token FROM nodes WHERE node_id = 'n1'") == [(2,)]
            with pytest.raises(LeaseLost, match="token is now 2"):
                await dead.renew()
            with pytest.raises(Fenced):
                await dead.record_cursor("a", 9)
            assert await survivor.expired_nodes() == []
            # Back with a new token, it owns nothing it had; once expired again, it can be taken
            # over again.
            assert await dead.rejoin() == 3
            with pytest.raises(NotOwner):
                await dead.record_cursor("a", 9)
            assert await dead.active() == []
            assert await dead.node_sessions() == []
            await survivor.record_status("a", "completed", at=T0 + 2)

    async def test_a_live_node_unknown_node_or_oneself_is_not_taken_over(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1") as live, node(pg_dsn, "n2") as other:
            await live.add(rec("a"))
            assert await other.take_over("n1") is None
            assert await other.take_over("nobody") is None
            assert await live.take_over("n1") is None
            assert sql(pg_dsn, "SELECT node_id FROM responses") == [("n1",)]
            assert sql(pg_dsn, "SELECT token FROM nodes WHERE node_id = 'n1'") == [(1,)]

    async def test_a_fenced_node_takes_nothing_over(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1", ttl=SHORT) as dead, node(pg_dsn, "n2", ttl=SHORT) as late:
            await dead.add(rec("a"))
            await until_expired(pg_dsn, "n1")
            await until_expired(pg_dsn, "n2")
            with pytest.raises(Fenced):
                await late.take_over("n1")
            assert sql(pg_dsn, "SELECT node_id FROM responses") == [("n1",)]
            assert sql(pg_dsn, "SELECT token FROM nodes WHERE node_id = 'n1'") == [(1,)]

    async def test_two_racing_survivors_get_each_record_exactly_once(self, pg_dsn: str) -> None:
        taken: dict[str, list[TrackedResponse]] = {}

        async def take(store: ClusterStore) -> None:
            taken[store.node_id] = await store.take_over("n1") or []

        async with node(pg_dsn, "n1", ttl=SHORT) as dead:
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(dead.add, rec(f"r{i:02}", created_at=T0 + i))
            async with node(pg_dsn, "n2") as two, node(pg_dsn, "n3") as three:
                await until_expired(pg_dsn, "n1")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(take, two)
                    nursery.start_soon(take, three)
        assert sorted(len(records) for records in taken.values()) == [0, 20]
        winner = next(node_id for node_id, records in taken.items() if records)
        assert sql(pg_dsn, "SELECT DISTINCT node_id FROM responses") == [(winner,)]

    async def test_a_take_over_waits_for_a_write_under_way_and_keeps_it(self, pg_dsn: str) -> None:
        """A write that passed its fence before the lease ran out holds the node's row: the
        take-over waits for it to commit, then moves the record with the write in it."""
        running, gate = threading.Event(), threading.Event()

        def slow_write(tx: Any) -> None:
            tx.write(attrs.evolve(tx.require_own("a"), cursor=42))
            running.set()
            gate.wait(5)

        async with node(pg_dsn, "n1", ttl=SHORT) as dead, node(pg_dsn, "n2") as survivor:
            await dead.add(rec("a"))
            taken: list[TrackedResponse] = []

            async def take_over() -> None:
                await until_expired(pg_dsn, "n1")
                taken.extend(await survivor.take_over("n1") or [])

            async def blocked_on_a_lock() -> bool:
                rows = await trio.to_thread.run_sync(
                    sql,
                    pg_dsn,
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()",
                )
                return bool(rows[0][0])

            async with trio.open_nursery() as nursery:
                store: Any = dead
                nursery.start_soon(store._run, "slow_write", slow_write)
                await eventually(lambda: trio.to_thread.run_sync(running.is_set))
                nursery.start_soon(take_over)
                await eventually(blocked_on_a_lock)
                assert taken == []
                gate.set()
        assert taken == [rec("a", cursor=42)]
        assert sql(pg_dsn, "SELECT node_id, cursor FROM responses") == [("n2", 42)]
