"""Errors raised by the embedded OpenAI-compatible server's own API.

The tree::

    MockAPIError                      root of everything `streamvisor.mockapi` raises
    ├── InvalidFault(ValueError)      a fault spec or `x-mock-fault` header that does not parse
    ├── InvalidScenario(ValueError)   an unknown `mock_scenario` / `x-mock-scenario`
    └── ServerNotRunning(RuntimeError) the server was used outside its `serve()` block

Errors the server *sends* (HTTP 4xx/5xx, mid-stream `error` events) are not exceptions of this
tree: they are wire data, built by `_wire.api_error` and friends.
"""

from __future__ import annotations

__all__ = ["InvalidFault", "InvalidScenario", "MockAPIError", "ServerNotRunning"]


class MockAPIError(Exception):
    """Root of the exceptions raised by `streamvisor.mockapi`."""


class InvalidFault(MockAPIError, ValueError):
    """A fault description (programmatic or `x-mock-fault` header) is malformed."""


class InvalidScenario(MockAPIError, ValueError):
    """A scenario name is not one the server knows."""


class ServerNotRunning(MockAPIError, RuntimeError):
    """The server is not (or no longer) running."""
