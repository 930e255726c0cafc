"""`serve_gateway()`: the gateway's app on hypercorn (trio), for as long as a block runs."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import structlog
import trio
from hypercorn.config import Config as HypercornConfig

from .._asgi import hypercorn_config, parse_bind, serve_hypercorn
from ..config import is_loopback
from ..daemon import Daemon
from ._access import remove_token_file, write_token_file
from ._app import DEFAULT_KEEPALIVE, MAX_UPLOAD_BYTES, GatewayApp, create_gateway_app
from ._errors import TokenRequired

__all__ = ["Gateway", "serve_gateway"]

log = structlog.get_logger("streamvisor.gateway")

#: Seconds hypercorn gives open connections to finish when the gateway stops.
_GRACEFUL_TIMEOUT = 2.0


@attrs.define(eq=False)
class Gateway:
    """A running gateway (from `serve_gateway`).

    Attributes:
        url: ``http://HOST:PORT`` (no trailing slash).
        host / port: Where it listens (the port the OS chose for ``port=0``).
        app: The ASGI app it serves.
        token: What every request must carry (not in the repr): see `auth_headers`.
    """

    url: str
    host: str
    port: int
    app: GatewayApp
    token: str = attrs.field(repr=False)

    @property
    def page_url(self) -> str:
        """The live page's URL with the token (opening it lets the browser in)."""
        return f"{self.url}/?token={self.token}"

    @property
    def auth_headers(self) -> dict[str, str]:
        """The header a client sends with every request: ``Authorization: Bearer <token>``."""
        return {"authorization": f"Bearer {self.token}"}


_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


#: The listen backlog: connections the kernel queues before the server accepts them.
_BACKLOG = 4096


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
    # Hundreds of SDK clients connect at once (one connection per stream): hypercorn's default
    # listen backlog (100) overflowed at 1,000 streams and reset connections (bench/front_door).
    config.backlog = _BACKLOG
    return config


@asynccontextmanager
async def serve_gateway(
    daemon: Daemon,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    keepalive: float = DEFAULT_KEEPALIVE,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    allowed_hosts: Iterable[str] | None = None,
) -> AsyncIterator[Gateway]:
    """Serve the gateway over ``daemon`` on ``host:port`` (0: any free port) until the block
    exits; yields a `Gateway` (``gw.url``).

    Use it inside ``open_daemon``: ``async with serve_gateway(daemon) as gw:``. On exit, every
    event stream and WebSocket is ended at once and hypercorn stops within a couple of seconds;
    the daemon itself is left running.

    Every request must carry ``token`` (``Authorization: Bearer <token>``, see
    `Gateway.auth_headers`; the page gets in through `Gateway.page_url`). Without one, a random
    token is generated -- on a loopback address only: elsewhere the caller must choose it. When
    ``token_file`` is given the token is written there (mode 0600) once the address is bound,
    and removed on exit. On loopback the gateway answers only to loopback names
    (``allowed_hosts`` defaults to ``localhost``, ``127.0.0.1``, ``::1`` and ``host``), which
    defeats DNS rebinding; elsewhere to any name unless ``allowed_hosts`` is given.

    Raises `TokenRequired` for a non-loopback ``host`` without ``token``, ``OSError`` if the
    address cannot be bound or the token file written, ``ValueError`` for a bad ``keepalive``,
    ``max_upload_bytes`` or ``token``.
    """
    if token is None and not is_loopback(host):
        raise TokenRequired(host)
    if allowed_hosts is None and is_loopback(host):
        allowed_hosts = {*_LOOPBACK_NAMES, host}
    app = create_gateway_app(
        daemon,
        token=token,
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
            url=f"http://{shown}:{bound_port}",
            host=bound_host,
            port=bound_port,
            app=app,
            token=app.token,
        )
        path = None if token_file is None else Path(token_file)
        try:
            if path is not None:
                await trio.to_thread.run_sync(write_token_file, path, app.token)
            log.info("gateway_started", url=gateway.url, token_file=str(path) if path else None)
            yield gateway
        finally:
            app.close()
            shutdown.set()
            log.info("gateway_stopping", url=gateway.url)
            if path is not None:
                with trio.move_on_after(1.0, shield=True):
                    await trio.to_thread.run_sync(remove_token_file, path, app.token)
