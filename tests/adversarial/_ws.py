"""A WebSocket client for the adversarial suite: wsproto over a trio TCP stream, with request
headers (the gateway's auth), raw frames (text that is not JSON, bytes that are not UTF-8), and
the body of a refused handshake (a typed error answers it once the gateway says why)."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)


@attrs.frozen
class Refused(Exception):
    """The server refused the handshake: its HTTP status and body (b"" when it sent none)."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@attrs.frozen
class Closed(Exception):
    """The server closed the socket."""

    code: int
    reason: str | None


class WSClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._events: deque[Event] = deque()

    async def _event(self) -> Event:
        while not self._events:
            data = await self._stream.receive_some(65536)
            self._ws.receive_data(data or None)
            self._events.extend(self._ws.events())
        return self._events.popleft()

    async def _handshake(self, host: str, target: str, headers: Mapping[str, str]) -> None:
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await self._stream.send_all(self._ws.send(Request(host, target, extra_headers=extra)))
        event = await self._event()
        if isinstance(event, RejectConnection):
            status, body = event.status_code, bytearray()
            more = event.has_body
            while more:
                data = await self._event()
                if not isinstance(data, RejectData):
                    break
                body.extend(data.data)
                more = not data.body_finished
            raise Refused(status, bytes(body))
        assert isinstance(event, AcceptConnection), event

    async def send_text(self, text: str) -> None:
        await self._stream.send_all(self._ws.send(TextMessage(text)))

    async def send_bytes(self, data: bytes) -> None:
        await self._stream.send_all(self._ws.send(BytesMessage(data)))

    async def send_json(self, value: Any) -> None:
        await self.send_text(json.dumps(value))

    async def receive_json(self) -> Any:
        """The next text message, parsed. Raises `Closed` if the server closes."""
        parts: list[str] = []
        while True:
            event = await self._event()
            if isinstance(event, Ping):
                await self._stream.send_all(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                raise Closed(event.code, event.reason)
            elif isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    return json.loads("".join(parts))

    async def next_answer(self) -> Any:
        """The next reply or error to a command (bus events are skipped)."""
        while True:
            message = await self.receive_json()
            if message.get("kind") in ("reply", "error"):
                return message


@asynccontextmanager
async def connect(
    host: str, port: int, target: str, headers: Mapping[str, str]
) -> AsyncIterator[WSClient]:
    """An open WebSocket to ``target``; raises `Refused` if the handshake is refused."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        client = WSClient(stream)
        await client._handshake(f"{host}:{port}", target, headers)
        yield client
