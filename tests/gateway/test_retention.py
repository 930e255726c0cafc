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

from streamvisor.daemon import Daemon
from streamvisor.gateway import create_gateway_app
from streamvisor.gateway._app import GatewayApp


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
