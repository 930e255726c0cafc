"""The cluster database's schema and its versioned migrations.

``streamvisor_schema`` holds one row per applied version. Each missing version is applied in a
transaction of its own that first takes a transaction-scoped advisory lock: N nodes starting at
once serialise on it, and each re-reads the version under the lock, so every migration runs
exactly once. DDL is transactional in PostgreSQL: a migration that fails leaves the previous
version intact. A database newer than the code is refused (``UnsupportedSchema``).

Version 1: ``nodes`` (leases, fencing tokens) and ``responses`` (the registry, keyed by
namespace and response id, with the owning node and the token it last wrote with). Version 2:
``sessions`` (the session directory) and the index the purge of terminal records uses.
Version 3: ``nodes.taken_by``, the survivor that took a dead node over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import psycopg
import structlog
from psycopg.rows import DictRow

from streamvisor.actors.background._errors import StoreError, UnsupportedSchema
from streamvisor.actors.background._records import RESPONSE_STATUSES, TERMINAL_STATUSES

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Connection", "Migration", "migrate"]

_log = structlog.get_logger("streamvisor.cluster.store")

#: The store's connections return rows as dicts.
Connection = psycopg.Connection[DictRow]

#: The advisory lock every migration transaction takes: N nodes starting at once migrate once.
_MIGRATION_LOCK: Final = 0x73747276_73636D61  # "strvscma"

#: A migration takes the schema from version ``i`` to ``i + 1`` on the connection it is given,
#: inside the transaction that also records the new version (DDL is transactional in
#: PostgreSQL: a failed migration leaves the old version intact). It must not commit.
Migration = Callable[[Connection], None]


def _v1_core(conn: Connection) -> None:
    """Nodes with their leases and fencing tokens, and the responses they own."""
    statuses = ", ".join(f"'{s}'" for s in sorted(RESPONSE_STATUSES))
    terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
    conn.execute(
        """
        CREATE TABLE nodes (
            node_id       text PRIMARY KEY,
            token         bigint NOT NULL CHECK (token > 0),
            lease_expires timestamptz NOT NULL,
            started_at    timestamptz NOT NULL,
            renewed_at    timestamptz NOT NULL
        )
        """
    )
    conn.execute(
        f"""
        CREATE TABLE responses (
            namespace      text NOT NULL,
            response_id    text NOT NULL,
            node_id        text NOT NULL REFERENCES nodes (node_id),
            token          bigint NOT NULL,
            seq            bigint GENERATED ALWAYS AS IDENTITY,
            status         text NOT NULL CHECK (status IN ({statuses})),
            model          text NOT NULL,
            owner          text,
            mode           text NOT NULL DEFAULT 'poll',
            created_at     double precision NOT NULL,
            updated_at     double precision NOT NULL,
            last_polled_at double precision,
            cursor         bigint CHECK (cursor IS NULL OR cursor >= 0),
            poll_attempts  integer NOT NULL DEFAULT 0,
            error_count    integer NOT NULL DEFAULT 0,
            terminal_at    double precision,
            last_error     text,
            metadata       jsonb NOT NULL DEFAULT '{{}}',
            request        jsonb NOT NULL DEFAULT '{{}}',
            PRIMARY KEY (namespace, response_id),
            CHECK ((status IN ({terminal})) = (terminal_at IS NOT NULL))
        )
        """
    )
    conn.execute(
        "CREATE INDEX responses_active ON responses (node_id, namespace, created_at, seq) "
        "WHERE terminal_at IS NULL"
    )


def _v2_sessions(conn: Connection) -> None:
    """The session directory (which node runs which session), and the index purges use."""
    conn.execute(
        """
        CREATE TABLE sessions (
            session_id text PRIMARY KEY,
            node_id    text NOT NULL REFERENCES nodes (node_id),
            token      bigint NOT NULL,
            claimed_at timestamptz NOT NULL
        )
        """
    )
    conn.execute("CREATE INDEX sessions_node ON sessions (node_id, claimed_at)")
    conn.execute(
        "CREATE INDEX responses_terminal ON responses (node_id, namespace, terminal_at) "
        "WHERE terminal_at IS NOT NULL"
    )


def _v3_taken_by(conn: Connection) -> None:
    """Who took a dead node over (NULL while it is alive or not yet taken over), so that a dead
    node is taken over once, not at every look; a node that joins again clears it."""
    conn.execute("ALTER TABLE nodes ADD COLUMN taken_by text")


#: ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``; append, never edit a released one.
MIGRATIONS: Final[list[Migration]] = [_v1_core, _v2_sessions, _v3_taken_by]
#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)


def migrate(conn: Connection, migrations: list[Migration]) -> None:
    """Apply the missing migrations, one transaction each, under the advisory lock."""
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS streamvisor_schema ("
                "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            row = conn.execute("SELECT COALESCE(MAX(version), 0) AS v FROM streamvisor_schema")
            current = int(_one(row)["v"])
            if current > len(migrations):
                raise UnsupportedSchema(
                    f"the cluster database has schema version {current}; this streamvisor "
                    f"understands up to {len(migrations)} (was it written by a newer version?)"
                )
            if current == len(migrations):
                return
            migrations[current](conn)
            conn.execute("INSERT INTO streamvisor_schema (version) VALUES (%s)", (current + 1,))
        _log.info("cluster.migrated", to_version=current + 1)


def _one(cursor: psycopg.Cursor[DictRow]) -> DictRow:
    row = cursor.fetchone()
    if row is None:  # pragma: no cover - every caller's statement returns a row
        raise StoreError("the database returned no row where one was certain")
    return row
