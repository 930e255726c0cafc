"""The daemon's handles call by name, and an actor refuses a bad request with ``Caller.fail``.

Handles hold a `NamedRef` (``registry.ref(name)``): each call finds whoever holds the name now,
so a handle taken before a restart reaches the restarted actor. Behind the facade, a request that
slipped past it (sent to the actor's mailbox directly) is still answered with a typed error and
the actor carries on: nothing a client can send crashes an actor.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from streamvisor.actors.background._messages import Create, Poll
from streamvisor.actors.files._actor import _Delete, _Retrieve
from streamvisor.actors.sessions._values import _Start
from streamvisor.daemon import Daemon
from streamvisor.openai import InvalidId, InvalidParameter
from streamvisor.supervisor import ActorRef, NoSuchActor

NAN_BODY: dict[str, Any] = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hi"}],
    "temperature": float("nan"),
}


def live(daemon: Daemon, name: str) -> ActorRef:
    ref = daemon.registry.whereis(name)
    assert ref is not None, name
    return ref


async def restarted(daemon: Daemon, name: str) -> tuple[ActorRef, ActorRef]:
    """Kill the actor registered as ``name``; return it and its restarted successor."""
    first = live(daemon, name)
    first.kill()
    await first.wait()
    second = await daemon.registry.wait_for(name, timeout=5)
    assert second is not first
    return first, second


class TestRefusedBehindTheFacade:
    """A bad request sent straight to an actor is a typed error; the actor is not restarted."""

    async def test_the_poller_answers_a_bad_id_with_the_wire_error(self, daemon: Daemon) -> None:
        poller = live(daemon, "background")
        with trio.fail_after(10):
            for bad in ("%01", "../files", "resp_1\n"):
                with pytest.raises(InvalidId):
                    await poller.call(Poll(bad))
            body = {"model": "gpt-4o", "input": "hi", "top_p": float("inf")}
            with pytest.raises(InvalidParameter) as caught:
                await poller.call(Create(body, None))
        assert caught.value.field == "top_p"
        assert poller.alive
        assert live(daemon, "background") is poller
        assert daemon.mockapi is not None
        assert not [r for r in daemon.mockapi.requests if r.path.startswith("/v1/files")]

    async def test_the_file_actor_answers_a_bad_id_with_the_wire_error(
        self, daemon: Daemon
    ) -> None:
        files = live(daemon, "files")
        with trio.fail_after(10):
            for message in (_Delete("%01"), _Retrieve("\x00"), _Retrieve("../responses")):
                with pytest.raises(InvalidId):
                    await files.call(message)
        assert live(daemon, "files") is files

    async def test_a_session_worker_fails_the_start_of_a_body_the_wire_refuses(
        self, daemon: Daemon
    ) -> None:
        session = await daemon.open_session("net")
        worker = live(daemon, "session.net")
        with trio.fail_after(10):
            async with daemon.subscribe("session.net") as events:
                with pytest.raises(InvalidParameter) as caught:
                    await worker.call(_Start("chat", "gpt-4o", NAN_BODY, None))
                assert caught.value.field == "temperature"
                assert events.drain() == []  # nothing was published
                ticket = await session.chat("gpt-4o", [{"role": "user", "content": "again"}])
                outcome = await session.wait(ticket.stream_id)
        assert outcome.ok
        assert live(daemon, "session.net") is worker


class TestHandlesByName:
    """A handle taken before its actor restarted reaches the restarted one."""

    async def test_an_agent_handle_follows_a_restarted_agent(self, daemon: Daemon) -> None:
        handle = await daemon.open_agent("follow", model="gpt-4o")
        with trio.fail_after(20):
            _, second = await restarted(daemon, "agent.follow")
            reply = await handle.ask("after the restart")
        assert reply.text == "You said: after the restart"
        assert handle.ref is second

    async def test_a_session_handle_follows_a_restarted_worker(self, daemon: Daemon) -> None:
        handle = await daemon.open_session("follow")
        with trio.fail_after(20):
            _, second = await restarted(daemon, "session.follow")
            ticket = await handle.chat("gpt-4o", [{"role": "user", "content": "hi"}])
            assert (await handle.wait(ticket.stream_id)).ok
        assert handle.ref is second

    async def test_the_files_and_background_handles_follow_their_actors(
        self, daemon: Daemon
    ) -> None:
        with trio.fail_after(20):
            await restarted(daemon, "files")
            await restarted(daemon, "background")
            assert isinstance(await daemon.files.list(), list)
            record = await daemon.background.create("hi", "gpt-4o")
            assert (await daemon.background.get(record.response_id)).response_id == (
                record.response_id
            )

    async def test_a_closed_agent_is_no_such_actor_for_its_old_handle(self, daemon: Daemon) -> None:
        handle = await daemon.open_agent("gone", model="gpt-4o")
        assert await daemon.close_agent("gone") is True
        with trio.fail_after(5), pytest.raises(NoSuchActor):
            await handle.history()
