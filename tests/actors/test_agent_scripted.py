"""Agents against a scripted model (`httpx.MockTransport` behind a real `OpenAIClient`): the
model's mistakes and the server's failures that the embedded server never makes on its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

from streamvisor.actors.agents._agent import Agent
from streamvisor.actors.agents._errors import (
    DuplicateToolName,
    InvalidAgentConfig,
    ModelResponseFailed,
)
from streamvisor.actors.agents._handle import AgentHandle, start_agent
from streamvisor.openai import (
    BadRequestError,
    ClientSettings,
    OpenAIClient,
    RetryPolicy,
    StreamInterrupted,
)
from streamvisor.supervisor._bus import EventBus

Script = Callable[[dict[str, Any]], bytes]


def sse(*events: dict[str, Any]) -> bytes:
    out = []
    for seq, event in enumerate(events):
        event = {**event, "sequence_number": seq}
        out.append(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
    return "".join(out).encode()


def response_stream(output: list[dict[str, Any]], status: str = "completed", **extra: Any) -> bytes:
    base = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
    final = {
        **base,
        "status": status,
        "output": output,
        "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8},
        **extra,
    }
    terminal = f"response.{status}"
    return sse(
        {"type": "response.created", "response": base},
        {"type": terminal, "response": final},
    )


def call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def text_item(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


class Model:
    """Answers each POST /responses with the next scripted body; records what it was sent."""

    def __init__(self, *answers: bytes | httpx.Response) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.content))
        answer = self.answers.pop(0)
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=answer)


@pytest.fixture
def bus() -> EventBus[Any]:
    return EventBus()


async def agent_for(
    nursery: trio.Nursery, script: Model, bus: EventBus[Any], **kw: Any
) -> AgentHandle:
    settings = ClientSettings(
        api_key="sk-test", base_url="https://api.test/v1", retry=RetryPolicy(max_retries=0)
    )
    client_cm = OpenAIClient.open(settings, transport=httpx.MockTransport(script))
    client = await client_cm.__aenter__()

    async def close_later() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await client_cm.__aexit__(None, None, None)

    nursery.start_soon(close_later)
    kw.setdefault("tools", [lookup])
    kw.setdefault("model", "gpt-4o")
    agent = Agent("s1", client=client, bus=bus, **kw)
    return await start_agent(nursery, agent)


def lookup(city: str) -> str:
    """Look a city up."""
    return f"found {city}"


class TestTheModelsMistakes:
    async def test_bad_arguments_are_sent_back_as_the_tool_output(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """Wrong names and types never reach the function; the model reads what was wrong."""
        model = Model(
            response_stream([call_item("c1", "lookup", '{"town": 3}')]),
            response_stream([text_item("sorry")]),
        )
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5):
            reply = await agent.ask("find it")
        assert reply.text == "sorry"
        expected = (
            "error: invalid arguments for lookup: missing required argument 'city'; "
            "unexpected argument 'town'"
        )
        assert reply.tool_results[0].output == expected
        assert model.bodies[1]["input"][-1] == {
            "type": "function_call_output",
            "call_id": "c1",
            "output": expected,
        }

    async def test_a_call_to_an_unknown_tool_is_answered_with_the_known_names(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """A hallucinated tool name is an error output, not a crash."""
        model = Model(
            response_stream([call_item("c1", "teleport", "{}")]),
            response_stream([text_item("ok")]),
        )
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5):
            reply = await agent.ask("go")
        assert reply.tool_results[0].output == "error: unknown tool 'teleport'; available: lookup"
        assert reply.tool_results[0].is_error

    async def test_invalid_json_arguments_are_reported(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        model = Model(
            response_stream([call_item("c1", "lookup", '{"city": ')]),
            response_stream([text_item("ok")]),
        )
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5):
            reply = await agent.ask("go")
        assert reply.tool_results[0].output.startswith(
            "error: invalid arguments for lookup: arguments are not valid JSON"
        )


class TestServerFailures:
    async def test_a_failed_response_raises_a_typed_error_and_the_agent_survives(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """response.failed → ModelResponseFailed with the server's code; history untouched."""
        model = Model(
            response_stream([], status="failed", error={"code": "server_error", "message": "oops"}),
            response_stream([text_item("fine now")]),
        )
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5):
            with pytest.raises(ModelResponseFailed) as caught:
                await agent.ask("one")
            assert (caught.value.status, caught.value.code) == ("failed", "server_error")
            assert await agent.history() == ()
            reply = await agent.ask("two")
        assert reply.text == "fine now"

    async def test_an_http_error_reaches_the_caller_as_the_clients_typed_error(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """A 400 is raised from ask as BadRequestError; the agent keeps running."""
        model = Model(
            httpx.Response(
                400,
                json={"error": {"message": "bad", "type": "invalid_request_error", "code": None}},
            )
        )
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5), pytest.raises(BadRequestError):
            await agent.ask("one")
        assert agent.ref.alive

    async def test_a_stream_cut_before_its_end_raises_stream_interrupted(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """No terminal event: the turn fails with the wire layer's StreamInterrupted."""
        model = Model(sse({"type": "response.created", "response": {"id": "resp_1"}}))
        agent = await agent_for(nursery, model, bus)
        with trio.fail_after(5), pytest.raises(StreamInterrupted):
            await agent.ask("one")


class TestResponsesReplay:
    async def test_reasoning_items_are_replayed_only_with_encrypted_content(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """Reasoning models: include encrypted content, re-send it; drop ids of calls."""
        reasoning = {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "encrypted_content": "gAAAA",
            "status": "completed",
        }
        model = Model(
            response_stream([reasoning, call_item("c1", "lookup", '{"city": "Rome"}')]),
            response_stream([text_item("Rome it is")]),
        )
        agent = await agent_for(nursery, model, bus, model="o4-mini")
        with trio.fail_after(5):
            await agent.ask("go")
        assert model.bodies[0]["include"] == ["reasoning.encrypted_content"]
        second = model.bodies[1]["input"]
        assert second[1] == {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [],
            "encrypted_content": "gAAAA",
        }
        assert second[2] == {
            "type": "function_call",
            "call_id": "c1",
            "name": "lookup",
            "arguments": '{"city": "Rome"}',
        }


class TestConstruction:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"agent_id": "a.b"}, "agent_id"),
            ({"agent_id": ""}, "agent_id"),
            ({"agent_id": "a*"}, "agent_id"),
            ({"api": "assistants"}, "api must be"),
            ({"model": ""}, "a model name is"),
            ({"max_queued": -1}, "max_queued"),
            ({"options": {"model": "x"}}, "options may not set"),
            ({"options": {"previous_response_id": "resp_1"}}, "options may not set"),
            ({"instructions": 3}, "instructions must be"),
        ],
    )
    async def test_bad_arguments_are_refused_before_start(
        self, bus: EventBus[Any], kwargs: dict[str, Any], match: str
    ) -> None:
        """InvalidAgentConfig (a ValueError) at construction, naming the problem."""
        values: dict[str, Any] = {"agent_id": "ok", "model": "gpt-4o", **kwargs}
        async with OpenAIClient.open(ClientSettings(base_url="https://api.test/v1")) as client:
            with pytest.raises(InvalidAgentConfig, match=match):
                Agent(values.pop("agent_id"), client=client, bus=bus, **values)

    async def test_duplicate_tools_are_refused_before_start(self, bus: EventBus[Any]) -> None:
        async with OpenAIClient.open(ClientSettings(base_url="https://api.test/v1")) as client:
            with pytest.raises(DuplicateToolName):
                Agent("a", client=client, bus=bus, model="gpt-4o", tools=[lookup, lookup])


class TestIncompleteResponses:
    async def test_half_written_calls_of_an_incomplete_response_are_not_run(
        self, nursery: trio.Nursery, bus: EventBus[Any]
    ) -> None:
        """Out of tokens mid-call: the turn ends 'incomplete'; the call is neither run nor kept."""
        ran = False

        def lookup(city: str) -> str:
            """Look a city up."""
            nonlocal ran
            ran = True
            return city

        partial = {**call_item("c1", "lookup", '{"ci'), "status": "incomplete"}
        model = Model(
            response_stream(
                [text_item("Let me check"), partial],
                status="incomplete",
                incomplete_details={"reason": "max_output_tokens"},
            ),
        )
        agent = await agent_for(nursery, model, bus, tools=[lookup])
        with trio.fail_after(5):
            reply = await agent.ask("go")
            history = await agent.history()
        assert (reply.status, reply.text, reply.tool_calls) == ("incomplete", "Let me check", ())
        assert not ran
        assert [h.get("type", h.get("role")) for h in history] == ["user", "message"]
