"""Properties of streams cut at any byte, over loopback against the embedded server.

* A foreground stream (either framing) cut anywhere either completes (the cut fell after its
  end) or raises `StreamInterrupted` at its last delivered event: never a silently partial
  result.
* A background stream cut anywhere (and its first resume cut too) either resumes into the
  server's exact final Response, with no gap and no duplicate, or reports an unknown outcome
  without creating a second job.
"""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.mockapi import Fault
from streamvisor.openai import OutcomeUnknownError, StreamEvent, StreamInterrupted

from .conftest import GUARD, client_opener, running_server

BODY = {
    "model": "gpt-4o",
    "input": "Resume me wherever I am cut",
    "background": True,
    "store": True,
    "stream": True,
}


async def read_piece(
    opened: Any, events: list[StreamEvent]
) -> tuple[StreamInterrupted | OutcomeUnknownError | None, Any, Any]:
    """Read one stream into `events`: (its error or None, the snapshot to resume from, the
    accumulated result)."""
    stream = None
    error: StreamInterrupted | OutcomeUnknownError | None = None
    try:
        async with opened as stream:
            async for event in stream:
                events.append(event)
    except (StreamInterrupted, OutcomeUnknownError) as exc:
        error = exc
    if stream is None:
        return error, None, None
    return error, stream.accumulator.snapshot, stream.accumulator.result


class TestForegroundCutAnywhere:
    @settings(
        max_examples=30,
        deadline=None,
    )
    @given(chat=st.booleans(), after_bytes=st.integers(0, 6000))
    async def test_a_stream_cut_anywhere_completes_or_is_interrupted_at_its_last_event(
        self, chat: bool, after_bytes: int
    ) -> None:
        """Either the terminal event and a result, or `StreamInterrupted` whose cursor is the
        last delivered event (None before any) and no result."""
        path = "/v1/chat/completions" if chat else "/v1/responses"
        with trio.fail_after(GUARD):
            async with running_server() as server:
                server.inject(Fault.drop_after(after_bytes), method="POST", path=path, times=1)
                async with client_opener(server)() as client:
                    if chat:
                        messages = [{"role": "user", "content": "cut me anywhere you like"}]
                        opened = client.stream_chat({"model": "gpt-4o", "messages": messages})
                    else:
                        opened = client.stream_response({"model": "gpt-4o", "input": "cut me"})
                    events: list[StreamEvent] = []
                    error, _, result = await read_piece(opened, events)
        assert not isinstance(error, OutcomeUnknownError)  # foreground: nothing is orphaned
        assert [e.sequence_number for e in events] == list(range(len(events)))
        if error is None:
            assert events[-1].terminal
            assert result is not None
        else:
            assert error.cursor == (events[-1].sequence_number if events else None)
            assert not any(e.terminal for e in events)
            assert result is None


class TestResumeAnywhere:
    @settings(
        max_examples=30,
        deadline=None,
    )
    @given(after_bytes=st.integers(0, 7000), resume_cut=st.none() | st.integers(0, 3000))
    async def test_a_background_stream_cut_anywhere_resumes_exactly_or_reports_unknown(
        self, after_bytes: int, resume_cut: int | None
    ) -> None:
        """Cut the create at `after_bytes` (and optionally the first resume at `resume_cut`):
        the pieces join into a gapless stream equal to the server's final Response, or (cut
        before the response is named) `OutcomeUnknownError` with exactly one job."""
        with trio.fail_after(GUARD):
            async with running_server() as server:
                server.inject(Fault.drop_after(after_bytes), method="POST", times=1)
                if resume_cut is not None:
                    server.inject(Fault.drop_after(resume_cut), method="GET", times=1)
                async with client_opener(server)() as client:
                    events: list[StreamEvent] = []
                    error, snapshot, final = await read_piece(client.stream_response(BODY), events)
                    while error is not None:
                        if isinstance(error, OutcomeUnknownError):
                            assert not events
                            assert len(server.state.responses) == 1
                            return
                        assert error.response_id is not None
                        assert error.cursor == events[-1].sequence_number
                        error, snapshot, final = await read_piece(
                            client.resume_response(
                                error.response_id, starting_after=error.cursor, snapshot=snapshot
                            ),
                            events,
                        )
                    stored = await client.retrieve_response(events[0].response_id or "")
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        assert final == stored.response
        assert len(server.state.responses) == 1
