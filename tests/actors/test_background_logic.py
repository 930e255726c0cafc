"""BackgroundPoller logic on trio's autojump clock, against a scripted API behind a real client.

Every test drives a real `OpenAIClient` over `httpx.MockTransport`; the fake API below answers
from per-response scripts and records when each request arrived (trio time), so the assertions are
about what the server saw and what subscribers received.
"""

from __future__ import annotations

import gc
import itertools
import json
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import structlog
import trio
import trio.testing

from streamvisor.actors.background import _store
from streamvisor.actors.background._errors import (
    CorruptStore,
    InvalidBackgroundRequest,
    ResponseGone,
    UnknownResponse,
)
from streamvisor.actors.background._poller import (
    BackgroundHandle,
    BackgroundPoller,
    DurableTracker,
    open_background_poller,
)
from streamvisor.actors.background._records import TrackedResponse
from streamvisor.actors.background._status import BackgroundStatus, PollingStopped
from streamvisor.actors.background._store import RegistryStore
from streamvisor.config import BackgroundSection
from streamvisor.openai import (
    CancelRejected,
    ClientSettings,
    OpenAIClient,
    OutcomeUnknownError,
    Polled,
    RetryPolicy,
)
from streamvisor.supervisor import ChildSpec, NoSuchActor, Registry, open_supervisor, start_actor
from streamvisor.supervisor._bus import EventBus, Missed, Subscription

Clock = trio.testing.MockClock
#: The registry namespace of the scripted API's base URL (``https://api.test/v1``).
API_NS = "https://api.test/v1"
EPOCH = 1_700_000_000.0
SECTION = BackgroundSection(
    registry_path=":memory:",
    poll_interval=2.0,
    max_poll_interval=30.0,
    error_backoff_initial=1.0,
    error_backoff_max=60.0,
    terminal_ttl=3600.0,
    cleanup_interval=300.0,
)


def wall_clock() -> float:
    """Wall clock that moves with trio's (mock) clock, so TTLs are testable."""
    return EPOCH + trio.current_time()


# ------------------------------------------------------------------------------- the fake API


def _json(status: int, body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        headers={"content-type": "application/json", "x-request-id": "req_1", **headers},
        content=json.dumps(body).encode(),
    )


def _error(status: int, message: str, code: str | None = None, type: str = "x") -> httpx.Response:
    body = {"error": {"message": message, "type": type, "code": code, "param": None}}
    return _json(status, body)


@attrs.frozen
class Ok:
    """A GET answer: the response in ``status``, with an optional poll-after hint (ms)."""

    status: str
    poll_after_ms: int | None = None


@attrs.frozen
class Fail:
    status_code: int
    code: str | None = None
    message: str = "boom"
    type: str = "server_error"
    retry_after: str | None = None


class Crash:
    """The transport itself blows up (not an httpx error): a bug, as far as the poller knows."""


class Garbage:
    """A 200 that is not a Response (a captive portal, a misconfigured proxy)."""


Step = Ok | Fail | Crash | Garbage


@attrs.define
class FakeAPI:
    """Background responses whose GET answers follow a script (the last step repeats)."""

    scripts: dict[str, list[Step]] = attrs.field(factory=dict)
    status: dict[str, str] = attrs.field(factory=dict)
    gets: list[tuple[float, str]] = attrs.field(factory=list)
    posts: list[dict[str, Any]] = attrs.field(factory=list)
    cancels: list[str] = attrs.field(factory=list)
    next_script: list[Step] = attrs.field(factory=list)
    cancel_answer: Callable[[str], httpx.Response] | None = None
    create_error: Exception | None = None
    create_status: str = "queued"

    def response(self, rid: str, status: str) -> dict[str, Any]:
        output = []
        if status == "completed":
            output = [{"type": "message", "content": [{"type": "output_text", "text": "4"}]}]
        error = {"code": "server_error", "message": "it broke"} if status == "failed" else None
        return {
            "id": rid,
            "object": "response",
            "status": status,
            "background": True,
            "output": output,
            "error": error,
        }

    def get_times(self, rid: str) -> list[float]:
        return [t for t, r in self.gets if r == rid]

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/responses":
            self.posts.append(json.loads(request.content))
            if self.create_error is not None:
                raise self.create_error
            rid = f"resp_{len(self.posts)}"
            self.status[rid] = self.create_status
            self.scripts[rid] = list(self.next_script) or [Ok("in_progress")]
            return _json(200, self.response(rid, self.create_status))
        rid = path.split("/")[3]
        if request.method == "GET":
            self.gets.append((trio.current_time(), rid))
        if rid not in self.status:
            return _error(404, f"Response with id '{rid}' not found.", type="invalid_request_error")
        if request.method == "POST" and path.endswith("/cancel"):
            self.cancels.append(rid)
            if self.cancel_answer is not None:
                return self.cancel_answer(rid)
            current = self.status[rid]
            if current in ("queued", "in_progress", "cancelled"):
                self.status[rid] = "cancelled"
                self.scripts[rid] = [Ok("cancelled")]
                return _json(200, self.response(rid, "cancelled"))
            return _error(400, f"Cannot cancel a {current} response.", type="invalid_request_error")
        script = self.scripts[rid]
        step = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(step, Crash):
            raise RuntimeError("transport bug")
        if isinstance(step, Garbage):
            return httpx.Response(200, headers={"content-type": "text/html"}, text="<html>")
        if isinstance(step, Fail):
            answer = _error(step.status_code, step.message, step.code, step.type)
            if step.retry_after is not None:
                answer.headers["retry-after"] = step.retry_after
            return answer
        self.status[rid] = step.status
        headers = (
            {} if step.poll_after_ms is None else {"openai-poll-after-ms": str(step.poll_after_ms)}
        )
        return _json(200, self.response(rid, step.status), **headers)


# ----------------------------------------------------------------------------------- fixtures


@attrs.define
class Rig:
    api: FakeAPI
    bus: EventBus[Any]
    handle: BackgroundHandle


@asynccontextmanager
async def rig(
    api: FakeAPI | None = None,
    section: BackgroundSection = SECTION,
    random: Callable[[], float] = lambda: 0.0,
    **options: Any,
) -> AsyncIterator[Rig]:
    api = api if api is not None else FakeAPI()
    settings = ClientSettings(
        api_key="sk-test-0123456789abcdef",
        base_url="https://api.test/v1",
        retry=RetryPolicy(max_retries=0),
    )
    bus: EventBus[Any] = EventBus()
    async with (
        OpenAIClient.open(settings, transport=httpx.MockTransport(api)) as client,
        open_background_poller(
            client=client,
            bus=bus,
            section=section,
            wall_clock=wall_clock,
            random=random,
            **options,
        ) as handle,
    ):
        yield Rig(api, bus, handle)


async def take(sub: Subscription[Any], n: int) -> list[Any]:
    """The next ``n`` items (``Missed`` notices would be a test failure)."""
    out = []
    with trio.fail_after(600):
        while len(out) < n:
            item = await sub.receive()
            assert not isinstance(item, Missed)
            out.append(item)
    return out


def statuses(items: list[Any]) -> list[tuple[str | None, str]]:
    return [(i.previous, i.status) for i in items if isinstance(i, BackgroundStatus)]


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


async def settle(seconds: float = 1000.0) -> None:
    await trio.sleep(seconds)


@pytest.fixture(autouse=True)
def inline_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs on the autojump clock, with the registry's SQLite calls inline.

    Autojump advances time as soon as every task is blocked, and a task waiting for a worker
    thread counts as blocked: the clock would leap to the next deadline while SQLite works. The
    connection is thread-agnostic (``check_same_thread=False``), so opening it inline and running
    each operation inline (`_InlineWriter`: the same SQL, one operation per batch) keeps the logic
    identical and the timings exact. The end-to-end tests use the real writer thread.
    """

    async def inline(fn: Callable[..., Any], *args: Any, **_kwargs: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", inline)
    monkeypatch.setattr(_store, "_Writer", _store._InlineWriter)


# -------------------------------------------------------------------------------------- tests


class TestPollingInterval:
    async def test_the_servers_poll_after_hint_sets_the_interval(
        self, autojump_clock: Clock
    ) -> None:
        """Polls follow openai-poll-after-ms; the first one waits the configured interval."""
        api = FakeAPI(next_script=[Ok("in_progress", 500), Ok("in_progress", 500), Ok("completed")])
        async with rig(api) as r:
            start = trio.current_time()
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
            times = api.get_times(record.response_id)
        assert times[0] - start == pytest.approx(2.0)
        assert gaps(times) == [0.5, 0.5]

    async def test_without_a_hint_the_configured_interval_is_used(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("queued"), Ok("in_progress"), Ok("completed")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
        assert gaps(api.get_times(record.response_id)) == [2.0, 2.0]

    async def test_a_hint_above_max_poll_interval_is_capped(self, autojump_clock: Clock) -> None:
        api = FakeAPI(next_script=[Ok("in_progress", 600_000), Ok("completed")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
        assert gaps(api.get_times(record.response_id)) == [30.0]


class TestErrorBackoff:
    @pytest.mark.parametrize("r", [0.0, 0.5, 0.999])
    async def test_5xx_backs_off_exponentially_with_jitter_up_to_the_cap(
        self, autojump_clock: Clock, r: float
    ) -> None:
        """Delays double from error_backoff_initial, lose up to 25 % to jitter, stop at the max."""
        api = FakeAPI(next_script=[Fail(503)] * 8 + [Ok("completed")])
        async with rig(api, random=lambda: r) as r_:
            record = await r_.handle.create("hi", "gpt-4o")
            await settle(2000)
        expected = [round(min(2.0**i, 60.0) * (1 - 0.25 * r), 6) for i in range(8)]
        assert gaps(api.get_times(record.response_id)) == pytest.approx(expected)

    async def test_a_successful_poll_resets_the_backoff(self, autojump_clock: Clock) -> None:
        api = FakeAPI(
            next_script=[Fail(500), Fail(500), Ok("in_progress"), Fail(502), Ok("completed")]
        )
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
            stored = await r.handle.get(record.response_id)
        assert gaps(api.get_times(record.response_id)) == [1.0, 2.0, 2.0, 1.0]
        assert stored.error_count == 0
        assert stored.poll_attempts == 5

    async def test_a_retry_after_longer_than_the_backoff_is_honoured(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(
            next_script=[
                Fail(429, "rate_limit_exceeded", type="requests", retry_after="7"),
                Fail(503),
                Ok("completed"),
            ]
        )
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
        assert gaps(api.get_times(record.response_id)) == [7.0, 2.0]

    async def test_a_200_that_is_not_a_response_counts_as_a_failed_poll(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Garbage(), Ok("completed")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
            stored = await r.handle.get(record.response_id)
        assert gaps(api.get_times(record.response_id)) == [1.0]
        assert stored.status == "completed"
        assert stored.last_error is not None
        assert stored.last_error.startswith("malformed_response")


class TestTerminalStatuses:
    @pytest.mark.parametrize("final", ["completed", "failed", "cancelled", "incomplete"])
    async def test_every_terminal_status_ends_polling(
        self, autojump_clock: Clock, final: str
    ) -> None:
        """incomplete included: the Erlang original polled it forever."""
        api = FakeAPI(next_script=[Ok("in_progress"), Ok(final)])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle(1000)
            stored = await r.handle.get(record.response_id)
            active = await r.handle.active()
        assert len(api.get_times(record.response_id)) == 2
        assert stored.status == final
        assert stored.terminal_at is not None
        assert active == []

    async def test_a_failed_response_keeps_the_servers_error(self, autojump_clock: Clock) -> None:
        api = FakeAPI(next_script=[Ok("failed")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            async with r.bus.subscribe(f"background.{record.response_id}") as sub:
                (note,) = await take(sub, 1)
            stored = await r.handle.get(record.response_id)
        assert note.status == "failed"
        assert note.error == "server_error: it broke"
        assert stored.last_error == "server_error: it broke"


class TestGoneAndPermanentErrors:
    async def test_a_404_marks_the_response_failed_and_gone_and_stops_polling(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("in_progress")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o", owner="s1")
            rid = record.response_id
            async with r.bus.subscribe(f"background.{rid}") as sub:
                await take(sub, 1)  # queued -> in_progress
                del api.status[rid]  # retention expired
                (note,) = await take(sub, 1)
                await settle(1000)
            stored = await r.handle.get(rid)
        assert (note.previous, note.status, note.gone) == ("in_progress", "failed", True)
        assert note.error is not None
        assert note.error.startswith("response_gone:")
        assert stored.status == "failed"
        assert stored.metadata["gone"] is True
        assert stored.last_error is not None
        assert stored.last_error.startswith("response_gone:")
        assert len(api.get_times(rid)) == 2

    async def test_insufficient_quota_stops_polling_with_a_notice_on_both_topics(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Fail(429, "insufficient_quota", "You exceeded your quota.")])
        async with rig(api) as r:
            async with (
                r.bus.subscribe("background.*") as background,
                r.bus.subscribe("session.s1") as session,
            ):
                record = await r.handle.create("hi", "gpt-4o", owner="s1")
                items = await take(background, 2)
                await settle(1000)
                assert session.drain() == items
                assert background.drain() == []
            stored = await r.handle.get(record.response_id)
        stopped = items[1]
        assert isinstance(stopped, PollingStopped)
        assert stopped.code == "insufficient_quota"
        assert stopped.status == "queued"
        assert len(api.get_times(record.response_id)) == 1
        assert stored.status == "queued"  # still active server-side: not forgotten
        assert stored.error_count == 1

    async def test_poll_after_a_stop_resumes_polling(self, autojump_clock: Clock) -> None:
        api = FakeAPI(next_script=[Fail(429, "insufficient_quota"), Ok("in_progress")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle(100)
            api.scripts[record.response_id] = [Ok("in_progress"), Ok("completed")]
            polled = await r.handle.poll(record.response_id)
            await settle(100)
            stored = await r.handle.get(record.response_id)
        assert polled["status"] == "in_progress"
        assert stored.status == "completed"


class TestNotifications:
    async def test_each_change_is_published_exactly_once_on_both_topics(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(
            next_script=[
                Ok("queued"),
                Ok("queued"),
                Ok("in_progress"),
                Ok("in_progress"),
                Ok("completed"),
            ]
        )
        async with (
            rig(api) as r,
            r.bus.subscribe("background.**") as background,
            r.bus.subscribe("session.s1") as session,
        ):
            record = await r.handle.create("hi", "gpt-4o", owner="s1")
            await settle()
            seen_background = background.drain()
            seen_session = session.drain()
        assert statuses(seen_background) == [
            (None, "queued"),
            ("queued", "in_progress"),
            ("in_progress", "completed"),
        ]
        assert seen_session == seen_background
        assert all(n.response_id == record.response_id and n.owner == "s1" for n in seen_session)
        assert seen_background[-1].terminal
        assert seen_background[-1].response["output"][0]["content"][0]["text"] == "4"

    async def test_a_response_without_owner_is_published_on_its_own_topic_only(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("completed")])
        async with rig(api) as r, r.bus.subscribe("session.**") as sessions:
            await r.handle.create("hi", "gpt-4o")
            await settle()
            assert sessions.drain() == []


class TestCancel:
    async def test_cancel_of_an_active_response_reports_cancelled_and_ends_polling(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("in_progress")])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            rid = record.response_id
            await trio.sleep(5)
            async with r.bus.subscribe(f"background.{rid}") as sub:
                response = await r.handle.cancel(rid)
                await settle()
                notes = sub.drain()
            polls = len(api.get_times(rid))
            stored = await r.handle.get(rid)
        assert response["status"] == "cancelled"
        assert statuses(notes) == [("in_progress", "cancelled")]
        assert stored.status == "cancelled"
        assert polls == 2  # at 2 s and 4 s; none after the cancel at 5 s

    async def test_cancelling_twice_is_idempotent(self, autojump_clock: Clock) -> None:
        async with rig() as r:
            record = await r.handle.create("hi", "gpt-4o")
            async with r.bus.subscribe(f"background.{record.response_id}") as sub:
                first = await r.handle.cancel(record.response_id)
                second = await r.handle.cancel(record.response_id)
                await settle()
                notes = sub.drain()
        assert first["status"] == second["status"] == "cancelled"
        assert statuses(notes) == [("queued", "cancelled")]

    async def test_a_cancel_that_races_completion_reports_the_final_state(
        self, autojump_clock: Clock
    ) -> None:
        """400 "Cannot cancel a completed response." is not an error: GET and report it."""
        api = FakeAPI(next_script=[Ok("in_progress", 60_000)])
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            rid = record.response_id
            await trio.sleep(3)
            api.status[rid] = "completed"  # it finishes just before the cancel arrives
            api.scripts[rid] = [Ok("completed")]
            async with r.bus.subscribe(f"background.{rid}") as sub:
                response = await r.handle.cancel(rid)
                notes = await take(sub, 1)
            stored = await r.handle.get(rid)
        assert api.cancels == [rid]
        assert response["status"] == "completed"
        assert response["output"][0]["content"][0]["text"] == "4"
        assert statuses(notes) == [("in_progress", "completed")]
        assert stored.status == "completed"

    async def test_cancel_of_an_unknown_or_expired_id_raises_response_gone(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            with pytest.raises(ResponseGone) as info:
                await r.handle.cancel("resp_unknown")
        assert info.value.response_id == "resp_unknown"
        assert isinstance(info.value, LookupError)

    async def test_cancel_of_a_foreground_response_raises_cancel_rejected(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(
            cancel_answer=lambda rid: _error(
                400, "Only responses created with background=true can be cancelled."
            )
        )
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            with pytest.raises(CancelRejected) as info:
                await r.handle.cancel(record.response_id)
        assert info.value.status is None


class TestPollAndStreamCalls:
    async def test_poll_of_an_untracked_response_answers_without_registering_it(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI()
        api.status["resp_x"] = "completed"
        api.scripts["resp_x"] = [Ok("completed")]
        async with rig(api) as r:
            response = await r.handle.poll("resp_x")
            with pytest.raises(UnknownResponse):
                await r.handle.get("resp_x")
        assert response["status"] == "completed"

    async def test_poll_of_an_unknown_response_raises_response_gone(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            with pytest.raises(ResponseGone):
                await r.handle.poll("resp_x")

    async def test_stream_of_an_unknown_response_raises_response_gone_on_entry(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            with pytest.raises(ResponseGone):
                async with r.handle.stream("resp_x", starting_after=3):
                    pass  # pragma: no cover - entering fails


class TestCleanup:
    async def test_terminal_entries_are_removed_after_the_ttl(self, autojump_clock: Clock) -> None:
        section = attrs.evolve(SECTION, terminal_ttl=100.0, cleanup_interval=10.0)
        api = FakeAPI(next_script=[Ok("completed")])
        async with rig(api, section=section) as r:
            record = await r.handle.create("hi", "gpt-4o")  # completed at t=2
            await trio.sleep(90)
            assert (await r.handle.get(record.response_id)).status == "completed"
            await trio.sleep(30)
            with pytest.raises(UnknownResponse):
                await r.handle.get(record.response_id)

    async def test_active_entries_are_never_removed(self, autojump_clock: Clock) -> None:
        section = attrs.evolve(SECTION, terminal_ttl=1.0, cleanup_interval=1.0)
        api = FakeAPI(next_script=[Ok("in_progress")])
        async with rig(api, section=section) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await trio.sleep(500)
            assert [a.response_id for a in await r.handle.active()] == [record.response_id]


class TestRecent:
    async def test_the_newest_records_come_first_terminal_ones_included(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("completed")])
        async with rig(api) as r:
            first = await r.handle.create("one", "gpt-4o")
            await trio.sleep(1)
            second = await r.handle.create("two", "gpt-4o")
            await trio.sleep(10)
            recent = await r.handle.recent()
            assert [x.response_id for x in recent] == [second.response_id, first.response_id]
            assert {x.status for x in recent} == {"completed"}
            assert await r.handle.active() == []
            assert [x.response_id for x in await r.handle.recent(1)] == [second.response_id]
            assert await r.handle.recent(0) == []

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
    async def test_a_bad_limit_is_refused_before_any_hop(
        self, autojump_clock: Clock, bad: object
    ) -> None:
        async with rig(FakeAPI()) as r:
            with pytest.raises(ValueError, match="limit"):
                await r.handle.recent(bad)  # type: ignore[arg-type]


class TestSupervision:
    async def test_a_crashed_poller_is_restarted_and_carries_on_from_the_registry(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("in_progress"), Crash(), Ok("completed")])
        with structlog.testing.capture_logs() as logs:
            async with rig(api) as r:
                record = await r.handle.create("hi", "gpt-4o")
                async with r.bus.subscribe(f"background.{record.response_id}") as sub:
                    notes = await take(sub, 2)
                stored = await r.handle.get(record.response_id)
        assert statuses(notes) == [("queued", "in_progress"), ("in_progress", "completed")]
        assert stored.status == "completed"
        assert len(api.get_times(record.response_id)) == 3
        events = [e["event"] for e in logs]
        assert "actor_crashed" in events
        assert "child_restarted" in events

    async def test_the_error_backoff_survives_a_poller_restart(self, autojump_clock: Clock) -> None:
        """error_count is persisted: a restarted poller waits the backoff, not the interval."""
        section = attrs.evolve(SECTION, poll_interval=5.0)
        api = FakeAPI(next_script=[Fail(500), Fail(500), Crash(), Ok("completed")])
        async with rig(api, section=section) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
        # +1 s after the 1st error, +2 s after the 2nd; the 3rd poll crashes the poller, and its
        # replacement reads error_count=2 from the registry: 2 s, not the 5 s first delay.
        assert gaps(api.get_times(record.response_id)) == [1.0, 2.0, 2.0]


class TestCreate:
    async def test_create_forces_background_and_store_and_applies_reasoning_rules(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            record = await r.handle.create(
                "think", "o3", temperature=0.2, store=False, max_output_tokens=50
            )
        (body,) = r.api.posts
        assert body["background"] is True
        assert body["store"] is True
        assert "temperature" not in body
        assert body["max_output_tokens"] == 50
        assert record.request["store"] is True
        assert record.status == "queued"
        assert record.mode == "poll"

    async def test_create_with_response_answers_the_apis_own_answer_beside_the_record(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            record, response = await r.handle.create_with_response(
                "think", "gpt-4o", force_store=False, store=False
            )
        (body,) = r.api.posts
        assert body["store"] is False  # the caller's own store, not forced
        assert response["id"] == record.response_id
        assert response["status"] == record.status == "queued"

    async def test_a_create_with_an_unknown_outcome_is_not_retried_and_is_surfaced(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(create_error=httpx.ReadTimeout("lost"))
        async with rig(api) as r:
            with pytest.raises(OutcomeUnknownError):
                await r.handle.create("hi", "gpt-4o")
            assert await r.handle.active() == []
        assert len(api.posts) == 1

    @pytest.mark.parametrize(
        ("kwargs", "fragment"),
        [
            ({"model": ""}, "model"),
            ({"model": "gpt-4o", "owner": "a.b"}, "owner"),
            ({"model": "gpt-4o", "stream": True}, "stream"),
        ],
    )
    async def test_bad_requests_are_rejected_before_any_io(
        self, autojump_clock: Clock, kwargs: dict[str, Any], fragment: str
    ) -> None:
        async with rig() as r:
            with pytest.raises(InvalidBackgroundRequest, match=fragment):
                await r.handle.create("hi", **kwargs)
        assert r.api.posts == []

    async def test_a_create_answered_terminal_is_tracked_but_not_polled(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(create_status="failed")
        async with rig(api) as r:
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
        assert record.is_terminal
        assert api.gets == []


class TestDurableTracker:
    async def test_the_handle_is_a_durable_tracker(self, autojump_clock: Clock) -> None:
        async with rig() as r:
            assert isinstance(r.handle, DurableTracker)

    async def test_a_tracked_stream_is_not_polled_while_it_streams(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            r.api.status["resp_s"] = "in_progress"
            r.api.scripts["resp_s"] = [Ok("completed")]
            await r.handle.track_stream(
                response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=3
            )
            await settle()
            stored = await r.handle.get("resp_s")
        assert r.api.gets == []
        assert (stored.mode, stored.owner, stored.cursor) == ("stream", "s1", 3)

    async def test_cursors_are_batched_and_only_move_forward(self, autojump_clock: Clock) -> None:
        async with rig() as r:
            await r.handle.track_stream(
                response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=None
            )
            for cursor in (1, 2, 5, 4):
                r.handle.note_cursor("resp_s", cursor)
            await trio.sleep(1)
            assert (await r.handle.get("resp_s")).cursor == 5

    async def test_a_terminal_finish_is_recorded_and_notified(self, autojump_clock: Clock) -> None:
        async with rig() as r:
            async with r.bus.subscribe("session.s1") as sub:
                await r.handle.track_stream(
                    response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=None
                )
                r.handle.note_cursor("resp_s", 9)
                await r.handle.stream_finished("resp_s", "completed", {"status": "completed"})
                notes = await take(sub, 2)
            stored = await r.handle.get("resp_s")
        assert statuses(notes) == [(None, "queued"), ("queued", "completed")]
        assert (stored.status, stored.cursor) == ("completed", 9)

    async def test_a_non_terminal_finish_hands_the_response_over_to_polling(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            r.api.status["resp_s"] = "in_progress"
            r.api.scripts["resp_s"] = [Ok("in_progress"), Ok("completed")]
            await r.handle.track_stream(
                response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=4
            )
            await r.handle.stream_finished("resp_s", "in_progress", None)
            await settle()
            stored = await r.handle.get("resp_s")
        assert len(r.api.gets) == 2
        assert (stored.status, stored.mode) == ("completed", "poll")

    async def test_tracking_again_after_a_worker_restart_keeps_the_entry(
        self, autojump_clock: Clock
    ) -> None:
        async with rig() as r:
            for cursor in (3, 7):
                await r.handle.track_stream(
                    response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=cursor
                )
            stored = await r.handle.get("resp_s")
        assert stored.cursor == 7


class TestTheActor:
    async def test_a_poller_that_keeps_crashing_takes_the_background_poller_down(
        self, autojump_clock: Clock
    ) -> None:
        """Past the pollers' restart intensity the failure escalates (OTP), it is not hidden."""
        api = FakeAPI(next_script=[Crash()])
        settings = ClientSettings(base_url="https://api.test/v1", retry=RetryPolicy(max_retries=0))
        async with (
            OpenAIClient.open(settings, transport=httpx.MockTransport(api)) as client,
            trio.open_nursery() as nursery,
        ):
            poller = BackgroundPoller(
                client=client, bus=EventBus(), section=SECTION, poller_intensity=2
            )
            ref = await start_actor(nursery, poller)
            await BackgroundHandle(ref).create("hi", "gpt-4o")
            with trio.fail_after(600):
                reason = await ref.wait()
        assert reason.kind == "crashed"
        assert len(api.gets) == 3  # the first run and two restarts

    async def test_a_registry_handle_follows_the_poller_by_name(
        self, autojump_clock: Clock
    ) -> None:
        registry = Registry()
        handle = BackgroundHandle.from_registry(registry, "background")
        with pytest.raises(NoSuchActor):
            await handle.active()
        settings = ClientSettings(base_url="https://api.test/v1")
        async with (
            OpenAIClient.open(settings, transport=httpx.MockTransport(FakeAPI())) as client,
            trio.open_nursery() as nursery,
        ):
            poller = BackgroundPoller(client=client, bus=EventBus(), section=SECTION)
            ref = await start_actor(nursery, poller, name="background", registry=registry)
            record = await handle.create("hi", "gpt-4o")
            assert [a.response_id for a in await handle.active()] == [record.response_id]
            await ref.stop()

    async def test_an_unreadable_registry_fails_the_start(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        path = tmp_path / "registry.sqlite3"
        path.write_bytes(b"this is not a database" * 100)
        async with OpenAIClient.open(ClientSettings(base_url="https://api.test/v1")) as client:
            with pytest.raises(CorruptStore):
                async with open_background_poller(
                    client=client, bus=EventBus(), section=SECTION, registry_path=str(path)
                ):
                    pass  # pragma: no cover - the start fails


class TestAdoption:
    async def test_active_entries_are_adopted_and_polled_at_once(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        path = str(tmp_path / "registry.sqlite3")
        async with RegistryStore.open(path, namespace=API_NS) as store:
            for rid, mode in (("resp_a", "poll"), ("resp_b", "stream")):
                await store.add(
                    TrackedResponse(
                        response_id=rid,
                        status="queued",
                        model="gpt-4o",
                        created_at=EPOCH,
                        mode=mode,
                    )
                )
        api = FakeAPI()
        api.status.update(resp_a="queued", resp_b="in_progress")
        api.scripts.update(resp_a=[Ok("completed")], resp_b=[Ok("completed")])
        async with rig(api, registry_path=path) as r:
            await settle()
            records = [await r.handle.get(rid) for rid in ("resp_a", "resp_b")]
        assert sorted(api.gets) == [(0.0, "resp_a"), (0.0, "resp_b")]
        assert [(x.status, x.mode) for x in records] == [("completed", "poll")] * 2

    async def test_records_of_another_server_in_the_same_file_are_left_alone(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        """Namespaces: a poller adopts, lists and polls only its own server's records, and a
        create that reuses an id another server issued is tracked beside it, not refused."""
        path = str(tmp_path / "registry.sqlite3")
        async with RegistryStore.open(path, namespace="http://127.0.0.1:9/v1") as other:
            await other.add(
                TrackedResponse(
                    response_id="resp_1", status="queued", model="gpt-4o", created_at=EPOCH
                )
            )
        api = FakeAPI(next_script=[Ok("completed")])
        async with rig(api, registry_path=path) as r:
            assert await r.handle.active() == []
            record = await r.handle.create("hi", "gpt-4o")
            await settle()
            mine = await r.handle.get(record.response_id)
        assert record.response_id == "resp_1"
        assert api.gets == [(SECTION.poll_interval, "resp_1")]
        assert mine.status == "completed"
        async with RegistryStore.open(path, namespace="http://127.0.0.1:9/v1") as other:
            theirs = await other.get("resp_1")
        assert (theirs.status, theirs.poll_attempts) == ("queued", 0)

    async def test_an_adopted_response_the_server_forgot_is_marked_gone(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        path = str(tmp_path / "registry.sqlite3")
        async with RegistryStore.open(path, namespace=API_NS) as store:
            await store.add(
                TrackedResponse(
                    response_id="resp_old", status="in_progress", model="o3", created_at=EPOCH
                )
            )
        async with rig(registry_path=path) as r:
            await settle(1)
            stored = await r.handle.get("resp_old")
        assert stored.status == "failed"
        assert stored.metadata["gone"] is True

    async def test_a_graceful_stop_writes_the_pending_cursors(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        path = str(tmp_path / "registry.sqlite3")
        async with rig(registry_path=path, cursor_flush=60.0) as r:
            await r.handle.track_stream(
                response_id="resp_s", owner="s1", model="gpt-4o", request={}, cursor=None
            )
            r.handle.note_cursor("resp_s", 8)
            await trio.testing.wait_all_tasks_blocked()
        async with RegistryStore.open(path, namespace=API_NS) as store:
            assert (await store.get("resp_s")).cursor == 8


class TestInASupervisionTree:
    async def test_a_killed_background_poller_is_restarted_and_adopts_its_responses(
        self, autojump_clock: Clock, tmp_path: Any
    ) -> None:
        """Killed mid-background (no terminate, nothing flushed), restarted by its supervisor:
        the new instance adopts the response from the file registry and sees it through."""
        path = str(tmp_path / "registry.sqlite3")
        api = FakeAPI(next_script=[Ok("in_progress"), Ok("in_progress"), Ok("completed")])
        registry = Registry()
        bus: EventBus[Any] = EventBus()
        settings = ClientSettings(base_url="https://api.test/v1", retry=RetryPolicy(max_retries=0))
        async with OpenAIClient.open(settings, transport=httpx.MockTransport(api)) as client:

            def factory() -> BackgroundPoller:
                return BackgroundPoller(client=client, bus=bus, section=SECTION, registry_path=path)

            spec = ChildSpec.worker("background", factory, name="background")
            async with open_supervisor([spec], registry=registry):
                handle = BackgroundHandle.from_registry(registry, "background")
                first = handle.ref
                record = await handle.create("hi", "gpt-4o", owner="s1")
                await trio.sleep(1)  # queued, not yet polled
                async with bus.subscribe("session.s1") as sub:
                    first.kill()
                    notes = await take(sub, 2)
                assert handle.ref is not first
                stored = await handle.get(record.response_id)
        assert statuses(notes) == [("queued", "in_progress"), ("in_progress", "completed")]
        assert stored.status == "completed"
        assert api.gets[0][0] == pytest.approx(1.0)  # the new instance polled at once


class TestRetention:
    async def test_a_poller_does_not_keep_its_last_answer_while_it_waits(
        self, mock_clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A poller lives as long as its response runs (hours, for a long one): waiting for
        its next poll, it kept the last answer (the whole response, as the server sent it).
        Checked between the first poll and the second (which would replace it); the clock
        moves only when the test says."""
        answers: list[weakref.ref[Polled]] = []
        retrieve = OpenAIClient.retrieve_response

        async def spy(client: OpenAIClient, response_id: str, **kw: Any) -> Polled:
            polled = await retrieve(client, response_id, **kw)
            answers.append(weakref.ref(polled))
            return polled

        monkeypatch.setattr(OpenAIClient, "retrieve_response", spy)
        async with rig(FakeAPI(next_script=[Ok("in_progress")])) as r:
            await r.handle.create("hi", "gpt-4o")
            await trio.testing.wait_all_tasks_blocked()
            mock_clock.jump(SECTION.poll_interval)  # the first poll, then a wait for the next
            await trio.testing.wait_all_tasks_blocked()
            assert len(answers) == 1
            gc.collect()
            assert answers[0]() is None
