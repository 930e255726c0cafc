"""Helpers for the StreamingSession tests: a fake DurableTracker, a session under a real
DynamicSupervisor talking to the embedded server over loopback, and event collection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import httpx
import pytest
import trio

from streamvisor.actors.sessions._handle import SessionHandle, open_session, sessions_supervisor
from streamvisor.actors.sessions._requests import session_topic
from streamvisor.actors.sessions._values import SessionDeps, StreamOutcome, StreamTicket
from streamvisor.config import SessionsSection
from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import ClientSettings, OpenAIClient, RetryPolicy, StreamEvent
from streamvisor.supervisor import (
    DynamicSupervisorRef,
    EventBus,
    Missed,
    Registry,
    Subscription,
    start_actor,
)

API_KEY = "sk-test-session-0123456789"


class TrackerCrash(RuntimeError):
    """Raised by `FakeTracker.note_cursor` on command, to crash the session worker."""


@attrs.define
class FakeTracker:
    """An in-memory DurableTracker that records what the session told it.

    ``crash_at_cursor``: the first ``note_cursor`` at or past it raises `TrackerCrash` (once),
    which crashes the worker from inside its stream task (a crash on command). ``commit``: when
    given, ``track_stream`` returns only once it is set (a registry whose commit is held back).
    ``refuse``: ``track_stream`` raises it (a registry that cannot record the response).
    """

    tracked: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    cursors: list[tuple[str, int]] = attrs.field(factory=list)
    finished: list[tuple[str, str, Mapping[str, Any] | None]] = attrs.field(factory=list)
    track_calls: int = 0
    crash_at_cursor: int | None = None
    commit: trio.Event | None = None
    refuse: Exception | None = None

    async def track_stream(
        self,
        *,
        response_id: str,
        owner: str,
        model: str,
        request: Mapping[str, Any],
        cursor: int | None,
    ) -> None:
        await trio.lowlevel.checkpoint()
        self.track_calls += 1
        if self.refuse is not None:
            raise self.refuse
        if self.commit is not None:
            await self.commit.wait()
        self.tracked[response_id] = {
            "owner": owner,
            "model": model,
            "request": dict(request),
            "cursor": cursor,
        }

    def note_cursor(self, response_id: str, cursor: int) -> None:
        if self.crash_at_cursor is not None and cursor >= self.crash_at_cursor:
            self.crash_at_cursor = None
            raise TrackerCrash(f"crash on command at cursor {cursor}")
        self.cursors.append((response_id, cursor))

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None:
        await trio.lowlevel.checkpoint()
        self.finished.append((response_id, status, response))

    def stream_abandoned(self, response_id: str) -> None:
        self.finished.append((response_id, "abandoned", None))


class HeldOpen(httpx.AsyncByteStream):
    """A response body that sends ``frames`` and then stays open until it is closed."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames
        self._closed = trio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self._frames:
            yield frame
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


class ClosingTransport(httpx.AsyncBaseTransport):
    """A real loopback transport that remembers whether each response body was closed."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.opened: list[tuple[str, str]] = []
        self.closed: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        key = (request.method, request.url.path)
        self.opened.append(key)
        inner_stream = response.stream
        assert isinstance(inner_stream, httpx.AsyncByteStream)
        closed = self.closed

        class Watched(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                async for chunk in inner_stream:
                    yield chunk

            async def aclose(self) -> None:
                closed.append(key)
                await inner_stream.aclose()

        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=Watched(),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def client_settings(url: str, **overrides: Any) -> ClientSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "base_url": url,
        "retry": RetryPolicy(max_retries=3, initial_delay=0.01, max_delay=0.05, jitter=0.0),
        "read_timeout": 10.0,
    }
    values.update(overrides)
    return ClientSettings(**values)


@attrs.define
class Env:
    handle: SessionHandle
    bus: EventBus[Any]
    sessions: DynamicSupervisorRef
    registry: Registry
    deps: SessionDeps
    tracker: FakeTracker
    transport: ClosingTransport

    def subscribe(self, buffer: int = 4096, **kwargs: Any) -> Subscription[Any]:
        return self.bus.subscribe(session_topic(self.handle.session_id), buffer=buffer, **kwargs)


@asynccontextmanager
async def session_env(
    url: str,
    *,
    session_id: str = "s1",
    tracker: FakeTracker | None = None,
    durable: bool = True,
    settings: Mapping[str, Any] | None = None,
    stop_timeout: float = 5.0,
    results_kept: int = 16,
    transport: httpx.AsyncBaseTransport | None = None,
    **deps: Any,
) -> AsyncIterator[Env]:
    """A session under a real DynamicSupervisor, talking to ``url`` over loopback (or through
    ``transport``)."""
    tracker = tracker if tracker is not None else FakeTracker()
    watched = ClosingTransport()
    config = SessionsSection(
        durable_responses=durable, stop_timeout=stop_timeout, results_kept=results_kept
    )
    async with (
        OpenAIClient.open(
            client_settings(url, **(settings or {})), transport=transport or watched
        ) as client,
        trio.open_nursery() as nursery,
    ):
        bus: EventBus[Any] = EventBus()
        registry = Registry()
        sup = await start_actor(
            nursery, sessions_supervisor(config, intensity=10), registry=registry
        )
        assert isinstance(sup, DynamicSupervisorRef)
        values: dict[str, Any] = {"resume_backoff": 0.01, "resume_backoff_max": 0.05}
        values.update(deps)
        session_deps = SessionDeps(client=client, bus=bus, config=config, tracker=tracker, **values)
        handle = await open_session(sup, session_id, session_deps, timeout=10.0)
        try:
            yield Env(handle, bus, sup, registry, session_deps, tracker, watched)
        finally:
            if sup.alive:
                await sup.stop(timeout=10.0)


@pytest.fixture(name="server")
async def server_fixture() -> AsyncIterator[MockServer]:
    """The embedded mock API on loopback, accepting `API_KEY`."""
    async with serve(MockAPIConfig(api_key=API_KEY)) as running:
        yield running


@pytest.fixture(name="env")
async def env_fixture(server: MockServer) -> AsyncIterator[Env]:
    """A default session talking to `server` (started within 20 s)."""
    with trio.fail_after(20):
        async with session_env(server.url) as running:
            yield running


async def streamed(
    env: Env, start: Callable[[], Awaitable[StreamTicket]]
) -> tuple[StreamTicket, list[StreamEvent], StreamOutcome]:
    """Subscribe to the session, ``start`` one stream, collect its events through the terminal
    one and wait for its outcome, all within 10 seconds."""
    with trio.fail_after(10):
        async with env.subscribe() as sub:
            ticket = await start()
            events = events_of(await collect(sub))
            outcome = await env.handle.wait(ticket.stream_id)
    return ticket, events, outcome


async def collect(sub: Subscription[Any], *, until_terminal: int = 1) -> list[Any]:
    """Receive until ``until_terminal`` terminal events arrived (Missed notices included)."""
    out: list[Any] = []
    seen = 0
    async for item in sub:
        out.append(item)
        if isinstance(item, StreamEvent) and item.terminal:
            seen += 1
            if seen >= until_terminal:
                break
    return out


def events_of(items: list[Any], response_id: str | None = None) -> list[StreamEvent]:
    return [
        i
        for i in items
        if isinstance(i, StreamEvent) and (response_id is None or i.response_id == response_id)
    ]


def deltas(events: list[StreamEvent]) -> str:
    return "".join(e.data["delta"] for e in events if e.type == "response.output_text.delta")


def assert_gapless(events: list[StreamEvent]) -> None:
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers


__all__ = [
    "API_KEY",
    "ClosingTransport",
    "Env",
    "FakeTracker",
    "HeldOpen",
    "Missed",
    "TrackerCrash",
    "assert_gapless",
    "client_settings",
    "collect",
    "deltas",
    "env_fixture",
    "events_of",
    "server_fixture",
    "session_env",
    "streamed",
]
