"""Fixtures: a daemon on the embedded server, the gateway in front of it, an HTTP client.

`client` sends the gateway's token with every request (``gateway.auth_headers``, i.e.
``Authorization: Bearer <gateway.token>``); `anonymous` sends none. WebSocket tests pass
``token=gateway.token`` to `_ws_client.connect`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamvisor.daemon import Daemon, open_daemon
from streamvisor.gateway import Gateway, serve_gateway
from streamvisor.testing import daemon_config
from tests.daemon.conftest import FAST

#: Short, so keepalive comments are observable in a test.
KEEPALIVE = 0.2


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with open_daemon(daemon_config(tmp_path), mockapi=FAST) as running:
        yield running


@pytest.fixture
async def gateway(daemon: Daemon) -> AsyncIterator[Gateway]:
    async with serve_gateway(daemon, keepalive=KEEPALIVE) as running:
        yield running


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=gateway.url, headers=gateway.auth_headers, timeout=10.0
    ) as http:
        yield http


@pytest.fixture
async def anonymous(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client without the token."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10.0) as http:
        yield http
