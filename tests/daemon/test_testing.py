"""`streamvisor.testing`'s daemon helpers: what users embedding the daemon get for their tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from streamvisor.actors import BackgroundStatus
from streamvisor.config import ConfigError
from streamvisor.daemon import Daemon
from streamvisor.mockapi import MockServer
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import EventBus, Missed, Overflow, SubscriberOverflow
from streamvisor.testing import (
    FAST_MOCKAPI,
    EventRecorder,
    daemon_config,
    daemon_fixture,
    mockapi_fixture,
    running_daemon,
    running_mockapi,
)

#: Fixtures made by the factories, exactly as a user's conftest would.
queued_server = mockapi_fixture(queue_delay=0.05)
small_daemon = daemon_fixture(bus_subscriber_buffer=8)


def delta(rid: str, n: int, text: str) -> StreamEvent:
    return StreamEvent("response.output_text.delta", n, {"delta": text}, response_id=rid)


def done(rid: str, n: int) -> StreamEvent:
    return StreamEvent("response.completed", n, {"response": {"id": rid}}, response_id=rid)


class TestDaemonConfig:
    def test_defaults_are_an_in_memory_registry_the_root_and_the_embedded_server(
        self, tmp_path: Path
    ) -> None:
        """No file, no environment: an in-memory registry, the given root, fast polling, no key."""
        config = daemon_config(tmp_path)
        assert config.background.registry_path == ":memory:"
        assert config.files.roots == (str(tmp_path),)
        assert config.use_embedded_server
        assert config.background.poll_interval <= 0.05

    def test_section_key_overrides_take_typed_values_and_paths(self, tmp_path: Path) -> None:
        """``<section>_<key>`` overrides set typed values; paths become strings, lists tuples."""
        config = daemon_config(
            tmp_path,
            background_registry_path=tmp_path / "r.sqlite3",
            bus_overflow="disconnect",
            files_roots=[tmp_path / "a", tmp_path / "b"],
            openai_api_key="test-key-123456789",
        )
        assert config.background.registry_path == str(tmp_path / "r.sqlite3")
        assert config.bus.overflow == "disconnect"
        assert config.files.roots == (str(tmp_path / "a"), str(tmp_path / "b"))
        assert not config.use_embedded_server

    def test_an_unknown_setting_is_a_ConfigError_naming_it(self, tmp_path: Path) -> None:
        """A misspelt setting fails loudly rather than being ignored."""
        with pytest.raises(ConfigError, match="background_poll_intervall"):
            daemon_config(tmp_path, background_poll_intervall=1.0)

    def test_a_bad_value_is_the_sections_ConfigError(self, tmp_path: Path) -> None:
        """Values are validated by the sections themselves, with the dotted key."""
        with pytest.raises(ConfigError) as caught:
            daemon_config(tmp_path, background_poll_interval=-1)
        assert caught.value.key == "background.poll_interval"


class TestRunningMockapi:
    async def test_it_serves_on_loopback_with_the_fast_defaults(self) -> None:
        """A plain HTTP client gets answers; no token pacing, a 20 ms poll hint."""
        with trio.fail_after(5):
            async with running_mockapi() as server, httpx.AsyncClient() as client:
                response = await client.post(
                    f"{server.url}/responses", json={"model": "gpt-4o", "input": "ping"}
                )
        assert response.json()["output"][0]["content"][0]["text"] == "You said: ping"
        assert server.url.startswith("http://127.0.0.1:")
        assert (server.config.token_delay, server.config.poll_after_ms) == (
            FAST_MOCKAPI["token_delay"],
            FAST_MOCKAPI["poll_after_ms"],
        )

    async def test_options_override_the_defaults(self) -> None:
        """Any `MockAPIConfig` field can be given."""
        async with running_mockapi(api_key="test-key-123456789", poll_after_ms=5) as server:
            assert (server.config.api_key, server.config.poll_after_ms) == (
                "test-key-123456789",
                5,
            )

    async def test_the_fixture_factory_makes_a_running_server_fixture(
        self, queued_server: MockServer
    ) -> None:
        """``mockapi_fixture(queue_delay=...)`` bound in a module is a working fixture."""
        assert queued_server.config.queue_delay == 0.05
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{queued_server.url}/responses",
                json={"model": "gpt-4o", "input": "hi", "background": True, "store": True},
            )
        assert response.json()["status"] == "queued"


class TestRunningDaemon:
    async def test_it_runs_the_whole_tree_on_its_embedded_server(self, tmp_path: Path) -> None:
        """With no key the daemon serves and uses its own fast embedded server."""
        with trio.fail_after(5):
            async with running_daemon(tmp_path) as daemon:
                status = await daemon.status()
        assert status.embedded
        assert daemon.mockapi is not None
        assert status.base_url == daemon.mockapi.url
        assert daemon.mockapi.config.poll_after_ms == FAST_MOCKAPI["poll_after_ms"]

    async def test_with_an_api_key_it_talks_to_the_given_server_instead(
        self, tmp_path: Path
    ) -> None:
        """``openai_api_key``/``openai_base_url`` point the daemon at a server of the test."""
        with trio.fail_after(5):
            async with (
                running_mockapi(api_key="test-key-123456789") as server,
                running_daemon(
                    tmp_path, openai_api_key="test-key-123456789", openai_base_url=server.url
                ) as daemon,
            ):
                record = await daemon.background.create("hi", "gpt-4o")
        assert daemon.mockapi is None
        assert record.response_id in server.state.responses

    async def test_the_fixture_factory_applies_its_overrides(self, small_daemon: Daemon) -> None:
        """``daemon_fixture(...)`` bound in a module runs a daemon with those settings."""
        assert small_daemon.config.bus.subscriber_buffer == 8
        assert small_daemon.mockapi is not None


class TestEventRecorder:
    async def test_it_records_in_order_and_wait_for_returns_once_the_predicate_holds(
        self, nursery: trio.Nursery
    ) -> None:
        """Items arrive in publish order; ``wait_for`` returns them once the condition holds."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "session.*") as recorder:

            async def publish() -> None:
                for n, word in enumerate(["a", "b", "c"]):
                    await trio.lowlevel.checkpoint()
                    bus.publish("session.s1", delta("r1", n, word))

            nursery.start_soon(publish)
            items = await recorder.wait_for(lambda seen: len(seen) == 3)
        assert [e.data["delta"] for e in items] == ["a", "b", "c"]
        assert recorder.sequence_numbers() == [0, 1, 2]

    async def test_texts_join_the_deltas_per_response_and_text_joins_one_or_all(self) -> None:
        """Interleaved responses are told apart by response id."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**") as recorder:
            for item in [
                delta("r1", 0, "Hel"),
                delta("r2", 0, "Good"),
                delta("r1", 1, "lo"),
                delta("r2", 1, "bye"),
            ]:
                bus.publish("session.s1", item)
        assert recorder.texts() == {"r1": "Hello", "r2": "Goodbye"}
        assert recorder.text("r2") == "Goodbye"
        assert recorder.text() == "HelGoodlobye"

    async def test_wait_terminal_and_wait_status_return_the_matching_item(self) -> None:
        """The waits pick the item of the response asked for, not just any."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**") as recorder:
            bus.publish("session.s1", done("r1", 5))
            bus.publish("session.s1", done("r2", 9))
            status = BackgroundStatus("r2", "completed", "in_progress", None, 0.0)
            bus.publish("background.r2", status)
            assert (await recorder.wait_terminal("r2")).sequence_number == 9
            assert await recorder.wait_status("r2") == status
        assert recorder.statuses() == [status]
        assert [e.response_id for e in recorder.events("response.completed")] == ["r1", "r2"]

    async def test_wait_for_raises_TooSlowError_rather_than_hang(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """A condition that never holds fails the test after ``timeout``."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**") as recorder:
            with pytest.raises(trio.TooSlowError):
                await recorder.wait_terminal(timeout=3)
        assert trio.current_time() == pytest.approx(3)

    async def test_a_recorder_that_fell_a_buffer_behind_records_a_Missed_notice(self) -> None:
        """With a small buffer the oldest items go and a `Missed(n)` takes their place."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**", buffer=2) as recorder:
            for n in range(5):
                bus.publish("session.s1", delta("r1", n, str(n)))
        assert recorder.missed() == [Missed(3, topic="session.s1")]
        assert recorder.text() == "34"

    async def test_a_disconnected_recorder_raises_SubscriberOverflow_from_wait_for(self) -> None:
        """A DISCONNECT recorder keeps what it buffered and raises on the next wait."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**", buffer=2, overflow=Overflow.DISCONNECT) as rec:
            for n in range(3):
                bus.publish("session.s1", delta("r1", n, str(n)))
            with pytest.raises(SubscriberOverflow):
                await rec.wait_terminal()
        assert rec.text() == "01"

    async def test_a_closed_bus_ends_the_wait_with_EndOfChannel(self) -> None:
        """A daemon that stopped ends the wait at once instead of at the timeout."""
        bus: EventBus[Any] = EventBus()
        async with EventRecorder.open(bus, "**") as recorder:
            bus.close()
            with pytest.raises(trio.EndOfChannel):
                await recorder.wait_terminal()

    async def test_on_a_daemon_it_sees_a_whole_session_stream(self, tmp_path: Path) -> None:
        """Opened on a daemon, it records a session stream whole, gapless."""
        with trio.fail_after(5):
            async with (
                running_daemon(tmp_path) as daemon,
                EventRecorder.open(daemon, "session.s1") as recorder,
            ):
                session = await daemon.open_session("s1")
                ticket = await session.respond("gpt-4o", "Hello")
                final = await recorder.wait_terminal(ticket.response_id)
        assert final.type == "response.completed"
        assert recorder.text() == "You said: Hello"
        assert recorder.sequence_numbers() == list(range(final.sequence_number + 1))
