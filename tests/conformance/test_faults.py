"""Each fault the embedded server can inject, and what streamvisor's client does about it.

Real loopback HTTP, real clock, small timeouts; every test is bounded by `trio.fail_after`.
What the server saw (`server.requests`, `server.state`) is the evidence for retries and for the
absence of duplicate background jobs.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from streamvisor.mockapi import Fault, MockServer
from streamvisor.openai import (
    APITimeoutError,
    BadRequestError,
    InsufficientQuotaError,
    InternalServerError,
    MalformedStreamError,
    OutcomeUnknownError,
    RateLimitError,
    RetryPolicy,
    StreamError,
    StreamEvent,
    StreamInterrupted,
)

from .conftest import (
    GUARD,
    NO_BACKOFF,
    Attempts,
    OpenClient,
    RecordingTransport,
    client_opener,
    posts,
    running_server,
)

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
MESSAGES = [{"role": "user", "content": "Tell me something about streams and sockets"}]
#: A background response that stays queued for 0.6 s.
QUEUED = {"mock_queue_ms": "600"}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, **extra}


def responses_body(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "input": MESSAGES[0]["content"], **extra}


def background_body(**extra: Any) -> dict[str, Any]:
    return responses_body(background=True, store=True, **extra)


async def read_all(opened: Any) -> tuple[list[StreamEvent], Any]:
    """Iterate a stream to its end: (events, the stream). Errors propagate."""
    events: list[StreamEvent] = []
    async with opened as stream:
        async for event in stream:
            events.append(event)
    return events, stream


async def read_until_error(opened: Any) -> tuple[list[StreamEvent], Any, BaseException]:
    """Iterate a stream that must fail: (events delivered before, the stream, the error)."""
    events: list[StreamEvent] = []
    stream = None
    try:
        async with opened as stream:
            async for event in stream:
                events.append(event)
    except Exception as exc:
        return events, stream, exc
    pytest.fail("the stream ended without an error")


class TestRetriesBeforeTheStream:
    @pytest.mark.parametrize(
        ("status", "api", "path"),
        [(429, "chat", CHAT), (429, "responses", RESPONSES), (502, "chat", CHAT)],
    )
    async def test_a_retryable_status_with_retry_after_is_retried_after_the_hinted_delay(
        self, server: MockServer, open_client: OpenClient, status: int, api: str, path: str
    ) -> None:
        """Two 429s (or 502s) with `retry-after: 0.2`: three attempts, each at least 0.2 s after
        the last (the client's own backoff is zero here, so the wait is the server's hint), and
        the third succeeds."""
        server.inject(Fault.status(status, retry_after=0.2), method="POST", path=path, times=2)
        attempts = Attempts()
        with trio.fail_after(GUARD):
            async with open_client(transport=RecordingTransport(attempts)) as client:
                opened = (
                    client.stream_chat(chat_body())
                    if api == "chat"
                    else client.stream_response(responses_body())
                )
                events, _ = await read_all(opened)
        assert events[-1].type == "response.completed"
        assert posts(server, path) == 3
        assert len(attempts.gaps()) == 2
        assert all(gap >= 0.2 for gap in attempts.gaps())

    async def test_a_503_with_retry_after_ms_is_retried_after_the_hinted_delay(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """`retry-after-ms: 250` on a 503 is honoured (it wins over `retry-after`)."""
        server.inject(
            Fault.status(503, retry_after=5, retry_after_ms=250), method="POST", path=CHAT, times=1
        )
        attempts = Attempts()
        with trio.fail_after(GUARD):
            async with open_client(transport=RecordingTransport(attempts)) as client:
                events, _ = await read_all(client.stream_chat(chat_body()))
        assert events[-1].type == "response.completed"
        assert posts(server, CHAT) == 2
        (gap,) = attempts.gaps()
        assert 0.25 <= gap < 2.0

    async def test_a_500_with_x_should_retry_false_is_not_retried(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """`x-should-retry: false` overrides the status: one attempt, `InternalServerError`."""
        server.inject(Fault.status(500, should_retry=False), method="POST", path=CHAT, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(InternalServerError) as info:
                    await read_all(client.stream_chat(chat_body()))
        assert info.value.status_code == 500
        assert posts(server, CHAT) == 1

    async def test_a_429_with_x_should_retry_false_is_not_retried(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """A rate limit the server says not to retry is raised at once."""
        server.inject(
            Fault.status(429, retry_after=0.01, should_retry=False),
            method="POST",
            path=RESPONSES,
            times=1,
        )
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(RateLimitError):
                    await read_all(client.stream_response(responses_body()))
        assert posts(server, RESPONSES) == 1

    async def test_insufficient_quota_raises_at_once_without_a_retry(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """429 `insufficient_quota` is permanent: `InsufficientQuotaError`, one attempt."""
        server.inject(Fault.insufficient_quota(), method="POST", path=CHAT, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(InsufficientQuotaError) as info:
                    await read_all(client.stream_chat(chat_body()))
        assert info.value.code == "insufficient_quota"
        assert isinstance(info.value, RateLimitError)
        assert posts(server, CHAT) == 1

    async def test_retries_stop_after_the_policy_allows(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """A 429 on every attempt: 1 + max_retries attempts, then `RateLimitError`."""
        server.inject(Fault.status(429, retry_after=0.01), method="POST", path=CHAT, times=None)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(RateLimitError):
                    await read_all(client.stream_chat(chat_body()))
        assert posts(server, CHAT) == 1 + NO_BACKOFF.max_retries

    async def test_a_retry_after_beyond_the_cap_is_not_waited_for(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """A hint above `max_retry_after` is raised with the error (`.retry_after`), not slept."""
        server.inject(Fault.status(429, retry_after=30), method="POST", path=CHAT, times=1)
        policy = RetryPolicy(max_retries=2, max_retry_after=1.0, random=lambda: 0.0)
        with trio.fail_after(GUARD):
            async with open_client(retry=policy) as client:
                with pytest.raises(RateLimitError) as info:
                    await read_all(client.stream_chat(chat_body()))
        assert info.value.retry_after == 30
        assert posts(server, CHAT) == 1


class TestForegroundDrops:
    @pytest.mark.parametrize("after_bytes", [400, 900, 1700])
    async def test_a_dropped_chat_stream_raises_interrupted_at_the_last_delivered_event(
        self, server: MockServer, open_client: OpenClient, after_bytes: int
    ) -> None:
        """A chat stream cut mid-body ends in `StreamInterrupted` whose cursor is the last
        event delivered, and no result is made up from the partial stream."""
        server.inject(Fault.drop_after(after_bytes), method="POST", path=CHAT, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                events, stream, error = await read_until_error(client.stream_chat(chat_body()))
        assert isinstance(error, StreamInterrupted)
        assert events, "some events arrived before the drop"
        assert error.cursor == events[-1].sequence_number
        assert not any(e.terminal for e in events)
        assert stream.accumulator.result is None
        assert posts(server, CHAT) == 1  # a stream is never retried once it started

    @pytest.mark.parametrize("after_bytes", [1000, 2000, 4000])
    async def test_a_dropped_responses_stream_raises_interrupted_at_the_last_delivered_event(
        self, server: MockServer, open_client: OpenClient, after_bytes: int
    ) -> None:
        """A foreground Responses stream cut mid-body: `StreamInterrupted` with the server's
        last delivered sequence number and the response id; no result."""
        server.inject(Fault.drop_after(after_bytes), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                events, stream, error = await read_until_error(
                    client.stream_response(responses_body())
                )
        assert isinstance(error, StreamInterrupted)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert error.cursor == events[-1].sequence_number
        assert error.response_id == events[0].data["response"]["id"]
        assert stream.accumulator.result is None
        assert posts(server, RESPONSES) == 1


class TestBackgroundResume:
    @pytest.mark.parametrize("after_bytes", [900, 1800, 3000, 4500, 6000])
    async def test_a_dropped_background_stream_resumes_from_its_cursor_without_gap_or_duplicate(
        self, server: MockServer, open_client: OpenClient, after_bytes: int
    ) -> None:
        """Cut a background stream anywhere after its first event, resume with
        `starting_after=cursor`: the two parts join gaplessly into the server's final Response."""
        server.inject(Fault.drop_after(after_bytes), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                first, stream, error = await read_until_error(
                    client.stream_response(background_body(stream=True))
                )
                assert isinstance(error, StreamInterrupted)
                assert error.response_id is not None
                assert error.cursor == first[-1].sequence_number
                async with client.resume_response(
                    error.response_id,
                    starting_after=error.cursor,
                    snapshot=stream.accumulator.snapshot,
                ) as resumed:
                    rest = [event async for event in resumed]
                    result = resumed.accumulator.result
                stored = await client.retrieve_response(error.response_id)
        numbers = [e.sequence_number for e in first + rest]
        assert numbers == list(range(len(numbers)))
        assert rest[-1].type == "response.completed"
        assert result == stored.response
        (resume,) = [r for r in server.requests if r.query.get("stream") == "true"]
        assert resume.query["starting_after"] == str(error.cursor)
        assert posts(server, RESPONSES) == 1
        assert len(server.state.responses) == 1

    async def test_a_resume_that_drops_too_is_resumed_again_from_its_own_cursor(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Two drops (the create, then the first resume): three pieces, one gapless stream."""
        server.inject(Fault.drop_after(1800), method="POST", path=RESPONSES, times=1)
        server.inject(Fault.drop_after(1200), method="GET", path="/v1/responses/*", times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                pieces = []
                events, stream, error = await read_until_error(
                    client.stream_response(background_body(stream=True))
                )
                pieces.append(events)
                assert isinstance(error, StreamInterrupted)
                rid, snapshot = error.response_id, stream.accumulator.snapshot
                assert rid is not None
                events, stream, error = await read_until_error(
                    client.resume_response(rid, starting_after=error.cursor, snapshot=snapshot)
                )
                pieces.append(events)
                assert isinstance(error, StreamInterrupted)
                assert error.cursor == events[-1].sequence_number
                events, stream = await read_all(
                    client.resume_response(
                        rid, starting_after=error.cursor, snapshot=stream.accumulator.snapshot
                    )
                )
                pieces.append(events)
                stored = await client.retrieve_response(rid)
        assert all(pieces)
        numbers = [e.sequence_number for piece in pieces for e in piece]
        assert numbers == list(range(len(numbers)))
        assert stream.accumulator.result == stored.response
        assert stored.status == "completed"

    async def test_a_resume_cut_before_its_first_event_keeps_the_cursor_it_started_from(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Nothing new arrived, so the cursor to resume from is still `starting_after`."""
        server.inject(Fault.drop_after(10), method="GET", path="/v1/responses/*", times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                created = await client.create_response(background_body())
                events, _, error = await read_until_error(
                    client.resume_response(created["id"], starting_after=1, snapshot=created)
                )
        assert events == []
        assert isinstance(error, StreamInterrupted)
        assert error.cursor == 1
        assert error.response_id == created["id"]

    async def test_resuming_a_finished_stream_from_its_terminal_cursor_ends_cleanly(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """A worker that crashed right after delivering the terminal event resumes from it:
        nothing new arrives, the stream ends normally, the result is the final Response."""
        with trio.fail_after(GUARD):
            async with open_client() as client:
                events, stream = await read_all(
                    client.stream_response(background_body(stream=True))
                )
                final = stream.accumulator.result
                assert events[-1].terminal
                rest, resumed = await read_all(
                    client.resume_response(
                        events[-1].response_id or "",
                        starting_after=events[-1].sequence_number,
                        snapshot=final,
                    )
                )
        assert rest == []
        assert resumed.accumulator.result == final

    async def test_a_background_stream_lost_before_its_first_event_is_an_unknown_outcome(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Cut before `response.created` arrived, the client cannot know the response id:
        `OutcomeUnknownError`, and it does not create a second job by retrying."""
        server.inject(Fault.drop_after(100), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                _, _, error = await read_until_error(
                    client.stream_response(background_body(stream=True))
                )
        assert isinstance(error, OutcomeUnknownError)
        assert posts(server, RESPONSES) == 1
        assert len(server.state.responses) == 1


class TestKeepalives:
    async def test_keepalives_keep_a_queued_background_stream_within_its_read_timeout(
        self, open_client: OpenClient
    ) -> None:
        """A response queued for longer than the read timeout, with keepalive frames more often
        than it: the stream survives, the keepalives take sequence numbers, nothing is lost."""
        with trio.fail_after(GUARD):
            async with running_server(keepalive_interval=0.05) as server:
                opener = client_opener(server)
                async with opener(read_timeout=0.25) as client:
                    events, stream = await read_all(
                        client.stream_response(background_body(stream=True, metadata=QUEUED))
                    )
                    stored = await client.retrieve_response(stream.response_id)
        types = [e.type for e in events]
        assert types.count("keepalive") >= 3
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert types[-1] == "response.completed"
        assert stream.accumulator.result == stored.response

    async def test_a_drop_during_keepalives_resumes_after_the_last_keepalive(
        self, open_client: OpenClient
    ) -> None:
        """Keepalives are events like any other: a resume after one does not repeat it."""
        with trio.fail_after(GUARD):
            async with running_server(keepalive_interval=0.05) as server:
                server.inject(Fault.drop_after(2200), method="POST", path=RESPONSES, times=1)
                opener = client_opener(server)
                async with opener(read_timeout=0.25) as client:
                    first, stream, error = await read_until_error(
                        client.stream_response(background_body(stream=True, metadata=QUEUED))
                    )
                    assert isinstance(error, StreamInterrupted)
                    assert error.response_id is not None
                    rest, resumed = await read_all(
                        client.resume_response(
                            error.response_id,
                            starting_after=error.cursor,
                            snapshot=stream.accumulator.snapshot,
                        )
                    )
        assert first[-1].type == "keepalive"
        numbers = [e.sequence_number for e in first + rest]
        assert numbers == list(range(len(numbers)))
        assert resumed.accumulator.result["status"] == "completed"


class TestOutcomeUnknown:
    async def test_a_background_create_whose_answer_is_cut_is_not_repeated(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """The request reached the server (the job exists) and the answer was cut:
        `OutcomeUnknownError`, one POST, one job."""
        server.inject(Fault.drop_after(20), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(OutcomeUnknownError):
                    await client.create_response(background_body())
        assert posts(server, RESPONSES) == 1
        assert len(server.state.responses) == 1

    async def test_a_background_create_whose_answer_stalls_past_the_read_timeout_is_not_repeated(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """The answer's headers arrived, its body stalls beyond the read timeout:
        `OutcomeUnknownError` within about the timeout, one POST, one job."""
        server.inject(Fault.stall(3.0, after_bytes=0), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client(read_timeout=0.3) as client:
                started = trio.current_time()
                with pytest.raises(OutcomeUnknownError):
                    await client.create_response(background_body())
                assert trio.current_time() - started < 2.0
        assert posts(server, RESPONSES) == 1
        assert len(server.state.responses) == 1

    async def test_a_background_create_answered_500_is_not_repeated(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """A 5xx may hide a created job: `OutcomeUnknownError` instead of a retry."""
        server.inject(Fault.status(500), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(OutcomeUnknownError):
                    await client.create_response(background_body())
        assert posts(server, RESPONSES) == 1

    async def test_a_foreground_create_answered_500_is_retried(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """The same 500 on a foreground create is an ordinary retry (no job can be orphaned)."""
        server.inject(Fault.status(500), method="POST", path=RESPONSES, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                response = await client.create_response(responses_body())
        assert response["status"] == "completed"
        assert posts(server, RESPONSES) == 2


class TestBrokenFrames:
    @pytest.mark.parametrize(("api", "path"), [("chat", CHAT), ("responses", RESPONSES)])
    async def test_a_malformed_frame_raises_a_typed_error_after_the_good_events(
        self, server: MockServer, open_client: OpenClient, api: str, path: str
    ) -> None:
        """A frame whose data is not JSON: `MalformedStreamError` (a `StreamInterrupted`)
        carrying the cursor of the last good event; the good events were delivered."""
        server.inject(Fault.malformed(after_events=3), method="POST", path=path, times=1)
        with trio.fail_after(GUARD):
            async with open_client() as client:
                opened = (
                    client.stream_chat(chat_body())
                    if api == "chat"
                    else client.stream_response(responses_body())
                )
                events, _, error = await read_until_error(opened)
        assert isinstance(error, MalformedStreamError)
        assert isinstance(error, StreamInterrupted)
        assert len(events) == 3
        assert error.cursor == events[-1].sequence_number

    @pytest.mark.parametrize(
        ("api", "path", "nested"),
        [("chat", CHAT, False), ("responses", RESPONSES, False), ("responses", RESPONSES, True)],
        ids=["chat", "responses-flat", "responses-nested"],
    )
    async def test_a_mid_stream_error_event_is_delivered_then_raised(
        self, server: MockServer, open_client: OpenClient, api: str, path: str, nested: bool
    ) -> None:
        """An `error` frame after 3 events: the subscriber sees an `error` event (terminal), then
        iteration raises `StreamError` carrying that event and the server's code."""
        server.inject(
            Fault.error_event(after_events=3, nested=nested), method="POST", path=path, times=1
        )
        with trio.fail_after(GUARD):
            async with open_client() as client:
                opened = (
                    client.stream_chat(chat_body())
                    if api == "chat"
                    else client.stream_response(responses_body())
                )
                events, _, error = await read_until_error(opened)
        assert isinstance(error, StreamError)
        assert events[-1].type == "error"
        assert events[-1].terminal
        assert error.event == events[-1]
        # Chat frames name the error's type, flat Responses frames only its code.
        assert "server_error" in (error.code, error.type)
        assert "server had an error" in str(error)
        assert len(events) == 4


class TestStalls:
    @pytest.mark.parametrize(
        ("api", "path", "after_bytes"), [("chat", CHAT, 700), ("responses", RESPONSES, 1500)]
    )
    async def test_a_stream_that_stalls_past_the_read_timeout_is_interrupted_not_hung(
        self, server: MockServer, open_client: OpenClient, api: str, path: str, after_bytes: int
    ) -> None:
        """Silence longer than the read timeout mid-stream (after the first events) ends the
        stream with `StreamInterrupted` caused by the timeout, at the last delivered event."""
        server.inject(Fault.stall(5.0, after_bytes=after_bytes), method="POST", path=path, times=1)
        with trio.fail_after(GUARD):
            async with open_client(read_timeout=0.3) as client:
                opened = (
                    client.stream_chat(chat_body())
                    if api == "chat"
                    else client.stream_response(responses_body())
                )
                started = trio.current_time()
                events, _, error = await read_until_error(opened)
                elapsed = trio.current_time() - started
        assert isinstance(error, StreamInterrupted)
        assert isinstance(error.__cause__, httpx.TimeoutException)
        assert events
        assert error.cursor == events[-1].sequence_number
        assert elapsed < 2.0

    async def test_a_stall_before_the_headers_is_a_timeout_that_is_retried(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """No answer within the read timeout: the attempt times out and the retry succeeds."""
        server.inject(Fault.stall(5.0), method="POST", path=CHAT, times=1)
        with trio.fail_after(GUARD):
            async with open_client(read_timeout=0.3) as client:
                events, _ = await read_all(client.stream_chat(chat_body()))
        assert events[-1].type == "response.completed"
        assert posts(server, CHAT) == 2

    async def test_stalls_on_every_attempt_end_in_a_timeout_error(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Every attempt stalls: `APITimeoutError` (also a `TimeoutError`) after the retries."""
        server.inject(Fault.stall(5.0), method="POST", path=CHAT, times=None)
        with trio.fail_after(GUARD):
            async with open_client(read_timeout=0.2) as client:
                with pytest.raises(APITimeoutError) as info:
                    await read_all(client.stream_chat(chat_body()))
        assert isinstance(info.value, TimeoutError)
        assert posts(server, CHAT) == 1 + NO_BACKOFF.max_retries


class TestUnsupportedParameters:
    async def test_a_reasoning_model_rejecting_a_parameter_gets_one_retry_without_it(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """With the local model rules off, `temperature` reaches a reasoning model, which
        answers 400 `unsupported_parameter`; the client retries once without it."""
        body = {**chat_body(model="o3-mini"), "temperature": 0.2}
        with trio.fail_after(GUARD):
            async with open_client(model_rules=False) as client:
                events, _ = await read_all(client.stream_chat(body))
        assert events[-1].type == "response.completed"
        sent = [r.body for r in server.requests if r.method == "POST" and r.path == CHAT]
        assert len(sent) == 2
        assert sent[0]["temperature"] == 0.2
        assert "temperature" not in sent[1]
        assert {k: v for k, v in sent[0].items() if k != "temperature"} == sent[1]

    async def test_a_second_rejection_is_raised_not_retried_again(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """Only one retry per rejected parameter: a second 400 is `BadRequestError`."""
        server.inject(
            Fault.unsupported_parameter("top_p"), method="POST", path=RESPONSES, times=None
        )
        with trio.fail_after(GUARD):
            async with open_client() as client:
                with pytest.raises(BadRequestError) as info:
                    await read_all(client.stream_response(responses_body(top_p=0.5)))
        assert info.value.code == "unsupported_parameter"
        assert posts(server, RESPONSES) == 2

    async def test_the_model_rules_drop_known_rejections_before_sending(
        self, server: MockServer, open_client: OpenClient
    ) -> None:
        """With the model rules on (the default), the 400 never happens: one request, without
        the sampling parameter."""
        body = {**chat_body(model="o3-mini"), "temperature": 0.2}
        with trio.fail_after(GUARD):
            async with open_client() as client:
                events, _ = await read_all(client.stream_chat(body))
        assert events[-1].type == "response.completed"
        sent = [r.body for r in server.requests if r.method == "POST" and r.path == CHAT]
        assert len(sent) == 1
        assert "temperature" not in sent[0]
