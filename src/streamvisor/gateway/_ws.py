"""``GET /ws?topic=<pattern>``: the bus over a WebSocket, plus commands from the client.

Server → client, one JSON text message each:

* ``{"kind": "event", "event": <name>, "data": {...}}`` — a bus item (as ``/events`` sends it);
* ``{"kind": "reply", "op": <op>, "ref": <the command's ref>, "result": ...}`` — a command done;
* ``{"kind": "error", "op": <op>, "ref": ..., "status": <http status>, "error": {"type",
  "message"}}`` — a command failed (the status it would have had over HTTP);
* ``{"kind": "end", "reason": ...}`` — the bus closed (the daemon is stopping); then close 1001.

Client → server: ``{"op": "chat", "session": "s1", "model": ..., "messages": [...], ...}``,
``{"op": "respond", "session": ..., "model": ..., "input": ..., "durable": ...}``, ``{"op":
"stop", "session": ..., "stream_id"?: ...}``, ``{"op": "streams", "session": ...}``, ``{"op":
"wait", "session": ..., "stream_id": ..., "timeout"?: ...}``, ``{"op": "background", "model":
..., "input": ...}``, ``{"op": "cancel", "response_id": ...}``, ``{"op": "ping"}``; an optional
``"ref"`` is echoed back. Commands run concurrently (events keep flowing while a chat starts).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
import trio

from ..daemon import Daemon
from ..supervisor import BusClosed, SubscriberOverflow, Subscription
from . import _ops
from ._encode import bus_item
from ._errors import BadRequest, problem
from ._http import Receive, Scope, Send, check_caller, dumps, parse_query

if TYPE_CHECKING:
    from ._app import GatewayApp

__all__ = ["serve_websocket"]

log = structlog.get_logger("streamvisor.gateway")

#: The command's JSON object minus the routing keys, to the operation.
Op = Callable[[Daemon, dict[str, Any]], Awaitable[Any]]

_ROUTING = frozenset({"op", "ref", "session"})


def _body(command: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in command.items() if k not in _ROUTING}


def _session(command: dict[str, Any]) -> str:
    return _ops.text_field(command, "session")


async def _chat(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_chat(daemon, _session(command), _body(command))


async def _respond(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_respond(daemon, _session(command), _body(command))


async def _stop(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_stop(daemon, _session(command), _body(command))


async def _streams(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_streams(daemon, _session(command))


async def _wait(daemon: Daemon, command: dict[str, Any]) -> Any:
    stream_id = _ops.text_field(command, "stream_id")
    body = {k: v for k, v in _body(command).items() if k != "stream_id"}
    return await _ops.session_wait(daemon, _session(command), stream_id, body)


async def _background(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.background_create(daemon, _body(command))


async def _cancel(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.background_cancel(daemon, _ops.text_field(command, "response_id"))


async def _ping(daemon: Daemon, command: dict[str, Any]) -> Any:
    return "pong"


_OPS: dict[str, Op] = {
    "chat": _chat,
    "respond": _respond,
    "stop": _stop,
    "streams": _streams,
    "wait": _wait,
    "background": _background,
    "cancel": _cancel,
    "ping": _ping,
}


class _Socket:
    """One accepted WebSocket: serialised sends, redacted text. Once a send fails (the client
    is gone; its disconnect notice is on its way to the receive loop) the rest are dropped."""

    def __init__(self, app: GatewayApp, send: Send) -> None:
        self._app = app
        self._send = send
        self._lock = trio.Lock()
        self.gone = False

    async def _message(self, message: dict[str, Any]) -> None:
        async with self._lock:
            if self.gone:
                return
            try:
                await self._send(message)
            except Exception as exc:
                self.gone = True
                log.debug("gateway.ws_send_failed", error=repr(exc))

    async def send_json(self, value: Any) -> None:
        text = self._app.redact(dumps(value))
        await self._message({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str = "") -> None:
        await self._message({"type": "websocket.close", "code": code, "reason": reason})
        self.gone = True


def _parse_command(text: str) -> tuple[dict[str, Any], Op]:
    """The command's JSON object and its operation. Raises `BadRequest`."""
    try:
        command = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"a command must be a JSON object: {exc}") from None
    if not isinstance(command, dict):
        raise BadRequest("a command must be a JSON object")
    op = command.get("op")
    handler = _OPS.get(op) if isinstance(op, str) else None
    if handler is None:
        raise BadRequest(f"unknown op {op!r} (one of: {', '.join(_OPS)})", field="op")
    return command, handler


def _peek(text: str) -> tuple[Any, Any]:
    """The ``op`` and ``ref`` of a command, as far as it can be read."""
    try:
        command = json.loads(text)
    except json.JSONDecodeError:
        return None, None
    if not isinstance(command, dict):
        return None, None
    return command.get("op"), command.get("ref")


async def _run_command(app: GatewayApp, socket: _Socket, text: str) -> None:
    op, ref = _peek(text)
    try:
        command, handler = _parse_command(text)
        result = await handler(app.daemon, command)
    except Exception as exc:
        status, body, _headers = problem(exc)
        if status == 500:
            log.warning("gateway.ws_command_failed", op=op, error=app.redact(repr(exc)))
        await socket.send_json({"kind": "error", "op": op, "ref": ref, "status": status, **body})
        return
    await socket.send_json({"kind": "reply", "op": op, "ref": ref, "result": result})


async def _forward(app: GatewayApp, socket: _Socket, subscription: Subscription[Any]) -> None:
    """Send every bus item; when the bus closes, say so and close the socket (going away)."""
    while True:
        try:
            item = await subscription.receive()
        except (trio.EndOfChannel, SubscriberOverflow) as exc:
            reason = "daemon stopping" if isinstance(exc, trio.EndOfChannel) else "overflow"
            await socket.send_json({"kind": "end", "reason": reason})
            await socket.close(1001, reason)
            return
        name, data = bus_item(item)
        await socket.send_json({"kind": "event", "event": name, "data": data})


async def serve_websocket(app: GatewayApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket connection (the ASGI ``websocket`` scope) until either side closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if scope.get("path") != "/ws":
        await send({"type": "websocket.close", "code": 1008, "reason": "no such endpoint"})
        return
    pattern = parse_query(scope).get("topic", "**")
    try:
        # Browsers apply no same-origin rule to WebSockets: the gateway does.
        check_caller(scope, app.allowed_hosts, acts=True)
        subscription = app.daemon.subscribe(pattern)
    except ValueError as exc:
        # Refused before the handshake: the client sees HTTP 403.
        log.info("gateway.ws_refused", topic=pattern, error=str(exc))
        await send({"type": "websocket.close", "code": 1008, "reason": "invalid topic"})
        return
    except PermissionError as exc:
        log.warning("gateway.ws_refused", error=str(exc))
        await send({"type": "websocket.close", "code": 1008, "reason": "refused"})
        return
    socket = _Socket(app, send)
    with trio.CancelScope() as cancel_scope, app.track(cancel_scope):
        try:
            await _serve_accepted(app, socket, subscription, pattern, receive, send)
        except BusClosed:
            # The daemon stopped before the handshake finished: refused (HTTP 403).
            await send({"type": "websocket.close", "code": 1011, "reason": "daemon stopped"})
            return
    if cancel_scope.cancelled_caught:
        # The gateway is stopping: tell the client, briefly.
        with trio.move_on_after(0.5, shield=True):
            await socket.close(1001, "gateway stopping")


async def _serve_accepted(
    app: GatewayApp,
    socket: _Socket,
    subscription: Subscription[Any],
    pattern: str,
    receive: Receive,
    send: Send,
) -> None:
    """Subscribe, accept, then forward events and run commands until the client leaves (or
    the bus closes). Raises ``BusClosed`` (before accepting) if the bus is closed."""
    async with subscription, trio.open_nursery() as nursery:
        await send({"type": "websocket.accept"})
        await socket.send_json({"kind": "subscribed", "topic": pattern})

        async def forward_then_stop() -> None:
            await _forward(app, socket, subscription)
            nursery.cancel_scope.cancel()

        nursery.start_soon(forward_then_stop)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            if message["type"] != "websocket.receive":
                continue
            text = message.get("text")
            if text is None:
                text = bytes(message.get("bytes") or b"").decode("utf-8", "replace")
            nursery.start_soon(_run_command, app, socket, text)
        nursery.cancel_scope.cancel()
