"""Responses API streaming (foreground), checked by the official SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from tests._sdk import SDK_GENERATOR_LEAK

pytestmark = SDK_GENERATOR_LEAK

CAPITAL = {
    "type": "function",
    "name": "get_capital",
    "parameters": {
        "type": "object",
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
        "additionalProperties": False,
    },
    "strict": True,
}
TIME = {
    "type": "function",
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
}


async def events_of(client: openai.AsyncOpenAI, **kwargs: Any) -> list[Any]:
    stream = await client.responses.create(stream=True, **kwargs)
    async with stream:
        return [event async for event in stream]


class TestText:
    async def test_the_stream_helper_accumulates_the_reply(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.responses.stream(model="gpt-4o", input="hello there") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
        assert final.output_text == "You said: hello there"
        assert "".join(deltas) == final.output_text
        assert final.id.startswith("resp_")
        assert final.output[0].id.startswith("msg_")
        assert final.status == "completed"
        assert final.usage is not None
        assert final.usage.output_tokens == len(deltas)

    async def test_events_follow_the_core_order_with_gapless_sequence_numbers(
        self, client: openai.AsyncOpenAI
    ) -> None:
        events = await events_of(client, model="gpt-4o", input="hi")
        assert [e.sequence_number for e in events] == list(range(len(events)))
        types = [e.type for e in events]
        assert types == [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            *["response.output_text.delta"] * 4,
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]

    async def test_event_types_are_those_of_recording_10(
        self, client: openai.AsyncOpenAI, recorded_dir: Path
    ) -> None:
        recorded = [
            json.loads(line[6:])
            for line in (recorded_dir / "10_responses_background_stream_create.sse")
            .read_text()
            .split("\n")
            if line.startswith("data: ")
        ]
        events = await events_of(client, model="gpt-4o", input="hi")
        served = {e.type: set(e.model_dump(exclude_unset=True)) for e in events}
        for event in recorded:
            if event["type"] in served and event["type"] != "response.output_text.delta":
                assert served[event["type"]] == set(event), event["type"]
        completed = events[-1].response.model_dump(exclude_unset=True)
        assert set(completed) == set(recorded[-1]["response"])

    async def test_a_non_streamed_response(self, client: openai.AsyncOpenAI) -> None:
        response = await client.responses.create(model="gpt-4o", input="hello")
        assert response.status == "completed"
        assert response.output_text == "You said: hello"
        assert response.store is True
        assert response.background is False


async def test_a_bad_temperature_gets_the_recorded_error_body(
    client: openai.AsyncOpenAI, recorded_dir: Path
) -> None:
    (exchange,) = json.loads((recorded_dir / "16_responses_http_error_transcript.json").read_text())
    request = exchange["request"]["body"]
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(**request)
    assert caught.value.status_code == exchange["response"]["status"]
    assert caught.value.body == exchange["response"]["body"]["error"]


class TestRefusal:
    async def test_refusal_parts_stream_refusal_deltas(self, client: openai.AsyncOpenAI) -> None:
        async with client.responses.stream(
            model="gpt-4o", input="hi", metadata={"mock_scenario": "refusal"}
        ) as stream:
            types = [e.type async for e in stream]
            final = await stream.get_final_response()
        assert "response.refusal.delta" in types
        assert "response.refusal.done" in types
        part = final.output[0].content[0]  # type: ignore[union-attr]
        assert part.type == "refusal"
        assert part.refusal == "I'm sorry, I can't assist with that request."


class TestFunctionCalls:
    async def test_the_first_tool_is_called(self, client: openai.AsyncOpenAI) -> None:
        async with client.responses.stream(
            model="gpt-4o", input="capital of the UK?", tools=[CAPITAL, TIME]
        ) as stream:
            types = [e.type async for e in stream]
            final = await stream.get_final_response()
        (call,) = final.output
        assert call.type == "function_call"
        assert call.id.startswith("fc_")
        assert call.call_id.startswith("call_")
        assert call.name == "get_capital"
        assert json.loads(call.arguments) == {"country": "UK"}
        assert "response.function_call_arguments.done" in types

    async def test_the_tools_scenario_calls_every_tool(self, client: openai.AsyncOpenAI) -> None:
        response = await client.responses.create(
            model="gpt-4o",
            input="hi",
            tools=[CAPITAL, TIME],
            metadata={"mock_scenario": "tools"},
        )
        assert [item.name for item in response.output] == ["get_capital", "get_time"]  # type: ignore[union-attr]

    async def test_function_call_outputs_are_answered_with_text(
        self, client: openai.AsyncOpenAI
    ) -> None:
        first = await client.responses.create(model="gpt-4o", input="hi", tools=[CAPITAL])
        (call,) = first.output
        assert call.type == "function_call"
        async with client.responses.stream(
            model="gpt-4o",
            previous_response_id=first.id,
            input=[{"type": "function_call_output", "call_id": call.call_id, "output": "London"}],
            tools=[CAPITAL],
        ) as stream:
            final = await stream.get_final_response()
        assert final.output_text == "Here is what the tools returned: get_capital returned London."

    async def test_an_unknown_previous_response_is_a_bad_request(
        self, client: openai.AsyncOpenAI
    ) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(
                model="gpt-4o", input="hi", previous_response_id="resp_missing"
            )
        assert caught.value.code == "previous_response_not_found"


class TestReasoning:
    async def test_a_reasoning_model_with_summary_streams_summary_parts(
        self, client: openai.AsyncOpenAI
    ) -> None:
        async with client.responses.stream(
            model="o3-mini",
            input="how do I cross the street?",
            reasoning={"effort": "low", "summary": "detailed"},
        ) as stream:
            types = [e.type async for e in stream]
            final = await stream.get_final_response()
        reasoning, message = final.output
        assert reasoning.type == "reasoning"
        assert reasoning.id.startswith("rs_")
        assert len(reasoning.summary) == 2
        assert reasoning.summary[0].text.startswith("**Reading the request**")
        assert message.type == "message"
        for event_type in (
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
        ):
            assert types.count(event_type) >= 2, event_type
        assert final.usage is not None
        assert final.usage.output_tokens_details.reasoning_tokens > 0

    async def test_the_reasoning_scenario_works_for_any_model(
        self, client: openai.AsyncOpenAI
    ) -> None:
        response = await client.responses.create(
            model="gpt-4o", input="hi", metadata={"mock_scenario": "reasoning"}
        )
        assert [item.type for item in response.output] == ["reasoning", "message"]

    async def test_a_reasoning_model_rejects_temperature(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="o4-mini", input="hi", temperature=0.3)
        assert caught.value.param == "temperature"


class TestEndings:
    async def test_max_output_tokens_makes_the_response_incomplete(
        self, client: openai.AsyncOpenAI
    ) -> None:
        events = await events_of(
            client,
            model="gpt-4o",
            input="hi",
            max_output_tokens=16,
            metadata={"mock_scenario": "long:40"},
        )
        last = events[-1]
        assert last.type == "response.incomplete"
        assert last.response.incomplete_details is not None
        assert last.response.incomplete_details.reason == "max_output_tokens"
        assert last.response.usage is not None
        assert last.response.usage.output_tokens == 16
        assert last.response.output[0].status == "incomplete"  # type: ignore[union-attr]

    async def test_the_failed_scenario_ends_with_response_failed(
        self, client: openai.AsyncOpenAI
    ) -> None:
        events = await events_of(
            client, model="gpt-4o", input="hi", metadata={"mock_scenario": "failed"}
        )
        assert [e.type for e in events] == [
            "response.created",
            "response.in_progress",
            "response.failed",
        ]
        assert events[-1].response.error is not None
        assert events[-1].response.error.code == "server_error"

    async def test_obfuscation_is_on_delta_events_unless_turned_off(
        self, client: openai.AsyncOpenAI
    ) -> None:
        on = await events_of(client, model="gpt-4o", input="hi")
        off = await events_of(
            client, model="gpt-4o", input="hi", stream_options={"include_obfuscation": False}
        )
        deltas_on = [e for e in on if e.type == "response.output_text.delta"]
        deltas_off = [e for e in off if e.type == "response.output_text.delta"]
        assert all(e.model_dump().get("obfuscation") for e in deltas_on)
        assert not any("obfuscation" in e.model_dump() for e in deltas_off)


class TestInputItems:
    async def test_input_items_list_the_request_input_with_ids(
        self, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o",
            input=[
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "reply"},
                {"role": "user", "content": "second"},
            ],
        )
        newest_first = await client.responses.input_items.list(created.id)
        texts = [item.content[0].text for item in newest_first.data]  # type: ignore[union-attr]
        assert texts == ["second", "reply", "first"]
        assert all(item.id.startswith("msg_") for item in newest_first.data)  # type: ignore[union-attr]
        paged = [
            item.id  # type: ignore[union-attr]
            async for item in client.responses.input_items.list(created.id, limit=1, order="asc")
        ]
        assert paged == [item.id for item in reversed(newest_first.data)]  # type: ignore[union-attr]
