"""The gateway's HTTP API as an OpenAPI 3.1 document: the one source of truth, as a Python dict.

`openapi_document` builds it; ``GET /openapi.json`` serves it (with the token, as every route);
``docs/openapi.json`` is the same document checked in, pretty-printed. After changing this module,
regenerate that file (a test fails until it matches)::

    python -m streamvisor.gateway._openapi > docs/openapi.json

What it describes:

* the gateway's own routes (every route of ``_app._ROUTES``): parameters with the patterns the
  gateway checks (`API_ID_PATTERN`, `NAME_PATTERN`, `TOPIC_PATTERN`, taken from the code that
  enforces them), request bodies, response bodies, and every error status of the table in
  ``_errors.py`` an operation can answer, each with the error body ``{"error": {"type", "code"?,
  "message", "field"?, ...}}``. ``GET /events`` and ``GET /background/{id}/events`` are
  ``text/event-stream`` (their frames are described in ``docs/gateway.md``, their payloads are
  the ``components.schemas`` named there); ``GET /ws`` is described as the GET that upgrades.
* the OpenAI-compatible ``/v1`` routes, by reference to OpenAI's API (free-form bodies, OpenAI's
  error body): their shapes are OpenAI's, not restated here.

The contract test (``tests/gateway/test_openapi.py``) fuzzes the gateway's own routes against
this document with schemathesis: a response that does not conform is a bug in the gateway or
here. Building the document does no I/O and cannot fail.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any, Final

from ..actors import NAME_PATTERN, TOPIC_PATTERN, Purpose
from ..openai import API_ID_PATTERN, MAX_JSON_DEPTH

__all__ = ["OPENAPI_VERSION", "openapi_document"]

#: The OpenAPI version the document follows.
OPENAPI_VERSION: Final = "3.1.0"

_OPENAI_DOCS: Final = "https://platform.openai.com/docs/api-reference"

JSON = dict[str, Any]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: JSON) -> JSON:
    """``schema`` or null (JSON Schema 2020-12: a type list, or ``anyOf`` for a ``$ref``)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def _object(
    properties: JSON, required: tuple[str, ...] | None = None, *, closed: bool = True, **extra: Any
) -> JSON:
    """An object schema; every property required unless ``required`` says otherwise; no other
    property allowed when ``closed`` (the gateway's own shapes: a new field is a new version
    of this document)."""
    schema: JSON = {"type": "object", **extra, "properties": properties}
    schema["required"] = list(properties if required is None else required)
    if closed:
        schema["additionalProperties"] = False
    return schema


_STRING: Final[JSON] = {"type": "string"}
_NON_EMPTY: Final[JSON] = {"type": "string", "minLength": 1}
_INT: Final[JSON] = {"type": "integer"}
_COUNT: Final[JSON] = {"type": "integer", "minimum": 0}
_NUMBER: Final[JSON] = {"type": "number"}
_BOOL: Final[JSON] = {"type": "boolean"}
_ANY_OBJECT: Final[JSON] = {"type": "object", "additionalProperties": True}
_TIME: Final[JSON] = {"type": "number", "description": "Seconds since the epoch (wall clock)."}
_API: Final[JSON] = {"type": "string", "enum": ["chat", "responses"]}
_RESPONSE_STATUS: Final[JSON] = {
    "type": "string",
    "enum": ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"],
}
#: A model name: the portable (ASCII) part of what the wire layer accepts (`MODEL_PATTERN`: 1-256
#: printable characters without whitespace).
_MODEL: Final[JSON] = {
    "type": "string",
    "pattern": "^[!-~]{1,256}$",
    "description": "A model name (`gpt-4o`, `o3-pro`, `ft:gpt-4o-mini:org::id`): 1-256 printable"
    " characters, no whitespace.",
}
#: Roles a Chat Completions message may have (the sessions' `CHAT_ROLES`; a test compares).
CHAT_ROLES: Final = ("assistant", "developer", "function", "system", "tool", "user")
#: Roles a Responses input message may have (the sessions' `INPUT_ROLES`; a test compares).
INPUT_ROLES: Final = ("assistant", "developer", "system", "user")
#: What ``GET /files?purpose=`` filters on (the files actor's `LISTED_PURPOSES`; a test compares).
LISTED_PURPOSES: Final = (
    *(p.value for p in Purpose),
    "assistants_output",
    "batch_output",
    "fine-tune-results",
)
_MESSAGES: Final[JSON] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": list(CHAT_ROLES)},
            "content": {"type": ["string", "array", "null"]},
        },
    },
    "description": "Chat Completions messages (at least one).",
}
_INPUT: Final[JSON] = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": list(INPUT_ROLES)},
                    "type": {"type": "string"},
                },
                "anyOf": [{"required": ["role"]}, {"required": ["type"]}],
            },
        },
    ],
    "description": "The Responses input: text, or input items (each with a `role` or a `type`).",
}
_TIMEOUT: Final[JSON] = {
    "type": ["number", "null"],
    "minimum": 0,
    "description": "Seconds to wait at most (null or absent: no limit but the gateway's own).",
}


# --------------------------------------------------------------------------------- the schemas


def _schemas() -> JSON:
    error = _object(
        {
            "type": {
                **_NON_EMPTY,
                "description": "The error's class name (`InvalidId`, `ResponseGone`, ...;"
                " `InternalError` for a 500).",
            },
            "code": {
                **_NON_EMPTY,
                "description": "The gateway's own errors: a stable snake_case name"
                " (`invalid_id`, `origin_not_allowed`, ...).",
            },
            "message": {
                **_NON_EMPTY,
                "description": "What went wrong, for people; scrubbed of anything shaped like a"
                " credential.",
            },
            "field": {**_STRING, "description": "The request field (or parameter) at fault."},
            "upstream_status": {
                **_INT,
                "description": "The OpenAI API's status, when the error is its answer.",
            },
            "request_id": {**_STRING, "description": "The OpenAI API's request id, if any."},
        },
        ("type", "message"),
    )
    stream_event = _object(
        {
            "type": {**_STRING, "description": "The event's name (`response.created`, ...)."},
            "sequence_number": _INT,
            "session_id": _nullable(_STRING),
            "response_id": _nullable(_STRING),
            "api": _API,
            "terminal": _BOOL,
            "data": {
                **_ANY_OBJECT,
                "description": "The API's event object (Responses), or Chat's chunk fields"
                " mapped to the event.",
            },
            "received_at": _TIME,
        },
        description="A stream's event (`StreamEvent`), named by its `type`.",
    )
    tool_call = _object(
        {
            "agent_id": _STRING,
            "call_id": _STRING,
            "name": _STRING,
            "arguments": {**_STRING, "description": "The model's JSON arguments, as text."},
            "request": {**_INT, "minimum": 1},
        },
        description="A function call an agent's model asked for (`agent.tool_call`).",
    )
    tool_result = _object(
        {
            "agent_id": _STRING,
            "call_id": _STRING,
            "name": _STRING,
            "output": _STRING,
            "is_error": _BOOL,
            "duration": {**_NUMBER, "minimum": 0},
        },
        description="The outcome of a tool call (`agent.tool_result`).",
    )
    background_registry = {
        "owner": {
            **_nullable(_STRING),
            "description": "The session that created it (its events go to `session.<owner>`).",
        },
        "mode": {
            "type": "string",
            "enum": ["poll", "stream"],
            "description": "Followed by GET polling, or by a durable session stream.",
        },
        "created_at": _TIME,
        "updated_at": _TIME,
        "last_polled_at": _nullable(_TIME),
        "cursor": {
            **_nullable(_COUNT),
            "description": "The last sequence number delivered (resume after it).",
        },
        "poll_attempts": _COUNT,
        "error_count": _COUNT,
        "terminal_at": _nullable(_TIME),
        "last_error": _nullable(_STRING),
        "metadata": _ANY_OBJECT,
        "request": {**_ANY_OBJECT, "description": "The create body, without credentials."},
    }
    # The registry's fields: all of them when tracked, none otherwise.
    tracked_rule: JSON = {
        "if": {"properties": {"tracked": {"const": True}}},
        "then": {"required": list(background_registry)},
        "else": {"not": {"anyOf": [{"required": [name]} for name in background_registry]}},
    }
    background = _object(
        {
            "object": {"const": "background"},
            "id": {**_STRING, "description": "The response id (`resp_...`)."},
            "tracked": {
                **_BOOL,
                "description": "The registry follows it; the registry's fields are present"
                " exactly when true.",
            },
            "status": {
                **_nullable(_STRING),
                "description": "The registry's status (tracked), else the Response's: queued,"
                " in_progress, completed, failed, cancelled or incomplete.",
            },
            "model": _nullable(_STRING),
            **background_registry,
            "response": {
                **_nullable(_ANY_OBJECT),
                "description": "The OpenAI Response the answer was made with (poll, cancel), or"
                " null (create and list answer from the registry).",
                "externalDocs": {"url": f"{_OPENAI_DOCS}/responses/object"},
            },
        },
        ("object", "id", "tracked", "status", "model", "response"),
        description="A background response: one shape on every route and WebSocket command.",
        **tracked_rule,
    )
    return {
        "Error": _object(
            {"error": error}, description="Every error the gateway's own routes answer."
        ),
        "OpenAIError": _object(
            {
                "error": _object(
                    {
                        "message": _STRING,
                        "type": _STRING,
                        "param": _nullable(_STRING),
                        "code": _nullable(_STRING),
                    },
                    closed=False,
                )
            },
            closed=False,
            description="OpenAI's error body (the `/v1` routes).",
            externalDocs={"url": f"{_OPENAI_DOCS}/responses"},
        ),
        "Health": _object(
            {
                "status": {"const": "ok"},
                "base_url": {**_STRING, "description": "Where API requests go."},
                "embedded": {**_BOOL, "description": "The embedded server serves the daemon."},
                "children": {
                    "type": "array",
                    "items": _object(
                        {
                            "id": _nullable(_STRING),
                            "type": {"type": "string", "enum": ["worker", "supervisor"]},
                            "alive": _BOOL,
                            "restarting": _BOOL,
                        }
                    ),
                    "description": "The root supervisor's children, in start order.",
                },
                "sessions": _COUNT,
                "agents": _COUNT,
                "active_background": _COUNT,
            },
            description="The daemon's status.",
        ),
        "Ticket": _object(
            {
                "stream_id": {**_STRING, "description": "The session's name for it (`stream-N`)."},
                "session_id": _STRING,
                "api": _API,
                "model": _STRING,
                "durable": _BOOL,
                "response_id": _nullable(_STRING),
                "topic": {**_STRING, "description": "Where its events go (`session.<id>`)."},
            },
            description="A stream the session accepted and started.",
        ),
        "Outcome": _object(
            {
                "stream_id": _STRING,
                "response_id": _nullable(_STRING),
                "status": {
                    **_STRING,
                    "description": "completed, incomplete, failed, cancelled, error, or"
                    " in_progress (a durable stream handed to the background poller).",
                },
                "ok": _BOOL,
                "response": {
                    **_nullable(_ANY_OBJECT),
                    "description": "The final (or partial) Response or chat completion.",
                },
                "error": _nullable(_object({"type": _STRING, "message": _STRING})),
                "last_sequence_number": _nullable(_INT),
            },
            description="How a stream ended.",
        ),
        "StreamInfo": _object(
            {
                "stream_id": _STRING,
                "api": _API,
                "model": _STRING,
                "durable": _BOOL,
                "response_id": _nullable(_STRING),
                "cursor": _nullable(_INT),
                "state": {
                    "type": "string",
                    "enum": ["starting", "streaming", "resuming", "stopping"],
                },
            },
            description="An active stream of a session.",
        ),
        "Background": background,
        "BackgroundList": _object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Background")}},
            description="The background responses not yet terminal, oldest first.",
        ),
        "FileObject": _object(
            {"id": _STRING, "object": {"const": "file"}},
            ("id", "object"),
            closed=False,
            description="OpenAI's File object.",
            externalDocs={"url": f"{_OPENAI_DOCS}/files/object"},
        ),
        "FileList": _object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("FileObject")}},
            description="Every file (of the purpose asked for), all pages followed.",
        ),
        "FileDeleted": _object(
            {"id": _STRING, "object": _STRING, "deleted": _BOOL},
            closed=False,
            description="OpenAI's answer to a file deletion.",
        ),
        "Agent": _object(
            {
                "agent_id": _STRING,
                "topic": {**_STRING, "description": "Where its events go (`agent.<id>`)."},
                "model": _STRING,
                "api": _API,
            },
            description="An agent started.",
        ),
        "AgentClosed": _object(
            {"agent_id": _STRING, "closed": {"const": True}}, description="An agent stopped."
        ),
        "AgentReply": _object(
            {
                "text": {**_STRING, "description": "The final answer (or the refusal)."},
                "tool_calls": {"type": "array", "items": _ref("ToolCall")},
                "tool_results": {"type": "array", "items": _ref("ToolResult")},
                "usage": _object(
                    {
                        "input_tokens": _COUNT,
                        "output_tokens": _COUNT,
                        "total_tokens": _COUNT,
                        "requests": _COUNT,
                    }
                ),
                "status": {**_STRING, "description": "completed, or incomplete."},
                "refused": _BOOL,
                "response_ids": {"type": "array", "items": _STRING},
            },
            description="What one turn of an agent produced.",
        ),
        "ToolCall": tool_call,
        "ToolResult": tool_result,
        "StreamEvent": stream_event,
        "BackgroundStatus": _object(
            {
                "response_id": _STRING,
                "status": _RESPONSE_STATUS,
                "previous": _nullable(_RESPONSE_STATUS),
                "terminal": _BOOL,
                "owner": _nullable(_STRING),
                "error": _nullable(_STRING),
                "gone": {**_BOOL, "description": "The API no longer knows it (404)."},
                "at": _TIME,
                "response": _nullable(_ANY_OBJECT),
            },
            description="A background response changed status (`background.status`).",
        ),
        "PollingStopped": _object(
            {
                "response_id": _STRING,
                "status": _RESPONSE_STATUS,
                "error": _STRING,
                "code": _nullable(_STRING),
                "at": _TIME,
                "owner": _nullable(_STRING),
            },
            description="Polling gave up on an active response (`background.polling_stopped`).",
        ),
        "Missed": _object(
            {"count": {**_INT, "minimum": 1}, "topic": _nullable(_STRING)},
            description="The subscriber missed `count` items (`missed`).",
        ),
        "StreamEnd": _object(
            {"reason": _STRING},
            description="The last frame of an event stream (`shutdown` or `end`); `end` of a"
            " broken background stream also carries the error's fields.",
            closed=False,
        ),
        # Request bodies.
        "ChatRequest": _object(
            {"model": _MODEL, "messages": _MESSAGES},
            closed=False,
            examples=[{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}],
            description="A Chat Completions request body (without `stream`): every other field"
            " is passed to the API as it is.",
            externalDocs={"url": f"{_OPENAI_DOCS}/chat/create"},
        ),
        "ResponsesRequest": _object(
            {
                "model": _MODEL,
                "input": _INPUT,
                "durable": {
                    "type": ["boolean", "null"],
                    "description": "Background + resumable (null: the daemon's default).",
                },
            },
            ("model", "input"),
            closed=False,
            examples=[{"model": "gpt-4o", "input": "Hello", "durable": False}],
            description="A Responses request body: every other field is passed to the API.",
            externalDocs={"url": f"{_OPENAI_DOCS}/responses/create"},
        ),
        "StopRequest": _object(
            {
                "stream_id": {
                    "type": ["string", "null"],
                    "pattern": f"^{STREAM_ID_PATTERN}$",
                    "description": "One stream (absent or null: all).",
                }
            },
            (),
        ),
        "WaitRequest": _object({"timeout": _TIMEOUT}, (), examples=[{"timeout": 1}]),
        "BackgroundRequest": _object(
            {
                "model": _MODEL,
                "input": {
                    "anyOf": [*_INPUT["anyOf"], {"type": "null"}],
                    "description": "The Responses input: text, input items, or null (none: say"
                    " `previous_response_id` or `prompt` instead).",
                },
                "owner": {
                    "type": ["string", "null"],
                    "pattern": f"^{NAME_PATTERN}$",
                    "description": "A session id: its topic gets the response's events too.",
                },
            },
            ("model", "input"),
            closed=False,
            examples=[{"model": "gpt-4o", "input": "Hello"}],
            description="A Responses request body, created with `background` and `store`:"
            " every other field is passed to the API.",
            externalDocs={"url": f"{_OPENAI_DOCS}/responses/create"},
        ),
        "AgentRequest": _object(
            {
                "model": _MODEL,
                "instructions": _nullable(_STRING),
                "api": {**_API, "default": "responses"},
                "options": {**_nullable(_ANY_OBJECT), "description": "Model parameters."},
            },
            ("model",),
            examples=[{"model": "gpt-4o", "instructions": "Answer briefly."}],
            description="An agent to start; `tools` cannot cross HTTP (400 `not_over_http`).",
        ),
        "AskRequest": _object(
            {"text": _STRING, "timeout": _TIMEOUT}, ("text",), examples=[{"text": "Hello"}]
        ),
        "FileUpload": _object(
            {
                "file": {"type": "string", "contentMediaType": "application/octet-stream"},
                "purpose": {
                    "type": "string",
                    "enum": [p.value for p in Purpose],
                    "default": "user_data",
                },
            },
            ("file",),
            closed=False,
        ),
    }


# ------------------------------------------------------------------------------ the responses

#: Every status the gateway's own routes answer with an error, and why (`_errors.status_for`).
_ERROR_STATUSES: Final[dict[int, str]] = {
    400: "A malformed request: a field missing or mistyped (`BadRequest`), JSON refused"
    " (`InvalidJSON`), an id outside its pattern (`InvalidId`), a daemon's typed refusal (a"
    " `ValueError`: `InvalidSessionRequest`, the file errors, `InvalidPattern`, ...), or the"
    " API's own 400.",
    401: "No gateway token, or a wrong one (`NotAuthenticated`).",
    403: "A foreign `Origin` (`CrossOriginRefused`) or `Host` (`HostNotAllowed`).",
    404: "No such running session, agent, stream or response (`NotFound`, `UnknownStream`,"
    " `ResponseGone`, ...), or the API's own 404.",
    405: "The path does not answer this method (`MethodNotAllowed`, with `Allow`): any method an"
    " operation here does not list.",
    409: "Busy: `TooManyStreams`, `AgentBusy`, `AlreadyStarted`, `StreamStopped`; the request's"
    " own `timeout` ran out (`TimeoutElapsed`: a stream still running, a turn cancelled); or the"
    " API's own 409.",
    413: "The body is larger than 4 MiB (`PayloadTooLarge`; JSON nested deeper than"
    f" {MAX_JSON_DEPTH} levels is a 400).",
    415: "A body that is not `application/json` (`multipart/form-data` for an upload).",
    422: "The API's own 422.",
    500: "The gateway failed (`InternalError`: a generic message; the details are logged).",
    502: "The API failed (its credentials, a server error, a broken connection):"
    " `upstream_status`, `request_id`.",
    503: "Unavailable: the API's 429 (with `retry-after`), or an actor that is not there or"
    " restarting (`NoSuchActor`, `ActorExited`, `BusClosed`, `MaxChildren`, `StreamLost`).",
    504: "Timed out: an actor's answer (`CallTimeout`) or the API.",
}

#: Statuses every gateway operation may answer: the door, and a failing or restarting daemon.
_ALWAYS: Final = (401, 403, 500, 503, 504)
#: An operation with a JSON body.
_BODY: Final = (400, 413, 415)
#: An operation that calls the API: its 4xx pass through; its failures are 502/503/504.
_UPSTREAM: Final = (400, 404, 409, 422, 502)


def _error_responses() -> JSON:
    responses: JSON = {}
    for status, description in _ERROR_STATUSES.items():
        response: JSON = {
            "description": description,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"const": 'Bearer realm="streamvisor"'}}
            }
        if status == 405:
            response["headers"] = {
                "Allow": {"description": "The methods the path answers.", "schema": _STRING}
            }
        if status == 503:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait (the API's 429 only).",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            }
        responses[str(status)] = response
    return responses


def _ok(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _sse(description: str, data: list[str]) -> JSON:
    """A ``text/event-stream`` answer; its ``schema`` describes each event (OpenAPI 3.1: one
    event, as parsed: its ``event`` name and its ``data`` line, JSON of one of ``data``)."""
    event = _object(
        {
            "event": {**_NON_EMPTY, "description": "The event's name (see docs/gateway.md)."},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [_ref(name) for name in data]},
                "description": "One line of JSON.",
            },
            "id": _STRING,
            "retry": _INT,
        },
        ("event", "data"),
    )
    return {
        "description": f"{description} Server-sent events: `event: <name>` + one `data: <json>`"
        " line each, `:` comment lines as keepalives (see docs/gateway.md).",
        "content": {"text/event-stream": {"schema": event}},
    }


def _operation(
    operation_id: str,
    summary: str,
    ok: JSON,
    errors: tuple[int, ...],
    *,
    tag: str,
    parameters: list[JSON] | None = None,
    body: JSON | None = None,
    description: str | None = None,
    links: dict[str, tuple[str, dict[str, str]]] | None = None,
    link_bodies: dict[str, JSON] | None = None,
) -> JSON:
    """One operation: its 200 answer (``links``: name -> (operationId, parameters), what the
    answer lets a client call next, with the body of ``link_bodies[name]`` if any) and the
    errors of ``errors`` and `_ALWAYS`."""
    operation: JSON = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    if links:
        bodies = link_bodies or {}
        ok = {
            **ok,
            "links": {
                name: {
                    "operationId": target,
                    "parameters": values,
                    **({"requestBody": bodies[name]} if name in bodies else {}),
                }
                for name, (target, values) in links.items()
            },
        }
    statuses = sorted({*_ALWAYS, *errors})
    operation["responses"] = {
        "200": ok,
        **{str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses},
    }
    return operation


def _json_body(schema: str, *, required: bool = True) -> JSON:
    body: JSON = {"content": {"application/json": {"schema": _ref(schema)}}}
    if required:
        body["required"] = True
    else:
        body["description"] = "Optional: an empty body is `{}`."
    return body


# ----------------------------------------------------------------------------- the parameters


def _path(name: str, pattern: str, description: str, example: str) -> JSON:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": f"^{pattern}$"},
        "example": example,
    }


_SESSION: Final = _path("session", NAME_PATTERN, "A session id (the caller chooses it).", "s1")
_AGENT: Final = _path("agent", NAME_PATTERN, "An agent id (the caller chooses it).", "a1")
_RESPONSE_ID: Final = _path("id", API_ID_PATTERN, "A response id (`resp_...`).", "resp_1")
_FILE_ID: Final = _path("id", API_ID_PATTERN, "A file id (`file-...`).", "file-1")
#: A session's stream id (what the sessions accept; the gateway itself checks `API_ID_PATTERN`,
#: the session the rest: 400 either way; a test compares it with the sessions' rule).
STREAM_ID_PATTERN: Final = "stream-[1-9][0-9]{0,18}"
_STREAM_ID: Final = _path(
    "stream", STREAM_ID_PATTERN, "A stream id of the session (`stream-N`).", "stream-1"
)
_TOPIC: Final[JSON] = {
    "name": "topic",
    "in": "query",
    "description": "A subscription pattern: dot-separated topic segments, `*` for one segment,"
    " `**` (last) for any rest: `session.s1`, `background.*`, `**` (the default).",
    "schema": {"type": "string", "pattern": f"^{TOPIC_PATTERN}$", "default": "**"},
}


# --------------------------------------------------------------------------------- the routes


def _gateway_paths() -> JSON:
    bg, sessions, files, agents, bus = "background", "sessions", "files", "agents", "events"
    return {
        "/": {
            "get": {
                "operationId": "page",
                "summary": "The live page",
                "tags": ["page"],
                "description": "With `?token=` (which sets the page's cookie) or the token: the"
                " page. Without: a page saying where to find the token (401).",
                "security": [{}],
                "parameters": [
                    {
                        "name": "token",
                        "in": "query",
                        "description": "The gateway's token: sets the `HttpOnly` cookie.",
                        "schema": _STRING,
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": _STRING}},
                    },
                    "401": {
                        "description": "Where to find the token.",
                        "content": {"text/html": {"schema": _STRING}},
                    },
                    "403": {"$ref": "#/components/responses/E403"},
                },
            }
        },
        "/health": {
            "get": _operation(
                "health",
                "The daemon's status",
                _ok(_ref("Health"), "Its status."),
                (),
                tag="daemon",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                _ok(_ANY_OBJECT, "The gateway's API as an OpenAPI 3.1 document."),
                (),
                tag="daemon",
            )
        },
        "/sessions/{session}/chat": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionChat",
                "Start a Chat Completions stream in a session (starting the session)",
                _ok(_ref("Ticket"), "The stream started; its events go to `session.<id>`."),
                (*_BODY, *_UPSTREAM),
                tag=sessions,
                body=_json_body("ChatRequest"),
                links={
                    "WaitForIt": (
                        "sessionWait",
                        {"session": "$request.path.session", "stream": "$response.body#/stream_id"},
                    ),
                    "StopIt": ("sessionStop", {"session": "$request.path.session"}),
                    "ListStreams": ("sessionStreams", {"session": "$request.path.session"}),
                },
            ),
        },
        "/sessions/{session}/responses": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionRespond",
                "Start a Responses stream in a session (starting the session)",
                _ok(_ref("Ticket"), "The stream started; its events go to `session.<id>`."),
                (*_BODY, *_UPSTREAM),
                tag=sessions,
                body=_json_body("ResponsesRequest"),
                links={
                    "WaitForIt": (
                        "sessionWait",
                        {"session": "$request.path.session", "stream": "$response.body#/stream_id"},
                    ),
                    "StopIt": ("sessionStop", {"session": "$request.path.session"}),
                    "ListStreams": ("sessionStreams", {"session": "$request.path.session"}),
                },
            ),
        },
        "/sessions/{session}/stop": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionStop",
                "Stop one stream, or every stream, of a running session",
                _ok(
                    _object({"outcomes": {"type": "array", "items": _ref("Outcome")}}),
                    "How each stopped stream ended.",
                ),
                (*_BODY, 404),
                tag=sessions,
                body=_json_body("StopRequest", required=False),
            ),
        },
        "/sessions/{session}/streams": {
            "parameters": [_SESSION],
            "get": _operation(
                "sessionStreams",
                "The active streams of a running session",
                _ok(
                    _object({"streams": {"type": "array", "items": _ref("StreamInfo")}}),
                    "Its active streams.",
                ),
                (400, 404),
                tag=sessions,
            ),
        },
        "/sessions/{session}/wait/{stream}": {
            "parameters": [_SESSION, _STREAM_ID],
            "post": _operation(
                "sessionWait",
                "Wait for a stream of a running session to end",
                _ok(_ref("Outcome"), "How it ended."),
                (*_BODY, 404, 409),
                tag=sessions,
                body=_json_body("WaitRequest", required=False),
            ),
        },
        "/background": {
            "post": _operation(
                "backgroundCreate",
                "Create a background response and track it",
                _ok(_ref("Background"), "Created and tracked (`response` null)."),
                (*_BODY, *_UPSTREAM),
                tag=bg,
                body=_json_body("BackgroundRequest"),
                description="Forces `background` and `store`; its status changes go to"
                " `background.<id>` (and `session.<owner>`) as `background.status` events.",
                links={
                    "PollIt": ("backgroundPoll", {"id": "$response.body#/id"}),
                    "CancelIt": ("backgroundCancel", {"id": "$response.body#/id"}),
                    "ResumeItsEvents": ("backgroundEvents", {"id": "$response.body#/id"}),
                },
            ),
            "get": _operation(
                "backgroundList",
                "The tracked background responses not yet terminal",
                _ok(_ref("BackgroundList"), "Oldest first (`response` null in each)."),
                (),
                tag=bg,
            ),
        },
        "/background/{id}": {
            "parameters": [_RESPONSE_ID],
            "get": _operation(
                "backgroundPoll",
                "Poll a response now (updating the registry if it is tracked)",
                _ok(_ref("Background"), "It, with the Response just fetched."),
                (400, *_UPSTREAM),
                tag=bg,
            ),
        },
        "/background/{id}/cancel": {
            "parameters": [_RESPONSE_ID],
            "post": _operation(
                "backgroundCancel",
                "Cancel a background response",
                _ok(_ref("Background"), "It, with the Response in its final state."),
                (*_BODY, *_UPSTREAM),
                tag=bg,
                description="No body is needed. A cancel that lost the race with the response"
                " finishing answers its final state; a response that is not a background one is"
                " 400 (`CancelRejected`).",
            ),
        },
        "/background/{id}/events": {
            "parameters": [_RESPONSE_ID],
            "get": _operation(
                "backgroundEvents",
                "Resume a background response's event stream",
                _sse(
                    "The response's events after the cursor, to its terminal one (or a last"
                    " `end`/`shutdown` frame).",
                    ["StreamEvent", "StreamEnd"],
                ),
                (400, *_UPSTREAM),
                tag=bg,
                parameters=[
                    {
                        "name": "starting_after",
                        "in": "query",
                        "description": "A sequence number: the events after it (absent: all).",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                    }
                ],
                description="Each event is a `StreamEvent` named by its type, to the terminal"
                " one; a stream that breaks ends with `event: end` naming the error: reconnect"
                " with `starting_after` = the last `sequence_number` received.",
            ),
        },
        "/files": {
            "get": _operation(
                "filesList",
                "Every file (of a purpose)",
                _ok(_ref("FileList"), "The files."),
                _UPSTREAM,
                tag=files,
                parameters=[
                    {
                        "name": "purpose",
                        "in": "query",
                        "description": "Only the files of this purpose (empty: all).",
                        "schema": {"type": "string", "enum": ["", *LISTED_PURPOSES]},
                    }
                ],
            ),
            "post": _operation(
                "filesUpload",
                "Upload a file (its type is sniffed from its content)",
                _ok(_ref("FileObject"), "The uploaded (or deduplicated) file."),
                (*_BODY, *_UPSTREAM),
                tag=files,
                body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": _ref("FileUpload")}},
                },
                links={
                    "RetrieveIt": ("filesRetrieve", {"id": "$response.body#/id"}),
                    "DeleteIt": ("filesDelete", {"id": "$response.body#/id"}),
                },
            ),
        },
        "/files/{id}": {
            "parameters": [_FILE_ID],
            "get": _operation(
                "filesRetrieve",
                "A file's object",
                _ok(_ref("FileObject"), "The file."),
                (400, *_UPSTREAM),
                tag=files,
            ),
            "delete": _operation(
                "filesDelete",
                "Delete a file",
                _ok(_ref("FileDeleted"), "The API's answer."),
                (400, *_UPSTREAM),
                tag=files,
            ),
        },
        "/agents/{agent}": {
            "parameters": [_AGENT],
            "post": _operation(
                "agentOpen",
                "Start an agent",
                _ok(_ref("Agent"), "Started; its events go to `agent.<id>`."),
                (*_BODY, 409),
                tag=agents,
                body=_json_body("AgentRequest"),
                links={
                    "AskIt": ("agentAsk", {"agent": "$request.path.agent"}),
                    "CloseIt": ("agentClose", {"agent": "$request.path.agent"}),
                },
                link_bodies={"AskIt": {"text": "Hello"}},
            ),
            "delete": _operation(
                "agentClose",
                "Stop a running agent",
                _ok(_ref("AgentClosed"), "Stopped."),
                (400, 404),
                tag=agents,
            ),
        },
        "/agents/{agent}/ask": {
            "parameters": [_AGENT],
            "post": _operation(
                "agentAsk",
                "Run one turn of a running agent",
                _ok(_ref("AgentReply"), "Its reply."),
                (*_BODY, *_UPSTREAM),
                tag=agents,
                body=_json_body("AskRequest"),
            ),
        },
        "/events": {
            "get": _operation(
                "events",
                "The event bus as server-sent events",
                _sse(
                    "Every item published on a matching topic, until the client leaves (or a"
                    " last `end`/`shutdown` frame).",
                    [
                        "StreamEvent",
                        "BackgroundStatus",
                        "PollingStopped",
                        "Missed",
                        "ToolCall",
                        "ToolResult",
                        "StreamEnd",
                    ],
                ),
                (400,),
                tag=bus,
                parameters=[_TOPIC],
                description="Every item published on a topic the pattern matches, as `event:"
                " <name>` + `data: <json>` (`StreamEvent`, `BackgroundStatus`,"
                " `PollingStopped`, `Missed`, `ToolCall`, `ToolResult`), until the client"
                " leaves; `event: shutdown` when the daemon or the gateway stops, `event: end`"
                " when the subscriber fell a whole buffer behind.",
            )
        },
        "/ws": {
            "get": {
                "operationId": "websocket",
                "summary": "The event bus over a WebSocket, plus commands",
                "tags": [bus],
                "description": "A GET with `Upgrade: websocket`: the same items as `/events`"
                ' (`{"kind": "event", "event", "data"}`) and JSON commands (`{"op":'
                " ...}`); see docs/gateway.md. A refused handshake gets the HTTP status and body"
                " `GET /events` would give.",
                "parameters": [
                    _TOPIC,
                    {
                        "name": "Upgrade",
                        "in": "header",
                        "required": True,
                        "schema": {"const": "websocket"},
                    },
                ],
                "responses": {
                    "101": {"description": "Switching Protocols: the WebSocket is open."},
                    **{
                        str(s): {"$ref": f"#/components/responses/E{s}"}
                        for s in (400, 401, 403, 404, 503)
                    },
                },
            }
        },
    }


# -------------------------------------------------------------------------------- /v1 (OpenAI)

_JSON_TYPE: Final = "application/json"
_MULTIPART: Final = "multipart/form-data"


def _v1(
    operation_id: str, summary: str, doc: str, *, body: str | None = None, ok: str = _JSON_TYPE
) -> JSON:
    operation: JSON = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["openai"],
        "description": f"As OpenAI's API: {_OPENAI_DOCS}/{doc}. Bodies are OpenAI's (not"
        " restated here); errors are OpenAI's error body.",
        "externalDocs": {"url": f"{_OPENAI_DOCS}/{doc}"},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body: {"schema": _ANY_OBJECT}}}
    content: JSON = (
        {ok: {"schema": _ANY_OBJECT}}
        if ok == _JSON_TYPE
        else {ok: {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}
    )
    if operation_id in ("v1ChatCompletions", "v1ResponsesCreate", "v1ResponsesRetrieve"):
        content["text/event-stream"] = {"schema": _STRING}
    operation["responses"] = {
        "200": {"description": "OpenAI's answer.", "content": content},
        "default": {
            "description": "OpenAI's error body.",
            "content": {_JSON_TYPE: {"schema": _ref("OpenAIError")}},
        },
    }
    return operation


def _v1_path(name: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "schema": _STRING}


def _v1_paths() -> JSON:
    response_id, file_id, upload_id = (
        _v1_path("response_id"),
        _v1_path("file_id"),
        _v1_path("upload_id"),
    )
    retrieve = _v1("v1ResponsesRetrieve", "Retrieve a response", "responses/get")
    retrieve["parameters"] = [
        {"name": "stream", "in": "query", "schema": _BOOL},
        {"name": "starting_after", "in": "query", "schema": {**_INT, "minimum": 0}},
        {
            "name": "include",
            "in": "query",
            "schema": {"type": "array", "items": _STRING},
            "explode": True,
        },
    ]
    return {
        "/v1/chat/completions": {
            "post": _v1(
                "v1ChatCompletions", "Create a chat completion", "chat/create", body=_JSON_TYPE
            )
        },
        "/v1/responses": {
            "post": _v1(
                "v1ResponsesCreate", "Create a response", "responses/create", body=_JSON_TYPE
            )
        },
        "/v1/responses/{response_id}": {
            "parameters": [response_id],
            "get": retrieve,
            "delete": _v1("v1ResponsesDelete", "Delete a response", "responses/delete"),
        },
        "/v1/responses/{response_id}/cancel": {
            "parameters": [response_id],
            "post": _v1("v1ResponsesCancel", "Cancel a background response", "responses/cancel"),
        },
        "/v1/files": {
            "get": _v1("v1FilesList", "List files", "files/list"),
            "post": _v1("v1FilesCreate", "Upload a file", "files/create", body=_MULTIPART),
        },
        "/v1/files/{file_id}": {
            "parameters": [file_id],
            "get": _v1("v1FilesRetrieve", "Retrieve a file", "files/retrieve"),
            "delete": _v1("v1FilesDelete", "Delete a file", "files/delete"),
        },
        "/v1/files/{file_id}/content": {
            "parameters": [file_id],
            "get": _v1(
                "v1FilesContent",
                "Retrieve a file's content",
                "files/retrieve-contents",
                ok="application/octet-stream",
            ),
        },
        "/v1/uploads": {
            "post": _v1("v1UploadsCreate", "Create an upload", "uploads/create", body=_JSON_TYPE)
        },
        "/v1/uploads/{upload_id}/parts": {
            "parameters": [upload_id],
            "post": _v1("v1UploadsAddPart", "Add a part", "uploads/add-part", body=_MULTIPART),
        },
        "/v1/uploads/{upload_id}/complete": {
            "parameters": [upload_id],
            "post": _v1(
                "v1UploadsComplete", "Complete an upload", "uploads/complete", body=_JSON_TYPE
            ),
        },
        "/v1/uploads/{upload_id}/cancel": {
            "parameters": [upload_id],
            "post": _v1("v1UploadsCancel", "Cancel an upload", "uploads/cancel"),
        },
        "/v1/models": {"get": _v1("v1ModelsList", "List models", "models/list")},
        "/v1/models/{model}": {
            "parameters": [_v1_path("model")],
            "get": _v1("v1ModelsRetrieve", "Retrieve a model", "models/retrieve"),
        },
    }


# ------------------------------------------------------------------------------- the document

_DESCRIPTION: Final = """\
The HTTP front door of a streamvisor daemon: sessions that stream, background responses, files \
and agents, the daemon's event bus (server-sent events and a WebSocket), and an \
OpenAI-compatible `/v1` API.

Every request needs the gateway's token: `Authorization: Bearer <token>`, or the page's cookie \
(set by `GET /?token=<token>`). A request with an `Origin` other than the gateway's own, or a \
`Host` it does not answer to, is refused (403) whatever its method. A state-changing request's \
body must be `application/json` (`multipart/form-data` for an upload), or absent (415). A method \
a path does not answer is 405 with `Allow`.

Errors of the gateway's own routes are `{"error": {"type", "code"?, "message", "field"?, \
"upstream_status"?, "request_id"?}}` with the status of `gateway/_errors.py`'s table; the `/v1` \
routes answer OpenAI's error body. WebSocket commands and event shapes: docs/gateway.md.\
"""


def openapi_document() -> dict[str, Any]:
    """The gateway's API as an OpenAPI 3.1 document (a fresh, plain-JSON dict: the caller may
    change it)."""
    error_responses = _error_responses()
    document: JSON = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "streamvisor gateway",
            "version": "1",
            "description": _DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "externalDocs": {"description": "OpenAI's API (the /v1 routes)", "url": _OPENAI_DOCS},
        "security": [{"bearer": []}, {"pageCookie": []}],
        "tags": [
            {"name": "daemon", "description": "The daemon itself."},
            {"name": "sessions", "description": "Session workers and their streams."},
            {"name": "background", "description": "Background responses, polled or resumed."},
            {"name": "files", "description": "Files, uploaded through the files actor."},
            {"name": "agents", "description": "Agents (their tools are Python: not over HTTP)."},
            {"name": "events", "description": "The event bus (SSE and WebSocket)."},
            {"name": "page", "description": "The live page."},
            {
                "name": "openai",
                "description": "The OpenAI-compatible API, by reference to OpenAI's.",
                "externalDocs": {"url": _OPENAI_DOCS},
            },
        ],
        "paths": {**_gateway_paths(), **_v1_paths()},
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The gateway's token (printed at start, or configured).",
                },
                "pageCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "streamvisor-gateway-<port>",
                    "description": "The page's cookie (`HttpOnly; SameSite=Strict`), named after"
                    " the gateway's port, set by `GET /?token=<token>`.",
                },
            },
            "schemas": _schemas(),
            "responses": {f"E{status}": error_responses[str(status)] for status in _ERROR_STATUSES},
        },
    }
    return copy.deepcopy(document)


def main() -> None:
    """Print the document, pretty-printed (what ``docs/openapi.json`` holds)."""
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
