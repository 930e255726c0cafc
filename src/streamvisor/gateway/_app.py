"""The ASGI application: routing, error answers, the SSE event stream, files and the page.

Every HTTP request runs in its own cancel scope, watched for the client's disconnect: a client
that goes away cancels its request (a ``wait``, an ``ask``, an ``/events`` stream), which releases
what the request held (its bus subscription). `GatewayApp.close` cancels them all (shutdown).
"""

from __future__ import annotations

import contextlib
import importlib.resources
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Final

import structlog
import trio

from ..config import TOKEN_PATTERN, is_token
from ..daemon import Daemon
from ..supervisor import SubscriberOverflow
from . import _ops
from ._access import Access, new_token, request_headers
from ._checks import check_id, check_name, check_topic, parse_count, parse_cursor, parse_flag
from ._encode import bus_item, sse_frame
from ._errors import (
    BadRequest,
    GatewayError,
    NotAuthenticated,
    NotFound,
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
    dumps,
    path_segments,
    serve_watched,
    upload_form,
)
from ._routing import FORM, JSON, Route, match_route, read_admitted
from ._v1 import V1Sessions, serve_v1
from ._ws import serve_websocket

__all__ = ["DEFAULT_KEEPALIVE", "GatewayApp", "create_gateway_app"]

log = structlog.get_logger("streamvisor.gateway")

#: Seconds between SSE keepalive comments (and WebSocket pings' worth of silence).
DEFAULT_KEEPALIVE: Final = 15.0
#: Most items a listing route answers with (``limit``, ``max_children``).
_MOST_LISTED: Final = 10_000

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


_PAGE_HEADERS: Final = {
    # The page's URL carries the token: no other site is told it (the page has no links out).
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
}

#: What ``GET /`` answers without the token: where to find it.
_LOCKED_PAGE: Final = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamvisor gateway</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3em">
<h1>streamvisor gateway</h1>
<p>This page needs the gateway's token. Open the URL the daemon printed when it started
(<code>http://&hellip;/?token=&hellip;</code>); <code>python run.py</code> also stores the
token in <code>var/gateway-token</code> where it runs.</p>
</body></html>
"""

#: Farewell of an event stream the gateway ends because it is stopping.
_GATEWAY_STOPPING: Final = sse_frame("shutdown", dumps({"reason": "gateway stopping"}))


def _page() -> bytes:
    return importlib.resources.files(__package__).joinpath("_page.html").read_bytes()


# ------------------------------------------------------------------------------------ handlers


async def _index(app: GatewayApp, request: Request, out: Responder) -> None:
    """The live page, for a caller with the token (``?token=`` sets the page's cookie); a
    page saying where to find the token for anyone else (401)."""
    headers = dict(_PAGE_HEADERS)
    if app.access.matches(request.query.get("token")):
        headers["set-cookie"] = app.access.set_cookie(request.headers.get("host", ""))
    elif not request.authenticated:
        await out.bytes(401, _LOCKED_PAGE, "text/html; charset=utf-8", headers)
        return
    await out.bytes(200, app.page, "text/html; charset=utf-8", headers)


async def _health(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.health(app.daemon))


async def _openapi(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /openapi.json``: the gateway's API as an OpenAPI 3.1 document (`_openapi`)."""
    # Imported here: ``python -m streamvisor.gateway._openapi`` (which regenerates
    # docs/openapi.json) then runs a module the package has not imported already.
    from ._openapi import openapi_document

    await out.json(200, openapi_document())


async def _metrics(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /metrics``: the daemon's Prometheus metrics (``daemon.metrics``), text format."""
    metrics = app.daemon.metrics
    await out.bytes(200, metrics.exposition(), metrics.content_type)


async def _chat(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.session_chat(app.daemon, request.params["session"], body))


async def _respond(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object()
    await out.json(200, await _ops.session_respond(app.daemon, request.params["session"], body))


async def _stop(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object(empty_ok=True)
    await out.json(200, await _ops.session_stop(app.daemon, request.params["session"], body))


async def _streams(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.session_streams(app.daemon, request.params["session"]))


async def _wait(app: GatewayApp, request: Request, out: Responder) -> None:
    body = request.json_object(empty_ok=True)
    p = request.params
    await out.json(200, await _ops.session_wait(app.daemon, p["session"], p["stream"], body))


async def _background_create(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_create(app.daemon, request.json_object()))


async def _background_list(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /background``: the active responses; ``?all=true``: the newest ``limit`` (50)
    tracked ones, terminal ones included."""
    query = request.query
    if parse_flag(query.get("all"), "all"):
        limit = parse_count(query.get("limit"), "limit", 50, _MOST_LISTED)
        await out.json(200, await _ops.background_recent(app.daemon, limit))
    else:
        await out.json(200, await _ops.background_active(app.daemon))


async def _tree(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /tree?max_children=N``: the live supervision tree (at most N children listed per
    supervisor, 200 by default)."""
    most = parse_count(request.query.get("max_children"), "max_children", 200, _MOST_LISTED)
    await out.json(200, _ops.tree(app.daemon, most))


async def _sessions(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /sessions?limit=N``: the running sessions and their active streams."""
    limit = parse_count(request.query.get("limit"), "limit", 100, _MOST_LISTED)
    await out.json(200, await _ops.sessions_list(app.daemon, limit))


async def _agents(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.agents_list(app.daemon))


async def _background_poll(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_poll(app.daemon, request.params["id"]))


async def _background_cancel(app: GatewayApp, request: Request, out: Responder) -> None:
    await out.json(200, await _ops.background_cancel(app.daemon, request.params["id"]))


async def _background_events(app: GatewayApp, request: Request, out: Responder) -> None:
    """``GET /background/{id}/events?starting_after=N``: resume a background response's own
    event stream (the server replays what follows the cursor) as server-sent events, until its
    terminal event. A stream that breaks ends with ``event: end`` naming the error: reconnect
    with ``starting_after`` = the last ``sequence_number`` received."""
    starting_after = parse_cursor(request.query.get("starting_after"))
    async with app.daemon.background.stream(request.params["id"], starting_after) as events:
        await out.start(200, _SSE_HEADERS)
        out.farewell = _GATEWAY_STOPPING
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
    purpose = request.query.get("purpose") or None  # the files handle checks it
    files = await app.daemon.files.list(purpose=purpose)
    await out.json(200, {"object": "list", "data": files})


async def _files_upload(app: GatewayApp, request: Request, out: Responder) -> None:
    part, purpose = upload_form(request.headers, request.body, "user_data")
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
    the daemon's bus closes, or the gateway stops. Both of the last end with ``event: shutdown``
    (``{"reason": "daemon stopping" | "gateway stopping"}``); a subscriber the bus dropped for
    falling behind gets ``event: end`` (``{"reason": "subscriber overflow"}``)."""
    pattern = check_topic(request.query.get("topic", "**"))
    after = _replay_cursor(request)
    if app.daemon.node is not None:
        await _replayed_events(app, out, pattern, after)
        return
    if after is not None:
        raise BadRequest(
            "'after' resumes a cluster's event stream (JetStream); this daemon runs alone",
            field="after",
        )
    async with app.daemon.subscribe(pattern) as subscription:
        # Subscribed before the headers go out: a client that has the response misses nothing.
        await out.start(200, _SSE_HEADERS)
        out.farewell = _GATEWAY_STOPPING
        await out.write(f": subscribed {dumps(pattern)}\n\n")
        while True:
            ended: tuple[str, str] | None = None
            with trio.move_on_after(app.keepalive) as idle:
                try:
                    item = await subscription.receive()
                except trio.EndOfChannel:
                    ended = ("shutdown", "daemon stopping")
                except SubscriberOverflow:
                    ended = ("end", "subscriber overflow")
            if ended is not None:
                await out.write(sse_frame(ended[0], dumps({"reason": ended[1]})))
                return
            if idle.cancelled_caught:
                await out.write(": keepalive\n\n")
                continue
            name, data = bus_item(item)
            await out.write(sse_frame(name, dumps(data)))
            # Not kept while the loop waits for the next one (a quiet stream kept its last
            # event, a ``response.completed`` with the whole response, for as long as it stayed
            # quiet).
            del item, data


def _replay_cursor(request: Request) -> int | None:
    """``?after=N``, else the ``Last-Event-ID`` an EventSource sends when it reconnects."""
    raw = request.query.get("after")
    field = "after"
    if raw is None:
        raw = request.headers.get("last-event-id")
        field = "Last-Event-ID"
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise BadRequest(f"{field} must be an event id (a stream sequence >= 0)", field=field)
    return int(raw)


async def _replayed_events(
    app: GatewayApp, out: Responder, pattern: str, after: int | None
) -> None:
    """``/events`` on a cluster node: every node's events from JetStream, each with its stream
    sequence as the SSE ``id``, so that a client (an EventSource's ``Last-Event-ID``, or
    ``?after=``) resumes on any node without a gap or a duplicate."""
    node = app.daemon.node
    assert node is not None
    async with node.replay(pattern, after=after) as messages:
        await out.start(200, _SSE_HEADERS)
        out.farewell = _GATEWAY_STOPPING
        await out.write(f": subscribed {dumps(pattern)}\n\n")
        while True:
            with trio.move_on_after(app.keepalive) as idle:
                try:
                    message = await messages.receive()
                except trio.EndOfChannel:
                    await out.write(sse_frame("shutdown", dumps({"reason": "daemon stopping"})))
                    return
            if idle.cancelled_caught:
                await out.write(": keepalive\n\n")
                continue
            item = node.decode(message)
            if item is not None:
                name, data = bus_item(item)
                await out.write(f"id: {message.seq}\n" + sse_frame(name, dumps(data)))
                del data
            # Not kept while the loop waits for the next one (as in `_events`).
            del message, item


# ------------------------------------------------------------------------------------- routing


#: How each path parameter is checked before a handler runs (`InvalidId`, 400).
_PARAMS: Final[Mapping[str, Callable[[object, str], str]]] = {
    "session": check_name,
    "agent": check_name,
    "id": check_id,
    "stream": check_id,
}


_Route = Route[Handler]


def _r(method: str, template: str, handler: Handler, body: str = JSON) -> _Route:
    return Route.of(method, template, handler, body)


_ROUTES: Final[list[_Route]] = [
    _r("GET", "/", _index),
    _r("GET", "/health", _health),
    _r("GET", "/openapi.json", _openapi),
    _r("GET", "/metrics", _metrics),
    _r("GET", "/tree", _tree),
    _r("GET", "/sessions", _sessions),
    _r("GET", "/agents", _agents),
    _r("POST", "/sessions/{session}/chat", _chat),
    _r("POST", "/sessions/{session}/responses", _respond),
    _r("POST", "/sessions/{session}/stop", _stop),
    _r("GET", "/sessions/{session}/streams", _streams),
    _r("POST", "/sessions/{session}/wait/{stream}", _wait),
    _r("POST", "/background", _background_create),
    _r("GET", "/background", _background_list),
    _r("GET", "/background/{id}", _background_poll),
    _r("POST", "/background/{id}/cancel", _background_cancel),
    _r("GET", "/background/{id}/events", _background_events),
    _r("GET", "/files", _files_list),
    _r("POST", "/files", _files_upload, FORM),
    _r("GET", "/files/{id}", _files_retrieve),
    _r("DELETE", "/files/{id}", _files_delete),
    _r("POST", "/agents/{agent}", _agent_open),
    _r("DELETE", "/agents/{agent}", _agent_close),
    _r("POST", "/agents/{agent}/ask", _agent_ask),
    _r("GET", "/events", _events),
]


def _is_v1(scope: Scope) -> bool:
    """Whether the request is for OpenAI's API on the gateway (``/v1``, ``/v1/...``)."""
    raw = bytes(scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8"))
    return raw.startswith(b"/v1/") or raw.split(b"?", 1)[0] == b"/v1"


def route(method: str, segments: tuple[str, ...]) -> tuple[_Route, dict[str, str]]:
    """The route of ``method`` on the path of ``segments`` and its (unchecked) parameters.

    Raises `NotFound` (no such path) or `MethodNotAllowed` (the path answers other methods).
    """
    path = "/" + "/".join(segments)
    return match_route(_ROUTES, method, segments, path, "no route for {method} {path}")


def check_params(params: Mapping[str, str]) -> None:
    """Check every path parameter of a route. Raises `InvalidId`."""
    for name, value in params.items():
        _PARAMS[name](value, name)


# ----------------------------------------------------------------------------------------- app


class GatewayApp:
    """The gateway as an ASGI application (HTTP, WebSocket and lifespan scopes) over a running
    `Daemon`. Serve it with `serve_gateway`, or with any ASGI server running on trio in the
    daemon's trio run."""

    def __init__(
        self,
        daemon: Daemon,
        *,
        token: str | None = None,
        keepalive: float = DEFAULT_KEEPALIVE,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        if not keepalive > 0:
            raise ValueError(f"keepalive must be > 0 seconds, got {keepalive!r}")
        if max_upload_bytes < 1:
            raise ValueError(f"max_upload_bytes must be >= 1, got {max_upload_bytes!r}")
        if token is not None and not is_token(token):
            # It goes into a cookie and a header: nothing but URL-safe characters, 16 or more.
            raise ValueError(f"token must match {TOKEN_PATTERN} (or be None: generate one)")
        self.daemon = daemon
        self.keepalive = keepalive
        self.max_upload_bytes = max_upload_bytes
        #: The token every request must carry (generated when none was given).
        self.token = token or new_token()
        self.access = Access(self.token, allowed_hosts)
        self.redact = Redactor(
            [daemon.config.openai.api_key, daemon.client.settings.api_key, self.token]
        )
        self.page = _page()
        #: ``/v1``: streamed Responses made durable upstream; the connections' own sessions;
        #: uploads whose first part is still to be checked against their declared type.
        self.v1_durable = daemon.config.gateway.v1_durable
        self.v1_sessions = V1Sessions(daemon.config.gateway.v1_session_idle)
        self.v1_uploads: dict[str, str] = {}
        #: Set by `close`: streams being cancelled say ``shutdown`` to their clients.
        self.stopping = False
        self._active: set[trio.CancelScope] = set()

    def __repr__(self) -> str:
        return f"<GatewayApp allowed_hosts={self.access.allowed_hosts!r}>"

    @property
    def allowed_hosts(self) -> frozenset[str] | None:
        """The host names requests may address (None: any)."""
        return self.access.allowed_hosts

    def close(self) -> None:
        """Cancel every request and WebSocket being served: event streams end at once, each
        with a final ``shutdown`` event (SSE) or message (WebSocket)."""
        self.stopping = True
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
            if _is_v1(scope):  # OpenAI's API: its own routes, its own error bodies
                await serve_v1(self, scope, receive, out, request_headers(scope))
            else:
                await self._serve(scope, receive, out, method, path)
        if out.started and not out.finished and not out.disconnected:
            # Cancelled mid-body (the client left, or the gateway is stopping): end it cleanly,
            # with the stream's farewell if the gateway is stopping.
            with trio.move_on_after(0.5, shield=True), contextlib.suppress(ClientGone):
                if self.stopping and out.farewell is not None:
                    await out.write(out.farewell)
                await out.finish()

    async def _serve(
        self, scope: Scope, receive: Receive, out: Responder, method: str, path: str
    ) -> None:
        """One request of the gateway's own API (everything but ``/v1``)."""
        found: tuple[_Route, dict[str, str]] | None = None
        refused: Exception | None = None
        headers = request_headers(scope)
        authenticated = False
        try:
            # Host and Origin first, for every method; then the token (the page answers
            # without it, saying where to find it); then the route.
            self.access.check(headers, authenticate=False)
            authenticated = self.access.authenticated(headers)
            segments = path_segments(scope)
            if not authenticated and segments:
                raise NotAuthenticated()
            found = route(method, segments)
        except GatewayError as exc:
            refused = exc
        upload = refused is None and found is not None and found[0].handler is _files_upload
        limit = self.max_upload_bytes if upload else MAX_JSON
        admitted = await read_admitted(
            receive, method, headers, found, refused, limit=limit, check_params=check_params
        )
        if admitted is None:
            return
        body, refused = admitted
        if refused is not None or found is None:
            await self._answer_error(out, refused or NotFound(path), method, path)
            return
        request = Request.from_scope(scope, headers, body, found[1], authenticated=authenticated)
        handler = found[0].handler

        async def answer(exc: Exception) -> None:
            await self._answer_error(out, exc, method, path)

        await serve_watched(receive, out, lambda: handler(self, request, out), answer)

    async def _answer_error(self, out: Responder, exc: Exception, method: str, path: str) -> None:
        status, body, headers = problem(exc)
        if status >= 500:
            log.warning(
                "gateway.request_failed",
                method=method,
                path=self.redact(path),
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
    token: str | None = None,
    keepalive: float = DEFAULT_KEEPALIVE,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    allowed_hosts: Iterable[str] | None = None,
) -> GatewayApp:
    """The gateway's ASGI app over ``daemon`` (no I/O). Serve it with `serve_gateway`.

    ``token`` is what every request must carry (``Authorization: Bearer <token>``; None: a
    random one, then read it from ``app.token``). ``keepalive`` is the seconds of silence after
    which ``/events`` sends a comment line; ``max_upload_bytes`` bounds the body of ``POST
    /files``; ``allowed_hosts`` (None: any) are the names (``Host`` without its port) requests
    may address. Raises ``ValueError`` for a non-positive ``keepalive`` or ``max_upload_bytes``,
    or an empty ``token``.
    """
    return GatewayApp(
        daemon,
        token=token,
        keepalive=keepalive,
        max_upload_bytes=max_upload_bytes,
        allowed_hosts=allowed_hosts,
    )
