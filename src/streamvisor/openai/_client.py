"""`OpenAIClient`: one shared `httpx.AsyncClient`, retries, typed errors, streams, JSON calls.

Every call goes through `_send`, which owns the retry loop (reference §6.4, plus the daemon's
rules: quota errors are permanent; a background create whose outcome is unknown is never
repeated). Streams are retried only before their response headers; after that a failure is a
`StreamInterrupted` carrying the resume cursor.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

import attrs
import httpx
import structlog
import trio

from ._chat import ChatAccumulator
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    CancelRejected,
    InvalidParameter,
    InvalidRequestError,
    MalformedStreamError,
    OutcomeUnknownError,
    status_error_from,
)
from ._files import FilesMixin
from ._models import apply_model_rules
from ._pool import ShardedTransport
from ._responses import ResponseAccumulator
from ._retry import RateLimits
from ._settings import ClientSettings
from ._stream import EventStream
from ._validation import check_model, encode_json, id_segment

__all__ = ["ClientStatistics", "OpenAIClient", "Polled"]


log = structlog.get_logger("streamvisor.openai")

# Connection attempts that cannot have reached the server: safe to retry even for a create.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_UNSUPPORTED = frozenset({"unsupported_parameter", "unsupported_value"})
_REQUIRED = frozenset({"model", "input", "messages", "stream", "background"})
_PARAM_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_CANCEL_STATUS = re.compile(r"cannot cancel an? (\w+) response", re.IGNORECASE)
_CLOSE_TIMEOUT = 5.0
#: Models whose last rate limits are kept (`ClientStatistics.rate_limits`); past it, the oldest
#: model seen is forgotten (a bound against a caller making up model names).
_MODELS_KEPT = 256


@attrs.frozen
class ClientStatistics:
    """A snapshot of the client's counters since it was opened (`OpenAIClient.statistics`).

    Attributes:
        events: Stream events delivered, by API (``"chat"``, ``"responses"``), open streams
            included.
        streams: Streams ended, by ``(api, outcome)`` (`EventStream.outcome`).
        open_streams: Streams open now, by API.
        retries: Requests retried, by the status of the answer that was retried (``"429"``,
            ``"503"``, ...) or ``"connection"`` for a failure to get an answer.
        rate_limits: The ``x-ratelimit-*`` headers last seen for each model (requests naming
            a model in their body, and polls whose answer names one).
    """

    events: Mapping[str, int]
    streams: Mapping[tuple[str, str], int]
    open_streams: Mapping[str, int]
    retries: Mapping[str, int]
    rate_limits: Mapping[str, RateLimits]


@attrs.frozen
class Polled:
    """One `retrieve_response` answer.

    Attributes:
        response: The Response object as the server sent it.
        poll_after: The server's `openai-poll-after-ms` hint in seconds, or None.
        request_id: The answer's `x-request-id`.
        rate_limits: The answer's `x-ratelimit-*` headers, if any.
    """

    response: dict[str, Any] = attrs.field(hash=False)
    poll_after: float | None = None
    request_id: str | None = None
    rate_limits: RateLimits | None = None

    @property
    def status(self) -> str | None:
        status = self.response.get("status")
        return status if isinstance(status, str) else None


def _connection_error(exc: httpx.RequestError) -> APIConnectionError:
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request timed out: {type(exc).__name__}")
    return APIConnectionError(f"connection error: {type(exc).__name__}: {exc}")


def _body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _poll_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("openai-poll-after-ms")
    if raw is None:
        return None
    try:
        value = float(raw) / 1000.0
    except ValueError:
        return None
    return value if value >= 0 else None


def _droppable(err: BadRequestError, body: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The key path of a parameter the server rejected as unsupported, if we may drop it."""
    if err.code not in _UNSUPPORTED or not err.param or _PARAM_PATH.fullmatch(err.param) is None:
        return None
    path = tuple(err.param.split("."))
    if path[0] in _REQUIRED:
        return None
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return path


def _without(body: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    new = dict(body)
    if len(path) == 1:
        del new[path[0]]
    else:
        new[path[0]] = _without(new[path[0]], path[1:])
    return new


class OpenAIClient(FilesMixin):
    """The wire-level OpenAI client. Create it with `OpenAIClient.open(settings)`.

    All methods raise the `_errors` tree: `APIStatusError` subclasses for non-2xx answers (after
    retries), `APIConnectionError`/`APITimeoutError` for failures to get an answer, and
    `OutcomeUnknownError` for a background create whose fate is unknown. Before any I/O, every
    method taking an id raises `InvalidId` for one the API cannot have issued (ids go into URL
    paths percent-encoded, one segment each), and every method sending a JSON body raises
    `InvalidParameter` (naming the field) for a value that is not plain JSON (`encode_json`).
    """

    def __init__(self, settings: ClientSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self._http = http
        #: The rate limits of the latest answer that carried them.
        self.rate_limits: RateLimits | None = None
        # The counters behind `statistics`: the open streams count their own events (one int
        # increment each); each one's count is added here when it closes.
        self._open: set[EventStream] = set()
        self._events: dict[str, int] = {"chat": 0, "responses": 0}
        self._streams: dict[tuple[str, str], int] = {}
        self._retries: dict[str, int] = {}
        self._model_limits: dict[str, RateLimits] = {}

    def statistics(self) -> ClientStatistics:
        """The client's counters since it was opened (`ClientStatistics`); a pass over the open
        streams, nothing counted per event but one increment."""
        events = dict(self._events)
        open_streams = dict.fromkeys(events, 0)
        for stream in self._open:
            events[stream.api] += stream.delivered
            open_streams[stream.api] += 1
        return ClientStatistics(
            events=events,
            streams=dict(self._streams),
            open_streams=open_streams,
            retries=dict(self._retries),
            rate_limits=dict(self._model_limits),
        )

    def _note_limits(self, model: object, limits: RateLimits | None) -> None:
        if limits is None:
            return
        self.rate_limits = limits
        if isinstance(model, str) and model:
            kept = self._model_limits
            kept.pop(model, None)  # re-inserted last: the dict's order is the order seen
            kept[model] = limits
            if len(kept) > _MODELS_KEPT:
                del kept[next(iter(kept))]

    def _note_retry(self, status: str) -> None:
        self._retries[status] = self._retries.get(status, 0) + 1

    def __repr__(self) -> str:
        return f"<OpenAIClient base_url={self.settings.base_url!r}>"

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[OpenAIClient]:
        """An async context manager around one shared `httpx.AsyncClient` (closed on exit).

        `settings` defaults to `ClientSettings.from_env()`; `transport` replaces the network
        (e.g. `httpx.MockTransport` in tests).
        """
        settings = settings if settings is not None else ClientSettings.from_env()
        headers = {"Accept": "application/json", **settings.default_headers}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        if settings.organization is not None:
            headers["OpenAI-Organization"] = settings.organization
        if settings.project is not None:
            headers["OpenAI-Project"] = settings.project
        if transport is None:
            # Connections in pools of at most SHARD_SIZE: httpcore's per-request scans stay short.
            transport = ShardedTransport(
                httpx.Limits(
                    max_connections=settings.max_connections,
                    max_keepalive_connections=settings.max_keepalive_connections,
                    keepalive_expiry=settings.keepalive_expiry,
                )
            )
        http = httpx.AsyncClient(
            base_url=settings.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.write_timeout,
                pool=settings.pool_timeout,
            ),
            transport=transport,
            follow_redirects=False,
        )
        try:
            yield cls(settings, http)
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await http.aclose()

    # -- the request core ------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        stream: bool = False,
        background_create: bool = False,
        model: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response (open when `stream`, else read). `model`
        (a create's) is whose rate limits the answers' headers are.

        Raises:
            InvalidParameter: a ``json`` body that is not plain JSON (`encode_json`), before I/O.
            InvalidRequestError: a URL httpx refuses to build (never an ``httpx.InvalidURL``).
            APIStatusError (per-status subclass): a non-2xx answer not retried or out of retries.
            APIConnectionError / APITimeoutError: no answer after the retries.
            OutcomeUnknownError: `background_create` and the request may have been received.
        """
        policy = self.settings.retry
        url = path.lstrip("/")
        if "json" in kwargs:
            # Checked and encoded once, here, for every call: NaN, a non-JSON object or a body
            # nested too deep is an InvalidParameter naming the field, before any I/O.
            kwargs["content"] = encode_json(kwargs.pop("json"))
            kwargs["headers"] = {"Content-Type": "application/json", **kwargs.get("headers", {})}
        retries = 0
        while True:
            try:
                request = self._http.build_request(method, url, **kwargs)
            except httpx.InvalidURL as exc:  # ids are checked and encoded before: this is a net
                raise InvalidRequestError(f"cannot build a URL for {method} {path!r}") from exc
            if retries:
                request.headers["x-stainless-retry-count"] = str(retries)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.RequestError as exc:
                error = _connection_error(exc)
                if background_create and not isinstance(exc, _NOT_SENT):
                    log.warning(
                        "openai.outcome_unknown", method=method, path=path, error=type(exc).__name__
                    )
                    raise OutcomeUnknownError(
                        "a background create may have reached the server and its answer was "
                        f"lost ({type(exc).__name__}); not retried to avoid a duplicate job",
                        method=method,
                        url=str(request.url),
                    ) from exc
                if retries >= policy.max_retries or not isinstance(exc, httpx.TransportError):
                    raise error from exc
                delay = policy.delay(retries)
                log.info(
                    "openai.retry",
                    method=method,
                    path=path,
                    attempt=retries + 1,
                    delay=round(delay, 3),
                    error=type(exc).__name__,
                )
                self._note_retry("connection")
                await trio.sleep(delay)
                retries += 1
                continue

            self._note_limits(model, RateLimits.from_headers(response.headers))
            if response.is_success:
                return response
            body: Any = None
            try:
                await response.aread()  # already read unless streaming
                body = _body_of(response)
            except httpx.RequestError:
                pass  # the error body was lost; the status still tells what happened
            finally:
                await response.aclose()
            err = status_error_from(
                response.status_code,
                body,
                response.headers,
                retry_after=policy.retry_after(response.headers),
            )
            retryable = policy.should_retry_status(response.status_code, response.headers, err)
            if (
                background_create
                and response.status_code >= 500
                and response.headers.get("x-should-retry") != "true"
            ):
                log.warning(
                    "openai.outcome_unknown",
                    method=method,
                    path=path,
                    status=response.status_code,
                    request_id=err.request_id,
                )
                raise OutcomeUnknownError(
                    f"a background create failed with {response.status_code}; the response may "
                    "exist server-side, so it was not retried",
                    method=method,
                    url=str(request.url),
                    request_id=err.request_id,
                ) from err
            if not retryable or retries >= policy.max_retries:
                log.warning(
                    "openai.error",
                    method=method,
                    path=path,
                    status=response.status_code,
                    code=err.code,
                    request_id=err.request_id,
                )
                raise err
            delay = policy.delay(retries, response.headers)
            log.info(
                "openai.retry",
                method=method,
                path=path,
                attempt=retries + 1,
                delay=round(delay, 3),
                status=response.status_code,
                request_id=err.request_id,
            )
            self._note_retry(str(response.status_code))
            await trio.sleep(delay)
            retries += 1

    def _prepare(
        self, api: Literal["chat", "responses"], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Check a create body locally, then apply the model rules.

        Raises:
            InvalidRequestError: no `model`; Chat without a `messages` list; Responses with both
                `previous_response_id` and `conversation` (mutually exclusive).
        """
        if not isinstance(body, Mapping):
            raise InvalidRequestError(f"a request body is a mapping, not {type(body).__name__}")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError("the request body needs a non-empty 'model'")
        if api == "chat" and not isinstance(body.get("messages"), list):
            raise InvalidRequestError("a chat request needs a 'messages' list")
        if api == "responses" and body.get("previous_response_id") and body.get("conversation"):
            raise InvalidRequestError(
                "'previous_response_id' and 'conversation' exclude each other"
            )
        if not self.settings.model_rules:
            return dict(body)
        new, dropped = apply_model_rules(api, body)
        if dropped:
            log.info("openai.params_dropped", model=new.get("model"), params=list(dropped))
        return new

    async def _send_create(
        self, path: str, body: dict[str, Any], *, stream: bool
    ) -> httpx.Response:
        """POST a create body; on a 400 naming an unsupported parameter, retry once without it."""
        background = body.get("background") is True
        model = body.get("model")
        try:
            return await self._send(
                "POST", path, json=body, stream=stream, background_create=background, model=model
            )
        except BadRequestError as err:
            drop = _droppable(err, body)
            if drop is None:
                raise
            log.warning(
                "openai.param_unsupported",
                model=body.get("model"),
                param=err.param,
                code=err.code,
                request_id=err.request_id,
            )
            return await self._send(
                "POST",
                path,
                json=_without(body, drop),
                stream=stream,
                background_create=background,
                model=model,
            )

    # -- streams ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _stream(
        self,
        response: httpx.Response,
        api: Literal["chat", "responses"],
        accumulator: ChatAccumulator | ResponseAccumulator,
        session_id: str | None,
        response_id: str | None = None,
        background: bool = False,
    ) -> AsyncIterator[EventStream]:
        try:
            ctype = response.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                await response.aread()
                raise MalformedStreamError(
                    f"expected text/event-stream, got {ctype or 'no content-type'!r}",
                    cursor=accumulator.cursor,
                    response_id=response_id,
                    request_id=response.headers.get("x-request-id"),
                    body=_body_of(response),
                )
            stream = EventStream(
                response,
                api=api,
                accumulator=accumulator,
                session_id=session_id,
                response_id=response_id,
                rate_limits=RateLimits.from_headers(response.headers),
                background=background,
            )
            self._open.add(stream)
            try:
                yield stream
            finally:
                self._open.discard(stream)
                self._events[api] += stream.delivered
                key = (api, stream.outcome)
                self._streams[key] = self._streams.get(key, 0) + 1
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    await stream.aclose()
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await response.aclose()

    @asynccontextmanager
    async def stream_chat(
        self, body: Mapping[str, Any], *, session_id: str | None = None
    ) -> AsyncIterator[EventStream]:
        """Stream a chat completion (`POST /chat/completions`, `stream: true`).

        Events are the chat chunks mapped into the Responses vocabulary (see `ChatAccumulator`).
        Without `stream_options` in `body`, `{"include_usage": true}` is sent so that the final
        completion carries usage (a server rejecting it as unsupported gets it dropped).

        Raises:
            On entry: as `_send` (per-status errors after retries, connection errors).
            While iterating: see `EventStream`.
        """
        prepared = self._prepare("chat", body)
        prepared["stream"] = True
        prepared.setdefault("stream_options", {"include_usage": True})
        response = await self._send_create("/chat/completions", prepared, stream=True)
        acc = ChatAccumulator(session_id=session_id)
        async with self._stream(response, "chat", acc, session_id) as stream:
            yield stream

    @asynccontextmanager
    async def stream_response(
        self, body: Mapping[str, Any], *, session_id: str | None = None
    ) -> AsyncIterator[EventStream]:
        """Stream a Responses create (`POST /responses`, `stream: true`).

        With `background: true` the stream can be resumed later with `resume_response`.

        Raises:
            On entry: as `_send`, including `OutcomeUnknownError` for a background create whose
            answer was lost before the headers. While iterating: see `EventStream`.
        """
        prepared = self._prepare("responses", body)
        prepared["stream"] = True
        response = await self._send_create("/responses", prepared, stream=True)
        background = prepared.get("background") is True
        async with self._stream(
            response, "responses", ResponseAccumulator(), session_id, background=background
        ) as stream:
            yield stream

    @asynccontextmanager
    async def resume_response(
        self,
        response_id: str,
        *,
        starting_after: int | None = None,
        snapshot: Mapping[str, Any] | None = None,
        session_id: str | None = None,
    ) -> AsyncIterator[EventStream]:
        """Resume a background stream: `GET /responses/{id}?stream=true&starting_after=N`.

        The server sends only events after `starting_after` (without `response.created`), so
        pass the `snapshot` the events apply to (your accumulator's `.snapshot`, or a GET); it
        seeds the accumulator, whose cursor starts at `starting_after`.

        Raises:
            On entry: as `_send` (e.g. `BadRequestError` for a response not created with
            `background: true`, `NotFoundError`). While iterating: see `EventStream`.
        """
        params: dict[str, Any] = {"stream": "true"}
        if starting_after is not None:
            params["starting_after"] = str(starting_after)
        response = await self._send(
            "GET",
            f"/responses/{id_segment(response_id, 'response_id')}",
            params=params,
            stream=True,
            headers={"Accept": "text/event-stream"},
        )
        acc = ResponseAccumulator(snapshot, cursor=starting_after)
        async with self._stream(response, "responses", acc, session_id, response_id) as stream:
            yield stream

    # -- JSON calls ------------------------------------------------------------------------

    async def create_response(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /responses` (not streamed); returns the Response object.

        Raises: as `_send`, including `OutcomeUnknownError` for `background: true`.
        """
        prepared = self._prepare("responses", body)
        prepared.pop("stream", None)
        response = await self._send_create("/responses", prepared, stream=False)
        result: dict[str, Any] = _body_of(response)
        return result

    async def retrieve_response(
        self, response_id: str, *, include: list[str] | None = None
    ) -> Polled:
        """`GET /responses/{id}`: the Response plus the server's polling hint.

        Raises: `NotFoundError` for an unknown or expired id; otherwise as `_send`.
        """
        params: dict[str, Any] = {}
        if include:
            params["include[]"] = include
        rid = id_segment(response_id, "response_id")
        response = await self._send("GET", f"/responses/{rid}", params=params)
        polled = Polled(
            response=_body_of(response),
            poll_after=_poll_after(response.headers),
            request_id=response.headers.get("x-request-id"),
            rate_limits=RateLimits.from_headers(response.headers),
        )
        if isinstance(polled.response, dict):  # (the poll's limits are those of its model)
            self._note_limits(polled.response.get("model"), polled.rate_limits)
        return polled

    async def cancel_response(self, response_id: str) -> dict[str, Any]:
        """`POST /responses/{id}/cancel`: returns the Response (status `cancelled`; idempotent).

        Raises:
            CancelRejected: 400, the response already finished (`.status` names how) or is not
                a background response (`.status` None).
            NotFoundError: unknown id. Otherwise as `_send`.
        """
        rid = id_segment(response_id, "response_id")
        try:
            response = await self._send("POST", f"/responses/{rid}/cancel")
        except BadRequestError as err:
            match = _CANCEL_STATUS.search(err.message)
            raise CancelRejected(
                err.message,
                status=match.group(1).lower() if match else None,
                status_code=err.status_code,
                headers=err.headers,
                request_id=err.request_id,
                code=err.code,
                type=err.type,
                param=err.param,
                body=err.body,
            ) from err
        result: dict[str, Any] = _body_of(response)
        return result

    async def delete_response(self, response_id: str) -> None:
        """`DELETE /responses/{id}`.

        Raises: `NotFoundError` for an unknown id; otherwise as `_send`.
        """
        rid = id_segment(response_id, "response_id")
        await self._send("DELETE", f"/responses/{rid}", headers={"Accept": "*/*"})

    async def list_models(self) -> dict[str, Any]:
        """`GET /models`: the list object (``{"object": "list", "data": [...]}``) as sent.

        Raises: as `_send`."""
        result: dict[str, Any] = _body_of(await self._send("GET", "/models"))
        return result

    async def retrieve_model(self, model: str) -> dict[str, Any]:
        """`GET /models/{model}`.

        Raises: `InvalidParameter` for a name that is not one (before any I/O);
        `NotFoundError` for an unknown model; otherwise as `_send`."""
        if check_model(model) in (".", ".."):  # a dot segment would be resolved away
            raise InvalidParameter("model", f"{model!r} is not a model name")
        segment = quote(model, safe="")
        result: dict[str, Any] = _body_of(await self._send("GET", f"/models/{segment}"))
        return result

    async def create_chat_completion(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """`POST /chat/completions` (not streamed); returns the chat completion.

        Raises: as `_send`.
        """
        prepared = self._prepare("chat", body)
        prepared.pop("stream", None)
        prepared.pop("stream_options", None)
        response = await self._send_create("/chat/completions", prepared, stream=False)
        result: dict[str, Any] = _body_of(response)
        return result
