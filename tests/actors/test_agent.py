"""Agents end to end: real loopback HTTP against the embedded server, which calls the tools it is
given and then answers with their outputs ("Here is what the tools returned: ...")."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.actors.agents._agent import Agent, AgentReply, ToolCall, ToolResult
from streamvisor.actors.agents._errors import AgentBusy, DuplicateToolName, MaxTurnsExceeded
from streamvisor.actors.agents._handle import AgentHandle, start_agent
from streamvisor.config import AgentSection
from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import ClientSettings, OpenAIClient, RetryPolicy, StreamEvent
from streamvisor.supervisor import (
    ActorExited,
    CallTimeout,
    DynamicSupervisor,
    DynamicSupervisorRef,
    start_actor,
)
from streamvisor.supervisor._bus import EventBus

APIS = pytest.mark.parametrize("api", ["responses", "chat"])
#: The mock's scenario that calls every tool at once (parallel calls).
ALL_TOOLS = {"metadata": {"mock_scenario": "tools"}}


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    return f"sunny and 21C in {city}"


async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    async with serve(MockAPIConfig()) as running:
        yield running


@pytest.fixture
async def client(server: MockServer) -> AsyncIterator[OpenAIClient]:
    settings = ClientSettings(base_url=server.url, retry=RetryPolicy(max_retries=0))
    async with OpenAIClient.open(settings) as opened:
        yield opened


@pytest.fixture
def bus() -> EventBus[Any]:
    return EventBus()


StartAgent = Callable[..., Awaitable[AgentHandle]]


@pytest.fixture
async def start(client: OpenAIClient, bus: EventBus[Any], nursery: trio.Nursery) -> StartAgent:
    async def starter(api: str = "responses", agent_id: str = "a1", **kw: Any) -> AgentHandle:
        kw.setdefault("model", "gpt-4o")
        kw.setdefault("tools", [get_weather])
        agent = Agent(agent_id, client=client, bus=bus, api=api, **kw)  # type: ignore[arg-type]
        return await start_agent(nursery, agent)

    return starter


def model_requests(server: MockServer) -> list[dict[str, Any]]:
    return [
        r.body
        for r in server.requests
        if r.method == "POST" and r.path in ("/v1/responses", "/v1/chat/completions")
    ]


class TestToolRoundTrip:
    @APIS
    async def test_the_agent_runs_the_tool_and_answers_with_its_output(
        self, start: StartAgent, api: str
    ) -> None:
        """The model's call reaches the Python function; its output is in the final answer."""
        agent = await start(api)
        with trio.fail_after(10):
            reply = await agent.ask("What is the weather in Paris?")
        assert reply.text == (
            "Here is what the tools returned: get_weather returned sunny and 21C in Paris."
        )
        assert [(c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
            ("get_weather", {"city": "Paris"})
        ]
        assert [(r.output, r.is_error) for r in reply.tool_results] == [
            ("sunny and 21C in Paris", False)
        ]
        assert reply.tool_results[0].call_id == reply.tool_calls[0].call_id
        assert reply.status == "completed"

    @APIS
    async def test_usage_sums_every_model_request_of_the_turn(
        self, start: StartAgent, api: str
    ) -> None:
        """Two requests (the call, the answer): their tokens are added up."""
        agent = await start(api)
        with trio.fail_after(10):
            reply = await agent.ask("weather?")
        assert reply.usage.requests == 2
        assert reply.usage.input_tokens > 0
        assert reply.usage.output_tokens > 0
        assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
        assert len(reply.response_ids) == 2

    async def test_responses_outputs_go_back_as_function_call_output_items_after_the_call(
        self, start: StartAgent, server: MockServer
    ) -> None:
        """Responses: the second request re-sends the function_call item (no id) and its output."""
        agent = await start("responses", instructions="Be brief.")
        with trio.fail_after(10):
            reply = await agent.ask("weather?")
        first, second = model_requests(server)
        call_id = reply.tool_calls[0].call_id
        assert first["input"] == [{"role": "user", "content": "weather?"}]
        assert first["tools"][0]["name"] == "get_weather"
        assert first["tools"][0]["strict"] is True
        assert first["instructions"] == "Be brief."
        assert first["store"] is False
        assert second["input"] == [
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call_id,
                "name": "get_weather",
                "arguments": reply.tool_calls[0].arguments,
            },
            {
                "type": "function_call_output",
                "call_id": call_id,
                "output": "sunny and 21C in sample city",
            },
        ]
        assert "previous_response_id" not in second

    async def test_chat_outputs_go_back_as_tool_messages_after_the_assistant_tool_calls(
        self, start: StartAgent, server: MockServer
    ) -> None:
        """Chat: assistant message with tool_calls, then one tool message per call."""
        agent = await start("chat", instructions="Be brief.")
        with trio.fail_after(10):
            reply = await agent.ask("weather?")
        first, second = model_requests(server)
        call = reply.tool_calls[0]
        assert first["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "weather?"},
        ]
        assert first["tools"][0]["function"]["name"] == "get_weather"
        assert second["messages"][2:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.arguments},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": call.call_id,
                "content": "sunny and 21C in sample city",
            },
        ]


class TestParallelCalls:
    @APIS
    async def test_parallel_calls_run_concurrently(self, start: StartAgent, api: str) -> None:
        """Each tool waits for the other to have started: sequential execution would deadlock."""
        started = {"left": trio.Event(), "right": trio.Event()}

        async def left() -> str:
            """Left."""
            started["left"].set()
            await started["right"].wait()
            return "L"

        async def right() -> str:
            """Right."""
            started["right"].set()
            await started["left"].wait()
            return "R"

        agent = await start(api, tools=[left, right], options=ALL_TOOLS)
        with trio.fail_after(10):
            reply = await agent.ask("both")
        assert [r.output for r in reply.tool_results] == ["L", "R"]
        assert reply.text == "Here is what the tools returned: left returned L; right returned R."

    async def test_sync_tools_run_in_worker_threads_concurrently(self, start: StartAgent) -> None:
        """Two sync tools meet at a two-party barrier: only concurrent threads pass it."""
        barrier = threading.Barrier(2, timeout=5)

        def one() -> str:
            """One."""
            barrier.wait()
            return "1"

        def two() -> str:
            """Two."""
            barrier.wait()
            return "2"

        agent = await start(tools=[one, two], options=ALL_TOOLS)
        with trio.fail_after(10):
            reply = await agent.ask("both")
        assert [(r.output, r.is_error) for r in reply.tool_results] == [("1", False), ("2", False)]


class TestFailingTools:
    @APIS
    async def test_a_raising_tool_is_reported_to_the_model_and_the_agent_answers(
        self, start: StartAgent, api: str
    ) -> None:
        """The exception becomes the tool's output; the agent survives and answers."""

        def lookup(city: str) -> str:
            """Look a city up."""
            raise ValueError(f"no such city: {city}")

        agent = await start(api, tools=[lookup])
        with trio.fail_after(10):
            reply = await agent.ask("look it up")
        result = reply.tool_results[0]
        assert result.is_error
        assert result.output == "error: ValueError: no such city: sample city"
        assert reply.text == (
            "Here is what the tools returned: lookup returned error: ValueError: no such city: "
            "sample city."
        )
        assert agent.ref.alive

    @APIS
    async def test_a_tool_past_its_timeout_is_reported_and_the_agent_answers(
        self, start: StartAgent, api: str
    ) -> None:
        """A tool that never finishes is cut at tool_timeout; the model hears it timed out."""
        never = trio.Event()

        async def stuck() -> str:
            """Never returns."""
            await never.wait()
            return "unreachable"

        agent = await start(api, tools=[stuck], config=AgentSection(tool_timeout=0.05))
        with trio.fail_after(10):
            reply = await agent.ask("go")
        result = reply.tool_results[0]
        assert result.is_error
        assert result.output == "error: TimeoutError: tool stuck timed out after 0.05 s"
        assert result.duration >= 0.05
        assert "stuck returned error: TimeoutError" in reply.text

    async def test_one_failing_call_does_not_disturb_its_parallel_sibling(
        self, start: StartAgent
    ) -> None:
        """Parallel calls: the failure is that call's output only."""

        def broken() -> str:
            """Broken."""
            raise RuntimeError("boom")

        agent = await start(tools=[broken, get_weather], options=ALL_TOOLS)
        with trio.fail_after(10):
            reply = await agent.ask("both")
        assert [(r.name, r.output, r.is_error) for r in reply.tool_results] == [
            ("broken", "error: RuntimeError: boom", True),
            ("get_weather", "sunny and 21C in sample city", False),
        ]


class TestMaxTurns:
    @APIS
    async def test_still_calling_tools_after_max_turns_raises_a_typed_error(
        self, start: StartAgent, api: str
    ) -> None:
        """With max_turns=1 the tool call cannot be followed by an answer."""
        agent = await start(api, config=AgentSection(max_turns=1))
        with trio.fail_after(10), pytest.raises(MaxTurnsExceeded) as caught:
            await agent.ask("weather?")
        assert caught.value.max_turns == 1
        assert [c.name for c in caught.value.tool_calls] == ["get_weather"]
        assert "max_turns=1" in str(caught.value)

    async def test_a_failed_turn_leaves_the_history_unchanged_and_the_agent_usable(
        self, start: StartAgent
    ) -> None:
        """History is committed per turn; the agent keeps serving."""
        agent = await start(config=AgentSection(max_turns=1))
        with trio.fail_after(10):
            with pytest.raises(MaxTurnsExceeded):
                await agent.ask("weather?")
            assert await agent.history() == ()
            assert agent.ref.alive


class TestTopic:
    @APIS
    async def test_events_and_tool_records_are_published_in_order(
        self, start: StartAgent, bus: EventBus[Any], api: str
    ) -> None:
        """Request 1's events, the ToolCall, the ToolResult, then request 2's events."""
        agent = await start(api, agent_id="topic1")
        seen: list[Any] = []
        with trio.fail_after(10):
            async with bus.subscribe("agent.topic1") as sub:
                reply = await agent.ask("weather?")
                seen = sub.drain()
        kinds = [
            type(x).__name__ if not isinstance(x, StreamEvent) else x.type
            for x in seen
            if not isinstance(x, StreamEvent) or x.type in ("response.created",) or x.terminal
        ]
        assert kinds == [
            "response.created",
            "response.completed",
            "ToolCall",
            "ToolResult",
            "response.created",
            "response.completed",
        ]
        records = [x for x in seen if isinstance(x, ToolCall | ToolResult)]
        assert records == [reply.tool_calls[0], reply.tool_results[0]]
        events = [x for x in seen if isinstance(x, StreamEvent)]
        assert all(e.session_id == "topic1" and e.api == api for e in events)
        deltas = "".join(e.data["delta"] for e in events if e.type == "response.output_text.delta")
        assert deltas == reply.text

    async def test_events_of_one_agent_stay_on_its_own_topic(
        self, start: StartAgent, bus: EventBus[Any]
    ) -> None:
        """agent.<id> carries only that agent's traffic."""
        first = await start(agent_id="one")
        await start(agent_id="two")
        with trio.fail_after(10):
            async with bus.subscribe("agent.two") as sub:
                await first.ask("weather?")
                assert sub.drain() == []


class TestHistory:
    async def test_responses_history_holds_both_turns_in_order(self, start: StartAgent) -> None:
        """User, call, output, answer -- twice; the second request carried the first turn."""
        agent = await start()
        with trio.fail_after(10):
            one = await agent.ask("first")
            two = await agent.ask("second")
            history = await agent.history()
        assert [item.get("type", item.get("role")) for item in history] == [
            "user",
            "function_call",
            "function_call_output",
            "message",
            "user",
            "function_call",
            "function_call_output",
            "message",
        ]
        assert history[3]["content"] == [{"type": "output_text", "text": one.text}]
        assert history[7]["content"] == [{"type": "output_text", "text": two.text}]
        assert history[4] == {"role": "user", "content": "second"}

    async def test_chat_history_holds_both_turns_in_order(self, start: StartAgent) -> None:
        """Chat messages: user, assistant(tool_calls), tool, assistant -- twice."""
        agent = await start("chat")
        with trio.fail_after(10):
            await agent.ask("first")
            two = await agent.ask("second")
            history = await agent.history()
        assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant"] * 2
        assert history[7] == {"role": "assistant", "content": two.text}

    async def test_the_second_ask_sends_the_first_turn_to_the_model(
        self, start: StartAgent, server: MockServer
    ) -> None:
        """The conversation is re-sent in full (no previous_response_id)."""
        agent = await start()
        with trio.fail_after(10):
            await agent.ask("first")
            first_history = await agent.history()
            await agent.ask("second")
        third = model_requests(server)[2]
        assert third["input"] == [*first_history, {"role": "user", "content": "second"}]

    async def test_reset_forgets_the_conversation(
        self, start: StartAgent, server: MockServer
    ) -> None:
        """After reset the next request carries only the new message."""
        agent = await start()
        with trio.fail_after(10):
            await agent.ask("first")
            await agent.reset()
            assert await agent.history() == ()
            await agent.ask("again")
        assert model_requests(server)[2]["input"] == [{"role": "user", "content": "again"}]


class TestMailbox:
    async def test_the_mailbox_answers_while_a_turn_runs(self, start: StartAgent) -> None:
        """history() and register() are served while a tool blocks the turn."""
        entered, release = trio.Event(), trio.Event()

        async def slow() -> str:
            """Slow."""
            entered.set()
            await release.wait()
            return "done"

        agent = await start(tools=[slow])
        replies: list[AgentReply] = []

        async def asker() -> None:
            replies.append(await agent.ask("go"))

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(asker)
                await entered.wait()
                assert await agent.history() == ()
                tool = await agent.register(add)
                assert [t.name for t in await agent.tools()] == ["slow", "add"]
                assert tool.name == "add"
                with pytest.raises(AgentBusy):
                    await agent.reset()
                release.set()
        assert replies[0].tool_results[0].output == "done"

    async def test_registering_a_duplicate_name_raises_from_the_agent(
        self, start: StartAgent
    ) -> None:
        """The registry's check reaches the caller; the agent keeps running."""
        agent = await start()
        with trio.fail_after(5):
            with pytest.raises(DuplicateToolName):
                await agent.register(get_weather)
            assert agent.ref.alive

    async def test_a_second_ask_waits_for_the_first_turn(self, start: StartAgent) -> None:
        """Asks queue FIFO: the second starts only after the first replied."""
        entered, release = trio.Event(), trio.Event()
        calls = 0

        async def gate() -> str:
            """Gate."""
            nonlocal calls
            calls += 1
            if calls == 1:
                entered.set()
                await release.wait()
            return f"call {calls}"

        agent = await start(tools=[gate])
        order: list[str] = []

        async def asker(text: str) -> None:
            reply = await agent.ask(text)
            order.append(reply.tool_results[0].output)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(asker, "first")
                await entered.wait()
                nursery.start_soon(asker, "second")
                await trio.testing.wait_all_tasks_blocked()
                assert calls == 1
                release.set()
        assert order == ["call 1", "call 2"]
        history = await agent.history()
        assert [h.get("content") for h in history if h.get("role") == "user"] == [
            "first",
            "second",
        ]

    async def test_an_ask_beyond_the_queue_bound_raises_agent_busy(self, start: StartAgent) -> None:
        """max_queued=0: a second ask while a turn runs is refused with AgentBusy."""
        entered, release = trio.Event(), trio.Event()

        async def slow() -> str:
            """Slow."""
            entered.set()
            await release.wait()
            return "ok"

        agent = await start(tools=[slow], max_queued=0)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(agent.ask, "first")
                await entered.wait()
                with pytest.raises(AgentBusy) as caught:
                    await agent.ask("second")
                assert caught.value.agent_id == "a1"
                release.set()

    async def test_an_ask_that_times_out_cancels_its_turn(self, start: StartAgent) -> None:
        """The caller gives up: the turn is cancelled, nothing is committed, the agent serves on."""
        calls = 0
        never = trio.Event()

        async def once_stuck() -> str:
            """Stuck the first time."""
            nonlocal calls
            calls += 1
            if calls == 1:
                await never.wait()
            return "fine"

        agent = await start(tools=[once_stuck])
        with trio.fail_after(10):
            with pytest.raises(CallTimeout):
                await agent.ask("first", timeout=0.3)
            reply = await agent.ask("second")
            history = await agent.history()
        assert reply.tool_results[0].output == "fine"
        assert [h.get("content") for h in history if h.get("role") == "user"] == ["second"]


class TestLifecycle:
    async def test_stopping_the_agent_mid_turn_cancels_the_tool_and_fails_the_ask(
        self, start: StartAgent
    ) -> None:
        """The running tool is cancelled; the waiting caller gets ActorExited, not a hang."""
        entered = trio.Event()
        cancelled = False

        async def slow() -> str:
            """Slow."""
            nonlocal cancelled
            entered.set()
            try:
                await trio.sleep_forever()
            finally:
                cancelled = True

        agent = await start(tools=[slow])
        errors: list[BaseException] = []

        async def asker() -> None:
            try:
                await agent.ask("go")
            except ActorExited as exc:
                errors.append(exc)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(asker)
                await entered.wait()
                await agent.ref.stop()
        assert cancelled
        assert len(errors) == 1

    async def test_a_sync_tool_past_its_timeout_is_abandoned_and_reported(
        self, start: StartAgent
    ) -> None:
        """A thread cannot be interrupted: the agent stops waiting for it and answers."""
        release = threading.Event()

        def blocking() -> str:
            """Blocks its thread."""
            release.wait(5)
            return "late"

        agent = await start(tools=[blocking], config=AgentSection(tool_timeout=0.05))
        try:
            with trio.fail_after(10):
                reply = await agent.ask("go")
        finally:
            release.set()
        assert reply.tool_results[0].output == (
            "error: TimeoutError: tool blocking timed out after 0.05 s"
        )


class TestUnderADynamicSupervisor:
    async def test_agents_start_as_children_of_one_template_and_answer(
        self, client: OpenAIClient, bus: EventBus[Any], nursery: trio.Nursery
    ) -> None:
        """The daemon's `agents` supervisor: factory(agent_id) -> Agent; one handle per child."""

        def factory(agent_id: str) -> Agent:
            return Agent(agent_id, client=client, bus=bus, model="gpt-4o", tools=[get_weather])

        sup = await start_actor(nursery, DynamicSupervisor(factory))
        assert isinstance(sup, DynamicSupervisorRef)
        with trio.fail_after(10):
            handles = [AgentHandle(await sup.start_child(i), i) for i in ("x", "y")]
            replies = [await h.ask(f"hello {h.agent_id}") for h in handles]
        assert [r.tool_calls[0].agent_id for r in replies] == ["x", "y"]
        assert (await sup.count_children()).active == 2


class TestIncomplete:
    async def test_a_chat_answer_cut_by_length_ends_the_turn_without_running_its_calls(
        self, start: StartAgent, server: MockServer
    ) -> None:
        """finish_reason 'length' with tool calls: status incomplete, nothing run or kept."""
        agent = await start("chat", options={"metadata": {"mock_scenario": "incomplete"}})
        with trio.fail_after(10):
            reply = await agent.ask("weather?")
            history = await agent.history()
        assert (reply.status, reply.tool_calls, reply.tool_results) == ("incomplete", (), ())
        assert history[1] == {"role": "assistant", "content": ""}
        assert len(model_requests(server)) == 1
