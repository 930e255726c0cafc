"""Conformance over real loopback HTTP against the embedded server (`streamvisor.mockapi`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from streamvisor.mockapi import Fault, MockAPIConfig, MockServer, serve
from streamvisor.openai import (
    CancelRejected,
    ClientSettings,
    InsufficientQuotaError,
    MalformedStreamError,
    OpenAIClient,
    StreamError,
    StreamEvent,
    StreamInterrupted,
)

KEY = "sk-test-conformance-0123456789"
HI = [{"role": "user", "content": "hi"}]
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
async def server(recorded_dir: Path) -> AsyncIterator[MockServer]:
    async with serve(MockAPIConfig(api_key=KEY, recordings_dir=recorded_dir)) as running:
        yield running


@pytest.fixture
async def client(server: MockServer) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient.open(ClientSettings(api_key=KEY, base_url=server.url)) as c:
        yield c


async def drain(stream: Any) -> list[StreamEvent]:
    return [event async for event in stream]


class TestChat:
    async def test_a_text_stream_ends_completed_with_content_and_usage(
        self, client: OpenAIClient
    ) -> None:
        async with client.stream_chat({"model": "gpt-4o", "messages": HI}) as stream:
            events = await drain(stream)
        final = events[-1]
        assert final.type == "response.completed"
        assert final.data["response"]["choices"][0]["message"]["content"] == "You said: hi"
        assert final.data["response"]["usage"]["total_tokens"] > 0
        assert [e.sequence_number for e in events] == list(range(len(events)))

    async def test_tool_calls_are_assembled_with_valid_arguments(
        self, client: OpenAIClient
    ) -> None:
        body = {
            "model": "gpt-4o",
            "messages": HI,
            "metadata": {"mock_scenario": "tools"},
            "tools": [{"type": "function", "function": WEATHER}],
        }
        async with client.stream_chat(body) as stream:
            await drain(stream)
        final = stream.accumulator.result
        assert final is not None
        choice = final["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        assert isinstance(json.loads(call["function"]["arguments"]), dict)

    async def test_an_error_event_mid_stream_is_delivered_then_raised(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.error_event(after_events=3), path="/v1/chat/completions")
        async with client.stream_chat({"model": "gpt-4o", "messages": HI}) as stream:
            with pytest.raises(StreamError):
                await drain(stream)
        assert stream.accumulator.error is not None


class TestResponses:
    async def test_a_stream_is_gapless_from_zero_and_ends_with_its_final_response(
        self, client: OpenAIClient
    ) -> None:
        async with client.stream_response({"model": "gpt-4o", "input": "hi"}) as stream:
            events = await drain(stream)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        assert stream.accumulator.result == events[-1].data["response"]
        assert stream.accumulator.output_text == "You said: hi"
        assert stream.request_id

    @pytest.mark.parametrize("nested", [False, True])
    async def test_both_error_framings_raise_stream_error(
        self, client: OpenAIClient, server: MockServer, nested: bool
    ) -> None:
        server.inject(Fault.error_event(after_events=2, nested=nested), path="/v1/responses")
        async with client.stream_response({"model": "gpt-4o", "input": "hi"}) as stream:
            with pytest.raises(StreamError) as info:
                await drain(stream)
        assert info.value.message

    async def test_a_malformed_frame_is_reported_with_the_cursor(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.malformed(after_events=2), path="/v1/responses")
        async with client.stream_response({"model": "gpt-4o", "input": "hi"}) as stream:
            with pytest.raises(MalformedStreamError) as info:
                await drain(stream)
        assert info.value.cursor == 1

    async def test_a_dropped_background_stream_resumes_from_its_cursor(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.drop_after(2500), path="/v1/responses")
        body = {
            "model": "gpt-4o",
            "input": "hi",
            "background": True,
            "store": True,
            "metadata": {"mock_scenario": "long:40"},
        }
        async with client.stream_response(body) as first:
            with pytest.raises(StreamInterrupted) as info:
                await drain(first)
        cursor, rid = info.value.cursor, info.value.response_id
        assert cursor is not None
        assert rid is not None
        async with client.resume_response(
            rid, starting_after=cursor, snapshot=first.accumulator.snapshot
        ) as second:
            events = await drain(second)
        assert events[0].sequence_number == cursor + 1
        assert second.accumulator.result is not None
        assert (
            second.accumulator.output_text
            == (await client.retrieve_response(rid)).response["output"][0]["content"][0]["text"]
        )
        resume = server.requests[-2]
        assert (resume.method, resume.query.get("starting_after")) == ("GET", str(cursor))

    async def test_background_create_poll_and_cancel_after_completion(
        self, client: OpenAIClient
    ) -> None:
        created = await client.create_response(
            {"model": "gpt-4o", "input": "hi", "background": True, "store": True}
        )
        assert created["status"] in ("queued", "in_progress")
        polled = await client.retrieve_response(created["id"])
        while polled.status in ("queued", "in_progress"):
            await trio.sleep(min(polled.poll_after or 0.01, 0.01))
            polled = await client.retrieve_response(created["id"])
        assert polled.status == "completed"
        assert polled.poll_after == 1.0
        with pytest.raises(CancelRejected) as info:
            await client.cancel_response(created["id"])
        assert info.value.already_terminal


class TestFaults:
    async def test_rate_limits_are_retried_after_the_servers_hint(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.status(429, retry_after=0.02), path="/v1/responses", times=2)
        got = await client.create_response({"model": "gpt-4o", "input": "hi"})
        assert got["status"] == "completed"
        assert [r.path for r in server.requests] == ["/v1/responses"] * 3

    async def test_insufficient_quota_is_not_retried(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.insufficient_quota(), path="/v1/responses", times=None)
        with pytest.raises(InsufficientQuotaError):
            await client.create_response({"model": "gpt-4o", "input": "hi"})
        assert len(server.requests) == 1

    async def test_an_unsupported_parameter_is_dropped_and_the_call_retried(
        self, client: OpenAIClient, server: MockServer
    ) -> None:
        server.inject(Fault.unsupported_parameter("top_p"), path="/v1/chat/completions")
        async with client.stream_chat({"model": "gpt-4o", "messages": HI, "top_p": 0.5}) as s:
            events = await drain(s)
        assert events[-1].type == "response.completed"
        first, second = server.requests
        assert "top_p" in first.body
        assert "top_p" not in second.body


class TestFiles:
    async def test_upload_list_read_and_delete(self, client: OpenAIClient) -> None:
        uploaded = await client.upload_file(
            b"hello", filename="a.txt", purpose="user_data", content_type="text/plain"
        )
        assert uploaded["bytes"] == 5
        ids = [f["id"] async for f in client.list_files()]
        assert uploaded["id"] in ids
        assert await client.file_content(uploaded["id"]) == b"hello"
        assert (await client.delete_file(uploaded["id"]))["deleted"] is True

    async def test_a_large_upload_in_parallel_parts(self, client: OpenAIClient) -> None:
        data = bytes(range(256)) * 20
        done = await client.upload_large(
            data,
            filename="big.bin",
            purpose="user_data",
            mime_type="application/octet-stream",
            part_size=1000,
            max_concurrency=3,
        )
        assert done["status"] == "completed"
        assert await client.file_content(done["file"]["id"]) == data
