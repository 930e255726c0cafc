"""StreamingSession timing logic on a mock clock: the resume backoff of a durable stream and its
bound, with `httpx.MockTransport` behind a real `OpenAIClient` (no sockets)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from streamvisor.actors.sessions._handle import SessionHandle, session_factory
from streamvisor.actors.sessions._session import _PUBLISH_BUDGET
from streamvisor.actors.sessions._values import SessionState, StreamOutcome, _Record
from streamvisor.openai import RetryPolicy
from streamvisor.supervisor import CallTimeout

from ._session_support import (
    Env,
    FakeTracker,
    HeldOpen,
    assert_gapless,
    collect,
    deltas,
    events_of,
    session_env,
)

RID = "resp_logic"
WORDS = ["one ", "two ", "three ", "four ", "five"]


def sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def script() -> list[dict[str, Any]]:
    """A whole background stream: lifecycle, one message with five deltas, completion."""
    base = {"id": RID, "object": "response", "background": True, "output": []}
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": []}
    text = "".join(WORDS)
    done_item = {
        **item,
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**base, "status": "queued"}},
        {"type": "response.queued", "response": {**base, "status": "queued"}},
        {"type": "response.in_progress", "response": {**base, "status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
        },
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": word,
        }
        for word in WORDS
    ]
    events.append(
        {
            "type": "response.completed",
            "response": {**base, "status": "completed", "output": [done_item]},
        }
    )
    return [{**e, "sequence_number": i} for i, e in enumerate(events)]


class FlakyServer:
    """Serves the create cut after ``cut`` events, then fails ``failures`` resumes with a 500."""

    def __init__(self, *, cut: int, failures: int) -> None:
        self.events = script()
        self.cut = cut
        self.failures = failures
        self.resumes: list[tuple[float, int]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "x-request-id": "req_logic"}
        if request.method == "POST":
            body = b"".join(sse(e) for e in self.events[: self.cut])
            return httpx.Response(200, headers=headers, content=body)
        after = int(request.url.params["starting_after"])
        self.resumes.append((trio.current_time(), after))
        if self.failures:
            self.failures -= 1
            return httpx.Response(
                500,
                headers={"content-type": "application/json", "x-request-id": "req_500"},
                content=b'{"error": {"message": "boom", "type": "server_error"}}',
            )
        body = b"".join(sse(e) for e in self.events if e["sequence_number"] > after)
        return httpx.Response(200, headers=headers, content=body)


NO_CLIENT_RETRIES = {"retry": RetryPolicy(max_retries=0)}
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def on_mock(handler: Handler, **deps: Any) -> AbstractAsyncContextManager[Env]:
    """A session on ``handler`` through `httpx.MockTransport`, with no client-level retries."""
    return session_env(
        "http://api.test/v1",
        transport=httpx.MockTransport(handler),
        settings=NO_CLIENT_RETRIES,
        **deps,
    )


@pytest.fixture
def flaky() -> FlakyServer:
    return FlakyServer(cut=7, failures=2)


@pytest.fixture
async def env(flaky: FlakyServer) -> AsyncIterator[Env]:
    async with on_mock(
        flaky, resume_backoff=1.0, resume_backoff_max=3.0, resume_attempts=4
    ) as running:
        yield running


class TestResumeBackoff:
    async def test_the_first_resume_is_immediate_then_the_delay_doubles(
        self, env: Env, flaky: FlakyServer, autojump_clock: trio.testing.MockClock
    ) -> None:
        with trio.fail_after(60):
            async with env.subscribe() as sub:
                start = trio.current_time()
                ticket = await env.handle.respond("gpt-4o", "Hi")
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
        offsets = [t - start for t, _ in flaky.resumes]
        assert offsets == pytest.approx([0.0, 1.0, 3.0], abs=0.05)
        assert {after for _, after in flaky.resumes} == {6}
        assert [e.sequence_number for e in events] == list(range(len(flaky.events)))
        assert deltas(events) == "".join(WORDS)
        assert outcome.status == "completed"

    async def test_the_delay_is_capped(
        self, flaky: FlakyServer, autojump_clock: trio.testing.MockClock
    ) -> None:
        flaky.failures = 4
        with trio.fail_after(60):
            async with (
                on_mock(
                    flaky, resume_backoff=1.0, resume_backoff_max=2.0, resume_attempts=10
                ) as env,
                env.subscribe() as sub,
            ):
                await env.handle.respond("gpt-4o", "Hi")
                events = events_of(await collect(sub))
        gaps = [b[0] - a[0] for a, b in zip(flaky.resumes, flaky.resumes[1:], strict=False)]
        assert gaps == pytest.approx([1.0, 2.0, 2.0, 2.0], abs=0.05)
        assert events[-1].type == "response.completed"

    async def test_progress_resets_the_attempt_count(
        self, flaky: FlakyServer, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A resume that delivered events before dropping again starts the count afresh."""
        flaky.failures = 0
        served = flaky.__call__
        cuts = iter([8, 9])

        async def dropping(request: httpx.Request) -> httpx.Response:
            response = await served(request)
            if request.method == "GET" and (cut := next(cuts, None)) is not None:
                after = int(request.url.params["starting_after"])
                body = b"".join(sse(e) for e in flaky.events if after < e["sequence_number"] < cut)
                return httpx.Response(200, headers=response.headers, content=body)
            return response

        with trio.fail_after(60):
            async with (
                on_mock(dropping, resume_backoff=1.0, resume_attempts=1) as env,
                env.subscribe() as sub,
            ):
                start = trio.current_time()
                await env.handle.respond("gpt-4o", "Hi")
                events = events_of(await collect(sub))
        assert [t - start for t, _ in flaky.resumes] == pytest.approx([0.0, 0.0, 0.0], abs=0.05)
        assert [after for _, after in flaky.resumes] == [6, 7, 8]
        assert_gapless(events)
        assert events[-1].type == "response.completed"


class TestHandOver:
    async def test_after_the_last_attempt_the_stream_is_handed_over_to_polling(
        self, flaky: FlakyServer, autojump_clock: trio.testing.MockClock
    ) -> None:
        flaky.failures = 100
        with trio.fail_after(60):
            async with (
                on_mock(
                    flaky, resume_backoff=1.0, resume_backoff_max=8.0, resume_attempts=3
                ) as env,
                env.subscribe() as sub,
            ):
                start = trio.current_time()
                ticket = await env.handle.respond("gpt-4o", "Hi")
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
        assert [t - start for t, _ in flaky.resumes] == pytest.approx([0.0, 1.0, 3.0], abs=0.05)
        assert events[-1].type == "error"
        assert events[-1].sequence_number == 7
        assert env.tracker.finished == [(RID, "in_progress", None)]
        assert outcome.status == "in_progress"


class TestWait:
    async def test_wait_with_a_timeout_raises_a_timeout_error_and_leaves_the_stream(
        self, flaky: FlakyServer, autojump_clock: trio.testing.MockClock
    ) -> None:
        flaky.failures = 100
        with trio.fail_after(60):
            async with on_mock(
                flaky, resume_backoff=10.0, resume_backoff_max=10.0, resume_attempts=3
            ) as env:
                ticket = await env.handle.respond("gpt-4o", "Hi")
                with pytest.raises(CallTimeout) as caught:
                    await env.handle.wait(ticket.stream_id, timeout=2.0)
                assert isinstance(caught.value, TimeoutError)
                [info] = await env.handle.streams()
                assert info.state == "resuming"
                assert info.cursor == 6
                outcome = await env.handle.wait(ticket.stream_id)
        assert outcome.status == "in_progress"


class TestRecovery:
    """A restarted worker takes over what its predecessor left in `SessionState`."""

    async def _start_on(self, env: Env, state: SessionState) -> SessionHandle:
        ref = await env.sessions.start_child(
            session_factory("s9", env.deps, state), name="session.s9"
        )
        assert ref is env.registry.whereis("session.s9")
        return SessionHandle(env.registry.ref("session.s9", restart_wait=1.0), "s9")

    async def test_a_stream_whose_terminal_event_was_published_gets_no_second_one(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        async def no_network(request: httpx.Request) -> httpx.Response:
            raise AssertionError(f"unexpected request {request.method} {request.url}")

        state = SessionState("s9")
        state.streams["stream-1"] = _Record(
            "stream-1",
            "responses",
            "gpt-4o",
            {},
            durable=True,
            response_id=RID,
            cursor=5,
            ended="error",
            tracked=True,
        )
        state.streams["stream-2"] = _Record(
            "stream-2",
            "chat",
            "gpt-4o",
            {},
            durable=False,
            response_id="chatcmpl-1",
            cursor=3,
            ended="response.cancelled",
        )
        with trio.fail_after(10):
            async with (
                session_env("http://api.test/v1", transport=httpx.MockTransport(no_network)) as env,
                env.bus.subscribe("session.s9") as sub,
            ):
                handle = await self._start_on(env, state)
                durable = await handle.wait("stream-1")
                foreground = await handle.wait("stream-2")
                assert sub.drain() == []
        assert env.tracker.finished == [(RID, "in_progress", None)]
        assert (durable.status, durable.last_sequence_number) == ("in_progress", 6)
        assert (foreground.status, foreground.last_sequence_number) == ("cancelled", 4)
        assert state.streams == {}
        assert state.starts == 1


class HangingTracker(FakeTracker):
    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None:
        await trio.sleep_forever()


class TestShutdownBound:
    async def test_a_hanging_tracker_cannot_hold_the_shutdown_past_the_stop_timeout(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        events = script()[:7]

        async def held(request: httpx.Request) -> httpx.Response:
            headers = {"content-type": "text/event-stream", "x-request-id": "req_held"}
            return httpx.Response(200, headers=headers, stream=HeldOpen([sse(e) for e in events]))

        tracker = HangingTracker()
        with trio.fail_after(60):
            async with session_env(
                "http://api.test/v1",
                transport=httpx.MockTransport(held),
                tracker=tracker,
                stop_timeout=4.0,
                cleanup_timeout=30.0,
            ) as env:
                await env.handle.respond("gpt-4o", "Hi")
                worker = env.handle.ref
                start = trio.current_time()
                await env.sessions.terminate_child(worker)
                took = trio.current_time() - start
        assert took == pytest.approx(1.0, abs=0.05)  # one shielded step of stop_timeout / 4
        assert worker.reason is not None
        assert worker.reason.kind == "shutdown"


class TestPublishing:
    """A network read that brings many events is published in slices the subscribers keep up
    with, in order and whole."""

    @pytest.mark.parametrize("durable", [False, True])
    async def test_a_read_of_many_events_reaches_the_subscriber_a_budget_at_a_time(
        self, durable: bool
    ) -> None:
        words = [f"w{i} " for i in range(150)]
        events = script()
        text = "".join(words)
        head, tail = events[:5], events[-1]
        tail["response"]["output"][0]["content"][0]["text"] = text
        events = head + [
            {**events[5], "delta": word, "sequence_number": 5 + i} for i, word in enumerate(words)
        ]
        events.append({**tail, "sequence_number": len(events)})

        async def whole(request: httpx.Request) -> httpx.Response:
            # The whole body is one chunk: one read brings every event.
            headers = {"content-type": "text/event-stream", "x-request-id": "req_whole"}
            return httpx.Response(200, headers=headers, content=b"".join(sse(e) for e in events))

        with trio.fail_after(10):
            async with on_mock(whole) as env, env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", "Hi", durable=durable)
                got = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
        assert [e.sequence_number for e in got] == list(range(len(events)))
        assert deltas(got) == text
        assert outcome.status == "completed"
        # Published all at once, the whole read would wait in the subscriber's buffer; a budget
        # at a time, a few slices do (the subscriber starts only once `respond` has returned).
        assert sub.statistics().buffer_peak <= 4 * _PUBLISH_BUDGET < len(events)


class TestRemember:
    """`SessionState.remember`: 256 outcomes, the newest ``results_kept`` with a response."""

    @staticmethod
    def outcome(n: int) -> StreamOutcome:
        return StreamOutcome(f"stream-{n}", f"resp_{n}", "completed", {"n": n}, None, n)

    def test_only_the_newest_keep_their_response(self) -> None:
        state = SessionState("s1")
        for n in range(1, 6):
            state.remember(self.outcome(n), results_kept=2)
        kept = {sid: o.response for sid, o in state.outcomes.items()}
        assert kept == {
            "stream-1": None,
            "stream-2": None,
            "stream-3": None,
            "stream-4": {"n": 4},
            "stream-5": {"n": 5},
        }
        assert [o.status for o in state.outcomes.values()] == ["completed"] * 5
        assert [o.last_sequence_number for o in state.outcomes.values()] == [1, 2, 3, 4, 5]

    def test_the_outcome_count_is_still_bounded(self) -> None:
        state = SessionState("s1")
        for n in range(300):
            state.remember(self.outcome(n))
        assert len(state.outcomes) == 256
        assert next(iter(state.outcomes)) == "stream-44"

    def test_a_stream_remembered_again_counts_as_the_newest(self) -> None:
        state = SessionState("s1")
        for n in (1, 2, 1):
            state.remember(self.outcome(n), results_kept=1)
        assert list(state.outcomes) == ["stream-2", "stream-1"]
        assert state.outcomes["stream-1"].response == {"n": 1}
        assert state.outcomes["stream-2"].response is None
