"""Recorded bodies that end early but *cleanly* (the HTTP body completes, no connection error):
the client must notice from the SSE itself that the stream is unfinished.

Each recording is cut at several offsets (inside a line, right after a frame, between the two
newlines that end a frame, just before Chat's `data: [DONE]`) and replayed by the embedded
server from a temporary recordings directory. The client delivers exactly the events of the
complete frames, then raises `StreamInterrupted` at the last of them, never a made-up result.
(The official SDK, for contrast, hands back the partial completion of such a Chat stream,
`finish_reason` None, without complaint: openai 3.54, checked by hand.)
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import trio

from streamvisor.mockapi import MockAPIConfig, serve
from streamvisor.openai import StreamEvent, StreamInterrupted

from .conftest import ALL_RECORDINGS, GUARD, RECORDED, client_opener


def cut_points(body: bytes, seed: int) -> list[int]:
    """Offsets worth cutting at: after the first frame, between the final two newlines of a
    frame, before Chat's `[DONE]`, one byte short of the end, and a few random ones."""
    rng = random.Random(seed)
    first_end = body.index(b"\n\n") + 2
    points = {first_end, first_end - 1, len(body) - 1, rng.randrange(1, len(body))}
    points.update(rng.randrange(first_end, len(body)) for _ in range(3))
    done = body.rfind(b"data: [DONE]")
    if done > 0:
        points.update({done, done + 5})
    return sorted(points)


def seen(events: list[StreamEvent]) -> list[tuple[str, int, Any]]:
    return [(e.type, e.sequence_number, e.data) for e in events]


def complete_frames(prefix: bytes) -> int:
    """How many frames of `prefix` are complete (followed by their blank line)."""
    return prefix.count(b"\n\n")


async def read(client: Any, chat: bool, stem: str) -> tuple[list[StreamEvent], Exception | None]:
    """Replay `stem` through a Chat or a Responses stream: (events, the interruption or None)."""
    body: dict[str, Any] = {"metadata": {"mock_scenario": f"replay:{stem}"}}
    if chat:
        opened = client.stream_chat({"model": "gpt-4o", "messages": [], **body})
    else:
        opened = client.stream_response({"model": "gpt-4o", "input": "hi", **body})
    events: list[StreamEvent] = []
    try:
        async with opened as stream:
            async for event in stream:
                events.append(event)
    except StreamInterrupted as exc:
        return events, exc
    return events, None


class TestCleanlyTruncatedBodies:
    @pytest.mark.parametrize("stem", [s for s in ALL_RECORDINGS if "resume" not in s])
    async def test_a_body_that_ends_mid_stream_is_interrupted_at_its_last_complete_frame(
        self, tmp_path: Path, stem: str
    ) -> None:
        """For every cut: the events of the complete frames (a prefix of the whole stream's),
        then `StreamInterrupted` whose cursor is the last delivered event."""
        whole = (RECORDED / f"{stem}.sse").read_bytes()
        cuts = cut_points(whole, seed=len(stem))
        for offset in cuts:
            (tmp_path / f"cut{offset}.sse").write_bytes(whole[:offset])
        (tmp_path / "whole.sse").write_bytes(whole)
        with trio.fail_after(GUARD):
            config = MockAPIConfig(recordings_dir=tmp_path, graceful_timeout=0.2)
            async with serve(config) as server, client_opener(server)() as client:
                chat = "_chat_" in stem
                reference, error = await read(client, chat, "whole")
                assert error is None
                for offset in cuts:
                    events, error = await read(client, chat, f"cut{offset}")
                    where = f"{stem} cut at {offset}"
                    assert isinstance(error, StreamInterrupted), where
                    assert seen(events) == seen(reference[: len(events)]), where
                    assert not any(e.terminal for e in events), where
                    expected_cursor = events[-1].sequence_number if events else None
                    assert error.cursor == expected_cursor, where
                    if "_responses_" in stem:
                        assert len(events) == complete_frames(whole[:offset]), where
