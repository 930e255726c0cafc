"""Clustered mode: several daemons as one system, with PostgreSQL as the system of record."""

from __future__ import annotations

from ._postgres_server import PostgresServer
