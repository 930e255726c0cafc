"""Helpers of the cluster store's tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
import trio

from streamvisor.actors.background._records import TrackedResponse
from streamvisor.cluster import ClusterStore

T0 = 1_700_000_000.0
NAMESPACE = "https://api.example.test/v1"
#: A lease long enough never to run out by accident during a test.
LONG = 30.0
#: A lease short enough to expire within a test (real time, the database's clock).
SHORT = 0.3


def rec(response_id: str = "resp_1", status: str = "queued", **kw: Any) -> TrackedResponse:
    kw.setdefault("created_at", T0)
    return TrackedResponse(response_id=response_id, status=status, model="o3-pro", **kw)


def node(
    dsn: str, node_id: str = "n1", *, ttl: float = LONG, **kw: Any
) -> AbstractAsyncContextManager[ClusterStore]:
    kw.setdefault("namespace", NAMESPACE)
    kw.setdefault("connect_timeout", 1.0)
    return ClusterStore.open(dsn, node_id=node_id, lease_ttl=ttl, **kw)


def sql(dsn: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Run *query* on a plain connection (the raw truth, or a change behind the store's back)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(query, args or None)
        return cursor.fetchall() if cursor.description else []


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 5.0, every: float = 0.02
) -> None:
    """Poll *check* until it is true; fail after *within* seconds."""
    with trio.fail_after(within):
        while not await check():
            await trio.sleep(every)


async def until_expired(dsn: str, node_id: str) -> None:
    """Wait (bounded) until *node_id*'s lease has passed on the database's clock."""

    async def expired() -> bool:
        rows = await trio.to_thread.run_sync(
            sql,
            dsn,
            "SELECT lease_expires <= clock_timestamp() FROM nodes WHERE node_id = %s",
            node_id,
        )
        return bool(rows and rows[0][0])

    await eventually(expired, within=5.0)
