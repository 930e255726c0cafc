"""Chat Completions, checked by the official SDK's own parsing and accumulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from streamvisor.mockapi import MockServer
from tests._sdk import SDK_GENERATOR_LEAK

from .conftest import API_KEY

pytestmark = SDK_GENERATOR_LEAK

USER = [{"role": "user", "content": "What is the capital of the UK?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer", "minimum": 1},
            },
            "required": ["city", "unit", "days"],
        },
    },
}
CAPITAL = {
    "type": "function",
    "function": {
        "name": "get_capital",
        "parameters": {"type": "object", "properties": {"country": {"type": "string"}}},
    },
}


async def raw_chunks(server: MockServer, body: dict[str, Any]) -> list[Any]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as http:
        response = await http.post("/chat/completions", json={**body, "stream": True})
    lines = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


async def drain(stream: openai.AsyncStream[Any]) -> None:
    async with stream:
        async for _ in stream:
            pass


async def final_completion(client: openai.AsyncOpenAI, **kwargs: Any) -> Any:
    async with client.chat.completions.stream(**kwargs) as stream:
        return await stream.get_final_completion()


class TestText:
    async def test_the_stream_helper_accumulates_the_echo_reply(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
            deltas = [e.delta async for e in stream if e.type == "content.delta"]
            final = await stream.get_final_completion()
        assert final.choices[0].message.content == "You said: What is the capital of the UK?"
        assert "".join(deltas) == final.choices[0].message.content
        assert len(deltas) > 5
        assert final.choices[0].finish_reason == "stop"

    async def test_create_stream_with_include_usage_ends_with_a_usage_chunk(
        self, client: openai.AsyncOpenAI
    ) -> None:
        stream = await client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == len(chunks) - 3  # role, finish, usage
        assert all(c.usage is None for c in chunks[:-1])

    async def test_chunks_have_the_2026_shape_of_recording_13(
        self, server: MockServer, recorded_dir: Path
    ) -> None:
        """Same keys, in every chunk, as the real stream (including `obfuscation`)."""
        recorded = [
            json.loads(line[6:])
            for line in (recorded_dir / "13_chat_text_after_tool_result_include_usage_2026.sse")
            .read_text()
            .split("\n")
            if line.startswith("data: {")
        ]
        served = await raw_chunks(
            server, {"model": "gpt-4o", "messages": USER, "stream_options": {"include_usage": True}}
        )
        assert [set(c) for c in served] == [set(recorded[0])] * len(served)
        assert served[0]["choices"][0]["delta"] == recorded[0]["choices"][0]["delta"] | {
            "content": ""
        }
        assert set(served[-1]["usage"]) == set(recorded[-1]["usage"])
        assert served[-2]["choices"][0] == {
            "index": 0,
            "delta": {},
            "logprobs": None,
            "finish_reason": "stop",
        }

    async def test_obfuscation_is_left_out_when_asked(self, server: MockServer) -> None:
        served = await raw_chunks(
            server,
            {"model": "gpt-4o", "messages": USER, "stream_options": {"include_obfuscation": False}},
        )
        assert all("obfuscation" not in chunk and "usage" not in chunk for chunk in served)

    async def test_max_completion_tokens_cuts_the_reply_with_finish_reason_length(
        self, client: openai.AsyncOpenAI
    ) -> None:
        """The SDK's helper sees `length` and raises, carrying what was accumulated."""
        with pytest.raises(openai.LengthFinishReasonError) as caught:
            await final_completion(client, model="gpt-4o", messages=USER, max_completion_tokens=3)
        final = caught.value.completion
        assert final.choices[0].finish_reason == "length"
        assert final.choices[0].message.content == "You said:"

    async def test_n_choices_interleave_chunk_by_chunk(self, server: MockServer) -> None:
        served = await raw_chunks(server, {"model": "gpt-4o", "messages": USER, "n": 2})
        indices = [chunk["choices"][0]["index"] for chunk in served]
        assert indices == [0, 1] * (len(served) // 2)

    async def test_n_choices_interleave_and_each_accumulates_the_reply(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.chat.completions.stream(model="gpt-4o", messages=USER, n=2) as stream:
            final = await stream.get_final_completion()
        assert [c.index for c in final.choices] == [0, 1]
        assert {c.message.content for c in final.choices} == {
            "You said: What is the capital of the UK?"
        }

    async def test_a_non_streamed_completion(self, client: openai.AsyncOpenAI) -> None:
        completion = await client.chat.completions.create(model="gpt-4o", messages=USER)
        assert completion.object == "chat.completion"
        assert completion.choices[0].message.content == "You said: What is the capital of the UK?"
        assert completion.usage is not None
        assert completion.usage.total_tokens == (
            completion.usage.prompt_tokens + completion.usage.completion_tokens
        )

    async def test_the_long_scenario_streams_n_tokens(self, client: openai.AsyncOpenAI) -> None:
        completion = await client.chat.completions.create(
            model="gpt-4o", messages=USER, metadata={"mock_scenario": "long:40"}
        )
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 40


class TestPacing:
    async def test_a_per_request_token_delay_spaces_the_chunks(self, server: MockServer) -> None:
        """Each token waits at least `mock_token_delay_ms` (a lower bound: never flaky)."""
        start = trio.current_time()
        served = await raw_chunks(
            server,
            {
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": "a b c"}],
                "metadata": {"mock_token_delay_ms": "10"},
            },
        )
        tokens = len(served) - 2  # role chunk and finish chunk
        assert tokens == 6  # "You", " said", ":", " a", " b", " c"
        assert trio.current_time() - start >= tokens * 0.010


class TestRefusal:
    async def test_the_refusal_scenario_streams_refusal_deltas(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.chat.completions.stream(
            model="gpt-4o", messages=USER, metadata={"mock_scenario": "refusal"}
        ) as stream:
            final = await stream.get_final_completion()
        message = final.choices[0].message
        assert message.content is None
        assert message.refusal == "I'm sorry, I can't assist with that request."


class TestToolCalls:
    async def test_the_first_tool_is_called_with_arguments_that_fit_its_schema(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.chat.completions.stream(
            model="gpt-4o", messages=USER, tools=[WEATHER, CAPITAL]
        ) as stream:
            final = await stream.get_final_completion()
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls"
        (call,) = choice.message.tool_calls or []
        assert call.id.startswith("call_")
        assert call.function.name == "get_weather"
        # The salient word of the question; what it does not name is made up.
        assert json.loads(call.function.arguments) == {"city": "UK", "unit": "c", "days": 1}

    async def test_the_tools_scenario_calls_every_tool_in_parallel(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.chat.completions.stream(
            model="gpt-4o",
            messages=USER,
            tools=[WEATHER, CAPITAL],
            metadata={"mock_scenario": "tools"},
        ) as stream:
            final = await stream.get_final_completion()
        calls = final.choices[0].message.tool_calls or []
        assert [c.function.name for c in calls] == ["get_weather", "get_capital"]

    async def test_without_parallel_tool_calls_only_one_tool_is_called(
        self, client: openai.AsyncOpenAI
    ) -> None:
        completion = await client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            tools=[WEATHER, CAPITAL],
            parallel_tool_calls=False,
            metadata={"mock_scenario": "tools"},
        )
        assert len(completion.choices[0].message.tool_calls or []) == 1

    async def test_tool_call_fragments_follow_recording_12(
        self, server: MockServer, recorded_dir: Path
    ) -> None:
        served = await raw_chunks(server, {"model": "gpt-4o", "messages": USER, "tools": [CAPITAL]})
        recorded = [
            json.loads(line[6:])
            for line in (recorded_dir / "12_chat_tool_call_include_usage_obfuscation_2026.sse")
            .read_text()
            .split("\n")
            if line.startswith("data: {")
        ]
        first, rec_first = served[0]["choices"][0]["delta"], recorded[0]["choices"][0]["delta"]
        assert set(first) == set(rec_first)
        assert set(first["tool_calls"][0]) == set(rec_first["tool_calls"][0])
        assert set(served[1]["choices"][0]["delta"]["tool_calls"][0]) == {"index", "function"}

    async def test_tool_results_are_answered_with_text_that_includes_them(
        self, client: openai.AsyncOpenAI
    ) -> None:
        first = await client.chat.completions.create(model="gpt-4o", messages=USER, tools=[CAPITAL])
        (call,) = first.choices[0].message.tool_calls or []
        messages: list[Any] = [
            *USER,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "London"},
        ]
        async with client.chat.completions.stream(
            model="gpt-4o", messages=messages, tools=[CAPITAL]
        ) as stream:
            final = await stream.get_final_completion()
        assert final.choices[0].finish_reason == "stop"
        assert final.choices[0].message.content == (
            "Here is what the tools returned: get_capital returned London."
        )


class TestErrors:
    async def test_the_failed_scenario_ends_the_stream_with_an_error_the_sdk_raises(
        self, client: openai.AsyncOpenAI
    ) -> None:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, metadata={"mock_scenario": "failed"}
        )
        with pytest.raises(openai.APIError, match="The server had an error"):
            await drain(stream)

    async def test_a_reasoning_model_rejection_is_a_bad_request_error(
        self, client: openai.AsyncOpenAI
    ) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="o3", messages=USER, temperature=0.5)
        assert caught.value.code == "unsupported_parameter"
        assert caught.value.param == "temperature"

    async def test_an_unknown_scenario_is_a_bad_request(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError, match="unknown scenario"):
            await client.chat.completions.create(
                model="gpt-4o", messages=USER, metadata={"mock_scenario": "nope"}
            )
