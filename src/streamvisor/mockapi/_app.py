"""The ASGI application: routing, auth, standard headers, faults, request recording."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from . import _chat, _files, _responses
from ._config import MockAPIConfig
from ._errors import InvalidFault, InvalidScenario
from ._faults import Fault, first
from ._http import (
    BodyTooLarge,
    ConnectionDropped,
    Receive,
    Request,
    Responder,
    Scope,
    Send,
    StopStream,
    parse_scope,
    read_body,
)
from ._replay import parse_chunk_sizes, serve_replay
from ._scripts import Scenario, parse_scenario
from ._state import MockState, RecordedRequest
from ._wire import SERVER_ERROR, ApiProblem, IdFactory, format_go_duration

__all__ = ["MockApp", "create_app"]

_MB = 1024 * 1024
_MULTIPART_SLACK = 64 * 1024

Handler = Callable[["Call"], Awaitable[None]]


class Call:
    """One request being answered: what handlers receive."""

    def __init__(
        self,
        state: MockState,
        request: Request,
        responder: Responder,
        params: Mapping[str, str],
    ) -> None:
        self.state = state
        self.request = request
        self.responder = responder
        self.params = params
        self._body: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        if self._body is None:
            self._body = self.request.json_object()
        return self._body

    def scenario(self) -> Scenario:
        body = self.body() if self.request.body else {}
        metadata = body.get("metadata") or {}
        value = metadata.get("mock_scenario") if isinstance(metadata, Mapping) else None
        if value is None:
            value = self.request.headers.get("x-mock-scenario")
        return parse_scenario(value)

    def token_delay(self) -> float:
        body = self.body() if self.request.body else {}
        metadata = body.get("metadata") or {}
        value = metadata.get("mock_token_delay_ms") if isinstance(metadata, Mapping) else None
        if value is None:
            return self.state.config.token_delay
        try:
            delay = float(value) / 1000.0
        except (TypeError, ValueError):
            raise ApiProblem(400, "metadata['mock_token_delay_ms'] must be a number") from None
        return max(0.0, delay)

    async def replay_if_asked(self, scenario: Scenario) -> bool:
        if scenario.name != "replay":
            return False
        assert scenario.arg is not None
        body = self.body() if self.request.body else {}
        metadata = body.get("metadata") or {}
        sizes = metadata.get("mock_chunk_sizes") if isinstance(metadata, Mapping) else None
        if sizes is None:
            sizes = self.request.headers.get("x-mock-chunk-sizes")
        await serve_replay(
            self.state, self.responder, scenario.arg, parse_chunk_sizes(sizes), self.token_delay()
        )
        return True


async def _chat_completions(call: Call) -> None:
    scenario = call.scenario()
    if await call.replay_if_asked(scenario):
        return
    await _chat.handle_chat(
        call.state, call.request, call.responder, call.body(), scenario, call.token_delay()
    )


async def _create_response(call: Call) -> None:
    scenario = call.scenario()
    if await call.replay_if_asked(scenario):
        return
    await _responses.handle_create(
        call.state, call.request, call.responder, call.body(), scenario, call.token_delay()
    )


async def _retrieve_response(call: Call) -> None:
    header = call.request.headers.get("x-mock-scenario")
    if header is not None and await call.replay_if_asked(parse_scenario(header)):
        return
    await _responses.handle_retrieve(call.state, call.request, call.responder, call.params["id"])


async def _delete_response(call: Call) -> None:
    await _responses.handle_delete(call.state, call.request, call.responder, call.params["id"])


async def _input_items(call: Call) -> None:
    await _responses.handle_input_items(call.state, call.request, call.responder, call.params["id"])


async def _cancel_response(call: Call) -> None:
    await _responses.handle_cancel(call.state, call.request, call.responder, call.params["id"])


#: The models the embedded server lists (``GET /v1/models``); it answers for any model name.
MODELS: tuple[tuple[str, int, str], ...] = (
    ("gpt-4o", 1715367049, "system"),
    ("gpt-4o-mini", 1721172741, "system"),
    ("gpt-4.1", 1744316542, "system"),
    ("gpt-5", 1754425777, "system"),
    ("o3", 1744225308, "system"),
    ("o3-pro", 1748475349, "system"),
    ("o4-mini", 1744225351, "system"),
)


def _model(model_id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


async def _list_models(call: Call) -> None:
    data = [_model(*row) for row in MODELS]
    await call.responder.json(200, {"object": "list", "data": data})


async def _retrieve_model(call: Call) -> None:
    """`GET /v1/models/{model}`: the listed models; any other name is the API's 404."""
    model = call.params["model"]
    for row in MODELS:
        if row[0] == model:
            await call.responder.json(200, _model(*row))
            return
    raise ApiProblem(
        404,
        f"The model '{model}' does not exist or you do not have access to it.",
        code="model_not_found",
    )


def _files_route(name: str) -> Handler:
    handler = getattr(_files, name)

    async def route(call: Call) -> None:
        await handler(call.state, call.request, call.responder, **call.params)

    return route


_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("POST", re.compile(r"/v1/chat/completions"), _chat_completions),
    ("GET", re.compile(r"/v1/models"), _list_models),
    ("GET", re.compile(r"/v1/models/(?P<model>[^/]+)"), _retrieve_model),
    ("POST", re.compile(r"/v1/responses"), _create_response),
    ("GET", re.compile(r"/v1/responses/(?P<id>[^/]+)"), _retrieve_response),
    ("DELETE", re.compile(r"/v1/responses/(?P<id>[^/]+)"), _delete_response),
    ("POST", re.compile(r"/v1/responses/(?P<id>[^/]+)/cancel"), _cancel_response),
    ("GET", re.compile(r"/v1/responses/(?P<id>[^/]+)/input_items"), _input_items),
    ("POST", re.compile(r"/v1/files"), _files_route("create_file")),
    ("GET", re.compile(r"/v1/files"), _files_route("list_files")),
    ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), _files_route("retrieve_file")),
    ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)/content"), _files_route("file_content")),
    ("DELETE", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), _files_route("delete_file")),
    ("POST", re.compile(r"/v1/uploads"), _files_route("create_upload")),
    ("POST", re.compile(r"/v1/uploads/(?P<upload_id>[^/]+)/parts"), _files_route("add_part")),
    (
        "POST",
        re.compile(r"/v1/uploads/(?P<upload_id>[^/]+)/complete"),
        _files_route("complete_upload"),
    ),
    ("POST", re.compile(r"/v1/uploads/(?P<upload_id>[^/]+)/cancel"), _files_route("cancel_upload")),
]


def _route(method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
    for route_method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return handler, match.groupdict()
    return None


def _body_limit(config: MockAPIConfig, method: str, path: str) -> int:
    if method == "POST" and path == "/v1/files":
        return config.max_file_bytes + _MULTIPART_SLACK
    if method == "POST" and path.startswith("/v1/uploads/") and path.endswith("/parts"):
        return config.max_part_bytes + _MULTIPART_SLACK
    return 64 * _MB


def _mask(key: str) -> str:
    return key[:3] + "*" * max(4, len(key) - 7) + key[-4:] if len(key) > 8 else "*" * len(key)


def _check_auth(config: MockAPIConfig, request: Request) -> None:
    if config.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiProblem(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization"
            " header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password"
            " field (with blank username) if you're accessing the API from your browser and are"
            " prompted for a username. You can obtain an API key from"
            " https://platform.openai.com/account/api-keys.",
        )
    if key.strip() != config.api_key:
        raise ApiProblem(
            401,
            f"Incorrect API key provided: {_mask(key.strip())}. You can find your API key at"
            " https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _status_problem(fault: Fault) -> ApiProblem:
    headers: dict[str, str] = {}
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    if fault.kind == "insufficient_quota":
        return ApiProblem(
            429,
            "You exceeded your current quota, please check your plan and billing details. For"
            " more information on this error, read the docs:"
            " https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            code="insufficient_quota",
            headers=headers,
        )
    if fault.kind == "unsupported_parameter":
        assert fault.param is not None
        return _chat.unsupported_parameter(fault.param)
    code = fault.status_code or 500
    if code == 429:
        return ApiProblem(
            429,
            "Rate limit reached for requests. Please try again shortly.",
            "requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    if code == 503:
        return ApiProblem(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            headers=headers,
        )
    if code >= 500:
        return ApiProblem(code, SERVER_ERROR, "server_error", headers=headers)
    return ApiProblem(code, f"Injected error (HTTP {code}).", headers=headers)


class MockApp:
    """The ASGI app. Background work runs in `state.nursery` (set by `serve()`, or opened by
    the ASGI lifespan protocol when another server runs the app)."""

    def __init__(self, config: MockAPIConfig) -> None:
        self.config = config
        self.state = MockState(config=config, ids=IdFactory(config.seed))
        self._active: set[trio.CancelScope] = set()

    def cancel_requests(self) -> None:
        """Cancel every request being answered (used at shutdown: streams end at once)."""
        for scope in list(self._active):
            scope.cancel()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with trio.open_nursery() as nursery:
            owned = self.state.nursery is None
            if owned:
                self.state.nursery = nursery
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.cancel_requests()
                    if owned:
                        self.state.nursery = None
                        nursery.cancel_scope.cancel()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def _headers(self, request_id: str, tokens: int) -> dict[str, str]:
        now = trio.current_time()
        start, count, used = self.state.window
        if now - start >= 60.0:
            start, count, used = now, 0, 0
        count, used = count + 1, used + tokens
        self.state.window = (start, count, used)
        config = self.config
        return {
            "x-request-id": request_id,
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": str(config.ratelimit_requests),
            "x-ratelimit-limit-tokens": str(config.ratelimit_tokens),
            "x-ratelimit-remaining-requests": str(max(0, config.ratelimit_requests - count)),
            "x-ratelimit-remaining-tokens": str(max(0, config.ratelimit_tokens - used)),
            "x-ratelimit-reset-requests": format_go_duration(
                60.0 * count / config.ratelimit_requests
            ),
            "x-ratelimit-reset-tokens": format_go_duration(60.0 * used / config.ratelimit_tokens),
        }

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        method = str(scope["method"]).upper()
        path = str(scope["path"])
        request_id = state.ids.hex("req_", 32)
        too_large = False
        try:
            body = await read_body(receive, _body_limit(self.config, method, path))
        except BodyTooLarge:
            too_large, body = True, b""
        except trio.BrokenResourceError:
            return
        request = parse_scope(scope, body)
        state.record(
            RecordedRequest(
                method=method,
                path=path,
                query=request.query,
                headers=request.headers,
                body=_json_or_none(request),
                size=len(body),
            )
        )
        headers = self._headers(request_id, len(body) // 4)
        try:
            faults = state.faults.take(method, path, request.headers.get("x-mock-fault"))
        except InvalidFault as exc:
            await Responder(send, (), headers).json(400, _problem_body(str(exc), "x-mock-fault"))
            return
        responder = Responder(send, faults, headers)
        with trio.CancelScope() as cancel_scope:
            self._active.add(cancel_scope)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_disconnect, receive, nursery.cancel_scope)
                    await self._answer(request, responder, faults, too_large)
                    nursery.cancel_scope.cancel()
            finally:
                self._active.discard(cancel_scope)
        if responder.started and not responder.finished and not responder.dropped:
            # Cancelled mid-body (server shutdown or client gone): end the body cleanly.
            with trio.move_on_after(0.5, shield=True):
                await responder.finish()

    async def _answer(
        self, request: Request, responder: Responder, faults: list[Fault], too_large: bool
    ) -> None:
        """Answer the request; control-flow exceptions end here, never in hypercorn."""
        try:
            try:
                _check_auth(self.config, request)
                stall = first(faults, "stall")
                if stall is not None and stall.after_bytes is None:
                    await trio.sleep(stall.seconds or 0.0)
                for fault in faults:
                    if fault.kind in ("status", "insufficient_quota", "unsupported_parameter"):
                        raise _status_problem(fault)
                if too_large:
                    raise ApiProblem(
                        413 if not request.path.startswith("/v1/files") else 400,
                        "The request body is too large."
                        if not request.path.startswith("/v1/files")
                        else f"File is too large. Maximum size is {self.config.max_file_bytes}"
                        " bytes.",
                        param="file" if request.path.startswith("/v1/files") else None,
                        code="file_too_large" if request.path.startswith("/v1/files") else None,
                    )
                found = _route(request.method, request.path)
                if found is None:
                    raise ApiProblem(404, f"Invalid URL ({request.method} {request.path})")
                handler, params = found
                await handler(Call(self.state, request, responder, params))
            except InvalidScenario as exc:
                raise ApiProblem(400, str(exc), param="metadata") from None
        except ApiProblem as problem:
            if not responder.started:
                await responder.json(problem.status, problem.body, problem.headers)
            else:
                await responder.finish()
        except StopStream:
            await responder.finish()
        except ConnectionDropped:
            # Returning without finishing the body makes hypercorn close the connection.
            return


def _problem_body(message: str, param: str | None) -> dict[str, Any]:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    }


def _json_or_none(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", "") or not request.body:
        return None
    try:
        return json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


async def _watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def create_app(config: MockAPIConfig | None = None) -> MockApp:
    """Build the ASGI app (no I/O). Serve it with `serve()`, or any ASGI server on trio."""
    return MockApp(config or MockAPIConfig())
