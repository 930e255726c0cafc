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

The values (bodies, events) are `_openapi_schemas`' ``components.schemas``; this module holds the
routes, their parameters and answers, and assembles the document.

The contract test (``tests/gateway/test_openapi.py``) fuzzes the gateway's own routes against
this document with schemathesis: a response that does not conform is a bug in the gateway or
here. Building the document does no I/O and cannot fail.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any, Final

from ..actors import NAME_PATTERN, TOPIC_PATTERN
from ..openai import API_ID_PATTERN, MAX_JSON_DEPTH
from ._openapi_schemas import (
    ANY_OBJECT,
    BOOL,
    INT,
    JSON,
    LISTED_PURPOSES,
    NON_EMPTY,
    OPENAI_DOCS,
    STREAM_ID_PATTERN,
    STRING,
    component_schemas,
    json_object,
    ref,
)

__all__ = ["OPENAPI_VERSION", "openapi_document"]

#: The OpenAPI version the document follows.
OPENAPI_VERSION: Final = "3.1.0"

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
            "content": {"application/json": {"schema": ref("Error")}},
        }
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"const": 'Bearer realm="streamvisor"'}}
            }
        if status == 405:
            response["headers"] = {
                "Allow": {"description": "The methods the path answers.", "schema": STRING}
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
    event = json_object(
        {
            "event": {**NON_EMPTY, "description": "The event's name (see docs/gateway.md)."},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"anyOf": [ref(name) for name in data]},
                "description": "One line of JSON.",
            },
            "id": STRING,
            "retry": INT,
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


def _count_parameter(name: str, description: str) -> JSON:
    return {
        "name": name,
        "in": "query",
        "description": f"{description} At most 10000.",
        "schema": {"type": "string", "pattern": "^[0-9]{1,5}$"},
    }


def _json_body(schema: str, *, required: bool = True) -> JSON:
    body: JSON = {"content": {"application/json": {"schema": ref(schema)}}}
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

_AFTER: Final[JSON] = {
    "name": "after",
    "in": "query",
    "description": "Cluster nodes only: resume after this event id (a JetStream sequence, the"
    " `id` of the last event received; an EventSource sends it as `Last-Event-ID`). A daemon"
    " running alone answers 400.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
}


# --------------------------------------------------------------------------------- the routes


#: Where a started session stream leads: wait for it, stop it, list the session's streams.
_STREAM_LINKS: Final = {
    "WaitForIt": (
        "sessionWait",
        {"session": "$request.path.session", "stream": "$response.body#/stream_id"},
    ),
    "StopIt": ("sessionStop", {"session": "$request.path.session"}),
    "ListStreams": ("sessionStreams", {"session": "$request.path.session"}),
}


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
                        "schema": STRING,
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": STRING}},
                    },
                    "401": {
                        "description": "Where to find the token.",
                        "content": {"text/html": {"schema": STRING}},
                    },
                    "403": {"$ref": "#/components/responses/E403"},
                },
            }
        },
        "/tree": {
            "get": _operation(
                "tree",
                "The live supervision tree",
                _ok(ref("Tree"), "Every supervisor and actor, with restarts and mailboxes."),
                (400,),
                tag="daemon",
                parameters=[
                    _count_parameter(
                        "max_children", "Children listed per supervisor (200 by default)."
                    )
                ],
                description="Read without a message to any actor. A node's `restarts` count"
                " since its supervisor started; poll it to see restarts as they happen.",
            )
        },
        "/sessions": {
            "get": _operation(
                "sessionsList",
                "The running sessions and their active streams",
                _ok(ref("SessionList"), "The sessions, in start order."),
                (400,),
                tag=sessions,
                parameters=[_count_parameter("limit", "How many (100 by default).")],
                description="On a cluster node: the sessions whose workers run on this node.",
            )
        },
        "/agents": {
            "get": _operation(
                "agentsList",
                "The running agents",
                _ok(ref("AgentList"), "The agents, in start order."),
                (),
                tag=agents,
            )
        },
        "/health": {
            "get": _operation(
                "health",
                "The daemon's status",
                _ok(ref("Health"), "Its status."),
                (),
                tag="daemon",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                _ok(ANY_OBJECT, "The gateway's API as an OpenAPI 3.1 document."),
                (),
                tag="daemon",
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "The daemon's Prometheus metrics",
                {
                    "description": "Every metric in Prometheus's text exposition format (the"
                    " table in the README's Metrics section).",
                    "content": {"text/plain": {"schema": STRING}},
                },
                (),
                tag="daemon",
                description="For a Prometheus scrape: `Authorization: Bearer <token>` as every"
                " route (README: a `scrape_config` with `authorization.credentials`). Read at"
                " the request from the daemon's counters; never cached.",
            )
        },
        "/sessions/{session}/chat": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionChat",
                "Start a Chat Completions stream in a session (starting the session)",
                _ok(ref("Ticket"), "The stream started; its events go to `session.<id>`."),
                (*_BODY, *_UPSTREAM),
                tag=sessions,
                body=_json_body("ChatRequest"),
                links=_STREAM_LINKS,
            ),
        },
        "/sessions/{session}/responses": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionRespond",
                "Start a Responses stream in a session (starting the session)",
                _ok(ref("Ticket"), "The stream started; its events go to `session.<id>`."),
                (*_BODY, *_UPSTREAM),
                tag=sessions,
                body=_json_body("ResponsesRequest"),
                links=_STREAM_LINKS,
            ),
        },
        "/sessions/{session}/stop": {
            "parameters": [_SESSION],
            "post": _operation(
                "sessionStop",
                "Stop one stream, or every stream, of a running session",
                _ok(
                    json_object({"outcomes": {"type": "array", "items": ref("Outcome")}}),
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
                    json_object({"streams": {"type": "array", "items": ref("StreamInfo")}}),
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
                _ok(ref("Outcome"), "How it ended."),
                (*_BODY, 404, 409),
                tag=sessions,
                body=_json_body("WaitRequest", required=False),
            ),
        },
        "/background": {
            "post": _operation(
                "backgroundCreate",
                "Create a background response and track it",
                _ok(ref("Background"), "Created and tracked (`response` null)."),
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
                "The tracked background responses not yet terminal (or, with `all`, the newest)",
                _ok(ref("BackgroundList"), "The records (`response` null in each)."),
                (400,),
                tag=bg,
                parameters=[
                    {
                        "name": "all",
                        "in": "query",
                        "description": "true: the newest tracked responses, terminal ones"
                        " included (as long as the registry keeps them), newest first.",
                        "schema": {"type": "string", "enum": ["true", "false", "1", "0"]},
                    },
                    _count_parameter("limit", "With `all`: how many (50 by default)."),
                ],
            ),
        },
        "/background/{id}": {
            "parameters": [_RESPONSE_ID],
            "get": _operation(
                "backgroundPoll",
                "Poll a response now (updating the registry if it is tracked)",
                _ok(ref("Background"), "It, with the Response just fetched."),
                (400, *_UPSTREAM),
                tag=bg,
            ),
        },
        "/background/{id}/cancel": {
            "parameters": [_RESPONSE_ID],
            "post": _operation(
                "backgroundCancel",
                "Cancel a background response",
                _ok(ref("Background"), "It, with the Response in its final state."),
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
                _ok(ref("FileList"), "The files."),
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
                _ok(ref("FileObject"), "The uploaded (or deduplicated) file."),
                (*_BODY, *_UPSTREAM),
                tag=files,
                body={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref("FileUpload")}},
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
                _ok(ref("FileObject"), "The file."),
                (400, *_UPSTREAM),
                tag=files,
            ),
            "delete": _operation(
                "filesDelete",
                "Delete a file",
                _ok(ref("FileDeleted"), "The API's answer."),
                (400, *_UPSTREAM),
                tag=files,
            ),
        },
        "/agents/{agent}": {
            "parameters": [_AGENT],
            "post": _operation(
                "agentOpen",
                "Start an agent",
                _ok(ref("Agent"), "Started; its events go to `agent.<id>`."),
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
                _ok(ref("AgentClosed"), "Stopped."),
                (400, 404),
                tag=agents,
            ),
        },
        "/agents/{agent}/ask": {
            "parameters": [_AGENT],
            "post": _operation(
                "agentAsk",
                "Run one turn of a running agent",
                _ok(ref("AgentReply"), "Its reply."),
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
                parameters=[_TOPIC, _AFTER],
                description="Every item published on a topic the pattern matches, as `event:"
                " <name>` + `data: <json>` (`StreamEvent`, `BackgroundStatus`,"
                " `PollingStopped`, `Missed`, `ToolCall`, `ToolResult`), until the client"
                " leaves; `event: shutdown` when the daemon or the gateway stops, `event: end`"
                " when the subscriber fell a whole buffer behind. On a cluster node every event"
                " carries an `id` (its JetStream sequence): reconnecting to any node with"
                " `Last-Event-ID` (or `after`) resumes after it without a gap or a duplicate.",
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
        "description": f"As OpenAI's API: {OPENAI_DOCS}/{doc}. Bodies are OpenAI's (not"
        " restated here); errors are OpenAI's error body.",
        "externalDocs": {"url": f"{OPENAI_DOCS}/{doc}"},
    }
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {body: {"schema": ANY_OBJECT}}}
    content: JSON = (
        {ok: {"schema": ANY_OBJECT}}
        if ok == _JSON_TYPE
        else {ok: {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}
    )
    if operation_id in ("v1ChatCompletions", "v1ResponsesCreate", "v1ResponsesRetrieve"):
        content["text/event-stream"] = {"schema": STRING}
    operation["responses"] = {
        "200": {"description": "OpenAI's answer.", "content": content},
        "default": {
            "description": "OpenAI's error body.",
            "content": {_JSON_TYPE: {"schema": ref("OpenAIError")}},
        },
    }
    return operation


def _v1_path(name: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "schema": STRING}


def _v1_paths() -> JSON:
    response_id, file_id, upload_id = (
        _v1_path("response_id"),
        _v1_path("file_id"),
        _v1_path("upload_id"),
    )
    retrieve = _v1("v1ResponsesRetrieve", "Retrieve a response", "responses/get")
    retrieve["parameters"] = [
        {"name": "stream", "in": "query", "schema": BOOL},
        {"name": "starting_after", "in": "query", "schema": {**INT, "minimum": 0}},
        {
            "name": "include",
            "in": "query",
            "schema": {"type": "array", "items": STRING},
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
        "externalDocs": {"description": "OpenAI's API (the /v1 routes)", "url": OPENAI_DOCS},
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
                "externalDocs": {"url": OPENAI_DOCS},
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
            "schemas": component_schemas(),
            "responses": {f"E{status}": error_responses[str(status)] for status in _ERROR_STATUSES},
        },
    }
    return copy.deepcopy(document)


def main() -> None:
    """Print the document, pretty-printed (what ``docs/openapi.json`` holds)."""
    sys.stdout.write(json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
