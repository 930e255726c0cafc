"""PostgreSQL going away: calls raise EngineUnavailable (never the password), nothing crashes,
and the store works again by itself once the pg_engine is back."""

from __future__ import annotations

import itertools

import pytest
import trio

from streamvisor.cluster import ClusterStore, EngineUnavailable, PostgresServer

from ._support import T0, eventually, node, rec

PASSWORD = "hunter2-not-for-logs"
_names = itertools.count()


def database_with_password(server: PostgresServer) -> str:
    """A fresh database on *server*, and a DSN carrying a password (trust auth ignores it)."""
    database = f"sv_engine_{server.port}_{next(_names)}"
    server.create_database(database)
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{server.port}/{database}"


async def works_again(store: ClusterStore, response_id: str) -> None:
    async def answered() -> bool:
        try:
            await store.find(response_id)
        except EngineUnavailable:
            return False
        return True

    await eventually(answered, within=15.0, every=0.05)


class TestEngineFailure:
    async def test_a_stopped_engine_is_unavailable_then_the_store_recovers(
        self, pg_stoppable: PostgresServer
    ) -> None:
        pg_dsn = database_with_password(pg_stoppable)
        async with node(pg_dsn, connect_timeout=0.25) as store:
            await store.add(rec("before"))
            await trio.to_thread.run_sync(pg_stoppable.stop)
            for call in (store.add(rec("during")), store.renew()):
                with pytest.raises(EngineUnavailable) as info:
                    await call
                assert isinstance(info.value, ConnectionError)
                assert info.value.node_id == "n1"
                assert PASSWORD not in str(info.value)
                assert PASSWORD not in repr(info.value.__cause__)
            await trio.to_thread.run_sync(pg_stoppable.start)
            await works_again(store, "before")
            assert await store.get("before") == rec("before")
            await store.add(rec("after"))
            assert await store.renew() > 0
            assert [r.response_id for r in await store.all()] == ["before", "after"]

    async def test_a_killed_engine_loses_no_committed_record(
        self, pg_stoppable: PostgresServer
    ) -> None:
        pg_dsn = database_with_password(pg_stoppable)
        async with node(pg_dsn, connect_timeout=0.25) as store:
            async with trio.open_nursery() as nursery:
                for i in range(50):
                    nursery.start_soon(store.add, rec(f"r{i:02}", created_at=T0 + i))
            await trio.to_thread.run_sync(pg_stoppable.kill)
            with pytest.raises(EngineUnavailable):
                await store.record_cursor("r00", 1)
            await trio.to_thread.run_sync(pg_stoppable.start)
            await works_again(store, "r00")
            assert len(await store.all()) == 50

    async def test_opening_without_an_engine_is_unavailable(
        self, pg_stoppable: PostgresServer
    ) -> None:
        pg_dsn = database_with_password(pg_stoppable)
        await trio.to_thread.run_sync(pg_stoppable.stop)
        with pytest.raises(EngineUnavailable) as info:
            async with node(pg_dsn, connect_timeout=0.25):
                pass
        assert PASSWORD not in str(info.value)
