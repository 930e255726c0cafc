"""A minimal WebSocket client for tests: wsproto over a trio TCP stream."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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

from .._json_values import strict_json


class Rejected(Exception):
    """The server refused the handshake (``.status_code``, and the JSON ``.body`` if any)."""

    def __init__(self, status_code: int, body: Any = None) -> None:
        super().__init__(status_code, body)
        self.status_code = status_code
        self.body = body


class Closed(Exception):
    """The server closed the connection (``.code``, ``.reason``)."""

    def __init__(self, code: int, reason: str | None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


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

    async def _handshake(
        self, host: str, port: int, target: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        request = Request(host=f"{host}:{port}", target=target, extra_headers=headers)
        await self._stream.send_all(self._ws.send(request))
        event = await self._event()
        if isinstance(event, RejectConnection):
            data = b""
            more = event.has_body
            while more:
                chunk = await self._event()
                assert isinstance(chunk, RejectData), chunk
                data += chunk.data
                more = not chunk.body_finished
            raise Rejected(event.status_code, json.loads(data) if data else None)
        assert isinstance(event, AcceptConnection), event

    async def send_json(self, value: Any) -> None:
        await self.send_text(json.dumps(value))

    async def send_text(self, text: str) -> None:
        await self._stream.send_all(self._ws.send(TextMessage(text)))

    async def send_bytes(self, data: bytes) -> None:
        await self._stream.send_all(self._ws.send(BytesMessage(data)))

    async def receive_json(self) -> Any:
        """The next text message, parsed as strict JSON (``NaN`` and ``Infinity`` refused, as a
        browser's ``JSON.parse`` refuses them). Raises `Closed` if the server closes."""
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
                    return strict_json("".join(parts))

    async def next_answer(self) -> Any:
        """The next reply or error to a command (bus events are skipped)."""
        while True:
            message = await self.receive_json()
            if message.get("kind") in ("reply", "error"):
                return message

    async def close(self) -> None:
        await self._stream.send_all(self._ws.send(CloseConnection(code=1000)))


@asynccontextmanager
async def connect(
    host: str,
    port: int,
    target: str,
    *,
    token: str | None = None,
    origin: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[WSClient]:
    """A WebSocket to ``target``; ``token`` goes in ``Authorization: Bearer``."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        client = WSClient(stream)
        headers = list(headers or [])
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if token is not None:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        await client._handshake(host, port, target, headers)
        yield client
