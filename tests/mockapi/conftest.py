"""Fixtures: a running embedded server, and the official SDK pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from streamvisor.mockapi import MockAPIConfig, MockServer, serve

API_KEY = "sk-test-mockapi-0123456789"


@pytest.fixture
async def server(recorded_dir: Path) -> AsyncIterator[MockServer]:
    async with serve(MockAPIConfig(api_key=API_KEY, recordings_dir=recorded_dir)) as running:
        yield running


@pytest.fixture
async def client(server: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=0) as sdk:
        yield sdk


async def consume(
    http: httpx.AsyncClient, received: bytearray, method: str, url: str, **kwargs: Any
) -> None:
    """Stream a response body into `received` (raw bytes, as they arrive)."""
    async with http.stream(method, url, **kwargs) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received.extend(chunk)
