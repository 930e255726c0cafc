"""Errors of the wire layer: whose fault it was, and everything needed to act on it.

The tree (as `httpx/_exceptions.py` draws its own)::

    OpenAIError                               root of this layer
    ├── APIError                              .message .request_id .code .type .param .body
    │   ├── APIStatusError                    a non-2xx answer: .status_code .headers .retry_after
    │   │   ├── BadRequestError               400
    │   │   │   └── CancelRejected            400 on cancel: the response already finished (.status)
    │   │   ├── AuthenticationError           401
    │   │   ├── PermissionDeniedError         403
    │   │   ├── NotFoundError                 404 (also a LookupError)
    │   │   ├── ConflictError                 409
    │   │   ├── UnprocessableEntityError      422
    │   │   ├── RateLimitError                429, transient (retried)
    │   │   │   └── InsufficientQuotaError    429 insufficient_quota: permanent, never retried
    │   │   └── InternalServerError           >= 500
    │   ├── APIConnectionError                the request or its answer did not get through
    │   │   ├── APITimeoutError               connect/read/write/pool timeout (also a TimeoutError)
    │   │   └── StreamInterrupted             a stream ended without a terminal event (.cursor)
    │   │       └── MalformedStreamError      a frame that is not valid SSE/JSON
    │   ├── StreamError                       an `error` frame inside a 200 stream (.event)
    │   └── OutcomeUnknownError               a background create may or may not exist server-side
    ├── UploadFailed                          `upload_large` failed; the upload was cancelled
    ├── SequenceError                         a gap in `sequence_number` (also a ValueError)
    └── InvalidRequestError                   rejected locally before any I/O (also a ValueError)
        ├── InvalidId                         not an id the API issues (`check_id`); .field .value
        └── InvalidParameter                  not plain JSON the API can parse (`check_json`):
                                              NaN/Infinity, a non-JSON type, too deep or too
                                              large; .field is its path (`input[2].content`)

`x-request-id` is kept on every error that came from an HTTP answer. No error message, repr or
attribute ever contains the API key: errors carry response headers, never request headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CancelRejected",
    "ConflictError",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidId",
    "InvalidParameter",
    "InvalidRequestError",
    "MalformedStreamError",
    "NotFoundError",
    "OpenAIError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "RateLimitError",
    "SequenceError",
    "StreamError",
    "StreamInterrupted",
    "UnprocessableEntityError",
    "UploadFailed",
    "status_error_from",
]


class OpenAIError(Exception):
    """Root of every error raised by `streamvisor.openai`."""


class APIError(OpenAIError):
    """An error about one API call, with the fields of the OpenAI error body when there is one."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id
        self.code = code
        self.type = type
        self.param = param
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.param:
            parts.append(f"param={self.param}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts) if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


class APIStatusError(APIError):
    """The server answered with a non-2xx status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self.status_code = status_code
        #: The response headers (never the request's: those carry the key).
        self.headers: Mapping[str, str] = dict(headers or {})
        #: The server's retry hint in seconds (`retry-after-ms` / `retry-after`), if it gave one.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.status_code}: {super().__str__()}"


class BadRequestError(APIStatusError):
    """400: an invalid or unsupported parameter (including reasoning-model rejections)."""


class CancelRejected(BadRequestError):
    """400 on `POST /responses/{id}/cancel`: the response is already terminal (or not cancellable).

    `.status` is the terminal status named by the server ("completed", "failed", "incomplete") or
    None when the message did not name one (e.g. a foreground response). Fetch the final state with
    `retrieve_response`.
    """

    def __init__(self, message: str, *, status: str | None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.status = status

    @property
    def already_terminal(self) -> bool:
        """True when the server said the response already finished."""
        return self.status is not None


class AuthenticationError(APIStatusError):
    """401: a bad or missing API key."""


class PermissionDeniedError(APIStatusError):
    """403: no access to the model, organisation or region."""


class NotFoundError(APIStatusError, LookupError):
    """404: unknown model, response id or file id, or an expired background response."""


class ConflictError(APIStatusError):
    """409: a conflict (lock timeout); retried by the policy."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well-formed but cannot be processed."""


class RateLimitError(APIStatusError):
    """429 `rate_limit_exceeded`: transient, retried after the server's hint."""


class InsufficientQuotaError(RateLimitError):
    """429 `insufficient_quota`: permanent until billing changes; never retried."""


class InternalServerError(APIStatusError):
    """>= 500: the server failed (500, 502, 503 overloaded, 504)."""


class APIConnectionError(APIError):
    """The request did not complete: connection refused, reset, or protocol failure."""


class APITimeoutError(APIConnectionError, TimeoutError):
    """A connect, read (idle), write or pool timeout."""


class StreamInterrupted(APIConnectionError):
    """A stream ended (EOF, drop or idle timeout) before its terminal event.

    `.cursor` is the last `sequence_number` delivered (None if none was): for a background
    response, resume with `resume_response(response_id, starting_after=cursor)`.
    """

    def __init__(
        self,
        message: str,
        *,
        cursor: int | None,
        response_id: str | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message, **fields)
        self.cursor = cursor
        self.response_id = response_id


class MalformedStreamError(StreamInterrupted):
    """A frame could not be decoded (not JSON, not an object); the stream was abandoned there."""


class StreamError(APIError):
    """An `error` frame arrived inside a 200 stream (Chat or Responses framing).

    Raised only after the frame was delivered as an `error` event (and after any following
    events, e.g. `response.failed`). `.event` is that StreamEvent.
    """

    def __init__(self, message: str, *, event: Any = None, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.event = event


class OutcomeUnknownError(APIError):
    """A background create may have reached the server, and its answer was lost.

    A response may now exist server-side (queued or running, and billed). It was not retried,
    because a blind retry could create a duplicate job. `.method`/`.url` say which call;
    `__cause__` is the underlying failure. Look for the response by other means (e.g. metadata
    you set) or accept the risk explicitly.
    """

    def __init__(self, message: str, *, method: str, url: str, **fields: Any) -> None:
        super().__init__(message, **fields)
        self.method = method
        self.url = url


class UploadFailed(OpenAIError):
    """`upload_large` failed; the upload `.upload_id` was cancelled. `.errors` are the causes."""

    def __init__(self, upload_id: str, errors: Sequence[BaseException]) -> None:
        first = errors[0] if errors else None
        super().__init__(f"upload {upload_id} failed and was cancelled: {first!r}")
        self.upload_id = upload_id
        self.errors = tuple(errors)


class SequenceError(OpenAIError, ValueError):
    """Events were lost: `sequence_number` jumped from `.expected` - 1 to `.got`."""

    def __init__(self, *, expected: int, got: int, response_id: str | None = None) -> None:
        super().__init__(
            f"sequence gap in {response_id or 'stream'}: expected {expected}, got {got}"
        )
        self.expected = expected
        self.got = got
        self.response_id = response_id


class InvalidRequestError(OpenAIError, ValueError):
    """A request rejected locally, before any network I/O."""


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters: an error must not echo a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class InvalidId(InvalidRequestError):
    """An id (``response_id``, ``file_id``, ``upload_id``) that the API cannot have issued.

    ``field`` names the argument, ``value`` is what was given (its repr in the message is cut).
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        super().__init__(f"invalid {field} {_shown(value)}: {reason}")
        self.field = field
        self.value = value
        self.reason = reason


class InvalidParameter(InvalidRequestError):
    """A request parameter that is not plain JSON the API can parse.

    ``field`` is its path in the body (``temperature``, ``input[2].content``; ``""`` for the body
    as a whole), ``reason`` what is wrong with it.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_from(
    status_code: int,
    body: Any,
    headers: Mapping[str, str],
    *,
    retry_after: float | None = None,
) -> APIStatusError:
    """Build the typed error for a non-2xx answer from its parsed body and headers."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or f"HTTP {status_code}")
        code, etype, param = err.get("code"), err.get("type"), err.get("param")
    else:
        message = body if isinstance(body, str) and body else f"HTTP {status_code}"
        code = etype = param = None
    cls: type[APIStatusError]
    if status_code == 429 and "insufficient_quota" in (code, etype):
        cls = InsufficientQuotaError
    elif status_code >= 500:
        cls = InternalServerError
    else:
        cls = _BY_STATUS.get(status_code, APIStatusError)
    return cls(
        message,
        status_code=status_code,
        headers=headers,
        retry_after=retry_after,
        request_id=headers.get("x-request-id"),
        code=None if code is None else str(code),
        type=None if etype is None else str(etype),
        param=None if param is None else str(param),
        body=body,
    )
