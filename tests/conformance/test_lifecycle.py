"""Streams as resources: concurrent streams on one client, leaving early, cancellation.

Real loopback HTTP against the embedded server, paced (`mock_token_delay_ms`) so that streams
really overlap and really are cut short.
"""

from __future__ import annotations

from typing import Any

import trio

from streamvisor.mockapi import MockServer
from streamvisor.openai import StreamEvent

from .conftest import GUARD, OpenClient

#: 40 tokens at 25 ms: about a second per stream.
SLOW = {"mock_scenario": "long:40", "mock_token_delay_ms": "25"}


def chat_body(text: str, **metadata: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "metadata": metadata,
    }


class TestConcurrentStreams:
    async def test_many_streams_on_one_client_run_at_once_and_each_gets_its_own_answer(
        self, open_client: OpenClient
    ) -> None:
        """20 chat streams of ~0.2 s each, started together on one client, finish together
        (in far less than 20 x 0.2 s), each with the echo of its own request."""
        results: dict[int, str] = {}
        paced = {"mock_token_delay_ms": "20"}

        async def one(client: Any, i: int) -> None:
            async with client.stream_chat(chat_body(f"request number {i}", **paced)) as stream:
                async for _ in stream:
                    pass
                results[i] = stream.accumulator.result["choices"][0]["message"]["content"]

        with trio.fail_after(GUARD):
            async with open_client() as client:
                started = trio.current_time()
                async with trio.open_nursery() as nursery:
                    for i in range(20):
                        nursery.start_soon(one, client, i)
                elapsed = trio.current_time() - started
        assert sorted(results) == list(range(20))
        assert all(f"request number {i}" in text for i, text in results.items())
        assert elapsed < 2.0


class TestLeavingEarly:
    async def test_leaving_a_stream_early_closes_it_at_once_and_the_client_stays_usable(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Breaking out after 3 events of a ~1 s stream returns at once; the next stream on the
        same client works."""
        with trio.fail_after(GUARD):
            async with open_client() as client:
                started = trio.current_time()
                seen: list[StreamEvent] = []
                async with client.stream_chat(chat_body("first", **SLOW)) as stream:
                    async for event in stream:
                        seen.append(event)
                        if len(seen) == 3:
                            break
                left_after = trio.current_time() - started
                async with client.stream_chat(chat_body("second")) as stream:
                    events = [event async for event in stream]
        assert len(seen) == 3
        assert left_after < 0.6
        assert events[-1].type == "response.completed"
        assert "second" in events[-1].data["response"]["choices"][0]["message"]["content"]

    async def test_a_cancelled_stream_stops_promptly_and_the_client_stays_usable(
        self, open_client: OpenClient
    ) -> None:
        """A cancel scope around a slow stream ends it within the scope's deadline."""
        with trio.fail_after(GUARD):
            async with open_client() as client:
                seen: list[StreamEvent] = []
                started = trio.current_time()
                with trio.move_on_after(0.2) as scope:
                    async with client.stream_response(
                        {"model": "gpt-4o", "input": "hi", "metadata": SLOW}
                    ) as stream:
                        async for event in stream:
                            seen.append(event)
                stopped_after = trio.current_time() - started
                response = await client.create_response({"model": "gpt-4o", "input": "again"})
        assert scope.cancelled_caught
        assert seen
        assert not any(e.terminal for e in seen)
        assert stopped_after < 0.8
        assert response["status"] == "completed"
