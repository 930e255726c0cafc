"""StreamingSession, end to end over loopback against the embedded server: chat and foreground
Responses streams, stop, errors, retries, model rules, slow subscribers."""

from __future__ import annotations

import gc
import json
from typing import Any

import httpx
import pytest
import trio

from streamvisor.actors.sessions._errors import (
    InvalidSessionId,
    InvalidSessionRequest,
    StreamStopped,
    TooManyStreams,
    UnknownStream,
)
from streamvisor.actors.sessions._handle import open_session
from streamvisor.actors.sessions._requests import check_session_id
from streamvisor.actors.sessions._values import StreamTicket, _Record
from streamvisor.mockapi import Fault, MockServer
from streamvisor.openai import (
    BadRequestError,
    InvalidRequestError,
    RateLimitError,
    StreamError,
    StreamEvent,
    StreamInterrupted,
)

from ._session_support import (
    Env,
    HeldOpen,
    Missed,
    assert_gapless,
    collect,
    deltas,
    events_of,
    session_env,
    streamed,
)

USER = [{"role": "user", "content": "What is the capital of the UK?"}]
CAPITAL = {
    "type": "function",
    "function": {
        "name": "get_capital",
        "parameters": {"type": "object", "properties": {"country": {"type": "string"}}},
    },
}
SLOW = {"mock_scenario": "long:400", "mock_token_delay_ms": "20"}


def posts(server: MockServer, path: str) -> list[Any]:
    return [r for r in server.requests if r.method == "POST" and r.path == path]


class TestChat:
    async def test_text_reaches_a_subscriber_in_order_with_gapless_sequence_numbers(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.chat("gpt-4o", USER)
                items = await collect(sub)
                outcome = await env.handle.wait(ticket.stream_id)
        events = events_of(items)
        assert events[0].type == "response.created"
        assert events[-1].type == "response.completed"
        assert_gapless(events)
        assert events[0].sequence_number == 0
        assert {e.session_id for e in events} == {"s1"}
        assert {e.response_id for e in events} == {ticket.response_id}
        assert all(e.received_at > 0 for e in events)
        assert deltas(events) == "You said: What is the capital of the UK?"
        assert outcome.status == "completed"
        assert outcome.response is not None
        assert outcome.response["choices"][0]["message"]["content"] == deltas(events)
        assert outcome.last_sequence_number == events[-1].sequence_number

    async def test_the_ticket_names_the_stream_and_its_topic(self, env: Env) -> None:
        with trio.fail_after(10):
            ticket = await env.handle.chat("gpt-4o", USER)
            await env.handle.wait(ticket.stream_id)
        assert ticket == StreamTicket(
            ticket.stream_id, "s1", "chat", "gpt-4o", False, ticket.response_id, "session.s1"
        )
        assert ticket.response_id is not None
        assert ticket.response_id.startswith("chatcmpl-")

    async def test_tool_calls_reach_a_subscriber_as_argument_deltas(self, env: Env) -> None:
        _, events, outcome = await streamed(
            env,
            lambda: env.handle.chat(
                "gpt-4o", USER, tools=[CAPITAL], metadata={"mock_scenario": "tools"}
            ),
        )
        assert_gapless(events)
        added = [e for e in events if e.type == "response.output_item.added"]
        assert [e.data["item"]["name"] for e in added] == ["get_capital"]
        arguments = "".join(
            e.data["delta"] for e in events if e.type == "response.function_call_arguments.delta"
        )
        assert isinstance(json.loads(arguments), dict)
        first_delta = next(e for e in events if e.type == "response.function_call_arguments.delta")
        assert added[0].sequence_number < first_delta.sequence_number
        assert outcome.response is not None
        calls = outcome.response["choices"][0]["message"]["tool_calls"]
        assert calls[0]["function"]["arguments"] == arguments

    async def test_a_refusal_reaches_a_subscriber_as_refusal_deltas(self, env: Env) -> None:
        _, events, outcome = await streamed(
            env, lambda: env.handle.chat("gpt-4o", USER, metadata={"mock_scenario": "refusal"})
        )
        assert_gapless(events)
        refusal = "".join(e.data["delta"] for e in events if e.type == "response.refusal.delta")
        assert refusal == "I'm sorry, I can't assist with that request."
        assert outcome.response is not None
        assert outcome.response["choices"][0]["message"]["refusal"] == refusal


class TestOutcomesKept:
    """Only the newest ``results_kept`` outcomes of a session keep their whole response."""

    async def test_an_older_outcome_keeps_its_status_but_not_its_response(
        self, server: MockServer
    ) -> None:
        with trio.fail_after(20):
            async with session_env(server.url, results_kept=1) as env:
                first = await env.handle.chat("gpt-4o", USER)
                await env.handle.wait(first.stream_id)
                second = await env.handle.respond("gpt-4o", "Hello", durable=False)
                newest = await env.handle.wait(second.stream_id)
                older = await env.handle.wait(first.stream_id)
        assert newest.response is not None
        assert newest.response["status"] == "completed"
        assert (older.status, older.response_id, older.response) == (
            "completed",
            first.response_id,
            None,
        )
        assert older.last_sequence_number is not None

    async def test_with_none_kept_only_a_caller_waiting_at_the_end_gets_the_response(
        self, server: MockServer
    ) -> None:
        paced = {"mock_scenario": "long:20", "mock_token_delay_ms": "20"}
        with trio.fail_after(20):
            async with session_env(server.url, results_kept=0) as env:
                ticket = await env.handle.chat("gpt-4o", USER, metadata=paced)
                waited = await env.handle.wait(ticket.stream_id)  # it was still streaming
                later = await env.handle.wait(ticket.stream_id)
        assert waited.response is not None
        assert (later.status, later.response) == ("completed", None)

    async def test_a_finished_stream_leaves_nothing_behind_but_its_outcome(
        self, server: MockServer
    ) -> None:
        """The first stream of a session used to stay alive for the session's life (its
        request body, its accumulator, all its text), held by the actor's loop."""
        with trio.fail_after(20):
            async with session_env(server.url, results_kept=0) as env:
                ticket = await env.handle.chat("gpt-4o", USER)
                await env.handle.wait(ticket.stream_id)
                while _records_of(ticket.stream_id):
                    await trio.sleep(0.01)
                outcome = await env.handle.wait(ticket.stream_id)
        assert (outcome.status, outcome.response) == ("completed", None)


def _records_of(stream_id: str) -> list[_Record]:
    gc.collect()
    return [o for o in gc.get_objects() if isinstance(o, _Record) and o.stream_id == stream_id]


class TestForegroundResponses:
    async def test_a_foreground_stream_reaches_a_subscriber_whole_and_in_order(
        self, env: Env, server: MockServer
    ) -> None:
        ticket, events, outcome = await streamed(
            env, lambda: env.handle.respond("gpt-4o", "Hello there", durable=False)
        )
        assert ticket.durable is False
        assert ticket.response_id is not None
        assert ticket.response_id.startswith("resp_")
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[0].type == "response.created"
        assert events[-1].type == "response.completed"
        assert deltas(events) == "You said: Hello there"
        assert outcome.status == "completed"
        assert outcome.response is not None
        assert outcome.response["status"] == "completed"
        body = posts(server, "/v1/responses")[0].body
        assert body["stream"] is True
        assert "background" not in body
        assert env.tracker.track_calls == 0

    async def test_a_broken_foreground_stream_ends_with_a_typed_error_event(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.drop_after(1500), method="POST", path="/v1/responses")
        ticket, events, outcome = await streamed(
            env,
            lambda: env.handle.respond(
                "gpt-4o", "Hello", durable=False, metadata={"mock_scenario": "long:200"}
            ),
        )
        assert_gapless(events)
        last = events[-1]
        assert last.type == "error"
        assert last.terminal
        assert last.response_id == ticket.response_id
        assert last.data["error_type"] == "StreamInterrupted"
        assert last.data["message"]
        assert "status" in last.data
        assert "request_id" in last.data
        assert outcome.status == "error"
        assert isinstance(outcome.error, StreamInterrupted)
        assert outcome.last_sequence_number == last.sequence_number

    async def test_a_broken_chat_stream_ends_with_a_typed_error_event(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.drop_after(900), method="POST", path="/v1/chat/completions")
        _, events, outcome = await streamed(
            env, lambda: env.handle.chat("gpt-4o", USER, metadata={"mock_scenario": "long:200"})
        )
        assert_gapless(events)
        assert events[-1].type == "error"
        assert events[-1].data["error_type"] == "StreamInterrupted"
        assert events[-1].data["request_id"] is not None
        assert isinstance(outcome.error, StreamInterrupted)

    async def test_an_error_frame_is_published_once_and_fails_the_stream(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.error_event(after_events=4), method="POST", path="/v1/responses")
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", "Hello", durable=False)
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
                await trio.sleep(0.05)
                assert sub.drain() == []
        assert_gapless(events)
        assert [e.type for e in events].count("error") == 1
        assert "origin" not in events[-1].data  # the server's frame, not one the session made
        assert outcome.status == "failed"
        assert outcome.error is not None

    async def test_an_error_frame_before_any_other_event_fails_the_call(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.error_event(after_events=0), path="/v1/chat/completions")
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                with pytest.raises(StreamError):
                    await env.handle.chat("gpt-4o", USER)
                events = events_of(sub.drain())
            assert await env.handle.streams() == []
        assert [e.type for e in events] == ["error"]


class TestRetries:
    async def test_a_429_storm_before_the_headers_is_retried(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.status(429, retry_after=0.01), path="/v1/chat/completions", times=3)
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.chat("gpt-4o", USER)
                events = events_of(await collect(sub))
        assert len(posts(server, "/v1/chat/completions")) == 4
        assert ticket.response_id is not None
        assert deltas(events) == "You said: What is the capital of the UK?"

    async def test_a_5xx_storm_before_the_headers_is_retried(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.status(503), path="/v1/responses", times=2)
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                await env.handle.respond("gpt-4o", "Hi", durable=False)
                events = events_of(await collect(sub))
        assert len(posts(server, "/v1/responses")) == 3
        assert events[-1].type == "response.completed"

    async def test_a_storm_outlasting_the_retries_is_raised_at_the_call_without_events(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.status(429, retry_after=0.01), path="/v1/chat/completions", times=10)
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                with pytest.raises(RateLimitError):
                    await env.handle.chat("gpt-4o", USER)
                assert sub.drain() == []
                assert await env.handle.streams() == []

    async def test_a_rejected_request_is_raised_at_the_call(
        self, env: Env, server: MockServer
    ) -> None:
        with trio.fail_after(10), pytest.raises(BadRequestError):
            await env.handle.chat("gpt-4o", USER, metadata={"mock_scenario": "no-such"})


class TestRequestValidation:
    @pytest.mark.parametrize(
        ("messages", "params", "field"),
        [
            ([], {}, "messages"),
            ("hello", {}, "messages"),
            ([{"role": "wizard", "content": "x"}], {}, "messages[0].role"),
            # Found by the gateway's contract test: an unhashable role was a TypeError (500).
            ([{"role": {}, "content": "x"}], {}, "messages[0].role"),
            ([{"role": ["user"], "content": "x"}], {}, "messages[0].role"),
            ([{"role": "user"}], {}, "messages[0].content"),
            ([{"role": "tool", "content": "x"}], {}, "messages[0].tool_call_id"),
            ([{"role": "assistant"}], {}, "messages[0]"),
            ([USER[0], "hi"], {}, "messages[1]"),
            (USER, {"stream": False}, "stream"),
            (USER, {"n": 0}, "n"),
        ],
    )
    async def test_a_bad_chat_request_is_rejected_before_any_network_io(
        self, env: Env, server: MockServer, messages: Any, params: dict[str, Any], field: str
    ) -> None:
        with trio.fail_after(5), pytest.raises(InvalidSessionRequest) as caught:
            await env.handle.chat("gpt-4o", messages, **params)
        assert caught.value.field == field
        assert isinstance(caught.value, InvalidRequestError)
        assert isinstance(caught.value, ValueError)
        assert server.requests == []

    async def test_a_tool_call_history_is_a_valid_request(self, env: Env) -> None:
        history = [
            *USER,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_capital", "arguments": '{"country": "UK"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "London"},
        ]
        with trio.fail_after(10):
            ticket = await env.handle.chat("gpt-4o", history, tools=[CAPITAL])
            outcome = await env.handle.wait(ticket.stream_id)
        assert outcome.status == "completed"
        assert outcome.response is not None
        assert "London" in outcome.response["choices"][0]["message"]["content"]

    async def test_a_reasoning_model_param_that_cannot_be_dropped_is_rejected(
        self, env: Env, server: MockServer
    ) -> None:
        with (
            trio.fail_after(5),
            pytest.raises(InvalidSessionRequest, match="max_completion_tokens") as caught,
        ):
            await env.handle.chat("o3", USER, max_tokens=100, max_completion_tokens=200)
        assert caught.value.field == "max_tokens"
        assert server.requests == []

    @pytest.mark.parametrize(
        ("input", "params", "field"),
        [
            ("", {}, "input"),
            ([], {}, "input"),
            ([{"role": "robot", "content": "x"}], {}, "input[0].role"),
            ([{"role": {}, "content": "x"}], {}, "input[0].role"),
            ([{"content": "x"}], {}, "input[0]"),
            ("hi", {"background": True}, "background"),
            ("hi", {"max_tokens": 100}, "max_tokens"),
            ("hi", {"max_output_tokens": 8}, "max_output_tokens"),
            ("hi", {"previous_response_id": "resp_1", "conversation": "c"}, "conversation"),
            ("hi", {"store": False}, "store"),
        ],
    )
    async def test_a_bad_responses_request_is_rejected_before_any_network_io(
        self, env: Env, server: MockServer, input: Any, params: dict[str, Any], field: str
    ) -> None:
        with trio.fail_after(5):
            with pytest.raises(InvalidSessionRequest) as caught:
                await env.handle.respond("gpt-4o", input, **params)
            assert await env.handle.streams() == []
        assert caught.value.field == field
        assert server.requests == []


class TestModelRules:
    async def test_chat_sampling_params_are_dropped_for_a_reasoning_model(
        self, env: Env, server: MockServer
    ) -> None:
        with trio.fail_after(10):
            ticket = await env.handle.chat("o3", USER, temperature=0.2, top_p=0.5, max_tokens=50)
            outcome = await env.handle.wait(ticket.stream_id)
        body = posts(server, "/v1/chat/completions")[0].body
        assert "temperature" not in body
        assert "top_p" not in body
        assert "max_tokens" not in body
        assert body["max_completion_tokens"] == 50
        assert outcome.status == "completed"

    async def test_responses_sampling_params_are_dropped_for_a_reasoning_model(
        self, env: Env, server: MockServer
    ) -> None:
        with trio.fail_after(10):
            ticket = await env.handle.respond("o3", "Hi", durable=False, temperature=0.3)
            outcome = await env.handle.wait(ticket.stream_id)
        body = posts(server, "/v1/responses")[0].body
        assert "temperature" not in body
        assert outcome.status == "completed"

    async def test_sampling_params_are_kept_for_a_model_that_does_not_reason(
        self, env: Env, server: MockServer
    ) -> None:
        with trio.fail_after(10):
            ticket = await env.handle.chat("gpt-4.1", USER, temperature=0.2)
            await env.handle.wait(ticket.stream_id)
        assert posts(server, "/v1/chat/completions")[0].body["temperature"] == 0.2


class TestStop:
    async def test_stopping_a_chat_stream_closes_its_connection_and_publishes_cancelled(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.chat("gpt-4o", USER, metadata=SLOW)
                async for item in sub:
                    if isinstance(item, StreamEvent) and item.sequence_number >= 5:
                        break
                [outcome] = await env.handle.stop(ticket.stream_id)
                events = events_of(await collect(sub))
                await trio.sleep(0.1)
                assert sub.drain() == []
        assert events[-1].type == "response.cancelled"
        assert events[-1].terminal
        assert events[-1].data["reason"] == "stopped_by_caller"
        assert_gapless(events)
        assert outcome.status == "cancelled"
        assert outcome.last_sequence_number == events[-1].sequence_number
        assert ("POST", "/v1/chat/completions") in env.transport.closed
        assert await env.handle.streams() == []

    async def test_stopping_a_foreground_response_closes_the_connection_server_side(
        self, env: Env, server: MockServer
    ) -> None:
        very_slow = {"mock_scenario": "long:1000", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", "Hi", durable=False, metadata=very_slow)
                [outcome] = await env.handle.stop(ticket.stream_id)
                events = events_of(await collect(sub))
            stored = server.state.responses[ticket.response_id or ""]
            # With the client gone the server finishes generating at once; 1000 tokens x 20 ms
            # would take 20 s otherwise.
            with trio.fail_after(3):
                while not stored.done:
                    await trio.sleep(0.01)
        assert events[-1].type == "response.cancelled"
        assert outcome.status == "cancelled"
        assert not [r for r in server.requests if r.path.endswith("/cancel")]

    async def test_a_stream_stopped_before_its_first_event_fails_its_start_call(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.stall(5.0), path="/v1/chat/completions")
        failures: list[BaseException] = []

        async def start() -> None:
            try:
                await env.handle.chat("gpt-4o", USER)
            except StreamStopped as exc:
                failures.append(exc)

        with trio.fail_after(5):
            async with env.subscribe() as sub, trio.open_nursery() as nursery:
                nursery.start_soon(start)
                while not server.requests:
                    await trio.sleep(0.01)
                [info] = await env.handle.streams()
                [outcome] = await env.handle.stop()
                await trio.sleep(0.05)
                assert sub.drain() == []
        assert info.state == "starting"
        assert [type(e) for e in failures] == [StreamStopped]
        assert outcome.status == "cancelled"
        assert outcome.last_sequence_number is None

    async def test_stop_without_an_id_stops_every_stream(self, env: Env) -> None:
        with trio.fail_after(10):
            a = await env.handle.chat("gpt-4o", USER, metadata=SLOW)
            b = await env.handle.respond("gpt-4o", "Hi", durable=False, metadata=SLOW)
            outcomes = await env.handle.stop()
        assert [o.stream_id for o in outcomes] == [a.stream_id, b.stream_id]
        assert {o.status for o in outcomes} == {"cancelled"}
        assert await env.handle.streams() == []

    async def test_stopping_a_finished_stream_returns_its_outcome(self, env: Env) -> None:
        with trio.fail_after(10):
            ticket = await env.handle.chat("gpt-4o", USER)
            done = await env.handle.wait(ticket.stream_id)
            assert await env.handle.stop(ticket.stream_id) == [done]

    async def test_an_unknown_stream_id_is_a_lookup_error(self, env: Env) -> None:
        with trio.fail_after(5):
            with pytest.raises(UnknownStream):
                await env.handle.stop("stream-99")
            with pytest.raises(LookupError):
                await env.handle.wait("stream-99")


class TestConcurrency:
    async def test_concurrent_streams_are_each_gapless(self, env: Env) -> None:
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                a = await env.handle.chat("gpt-4o", USER, metadata={"mock_token_delay_ms": "2"})
                b = await env.handle.respond(
                    "gpt-4o", "Second", durable=False, metadata={"mock_token_delay_ms": "2"}
                )
                items = await collect(sub, until_terminal=2)
        first, second = events_of(items, a.response_id), events_of(items, b.response_id)
        assert [e.sequence_number for e in first] == list(range(len(first)))
        assert [e.sequence_number for e in second] == list(range(len(second)))
        assert deltas(second) == "You said: Second"

    async def test_the_mailbox_is_served_while_streams_run(self, env: Env) -> None:
        with trio.fail_after(10):
            a = await env.handle.chat("gpt-4o", USER, metadata=SLOW)
            infos = await env.handle.streams()
            await env.handle.stop()
        assert [(i.stream_id, i.api, i.state) for i in infos] == [
            (a.stream_id, "chat", "streaming")
        ]
        assert infos[0].response_id == a.response_id

    async def test_a_stream_past_the_bound_is_refused(self, server: MockServer) -> None:
        with trio.fail_after(10):
            async with session_env(server.url, max_streams=2) as env:
                await env.handle.chat("gpt-4o", USER, metadata=SLOW)
                await env.handle.chat("gpt-4o", USER, metadata=SLOW)
                sent = len(server.requests)
                with pytest.raises(TooManyStreams) as caught:
                    await env.handle.chat("gpt-4o", USER)
                assert caught.value.limit == 2
                assert len(server.requests) == sent
                await env.handle.stop()


class TestSlowSubscriber:
    async def test_a_slow_subscriber_never_stalls_the_stream_and_is_told_what_it_missed(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with (
                env.subscribe() as fast,
                env.subscribe(buffer=8) as slow,
            ):
                ticket = await env.handle.chat(
                    "gpt-4o", USER, metadata={"mock_scenario": "long:100"}
                )
                outcome = await env.handle.wait(ticket.stream_id)
                everything = events_of(await collect(fast))
                late = slow.drain()
        assert outcome.status == "completed"
        assert isinstance(late[0], Missed)
        assert late[0].count == len(everything) - 8
        assert late[1:] == everything[-8:]


class TestSessionShutdown:
    async def test_stopping_the_session_ends_its_foreground_streams_cleanly(self, env: Env) -> None:
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.chat("gpt-4o", USER, metadata=SLOW)
                started = trio.current_time()
                await env.sessions.terminate_child(env.handle.ref)
                took = trio.current_time() - started
                events = events_of(await collect(sub))
        assert events[-1].type == "response.cancelled"
        assert events[-1].data["reason"] == "session_stopped"
        assert events[-1].response_id == ticket.response_id
        assert_gapless(events)
        assert took < 5.0
        assert ("POST", "/v1/chat/completions") in env.transport.closed


class TestOpening:
    @pytest.mark.parametrize("session_id", ["", "a.b", "a*", "has space", "x" * 129, 7])
    def test_a_session_id_that_cannot_be_one_topic_segment_is_rejected(
        self, session_id: Any
    ) -> None:
        with pytest.raises(InvalidSessionId):
            check_session_id(session_id)

    async def test_opening_a_running_session_returns_its_worker(self, env: Env) -> None:
        with trio.fail_after(5):
            again = await open_session(env.sessions, "s1", env.deps)
            other = await open_session(env.sessions, "s2", env.deps)
            children = await env.sessions.which_children()
        assert again.ref is env.handle.ref
        assert other.ref is not env.handle.ref
        assert len(children) == 2
        assert other.topic == "session.s2"


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


class TestWorkerRestart:
    async def test_a_stream_that_ended_just_before_a_crash_gets_no_second_terminal_event(
        self,
    ) -> None:
        response = {"id": "resp_held", "object": "response", "status": "in_progress", "output": []}
        done = {**response, "status": "completed"}
        frames = [
            sse({"type": "response.created", "sequence_number": 0, "response": response}),
            sse({"type": "response.completed", "sequence_number": 1, "response": done}),
        ]

        async def handler(request: httpx.Request) -> httpx.Response:
            headers = {"content-type": "text/event-stream", "x-request-id": "req_held"}
            return httpx.Response(200, headers=headers, stream=HeldOpen(frames))

        with trio.fail_after(10):
            async with (
                session_env("http://api.test/v1", transport=httpx.MockTransport(handler)) as env,
                env.subscribe() as sub,
            ):
                ticket = await env.handle.respond("gpt-4o", "Hi", durable=False)
                events = events_of(await collect(sub))
                # The body stays open after the terminal event: the worker is still reading.
                [info] = await env.handle.streams()
                env.handle.ref.kill()
                outcome = await env.handle.wait(ticket.stream_id)
                await trio.sleep(0.05)
                assert sub.drain() == []
        assert info.stream_id == ticket.stream_id
        assert [e.type for e in events] == ["response.created", "response.completed"]
        assert outcome.status == "completed"
        assert outcome.error is None
        assert env.tracker.finished == []
