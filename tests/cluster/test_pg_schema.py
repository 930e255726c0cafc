"""The cluster database's versioned migrations."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
import trio

from streamvisor.actors.background._errors import StoreError, UnsupportedSchema
from streamvisor.cluster import MIGRATIONS, SCHEMA_VERSION, Migration

from ._support import node, rec, sql


def tables(pg_dsn: str) -> set[str]:
    rows = sql(pg_dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row[0] for row in rows}


def versions(pg_dsn: str) -> list[int]:
    return [row[0] for row in sql(pg_dsn, "SELECT version FROM streamvisor_schema ORDER BY 1")]


class TestMigrations:
    async def test_an_empty_database_is_migrated_to_the_current_version(self, pg_dsn: str) -> None:
        async with node(pg_dsn):
            pass
        assert SCHEMA_VERSION == len(MIGRATIONS) >= 2
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))
        assert tables(pg_dsn) == {"streamvisor_schema", "nodes", "responses", "sessions"}

    async def test_a_version_1_database_is_upgraded_and_keeps_its_records(
        self, pg_dsn: str
    ) -> None:
        """A database left by code that knew only v1 (no session directory) is upgraded."""
        async with node(pg_dsn, migrations=MIGRATIONS[:1]) as old:
            await old.add(rec())
        assert versions(pg_dsn) == [1]
        assert "sessions" not in tables(pg_dsn)
        async with node(pg_dsn) as new:
            assert new.token == 2
            assert await new.get("resp_1") == rec()
            assert await new.claim_session("s1") == "n1"
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))

    async def test_the_previous_version_is_upgraded_with_its_nodes_and_sessions(
        self, pg_dsn: str
    ) -> None:
        """A database of the version before this one (v2: no ``taken_by``) keeps its nodes,
        tokens, records and session directory, and a node left behind is taken over once."""
        async with node(pg_dsn, "gone", migrations=MIGRATIONS[:-1]) as old:
            await old.add(rec())
            await old.claim_session("s1")
            await old.leave()
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION))
        async with node(pg_dsn, "n2") as new:
            assert await new.get("resp_1") == rec()
            assert await new.expired_nodes() == ["gone"]
            assert await new.take_over("gone") == [rec()]
            assert await new.session_owner("s1") == "n2"
            assert await new.expired_nodes() == []
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))

    async def test_nodes_starting_at_once_migrate_exactly_once(self, pg_dsn: str) -> None:
        counts = [0] * len(MIGRATIONS)
        lock = threading.Lock()

        def counted(index: int, migration: Migration) -> Migration:
            def run(conn: Any) -> None:
                with lock:
                    counts[index] += 1
                migration(conn)

            return run

        migrations = [counted(i, m) for i, m in enumerate(MIGRATIONS)]
        tokens: dict[str, int] = {}

        async def start(node_id: str) -> None:
            async with node(pg_dsn, node_id, migrations=migrations) as store:
                tokens[node_id] = store.token

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(start, f"n{i}")
        assert counts == [1] * len(MIGRATIONS)
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))
        assert tokens == {f"n{i}": 1 for i in range(6)}

    async def test_a_newer_database_is_refused(self, pg_dsn: str) -> None:
        async with node(pg_dsn):
            pass
        sql(pg_dsn, "INSERT INTO streamvisor_schema (version) VALUES (%s)", SCHEMA_VERSION + 1)
        with pytest.raises(UnsupportedSchema, match=f"version {SCHEMA_VERSION + 1}"):
            async with node(pg_dsn):
                pass

    async def test_a_failing_migration_leaves_the_previous_version_intact(
        self, pg_dsn: str
    ) -> None:
        def broken(conn: Any) -> None:
            conn.execute("CREATE TABLE half_done (x int)")
            conn.execute("SELECT * FROM no_such_table")

        with pytest.raises(StoreError, match="no_such_table") as info:
            async with node(pg_dsn, migrations=[*MIGRATIONS, broken]):
                pass
        assert isinstance(info.value.__cause__, psycopg.Error)
        assert versions(pg_dsn) == list(range(1, SCHEMA_VERSION + 1))
        assert "half_done" not in tables(pg_dsn)
