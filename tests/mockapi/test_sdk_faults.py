"""What the official SDK makes of injected faults: its retries, its error types."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from streamvisor.mockapi import Fault, MockServer
from tests._sdk import SDK_GENERATOR_LEAK

from .conftest import API_KEY

pytestmark = SDK_GENERATOR_LEAK

USER = [{"role": "user", "content": "hi"}]


async def drain(stream: openai.AsyncStream[Any]) -> list[Any]:
    async with stream:
        return [event async for event in stream]


async def test_the_sdk_retries_429s_honouring_retry_after_ms(server: MockServer) -> None:
    server.inject(Fault.status(429, retry_after_ms=1), path="/v1/chat/completions", times=2)
    async with openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=2) as sdk:
        completion = await sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "You said: hi"
    retries = [r.headers.get("x-stainless-retry-count") for r in server.requests]
    assert retries == ["0", "1", "2"]


async def test_x_should_retry_false_stops_the_sdk_retrying(server: MockServer) -> None:
    server.inject(Fault.status(500, should_retry=False), times=1)
    async with openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=2) as sdk:
        with pytest.raises(openai.InternalServerError):
            await sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert len(server.requests) == 1


async def test_insufficient_quota_is_a_rate_limit_error_with_its_code(
    server: MockServer, client: openai.AsyncOpenAI
) -> None:
    server.inject(Fault.insufficient_quota())
    with pytest.raises(openai.RateLimitError) as caught:
        await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.code == "insufficient_quota"


async def test_a_flat_error_event_reaches_the_sdk_as_an_error_event(
    server: MockServer, client: openai.AsyncOpenAI
) -> None:
    server.inject(Fault.error_event(after_events=2))
    events = await drain(await client.responses.create(model="gpt-4o", input="hi", stream=True))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "error"]
    assert events[-1].code == "server_error"
    assert events[-1].sequence_number == 2


async def test_a_nested_error_event_makes_the_sdk_raise(
    server: MockServer, client: openai.AsyncOpenAI
) -> None:
    server.inject(Fault.error_event(after_events=2, nested=True))
    stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
    with pytest.raises(openai.APIError, match="The server had an error"):
        await drain(stream)


async def test_a_dropped_stream_is_a_connection_error_the_sdk_does_not_retry(
    server: MockServer,
) -> None:
    server.inject(Fault.drop_after(500), times=None)
    async with openai.AsyncOpenAI(base_url=server.url, api_key=API_KEY, max_retries=2) as sdk:
        stream = await sdk.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
        with pytest.raises(openai.APIConnectionError) as caught:
            await drain(stream)
    assert type(caught.value.__cause__).__name__ == "RemoteProtocolError"
    assert "incomplete chunked read" in str(caught.value.__cause__)
    assert len(server.requests) == 1
