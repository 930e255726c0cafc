"""The values of the gateway's OpenAPI document: JSON Schema building blocks and the
``components.schemas`` (every body the gateway sends or takes, every event it streams).

Used by `_openapi` only. The schemas of the gateway's own shapes are closed (no property beyond
those listed: a new field is a new version of the document); those of OpenAI's objects (a
Response, a File) are open. Enumerations the document restates from other layers (chat roles,
file purposes) are compared with their source by the tests.
"""

from __future__ import annotations

from typing import Any, Final

from ..actors import NAME_PATTERN, Purpose

__all__ = [
    "ANY_OBJECT",
    "API",
    "BOOL",
    "CHAT_ROLES",
    "COUNT",
    "INPUT_ROLES",
    "INT",
    "JSON",
    "LISTED_PURPOSES",
    "NON_EMPTY",
    "OPENAI_DOCS",
    "STREAM_ID_PATTERN",
    "STRING",
    "component_schemas",
    "json_object",
    "nullable",
    "ref",
]

OPENAI_DOCS: Final = "https://platform.openai.com/docs/api-reference"

JSON = dict[str, Any]

#: A session's stream id (what the sessions accept; the gateway itself checks `API_ID_PATTERN`,
#: the session the rest: 400 either way; a test compares it with the sessions' rule).
STREAM_ID_PATTERN: Final = "stream-[1-9][0-9]{0,18}"


def ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: JSON) -> JSON:
    """``schema`` or null (JSON Schema 2020-12: a type list, or ``anyOf`` for a ``$ref``)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    return {**schema, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}


def json_object(
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


STRING: Final[JSON] = {"type": "string"}
NON_EMPTY: Final[JSON] = {"type": "string", "minLength": 1}
INT: Final[JSON] = {"type": "integer"}
COUNT: Final[JSON] = {"type": "integer", "minimum": 0}
NUMBER: Final[JSON] = {"type": "number"}
BOOL: Final[JSON] = {"type": "boolean"}
ANY_OBJECT: Final[JSON] = {"type": "object", "additionalProperties": True}
TIME: Final[JSON] = {"type": "number", "description": "Seconds since the epoch (wall clock)."}
API: Final[JSON] = {"type": "string", "enum": ["chat", "responses"]}
RESPONSE_STATUS: Final[JSON] = {
    "type": "string",
    "enum": ["queued", "in_progress", "completed", "failed", "cancelled", "incomplete"],
}
#: A model name: the portable (ASCII) part of what the wire layer accepts (`MODEL_PATTERN`: 1-256
#: printable characters without whitespace).
MODEL: Final[JSON] = {
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
MESSAGES: Final[JSON] = {
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
INPUT: Final[JSON] = {
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
TIMEOUT: Final[JSON] = {
    "type": ["number", "null"],
    "minimum": 0,
    "description": "Seconds to wait at most (null or absent: no limit but the gateway's own).",
}


# --------------------------------------------------------------------------------- the schemas


def component_schemas() -> JSON:
    error = json_object(
        {
            "type": {
                **NON_EMPTY,
                "description": "The error's class name (`InvalidId`, `ResponseGone`, ...;"
                " `InternalError` for a 500).",
            },
            "code": {
                **NON_EMPTY,
                "description": "The gateway's own errors: a stable snake_case name"
                " (`invalid_id`, `origin_not_allowed`, ...).",
            },
            "message": {
                **NON_EMPTY,
                "description": "What went wrong, for people; scrubbed of anything shaped like a"
                " credential.",
            },
            "field": {**STRING, "description": "The request field (or parameter) at fault."},
            "upstream_status": {
                **INT,
                "description": "The OpenAI API's status, when the error is its answer.",
            },
            "request_id": {**STRING, "description": "The OpenAI API's request id, if any."},
        },
        ("type", "message"),
    )
    stream_event = json_object(
        {
            "type": {**STRING, "description": "The event's name (`response.created`, ...)."},
            "sequence_number": INT,
            "session_id": nullable(STRING),
            "response_id": nullable(STRING),
            "api": API,
            "terminal": BOOL,
            "data": {
                **ANY_OBJECT,
                "description": "The API's event object (Responses), or Chat's chunk fields"
                " mapped to the event.",
            },
            "received_at": TIME,
        },
        description="A stream's event (`StreamEvent`), named by its `type`.",
    )
    tool_call = json_object(
        {
            "agent_id": STRING,
            "call_id": STRING,
            "name": STRING,
            "arguments": {**STRING, "description": "The model's JSON arguments, as text."},
            "request": {**INT, "minimum": 1},
        },
        description="A function call an agent's model asked for (`agent.tool_call`).",
    )
    tool_result = json_object(
        {
            "agent_id": STRING,
            "call_id": STRING,
            "name": STRING,
            "output": STRING,
            "is_error": BOOL,
            "duration": {**NUMBER, "minimum": 0},
        },
        description="The outcome of a tool call (`agent.tool_result`).",
    )
    background_registry = {
        "owner": {
            **nullable(STRING),
            "description": "The session that created it (its events go to `session.<owner>`).",
        },
        "mode": {
            "type": "string",
            "enum": ["poll", "stream"],
            "description": "Followed by GET polling, or by a durable session stream.",
        },
        "created_at": TIME,
        "updated_at": TIME,
        "last_polled_at": nullable(TIME),
        "cursor": {
            **nullable(COUNT),
            "description": "The last sequence number delivered (resume after it).",
        },
        "poll_attempts": COUNT,
        "error_count": COUNT,
        "terminal_at": nullable(TIME),
        "last_error": nullable(STRING),
        "metadata": ANY_OBJECT,
        "request": {**ANY_OBJECT, "description": "The create body, without credentials."},
    }
    # The registry's fields: all of them when tracked, none otherwise.
    tracked_rule: JSON = {
        "if": {"properties": {"tracked": {"const": True}}},
        "then": {"required": list(background_registry)},
        "else": {"not": {"anyOf": [{"required": [name]} for name in background_registry]}},
    }
    background = json_object(
        {
            "object": {"const": "background"},
            "id": {**STRING, "description": "The response id (`resp_...`)."},
            "tracked": {
                **BOOL,
                "description": "The registry follows it; the registry's fields are present"
                " exactly when true.",
            },
            "status": {
                **nullable(STRING),
                "description": "The registry's status (tracked), else the Response's: queued,"
                " in_progress, completed, failed, cancelled or incomplete.",
            },
            "model": nullable(STRING),
            **background_registry,
            "response": {
                **nullable(ANY_OBJECT),
                "description": "The OpenAI Response the answer was made with (poll, cancel), or"
                " null (create and list answer from the registry).",
                "externalDocs": {"url": f"{OPENAI_DOCS}/responses/object"},
            },
        },
        ("object", "id", "tracked", "status", "model", "response"),
        description="A background response: one shape on every route and WebSocket command.",
        **tracked_rule,
    )
    return {
        "Error": json_object(
            {"error": error}, description="Every error the gateway's own routes answer."
        ),
        "OpenAIError": json_object(
            {
                "error": json_object(
                    {
                        "message": STRING,
                        "type": STRING,
                        "param": nullable(STRING),
                        "code": nullable(STRING),
                    },
                    closed=False,
                )
            },
            closed=False,
            description="OpenAI's error body (the `/v1` routes).",
            externalDocs={"url": f"{OPENAI_DOCS}/responses"},
        ),
        "Health": json_object(
            {
                "status": {"const": "ok"},
                "base_url": {**STRING, "description": "Where API requests go."},
                "embedded": {**BOOL, "description": "The embedded server serves the daemon."},
                "children": {
                    "type": "array",
                    "items": json_object(
                        {
                            "id": nullable(STRING),
                            "type": {"type": "string", "enum": ["worker", "supervisor"]},
                            "alive": BOOL,
                            "restarting": BOOL,
                        }
                    ),
                    "description": "The root supervisor's children, in start order.",
                },
                "sessions": COUNT,
                "agents": COUNT,
                "active_background": COUNT,
                "cluster": nullable(
                    json_object(
                        {
                            "node_id": STRING,
                            "token": {**INT, "description": "The node's fencing token."},
                            "leased": {
                                **BOOL,
                                "description": "False while fenced (lease lost, not joined"
                                " again yet).",
                            },
                            "took_over": {
                                "type": "array",
                                "items": STRING,
                                "description": "The dead nodes this one took over, oldest first.",
                            },
                            "forwarded": COUNT,
                            "received": COUNT,
                            "duplicates": COUNT,
                        },
                        description="This node's membership of a cluster.",
                    )
                ),
            },
            description="The daemon's status; `cluster` is null for a daemon running alone.",
        ),
        "Ticket": json_object(
            {
                "stream_id": {**STRING, "description": "The session's name for it (`stream-N`)."},
                "session_id": STRING,
                "api": API,
                "model": STRING,
                "durable": BOOL,
                "response_id": nullable(STRING),
                "topic": {**STRING, "description": "Where its events go (`session.<id>`)."},
            },
            description="A stream the session accepted and started.",
        ),
        "Outcome": json_object(
            {
                "stream_id": STRING,
                "response_id": nullable(STRING),
                "status": {
                    **STRING,
                    "description": "completed, incomplete, failed, cancelled, error, or"
                    " in_progress (a durable stream handed to the background poller).",
                },
                "ok": BOOL,
                "response": {
                    **nullable(ANY_OBJECT),
                    "description": "The final (or partial) Response or chat completion.",
                },
                "error": nullable(json_object({"type": STRING, "message": STRING})),
                "last_sequence_number": nullable(INT),
            },
            description="How a stream ended.",
        ),
        "StreamInfo": json_object(
            {
                "stream_id": STRING,
                "api": API,
                "model": STRING,
                "durable": BOOL,
                "response_id": nullable(STRING),
                "cursor": nullable(INT),
                "state": {
                    "type": "string",
                    "enum": ["starting", "streaming", "resuming", "stopping"],
                },
            },
            description="An active stream of a session.",
        ),
        "SessionList": json_object(
            {
                "object": {"const": "list"},
                "data": {
                    "type": "array",
                    "items": json_object(
                        {
                            "id": STRING,
                            "streams": {"type": "array", "items": ref("StreamInfo")},
                        }
                    ),
                },
                "omitted": {**COUNT, "description": "Running sessions beyond `limit`."},
            },
            description="The sessions running on this daemon, in start order, with their"
            " active streams (a stream's `cursor` is the sequence number of its last event).",
        ),
        "Tree": json_object(
            {"object": {"const": "tree"}, "root": ref("TreeNode")},
            description="The live supervision tree.",
        ),
        "TreeNode": json_object(
            {
                "id": {**nullable(STRING), "description": "Its child id (null: none)."},
                "name": {**nullable(STRING), "description": "Its registered name."},
                "label": {**STRING, "description": "How the logs name it."},
                "kind": {"type": "string", "enum": ["supervisor", "worker"]},
                "actor": {**nullable(STRING), "description": "Its class (null: not running)."},
                "alive": BOOL,
                "restarting": {**BOOL, "description": "Between failed restart attempts."},
                "restarts": {**COUNT, "description": "Restarts by its supervisor."},
                "restart_reasons": {
                    "type": "object",
                    "additionalProperties": COUNT,
                    "description": "Restarts by reason (`crashed:RuntimeError`, `killed`).",
                },
                "last_exit": {
                    **nullable(STRING),
                    "description": "Why it last exited (redacted, at most 300 characters).",
                },
                "last_exit_at": nullable(TIME),
                "mailbox": nullable(
                    json_object(
                        {
                            "used": COUNT,
                            "size": {**nullable(COUNT), "description": "null: unbounded."},
                            "peak": COUNT,
                            "dropped": COUNT,
                            "waiting_senders": COUNT,
                        }
                    )
                ),
                "children": {"type": "array", "items": ref("TreeNode")},
                "omitted": {**COUNT, "description": "Children beyond `max_children`."},
                "child_restarts": {
                    "type": "object",
                    "additionalProperties": COUNT,
                    "description": "A supervisor's restarts of its children by reason since it"
                    " started, children gone included.",
                },
            },
            description="An actor of the tree and, for a supervisor, its children.",
        ),
        "AgentList": json_object(
            {
                "object": {"const": "list"},
                "data": {"type": "array", "items": json_object({"id": STRING})},
            },
            description="The agents running on this daemon, in start order.",
        ),
        "Background": background,
        "BackgroundList": json_object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("Background")}},
            description="Background responses: the active ones oldest first, or with `all`"
            " the newest tracked ones (terminal included) newest first.",
        ),
        "FileObject": json_object(
            {"id": STRING, "object": {"const": "file"}},
            ("id", "object"),
            closed=False,
            description="OpenAI's File object.",
            externalDocs={"url": f"{OPENAI_DOCS}/files/object"},
        ),
        "FileList": json_object(
            {"object": {"const": "list"}, "data": {"type": "array", "items": ref("FileObject")}},
            description="Every file (of the purpose asked for), all pages followed.",
        ),
        "FileDeleted": json_object(
            {"id": STRING, "object": STRING, "deleted": BOOL},
            closed=False,
            description="OpenAI's answer to a file deletion.",
        ),
        "Agent": json_object(
            {
                "agent_id": STRING,
                "topic": {**STRING, "description": "Where its events go (`agent.<id>`)."},
                "model": STRING,
                "api": API,
            },
            description="An agent started.",
        ),
        "AgentClosed": json_object(
            {"agent_id": STRING, "closed": {"const": True}}, description="An agent stopped."
        ),
        "AgentReply": json_object(
            {
                "text": {**STRING, "description": "The final answer (or the refusal)."},
                "tool_calls": {"type": "array", "items": ref("ToolCall")},
                "tool_results": {"type": "array", "items": ref("ToolResult")},
                "usage": json_object(
                    {
                        "input_tokens": COUNT,
                        "output_tokens": COUNT,
                        "total_tokens": COUNT,
                        "requests": COUNT,
                    }
                ),
                "status": {**STRING, "description": "completed, or incomplete."},
                "refused": BOOL,
                "response_ids": {"type": "array", "items": STRING},
            },
            description="What one turn of an agent produced.",
        ),
        "ToolCall": tool_call,
        "ToolResult": tool_result,
        "StreamEvent": stream_event,
        "BackgroundStatus": json_object(
            {
                "response_id": STRING,
                "status": RESPONSE_STATUS,
                "previous": nullable(RESPONSE_STATUS),
                "terminal": BOOL,
                "owner": nullable(STRING),
                "error": nullable(STRING),
                "gone": {**BOOL, "description": "The API no longer knows it (404)."},
                "at": TIME,
                "response": nullable(ANY_OBJECT),
            },
            description="A background response changed status (`background.status`).",
        ),
        "PollingStopped": json_object(
            {
                "response_id": STRING,
                "status": RESPONSE_STATUS,
                "error": STRING,
                "code": nullable(STRING),
                "at": TIME,
                "owner": nullable(STRING),
            },
            description="Polling gave up on an active response (`background.polling_stopped`).",
        ),
        "Missed": json_object(
            {"count": {**INT, "minimum": 1}, "topic": nullable(STRING)},
            description="The subscriber missed `count` items (`missed`).",
        ),
        "StreamEnd": json_object(
            {"reason": STRING},
            description="The last frame of an event stream (`shutdown` or `end`); `end` of a"
            " broken background stream also carries the error's fields.",
            closed=False,
        ),
        # Request bodies.
        "ChatRequest": json_object(
            {"model": MODEL, "messages": MESSAGES},
            closed=False,
            examples=[{"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]}],
            description="A Chat Completions request body (without `stream`): every other field"
            " is passed to the API as it is.",
            externalDocs={"url": f"{OPENAI_DOCS}/chat/create"},
        ),
        "ResponsesRequest": json_object(
            {
                "model": MODEL,
                "input": INPUT,
                "durable": {
                    "type": ["boolean", "null"],
                    "description": "Background + resumable (null: the daemon's default).",
                },
            },
            ("model", "input"),
            closed=False,
            examples=[{"model": "gpt-4o", "input": "Hello", "durable": False}],
            description="A Responses request body: every other field is passed to the API.",
            externalDocs={"url": f"{OPENAI_DOCS}/responses/create"},
        ),
        "StopRequest": json_object(
            {
                "stream_id": {
                    "type": ["string", "null"],
                    "pattern": f"^{STREAM_ID_PATTERN}$",
                    "description": "One stream (absent or null: all).",
                }
            },
            (),
        ),
        "WaitRequest": json_object({"timeout": TIMEOUT}, (), examples=[{"timeout": 1}]),
        "BackgroundRequest": json_object(
            {
                "model": MODEL,
                "input": {
                    "anyOf": [*INPUT["anyOf"], {"type": "null"}],
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
            externalDocs={"url": f"{OPENAI_DOCS}/responses/create"},
        ),
        "AgentRequest": json_object(
            {
                "model": MODEL,
                "instructions": nullable(STRING),
                "api": {**API, "default": "responses"},
                "options": {**nullable(ANY_OBJECT), "description": "Model parameters."},
            },
            ("model",),
            examples=[{"model": "gpt-4o", "instructions": "Answer briefly."}],
            description="An agent to start; `tools` cannot cross HTTP (400 `not_over_http`).",
        ),
        "AskRequest": json_object(
            {"text": STRING, "timeout": TIMEOUT}, ("text",), examples=[{"text": "Hello"}]
        ),
        "FileUpload": json_object(
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
