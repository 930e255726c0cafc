"""BackgroundPoller end to end: real loopback HTTP against the embedded server, real time, SQLite.

The embedded server's background mode moves each response through queued → in_progress → a
terminal status over time (``mock_queue_ms``, ``mock_token_delay_ms``), so these tests use small
real delays and fast polling; each is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio

from streamvisor.actors.background._poller import (
    BackgroundHandle,
    BackgroundPoller,
    open_background_poller,
)
from streamvisor.actors.background._records import TrackedResponse
from streamvisor.actors.background._status import BackgroundStatus
from streamvisor.actors.background._store import RegistryStore, registry_namespace
from streamvisor.config import BackgroundSection
from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import ClientSettings, OpenAIClient, StreamEvent
from streamvisor.supervisor._bus import EventBus, Missed, Subscription
from tests._killed_child import tracked_then_sigkilled

SECTION = BackgroundSection(
    registry_path=":memory:",
    poll_interval=0.05,
    max_poll_interval=0.5,
    error_backoff_initial=0.05,
    error_backoff_max=0.5,
)
#: Long enough to act while queued; cancel or the test's end cuts it short.
PARKED = {"mock_queue_ms": "60000"}


@attrs.define
class Env:
    server: MockServer
    client: OpenAIClient
    bus: EventBus[Any]

    @asynccontextmanager
    async def poller(self, **options: Any) -> AsyncIterator[BackgroundHandle]:
        async with open_background_poller(
            client=self.client, bus=self.bus, section=SECTION, **options
        ) as handle:
            yield handle


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = MockAPIConfig(poll_after_ms=20, token_delay=0.002)
    async with (
        serve(config) as server,
        OpenAIClient.open(ClientSettings(base_url=server.url)) as client,
    ):
        yield Env(server, client, EventBus())


async def until_terminal(sub: Subscription[Any]) -> list[BackgroundStatus]:
    notes = []
    async for item in sub:
        assert not isinstance(item, Missed)
        if isinstance(item, BackgroundStatus):
            notes.append(item)
            if item.terminal:
                return notes
    raise AssertionError("subscription ended")


def changes(notes: list[BackgroundStatus]) -> list[tuple[str | None, str]]:
    return [(n.previous, n.status) for n in notes]


def text_of(response: Any) -> str:
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


class TestLifecycle:
    async def test_create_goes_queued_in_progress_completed_with_notifications(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with (
                env.poller() as bg,
                env.bus.subscribe("background.*") as background,
                env.bus.subscribe("session.s1") as session,
            ):
                record = await bg.create(
                    "hi",
                    "gpt-4o",
                    owner="s1",
                    metadata={
                        "mock_queue_ms": "150",
                        "mock_scenario": "long:20",
                        "mock_token_delay_ms": "15",
                    },
                )
                notes = await until_terminal(background)
                on_session = await until_terminal(session)
                stored = await bg.get(record.response_id)
                active = await bg.active()
        assert changes(notes) == [
            (None, "queued"),
            ("queued", "in_progress"),
            ("in_progress", "completed"),
        ]
        assert on_session == notes
        server_side = env.server.state.responses[record.response_id].response
        assert text_of(notes[-1].response) == text_of(server_side) != ""
        assert stored.status == "completed"
        assert active == []

    async def test_cancel_of_a_queued_response_cancels_it_server_side(self, env: Env) -> None:
        with trio.fail_after(10):
            async with env.poller() as bg, env.bus.subscribe("background.*") as sub:
                record = await bg.create("hi", "gpt-4o", metadata=PARKED)
                response = await bg.cancel(record.response_id)
                notes = await until_terminal(sub)
                stored = await bg.get(record.response_id)
        assert response["status"] == "cancelled"
        assert changes(notes) == [(None, "queued"), ("queued", "cancelled")]
        assert env.server.state.responses[record.response_id].status == "cancelled"
        assert stored.status == "cancelled"

    async def test_cancel_after_completion_reports_completed(self, env: Env) -> None:
        with trio.fail_after(10):
            async with env.poller() as bg, env.bus.subscribe("background.*") as sub:
                record = await bg.create("hi", "gpt-4o")
                await until_terminal(sub)
                response = await bg.cancel(record.response_id)
        assert response["status"] == "completed"
        assert text_of(response) == "You said: hi"


class TestResume:
    async def test_resuming_with_starting_after_continues_the_text_without_duplicates(
        self, env: Env
    ) -> None:
        with trio.fail_after(10):
            async with env.poller() as bg:
                record = await bg.create(
                    "go",
                    "gpt-4o",
                    metadata={"mock_scenario": "long:40", "mock_token_delay_ms": "10"},
                )
                rid = record.response_id
                first: list[str] = []
                async with bg.stream(rid) as stream:
                    async for event in stream:
                        if event.type == "response.output_text.delta":
                            first.append(event.data["delta"])
                            if len(first) == 5:
                                cursor = event.sequence_number
                                break
                second: list[str] = []
                seen: list[int] = []
                published: list[Any] = []
                async with (
                    env.bus.subscribe(f"background.{rid}") as sub,
                    bg.stream(rid, starting_after=cursor) as stream,
                ):
                    async for event in stream:
                        seen.append(event.sequence_number)
                        if event.type == "response.output_text.delta":
                            second.append(event.data["delta"])
                        if event.terminal:
                            final = event.data["response"]
                            break
                    published = sub.drain()
                    accumulated = stream.events.accumulator.result
        assert "".join(first) + "".join(second) == text_of(final)
        assert seen[0] == cursor + 1
        assert seen == list(range(cursor + 1, cursor + 1 + len(seen)))
        assert [e.sequence_number for e in published if isinstance(e, StreamEvent)] == seen
        assert accumulated is not None
        assert text_of(accumulated) == text_of(final)

    async def test_resuming_a_finished_response_after_its_last_event_ends_cleanly(
        self, env: Env
    ) -> None:
        """Nothing follows the terminal cursor: no events, no error, the final Response known."""
        with trio.fail_after(10):
            async with env.poller() as bg, env.bus.subscribe("background.*") as sub:
                record = await bg.create("hi", "gpt-4o")
                await until_terminal(sub)
                last = len(env.server.state.responses[record.response_id].events) - 1
                async with bg.stream(record.response_id, starting_after=last) as stream:
                    events = [event async for event in stream]
                    final = stream.events.accumulator.result
        assert events == []
        assert final is not None
        assert text_of(final) == "You said: hi"


class TestDurability:
    async def test_a_new_poller_on_the_same_registry_finishes_what_the_old_one_started(
        self, env: Env, tmp_path: Path
    ) -> None:
        path = str(tmp_path / "registry.sqlite3")
        with trio.fail_after(10):
            async with env.poller(registry_path=path) as first:
                record = await first.create(
                    "hi", "gpt-4o", owner="s1", metadata={"mock_queue_ms": "800"}
                )
            rid = record.response_id
            assert env.server.state.responses[rid].status == "queued"  # stopped mid-background
            async with (
                env.bus.subscribe(f"background.{rid}") as sub,
                env.poller(registry_path=path) as second,
            ):
                adopted = [a.response_id for a in await second.active()]
                notes = await until_terminal(sub)
        assert adopted == [rid]
        assert notes[-1].status == "completed"
        assert notes[-1].owner == "s1"

    async def test_a_poller_killed_with_sigkill_loses_nothing(
        self, env: Env, tmp_path: Path
    ) -> None:
        """A child process tracks a response in a file registry and is SIGKILLed mid-background;
        a fresh poller in this process adopts the response and sees it to completion."""
        path = str(tmp_path / "registry.sqlite3")
        with trio.fail_after(15):
            rid = await tracked_then_sigkilled(_CHILD, env.server.url, path)
            async with RegistryStore.open(
                path, namespace=registry_namespace(env.server.url)
            ) as store:
                left = await store.get(rid)
            assert (left.status, left.owner) == ("queued", "killed")
            async with (
                env.bus.subscribe(f"background.{rid}") as sub,
                env.poller(registry_path=path),
            ):
                notes = await until_terminal(sub)
        assert notes[-1].status == "completed"
        assert text_of(notes[-1].response) == "You said: hi"


class TestTrackingWaitsForTheCommit:
    async def test_track_stream_returns_after_the_commit_and_status_answers_meanwhile(
        self, env: Env, tmp_path: Path
    ) -> None:
        """With the registry's writer held: ``track_stream`` (what stands between a durable
        stream and its ticket) waits, the row is not in the file, and the poller still answers
        ``active()`` (what ``status()`` and ``/health`` ask) at once. Released: it returns, and
        the row is there."""
        path = tmp_path / "registry.sqlite3"
        gate = threading.Event()
        tracked: list[str] = []

        def rows() -> list[str]:
            conn = sqlite3.connect(path)
            try:
                return [r for (r,) in conn.execute("SELECT response_id FROM responses")]
            finally:
                conn.close()

        with trio.fail_after(10):
            async with env.poller(registry_path=str(path)) as handle:
                poller = handle.ref._actor
                assert isinstance(poller, BackgroundPoller)
                store = poller.shared.store

                async def track() -> None:
                    await handle.track_stream(
                        response_id="resp_t", owner="s1", model="gpt-4o", request={}, cursor=None
                    )
                    tracked.append("resp_t")

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(store._run, "held", lambda _tx: gate.wait(10))
                    await trio.sleep(0.05)
                    nursery.start_soon(track)
                    await trio.sleep(0.2)
                    with trio.fail_after(0.5):
                        for _ in range(20):
                            assert await handle.active() == []
                    assert (tracked, rows()) == ([], [])
                    gate.set()
                assert tracked == ["resp_t"]
                assert rows() == ["resp_t"]
                assert [r.response_id for r in await handle.active()] == ["resp_t"]


_CHILD = """
import sys
import trio
from streamvisor.actors.background._poller import open_background_poller
from streamvisor.config import BackgroundSection
from streamvisor.openai import ClientSettings, OpenAIClient
from streamvisor.supervisor._bus import EventBus

async def main(url, path):
    section = BackgroundSection(registry_path=path, poll_interval=0.05, max_poll_interval=0.5,
                                error_backoff_initial=0.05, error_backoff_max=0.5)
    async with OpenAIClient.open(ClientSettings(base_url=url)) as client:
        async with open_background_poller(client=client, bus=EventBus(), section=section) as bg:
            record = await bg.create("hi", "gpt-4o", owner="killed",
                                     metadata={"mock_queue_ms": "1500"})
            print("TRACKED", record.response_id, flush=True)
            await trio.sleep_forever()

trio.run(main, sys.argv[1], sys.argv[2])
"""


class TestAdopt:
    """Records a cluster takeover moved into this poller's store are polled to the end."""

    async def test_adopted_records_are_polled_to_their_end_and_a_stream_record_too(
        self, env: Env
    ) -> None:
        async with httpx.AsyncClient(base_url=env.server.url) as http:
            created = [
                (
                    await http.post(
                        "/responses",
                        json={
                            "model": "gpt-4o",
                            "input": "hi",
                            "background": True,
                            "store": True,
                            "metadata": {"mock_queue_ms": "100"},
                        },
                    )
                ).json()["id"]
                for _ in range(2)
            ]
        with trio.fail_after(10):
            async with RegistryStore.open(
                ":memory:", namespace=registry_namespace(env.server.url)
            ) as store:
                async with (
                    env.poller(open_store=lambda _ns: contextlib.nullcontext(store)) as bg,
                    env.bus.subscribe("background.*") as sub,
                ):
                    for rid, mode in zip(created, ["poll", "stream"], strict=True):
                        await store.add(
                            TrackedResponse(
                                response_id=rid,
                                status="queued",
                                model="gpt-4o",
                                created_at=1.0,
                                owner="s1",
                                mode=mode,
                            )
                        )
                    polled = await bg.adopt([*created, "resp_unknown"])
                    ends: dict[str, str] = {}
                    while len(ends) < 2:
                        note = await sub.receive()
                        if isinstance(note, BackgroundStatus) and note.terminal:
                            ends[note.response_id] = note.status
                    again = await bg.adopt(created)
                stored = [await store.get(rid) for rid in created]
        assert polled == created
        assert ends == dict.fromkeys(created, "completed")
        assert [r.status for r in stored] == ["completed", "completed"]
        assert [r.mode for r in stored] == ["poll", "poll"]
        assert again == []
