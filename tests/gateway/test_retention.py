"""A connection that waits keeps nothing of what it last sent or received.

An ``/events`` stream or a WebSocket lives as long as its client stays: its loops used to keep,
while they waited for the next bus item (or client message), the last one they handled -- a
``response.completed`` with the whole response, a command with all its messages. Each test
drives the ASGI app in memory, waits until every task is blocked without handing the loop
anything new (which would replace what it kept), and checks the object is gone.
"""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.actors import EventLog, LogRead
from streamvisor.daemon import Daemon
from streamvisor.gateway import _v1_relay, create_gateway_app
from streamvisor.gateway._app import GatewayApp
from streamvisor.gateway._http import Responder
from streamvisor.openai import StreamEvent


class Payload:
    """A bus item; weakly referenceable so a test can tell when it is gone."""


class Message(dict[str, Any]):
    """An ASGI message; a dict subclass, so weakly referenceable."""


class _Peer:
    """The server's side of one ASGI connection, in memory: what the app receives is queued
    with `give`, what it sends is kept in `sent`."""

    def __init__(self) -> None:
        self._give, self._take = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.sent: list[dict[str, Any]] = []

    def give(self, message: dict[str, Any]) -> None:
        self._give.send_nowait(message)

    async def receive(self) -> dict[str, Any]:
        return await self._take.receive()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def _scope(app: GatewayApp, kind: str, path: str, query: bytes) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {app.token}".encode()),
        ],
    }
    if kind == "http":
        scope["method"] = "GET"
    return scope


async def _gone(ref: weakref.ref[Any]) -> bool:
    await trio.testing.wait_all_tasks_blocked()
    gc.collect()
    return ref() is None


async def test_an_event_stream_does_not_keep_its_last_event_while_it_waits(
    daemon: Daemon,
) -> None:
    app = create_gateway_app(daemon, keepalive=3600)
    peer = _Peer()
    peer.give({"type": "http.request", "body": b"", "more_body": False})
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            app, _scope(app, "http", "/events", b"topic=t.x"), peer.receive, peer.send
        )
        await trio.testing.wait_all_tasks_blocked()
        item = Payload()
        gone = weakref.ref(item)
        assert daemon.bus.publish("t.x", item) == 1
        del item
        await trio.testing.wait_all_tasks_blocked()
        assert b"event: Payload" in peer.sent[-1]["body"]
        assert await _gone(gone)
        nursery.cancel_scope.cancel()


class _Node:
    """A cluster node's replay, as ``/events`` reads it: a channel of messages, each its own
    item (the real node decodes the payload)."""

    def __init__(self) -> None:
        self.give, self._take = trio.open_memory_channel[Any](math.inf)

    @asynccontextmanager
    async def replay(self, pattern: str, *, after: int | None) -> AsyncIterator[Any]:
        yield self._take

    def decode(self, message: Any) -> object:
        return message


class Replayed(Payload):
    """A message from JetStream (``seq``: its stream sequence)."""

    seq = 7


async def test_a_cluster_event_stream_does_not_keep_its_last_message_while_it_waits(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = _Node()
    monkeypatch.setattr(daemon, "node", node)
    app = create_gateway_app(daemon, keepalive=3600)
    peer = _Peer()
    peer.give({"type": "http.request", "body": b"", "more_body": False})
    async with trio.open_nursery() as nursery:
        scope = _scope(app, "http", "/events", b"topic=t.x")
        nursery.start_soon(app, scope, peer.receive, peer.send)
        await trio.testing.wait_all_tasks_blocked()
        message = Replayed()
        gone = weakref.ref(message)
        node.give.send_nowait(message)
        del message
        await trio.testing.wait_all_tasks_blocked()
        assert peer.sent[-1]["body"].startswith(b"id: 7\nevent: Replayed")
        assert await _gone(gone)
        nursery.cancel_scope.cancel()


async def _websocket(app: GatewayApp, peer: _Peer, nursery: trio.Nursery) -> None:
    """Open ``/ws?topic=t.x`` in ``nursery``; return once it is accepted and waiting."""
    peer.give({"type": "websocket.connect"})
    scope = _scope(app, "websocket", "/ws", b"topic=t.x")
    nursery.start_soon(app, scope, peer.receive, peer.send)
    await trio.testing.wait_all_tasks_blocked()
    assert peer.sent[0] == {"type": "websocket.accept"}


async def test_a_websocket_does_not_keep_its_last_event_while_it_waits(daemon: Daemon) -> None:
    app = create_gateway_app(daemon, keepalive=3600)
    peer = _Peer()
    async with trio.open_nursery() as nursery:
        await _websocket(app, peer, nursery)
        item = Payload()
        gone = weakref.ref(item)
        assert daemon.bus.publish("t.x", item) == 1
        del item
        await trio.testing.wait_all_tasks_blocked()
        assert '"event":"Payload"' in peer.sent[-1]["text"]
        assert await _gone(gone)
        nursery.cancel_scope.cancel()


async def test_a_websocket_does_not_keep_its_last_command_while_it_waits(daemon: Daemon) -> None:
    app = create_gateway_app(daemon, keepalive=3600)
    peer = _Peer()
    async with trio.open_nursery() as nursery:
        await _websocket(app, peer, nursery)
        command = Message(type="websocket.receive", text='{"op": "ping", "ref": 1}')
        gone = weakref.ref(command)
        peer.give(command)
        del command
        await trio.testing.wait_all_tasks_blocked()
        assert '"kind":"reply"' in peer.sent[-1]["text"]
        assert await _gone(gone)
        nursery.cancel_scope.cancel()


async def test_a_resumed_v1_stream_does_not_keep_what_it_read_from_the_log(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``GET /v1/responses/{id}?stream=true`` of a stream still running sends what the event
    log holds, then follows the session live: it kept the log's answer (every event so far,
    decoded again from the database) for the rest of the stream."""
    app = create_gateway_app(daemon, keepalive=3600)
    await daemon.open_session("s1")
    rid = "resp_kept"
    daemon.event_log.annotate(rid, session_id="s1", background=False)
    for seq, type_ in enumerate(("response.created", "response.output_text.delta")):
        data = {"type": type_, "sequence_number": seq, "delta": "x" * 1000}
        daemon.event_log.append(StreamEvent(type_, seq, data, rid, "s1", "responses", 1.0))
    await daemon.event_log.flush()
    reads: list[weakref.ref[LogRead]] = []
    read = type(daemon.event_log).read

    async def spy(log: EventLog, response_id: str, after: int | None) -> LogRead:
        answer = await read(log, response_id, after)
        reads.append(weakref.ref(answer))
        return answer

    async def streaming(session: Any, response_id: str) -> bool:
        return True  # the session is still streaming it (as far as this relay can tell)

    monkeypatch.setattr(type(daemon.event_log), "read", spy)
    monkeypatch.setattr(_v1_relay, "_streaming", streaming)
    peer = _Peer()
    async with trio.open_nursery() as nursery:
        out = Responder(peer.send, app.redact)
        nursery.start_soon(_v1_relay.resume_response, app, out, rid, None)
        with trio.fail_after(5):  # (the log is read in a worker thread)
            while not any(b"output_text.delta" in m.get("body", b"") for m in peer.sent):
                await trio.sleep(0.01)
        assert len(reads) == 1
        assert await _gone(reads[0])
        nursery.cancel_scope.cancel()
