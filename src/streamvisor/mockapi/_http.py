"""Tiny ASGI plumbing: the parsed request, and a responder that applies byte-level faults.

No framework: the app reads `scope`/`receive` into a `Request`, and handlers answer through a
`Responder` (JSON, raw bytes, or chunked streams). A drop fault makes the responder stop mid-body
and the app return without finishing the message, which makes hypercorn close the connection
abruptly: the client sees an incomplete chunked body (httpx: `RemoteProtocolError`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import trio

from .._asgi import (
    BodyTooLarge,
    Receive,
    Scope,
    Send,
    encode_headers,
    header_map,
    parse_query,
    read_body,
)
from ._faults import Fault, first
from ._wire import SERVER_ERROR, ApiProblem, dumps

__all__ = [
    "BodyTooLarge",
    "ConnectionDropped",
    "Receive",
    "Request",
    "Responder",
    "SSEWriter",
    "Scope",
    "Send",
    "StopStream",
    "parse_scope",
    "read_body",
]


class ConnectionDropped(Exception):
    """A drop fault fired: the app must return without finishing the response."""


class StopStream(Exception):
    """The stream ends early (an injected `error` event was sent): finish the body cleanly."""


@attrs.frozen
class Request:
    """What one HTTP request carried."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON. Raises `ApiProblem` (400) if it is not valid JSON."""
        if not self.body:
            raise ApiProblem(400, "We could not parse the JSON body of your request.")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiProblem(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you"
                " aren't using your HTTP library correctly. The OpenAI API expects a JSON payload,"
                " but what was sent was not valid JSON.",
            ) from None

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object. Raises `ApiProblem` (400) otherwise."""
        value = self.json()
        if not isinstance(value, dict):
            raise ApiProblem(400, "The request body must be a JSON object.")
        return value


def parse_scope(scope: Scope, body: bytes) -> Request:
    return Request(
        method=str(scope["method"]).upper(),
        path=str(scope["path"]),
        query=parse_query(scope),
        headers=header_map(scope),
        body=body,
    )


class Responder:
    """Sends one HTTP response, applying drop and mid-body stall faults to the body bytes."""

    def __init__(self, send: Send, faults: Sequence[Fault], headers: Mapping[str, str]) -> None:
        self._send = send
        self._base_headers = dict(headers)
        self._drop = first(faults, "drop")
        stall = first(faults, "stall")
        self._stall = stall if stall is not None and stall.after_bytes is not None else None
        self.faults = tuple(faults)
        self._created = trio.current_time()
        self.sent_bytes = 0
        self.started = False
        self.finished = False
        self.dropped = False

    async def start(self, status: int, headers: Mapping[str, str] | None = None) -> None:
        elapsed_ms = round((trio.current_time() - self._created) * 1000)
        merged = {
            **self._base_headers,
            "openai-processing-ms": str(elapsed_ms),
            **(headers or {}),
        }
        raw = encode_headers(merged)
        await self._send({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def write(self, data: bytes) -> None:
        """Send body bytes. Raises `ConnectionDropped` when a drop fault's byte count is hit."""
        if self._stall is not None:
            assert self._stall.after_bytes is not None
            assert self._stall.seconds is not None
            split = self._stall.after_bytes - self.sent_bytes
            if 0 <= split < len(data) or (split == 0 and not data):
                stall, self._stall = self._stall, None
                await self.write(data[:split])
                await trio.sleep(stall.seconds or 0.0)
                data = data[split:]
        if self._drop is not None:
            assert self._drop.after_bytes is not None
            room = self._drop.after_bytes - self.sent_bytes
            if room < len(data) or room == 0:
                if room > 0:
                    await self._raw(data[:room])
                self.dropped = True
                raise ConnectionDropped(self._drop.after_bytes)
        await self._raw(data)

    async def _raw(self, data: bytes) -> None:
        if not data:
            return
        self.sent_bytes += len(data)
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self) -> None:
        if not self.finished:
            self.finished = True
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send a complete JSON response (with `content-length`)."""
        await self.bytes(status, dumps(value).encode(), "application/json", headers)

    async def bytes(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a complete response body with `content-length`."""
        await self.start(
            status,
            {"content-type": content_type, "content-length": str(len(data)), **(headers or {})},
        )
        await self.write(data)
        await self.finish()


class SSEWriter:
    """Writes server-sent events in the Chat (`data:` only) or Responses (`event:`+`data:`)
    framing, applying frame-level faults: malformed frames and early `error` events."""

    def __init__(self, responder: Responder, framing: str) -> None:
        self._responder = responder
        self._framing = framing
        self._malformed = first(responder.faults, "malformed")
        self._error = first(responder.faults, "error_event")
        self.frames = 0

    async def open(self, headers: Mapping[str, str] | None = None) -> None:
        await self._responder.start(
            200, {"content-type": "text/event-stream; charset=utf-8", **(headers or {})}
        )

    async def send(self, payload: Mapping[str, Any]) -> None:
        """Send one event. Raises `StopStream` after an injected `error` event."""
        if self._malformed is not None and self._malformed.after_events == self.frames:
            self._malformed = None
            await self._frame_text(self._bad_frame(payload))
        if self._error is not None and self._error.after_events == self.frames:
            error, self._error = self._error, None
            await self._frame_text(self._error_frame(payload, nested=error.nested))
            raise StopStream
        await self._frame_text(self._format(payload))
        self.frames += 1

    async def send_error(self, *, nested: bool = False, sequence_number: int | None = None) -> None:
        """Send an `error` event (the stream's own failure, not an injected one)."""
        payload: dict[str, Any] = {"type": "error"}
        if sequence_number is not None:
            payload["sequence_number"] = sequence_number
        await self._frame_text(self._error_frame(payload, nested=nested))

    async def raw(self, data: bytes) -> None:
        """Send bytes as they are (replays)."""
        await self._responder.write(data)

    async def done(self) -> None:
        """The Chat Completions terminator, `data: [DONE]`."""
        await self._frame_text("data: [DONE]\n\n")

    def _format(self, payload: Mapping[str, Any]) -> str:
        if self._framing == "chat":
            return f"data: {dumps(payload)}\n\n"
        return f"event: {payload['type']}\ndata: {dumps(payload)}\n\n"

    def _bad_frame(self, payload: Mapping[str, Any]) -> str:
        broken = dumps(payload)[: max(8, len(dumps(payload)) // 2)]
        if self._framing == "chat":
            return f"data: {broken}\n\n"
        return f"event: {payload['type']}\ndata: {broken}\n\n"

    def _error_frame(self, payload: Mapping[str, Any], *, nested: bool) -> str:
        message = SERVER_ERROR
        if self._framing == "chat":
            body = {
                "error": {"message": message, "type": "server_error", "param": None, "code": None}
            }
            return f"data: {dumps(body)}\n\n"
        seq = payload.get("sequence_number", self.frames)
        event: dict[str, Any]
        if nested:
            event = {
                "type": "error",
                "error": {
                    "type": "server_error",
                    "code": "server_error",
                    "message": message,
                    "param": None,
                },
                "sequence_number": seq,
            }
        else:
            event = {
                "type": "error",
                "code": "server_error",
                "message": message,
                "param": None,
                "sequence_number": seq,
            }
        return f"event: error\ndata: {dumps(event)}\n\n"

    async def _frame_text(self, text: str) -> None:
        await self._responder.write(text.encode())
