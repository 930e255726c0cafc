"""`OpenAIClient.statistics`: events and streams by API and outcome, retries by status, the last
rate limits per model -- what the daemon's metrics read."""

from __future__ import annotations

import json
from typing import Any

import attrs
import httpx
import pytest

from streamvisor.openai import OpenAIClient, RetryPolicy

from .conftest import client_for, json_response, sse_response
from .test_stream import DONE, RESP, cframe, drained, rframe

NO_WAIT = RetryPolicy(initial_delay=0.0, random=lambda: 0.0)


def responses_body(final: str) -> bytes:
    return (
        rframe("response.created", 0, response=RESP)
        + rframe("response.output_text.delta", 1, delta="Hi", item_id="m", output_index=0)
        + rframe(final, 2, response={**DONE, "status": final.rpartition(".")[2]})
    )


CHAT_BODY = (
    cframe({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    + cframe({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    + b"data: [DONE]\n\n"
)


async def stream_once(body: bytes, api: str = "responses") -> OpenAIClient:
    """A client that ran one stream of ``body`` to its end (or its error); closed after."""

    async def handler(request: httpx.Request) -> httpx.Response:
        return sse_response(body)

    async with client_for(handler) as client:
        opener = (
            client.stream_chat({"model": "gpt-4o", "messages": []})
            if api == "chat"
            else client.stream_response({"model": "gpt-4o", "input": "x"})
        )
        async with opener as stream:
            await drained(stream)
        return client


class TestStreams:
    @pytest.mark.parametrize(
        "final", ["response.completed", "response.incomplete", "response.failed"]
    )
    async def test_a_responses_stream_ends_as_its_terminal_event_says(self, final: str) -> None:
        """Its events are counted under ``responses``, its outcome is the terminal event's."""
        stats = (await stream_once(responses_body(final))).statistics()
        assert stats.events == {"chat": 0, "responses": 3}
        assert stats.streams == {("responses", final.rpartition(".")[2]): 1}
        assert stats.open_streams == {"chat": 0, "responses": 0}

    async def test_a_chat_stream_is_counted_under_chat(self) -> None:
        """A chat stream's mapped events are counted under ``chat``; [DONE] after ``stop`` is
        ``completed``."""
        stats = (await stream_once(CHAT_BODY, "chat")).statistics()
        assert stats.events["chat"] >= 2
        assert stats.events["responses"] == 0
        assert stats.streams == {("chat", "completed"): 1}

    async def test_a_stream_cut_before_its_end_is_interrupted(self) -> None:
        """EOF before the terminal event: ``interrupted``."""
        body = responses_body("response.completed")
        cut = body[: body.rindex(b"event: response.completed")]
        stats = (await stream_once(cut)).statistics()
        assert stats.streams == {("responses", "interrupted"): 1}
        assert stats.events["responses"] == 2

    async def test_an_undecodable_frame_is_malformed(self) -> None:
        """A frame that is not JSON: ``malformed``."""
        body = rframe("response.created", 0, response=RESP) + b"data: {not json\n\n"
        stats = (await stream_once(body)).statistics()
        assert stats.streams == {("responses", "malformed"): 1}

    async def test_an_error_frame_is_error(self) -> None:
        """The server's ``error`` frame: ``error``."""
        body = rframe("response.created", 0, response=RESP) + rframe(
            "error", 1, code="server_error", message="boom"
        )
        stats = (await stream_once(body)).statistics()
        assert stats.streams == {("responses", "error"): 1}

    async def test_a_stream_closed_early_is_stopped_and_open_until_closed(self) -> None:
        """Left after its first event: counted open while it is, then ``stopped``, with the one
        event it delivered."""

        async def handler(request: httpx.Request) -> httpx.Response:
            return sse_response(responses_body("response.completed"))

        async with client_for(handler) as client:
            async with client.stream_response({"model": "gpt-4o", "input": "x"}) as stream:
                await stream.__anext__()
                live = client.statistics()
            done = client.statistics()
        assert live.open_streams["responses"] == 1
        assert live.events["responses"] == 1
        assert live.streams == {}
        assert done.open_streams["responses"] == 0
        assert done.events["responses"] == 1
        assert done.streams == {("responses", "stopped"): 1}


class TestRetries:
    async def test_each_retry_is_counted_by_the_status_it_retried(self) -> None:
        """A 429, a 503 and a connection failure, then success: one retry of each."""
        answers: list[Any] = [429, 503, httpx.ConnectError("refused"), 200]

        async def handler(request: httpx.Request) -> httpx.Response:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            if answer != 200:
                return json_response(answer, {"error": {"message": "again", "type": "x"}})
            return json_response(200, {"object": "list", "data": []})

        async with client_for(handler, retry=attrs.evolve(NO_WAIT, max_retries=3)) as client:
            await client.list_models()
            stats = client.statistics()
        assert stats.retries == {"429": 1, "503": 1, "connection": 1}

    async def test_an_answer_not_retried_is_not_counted(self) -> None:
        """A 400 is not retried: no retry counted."""

        async def handler(request: httpx.Request) -> httpx.Response:
            return json_response(400, {"error": {"message": "no", "type": "invalid_request"}})

        async with client_for(handler, retry=NO_WAIT) as client:
            with pytest.raises(Exception, match="no"):
                await client.list_models()
            assert client.statistics().retries == {}


class TestRateLimits:
    async def test_the_last_headers_are_kept_per_model(self) -> None:
        """Each create's ``x-ratelimit-*`` headers are kept for the model of its body, and a
        poll's for the model its answer names; an answer without them changes nothing."""
        remaining = iter(range(100, 0, -1))

        async def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "GET":
                body = {**DONE, "model": "o3"}
                return json_response(200, body, **_limits(next(remaining)))
            model = json.loads(request.content)["model"]
            if model == "silent":
                return json_response(200, {"id": "chatcmpl-1", "choices": []})
            return json_response(
                200, {"id": "chatcmpl-1", "choices": []}, **_limits(next(remaining))
            )

        async with client_for(handler) as client:
            for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o", "silent"):
                await client.create_chat_completion({"model": model, "messages": []})
            await client.retrieve_response("resp_1")
            limits = client.statistics().rate_limits
        assert set(limits) == {"gpt-4o", "gpt-4o-mini", "o3"}
        assert limits["gpt-4o-mini"].remaining_requests == 99
        assert limits["gpt-4o"].remaining_requests == 98
        assert limits["o3"].remaining_requests == 97
        assert limits["gpt-4o"].limit_tokens == 1000
        assert limits["gpt-4o"].reset_requests == 1.5


def _limits(remaining: int) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": str(remaining),
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-requests": "1.5s",
    }
