"""streamvisor's accumulators agree with the official SDK's on the same live streams.

Two embedded servers with the same seed (`TWIN_SEED`; unseeded, a server's ids are random)
answer the same request with the same bytes (ids, call ids, texts, usage), one read by
streamvisor's client, the other by the official SDK's accumulating helpers
(`chat.completions.stream()`, `responses.stream()`). Only wall-clock fields (`created`,
`created_at`, `completed_at`) may differ.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from streamvisor.openai import StreamEvent
from tests._sdk import SDK_GENERATOR_LEAK

from ._views import our_chat, sdk_chat
from .conftest import GUARD, client_opener, running_server

#: Both twins' seed: seeded servers hand out the same ids for the same request sequence.
TWIN_SEED = "twins"
_CLOCK_FIELDS = frozenset({"created", "created_at", "completed_at"})
#: Fields the SDK adds while parsing (structured-output helpers), not on the wire.
_SDK_ONLY_FIELDS = frozenset({"parsed", "parsed_arguments"})

WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
MESSAGES = [{"role": "user", "content": "What is the weather in Paris, and the time there?"}]


def without(value: Any, keys: frozenset[str]) -> Any:
    """`value` with the given keys removed from every object, recursively."""
    if isinstance(value, dict):
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, keys) for v in value]
    return value


def sdk_dump(model: Any) -> Any:
    """An SDK object as wire JSON: only the fields the server sent, without SDK additions."""
    return without(model.model_dump(mode="json", exclude_unset=True), _SDK_ONLY_FIELDS)


@asynccontextmanager
async def twins() -> AsyncIterator[tuple[Any, Any]]:
    """streamvisor's client and the SDK, each on its own server; both servers share a seed."""
    import openai

    async with (
        running_server(seed=TWIN_SEED) as ours,
        running_server(seed=TWIN_SEED) as theirs,
        client_opener(ours)() as client,
        openai.AsyncOpenAI(base_url=theirs.url, api_key="sk-test", max_retries=0) as sdk,
    ):
        yield client, sdk


async def chat_both(body: dict[str, Any]) -> tuple[dict[str, Any], list[StreamEvent], Any]:
    """(streamvisor's completion, its events, the SDK's accumulated completion) for `body`."""
    import openai

    async with twins() as (client, sdk):
        async with client.stream_chat(body) as stream:
            events = [event async for event in stream]
            ours = stream.accumulator.result
        async with sdk.chat.completions.stream(**body) as sdk_stream:
            async for _ in sdk_stream:
                pass
            try:
                theirs = await sdk_stream.get_final_completion()
            except openai.LengthFinishReasonError as exc:  # it refuses to parse a cut answer
                theirs = exc.completion
    assert ours is not None
    return ours, events, theirs


async def responses_both(
    body: dict[str, Any],
) -> tuple[dict[str, Any], list[StreamEvent], Any, list[Any]]:
    """(streamvisor's Response, its events, the SDK's final Response, the SDK's events)."""
    async with twins() as (client, sdk):
        async with client.stream_response(body) as stream:
            events = [event async for event in stream]
            ours = stream.accumulator.result
        async with sdk.responses.stream(**body) as sdk_stream:
            sdk_events = [event async for event in sdk_stream]
            terminal = sdk_events[-1]
            if terminal.type == "response.completed":
                theirs = await sdk_stream.get_final_response()
            else:  # the SDK's helper only finalises `completed` (openai-python PR #3538)
                theirs = terminal.response
    assert ours is not None
    return ours, events, theirs, sdk_events


async def read_until_error(opened: Any) -> tuple[list[StreamEvent], Exception]:
    """Iterate a stream that must fail: (the events delivered before, the error)."""
    events: list[StreamEvent] = []
    try:
        async with opened as stream:
            async for event in stream:
                events.append(event)
    except Exception as exc:
        return events, exc
    pytest.fail("the stream ended without an error")


def chat_body(scenario: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream_options": {"include_usage": True},
        "metadata": {"mock_scenario": scenario},
        **extra,
    }


def responses_body(scenario: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "input": MESSAGES[0]["content"],
        "metadata": {"mock_scenario": scenario},
        **extra,
    }


async def chat_body_both_n3() -> tuple[dict[str, Any], list[StreamEvent], Any]:
    return await chat_both(chat_body("echo", n=3))


def assert_chat_agrees(ours: dict[str, Any], theirs: Any) -> None:
    assert our_chat(ours) == sdk_chat(theirs)


@SDK_GENERATOR_LEAK
class TestChatAgreement:
    async def test_a_text_answer_with_usage(self) -> None:
        """Content, finish reason, usage and ids agree on a plain text answer."""
        with trio.fail_after(GUARD):
            ours, _, theirs = await chat_both(chat_body("echo"))
        assert ours["choices"][0]["message"]["content"]
        assert ours["usage"]["total_tokens"] > 0
        assert_chat_agrees(ours, theirs)

    async def test_parallel_tool_calls(self) -> None:
        """Two tool calls streamed by index assemble into the same ids, names and arguments."""
        tools = [
            {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
            {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
        ]
        with trio.fail_after(GUARD):
            ours, events, theirs = await chat_both(chat_body("tools", tools=tools))
        calls = ours["choices"][0]["message"]["tool_calls"]
        assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
        assert ours["choices"][0]["finish_reason"] == "tool_calls"
        added = [e for e in events if e.type == "response.output_item.added"]
        assert [e.data["item"]["call_id"] for e in added] == [c["id"] for c in calls]
        assert_chat_agrees(ours, theirs)

    async def test_several_choices_interleaved(self) -> None:
        """With `n: 3` the chunks of the choices interleave; each choice assembles on its own,
        as the SDK's do."""
        with trio.fail_after(GUARD):
            ours, _, theirs = await chat_body_both_n3()
        assert [c["index"] for c in ours["choices"]] == [0, 1, 2]
        assert len({c["message"]["content"] for c in ours["choices"]}) == 1
        assert_chat_agrees(ours, theirs)

    async def test_a_refusal(self) -> None:
        """Refusal pieces accumulate into `message.refusal`, content stays empty, as the SDK."""
        with trio.fail_after(GUARD):
            ours, events, theirs = await chat_both(chat_body("refusal"))
        assert ours["choices"][0]["message"]["refusal"]
        assert any(e.type == "response.refusal.delta" for e in events)
        assert_chat_agrees(ours, theirs)

    async def test_an_answer_cut_by_length_is_incomplete(self) -> None:
        """`finish_reason: length` ends in `response.incomplete` with what the SDK assembles."""
        with trio.fail_after(GUARD):
            ours, events, theirs = await chat_both(chat_body("incomplete"))
        assert ours["choices"][0]["finish_reason"] == "length"
        assert events[-1].type == "response.incomplete"
        assert_chat_agrees(ours, theirs)


@SDK_GENERATOR_LEAK
class TestResponsesAgreement:
    def assert_agrees(
        self, ours: dict[str, Any], events: list[StreamEvent], theirs: Any, sdk_events: list[Any]
    ) -> None:
        assert without(ours, _CLOCK_FIELDS) == without(sdk_dump(theirs), _CLOCK_FIELDS)
        assert [(e.type, e.sequence_number) for e in events] == [
            (e.type, e.sequence_number) for e in sdk_events
        ]

    async def test_a_text_answer(self) -> None:
        """The final Response and the event sequence agree on a plain text answer."""
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(responses_body("echo"))
        assert ours["status"] == "completed"
        self.assert_agrees(ours, events, theirs, sdk_events)

    async def test_parallel_function_calls(self) -> None:
        """Two function_call items with their streamed arguments agree with the SDK's."""
        tools = [
            {"type": "function", "name": "get_weather", "parameters": WEATHER},
            {"type": "function", "name": "get_time", "parameters": TIME},
        ]
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(
                responses_body("tools", tools=tools)
            )
        calls = [item for item in ours["output"] if item["type"] == "function_call"]
        assert [c["name"] for c in calls] == ["get_weather", "get_time"]
        assert all(c["arguments"] for c in calls)
        self.assert_agrees(ours, events, theirs, sdk_events)

    async def test_reasoning_summaries(self) -> None:
        """A reasoning item's summary parts, streamed piecewise, agree with the SDK's."""
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(
                responses_body("reasoning", model="o3-mini", reasoning={"summary": "auto"})
            )
        (reasoning,) = [item for item in ours["output"] if item["type"] == "reasoning"]
        assert len(reasoning["summary"]) >= 2
        assert any(e.type == "response.reasoning_summary_text.delta" for e in events)
        self.assert_agrees(ours, events, theirs, sdk_events)

    async def test_a_refusal(self) -> None:
        """A refusal content part agrees with the SDK's."""
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(responses_body("refusal"))
        parts = [p for item in ours["output"] for p in item.get("content", [])]
        assert [p["type"] for p in parts] == ["refusal"]
        self.assert_agrees(ours, events, theirs, sdk_events)

    async def test_an_incomplete_answer(self) -> None:
        """`response.incomplete` is terminal: its Response (status, reason, partial text)
        agrees with the SDK's terminal event."""
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(responses_body("incomplete"))
        assert ours["status"] == "incomplete"
        assert ours["incomplete_details"] == {"reason": "max_output_tokens"}
        assert events[-1].type == "response.incomplete"
        self.assert_agrees(ours, events, theirs, sdk_events)


@SDK_GENERATOR_LEAK
class TestFailures:
    async def test_a_failed_response_is_terminal_with_its_error(self) -> None:
        """`response.failed` ends the stream normally; its Response (status, error) agrees with
        the SDK's terminal event."""
        with trio.fail_after(GUARD):
            ours, events, theirs, sdk_events = await responses_both(responses_body("failed"))
        assert ours["status"] == "failed"
        assert ours["error"]["code"] == "server_error"
        assert events[-1].type == "response.failed"
        assert without(ours, _CLOCK_FIELDS) == without(sdk_dump(theirs), _CLOCK_FIELDS)
        assert [e.type for e in events] == [e.type for e in sdk_events]

    async def test_a_chat_stream_failing_midway_raises_where_the_sdk_raises(self) -> None:
        """A live chat stream that fails midway (an `{"error": ...}` frame): streamvisor yields
        the `error` event and raises `StreamError`; the SDK raises `APIError` with the same
        message."""
        import openai

        from streamvisor.openai import StreamError

        body = chat_body("failed")

        async def sdk_read(sdk: Any) -> None:
            async with sdk.chat.completions.stream(**body) as sdk_stream:
                async for _ in sdk_stream:
                    pass

        with trio.fail_after(GUARD):
            async with twins() as (client, sdk):
                events, ours = await read_until_error(client.stream_chat(body))
                with pytest.raises(openai.APIError) as theirs:
                    await sdk_read(sdk)
        assert isinstance(ours, StreamError)
        assert events[-1].type == "error"
        assert ours.message == theirs.value.message


@pytest.mark.parametrize("framing", ["chat", "responses"])
async def test_the_twin_servers_really_serve_identical_answers(framing: str) -> None:
    """The premise of this module: same seed, same request → same ids and texts."""
    with trio.fail_after(GUARD):
        async with running_server(seed=TWIN_SEED) as a, running_server(seed=TWIN_SEED) as b:
            results = []
            for server in (a, b):
                async with client_opener(server)() as client:
                    if framing == "chat":
                        opened = client.stream_chat(chat_body("echo"))
                    else:
                        opened = client.stream_response(responses_body("echo"))
                    async with opened as stream:
                        async for _ in stream:
                            pass
                        results.append(without(stream.accumulator.result, _CLOCK_FIELDS))
    assert results[0] == results[1]
