"""Property: wherever a background stream is cut, the client either resumes it into the server's
exact final Response (no gap, no duplicate) or reports an unknown outcome without creating a
second job. Never a hang, never a silently partial result.
"""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
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


class TestResumeAnywhere:
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
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
                    opened = client.stream_response(BODY)
                    while True:
                        try:
                            async with opened as stream:
                                async for event in stream:
                                    events.append(event)
                            break
                        except OutcomeUnknownError:
                            assert not events
                            assert len(server.state.responses) == 1
                            return
                        except StreamInterrupted as exc:
                            assert exc.response_id is not None
                            assert exc.cursor == events[-1].sequence_number
                            opened = client.resume_response(
                                exc.response_id,
                                starting_after=exc.cursor,
                                snapshot=stream.accumulator.snapshot,
                            )
                    final = stream.accumulator.result
                    stored = await client.retrieve_response(events[0].response_id or "")
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        assert final == stored.response
        assert len(server.state.responses) == 1
