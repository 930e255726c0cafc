"""Session commands routed to the owning node: a `RemoteSession` here, the owner's
`CommandServer` there, joined by a loopback requester instead of NATS (the bridge's own tests
cover request/reply over a real server; the failover tests cover it between processes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from streamvisor.actors import InvalidSessionRequest, SessionHandle, UnknownStream
from streamvisor.cluster._bridge_errors import NoResponders, RequestTimeout
from streamvisor.cluster._commands import (
    CommandServer,
    OwnerUnreachable,
    RemoteCommandFailed,
    RemoteSession,
    command_subject,
)
from streamvisor.mockapi import MockServer
from tests.actors._session_support import Env, collect, events_of, server_fixture, session_env

__all__ = ["server_fixture"]


class Loopback:
    """A requester that hands every payload to a command server, counting what was sent."""

    def __init__(self, server: CommandServer | None, error: Exception | None = None) -> None:
        self.server = server
        self.error = error
        self.sent: list[tuple[str, bytes, float]] = []

    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes:  # noqa: ASYNC109
        self.sent.append((subject, payload, timeout))
        if self.error is not None:
            raise self.error
        assert self.server is not None
        return await self.server.handle(payload)


@pytest.fixture
async def env(server: MockServer) -> AsyncIterator[Env]:
    with trio.fail_after(20):
        async with session_env(server.url, durable=False) as running:
            yield running


def owner_side(env: Env) -> CommandServer:
    async def local(session_id: str, start: bool) -> SessionHandle | None:
        return env.handle if session_id == env.handle.session_id else None

    return CommandServer("node-a", local)


async def test_a_stream_started_elsewhere_runs_on_the_owner_and_answers_like_a_local_one(
    env: Env,
) -> None:
    loop = Loopback(owner_side(env))
    remote = RemoteSession(loop, "node-a", "s1")
    with trio.fail_after(10):
        async with env.subscribe() as sub:
            ticket = await remote.chat("gpt-4o-mini", [{"role": "user", "content": "hi"}])
            events = events_of(await collect(sub))
            outcome = await remote.wait(ticket.stream_id)
            streams = await remote.streams()
            stopped = await remote.stop(ticket.stream_id)
    assert (ticket.session_id, ticket.api, ticket.topic) == ("s1", "chat", "session.s1")
    assert events[-1].type == "response.completed"
    assert outcome.status == "completed"
    assert outcome.response is not None
    assert outcome.response["id"] == ticket.response_id
    assert streams == []
    assert [o.stream_id for o in stopped] == [ticket.stream_id]
    assert {subject for subject, _, _ in loop.sent} == {command_subject("node-a")}


async def test_responses_too(env: Env) -> None:
    remote = RemoteSession(Loopback(owner_side(env)), "node-a", "s1")
    with trio.fail_after(10):
        ticket = await remote.respond("gpt-4o", "hi", durable=False, temperature=0.5)
        outcome = await remote.wait(ticket.stream_id)
    assert ticket.api == "responses"
    assert outcome.status == "completed"


async def test_a_bad_request_is_refused_here_and_never_sent(env: Env) -> None:
    loop = Loopback(owner_side(env))
    remote = RemoteSession(loop, "node-a", "s1")
    with pytest.raises(InvalidSessionRequest):
        await remote.chat("", [{"role": "user", "content": "hi"}])
    with pytest.raises(InvalidSessionRequest, match="durable"):
        await remote.respond("gpt-4o", "hi", durable="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stream_id"):
        await remote.wait("nope")
    assert loop.sent == []


async def test_the_owners_typed_errors_arrive_as_themselves(env: Env) -> None:
    remote = RemoteSession(Loopback(owner_side(env)), "node-a", "s1")
    with pytest.raises(UnknownStream) as info:
        await remote.wait("stream-99")
    assert info.value.stream_id == "stream-99"
    assert info.value.session_id == "s1"
    elsewhere = RemoteSession(Loopback(owner_side(env)), "node-a", "not-here")
    with pytest.raises(UnknownStream):
        await elsewhere.stop("stream-1")
    assert await elsewhere.streams() == []


async def test_other_errors_name_the_owner_and_their_type() -> None:
    async def broken(session_id: str, start: bool) -> Any:
        raise RuntimeError("disk on fire")

    remote = RemoteSession(Loopback(CommandServer("node-a", broken)), "node-a", "s1")
    with pytest.raises(RemoteCommandFailed, match="node node-a answered RuntimeError") as info:
        await remote.streams()
    assert info.value.error_type == "RuntimeError"


@pytest.mark.parametrize(
    "error", [NoResponders("sv.cmd.node-a"), RequestTimeout("sv.cmd.node-a", 1.0)]
)
async def test_an_owner_that_does_not_answer_is_unreachable(error: Exception) -> None:
    remote = RemoteSession(Loopback(None, error), "node-a", "s1")
    with pytest.raises(OwnerUnreachable, match="node-a"):
        await remote.streams()


async def test_garbage_gets_a_typed_answer_not_a_crash() -> None:
    async def nobody(session_id: str, start: bool) -> Any:
        return None

    server = CommandServer("node-a", nobody)
    for payload in (b"\xff", b"[]", b'{"op": "chat"}', b'{"op": "dance", "session": "s"}'):
        reply = await server.handle(payload)
        assert b'"error"' in reply
