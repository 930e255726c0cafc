"""``GET /ws?topic=<pattern>``: the bus over a WebSocket, plus commands from the client.

Server → client, one JSON text message each:

* ``{"kind": "event", "event": <name>, "data": {...}}`` — a bus item (as ``/events`` sends it);
* ``{"kind": "reply", "op": <op>, "ref": <the command's ref>, "result": ...}`` — a command done;
* ``{"kind": "error", "op": <op>, "ref": ..., "status": <http status>, "error": {"type",
  "message"}}`` — a command failed (the status it would have had over HTTP);
* ``{"kind": "shutdown", "reason": "daemon stopping" | "gateway stopping"}`` — the last message
  when the daemon or the gateway stops; then a close with 1001 (going away);
* ``{"kind": "end", "reason": "overflow"}`` — the bus dropped this subscriber for falling a whole
  buffer behind; then a close with 1001.

The handshake is refused with an HTTP answer carrying the same typed JSON body as the matching
``GET /events`` would (403 for a foreign ``Host``/``Origin``, 401 without the token, 400
``InvalidPattern`` for a bad topic, 503 if the bus is closed), so both transports say the same.

Client → server: ``{"op": "chat", "session": "s1", "model": ..., "messages": [...], ...}``,
``{"op": "respond", "session": ..., "model": ..., "input": ..., "durable": ...}``, ``{"op":
"stop", "session": ..., "stream_id"?: ...}``, ``{"op": "streams", "session": ...}``, ``{"op":
"wait", "session": ..., "stream_id": ..., "timeout"?: ...}``, ``{"op": "background", "model":
..., "input": ...}``, ``{"op": "cancel", "response_id": ...}``, ``{"op": "ping"}``; an optional
``"ref"`` is echoed back. A command's ``result`` is the body its HTTP route answers (``stop``:
``{"outcomes": [...]}``, ``streams``: ``{"streams": [...]}``, ``background``/``cancel``: the
background object); docs/gateway.md documents every command (a test holds it to `_OPS`).
Commands run concurrently (events keep flowing while a chat starts).
Every bad command -- not JSON, not an object, an unknown ``op``, a missing or mistyped field,
an invalid id, a message over `MAX_MESSAGE` bytes, one past `MAX_IN_FLIGHT` running commands
(429 ``TooManyCommands``) -- is answered with a typed ``error`` message; the socket stays open.
(A message over hypercorn's own frame limit, 16 MiB, closes it: 1009.)
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import structlog
import trio

from ..daemon import Daemon
from ..supervisor import BusClosed, SubscriberOverflow, Subscription
from . import _ops
from ._access import request_headers
from ._checks import check_id, check_name, check_topic, parse_json
from ._encode import bus_item
from ._errors import BadRequest, InvalidJSON, NotFound, PayloadTooLarge, TooManyCommands, problem
from ._http import Receive, Scope, Send, dumps, parse_query

if TYPE_CHECKING:
    from ._app import GatewayApp

__all__ = ["MAX_IN_FLIGHT", "MAX_MESSAGE", "serve_websocket"]

#: Largest command message (bytes of UTF-8) the socket accepts; a larger one is answered with
#: ``PayloadTooLarge`` (the same limit as a JSON body over HTTP).
MAX_MESSAGE: Final = 4 * 1024 * 1024
#: Commands one socket may have running at once; past it, ``TooManyCommands`` (429) at once:
#: one connection cannot pile up unbounded work (over HTTP each request needs a connection).
MAX_IN_FLIGHT: Final = 32

log = structlog.get_logger("streamvisor.gateway")

#: The command's JSON object minus the routing keys, to the operation.
Op = Callable[[Daemon, dict[str, Any]], Awaitable[Any]]

_ROUTING = frozenset({"op", "ref", "session"})


def _body(command: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in command.items() if k not in _ROUTING}


def _session(command: dict[str, Any]) -> str:
    return check_name(_ops.text_field(command, "session"), "session")


async def _chat(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_chat(daemon, _session(command), _body(command))


async def _respond(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_respond(daemon, _session(command), _body(command))


async def _stop(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_stop(daemon, _session(command), _body(command))


async def _streams(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.session_streams(daemon, _session(command))


async def _wait(daemon: Daemon, command: dict[str, Any]) -> Any:
    stream_id = check_id(_ops.text_field(command, "stream_id"), "stream_id")
    body = {k: v for k, v in _body(command).items() if k != "stream_id"}
    return await _ops.session_wait(daemon, _session(command), stream_id, body)


async def _background(daemon: Daemon, command: dict[str, Any]) -> Any:
    return await _ops.background_create(daemon, _body(command))


async def _cancel(daemon: Daemon, command: dict[str, Any]) -> Any:
    response_id = check_id(_ops.text_field(command, "response_id"), "response_id")
    return await _ops.background_cancel(daemon, response_id)


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
        #: Commands running now.
        self.in_flight = 0

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


def _parse_command(command: Any) -> Op:
    """The operation of a parsed command. Raises `BadRequest`."""
    if not isinstance(command, dict):
        raise BadRequest("a command must be a JSON object")
    op = command.get("op")
    handler = _OPS.get(op) if isinstance(op, str) else None
    if handler is None:
        shown = op if isinstance(op, str | int | float | None) else type(op).__name__
        raise BadRequest(f"unknown op {shown!r} (one of: {', '.join(_OPS)})", field="op")
    return handler


def _echo(value: Any) -> Any:
    """A command's ``op``/``ref`` as it may be echoed back: a short scalar, else None."""
    if isinstance(value, str):
        return value if len(value) <= 128 and value.isprintable() else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if isinstance(value, int | bool) or value is None else None


def _decode(data: str | bytes) -> Any:
    """A command message parsed. Raises `PayloadTooLarge` or `InvalidJSON`."""
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "replace"))
    if size > MAX_MESSAGE:
        raise PayloadTooLarge(MAX_MESSAGE, "a WebSocket message")
    return parse_json(data, "a command")


#: The largest command `_refuse_command` still parses to echo its ``ref``.
_SMALL_COMMAND: Final = 4096


def _routing_of_refused(data: str | bytes) -> tuple[Any, Any]:
    """The ``op``/``ref`` of a command refused as JSON (a NaN, a lone surrogate), read leniently
    so that the error still reaches the right request; (None, None) if even that fails."""
    try:
        command = json.loads(data)
    except (ValueError, RecursionError):
        return None, None
    if isinstance(command, dict):
        return _echo(command.get("op")), _echo(command.get("ref"))
    return None, None


async def _answer_error(
    app: GatewayApp, socket: _Socket, op: Any, ref: Any, exc: Exception
) -> None:
    status, body, _headers = problem(exc)
    if status == 500:
        log.warning("gateway.ws_command_failed", op=op, error=app.redact(repr(exc)))
    await socket.send_json({"kind": "error", "op": op, "ref": ref, "status": status, **body})


async def _run_command(app: GatewayApp, socket: _Socket, data: str | bytes) -> None:
    op = ref = None
    try:
        try:
            command = _decode(data)
        except InvalidJSON:
            op, ref = _routing_of_refused(data)
            raise
        if isinstance(command, dict):
            op, ref = _echo(command.get("op")), _echo(command.get("ref"))
        handler = _parse_command(command)
        result = await handler(app.daemon, command)
    except Exception as exc:
        await _answer_error(app, socket, op, ref, exc)
        return
    finally:
        socket.in_flight -= 1
    await socket.send_json({"kind": "reply", "op": op, "ref": ref, "result": result})


async def _refuse_command(app: GatewayApp, socket: _Socket, data: str | bytes) -> None:
    """Answer a command past `MAX_IN_FLIGHT` with ``TooManyCommands`` (in the receive loop: a
    client that floods the socket waits for its answers). Only a small command is read for its
    ``op``/``ref``: a flood of large ones must not cost the receive loop a parse each."""
    op = ref = None
    if len(data) <= _SMALL_COMMAND:
        op, ref = _routing_of_refused(data)
    await _answer_error(app, socket, op, ref, TooManyCommands(MAX_IN_FLIGHT))


async def _forward(app: GatewayApp, socket: _Socket, subscription: Subscription[Any]) -> None:
    """Send every bus item; when the bus closes, say so and close the socket (going away)."""
    while True:
        try:
            item = await subscription.receive()
        except trio.EndOfChannel:
            await socket.send_json({"kind": "shutdown", "reason": "daemon stopping"})
            await socket.close(1001, "daemon stopping")
            return
        except SubscriberOverflow:
            await socket.send_json({"kind": "end", "reason": "overflow"})
            await socket.close(1001, "overflow")
            return
        name, data = bus_item(item)
        await socket.send_json({"kind": "event", "event": name, "data": data})
        # Not kept while the loop waits for the next one (a quiet socket kept its last event,
        # a ``response.completed`` with the whole response, for as long as it stayed quiet).
        del item, data


async def _refuse(app: GatewayApp, scope: Scope, send: Send, exc: BaseException) -> None:
    """Refuse the handshake with the typed HTTP answer ``GET /events`` would give (where the
    server can send one; else a bare close, which clients see as 403)."""
    status, body, headers = problem(exc)
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008, "reason": body["error"]["type"]})
        return
    data = app.redact(dumps(body)).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
    await send({"type": "websocket.http.response.body", "body": data})


def _admit(app: GatewayApp, scope: Scope, pattern: str) -> Subscription[Any]:
    """The subscription of an admitted handshake. Browsers apply no same-origin rule to
    WebSockets: the gateway does, and wants the token (the page's cookie comes with its
    handshake). Raises what `Access.check` raises, `NotFound`, ``InvalidPattern``, ``BusClosed``.
    """
    app.access.check(request_headers(scope))
    if scope.get("path") != "/ws":
        raise NotFound(f"no WebSocket endpoint {scope.get('path')!r}")
    return app.daemon.subscribe(check_topic(pattern))


async def serve_websocket(app: GatewayApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket connection (the ASGI ``websocket`` scope) until either side closes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    pattern = parse_query(scope).get("topic", "**")
    try:
        subscription = _admit(app, scope, pattern)
    except Exception as exc:
        log.info("gateway.ws_refused", error=app.redact(str(exc)))
        await _refuse(app, scope, send, exc)
        return
    socket = _Socket(app, send)
    with trio.CancelScope() as cancel_scope, app.track(cancel_scope):
        try:
            await _serve_accepted(app, socket, subscription, pattern, receive, send)
        except BusClosed as exc:
            # The daemon stopped before the handshake finished: refused (503).
            await _refuse(app, scope, send, exc)
            return
    if cancel_scope.cancelled_caught:
        # The gateway is stopping: tell the client, briefly.
        with trio.move_on_after(0.5, shield=True):
            await socket.send_json({"kind": "shutdown", "reason": "gateway stopping"})
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
            data = message.get("text")
            if data is None:
                data = bytes(message.get("bytes") or b"")
            if socket.in_flight >= MAX_IN_FLIGHT:
                await _refuse_command(app, socket, data)
            else:
                socket.in_flight += 1
                nursery.start_soon(_run_command, app, socket, data)
            # Not kept while the loop waits for the next message (a command of up to
            # `MAX_MESSAGE` bytes, kept for as long as the client said nothing more).
            del message, data
        nursery.cancel_scope.cancel()
