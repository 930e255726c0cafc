"""Durable session streams (Responses in background mode), end to end over loopback: tracking,
resume after drops at random byte offsets, resume after the worker crashed or was killed (under a
real DynamicSupervisor), stop with a server-side cancel, hand-over to polling."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
import trio

from streamvisor.actors.sessions import InvalidSessionRequest, TrackingFailed
from streamvisor.actors.sessions._session import StreamingSession
from streamvisor.actors.sessions._values import SessionState
from streamvisor.mockapi import Fault, MockServer
from streamvisor.openai import (
    InternalServerError,
    OutcomeUnknownError,
    StreamError,
    StreamEvent,
)

from ._session_support import (
    API_KEY,
    Env,
    FakeTracker,
    assert_gapless,
    collect,
    deltas,
    events_of,
    session_env,
    streamed,
)

TEXT = "Tell me everything"
LONG = {"mock_scenario": "long:120"}


def requests_to(server: MockServer, method: str, suffix: str = "") -> list[Any]:
    return [
        r
        for r in server.requests
        if r.method == method and r.path.startswith("/v1/responses") and r.path.endswith(suffix)
    ]


async def raw_create(server: MockServer, **body: Any) -> bytes:
    """The bytes of one durable create, read whole with a plain HTTP client."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as http:
        response = await http.post(
            "/responses", json={"background": True, "stream": True, "store": True, **body}
        )
    return response.content


def worker(env: Env) -> StreamingSession:
    actor = env.handle.ref._actor
    assert isinstance(actor, StreamingSession)
    return actor


class TestTicketAfterCommit:
    async def test_no_ticket_and_no_event_before_the_response_is_committed(
        self, server: MockServer
    ) -> None:
        """While the registry's commit is held back, ``respond`` waits and subscribers see
        nothing; once it commits, the ticket names a response the tracker already holds."""
        tracker = FakeTracker(commit=trio.Event())
        tickets: list[Any] = []
        with trio.fail_after(10):
            async with (
                session_env(server.url, tracker=tracker) as env,
                env.subscribe() as sub,
                trio.open_nursery() as nursery,
            ):

                async def start() -> None:
                    tickets.append(await env.handle.respond("gpt-4o", TEXT))
                    assert tickets[0].response_id in tracker.tracked  # committed first

                nursery.start_soon(start)
                while tracker.track_calls == 0:
                    await trio.sleep(0.01)
                await trio.sleep(0.2)  # the stream goes on server-side; nothing may come out
                assert (tickets, sub.drain(), tracker.tracked) == ([], [], {})
                assert tracker.commit is not None
                tracker.commit.set()
                events = events_of(await collect(sub))
        [ticket] = tickets
        assert events[0].type == "response.created"
        assert events[0].response_id == ticket.response_id
        assert_gapless(events)

    async def test_a_response_the_registry_cannot_record_is_cancelled_and_never_ticketed(
        self, server: MockServer
    ) -> None:
        """``respond`` raises TrackingFailed instead of handing out a ticket that a restart
        would not honour; the response is cancelled server-side; nothing was published."""
        tracker = FakeTracker(refuse=RuntimeError("disk full"))
        with trio.fail_after(10):
            async with (
                session_env(server.url, tracker=tracker) as env,
                env.subscribe() as sub,
            ):
                paced = {**LONG, "mock_token_delay_ms": "20"}
                with pytest.raises(TrackingFailed) as info:
                    await env.handle.respond("gpt-4o", TEXT, metadata=paced)
                await trio.sleep(0.05)
                assert sub.drain() == []
        rid = info.value.response_id
        assert isinstance(info.value.__cause__, RuntimeError)
        assert [r.path for r in requests_to(server, "POST", "/cancel")] == [
            f"/v1/responses/{rid}/cancel"
        ]
        assert server.state.responses[rid].status == "cancelled"
        assert [(f, s) for f, s, _ in tracker.finished] == [(rid, "cancelled")]


class TestDurableStream:
    async def test_it_is_created_in_background_mode_and_tracked_to_the_end(
        self, env: Env, server: MockServer
    ) -> None:
        ticket, events, outcome = await streamed(
            env, lambda: env.handle.respond("gpt-4o", TEXT, metadata=LONG)
        )
        body = requests_to(server, "POST")[0].body
        assert (body["background"], body["stream"], body["store"]) == (True, True, True)
        rid = ticket.response_id
        assert ticket.durable is True
        assert rid is not None
        assert env.tracker.tracked[rid]["owner"] == "s1"
        assert env.tracker.tracked[rid]["model"] == "gpt-4o"
        assert env.tracker.tracked[rid]["request"]["background"] is True
        assert env.tracker.cursors[-1] == (rid, events[-1].sequence_number)
        assert [c for _, c in env.tracker.cursors] == sorted(c for _, c in env.tracker.cursors)
        [(finished_id, status, response)] = env.tracker.finished
        assert (finished_id, status) == (rid, "completed")
        assert response is not None
        assert response["status"] == "completed"
        assert outcome.status == "completed"
        assert events[0].type == "response.created"
        assert [e.sequence_number for e in events] == list(range(len(events)))

    async def test_durable_is_the_configured_default_for_responses(
        self, server: MockServer
    ) -> None:
        with trio.fail_after(10):
            async with session_env(server.url, durable=False) as env:
                ticket = await env.handle.respond("gpt-4o", TEXT)
                await env.handle.wait(ticket.stream_id)
        assert ticket.durable is False
        assert "background" not in requests_to(server, "POST")[0].body

    async def test_a_429_storm_before_the_headers_is_retried(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.status(429, retry_after=0.01), method="POST", times=2)
        with trio.fail_after(10):
            ticket = await env.handle.respond("gpt-4o", TEXT)
            outcome = await env.handle.wait(ticket.stream_id)
        assert len(requests_to(server, "POST")) == 3
        assert outcome.status == "completed"

    async def test_an_error_frame_ends_it_once_and_hands_the_response_to_polling(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.error_event(after_events=6), method="POST", path="/v1/responses")
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", TEXT, metadata=LONG)
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
                await trio.sleep(0.05)
                assert sub.drain() == []
        assert_gapless(events)
        assert [e.type for e in events].count("error") == 1
        assert "origin" not in events[-1].data
        assert env.tracker.finished == [(ticket.response_id, "in_progress", None)]
        assert outcome.status == "error"

    async def test_an_error_frame_before_any_response_fails_the_call(
        self, env: Env, server: MockServer
    ) -> None:
        server.inject(Fault.error_event(after_events=0), method="POST", path="/v1/responses")
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                with pytest.raises(StreamError):
                    await env.handle.respond("gpt-4o", TEXT)
                events = events_of(sub.drain())
        assert [e.type for e in events] == ["error"]
        assert env.tracker.tracked == {}
        assert env.tracker.finished == []

    async def test_a_create_dropped_before_its_first_event_is_raised_at_the_call(
        self, env: Env, server: MockServer
    ) -> None:
        # Without its first event the response id is unknown, so there is nothing to resume.
        server.inject(Fault.drop_after(20), method="POST", path="/v1/responses")
        with trio.fail_after(10), pytest.raises(OutcomeUnknownError):
            await env.handle.respond("gpt-4o", TEXT)
        assert env.tracker.tracked == {}
        assert await env.handle.streams() == []


class TestResumeAfterDrops:
    async def test_drops_at_random_byte_offsets_lose_and_repeat_nothing(
        self, env: Env, server: MockServer
    ) -> None:
        sample = await raw_create(server, model="gpt-4o", input=TEXT, metadata=LONG)
        first_frame = sample.index(b"\n\n") + 2
        rng = random.Random(20261124)
        expected: str | None = None
        with trio.fail_after(25):
            for round_ in range(20):
                create_drop = rng.randrange(first_frame + 1, len(sample) - 1)
                server.inject(Fault.drop_after(create_drop), method="POST", path="/v1/responses")
                if round_ % 2:
                    server.inject(
                        Fault.drop_after(rng.randrange(1, 2000)),
                        method="GET",
                        path="/v1/responses/*",
                    )
                async with env.subscribe() as sub:
                    ticket = await env.handle.respond("gpt-4o", TEXT, metadata=LONG)
                    events = events_of(await collect(sub))
                    outcome = await env.handle.wait(ticket.stream_id)
                text = deltas(events)
                expected = expected or text
                assert [e.sequence_number for e in events] == list(range(len(events))), (
                    round_,
                    create_drop,
                )
                assert text == expected, (round_, create_drop)
                assert events[-1].type == "response.completed"
                assert outcome.status == "completed"
                assert outcome.response is not None
                assert outcome.response["output"][0]["content"][0]["text"] == expected
                server.clear_faults()
        resumes = requests_to(server, "GET")
        assert len(resumes) >= 20
        assert all(r.query.get("starting_after") for r in resumes)
        assert expected is not None
        assert len(expected.split()) >= 120

    async def test_resuming_asks_for_the_events_after_the_last_published_one(
        self, env: Env, server: MockServer
    ) -> None:
        sample = await raw_create(server, model="gpt-4o", input=TEXT, metadata=LONG)
        server.inject(Fault.drop_after(len(sample) // 2), method="POST", path="/v1/responses")
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", TEXT, metadata=LONG)
                events = events_of(await collect(sub))
        [resume] = requests_to(server, "GET")
        after = int(resume.query["starting_after"])
        assert resume.path == f"/v1/responses/{ticket.response_id}"
        assert resume.query["stream"] == "true"
        assert 0 < after < events[-1].sequence_number
        assert_gapless(events)

    async def test_when_resuming_keeps_failing_the_stream_is_handed_over_to_polling(
        self, server: MockServer
    ) -> None:
        server.inject(Fault.drop_after(2500), method="POST", path="/v1/responses")
        server.inject(Fault.status(500), method="GET", path="/v1/responses/*", times=None)
        with trio.fail_after(10):
            async with (
                session_env(server.url, resume_attempts=2) as env,
                env.subscribe() as sub,
            ):
                ticket = await env.handle.respond("gpt-4o", TEXT, metadata=LONG)
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
        assert_gapless(events)
        last = events[-1]
        assert last.type == "error"
        assert last.data["handed_over_to_polling"] is True
        assert last.data["error_type"] == "InternalServerError"
        assert last.data["status"] == 500
        assert env.tracker.finished == [(ticket.response_id, "in_progress", None)]
        # The cursor handed to the poller is the server's, not the session's own error event.
        assert env.tracker.cursors[-1] == (ticket.response_id, last.sequence_number - 1)
        assert outcome.status == "in_progress"
        assert outcome.last_sequence_number == last.sequence_number
        assert isinstance(outcome.error, InternalServerError)
        assert len(requests_to(server, "GET")) == 2 * 4  # 2 attempts x (1 + 3 client retries)

    async def test_a_quota_error_on_resume_hands_over_at_once(self, server: MockServer) -> None:
        server.inject(Fault.drop_after(2500), method="POST", path="/v1/responses")
        server.inject(Fault.insufficient_quota(), method="GET", path="/v1/responses/*", times=None)
        with trio.fail_after(10):
            async with (
                session_env(server.url, resume_attempts=5) as env,
                env.subscribe() as sub,
            ):
                ticket = await env.handle.respond("gpt-4o", TEXT, metadata=LONG)
                events = events_of(await collect(sub))
        assert events[-1].data["error_type"] == "InsufficientQuotaError"
        assert len(requests_to(server, "GET")) == 1
        assert env.tracker.finished == [(ticket.response_id, "in_progress", None)]


class TestWorkerRestart:
    async def test_a_worker_crashed_mid_stream_is_restarted_and_resumes_without_gap_or_dup(
        self, server: MockServer
    ) -> None:
        tracker = FakeTracker(crash_at_cursor=40)
        with trio.fail_after(15):
            async with session_env(server.url, tracker=tracker, cursor_every=8) as env:
                first = env.handle.ref
                async with env.subscribe() as sub:
                    ticket = await env.handle.respond(
                        "gpt-4o", TEXT, metadata={**LONG, "mock_token_delay_ms": "1"}
                    )
                    events = events_of(await collect(sub))
                    outcome = await env.handle.wait(ticket.stream_id)
                second = env.handle.ref
                state = worker(env).state
        assert first is not second
        assert not first.alive
        assert first.reason is not None
        assert first.reason.kind == "crashed"
        assert state.starts == 2
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        assert outcome.status == "completed"
        assert outcome.response is not None
        assert deltas(events) == outcome.response["output"][0]["content"][0]["text"]
        [resume] = requests_to(server, "GET")
        assert int(resume.query["starting_after"]) >= 40
        assert tracker.finished[-1][:2] == (ticket.response_id, "completed")

    async def test_a_worker_killed_mid_stream_is_restarted_and_resumes_without_gap_or_dup(
        self, env: Env, server: MockServer
    ) -> None:
        with trio.fail_after(15):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond(
                    "gpt-4o", TEXT, metadata={**LONG, "mock_token_delay_ms": "5"}
                )
                waiting: list[Any] = []

                async def wait_across_the_restart() -> None:
                    waiting.append(await env.handle.wait(ticket.stream_id))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(wait_across_the_restart)
                    seen: list[Any] = []
                    async for item in sub:
                        seen.append(item)
                        if isinstance(item, StreamEvent) and item.sequence_number == 30:
                            env.handle.ref.kill()
                            break
                    seen += await collect(sub)
        events = events_of(seen)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        assert events[-1].type == "response.completed"
        assert worker(env).state.starts == 2
        [outcome] = waiting
        assert outcome.status == "completed"
        assert len(requests_to(server, "GET")) == 1

    async def test_every_in_flight_durable_stream_is_resumed_by_the_new_worker(
        self, env: Env, server: MockServer
    ) -> None:
        paced = {**LONG, "mock_token_delay_ms": "5"}
        with trio.fail_after(15):
            async with env.subscribe() as sub:
                a = await env.handle.respond("gpt-4o", "first", metadata=paced)
                b = await env.handle.respond("gpt-4o", "second", metadata=paced)
                seen: list[Any] = []
                async for item in sub:
                    seen.append(item)
                    if isinstance(item, StreamEvent) and item.sequence_number == 20:
                        env.handle.ref.kill()
                        break
                seen += await collect(sub, until_terminal=2)
        assert worker(env).state.starts == 2
        for ticket in (a, b):
            events = events_of(seen, ticket.response_id)
            assert [e.sequence_number for e in events] == list(range(len(events)))
            assert events[-1].type == "response.completed"
        assert {r.path for r in requests_to(server, "GET")} == {
            f"/v1/responses/{a.response_id}",
            f"/v1/responses/{b.response_id}",
        }

    async def test_a_foreground_stream_lost_with_its_worker_ends_with_an_error_event(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.chat(
                    "gpt-4o",
                    [{"role": "user", "content": "hi"}],
                    metadata={"mock_scenario": "long:200", "mock_token_delay_ms": "10"},
                )
                env.handle.ref.kill()
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(ticket.stream_id)
        assert_gapless(events)
        assert events[-1].type == "error"
        assert events[-1].data["error_type"] == "StreamLost"
        assert outcome.status == "error"

    async def test_the_state_outlives_the_worker_because_the_factory_holds_it(
        self, env: Env
    ) -> None:
        before = worker(env)
        before.ref.kill()
        with trio.fail_after(5):
            after = await env.registry.wait_for("session.s1")
            while after is before.ref:
                await trio.sleep(0.01)
                after = await env.registry.wait_for("session.s1")
        assert isinstance(after._actor, StreamingSession)
        assert after._actor is not before
        assert after._actor.state is before.state
        assert isinstance(before.state, SessionState)


class TestStopDurable:
    async def test_stopping_cancels_server_side_closes_the_connection_and_publishes_cancelled(
        self, env: Env, server: MockServer
    ) -> None:
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                ticket = await env.handle.respond("gpt-4o", TEXT, metadata=slow)
                [outcome] = await env.handle.stop(ticket.stream_id)
                events = events_of(await collect(sub))
                await trio.sleep(0.1)
                assert sub.drain() == []
        rid = ticket.response_id
        assert [r.path for r in requests_to(server, "POST", "/cancel")] == [
            f"/v1/responses/{rid}/cancel"
        ]
        assert server.state.responses[rid or ""].status == "cancelled"
        assert ("POST", "/v1/responses") in env.transport.closed
        assert events[-1].type == "response.cancelled"
        assert events[-1].data["reason"] == "stopped_by_caller"
        assert events[-1].data["response"]["status"] == "cancelled"
        assert_gapless(events)
        assert outcome.status == "cancelled"
        assert env.tracker.finished[-1][:2] == (rid, "cancelled")
        assert env.tracker.cursors[-1] == (rid, events[-1].sequence_number - 1)


class TestSessionShutdown:
    async def test_durable_streams_are_handed_over_to_polling_not_cancelled(
        self, env: Env, server: MockServer
    ) -> None:
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            ticket = await env.handle.respond("gpt-4o", TEXT, metadata=slow)
            await env.sessions.terminate_child(env.handle.ref)
        assert env.tracker.finished == [(ticket.response_id, "in_progress", None)]
        assert requests_to(server, "POST", "/cancel") == []
        assert server.state.responses[ticket.response_id or ""].status == "in_progress"
        assert ("POST", "/v1/responses") in env.transport.closed


class TestAdopt:
    """A durable stream another node's worker left, resumed here from the registry's cursor
    (a cluster takeover; the cluster's own tests kill real nodes)."""

    async def test_it_resumes_after_the_cursor_without_gap_to_the_end(
        self, env: Env, server: MockServer
    ) -> None:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
        ) as http:
            created = await http.post(
                "/responses",
                json={
                    "model": "gpt-4o",
                    "input": TEXT,
                    "background": True,
                    "store": True,
                    "metadata": {**LONG, "mock_token_delay_ms": "1"},
                },
            )
        rid = created.json()["id"]
        with trio.fail_after(10):
            async with env.subscribe() as sub:
                stream_id = await env.handle.adopt(
                    rid, model="gpt-4o", request={"model": "gpt-4o", "input": TEXT}, cursor=10
                )
                again = await env.handle.adopt(rid, model="gpt-4o", request={}, cursor=10)
                events = events_of(await collect(sub))
                outcome = await env.handle.wait(stream_id)
        assert again == stream_id
        assert events[0].sequence_number == 11
        assert_gapless(events)
        assert events[-1].type == "response.completed"
        assert {e.session_id for e in events} == {"s1"}
        assert outcome.status == "completed"
        [resume] = requests_to(server, "GET")
        assert resume.query["starting_after"] == "10"
        assert env.tracker.finished[-1][:2] == (rid, "completed")

    @pytest.mark.parametrize(
        ("kwargs", "field"),
        [
            ({"response_id": ""}, "response_id"),
            ({"cursor": -1}, "cursor"),
            ({"cursor": True}, "cursor"),
        ],
    )
    async def test_bad_arguments_are_refused_at_the_call(
        self, env: Env, kwargs: dict[str, Any], field: str
    ) -> None:
        args: dict[str, Any] = {"response_id": "resp_1", "cursor": 1, **kwargs}
        with pytest.raises(InvalidSessionRequest, match=field):
            await env.handle.adopt(
                args["response_id"], model="gpt-4o", request={}, cursor=args["cursor"]
            )
