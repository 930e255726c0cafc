"""The daemon end to end: the tree, the facade, and the original's usage examples."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import pytest
import trio

from streamvisor import _handlers as handlers
from streamvisor import _samples as samples
from streamvisor.actors import (
    EMBEDDED_NAMESPACE,
    BackgroundStatus,
    InvalidAgentConfig,
    RegistryStore,
    SessionHandle,
    TrackedResponse,
)
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import AlreadyStarted
from streamvisor.testing import daemon_config


class TestTheTree:
    async def test_the_root_starts_files_background_sessions_agents_in_order(
        self, daemon: Daemon
    ) -> None:
        """The children of the root, in start order, all running."""
        status = await daemon.status()
        assert [c.id for c in status.children] == ["files", "background", "sessions", "agents"]
        assert all(c.ref is not None and c.ref.alive for c in status.children)
        assert status.embedded
        assert status.base_url == daemon.mockapi.url


class TestStreamingChat:
    async def test_basic_streaming_with_a_handler(self, daemon: Daemon) -> None:
        """The original's first example: stream a chat and handle events with a callback."""
        with trio.fail_after(10):
            async with daemon.subscribe("session.s1") as events:
                session = await daemon.open_session("s1")
                assert isinstance(session, SessionHandle)
                await session.chat("gpt-4o", [{"role": "user", "content": "Hello there"}])
                tokens: list[str] = []

                def on_event(event: StreamEvent) -> handlers.Continue:
                    if event.type == "response.output_text.delta":
                        tokens.append(event.data["delta"])
                    return handlers.CONTINUE

                seen = await handlers.handle_stream_events(events, on_event, timeout=5)
        assert "".join(tokens) == "You said: Hello there"
        assert seen[-1].type == "response.completed"
        assert [e.sequence_number for e in seen] == list(range(len(seen)))


class TestBackground:
    async def test_background_create_then_poll_to_completion(self, daemon: Daemon) -> None:
        """The original's second example: create a background response and watch it finish."""
        with trio.fail_after(10):
            async with daemon.subscribe("background.*") as statuses:
                record = await daemon.background.create("What is 2 + 2?", "gpt-4o")
                final = None
                async for item in statuses:
                    assert isinstance(item, BackgroundStatus)
                    if item.response_id == record.response_id and item.terminal:
                        final = item
                        break
        assert final is not None
        assert final.status == "completed"
        polled = await daemon.background.poll(record.response_id)
        assert polled["status"] == "completed"
        assert await daemon.background.active() == []


class TestFiles:
    async def test_an_image_input_is_uploaded_and_accepted_by_responses(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """The original's third example, with the Responses `input_image` shape."""
        (tmp_path / "diagram.png").write_bytes(samples.png(4, 4))
        part = await daemon.files.image_input(tmp_path / "diagram.png")
        assert part["type"] == "input_image"
        assert part["file_id"].startswith("file-")
        daemon.files.validate_input(part)


class TestRunningActors:
    async def test_a_session_is_found_while_running_and_gone_once_closed(
        self, daemon: Daemon
    ) -> None:
        """`session(id)` never starts one; `close_session` stops the worker (False if none)."""
        assert daemon.session("s9") is None
        await daemon.open_session("s9")
        found = daemon.session("s9")
        assert found is not None
        assert found.session_id == "s9"
        assert (await daemon.status()).sessions == 1
        assert await daemon.close_session("s9") is True
        assert daemon.session("s9") is None
        assert (await daemon.status()).sessions == 0
        assert await daemon.close_session("s9") is False

    async def test_an_agent_is_found_while_running_and_gone_once_closed(
        self, daemon: Daemon
    ) -> None:
        """`agent(id)` finds a running agent; `close_agent` stops it; a second open conflicts."""
        assert daemon.agent("a1") is None
        await daemon.open_agent("a1", model="gpt-4o")
        found = daemon.agent("a1")
        assert found is not None
        with trio.fail_after(10):
            reply = await found.ask("hello agent")
        assert reply.text == "You said: hello agent"
        with pytest.raises(AlreadyStarted):
            await daemon.open_agent("a1", model="gpt-4o")
        assert await daemon.close_agent("a1") is True
        assert daemon.agent("a1") is None
        assert await daemon.close_agent("a1") is False

    async def test_a_bad_agent_definition_fails_before_anything_starts(
        self, daemon: Daemon
    ) -> None:
        """A bad model is a typed error at the call; no agent child is started."""
        with pytest.raises(InvalidAgentConfig):
            await daemon.open_agent("a2", model="")
        assert (await daemon.status()).agents == 0


class TestRuntime:
    """``[runtime]``: what the daemon sets in its process, and gives back."""

    async def test_the_gc_threshold_is_set_while_the_daemon_runs_and_restored_after(
        self, tmp_path: Path
    ) -> None:
        before = gc.get_threshold()
        async with open_daemon(daemon_config(tmp_path, runtime_gc_threshold=12_345)):
            assert gc.get_threshold() == (12_345, *before[1:])
        assert gc.get_threshold() == before

    async def test_zero_leaves_the_collector_alone(self, tmp_path: Path) -> None:
        before = gc.get_threshold()
        async with open_daemon(daemon_config(tmp_path, runtime_gc_threshold=0)):
            assert gc.get_threshold() == before


class TestEmbeddedRegistry:
    """The embedded server's records live under one namespace whatever port it got."""

    async def test_what_an_earlier_embedded_server_left_is_adopted_found_gone_and_closed(
        self, tmp_path: Path
    ) -> None:
        registry = tmp_path / "registry.sqlite3"
        async with RegistryStore.open(str(registry), namespace=EMBEDDED_NAMESPACE) as store:
            await store.add(
                TrackedResponse(
                    response_id="resp_left_by_an_earlier_run",
                    status="in_progress",
                    model="gpt-4o-mini",
                    created_at=time.time(),
                )
            )
        config = daemon_config(tmp_path, background_registry_path=registry)
        async with open_daemon(config) as daemon:
            with trio.fail_after(10):
                while True:
                    record = await daemon.background.get("resp_left_by_an_earlier_run")
                    if record.is_terminal:
                        break
                    await trio.sleep(0.02)
            assert record.status == "failed"
            assert (record.last_error or "").startswith("response_gone")
            assert (await daemon.status()).active_background == 0
