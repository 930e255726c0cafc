"""``python run.py cluster --nodes N``: engines, one OpenAI-compatible server, N daemons.

The engines are the throwaway ones from their PyPI wheels (`PostgresServer`, `NatsServer`, data
under ``--directory``) unless ``STREAMVISOR_CLUSTER_POSTGRES_DSN`` / ``..._NATS_URL`` name real
ones. Without ``OPENAI_API_KEY`` one embedded server runs in this process and every node talks
to it (a response created through one node must be found by every other). Each node is a
`NodeProcess`; their gateways' URLs (with tokens) are printed once all answer. SIGINT or SIGTERM
stops the nodes (each leaves the cluster cleanly), then the server and the engines.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import TextIO

import trio

from streamvisor.config import Config

from ._errors import mask_password
from ._local import LocalCluster

__all__ = ["serve_cluster"]


async def serve_cluster(
    config: Config,
    *,
    nodes: int = 3,
    lease_ttl: float = 5.0,
    directory: str = "var/cluster",
    base_port: int = 8081,
    out: TextIO | None = None,
) -> int:
    """Run the cluster until SIGINT or SIGTERM (see the module docstring). Returns 0, or 2 for
    a bad argument."""
    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    if not 1 <= nodes <= 32:
        say("error: --nodes must be between 1 and 32")
        return 2
    if lease_ttl <= 0:
        say("error: --lease-ttl must be > 0")
        return 2
    root = trio.Path(directory)
    await root.mkdir(parents=True, exist_ok=True)
    root = await root.absolute()
    section = config.cluster
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals, ExitStack() as stack:
        dsn, nats_url = section.postgres_dsn, section.nats_url
        if dsn is None or nats_url is None:
            from ._nats_server import NatsServer
            from ._postgres_server import PostgresServer

            say(f"starting PostgreSQL and NATS JetStream (data in {root})")
            postgres = stack.enter_context(PostgresServer(Path(root / "postgres")))
            nats = stack.enter_context(NatsServer(Path(root / "nats")))
            dsn, nats_url = postgres.dsn, nats.url
            say(f"PostgreSQL: {mask_password(dsn)}\nNATS: {nats_url}")
        else:
            say("using the PostgreSQL and NATS of STREAMVISOR_CLUSTER_*")
        async with _openai_server(config, say) as (base_url, api_key):
            cluster = LocalCluster(
                Path(root),
                postgres_dsn=dsn,
                nats_url=nats_url,
                openai_base_url=base_url,
                api_key=api_key,
                lease_ttl=lease_ttl,
            )
            ports = None if base_port == 0 else [base_port + i for i in range(nodes)]
            try:
                await trio.to_thread.run_sync(lambda: cluster.start(nodes, ports=ports))
                for node in cluster.nodes.values():
                    say(f"{node.node_id}: {node.url}/?token={node.token}  (log: {node.log_path})")
                say(
                    f"{nodes} node(s) running; kill one (kill -9 <pid>) and the others take "
                    f"its work over within ~{2 * lease_ttl:g} s. Ctrl-C to stop."
                )
                for node in cluster.nodes.values():
                    assert node.process is not None
                    say(f"  {node.node_id} pid {node.process.pid}")
                async for signum in signals:
                    say(f"received {signal.Signals(signum).name}, stopping the cluster")
                    break
            finally:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(cluster.stop)
    say("cluster stopped")
    return 0


@asynccontextmanager
async def _openai_server(
    config: Config, say: Callable[[str], None]
) -> AsyncIterator[tuple[str, str]]:
    """The base URL and key every node uses: the configured API, or one embedded server."""
    section = config.openai
    if section.api_key is not None:
        yield section.base_url, section.api_key
        return
    from streamvisor.mockapi import MockAPIConfig, serve

    mock = config.mockapi
    async with serve(
        MockAPIConfig(
            host=mock.host,
            port=mock.port,
            token_delay=mock.token_delay,
            keepalive_interval=mock.keepalive_interval,
        )
    ) as server:
        say(f"embedded OpenAI-compatible server (every node uses it): {server.url}")
        yield server.url, "sk-local-cluster"
