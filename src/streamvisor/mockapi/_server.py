"""`serve()`: run the app with hypercorn on trio, in its own nursery, and stop it cleanly."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from .._asgi import hypercorn_config, parse_bind, serve_hypercorn
from ._app import MockApp, create_app
from ._config import MockAPIConfig
from ._errors import ServerNotRunning
from ._faults import Fault
from ._state import MockState, RecordedRequest

__all__ = ["MockServer", "run_forever", "serve"]

_log = logging.getLogger("streamvisor.mockapi")


@attrs.define(eq=False)
class MockServer:
    """A running embedded server (from `serve()`): its URL, its state, fault injection."""

    config: MockAPIConfig
    app: MockApp
    #: `http://127.0.0.1:PORT/v1`, the `base_url` for clients.
    url: str
    host: str
    port: int
    _running: bool = True

    @property
    def state(self) -> MockState:
        """Responses, files, uploads and counters, for inspection."""
        return self.app.state

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests the server received, in order (the newest `MockAPIConfig.recorded`)."""
        return self.app.state.requests

    def inject(
        self,
        fault: Fault,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = 1,
    ) -> None:
        """Make the next `times` matching requests (None: all) fail with `fault`.

        `path` is an exact path or a glob (`/v1/responses/*`). Raises `InvalidFault` for
        `times < 1` and `ServerNotRunning` after the server stopped.
        """
        if not self._running:
            raise ServerNotRunning("the server has stopped")
        self.app.state.faults.add(fault, method, path, times)

    def clear_faults(self) -> None:
        """Forget every injected fault and header-fault counter."""
        self.app.state.faults.clear()


@asynccontextmanager
async def serve(config: MockAPIConfig | None = None) -> AsyncIterator[MockServer]:
    """Serve the embedded OpenAI-compatible API on `config.host:config.port` until the block
    exits; yields a `MockServer` (its `url` ends in `/v1`).

    Raises `OSError` if the address cannot be bound. On exit, open streams are ended, background
    generation is cancelled and hypercorn shuts down within `config.graceful_timeout`.
    """
    config = config or MockAPIConfig()
    app = create_app(config)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        app.state.nursery = nursery
        hc = hypercorn_config(
            config.host, config.port, errorlog=_log, graceful_timeout=config.graceful_timeout
        )
        binds = await nursery.start(serve_hypercorn, app, hc, shutdown)
        host, port = parse_bind(binds)
        server = MockServer(
            config=config, app=app, url=f"http://{host}:{port}/v1", host=host, port=port
        )
        try:
            yield server
        finally:
            server._running = False
            app.cancel_requests()
            shutdown.set()
            app.state.nursery = None
            # Background generation stops with the server; hypercorn's task ends by itself.
            for stored in app.state.responses.values():
                if stored.cancel_scope is not None:
                    stored.cancel_scope.cancel()


def run_forever(
    config: MockAPIConfig | None = None, host: str = "127.0.0.1", port: int = 8765
) -> None:
    """Serve until SIGINT (Ctrl-C) or SIGTERM, blocking: `python run.py mockapi`.

    Prints the base URL once listening; returns after a clean shutdown. Must be called from the
    main thread. Raises `OSError` if the address cannot be bound.
    """
    base = config or MockAPIConfig()
    config = attrs.evolve(base, host=host, port=port)

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with serve(config) as server:
                print(
                    "streamvisor embedded OpenAI-compatible server (canned replies, no model) "
                    f"on {server.url}",
                    flush=True,
                )
                async for _ in signals:
                    return

    trio.run(main)
