"""The gateway's own errors, and how every error becomes an HTTP answer.

The tree of what the gateway itself raises (each subclasses the builtin it specialises)::

    GatewayError                          root: the HTTP request (or the gateway's setup) is wrong
    ├── BadRequest (ValueError)           a field missing or of the wrong type; .field
    │   ├── InvalidJSON                   not JSON, nested too deeply, NaN/Infinity
    │   ├── InvalidId                     an id (path or field) outside its pattern; .field
    │   └── NotOverHTTP                   a capability that cannot cross HTTP (agent tools)
    ├── PayloadTooLarge (ValueError)      the body (or a WebSocket message) is over the limit
    ├── UnsupportedMediaType (ValueError) a body that is neither JSON nor multipart (CSRF forms)
    ├── NotFound (LookupError)            no such route, running session or agent
    ├── MethodNotAllowed                  the route exists, the method does not; .allowed
    ├── TooManyCommands                   a WebSocket with too many commands running (429)
    ├── TimeoutElapsed (TimeoutError)     the caller's own ``timeout`` (wait, ask) ran out (409)
    ├── NotAuthenticated (PermissionError)
    │                                     no gateway token, or a wrong one (401)
    ├── CrossOriginRefused (PermissionError)
    │                                     a browser page of another origin; .origin
    ├── HostNotAllowed (PermissionError)  the Host header is not a name the gateway answers to
    │                                     (DNS rebinding); .host
    └── TokenRequired (ValueError)        `serve_gateway` off loopback without an explicit token

Each carries a stable snake_case ``code`` (``origin_not_allowed``, ``invalid_id``, ...), sent
beside its ``type`` in the error body.

Everything else comes from the daemon and is answered by its type (`status_for`): the typed
``ValueError`` family (``InvalidSessionRequest``, the file errors, ...) is 400, unknown ids
(``LookupError``: ``UnknownStream``, ``ResponseGone``, ``UnknownResponse``, ...) 404, busy
(``TooManyStreams``, ``AgentBusy``, ``AlreadyStarted``; the caller's own ``timeout`` running
out: `TimeoutElapsed`) 409, upstream API failures 502 (429 upstream: 503 with
``retry-after``), an actor that is not there or died (``NoSuchActor``, ``ActorExited``: a
restart may be under way), a durable stream the registry could not record (``TrackingFailed``)
and the registry failing (``StoreError``, e.g. a cluster's PostgreSQL away) 503, timeouts 504,
and anything unexpected 500 with a generic message: the body never carries a stack trace,
and every text is scrubbed of the API key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from .._secrets import REDACTED, redact_text
from ..actors import (
    AgentBusy,
    FileUploadFailed,
    StoreError,
    StreamLost,
    StreamStopped,
    TooManyStreams,
    TrackingFailed,
)
from ..openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    OpenAIError,
    RateLimitError,
)
from ..supervisor import (
    ActorExited,
    AlreadyStarted,
    BusClosed,
    CallTimeout,
    MaxChildren,
    NoSuchActor,
)

__all__ = [
    "BadRequest",
    "CrossOriginRefused",
    "GatewayError",
    "HostNotAllowed",
    "InvalidId",
    "InvalidJSON",
    "MethodNotAllowed",
    "NotAuthenticated",
    "NotFound",
    "NotOverHTTP",
    "PayloadTooLarge",
    "Redactor",
    "TimeoutElapsed",
    "TokenRequired",
    "TooManyCommands",
    "UnsupportedMediaType",
    "problem",
    "scrub",
    "status_for",
]


class GatewayError(Exception):
    """Root of the errors the gateway raises about an HTTP request (or its own setup)."""

    #: Stable, machine-readable name of the problem (the error body's ``code``).
    code: ClassVar[str] = "gateway_error"


class BadRequest(GatewayError, ValueError):
    """The request is malformed: a field missing or of the wrong type."""

    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidJSON(BadRequest):
    """The body (or a WebSocket command) is not JSON the gateway accepts: malformed, not UTF-8,
    nested deeper than the limit, or carrying ``NaN``/``Infinity``."""

    code = "invalid_json"


class InvalidId(BadRequest):
    """An id (a path segment or a command's field) that is not a plain identifier: refused
    before any actor sees it (a control character or a ``/`` in an id is never legitimate)."""

    code = "invalid_id"

    def __init__(self, field: str, value: str, rule: str) -> None:
        # Short: an error body echoes no more of what the caller sent than it takes to see which.
        shown = value if len(value) <= 16 else value[:16] + "..."
        super().__init__(f"invalid {field} {shown!r}: {rule}", field=field)
        self.value = value


class NotOverHTTP(BadRequest):
    """The request asks for something that cannot cross HTTP (e.g. an agent's Python tools)."""

    code = "not_over_http"


class PayloadTooLarge(GatewayError, ValueError):
    """The body (or a WebSocket message) is larger than accepted."""

    code = "payload_too_large"

    def __init__(self, limit: int, what: str = "the request body") -> None:
        super().__init__(f"{what} is larger than {limit} bytes")
        self.limit = limit


class UnsupportedMediaType(GatewayError, ValueError):
    """A request with a body that is not ``application/json`` (or ``multipart/form-data`` for
    an upload). A plain HTML form can only send the other types, so this refuses cross-site
    form posts (CSRF) whatever else a browser lets through."""

    code = "unsupported_media_type"

    def __init__(self, content_type: str | None, accepted: str) -> None:
        got = "no content type" if not content_type else f"content type {content_type!r}"
        super().__init__(f"{got} is not accepted here: send {accepted}")
        self.content_type = content_type
        self.accepted = accepted


class NotFound(GatewayError, LookupError):
    """No such route, or no running session or agent of that id."""

    code = "not_found"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class MethodNotAllowed(GatewayError):
    """The path exists but does not answer this method."""

    code = "method_not_allowed"

    def __init__(self, method: str, path: str, allowed: Iterable[str]) -> None:
        self.allowed = tuple(sorted(set(allowed)))
        super().__init__(f"{method} is not allowed on {path} (allowed: {', '.join(self.allowed)})")


class TooManyCommands(GatewayError):
    """A WebSocket client sent a command while ``limit`` of its commands were still running."""

    code = "too_many_commands"

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} commands of this socket are running: wait for their answers")
        self.limit = limit


class TimeoutElapsed(GatewayError, TimeoutError):
    """The ``timeout`` the caller gave (``wait``, ``ask``) ran out first: 409, not a gateway
    failure (504). A waited-for stream is still running (wait again); an agent's turn was
    cancelled (its history is as before the ask)."""

    code = "timeout_elapsed"

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"{what} within the request's timeout ({timeout:g} s)")
        self.timeout = timeout


class NotAuthenticated(GatewayError, PermissionError):
    """The request carries no gateway token, or a wrong one (``Authorization: Bearer <token>``,
    or the page's cookie). The message never shows the token."""

    code = "not_authenticated"

    def __init__(self, message: str = "a valid gateway token is required") -> None:
        super().__init__(message)


class CrossOriginRefused(GatewayError, PermissionError):
    """A request or WebSocket from a web page of another origin (its ``Origin`` header names a
    host other than the one it addressed), whatever its method: refused, so that no site a user
    visits can drive the daemon (spend its API key), or read from it, through the browser."""

    code = "origin_not_allowed"

    def __init__(self, origin: str) -> None:
        super().__init__(f"cross-origin requests are refused (origin {origin!r})")
        self.origin = origin


class HostNotAllowed(GatewayError, PermissionError):
    """The request's ``Host`` is not one the gateway answers to. A gateway on loopback answers
    only to loopback names, so that a web page whose domain was re-pointed at 127.0.0.1 (DNS
    rebinding) cannot reach it as if it were its own origin."""

    code = "host_not_allowed"

    def __init__(self, host: str) -> None:
        super().__init__(f"the gateway does not answer to host {host!r}")
        self.host = host


class TokenRequired(GatewayError, ValueError):
    """`serve_gateway` was asked to listen on a non-loopback address without an explicit token:
    a generated one would be printed on one machine and needed on another, so it refuses."""

    code = "token_required"

    def __init__(self, host: str) -> None:
        super().__init__(
            f"the gateway listens on the non-loopback address {host!r}: set a token explicitly"
            " ([gateway] token or STREAMVISOR_GATEWAY_TOKEN)"
        )
        self.host = host


def _unwrap(exc: BaseException) -> BaseException:
    """The single error inside (nested) one-member exception groups, else the error itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _upstream_status(exc: BaseException) -> int:
    if isinstance(exc, RateLimitError):
        return 503
    if isinstance(exc, APIStatusError):
        # The caller's own mistakes, as the API judged them, keep their status; the rest
        # (credentials, server errors) is the upstream's failure.
        return exc.status_code if exc.status_code in (400, 404, 409, 422) else 502
    if isinstance(exc, APITimeoutError):
        return 504
    return 502


def status_for(exc: BaseException) -> int:
    """The HTTP status that answers ``exc`` (see the module docstring)."""
    exc = _unwrap(exc)
    if isinstance(exc, PayloadTooLarge):
        return 413
    if isinstance(exc, MethodNotAllowed):
        return 405
    if isinstance(exc, UnsupportedMediaType):
        return 415
    if isinstance(exc, TooManyCommands):
        return 429
    if isinstance(exc, TimeoutElapsed):
        return 409
    if isinstance(exc, NotAuthenticated):
        return 401
    if isinstance(exc, CrossOriginRefused | HostNotAllowed):
        return 403
    if isinstance(exc, FileUploadFailed) and exc.__cause__ is not None:
        return _upstream_status(exc.__cause__)
    if isinstance(exc, OpenAIError) and not isinstance(exc, ValueError):
        return _upstream_status(exc)
    if isinstance(exc, TooManyStreams | AgentBusy | AlreadyStarted | StreamStopped):
        return 409
    if isinstance(
        exc, MaxChildren | BusClosed | ActorExited | NoSuchActor | StreamLost | TrackingFailed
    ):
        return 503
    if isinstance(exc, CallTimeout):
        return 504
    if isinstance(exc, ValueError):
        return 400
    if isinstance(exc, LookupError):
        return 404
    if isinstance(exc, StoreError):  # the registry cannot serve now (its engine is away, ...)
        return 503
    return 500


def _retry_after(exc: BaseException) -> float | None:
    exc = _unwrap(exc)
    if isinstance(exc, FileUploadFailed) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, RateLimitError):
        return exc.retry_after
    return None


def problem(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, body, headers)`` answering ``exc``: ``{"error": {"type", "message"}}``.

    A 500 says only that the gateway failed (the details go to the log, not the client). The
    message is `scrub`-bed: an upstream error that quotes the API key, even masked, loses it.
    """
    inner = _unwrap(exc)
    status = status_for(inner)
    if status == 500:
        return status, {"error": {"type": "InternalError", "message": "internal error"}}, {}
    error: dict[str, Any] = {
        "type": type(inner).__name__,
        "message": scrub(str(inner) or repr(inner)),
    }
    if isinstance(inner, GatewayError):
        error["code"] = inner.code
    field = getattr(inner, "field", None)
    if isinstance(field, str):
        error["field"] = field
    if isinstance(inner, APIStatusError):
        error["upstream_status"] = inner.status_code
    if isinstance(inner, APIConnectionError | APIStatusError) and inner.request_id:
        error["request_id"] = inner.request_id
    headers: dict[str, str] = {}
    retry_after = _retry_after(inner)
    if retry_after is not None:
        headers["retry-after"] = str(max(1, round(retry_after)))
    if isinstance(inner, MethodNotAllowed):
        headers["allow"] = ", ".join(inner.allowed)
    if isinstance(inner, NotAuthenticated):
        headers["www-authenticate"] = 'Bearer realm="streamvisor"'
    return status, {"error": error}, headers


#: A masked credential as APIs quote it back (``sk-ab*****wxyz``, ``abc****wxyz``): a run of
#: four or more ``*`` with the key's visible ends. It starts only where a run of key characters
#: starts (the lookbehind): tried at every position of a long run of them (a 100,000-character
#: id echoed in an error) it took quadratic time, a minute for one message.
_MASKED: Final = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]*\*{4,}[A-Za-z0-9_\-]*")


def scrub(text: str) -> str:
    """An error message without anything shaped like a credential: ``sk-`` keys (masked ones
    too), bearer tokens and masked values. Only error texts are scrubbed by shape: a stream's
    tokens are the model's words and are passed on as they are (see `Redactor`)."""
    text = redact_text(text)
    return _MASKED.sub(REDACTED, text) if "****" in text else text


class Redactor:
    """Scrubs the exact secrets (the API key, the gateway token) from every text the gateway
    sends: bodies, event streams, WebSocket messages."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # A very short "secret" would shred ordinary text; real keys are long.
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text
