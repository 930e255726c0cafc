"""`serve_gateway()`: the gateway's app on hypercorn (trio), for as long as a block runs."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import attrs
import structlog
import trio
from hypercorn.config import Config as HypercornConfig

from .._asgi import hypercorn_config, parse_bind, serve_hypercorn
from ..daemon import Daemon
from ._app import DEFAULT_KEEPALIVE, MAX_UPLOAD_BYTES, GatewayApp, create_gateway_app

__all__ = ["Gateway", "serve_gateway"]

log = structlog.get_logger("streamvisor.gateway")

#: Seconds hypercorn gives open connections to finish when the gateway stops.
_GRACEFUL_TIMEOUT = 2.0


@attrs.define(eq=False)
class Gateway:
    """A running gateway (from `serve_gateway`).

    Attributes:
        url: ``http://HOST:PORT`` (no trailing slash): the page is at ``url + "/"``.
        host / port: Where it listens (the port the OS chose for ``port=0``).
        app: The ASGI app it serves.
    """

    url: str
    host: str
    port: int
    app: GatewayApp


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hypercorn_config(host: str, port: int, keepalive: float) -> HypercornConfig:
    config = hypercorn_config(
        host,
        port,
        errorlog=logging.getLogger("streamvisor.gateway.hypercorn"),
        graceful_timeout=_GRACEFUL_TIMEOUT,
    )
    # The gateway sends its own keepalives; hypercorn must not time out a quiet event stream.
    config.keep_alive_timeout = 3600
    # WebSocket pings on the same rhythm as the event stream's keepalive comments.
    config.websocket_ping_interval = keepalive
    return config


@asynccontextmanager
async def serve_gateway(
    daemon: Daemon,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    keepalive: float = DEFAULT_KEEPALIVE,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    allowed_hosts: Iterable[str] | None = None,
) -> AsyncIterator[Gateway]:
    """Serve the gateway over ``daemon`` on ``host:port`` (0: any free port) until the block
    exits; yields a `Gateway` (``gw.url``).

    Use it inside ``open_daemon``: ``async with serve_gateway(daemon) as gw:``. On exit, every
    event stream and WebSocket is ended at once and hypercorn stops within a couple of seconds;
    the daemon itself is left running. The gateway has no authentication: bind it to loopback
    unless something in front of it authenticates. On loopback it answers only to loopback
    names (``allowed_hosts`` defaults to ``localhost``, ``127.0.0.1``, ``::1`` and ``host``),
    which defeats DNS rebinding; elsewhere to any name unless ``allowed_hosts`` is given.

    Raises ``OSError`` if the address cannot be bound, ``ValueError`` for a bad ``keepalive`` or
    ``max_upload_bytes``.
    """
    if allowed_hosts is None and _is_loopback(host):
        allowed_hosts = {*_LOOPBACK_NAMES, host}
    app = create_gateway_app(
        daemon,
        keepalive=keepalive,
        max_upload_bytes=max_upload_bytes,
        allowed_hosts=allowed_hosts,
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            serve_hypercorn, app, _hypercorn_config(host, port, keepalive), shutdown
        )
        bound_host, bound_port = parse_bind(binds)
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        gateway = Gateway(
            url=f"http://{shown}:{bound_port}", host=bound_host, port=bound_port, app=app
        )
        log.info("gateway_started", url=gateway.url)
        try:
            yield gateway
        finally:
            app.close()
            shutdown.set()
            log.info("gateway_stopping", url=gateway.url)
