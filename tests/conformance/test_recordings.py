"""Every recorded stream, replayed byte for byte by the embedded server over loopback HTTP, is
read by streamvisor's client into the final object the recording carries.

Responses: the accumulated Response equals the `response.completed` payload of the recording.
Chat: the accumulated completion agrees with what the official SDK's own accumulator builds from
the same bytes (content, refusal, tool calls, finish reasons, usage).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from streamvisor.openai import StreamEvent
from tests._sdk import SDK_GENERATOR_LEAK

from ._views import our_chat, sdk_chat
from .conftest import (
    CHAT_RECORDINGS,
    GUARD,
    RECORDED,
    RESPONSES_RECORDINGS,
    OpenClient,
    replay,
)

RESUME = "11_responses_background_resume_starting_after_0"
CREATES = [stem for stem in RESPONSES_RECORDINGS if stem != RESUME]


def recorded_frames(stem: str) -> list[dict[str, Any]]:
    """Every JSON `data:` object of a recording, in order."""
    text = (RECORDED / f"{stem}.sse").read_text(encoding="utf-8")
    return [
        json.loads(line[len("data: ") :])
        for line in text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def completed_payload(stem: str) -> dict[str, Any]:
    (final,) = [f for f in recorded_frames(stem) if f["type"] == "response.completed"]
    response: dict[str, Any] = final["response"]
    return response


async def read_response_replay(
    open_client: OpenClient, stem: str, chunk_sizes: str | None = None
) -> tuple[list[StreamEvent], dict[str, Any] | None]:
    """Stream a Responses recording through streamvisor: the events and the accumulated result."""
    if stem == RESUME:
        response_id = completed_payload(stem)["id"]
        headers = {"x-mock-scenario": f"replay:{stem}"}
        if chunk_sizes is not None:
            headers["x-mock-chunk-sizes"] = chunk_sizes
        async with (
            open_client(default_headers=headers) as client,
            client.resume_response(response_id, starting_after=0) as stream,
        ):
            events = [event async for event in stream]
            return events, stream.accumulator.result
    body = {"model": "gpt-4o", "input": "hi", "metadata": replay(stem, chunk_sizes)}
    async with open_client() as client, client.stream_response(body) as stream:
        events = [event async for event in stream]
        return events, stream.accumulator.result


async def read_chat_replay(
    open_client: OpenClient, stem: str, chunk_sizes: str | None = None
) -> tuple[list[StreamEvent], dict[str, Any] | None]:
    """Stream a Chat recording through streamvisor: the events and the accumulated completion."""
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": replay(stem, chunk_sizes),
    }
    async with open_client() as client, client.stream_chat(body) as stream:
        events = [event async for event in stream]
        return events, stream.accumulator.result


async def sdk_final_completion(sdk: Any, stem: str) -> Any:
    """The completion the SDK's `chat.completions.stream()` accumulates from a replay."""
    import openai

    async with sdk.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], metadata=replay(stem)
    ) as stream:
        async for _ in stream:
            pass
        try:
            return await stream.get_final_completion()
        except openai.LengthFinishReasonError as exc:  # it refuses to *parse* a cut answer
            return exc.completion


class TestResponsesRecordings:
    @pytest.mark.parametrize("stem", CREATES)
    async def test_the_accumulated_response_equals_the_recorded_completed_payload(
        self, open_client: OpenClient, stem: str
    ) -> None:
        """A replayed Responses stream accumulates into exactly its `response.completed` object."""
        with trio.fail_after(GUARD):
            _, result = await read_response_replay(open_client, stem)
        assert result == completed_payload(stem)

    @pytest.mark.parametrize("stem", RESPONSES_RECORDINGS)
    async def test_every_recorded_frame_arrives_as_one_event_in_order(
        self, open_client: OpenClient, stem: str
    ) -> None:
        """One event per frame, with the frame's type and data, numbered as the server numbered
        them (old recordings without numbers are numbered gaplessly from 0)."""
        with trio.fail_after(GUARD):
            events, _ = await read_response_replay(open_client, stem)
        frames = recorded_frames(stem)
        assert [e.type for e in events] == [f["type"] for f in frames]
        assert [e.data for e in events] == frames
        numbers = [f.get("sequence_number") for f in frames]
        if None in numbers:
            first = 1 if stem == RESUME else 0
            numbers = list(range(first, first + len(frames)))
        assert [e.sequence_number for e in events] == numbers

    async def test_a_resumed_replay_accumulates_the_completed_response_without_created(
        self, open_client: OpenClient
    ) -> None:
        """Recording 11 (resume after 0) starts at `response.queued` and still ends complete."""
        with trio.fail_after(GUARD):
            events, result = await read_response_replay(open_client, RESUME)
        assert events[0].type == "response.queued"
        assert events[0].sequence_number == 1
        assert result == completed_payload(RESUME)

    async def test_the_create_and_the_resume_recordings_end_in_the_same_response(
        self, open_client: OpenClient
    ) -> None:
        """Recordings 10 and 11 are one background response: both accumulate to one result."""
        with trio.fail_after(GUARD):
            _, created = await read_response_replay(
                open_client, "10_responses_background_stream_create"
            )
            _, resumed = await read_response_replay(open_client, RESUME)
        assert created == resumed


@SDK_GENERATOR_LEAK
class TestChatRecordings:
    @pytest.mark.parametrize("stem", CHAT_RECORDINGS)
    async def test_the_accumulated_completion_agrees_with_the_official_sdk(
        self, open_client: OpenClient, sdk: Any, stem: str
    ) -> None:
        """Content, refusal, tool calls, finish reasons and usage match what the SDK's
        `chat.completions.stream()` accumulates from the same replayed bytes."""
        with trio.fail_after(GUARD):
            events, ours = await read_chat_replay(open_client, stem)
            theirs = await sdk_final_completion(sdk, stem)
        assert ours is not None
        assert events[-1].type in ("response.completed", "response.incomplete")
        assert events[-1].data["response"] == ours
        assert our_chat(ours) == sdk_chat(theirs)

    @pytest.mark.parametrize("stem", CHAT_RECORDINGS)
    async def test_the_terminal_event_names_the_finish(
        self, open_client: OpenClient, stem: str
    ) -> None:
        """`length`/`content_filter` end in `response.incomplete`, anything else `completed`."""
        with trio.fail_after(GUARD):
            events, ours = await read_chat_replay(open_client, stem)
        assert ours is not None
        cut = {c["finish_reason"] for c in ours["choices"]} & {"length", "content_filter"}
        expected = "response.incomplete" if cut else "response.completed"
        assert events[-1].type == expected
        assert [e.sequence_number for e in events] == list(range(len(events)))
