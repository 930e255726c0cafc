"""Conformance fixtures: the embedded server on real loopback HTTP, streamvisor's client pointed at
it, and the official SDK pointed at the same server (the reference behaviour).

Every test here runs on the real clock (never a mock clock: the sockets are real) and guards its
body with `trio.fail_after(GUARD)`, so a regression shows up as a failure, never as a hang.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import ClientSettings, OpenAIClient, RetryPolicy
from tests._recorded import RECORDED

#: Seconds any one conformance test may take before it counts as hung.
GUARD = 10.0

CHAT_RECORDINGS = sorted(p.stem for p in RECORDED.glob("*_chat_*.sse"))
RESPONSES_RECORDINGS = sorted(p.stem for p in RECORDED.glob("*_responses_*.sse"))
ALL_RECORDINGS = sorted([*CHAT_RECORDINGS, *RESPONSES_RECORDINGS])


#: Retries with no backoff of their own: any wait between attempts comes from the server's hint.
NO_BACKOFF = RetryPolicy(max_retries=2, initial_delay=0.0, max_delay=0.0, random=lambda: 0.0)


@attrs.define
class Attempts:
    """When each request left the client (trio time), as seen by a recording transport."""

    sent_at: list[float] = attrs.field(factory=list)

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.sent_at, self.sent_at[1:], strict=False)]


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real loopback HTTP (an `httpx.AsyncHTTPTransport`) that notes when each request is sent."""

    def __init__(self, attempts: Attempts) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self._attempts = attempts

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._attempts.sent_at.append(trio.current_time())
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@asynccontextmanager
async def running_server(**config: Any) -> AsyncIterator[MockServer]:
    """The embedded server, replaying recordings from the shared fixtures; `config` are further
    `MockAPIConfig` fields."""
    if not RECORDED.is_dir():
        pytest.fail(f"recorded fixtures not found at {RECORDED}")
    values: dict[str, Any] = {"recordings_dir": RECORDED, "graceful_timeout": 0.2, **config}
    async with serve(MockAPIConfig(**values)) as running:
        yield running


OpenClient = Callable[..., AbstractAsyncContextManager[OpenAIClient]]


def client_opener(server: MockServer) -> OpenClient:
    """`opener(transport=None, **settings)`: streamvisor's client for `server`.

    Defaults: short timeouts (a stall is detected in well under a second) and `NO_BACKOFF`.
    """

    @asynccontextmanager
    async def opener(
        transport: httpx.AsyncBaseTransport | None = None, **overrides: Any
    ) -> AsyncIterator[OpenAIClient]:
        values: dict[str, Any] = {
            "base_url": server.url,
            "connect_timeout": 2.0,
            "read_timeout": 3.0,
            "retry": NO_BACKOFF,
        }
        values.update(overrides)
        async with OpenAIClient.open(ClientSettings(**values), transport=transport) as client:
            yield client

    return opener


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    """A running embedded server (see `running_server`)."""
    async with running_server() as running:
        yield running


@pytest.fixture
def open_client(server: MockServer) -> OpenClient:
    """streamvisor's client factory for the `server` fixture (see `client_opener`)."""
    return client_opener(server)


@pytest.fixture
async def sdk(server: MockServer) -> AsyncIterator[Any]:
    """The official SDK (`openai.AsyncOpenAI`) for the same server, without retries."""
    import openai  # the SDK is a test-only dependency

    async with openai.AsyncOpenAI(
        base_url=server.url, api_key="sk-conformance", max_retries=0
    ) as client:
        yield client


def replay(stem: str, chunk_sizes: str | None = None) -> dict[str, str]:
    """Body `metadata` that makes the server replay recording `stem` (optionally re-chunked)."""
    metadata = {"mock_scenario": f"replay:{stem}"}
    if chunk_sizes is not None:
        metadata["mock_chunk_sizes"] = chunk_sizes
    return metadata


def posts(server: MockServer, path: str) -> int:
    """How many POST requests the server saw on `path`."""
    return sum(1 for r in server.requests if r.method == "POST" and r.path == path)
