"""The wire benchmark's load server (`bench._loadserver`) speaks the wire protocol: what it
serves is read by streamvisor's client and by the official SDK into the text it generated, over
keep-alive connections, and paced streams arrive tick by tick.

A benchmark that measured a server nobody can parse would measure nothing; these keep it honest.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import trio
from bench._loadserver import LoadServer, open_load_server, stream_text

from streamvisor.openai import ClientSettings, OpenAIClient
from tests._sdk import SDK_GENERATOR_LEAK

from .conftest import GUARD

EVENTS = 60


@pytest.fixture(scope="module")
def load_server() -> Iterator[LoadServer]:
    with open_load_server(core=None, events=EVENTS, pace_ms=20, pace_events=0) as server:
        yield server


@SDK_GENERATOR_LEAK
class TestLoadServerStreams:
    async def test_streamvisor_accumulates_the_generated_text_in_both_framings(
        self, load_server: LoadServer
    ) -> None:
        """Chat and Responses bodies accumulate to `stream_text` of their deltas."""
        with trio.fail_after(GUARD):
            async with OpenAIClient.open(ClientSettings(base_url=load_server.base_url)) as client:
                async with client.stream_chat({"model": "m", "messages": []}) as chat:
                    chat_events = [event async for event in chat]
                async with client.stream_response({"model": "m", "input": "hi"}) as responses:
                    responses_events = [event async for event in responses]
        assert chat_events[-1].type == "response.completed"
        assert chat.accumulator.output_text == stream_text(EVENTS - 3)
        assert len(responses_events) == EVENTS
        assert responses.accumulator.result is not None
        assert responses.accumulator.output_text == stream_text(EVENTS - 8)

    async def test_the_official_sdk_accumulates_the_same_text(
        self, load_server: LoadServer
    ) -> None:
        """The SDK's helpers parse the same bodies into the same text and usage."""
        import openai

        with trio.fail_after(GUARD):
            async with openai.AsyncOpenAI(
                base_url=load_server.base_url, api_key="sk-bench", max_retries=0
            ) as sdk:
                async with sdk.responses.stream(model="m", input="hi") as stream:
                    async for _ in stream:
                        pass
                    response = await stream.get_final_response()
                async with sdk.chat.completions.stream(model="m", messages=[]) as chat:
                    async for _ in chat:
                        pass
                    completion = await chat.get_final_completion()
        assert response.output_text == stream_text(EVENTS - 8)
        assert completion.choices[0].message.content == stream_text(EVENTS - 3)
        assert completion.usage is not None
        assert completion.usage.completion_tokens == EVENTS - 3

    async def test_one_connection_serves_requests_one_after_another(
        self, load_server: LoadServer
    ) -> None:
        """Keep-alive: three streams and a stats call over a single connection."""
        limits = httpx.Limits(max_connections=1)
        with trio.fail_after(GUARD):
            async with httpx.AsyncClient(base_url=load_server.url, limits=limits) as http:
                sizes = []
                for path in ("/v1/responses", "/v1/chat/completions", "/v1/responses"):
                    response = await http.post(path, json={}, headers={"x-bench-events": "10"})
                    sizes.append(response.text.count("\n\n"))
                stats = (await http.get("/_stats")).json()
        assert sizes == [10, 11, 10]  # Chat adds its `[DONE]` frame
        assert stats["requests"] >= 4
        assert stats["cpu_seconds"] > 0

    async def test_a_paced_stream_arrives_a_few_events_per_tick(
        self, load_server: LoadServer
    ) -> None:
        """`x-bench-pace-events: 3` on a 20 ms tick: 30 events take about ten ticks."""
        headers = {"x-bench-events": "30", "x-bench-pace-events": "3"}
        with trio.fail_after(GUARD):
            async with httpx.AsyncClient(base_url=load_server.url) as http:
                started = trio.current_time()
                async with http.stream("POST", "/v1/responses", headers=headers) as response:
                    body = b"".join([chunk async for chunk in response.aiter_bytes()])
                elapsed = trio.current_time() - started
        assert body.count(b"\n\n") == 30
        assert elapsed >= 9 * 0.020
        assert elapsed < 2.0

    async def test_an_unknown_path_is_a_404(self, load_server: LoadServer) -> None:
        """Only the two streaming endpoints, `/models` and `/_stats` exist."""
        with trio.fail_after(GUARD):
            async with httpx.AsyncClient(base_url=load_server.url) as http:
                response = await http.get("/v1/files")
        assert response.status_code == 404

    async def test_model_lists_open_the_connections_the_streams_then_reuse(
        self, load_server: LoadServer
    ) -> None:
        """bench/cluster's warm-up: five model lists at once open five connections in the
        client's pool; five streams at once after them open none (the server counts what it
        accepted, each `/_stats` request's own connection included)."""
        with trio.fail_after(GUARD):
            before = (await trio.to_thread.run_sync(load_server.stats))["connections"]
            async with OpenAIClient.open(ClientSettings(base_url=load_server.base_url)) as client:
                lists: list[dict[str, object]] = []

                async def list_models() -> None:
                    lists.append(await client.list_models())

                async with trio.open_nursery() as nursery:
                    for _ in range(5):
                        nursery.start_soon(list_models)
                warmed = (await trio.to_thread.run_sync(load_server.stats))["connections"]

                async def stream() -> None:
                    async with client.stream_response({"model": "m", "input": "hi"}) as events:
                        async for _ in events:
                            pass

                async with trio.open_nursery() as nursery:
                    for _ in range(5):
                        nursery.start_soon(stream)
                after = (await trio.to_thread.run_sync(load_server.stats))["connections"]
        assert lists == [{"object": "list", "data": []}] * 5
        assert warmed - before == 5 + 1
        assert after - warmed == 1
