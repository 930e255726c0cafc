"""Every recorded stream parses, split anywhere, into the final object the server sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamvisor.openai import EventStream, StreamEvent
from tests._recorded import RECORDED

from .conftest import client_for, frames, sse_response

CHAT = sorted(p.name for p in RECORDED.glob("*_chat_*.sse"))
RESPONSES = sorted(p.name for p in RECORDED.glob("*_responses_*.sse"))


async def collect(
    recording: bytes, name: str, cuts: list[int]
) -> tuple[list[StreamEvent], EventStream]:
    async def handler(request: httpx.Request) -> httpx.Response:
        return sse_response(recording, cuts)

    events: list[StreamEvent] = []
    async with client_for(handler) as client:
        if "_chat_" in name:
            cm = client.stream_chat({"model": "gpt-4o", "messages": []})
        elif "resume" in name:
            cm = client.resume_response("resp_x", starting_after=0)
        else:
            cm = client.stream_response({"model": "gpt-4o", "input": "hi"})
        async with cm as stream:
            events.extend([event async for event in stream])
    return events, stream


def expected_chat(recording: bytes) -> dict[str, Any]:
    """The chat completion assembled independently, the simple way."""
    content: dict[int, str] = {}
    refusal: dict[int, str] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    finish: dict[int, str] = {}
    usage = None
    for chunk in frames(recording):
        for choice in chunk["choices"]:
            i, delta = choice["index"], choice["delta"]
            content[i] = content.get(i, "") + (delta.get("content") or "")
            refusal[i] = refusal.get(i, "") + (delta.get("refusal") or "")
            for frag in delta.get("tool_calls") or []:
                call = calls.setdefault(i, {}).setdefault(
                    frag["index"], {"id": None, "name": None, "arguments": ""}
                )
                call["id"] = call["id"] or frag.get("id")
                call["name"] = call["name"] or frag.get("function", {}).get("name")
                call["arguments"] += frag.get("function", {}).get("arguments") or ""
            if choice.get("finish_reason"):
                finish[i] = choice["finish_reason"]
        usage = chunk.get("usage") or usage
    return {
        "content": content,
        "refusal": refusal,
        "calls": calls,
        "finish": finish,
        "usage": usage,
    }


def test_the_recordings_are_all_there(recorded_dir: Path) -> None:
    """The parametrised tests below are not silently empty."""
    assert recorded_dir == RECORDED
    assert (len(CHAT), len(RESPONSES)) == (6, 7)


class TestEveryRecordingParses:
    @pytest.mark.parametrize("name", RESPONSES)
    async def test_responses_final_equals_the_recorded_terminal_payload(
        self, recorded_dir: Path, name: str
    ) -> None:
        """The accumulated final Response is the recording's `response.completed` payload."""
        recording = (recorded_dir / name).read_bytes()
        events, stream = await collect(recording, name, [])
        recorded = frames(recording)
        assert [e.data for e in events] == recorded
        assert events[-1].type == "response.completed"
        assert stream.accumulator.result == recorded[-1]["response"]
        assert stream.accumulator.done

    @pytest.mark.parametrize("name", CHAT)
    async def test_chat_assembles_content_tool_calls_finish_reason_and_usage(
        self, recorded_dir: Path, name: str
    ) -> None:
        """Content, refusal, tool calls by index with full arguments, finish_reason and usage."""
        recording = (recorded_dir / name).read_bytes()
        events, stream = await collect(recording, name, [])
        want = expected_chat(recording)
        final = stream.accumulator.result
        assert final is not None
        assert events[-1].data["response"] == final
        assert final["usage"] == want["usage"]
        for choice in final["choices"]:
            i, message = choice["index"], choice["message"]
            assert choice["finish_reason"] == want["finish"][i]
            assert (message["content"] or "") == want["content"][i]
            assert (message["refusal"] or "") == want["refusal"][i]
            got_calls = message.get("tool_calls", [])
            want_calls = [want["calls"][i][k] for k in sorted(want["calls"].get(i, {}))]
            assert [
                {
                    "id": c["id"],
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                }
                for c in got_calls
            ] == want_calls
            for call in got_calls:
                json.loads(call["function"]["arguments"])

    @pytest.mark.parametrize("name", RESPONSES + CHAT)
    async def test_sequence_numbers_are_gapless_and_end_at_the_cursor(
        self, recorded_dir: Path, name: str
    ) -> None:
        """Delivered sequence numbers rise by one; the stream's cursor is the last of them."""
        events, stream = await collect((recorded_dir / name).read_bytes(), name, [])
        seqs = [e.sequence_number for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert stream.cursor == seqs[-1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(RESPONSES + CHAT))
def test_any_split_of_any_recording_gives_the_same_events(data: st.DataObject, name: str) -> None:
    """Bodies cut at random byte offsets (even inside UTF-8 sequences) decode identically."""
    recording = (RECORDED / name).read_bytes()
    cuts = data.draw(st.lists(st.integers(1, len(recording) - 1), max_size=40))
    whole, _ = trio.run(collect, recording, name, [])
    split, stream = trio.run(collect, recording, name, cuts)
    assert [(e.type, e.sequence_number, e.data) for e in split] == [
        (e.type, e.sequence_number, e.data) for e in whole
    ]
    assert stream.accumulator.done
