"""The ASGI application: routing, error answers, the SSE event stream, files and the page.

Every HTTP request runs in its own cancel scope, watched for the client's disconnect: a client
that goes away cancels its request (a ``wait``, an ``ask``, an ``/events`` stream), which releases
what the request held (its bus subscription). `GatewayApp.close` cancels them all (shutdown).
"""

from __future__ import annotations

import contextlib
import importlib.resources
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Final

import structlog
import trio

from ..daemon import Daemon
from ..supervisor import SubscriberOverflow
from . import _ops
from ._encode import bus_item, sse_frame
from ._errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Redactor,
    problem,
)
from ._http import (
    ClientGone,
    Receive,
    Request,
    Responder,
    Scope,
    Send,
    check_caller,
    dumps,
    parse_form,
    read_body,
    watch_disconnect,
)
from ._ws import serve_websocket

__all__ = ["DEFAULT_KEEPALIVE", "GatewayApp", "create_gateway_app"]

log = structlog.get_logger("streamvisor.gateway")

#: Seconds between SSE keepalive comments (and WebSocket pings' worth of silence).
DEFAULT_KEEPALIVE: Final = 15.0
#: Largest JSON body a route accepts.
MAX_JSON: Final = 4 * 1024 * 1024
#: Largest upload (the whole multipart body) ``POST /files`` accepts by default.
MAX_UPLOAD_BYTES: Final = 64 * 1024 * 1024

Handler = Callable[["GatewayApp", Request, Responder], Awaitable[None]]

_SSE_HEADERS: Final = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
}


def _page() -> bytes:
    return importlib.resources.files(__package__).joinpath("_page.html").read_bytes()


# ------------------------------------------------------------------------------------ handlers


async def _index(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.bytes(200, app.page, "text/html; charset=utf-8")


async def _health(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.health(app.daemon))


async def _chat(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.session_chat(app.daemon, request.params["session"], body))


async def _respond(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.session_respond(app.daemon, request.params["session"], body))


async def _stop(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object(empty_ok=True)
    outcomes = await _ops.session_stop(app.daemon, request.params["session"], body)
    await out.json(200, {"outcomes": outcomes})


async def _streams(app: GatewayApp, request: Request, out: Responder) -> None:
    streams = await _ops.session_streams(app.daemon, request.params["session"])
    await out.json(200, {"streams": streams})


async def _wait(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object(empty_ok=True)
    p = request.params
    await out.json(200, await _ops.session_wait(app.daemon, p["session"], p["stream"], body))


async def _background_create(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_create(app.daemon, request.json_object()))


async def _background_active(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, {"active": await _ops.background_active(app.daemon)})


async def _background_poll(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_poll(app.daemon, request.params["id"]))


async def _background_cancel(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_cancel(app.daemon, request.params["id"]))


async def _background_events(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /background/{id}/events?starting_after=N``: resume a background response's own
    event stream (the server replays what follows the cursor) as server-sent events, until its
    terminal event. A stream that breaks ends with ``event: end`` naming the error: reconnect
    with ``starting_after`` = the last ``sequence_number`` received."""
    raw = request.query.get("starting_after")
    starting_after: int | None = None
    if raw is not None:
        try:
            starting_after = int(raw)
        except ValueError:
            raise BadRequest(
                "'starting_after' must be an integer", field="starting_after"
            ) from None
        if starting_after < 0:
            raise BadRequest("'starting_after' must be >= 0", field="starting_after")
    async with app.daemon.background.stream(request.params["id"], starting_after) as events:
        await out.start(200, _SSE_HEADERS)
        try:
            async for event in events:
                name, data = bus_item(event)
                await out.write(sse_frame(name, dumps(data)))
                if event.terminal:
                    return
        except ClientGone:
            raise
        except Exception as exc:
            _status, body, _headers = problem(exc)
            await out.write(sse_frame("end", dumps({"reason": "stream broke", **body})))
            return
        await out.write(sse_frame("end", dumps({"reason": "stream ended"})))


async def _files_list(app: GatewayApp, request: Request, out: Responder) -> None:
    files = await app.daemon.files.list(purpose=request.query.get("purpose") or None)
    await out.json(200, {"object": "list", "data": files})


async def _files_upload(app: GatewayApp, request: Request, out: Responder) -> None:
    form = parse_form(request.headers.get("content-type", ""), request.body)
    part = form.get("file")
    if part is None:
        raise BadRequest("the form has no 'file' field", field="file")
    purpose_part = form.get("purpose")
    purpose = "user_data"
    if purpose_part is not None:
        try:
            purpose = purpose_part.data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadRequest("'purpose' must be UTF-8 text", field="purpose") from None
    file = await app.daemon.files.upload(part.data, purpose=purpose, filename=part.filename)
    await out.json(200, file)


async def _files_retrieve(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await app.daemon.files.retrieve(request.params["id"]))


async def _files_delete(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await app.daemon.files.delete(request.params["id"]))


async def _agent_open(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.agent_open(app.daemon, request.params["agent"], body))


async def _agent_ask(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.agent_ask(app.daemon, request.params["agent"], body))


async def _agent_close(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.agent_close(app.daemon, request.params["agent"]))


async def _events(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /events?topic=<pattern>``: the bus as server-sent events, until the client leaves,
    the daemon's bus closes, or the gateway stops."""
    pattern = request.query.get("topic", "**")
    async with app.daemon.subscribe(pattern) as subscription:
        # Subscribed before the headers go out: a client that has the response misses nothing.
        await out.start(200, _SSE_HEADERS)
        await out.write(f": subscribed {dumps(pattern)}\n\n")
        while True:
            ended: str | None = None
            with trio.move_on_after(app.keepalive) as idle:
                try:
                    item = await subscription.receive()
                except trio.EndOfChannel:
                    ended = "daemon stopping"
                except SubscriberOverflow:
                    ended = "subscriber overflow"
            if ended is not None:
                await out.write(sse_frame("end", dumps({"reason": ended})))
                return
            if idle.cancelled_caught:
                await out.write(": keepalive\n\n")
                continue
            name, data = bus_item(item)
            await out.write(sse_frame(name, dumps(data)))


# ------------------------------------------------------------------------------------- routing

_SEGMENT = r"(?P<{}>[^/]+)"


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\{(\w+)\}", lambda m: _SEGMENT.format(m.group(1)), template)
    return re.compile(f"^{pattern}$")


_ROUTES: Final[list[tuple[str, re.Pattern[str], Handler]]] = [
    ("GET", _compile("/"), _index),
    ("GET", _compile("/health"), _health),
    ("POST", _compile("/sessions/{session}/chat"), _chat),
    ("POST", _compile("/sessions/{session}/responses"), _respond),
    ("POST", _compile("/sessions/{session}/stop"), _stop),
    ("GET", _compile("/sessions/{session}/streams"), _streams),
    ("POST", _compile("/sessions/{session}/wait/{stream}"), _wait),
    ("POST", _compile("/background"), _background_create),
    ("GET", _compile("/background"), _background_active),
    ("GET", _compile("/background/{id}"), _background_poll),
    ("POST", _compile("/background/{id}/cancel"), _background_cancel),
    ("GET", _compile("/background/{id}/events"), _background_events),
    ("GET", _compile("/files"), _files_list),
    ("POST", _compile("/files"), _files_upload),
    ("GET", _compile("/files/{id}"), _files_retrieve),
    ("DELETE", _compile("/files/{id}"), _files_delete),
    ("POST", _compile("/agents/{agent}"), _agent_open),
    ("DELETE", _compile("/agents/{agent}"), _agent_close),
    ("POST", _compile("/agents/{agent}/ask"), _agent_ask),
    ("GET", _compile("/events"), _events),
]


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler of ``method path`` and its path parameters.

    Raises `NotFound` (no such path) or `MethodNotAllowed` (the path answers other methods).
    """
    allowed: list[str] = []
    for route_method, pattern, handler in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        if route_method == method:
            return handler, match.groupdict()
        allowed.append(route_method)
    if allowed:
        raise MethodNotAllowed(method, path, allowed)
    raise NotFound(f"no route for {method} {path}")


# ----------------------------------------------------------------------------------------- app


class GatewayApp:
    """The gateway as an ASGI application (HTTP, WebSocket and lifespan scopes) over a running
    `Daemon`. Serve it with `serve_gateway`, or with any ASGI server running on trio in the
    daemon's trio run."""

    def __init__(
        self,
        daemon: Daemon,
        *,
        keepalive: float = DEFAULT_KEEPALIVE,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        if not keepalive > 0:
            raise ValueError(f"keepalive must be > 0 seconds, got {keepalive!r}")
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes!r}")
        self.daemon = daemon
        self.keepalive = keepalive
        self.max_upload_bytes = max_upload_bytes
        #: The host names requests may address (None: any).
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )
        self.redact = Redactor([daemon.config.openai.api_key, daemon.client.settings.api_key])
        self.page = _page()
        self._active: set[trio.CancelScope] = set()

    def close(self) -> None:
        """Cancel every request and WebSocket being served (streams end at once)."""
        for scope in list(self._active):
            scope.cancel()

    def track(self, scope: trio.CancelScope) -> _Tracked:
        return _Tracked(self._active, scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await serve_websocket(self, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = str(scope["method"]).upper(), str(scope["path"])
        out = Responder(send, self.redact)
        with trio.CancelScope() as cancel_scope, self.track(cancel_scope):
            found: tuple[Handler, dict[str, str]] | None = None
            refused: GatewayError | None = None
            try:
                found = route(method, path)
                check_caller(scope, self.allowed_hosts, acts=method != "GET")
            except GatewayError as exc:
                refused = exc
            # The body is read even for a refused request, so the connection stays usable.
            upload = found is not None and found[0] is _files_upload
            try:
                body = await read_body(receive, self.max_upload_bytes if upload else MAX_JSON)
            except trio.BrokenResourceError:
                return
            except PayloadTooLarge as exc:
                refused = refused or exc
            if refused is not None or found is None:
                await self._answer_error(out, refused or NotFound(path), method, path)
                return
            handler, params = found
            request = Request.from_scope(scope, body, params)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, out, nursery.cancel_scope)
                try:
                    await handler(self, request, out)
                except ClientGone:
                    pass
                except Exception as exc:
                    await self._answer_error(out, exc, method, path)
                nursery.cancel_scope.cancel()
        if out.started and not out.finished and not out.disconnected:
            # Cancelled mid-body (the client left, or the gateway is stopping): end it cleanly.
            with trio.move_on_after(0.5, shield=True), contextlib.suppress(ClientGone):
                await out.finish()

    async def _answer_error(self, out: Responder, exc: Exception, method: str, path: str) -> None:
        status, body, headers = problem(exc)
        if status >= 500:
            log.warning(
                "gateway.request_failed",
                method=method,
                path=path,
                status=status,
                error=self.redact(repr(exc)),
                exc_info=status == 500,
            )
        with contextlib.suppress(ClientGone):
            if out.started:
                # Too late for a status: the body (an event stream) just ends.
                await out.finish()
            else:
                await out.json(status, body, headers)


class _Tracked:
    """Registers a cancel scope in the app's active set for the duration of a ``with``."""

    def __init__(self, active: set[trio.CancelScope], scope: trio.CancelScope) -> None:
        self._active, self._scope = active, scope

    def __enter__(self) -> None:
        self._active.add(self._scope)

    def __exit__(self, *exc: object) -> None:
        self._active.discard(self._scope)


def create_gateway_app(
    daemon: Daemon,
    *,
    keepalive: float = DEFAULT_KEEPALIVE,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    allowed_hosts: Iterable[str] | None = None,
) -> GatewayApp:
    """The gateway's ASGI app over ``daemon`` (no I/O). Serve it with `serve_gateway`.

    ``keepalive`` is the seconds of silence after which ``/events`` sends a comment line;
    ``max_upload_bytes`` bounds the body of ``POST /files``; ``allowed_hosts`` (None: any) are
    the names (``Host`` without its port) requests may address. Raises ``ValueError`` for a
    non-positive ``keepalive`` or ``max_upload_bytes``.
    """
    return GatewayApp(
        daemon,
        keepalive=keepalive,
        max_upload_bytes=max_upload_bytes,
        allowed_hosts=allowed_hosts,
    )
