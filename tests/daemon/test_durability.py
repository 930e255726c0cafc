"""The daemon's lifecycle end to end: restarts from the SQLite registry (clean stop and SIGKILL),
graceful shutdown order, durable streams handed over (not cancelled) at shutdown, and an API key
that never reaches a log line.

These tests run their own `running_mockapi` *outside* the daemon, with an API key, and point the
daemon at it (``openai_api_key`` / ``openai_base_url``): the embedded server would die with the
daemon, taking the background responses with it.
"""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from streamvisor.actors import RegistryStore, registry_namespace
from streamvisor.mockapi import Fault, MockServer
from streamvisor.testing import EventRecorder, running_daemon, running_mockapi
from tests._killed_child import tickets_then_sigkilled, tracked_then_sigkilled
from tests.daemon.conftest import log_events

#: A fake key that the redactor's ``sk-``/bearer patterns would not catch: only code that never
#: logs it keeps it out of the logs.
API_KEY = "test-e2e-key-5f0c2d7a9b1e4c3d8a6f"


@pytest.fixture
async def server() -> AsyncIterator[MockServer]:
    async with running_mockapi(api_key=API_KEY) as running:
        yield running


def remote(server: MockServer, registry: Path | str = ":memory:") -> dict[str, Any]:
    """`running_daemon` overrides for a daemon that talks to ``server`` with the key."""
    return {
        "openai_api_key": API_KEY,
        "openai_base_url": server.url,
        "background_registry_path": registry,
    }


class TestRestartFromTheRegistry:
    async def test_a_daemon_restarted_on_its_registry_completes_what_the_last_one_started(
        self, server: MockServer, tmp_path: Path
    ) -> None:
        """Exit `open_daemon` while a background response is queued; a new daemon on the same
        file adopts it, polls it to completion and notifies the status."""
        registry = tmp_path / "registry.sqlite3"
        with trio.fail_after(10):
            async with running_daemon(tmp_path, **remote(server, registry)) as first:
                record = await first.background.create(
                    "hi", "gpt-4o", metadata={"mock_queue_ms": "300"}
                )
            rid = record.response_id
            assert server.state.responses[rid].status == "queued"
            async with (
                running_daemon(tmp_path, **remote(server, registry)) as second,
                EventRecorder.open(second, f"background.{rid}") as recorder,
            ):
                adopted = [r.response_id for r in await second.background.active()]
                final = await recorder.wait_status(rid)
                tracked = await second.background.get(rid)
        assert adopted == [rid]
        assert final.status == "completed"
        assert final.response is not None
        assert final.response["output"][0]["content"][0]["text"] == "You said: hi"
        assert tracked.status == "completed"

    async def test_a_daemon_killed_with_sigkill_loses_no_background_response(
        self, server: MockServer, tmp_path: Path
    ) -> None:
        """A daemon in a child process creates a background response and is SIGKILLed while it
        is queued; a fresh daemon here, on the same file, completes it."""
        registry = tmp_path / "registry.sqlite3"
        with trio.fail_after(20):
            rid = await tracked_then_sigkilled(
                _CHILD, server.url, API_KEY, str(tmp_path), str(registry)
            )
            async with RegistryStore.open(
                str(registry), namespace=registry_namespace(server.url)
            ) as store:
                left = await store.get(rid)
            assert left.status == "queued"
            async with (
                running_daemon(tmp_path, **remote(server, registry)) as fresh,
                EventRecorder.open(fresh, f"background.{rid}") as recorder,
            ):
                final = await recorder.wait_status(rid)
        assert final.status == "completed"
        assert final.response is not None
        assert final.response["output"][0]["content"][0]["text"] == "You said: killed"


class TestKillNineAtAnyInstant:
    async def test_no_ticketed_durable_stream_or_background_response_is_lost(
        self, server: MockServer, tmp_path: Path
    ) -> None:
        """Rounds of: a daemon in a child process starts 24 durable streams (3 sessions x 8)
        and a background response, printing each ticket as it gets it, and is SIGKILLed at a
        random instant after a random number of tickets. After each kill every ticketed
        response is in the registry; the next round's daemon adopts the ones in flight. At the
        end a daemon here sees every one of them to completion."""
        registry = tmp_path / "registry.sqlite3"
        seed = random.randrange(2**32)
        rng = random.Random(seed)
        ticketed: list[str] = []
        namespace = registry_namespace(server.url)
        with trio.fail_after(60):
            for round_ in range(4):
                after, delay = rng.randint(1, 20), rng.uniform(0.0, 0.05)
                before, at_kill = await tickets_then_sigkilled(
                    _STREAMS_CHILD, server.url, API_KEY, str(tmp_path), str(registry),
                    after=after, delay=delay,
                )  # fmt: skip
                ticketed += before + at_kill
                async with RegistryStore.open(registry, namespace=namespace) as store:
                    missing = [r for r in before + at_kill if await store.find(r) is None]
                assert missing == [], f"seed {seed}, round {round_}: lost {missing}"
            async with running_daemon(tmp_path, **remote(server, registry)) as fresh:
                while True:
                    records = [await fresh.background.get(r) for r in ticketed]
                    if all(record.is_terminal for record in records):
                        break
                    await trio.sleep(0.1)
        assert len(ticketed) >= 4
        assert {record.status for record in records} == {"completed"}, f"seed {seed}"
        assert {server.state.responses[r].status for r in ticketed} == {"completed"}


_STREAMS_CHILD = """
import sys
import trio
from streamvisor.testing import running_daemon

async def main(url, key, root, registry):
    paced = {"mock_scenario": "long:30", "mock_token_delay_ms": "20"}
    async with running_daemon(root, openai_api_key=key, openai_base_url=url,
                              background_registry_path=registry) as daemon:

        async def stream(session):
            ticket = await session.respond("gpt-4o", "Count", metadata=paced)
            print("TICKET", ticket.response_id, flush=True)

        async def background():
            record = await daemon.background.create("bg", "gpt-4o",
                                                    metadata={"mock_queue_ms": "200"})
            print("TICKET", record.response_id, flush=True)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(background)
            for i in range(3):
                session = await daemon.open_session(f"s{i}")
                for _ in range(8):
                    nursery.start_soon(stream, session)
        await trio.sleep_forever()

trio.run(main, *sys.argv[1:])
"""


_CHILD = """
import sys
import trio
from streamvisor.testing import running_daemon

async def main(url, key, root, registry):
    async with running_daemon(root, openai_api_key=key, openai_base_url=url,
                              background_registry_path=registry) as daemon:
        record = await daemon.background.create("killed", "gpt-4o",
                                                metadata={"mock_queue_ms": "1500"})
        print("TRACKED", record.response_id, flush=True)
        await trio.sleep_forever()

trio.run(main, *sys.argv[1:])
"""


class TestGracefulShutdown:
    async def test_the_tree_stops_agents_then_sessions_then_background_then_files(
        self, logs: io.StringIO, tmp_path: Path
    ) -> None:
        """The root stops its children in reverse start order (from the logs)."""
        with trio.fail_after(10):
            async with running_daemon(tmp_path) as daemon:
                await daemon.open_session("s1")
                await daemon.open_agent("a1", model="gpt-4o")
        stopped = [
            e["child"]
            for e in log_events(logs)
            if e["event"] == "child_shutdown" and e.get("supervisor") == "root"
        ]
        assert stopped == ["agents", "sessions", "background", "files"]
        events = [e["event"] for e in log_events(logs)]
        assert events.index("daemon_stopping") < events.index("supervisor_stopped")

    async def test_a_durable_stream_in_flight_at_shutdown_is_handed_to_polling_not_cancelled(
        self, server: MockServer, tmp_path: Path
    ) -> None:
        """The server sees no cancel; the response keeps running; the registry keeps it active
        for polling, and the next daemon sees it to completion, owner and all."""
        registry = tmp_path / "registry.sqlite3"
        paced = {"mock_scenario": "long:30", "mock_token_delay_ms": "40"}
        with trio.fail_after(15):
            async with (
                running_daemon(tmp_path, **remote(server, registry)) as daemon,
                EventRecorder.open(daemon, "session.s1") as recorder,
            ):
                session = await daemon.open_session("s1")
                ticket = await session.respond("gpt-4o", "Count", metadata=paced)
                await recorder.wait_for(lambda items: len(items) >= 8)
            rid = ticket.response_id
            assert rid is not None
            assert not any(r.path.endswith("/cancel") for r in server.requests)
            assert server.state.responses[rid].status == "in_progress"
            async with RegistryStore.open(
                str(registry), namespace=registry_namespace(server.url)
            ) as store:
                left = await store.get(rid)
            assert (left.status, left.owner) == ("in_progress", "s1")
            async with (
                running_daemon(tmp_path, **remote(server, registry)) as again,
                EventRecorder.open(again, f"background.{rid}") as statuses,
            ):
                final = await statuses.wait_status(rid)
        assert final.status == "completed"
        assert final.owner == "s1"
        assert not any(r.path.endswith("/cancel") for r in server.requests)


class TestSecrets:
    async def test_the_api_key_never_reaches_a_log_line(
        self, logs: io.StringIO, server: MockServer, tmp_path: Path
    ) -> None:
        """Debug logging of a whole working day in miniature — streams, background polling, an
        upload, retried 429s, a dropped connection, a crash — without the key in any line
        (the redactor is given no secret here: the code itself must not log it)."""
        (tmp_path / "notes.txt").write_text("notes\n")
        server.inject(Fault.status(429, retry_after=0.01), method="POST", times=2)
        server.inject(Fault.drop_after(2500), method="POST", path="/v1/responses")
        with trio.fail_after(10):
            async with (
                running_daemon(tmp_path, **remote(server)) as daemon,
                EventRecorder.open(daemon, "**") as recorder,
            ):
                session = await daemon.open_session("s1")
                ticket = await session.respond(
                    "gpt-4o", "Count", metadata={"mock_scenario": "long:20"}
                )
                await recorder.wait_terminal(ticket.response_id)
                record = await daemon.background.create("hi", "gpt-4o")
                await recorder.wait_status(record.response_id)
                await daemon.files.upload(tmp_path / "notes.txt")
                session.ref.kill()
                await daemon.open_session("s1")
        text = logs.getvalue()
        assert API_KEY not in text
        events = {e["event"] for e in log_events(logs)}
        assert {"daemon_started", "child_shutdown", "actor_exited"} <= events
        assert any(e.get("logger") == "httpx" for e in log_events(logs))  # libraries' lines too
        assert len(text.splitlines()) > 30
        assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in server.requests)
