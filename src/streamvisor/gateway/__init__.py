"""The daemon's HTTP front door: JSON routes, an SSE event stream, a WebSocket, a live page.

Programs in other languages reach the daemon's actors and channels through it::

    async with open_daemon(config) as daemon, serve_gateway(daemon, port=8080) as gw:
        print(gw.page_url)       # the live page, with the token; programs send gw.auth_headers

Not an open door (see `_access` and `_checks`): every request needs the token
(``Authorization: Bearer <token>``, or the page's ``HttpOnly; SameSite=Strict`` cookie set by
``GET /?token=``); an ``Origin`` other than the gateway's own is refused for every method and the
WebSocket; on loopback only loopback host names are answered (DNS rebinding); a body must be JSON
(multipart for uploads); ids, topics and JSON are checked before any actor sees them.

Routes (JSON in and out; errors are ``{"error": {"type": <ExceptionClassName>, "code"?,
"message", "field"?}}``)::

    GET    /health                          the daemon's status
    POST   /sessions/{id}/chat              {model, messages, ...}        -> ticket
    POST   /sessions/{id}/responses         {model, input, durable?, ...} -> ticket
    POST   /sessions/{id}/stop              {stream_id?}                  -> {outcomes}
    GET    /sessions/{id}/streams                                         -> {streams}
    POST   /sessions/{id}/wait/{stream_id}  {timeout?}                    -> outcome
    POST   /background                      {model, input, owner?, ...}   -> background
    GET    /background                      the active ones               -> {object: list, data}
    GET    /background/{id}                 poll now                      -> background
    POST   /background/{id}/cancel                                        -> background
    GET    /background/{id}/events[?starting_after=N]   resume its event stream (SSE)
    GET    /files[?purpose=]                                              -> {data}
    POST   /files                           multipart: file, purpose      -> FileObject
    GET    /files/{id}   DELETE /files/{id}
    POST   /agents/{id}                     {model, instructions?, api?, options?} (no tools)
    POST   /agents/{id}/ask                 {text, timeout?}              -> reply
    DELETE /agents/{id}
    GET    /events?topic=<pattern>          server-sent events of the bus
    GET    /ws?topic=<pattern>              the same over a WebSocket, plus commands
    GET    /openapi.json                    this API as an OpenAPI 3.1 document
    GET    /[?token=]                       the live page (without the token: where to find it)

A background response has one shape everywhere (routes and WebSocket replies): a ``background``
object, its registry record plus ``response`` (the OpenAI Response, or null). The whole contract:
``docs/openapi.json`` (routes, bodies, errors) and ``docs/gateway.md`` (WebSocket commands and
event shapes).
"""

from __future__ import annotations

from ._access import new_token
from ._app import DEFAULT_KEEPALIVE, GatewayApp, create_gateway_app
from ._errors import (
    BadRequest,
    CrossOriginRefused,
    GatewayError,
    HostNotAllowed,
    InvalidId,
    InvalidJSON,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    NotOverHTTP,
    PayloadTooLarge,
    TimeoutElapsed,
    TokenRequired,
    TooManyCommands,
    UnsupportedMediaType,
    status_for,
)
from ._server import Gateway, serve_gateway

__all__ = [
    "DEFAULT_KEEPALIVE",
    "BadRequest",
    "CrossOriginRefused",
    "Gateway",
    "GatewayApp",
    "GatewayError",
    "HostNotAllowed",
    "InvalidId",
    "InvalidJSON",
    "MethodNotAllowed",
    "NotAuthenticated",
    "NotFound",
    "NotOverHTTP",
    "PayloadTooLarge",
    "TimeoutElapsed",
    "TokenRequired",
    "TooManyCommands",
    "UnsupportedMediaType",
    "create_gateway_app",
    "new_token",
    "serve_gateway",
    "status_for",
]
