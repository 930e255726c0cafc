"""Several daemon processes on this machine as one cluster: `run.py cluster` and the tests.

`NodeProcess` is one ``python -m streamvisor daemon`` with its ``[cluster]``, gateway and OpenAI
settings in its environment (nothing from a config file: it runs in a directory of its own,
where its ``var/`` files go too), its output in ``node.log`` there. `LocalCluster` starts and
stops them against one PostgreSQL, one NATS and one OpenAI-compatible server, each given by URL
(the engines can be the throwaway ones of `PostgresServer` / `NatsServer`, or real ones).

Every node gets a gateway on a free loopback port with a token chosen here, so a test (or the
user) can reach any node; ``kill`` (SIGKILL), ``pause`` (SIGSTOP) and ``resume`` (SIGCONT) are
what the failover tests do to them.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import attrs
import httpx

__all__ = ["LocalCluster", "NodeProcess", "free_port"]

#: How long a node may take to answer /health after it was started.
_START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define(eq=False)
class NodeProcess:
    """One daemon process of a `LocalCluster`."""

    node_id: str
    directory: Path
    port: int
    token: str
    env: Mapping[str, str]
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """What every gateway request carries."""
        return {"authorization": f"Bearer {self.token}"}

    @property
    def log_path(self) -> Path:
        return self.directory / "node.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (returns at once; `wait_ready` waits for its gateway)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamvisor", "daemon", "--status-interval", "0"],
            cwd=self.directory,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = _START_TIMEOUT) -> None:
        """Return once the gateway answers /health; raise RuntimeError (with the log's tail) if
        the process exits or does not answer within ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"node {self.node_id} exited:\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", headers=self.headers, timeout=1).is_success:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"node {self.node_id} did not start in {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        """The end of its log (for failure messages)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (its lease expires; a survivor takes over)."""
        self.signal(signal.SIGKILL)
        self._reap()

    def pause(self) -> None:
        """SIGSTOP: frozen, holding its connections, renewing nothing."""
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause`."""
        self.signal(signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a clean shutdown: the node leaves the cluster), SIGKILL after ``timeout``;
        the exit code."""
        if self.process is None:
            return None
        self.resume()
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self._reap()

    def _reap(self) -> int | None:
        code = None
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


@attrs.define(eq=False)
class LocalCluster:
    """N daemon processes as one cluster (see the module docstring).

    Args:
        directory: Where each node's directory (``node-<i>/``) goes.
        postgres_dsn / nats_url: The engines.
        openai_base_url: Where every node sends its OpenAI requests (one server for all: a
            response created through one node must be found by the others).
        api_key: Sent to that server (any non-empty string for the embedded one).
        lease_ttl: ``[cluster] lease_ttl`` of every node.
        extra_env: More environment for every node (``STREAMVISOR_*`` settings).
    """

    directory: Path
    postgres_dsn: str
    nats_url: str
    openai_base_url: str
    api_key: str = "sk-local-cluster"
    lease_ttl: float = 10.0
    extra_env: Mapping[str, str] = attrs.field(factory=dict)
    nodes: dict[str, NodeProcess] = attrs.field(factory=dict)

    def node_env(self, node_id: str, port: int, token: str) -> dict[str, str]:
        keep = {
            k: v for k, v in os.environ.items() if not k.startswith(("STREAMVISOR_", "OPENAI_"))
        }
        return {
            **keep,
            "OPENAI_API_KEY": self.api_key,
            "OPENAI_BASE_URL": self.openai_base_url,
            "STREAMVISOR_CLUSTER_POSTGRES_DSN": self.postgres_dsn,
            "STREAMVISOR_CLUSTER_NATS_URL": self.nats_url,
            "STREAMVISOR_CLUSTER_NODE_ID": node_id,
            "STREAMVISOR_CLUSTER_LEASE_TTL": str(self.lease_ttl),
            "STREAMVISOR_GATEWAY_PORT": str(port),
            "STREAMVISOR_GATEWAY_TOKEN": token,
            "STREAMVISOR_LOG_FORMAT": "json",
            **self.extra_env,
        }

    def add(self, node_id: str, *, port: int | None = None) -> NodeProcess:
        """A new node (not started)."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id!r} exists")
        port = free_port() if port is None else port
        token = secrets.token_urlsafe(24)
        node = NodeProcess(
            node_id,
            self.directory / node_id,
            port,
            token,
            self.node_env(node_id, port, token),
        )
        self.nodes[node_id] = node
        return node

    def start(self, count: int, *, prefix: str = "node-", ports: list[int] | None = None) -> None:
        """Start ``count`` nodes at once and wait until every gateway answers."""
        started = [
            self.add(f"{prefix}{i + 1}", port=None if ports is None else ports[i])
            for i in range(count)
        ]
        for node in started:
            node.start()
        for node in started:
            node.wait_ready()

    def stop(self) -> None:
        """Stop every node still running (clean shutdowns, in parallel)."""
        for node in self.nodes.values():
            node.resume()
            node.signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.stop()
