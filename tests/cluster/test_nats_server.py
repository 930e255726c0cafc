"""The throwaway nats-server: starts on loopback with JetStream, and restarts in place."""

from __future__ import annotations

import socket
from pathlib import Path

from streamvisor.cluster import NatsServer


def _greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as probe:
        return probe.recv(4096)


def test_it_serves_jetstream_on_loopback_and_restarts_on_the_same_port(tmp_path: Path) -> None:
    server = NatsServer(tmp_path)
    assert server.url == f"nats://127.0.0.1:{server.port}"
    with server:
        assert server.running
        info = _greeting(server.port)
        assert info.startswith(b"INFO ")
        assert b'"jetstream":true' in info
        server.kill()
        assert not server.running
        server.start()
        assert _greeting(server.port).startswith(b"INFO ")
    assert not server.running
    assert (tmp_path / "jetstream").is_dir()
    server.stop()  # idempotent
