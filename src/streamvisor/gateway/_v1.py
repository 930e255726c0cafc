"""``/v1``: the daemon speaks OpenAI's own API, so any OpenAI SDK gets supervised streams by
changing its base URL (``OPENAI_BASE_URL=http://127.0.0.1:8080/v1``, ``OPENAI_API_KEY=<the
gateway token>``; the daemon holds the real key).

Every request passes the gateway's door (Host, Origin, token) and is answered in OpenAI's wire
shapes; every refusal is OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``
with the status the SDKs map to their typed exceptions (401 without the token).

* ``POST /v1/chat/completions``: streamed, a session stream (`SessionHandle.chat`) relayed as
  chunks (`ChatChunks`); not streamed, passed through the daemon's client. Either way the
  daemon's retries and reasoning-model rules apply.
* ``POST /v1/responses``: streamed, a session stream with ``keep_events`` -- durable upstream by
  default (``[gateway] v1_durable``): a dropped upstream connection is resumed with
  ``starting_after`` and the client never sees it (`relay_response`); ``background: true``, a
  registered, polled background response; otherwise passed through.
* ``GET /v1/responses/{id}?stream=true[&starting_after=N]``: the events after N from the daemon's
  event log (so long after the API's five minutes), then live; upstream when the log lacks them.
* Files, uploads and models through the file actor and the client (see the handlers).

Sessions: the ``x-streamvisor-session`` header names the session whose topic
(``session.<id>``) carries the stream; without it each client connection gets its own
(``v1-<address>-<port>``), stopped once idle for ``[gateway] v1_session_idle`` seconds.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs
import structlog
import trio

from ..actors import (
    FileInputError,
    FileRejected,
    FileUploadFailed,
    InvalidSessionId,
    TooManyStreams,
    build_chat_body,
    build_responses_body,
    check_declared_type,
    check_session_id,
)
from ..openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    InvalidRequestError,
    OpenAIError,
    OutcomeUnknownError,
    PermissionDeniedError,
    check_json,
)
from ._checks import parse_cursor
from ._errors import (
    BadRequest,
    GatewayError,
    MethodNotAllowed,
    NotAuthenticated,
    NotFound,
    scrub,
    status_for,
)
from ._http import (
    ClientGone,
    Receive,
    Responder,
    Scope,
    json_object,
    parse_form,
    parse_query,
    path_segments,
    serve_watched,
    upload_form,
)
from ._routing import FORM, JSON, Route, match_route, read_admitted
from ._v1_relay import relay_chat, relay_response, resume_response
from ._v1_wire import ChatChunks, openai_error, plain_response

if TYPE_CHECKING:
    from ._app import GatewayApp

__all__ = ["MAX_V1_JSON", "ROUTES", "SESSION_HEADER", "V1Sessions", "serve_v1", "v1_problem"]

log = structlog.get_logger("streamvisor.gateway")

#: The header naming the session a ``/v1`` request's stream belongs to.
SESSION_HEADER: Final = "x-streamvisor-session"
#: Largest JSON body ``/v1`` takes (images and files inline as base64 make big requests).
MAX_V1_JSON: Final = 32 * 1024 * 1024
#: What the API says when the key is wrong; the SDKs raise ``AuthenticationError``.
_BAD_KEY: Final = (
    "Incorrect API key provided. This is a streamvisor gateway: use its token as the API key "
    "(python run.py prints it; it is stored in var/gateway-token)."
)

Handler = Callable[["V1Call"], Awaitable[None]]


@attrs.define
class V1Call:
    """One ``/v1`` request being served."""

    app: GatewayApp
    method: str
    params: dict[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    out: Responder
    session_id: str

    def json(self) -> dict[str, Any]:
        """The body as a JSON object. Raises `BadRequest` (not a JSON object) / `InvalidJSON`."""
        return json_object(self.body)


# ------------------------------------------------------------------------------------ errors


def _field(exc: BaseException) -> str | None:
    field = getattr(exc, "field", None) or getattr(exc, "param", None)
    return field if isinstance(field, str) else None


def v1_problem(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, body, headers)`` answering ``exc`` in OpenAI's shape.

    An upstream error keeps its status and body (scrubbed of credentials) -- except the
    daemon's own key being refused (401/403), which is the daemon's failure (502), not the
    client's key. A 500 says only that the gateway failed."""
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        message = "the upstream API refused the daemon's credentials"
        return 502, openai_error(message, "server_error", code="upstream_auth"), headers
    if isinstance(exc, APIStatusError):
        upstream = exc.body.get("error") if isinstance(exc.body, Mapping) else None
        if isinstance(upstream, Mapping):
            inner = {
                "message": scrub(str(upstream.get("message") or exc.message)),
                "type": upstream.get("type") or "invalid_request_error",
                "param": upstream.get("param"),
                "code": upstream.get("code"),
            }
        else:
            inner = openai_error(scrub(exc.message), "api_error", code=exc.code)["error"]
        retry_after = exc.headers.get("retry-after") if exc.headers is not None else None
        if retry_after is not None:
            headers["retry-after"] = retry_after
        if exc.request_id:
            headers["x-request-id"] = exc.request_id
        return exc.status_code, {"error": inner}, headers
    if isinstance(exc, OutcomeUnknownError):
        # Its message says what happened (the connection lost, or a 5xx answered): either way
        # the response may exist upstream, and creating it again may run it twice.
        message = f"{scrub(str(exc))} (it may exist upstream: retrying may run it twice)"
        return 502, openai_error(message, "server_error", code="outcome_unknown"), headers
    if isinstance(exc, APITimeoutError):
        return 504, openai_error("the upstream API timed out", "timeout", code="timeout"), headers
    if isinstance(exc, APIConnectionError):
        message = f"the upstream API could not be reached: {scrub(str(exc))}"
        return 502, openai_error(message, "server_error", code="upstream_unreachable"), headers
    if isinstance(exc, NotAuthenticated):
        headers["www-authenticate"] = 'Bearer realm="streamvisor"'
        return 401, openai_error(_BAD_KEY, "invalid_request_error", code="invalid_api_key"), headers
    if isinstance(exc, MethodNotAllowed):
        headers["allow"] = ", ".join(exc.allowed)
    if isinstance(exc, TooManyStreams):
        message = scrub(str(exc))
        return 429, openai_error(message, "rate_limit_error", code="too_many_streams"), headers
    if isinstance(exc, FileUploadFailed) and isinstance(exc.__cause__, OpenAIError):
        return v1_problem(exc.__cause__)
    if isinstance(exc, FileRejected):
        body = openai_error(scrub(str(exc)), "invalid_request_error", param="file", code=exc.rule)
        return 400, body, headers
    status = status_for(exc)
    if status == 500:
        return 500, openai_error("internal error", "server_error"), headers
    code = exc.code if isinstance(exc, GatewayError) else getattr(exc, "code", None)
    kind = "invalid_request_error" if status < 500 else "server_error"
    if isinstance(exc, FileInputError):
        code = code or getattr(exc, "rule", None)
    message = scrub(str(exc) or type(exc).__name__)
    return status, openai_error(message, kind, param=_field(exc), code=code), headers


# ------------------------------------------------------------------------------ the sessions


class V1Sessions:
    """The sessions of ``/v1`` clients that named none: one per connection, stopped once idle."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self._last_used: dict[str, float] = {}

    def for_request(self, scope: Scope, headers: Mapping[str, str]) -> str:
        """The request's session id: the header's (checked), else its connection's."""
        named = headers.get(SESSION_HEADER)
        if named is not None:
            try:
                return check_session_id(named)
            except InvalidSessionId as exc:
                raise BadRequest(
                    f"{SESSION_HEADER} must be 1-128 letters, digits or _-:@+= (no dots)",
                    field=SESSION_HEADER,
                ) from exc
        client = scope.get("client") or ("local", 0)
        host = re.sub(r"[^A-Za-z0-9]", "-", str(client[0]))[:96]
        return f"v1-{host}-{client[1]}"

    def touch(self, session_id: str) -> None:
        """The session served a request just now (a named one is not the gateway's to stop)."""
        if session_id.startswith("v1-"):
            self._last_used[session_id] = trio.current_time()

    async def reap(self, app: GatewayApp, serving: str) -> None:
        """Stop the connection sessions idle for longer than `idle` that run no stream (not
        ``serving``, the one of the request at hand)."""
        now = trio.current_time()
        idle = [s for s, t in self._last_used.items() if now - t >= self.idle and s != serving]
        for session_id in idle[:16]:
            handle = app.daemon.session(session_id)
            if handle is None:
                self._last_used.pop(session_id, None)
                continue
            try:
                if await handle.streams():
                    self._last_used[session_id] = now
                    continue
                await app.daemon.close_session(session_id)
            except Exception as exc:  # a session that went away meanwhile: forget it
                log.debug("v1.reap_failed", session=session_id, error=repr(exc))
            self._last_used.pop(session_id, None)


# ------------------------------------------------------------------------------ the handlers


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be a boolean", field=key)
    return value


async def _chat_completions(call: V1Call) -> None:
    body = call.json()
    check_json(body)
    daemon = call.app.daemon
    if not _flag(body, "stream"):
        # The session's own checks, so a bad request never reaches the API.
        rest = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
        build_chat_body(body.get("model"), body.get("messages"), rest)
        params = {k: v for k, v in body.items() if k != "stream"}
        await call.out.json(200, await daemon.client.create_chat_completion(params))
        return
    options = body.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise BadRequest("'stream_options' must be an object", field="stream_options")
    include_usage = bool(options and options.get("include_usage"))
    obfuscate = not options or options.get("include_obfuscation") is not False
    params = {k: v for k, v in body.items() if k not in ("model", "messages", "stream")}
    # The daemon always asks for usage upstream (it accounts for it); the client gets the usage
    # chunk only if it asked.
    params["stream_options"] = {**(options or {}), "include_usage": True}
    session = await daemon.open_session(call.session_id)
    await relay_chat(
        call.app,
        call.out,
        session,
        body.get("model"),
        body.get("messages"),
        params,
        ChatChunks(include_usage=include_usage, obfuscate=obfuscate),
    )


async def _create_response(call: V1Call) -> None:
    body = call.json()
    check_json(body)
    daemon = call.app.daemon
    stream = _flag(body, "stream")
    background = _flag(body, "background")
    params = {k: v for k, v in body.items() if k not in ("model", "input", "stream", "background")}
    # The session's own checks, so a bad request never reaches the API.
    build_responses_body(body.get("model"), body.get("input"), params)
    if not stream and not background:
        await call.out.json(200, await daemon.client.create_response(body))
        return
    if not stream:
        await call.out.json(200, await _create_background(call, body, params))
        return
    durable = call.app.v1_durable and body.get("store") is not False
    if background:
        durable = True  # what the client asked: background mode upstream
    session = await daemon.open_session(call.session_id)
    await relay_response(
        call.app,
        call.out,
        session,
        body.get("model"),
        body.get("input"),
        params,
        durable=durable,
        background=background,
    )


async def _create_background(
    call: V1Call, body: Mapping[str, Any], params: dict[str, Any]
) -> Mapping[str, Any]:
    """A background response, registered and polled by the daemon; the API's answer to its
    create (the Response, usually ``queued``)."""
    # The client's own store (or the API's default): how long its data is kept is its call.
    _, response = await call.app.daemon.background.create_with_response(
        body.get("input"),
        str(body.get("model") or ""),
        owner=call.session_id,
        force_store=False,
        **params,
    )
    return response


def _cursor(query: Mapping[str, str]) -> int | None:
    return parse_cursor(query.get("starting_after") or None)  # an empty value: none, as the SDKs


async def _retrieve_response(call: V1Call) -> None:
    rid = call.params["response_id"]
    stream = call.query.get("stream", "false").lower()
    if stream not in ("true", "false", "1", "0"):
        raise BadRequest("'stream' must be true or false", field="stream")
    if stream in ("true", "1"):
        obfuscate = call.query.get("include_obfuscation", "true").lower() not in ("false", "0")
        await resume_response(call.app, call.out, rid, _cursor(call.query), obfuscate=obfuscate)
        return
    include = [v for k, v in call.query.items() if k in ("include", "include[]")]
    polled = await call.app.daemon.client.retrieve_response(rid, include=include or None)
    known = await call.app.daemon.event_log.describe(rid)
    plain = known is not None and known.background is False  # it ran durable for a plain ask
    await call.out.json(200, plain_response(polled.response) if plain else polled.response)


async def _cancel_response(call: V1Call) -> None:
    rid = call.params["response_id"]
    await call.out.json(200, await call.app.daemon.background.cancel(rid))


async def _delete_response(call: V1Call) -> None:
    rid = call.params["response_id"]
    daemon = call.app.daemon
    await daemon.client.delete_response(rid)
    await daemon.event_log.forget(rid)
    await call.out.json(200, {"id": rid, "object": "response", "deleted": True})


async def _files_create(call: V1Call) -> None:
    part, purpose = upload_form(call.headers, call.body, None)  # the API requires purpose
    file = await call.app.daemon.files.upload(part.data, purpose=purpose, filename=part.filename)
    await call.out.json(200, file)


async def _files_list(call: V1Call) -> None:
    purpose = call.query.get("purpose") or None
    files = await call.app.daemon.files.list(purpose=purpose)
    order = call.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be asc or desc", field="order")
    files.sort(key=lambda f: (f.get("created_at") or 0, str(f.get("id"))), reverse=order == "desc")
    after = call.query.get("after")
    if after:
        ids = [f.get("id") for f in files]
        files = files[ids.index(after) + 1 :] if after in ids else []
    raw_limit = call.query.get("limit", "10000")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 10000:
        raise BadRequest("'limit' must be an integer from 1 to 10000", field="limit")
    page, more = files[: int(raw_limit)], len(files) > int(raw_limit)
    await call.out.json(
        200,
        {
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": more,
        },
    )


async def _files_retrieve(call: V1Call) -> None:
    await call.out.json(200, await call.app.daemon.files.retrieve(call.params["file_id"]))


async def _files_content(call: V1Call) -> None:
    data = await call.app.daemon.files.content(call.params["file_id"])
    await call.out.bytes(200, data, "application/octet-stream")


async def _files_delete(call: V1Call) -> None:
    await call.out.json(200, await call.app.daemon.files.delete(call.params["file_id"]))


async def _uploads_create(call: V1Call) -> None:
    body = call.json()
    check_json(body)
    client = call.app.daemon.client
    for key in ("filename", "purpose", "mime_type"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise BadRequest(f"'{key}' must be a non-empty string", field=key)
    size = body.get("bytes")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BadRequest("'bytes' must be a positive integer", field="bytes")
    upload = await client.create_upload(
        filename=body["filename"], purpose=body["purpose"], bytes=size, mime_type=body["mime_type"]
    )
    call.app.v1_uploads[str(upload.get("id"))] = body["mime_type"]
    await call.out.json(200, upload)


async def _uploads_part(call: V1Call) -> None:
    upload_id = call.params["upload_id"]
    form = parse_form(call.headers.get("content-type", ""), call.body)
    part = form.get("data")
    if part is None:
        raise BadRequest("the form has no 'data' field", field="data")
    declared = call.app.v1_uploads.pop(upload_id, None)
    if declared is not None:  # the first part carries the file's signature: check the type
        check_declared_type(part.data, declared)
    await call.out.json(200, await call.app.daemon.client.add_upload_part(upload_id, part.data))


async def _uploads_complete(call: V1Call) -> None:
    body = call.json()
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
        raise BadRequest("'part_ids' must be a list of part ids", field="part_ids")
    md5 = body.get("md5")
    if md5 is not None and not isinstance(md5, str):
        raise BadRequest("'md5' must be a string", field="md5")
    client = call.app.daemon.client
    await call.out.json(
        200, await client.complete_upload(call.params["upload_id"], part_ids, md5=md5)
    )


async def _uploads_cancel(call: V1Call) -> None:
    call.app.v1_uploads.pop(call.params["upload_id"], None)
    await call.out.json(200, await call.app.daemon.client.cancel_upload(call.params["upload_id"]))


async def _models_list(call: V1Call) -> None:
    await call.out.json(200, await call.app.daemon.client.list_models())


async def _models_retrieve(call: V1Call) -> None:
    await call.out.json(200, await call.app.daemon.client.retrieve_model(call.params["model"]))


# ------------------------------------------------------------------------------------- routing


_Route = Route[Handler]


def _r(method: str, template: str, handler: Handler, body: str = JSON) -> _Route:
    return Route.of(method, template, handler, body)


#: The routes under ``/v1`` (paths without the prefix).
ROUTES: Final[tuple[_Route, ...]] = (
    _r("POST", "chat/completions", _chat_completions),
    _r("POST", "responses", _create_response),
    _r("GET", "responses/{response_id}", _retrieve_response),
    _r("DELETE", "responses/{response_id}", _delete_response),
    _r("POST", "responses/{response_id}/cancel", _cancel_response),
    _r("POST", "files", _files_create, FORM),
    _r("GET", "files", _files_list),
    _r("GET", "files/{file_id}", _files_retrieve),
    _r("DELETE", "files/{file_id}", _files_delete),
    _r("GET", "files/{file_id}/content", _files_content),
    _r("POST", "uploads", _uploads_create),
    _r("POST", "uploads/{upload_id}/parts", _uploads_part, FORM),
    _r("POST", "uploads/{upload_id}/complete", _uploads_complete),
    _r("POST", "uploads/{upload_id}/cancel", _uploads_cancel),
    _r("GET", "models", _models_list),
    _r("GET", "models/{model}", _models_retrieve),
)


def _route(method: str, segments: tuple[str, ...]) -> tuple[_Route, dict[str, str]]:
    path = "/v1/" + "/".join(segments)
    return match_route(ROUTES, method, segments, path, "Invalid URL ({method} {path})")


def _check_params(params: Mapping[str, str]) -> None:
    """Path parameters: ids as the API issues them, models as the API names them."""
    from ..openai import check_id, check_model

    for name, value in params.items():
        try:
            if name == "model":
                check_model(value)
            else:
                check_id(value, name)
        except InvalidRequestError as exc:
            raise BadRequest(str(exc), field=name) from exc


async def serve_v1(
    app: GatewayApp,
    scope: Scope,
    receive: Receive,
    out: Responder,
    headers: Mapping[str, str],
) -> None:
    """Serve one ``/v1/...`` request, errors in OpenAI's shape."""
    method = str(scope["method"]).upper()
    refused: Exception | None = None
    found: tuple[_Route, dict[str, str]] | None = None
    session_id = ""
    segments: tuple[str, ...] = ()
    try:
        app.access.check(headers)
        segments = path_segments(scope)[1:]
        found = _route(method, segments)
        session_id = app.v1_sessions.for_request(scope, headers)
    except GatewayError as exc:
        refused = exc
    form = refused is None and found is not None and found[0].body == FORM
    limit = app.max_upload_bytes if form else MAX_V1_JSON
    admitted = await read_admitted(
        receive, method, headers, found, refused, limit=limit, check_params=_check_params
    )
    if admitted is None:
        return
    body, refused = admitted
    if refused is not None or found is None:
        await _answer(app, out, refused or NotFound("no route"), method, segments)
        return
    await app.v1_sessions.reap(app, session_id)
    call = V1Call(
        app, method, found[1], parse_query(scope), headers, body, out, session_id=session_id
    )
    handler = found[0].handler

    async def answer(exc: Exception) -> None:
        await _answer(app, out, exc, method, segments)

    try:
        await serve_watched(receive, out, lambda: handler(call), answer)
    finally:
        app.v1_sessions.touch(session_id)  # also when the request was cancelled


async def _answer(
    app: GatewayApp, out: Responder, exc: BaseException, method: str, segments: tuple[str, ...]
) -> None:
    status, body, headers = v1_problem(exc)
    if status >= 500:
        log.warning(
            "v1.request_failed",
            method=method,
            path=app.redact("/v1/" + "/".join(segments)),
            status=status,
            error=app.redact(repr(exc)),
            exc_info=status == 500,
        )
    try:
        if out.started:
            await out.finish()  # too late for a status: the stream just ends
        else:
            await out.json(status, body, headers)
    except ClientGone:
        pass
