"""Shapes seen in the wild but not in the recordings (reference §3.2, §3.4, §7), built from a
real recording and served by the embedded server's replay mode over loopback HTTP.

* an `error` event followed by `response.failed` (the final status arrives after the error);
* `response.rate_limits.updated` after `response.completed` (chatlas #282);
* `keepalive` frames, which take sequence numbers, while the response is parked;
* SSE comments, `id:`/`retry:` fields and CRLF line ends, as proxies produce them;
* a gap in the sequence numbers (events lost upstream), and an event repeated by a proxy;
* Azure-style Chat chunks with empty `choices` and `prompt_filter_results` before the answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import SequenceError, StreamError, StreamEvent
from tests._sdk import SDK_GENERATOR_LEAK

from ._views import our_chat, sdk_chat
from .conftest import GUARD, OpenClient, client_opener
from .test_recordings import recorded_frames

BACKGROUND = "10_responses_background_stream_create"
CHAT_TEXT = "02_chat_text_usage"


def responses_sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def chat_sse(chunks: list[dict[str, Any]]) -> bytes:
    frames = [f"data: {json.dumps(c)}\n\n".encode() for c in chunks]
    return b"".join(frames) + b"data: [DONE]\n\n"


def renumbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


def failing_after_error() -> list[dict[str, Any]]:
    """Recording 10 up to the first text delta, then `error`, then `response.failed`."""
    frames = recorded_frames(BACKGROUND)
    cut = next(i for i, f in enumerate(frames) if f["type"] == "response.output_text.delta")
    head = frames[: cut + 1]
    failed = {**head[0]["response"], "status": "failed"}
    failed["error"] = {"code": "server_error", "message": "The model crashed."}
    return renumbered(
        [
            *head,
            {
                "type": "error",
                "code": "server_error",
                "message": "The model crashed.",
                "param": None,
            },
            {"type": "response.failed", "response": failed},
        ]
    )


def rate_limits_after_completed() -> list[dict[str, Any]]:
    update = {
        "type": "response.rate_limits.updated",
        "rate_limits": [{"name": "requests", "limit": 500, "remaining": 499, "reset_seconds": 1}],
    }
    return renumbered([*recorded_frames(BACKGROUND), update])


def with_keepalives() -> list[dict[str, Any]]:
    frames = recorded_frames(BACKGROUND)
    keepalive = {"type": "keepalive"}
    return renumbered([*frames[:2], keepalive, keepalive, keepalive, *frames[2:]])


def with_a_gap() -> list[dict[str, Any]]:
    """Recording 10 with its ninth event missing (numbers as recorded: 7 then 9)."""
    frames = recorded_frames(BACKGROUND)
    return [*frames[:8], *frames[9:]]


def with_a_repeat() -> list[dict[str, Any]]:
    """Recording 10 with its ninth event sent twice."""
    frames = recorded_frames(BACKGROUND)
    return [*frames[:9], frames[8], *frames[9:]]


def through_a_proxy() -> bytes:
    """Recording 10 with comments, `id:`/`retry:` fields and CRLF line ends."""
    out = [b": connected\r\n\r\nretry: 3000\r\n\r\n"]
    for i, frame in enumerate(recorded_frames(BACKGROUND)):
        out.append(b": ping\r\n")
        out.append(
            f"id: {i}\r\nevent: {frame['type']}\r\ndata: {json.dumps(frame)}\r\n\r\n".encode()
        )
    return b"".join(out)


def azure_chat() -> list[dict[str, Any]]:
    """Recording 02 with a content-filter chunk (empty `choices`) in front."""
    chunks = recorded_frames(CHAT_TEXT)
    filters = {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "choices": [],
        "prompt_filter_results": [
            {"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False}}}
        ],
    }
    return [filters, *chunks]


@pytest.fixture
async def wild_server(tmp_path: Path) -> AsyncIterator[MockServer]:
    recordings = {
        "error_then_failed.sse": responses_sse(failing_after_error()),
        "rate_limits_after_completed.sse": responses_sse(rate_limits_after_completed()),
        "keepalives.sse": responses_sse(with_keepalives()),
        "proxy.sse": through_a_proxy(),
        "gap.sse": responses_sse(with_a_gap()),
        "repeat.sse": responses_sse(with_a_repeat()),
        "azure_chat.sse": chat_sse(azure_chat()),
    }
    for name, body in recordings.items():
        (tmp_path / name).write_bytes(body)
    config = MockAPIConfig(recordings_dir=tmp_path, graceful_timeout=0.2)
    async with serve(config) as server:
        yield server


@pytest.fixture
def open_wild(wild_server: MockServer) -> OpenClient:
    return client_opener(wild_server)


async def replay_responses(
    open_client: OpenClient, stem: str
) -> tuple[list[StreamEvent], Any, Exception | None]:
    """Replay `stem` as a Responses stream: (events, the accumulator, its error or None)."""
    body = {"model": "gpt-4o", "input": "hi", "metadata": {"mock_scenario": f"replay:{stem}"}}
    events: list[StreamEvent] = []
    error: Exception | None = None
    async with open_client() as client:
        try:
            async with client.stream_response(body) as stream:
                async for event in stream:
                    events.append(event)
        except (StreamError, SequenceError) as exc:
            error = exc
    return events, stream.accumulator, error


class TestResponsesInTheWild:
    async def test_an_error_followed_by_response_failed_delivers_both_then_raises(
        self, open_wild: OpenClient
    ) -> None:
        """Both events reach the subscriber; then `StreamError`; the accumulated result is the
        failed Response that came after the error."""
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(open_wild, "error_then_failed")
        assert [e.type for e in events[-2:]] == ["error", "response.failed"]
        assert isinstance(error, StreamError)
        assert error.code == "server_error"
        assert accumulator.result["status"] == "failed"
        assert accumulator.result["error"]["message"] == "The model crashed."

    async def test_rate_limits_after_completed_are_passed_on_and_do_not_change_the_result(
        self, open_wild: OpenClient
    ) -> None:
        """The late event is delivered; the stream ends normally; the result stays the
        completed Response."""
        frames = rate_limits_after_completed()
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(
                open_wild, "rate_limits_after_completed"
            )
        assert error is None
        assert [e.type for e in events[-2:]] == [
            "response.completed",
            "response.rate_limits.updated",
        ]
        assert accumulator.result == frames[-2]["response"]
        assert accumulator.cursor == frames[-1]["sequence_number"]

    async def test_keepalives_are_delivered_and_take_their_sequence_numbers(
        self, open_wild: OpenClient
    ) -> None:
        """Three keepalives mid-stream: gapless numbers, unchanged final Response."""
        frames = with_keepalives()
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(open_wild, "keepalives")
        assert error is None
        assert [e.type for e in events].count("keepalive") == 3
        assert [e.sequence_number for e in events] == list(range(len(frames)))
        assert accumulator.result == frames[-1]["response"]

    async def test_comments_ids_retry_fields_and_crlf_do_not_change_the_events(
        self, open_wild: OpenClient
    ) -> None:
        """A proxy's SSE decorations are framing only: the same events as the recording."""
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(open_wild, "proxy")
        assert error is None
        assert [e.data for e in events] == recorded_frames(BACKGROUND)
        assert accumulator.result == recorded_frames(BACKGROUND)[-1]["response"]

    async def test_a_gap_in_the_sequence_numbers_raises_sequence_error_at_the_gap(
        self, open_wild: OpenClient
    ) -> None:
        """Lost events are never papered over: the events before the gap, then `SequenceError`
        (a `ValueError`) naming the number expected and the one received."""
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(open_wild, "gap")
        assert isinstance(error, SequenceError)
        assert isinstance(error, ValueError)
        assert (error.expected, error.got) == (8, 9)
        assert [e.sequence_number for e in events] == list(range(8))
        assert accumulator.result is None

    async def test_an_event_sent_twice_is_delivered_once(self, open_wild: OpenClient) -> None:
        """A repeated sequence number is dropped: one delivery, the recording's final result."""
        with trio.fail_after(GUARD):
            events, accumulator, error = await replay_responses(open_wild, "repeat")
        assert error is None
        assert [e.data for e in events] == recorded_frames(BACKGROUND)
        assert accumulator.result == recorded_frames(BACKGROUND)[-1]["response"]


@SDK_GENERATOR_LEAK
class TestChatInTheWild:
    async def test_an_azure_content_filter_chunk_before_the_answer_is_harmless(
        self, wild_server: MockServer, open_wild: OpenClient
    ) -> None:
        """A first chunk with empty `choices`: the answer assembles as the SDK assembles it."""
        import openai

        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"mock_scenario": "replay:azure_chat"},
        }
        with trio.fail_after(GUARD):
            async with open_wild() as client, client.stream_chat(body) as stream:
                events = [event async for event in stream]
                ours = stream.accumulator.result
            async with (
                openai.AsyncOpenAI(
                    base_url=wild_server.url, api_key="sk-test", max_retries=0
                ) as sdk,
                sdk.chat.completions.stream(**body) as sdk_stream,
            ):
                async for _ in sdk_stream:
                    pass
                theirs = await sdk_stream.get_final_completion()
        assert events[-1].type == "response.completed"
        assert ours is not None
        assert our_chat(ours)["choices"] == sdk_chat(theirs)["choices"]
        assert our_chat(ours)["usage"] == sdk_chat(theirs)["usage"]
