"""The session directory: which node runs which session."""

from __future__ import annotations

import pytest
import trio

from streamvisor.cluster import ClusterStore

from ._support import SHORT, node, sql, until_expired


class TestSessionDirectory:
    async def test_an_unclaimed_session_goes_to_the_claimer(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1") as store:
            assert await store.session_owner("s1") is None
            assert await store.claim_session("s1") == "n1"
            assert await store.claim_session("s1") == "n1"  # claiming again is harmless
            assert await store.session_owner("s1") == "n1"
            assert await store.node_sessions() == ["s1"]

    async def test_a_session_of_a_live_node_stays_with_it(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1") as one, node(pg_dsn, "n2") as two:
            assert await one.claim_session("s1") == "n1"
            assert await two.claim_session("s1") == "n1"
            assert await two.node_sessions() == []
            assert sql(pg_dsn, "SELECT node_id, token FROM sessions") == [("n1", 1)]

    async def test_a_session_of_an_expired_node_is_taken_by_the_claimer(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1", ttl=SHORT) as dead, node(pg_dsn, "n2") as live:
            await dead.claim_session("s1")
            await until_expired(pg_dsn, "n1")
            assert await live.claim_session("s1") == "n2"
            assert sql(pg_dsn, "SELECT node_id, token FROM sessions") == [("n2", live.token)]
            assert await dead.node_sessions() == []

    async def test_concurrent_claims_agree_on_one_owner(self, pg_dsn: str) -> None:
        owners: list[str] = []
        async with node(pg_dsn, "n1") as one, node(pg_dsn, "n2") as two:

            async def claim(store: ClusterStore) -> None:
                owners.append(await store.claim_session("s1"))

            async with trio.open_nursery() as nursery:
                for store in (one, two, one, two):
                    nursery.start_soon(claim, store)
        assert len(set(owners)) == 1

    async def test_release_drops_only_this_nodes_claim(self, pg_dsn: str) -> None:
        async with node(pg_dsn, "n1") as one, node(pg_dsn, "n2") as two:
            await one.claim_session("s1")
            await two.claim_session("s2")
            await two.release_session("s1")  # not n2's: nothing happens
            await two.release_session("never-claimed")
            assert await two.session_owner("s1") == "n1"
            await one.release_session("s1")
            assert await two.session_owner("s1") is None
            assert await two.claim_session("s1") == "n2"
            assert await two.node_sessions() == ["s2", "s1"]  # in claim order

    async def test_a_session_id_must_not_be_empty(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            with pytest.raises(ValueError, match="session_id"):
                await store.claim_session("")
