"""`PostgresServer`: a throwaway PostgreSQL on a loopback port, restartable where it was."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from streamvisor.cluster import PostgresServer

from .conftest_pg import Engine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestPostgresServer:
    def test_it_listens_on_loopback_only(self, pg_stoppable: PostgresServer) -> None:
        assert pg_stoppable.dsn == f"postgresql://postgres@127.0.0.1:{pg_stoppable.port}/postgres"
        with psycopg.connect(pg_stoppable.dsn) as conn:
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings "
                    "WHERE name IN ('listen_addresses', 'unix_socket_directories')"
                ).fetchall()
            )
        assert settings == {"listen_addresses": "127.0.0.1", "unix_socket_directories": ""}

    def test_a_restart_keeps_the_port_and_the_data(self, pg_stoppable: PostgresServer) -> None:
        pg_dsn = pg_stoppable.create_database("sv_server_restart")
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        port = pg_stoppable.port
        pg_stoppable.stop()
        pg_stoppable.stop()  # twice is harmless
        assert not pg_stoppable.running()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(pg_dsn, connect_timeout=2).close()
        pg_stoppable.start()
        pg_stoppable.start()  # already running: nothing happens
        assert pg_stoppable.port == port
        with psycopg.connect(pg_dsn) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(1,)]

    def test_a_killed_engine_restarts_with_every_commit(self, pg_stoppable: PostgresServer) -> None:
        pg_dsn = pg_stoppable.create_database("sv_server_kill")
        with psycopg.connect(pg_dsn) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept SELECT generate_series(1, 100)")
        pg_stoppable.kill()
        assert not pg_stoppable.running()
        pg_stoppable.start()
        with psycopg.connect(pg_dsn) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchall() == [(100,)]

    def test_a_new_server_starts_on_the_port_it_is_given(self, pg_scratch: Path) -> None:
        port = free_port()
        with PostgresServer(pg_scratch, port=port) as server:
            assert server.running()
            assert server.port == port
            with psycopg.connect(server.dsn) as conn:
                assert conn.execute("SELECT 1").fetchall() == [(1,)]
        assert not server.running()
        again = PostgresServer(pg_scratch)  # a new owner of the same directory: the same port
        with again:
            assert again.port == port

    def test_a_database_name_is_checked(self, pg_engine: Engine) -> None:
        server = pg_engine.server or PostgresServer(Path("unused"))
        with pytest.raises(ValueError, match="database name"):
            server.create_database('x"; DROP DATABASE postgres; --')
