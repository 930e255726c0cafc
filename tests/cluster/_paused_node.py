"""A cluster node in a process of its own, for the SIGSTOP test (``test_pg_paused_node.py``).

Usage: ``python _paused_node.py DSN``. It joins as node ``paused`` with a short lease, tracks
``resp_paused``, prints ``ready``, then waits for a line on stdin (meanwhile the test stops it
past its lease and a survivor takes over), tries one write with its old token, and prints
``wrote`` or ``fenced <token>``.
"""

from __future__ import annotations

import sys

import trio

from streamvisor.actors.background._records import TrackedResponse
from streamvisor.cluster import ClusterStore, Fenced

NAMESPACE = "https://api.example.test/v1"


async def main(dsn: str) -> None:
    async with ClusterStore.open(
        dsn, node_id="paused", namespace=NAMESPACE, lease_ttl=0.3, connect_timeout=2.0
    ) as store:
        record = TrackedResponse(
            response_id="resp_paused", status="queued", model="o3-pro", created_at=1.0
        )
        await store.add(record)
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        try:
            await store.record_cursor("resp_paused", 7)
        except Fenced as exc:
            print(f"fenced {exc.token}", flush=True)
        else:
            print("wrote", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
