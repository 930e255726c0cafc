"""The gateway's own errors, and how every error becomes an HTTP answer.

The tree of what the gateway itself raises (each subclasses the builtin it specialises)::

    GatewayError                          root: the HTTP request itself is wrong
    ├── BadRequest (ValueError)           not JSON, a field missing or of the wrong type; .field
    │   └── NotOverHTTP                   a capability that cannot cross HTTP (agent tools)
    ├── PayloadTooLarge (ValueError)      the body is over the route's limit; .limit
    ├── NotFound (LookupError)            no such route, running session or agent
    ├── MethodNotAllowed                  the route exists, the method does not; .allowed
    ├── CrossOriginRefused (PermissionError)
    │                                     a browser page of another origin tried to act; .origin
    └── HostNotAllowed (PermissionError)  the Host header is not a name the gateway answers to
                                          (DNS rebinding); .host

Everything else comes from the daemon and is answered by its type (`status_for`): the typed
``ValueError`` family (``InvalidSessionRequest``, the file errors, ...) is 400, unknown ids
(``LookupError``: ``UnknownStream``, ``ResponseGone``, ``UnknownResponse``, ...) 404, busy
(``TooManyStreams``, ``AgentBusy``, ``AlreadyStarted``) 409, upstream API failures 502 (429
upstream: 503 with ``retry-after``), an actor that is not there or died (``NoSuchActor``,
``ActorExited``: a restart may be under way) 503, timeouts 504, and anything unexpected 500
with a generic message: the body never carries a stack trace, and every text is scrubbed of
the API key.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..actors import (
    AgentBusy,
    FileUploadFailed,
    StreamLost,
    StreamStopped,
    TooManyStreams,
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
    "MethodNotAllowed",
    "NotFound",
    "NotOverHTTP",
    "PayloadTooLarge",
    "Redactor",
    "problem",
    "status_for",
]


class GatewayError(Exception):
    """Root of the errors the gateway raises about an HTTP request."""


class BadRequest(GatewayError, ValueError):
    """The request is malformed: not JSON, or a field missing or of the wrong type."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotOverHTTP(BadRequest):
    """The request asks for something that cannot cross HTTP (e.g. an agent's Python tools)."""


class PayloadTooLarge(GatewayError, ValueError):
    """The body is larger than the route accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class NotFound(GatewayError, LookupError):
    """No such route, or no running session or agent of that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class MethodNotAllowed(GatewayError):
    """The path exists but does not answer this method."""

    def __init__(self, method: str, path: str, allowed: Iterable[str]) -> None:
        self.allowed = tuple(sorted(set(allowed)))
        super().__init__(f"{method} is not allowed on {path} (allowed: {', '.join(self.allowed)})")


class CrossOriginRefused(GatewayError, PermissionError):
    """A request or WebSocket from a web page of another origin (its ``Origin`` header names a
    host other than the one it addressed): refused, so that no site a user visits can drive the
    daemon (spend its API key) through the user's browser."""

    def __init__(self, origin: str) -> None:
        super().__init__(f"cross-origin requests are refused (origin {origin!r})")
        self.origin = origin


class HostNotAllowed(GatewayError, PermissionError):
    """The request's ``Host`` is not one the gateway answers to. A gateway on loopback answers
    only to loopback names, so that a web page whose domain was re-pointed at 127.0.0.1 (DNS
    rebinding) cannot reach it as if it were its own origin."""

    def __init__(self, host: str) -> None:
        super().__init__(f"the gateway does not answer to host {host!r}")
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
    if isinstance(exc, CrossOriginRefused | HostNotAllowed):
        return 403
    if isinstance(exc, FileUploadFailed) and exc.__cause__ is not None:
        return _upstream_status(exc.__cause__)
    if isinstance(exc, OpenAIError) and not isinstance(exc, ValueError):
        return _upstream_status(exc)
    if isinstance(exc, TooManyStreams | AgentBusy | AlreadyStarted | StreamStopped):
        return 409
    if isinstance(exc, MaxChildren | BusClosed | ActorExited | NoSuchActor | StreamLost):
        return 503
    if isinstance(exc, CallTimeout):
        return 504
    if isinstance(exc, ValueError):
        return 400
    if isinstance(exc, LookupError):
        return 404
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

    A 500 says only that the gateway failed (the details go to the log, not the client).
    """
    inner = _unwrap(exc)
    status = status_for(inner)
    if status == 500:
        return status, {"error": {"type": "InternalError", "message": "internal error"}}, {}
    error: dict[str, Any] = {"type": type(inner).__name__, "message": str(inner) or repr(inner)}
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
    return status, {"error": error}, headers


class Redactor:
    """Scrubs secrets (the API key) from every text the gateway sends."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # A very short "secret" would shred ordinary text; real keys are long.
        self._secrets = tuple(s for s in secrets if s and len(s) >= 8)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text
