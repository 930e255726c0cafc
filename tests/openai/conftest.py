"""Helpers for the wire-layer tests: recorded bodies served through `httpx.MockTransport`."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from streamvisor.openai import ClientSettings, OpenAIClient, RetryPolicy

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]

SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "x-request-id": "req_stream"}


class Chunked(httpx.AsyncByteStream):
    """A response body delivered in the given pieces (to split events at any byte)."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = list(pieces)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def split_at(body: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`body` cut at the given offsets (sorted, deduplicated, clipped)."""
    points = sorted({c for c in cuts if 0 < c < len(body)})
    edges = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


def sse_response(body: bytes, cuts: Iterable[int] = (), **headers: str) -> httpx.Response:
    return httpx.Response(
        200, headers={**SSE_HEADERS, **headers}, stream=Chunked(split_at(body, cuts))
    )


def json_response(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json", "x-request-id": "req_json", **headers},
        content=json.dumps(body).encode(),
    )


def frames(recording: bytes) -> list[dict[str, Any]]:
    """Every JSON `data:` object of a recording, in order."""
    out = []
    for line in recording.decode().splitlines():
        if line.startswith("data: ") and not line.startswith("data: [DONE]"):
            out.append(json.loads(line[6:]))
    return out


def settings(**overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "api_key": "sk-test-SECRET-0123456789",
        "base_url": "https://api.test/v1",
        "retry": RetryPolicy(random=lambda: 0.0),
    }
    values.update(overrides)
    return ClientSettings(**values)


@asynccontextmanager
async def client_for(handler: Handler, **overrides: Any) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient.open(
        settings(**overrides), transport=httpx.MockTransport(handler)
    ) as c:
        yield c
