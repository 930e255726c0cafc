"""PostgreSQL fixtures: one real server for the whole session, one database per test.

The server is a `PostgresServer` in a temporary directory, started once (about 0.7 s, initdb
included), unless ``STREAMVISOR_TEST_POSTGRES_DSN`` names a running server to use instead (its
user must be allowed to create databases). Each test gets a fresh database, so tests never see
each other's nodes, records or schema.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from streamvisor.cluster import PostgresServer

__all__ = ["Engine", "pg_dsn", "pg_engine", "pg_scratch", "pg_stoppable"]

_ENV_DSN = "STREAMVISOR_TEST_POSTGRES_DSN"
_names = itertools.count()


class Engine:
    """The PostgreSQL the tests use: fresh databases on demand, and (when the tests started it
    themselves) the server, to stop and restart."""

    def __init__(self, admin_dsn: str, server: PostgresServer | None) -> None:
        self.admin_dsn = admin_dsn
        self.server = server

    def create_database(self) -> str:
        name = f"sv_test_{os.getpid()}_{next(_names)}"
        if self.server is not None:
            return self.server.create_database(name)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        info = psycopg.conninfo.conninfo_to_dict(self.admin_dsn)
        info["dbname"] = name
        return psycopg.conninfo.make_conninfo(**info)


@contextmanager
def _scratch() -> Iterator[Path]:
    # Not under pytest's basetemp: as root, the server runs as another user that must reach
    # its directory, and every pytest session started meanwhile (another worktree's, say)
    # resets ``/tmp/pytest-of-root`` to 0700. /tmp itself stays open.
    path = Path(tempfile.mkdtemp(prefix="streamvisor-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pg_scratch() -> Iterator[Path]:
    """A temporary directory a server started by this test can live in."""
    with _scratch() as directory:
        yield directory


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    """The session's PostgreSQL (started here unless the environment names one)."""
    external = os.environ.get(_ENV_DSN)
    if external:
        yield Engine(external, None)
        return
    with _scratch() as directory, PostgresServer(directory) as server:
        yield Engine(server.dsn, server)


@pytest.fixture
def pg_dsn(pg_engine: Engine) -> str:
    """A fresh, empty database of its own for this test."""
    return pg_engine.create_database()


@pytest.fixture
def pg_stoppable(pg_engine: Engine, pg_scratch: Path) -> Iterator[PostgresServer]:
    """A server this test may stop, kill and restart: the session's own (restarted afterwards
    whatever happened), or a private one when the session uses an external server."""
    if pg_engine.server is not None:
        try:
            yield pg_engine.server
        finally:
            pg_engine.server.start()
        return
    with PostgresServer(pg_scratch) as server:
        yield server
