"""Session request validation: session ids, and the Chat / Responses create bodies.

It runs in the caller's task (`SessionHandle.chat`/``respond``): a bad request is rejected before
anything reaches the worker or the network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import structlog

from streamvisor.openai import apply_model_rules, check_request, is_reasoning_model

from .._ids import is_name
from ._errors import InvalidSessionId, InvalidSessionRequest, InvalidStreamId

__all__ = [
    "CHAT_ROLES",
    "INPUT_ROLES",
    "Api",
    "build_chat_body",
    "build_responses_body",
    "check_respond_flags",
    "check_session_id",
    "check_stream_id",
    "session_name",
    "session_topic",
]

log = structlog.get_logger("streamvisor.actors")

Api = Literal["chat", "responses"]

#: Roles a Chat Completions message may have.
CHAT_ROLES: frozenset[str] = frozenset(
    {"system", "developer", "user", "assistant", "tool", "function"}
)
_ASSISTANT_PAYLOADS = ("content", "tool_calls", "function_call", "refusal", "audio")
#: Roles a Responses input message may have.
INPUT_ROLES: frozenset[str] = frozenset({"system", "developer", "user", "assistant"})

_STREAM_ID = re.compile(r"stream-[1-9][0-9]{0,18}")


# ---------------------------------------------------------------------------------------------
# Request validation (runs in the caller's task: nothing reaches the worker or the network)


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it can name a session; raise `InvalidSessionId` otherwise.

    It must be 1-128 characters of letters, digits and ``_-:@+=`` (one topic segment), matched
    in full (`NAME_PATTERN`): no dot, no ``*``, no whitespace, no trailing newline."""
    if not isinstance(session_id, str):
        raise InvalidSessionId(session_id, "must be a str")
    if not is_name(session_id):
        raise InvalidSessionId(session_id, "use 1-128 letters, digits or _-:@+= (no dots)")
    return session_id


def check_stream_id(session_id: str | None, stream_id: object) -> str:
    """Return ``stream_id`` if a session could have handed it out (``stream-<n>``); raise
    `InvalidStreamId` otherwise."""
    if not isinstance(stream_id, str) or _STREAM_ID.fullmatch(stream_id) is None:
        raise InvalidStreamId(session_id, stream_id)
    return stream_id


def session_topic(session_id: str) -> str:
    """The bus topic of a session's events: ``session.<id>``."""
    return f"session.{session_id}"


def session_name(session_id: str) -> str:
    """The name a session worker is registered under."""
    return f"session.{session_id}"


def _reject(sid: str | None, field: str, message: str) -> InvalidSessionRequest:
    return InvalidSessionRequest(sid, field, message)


def _check_model(sid: str | None, model: object) -> str:
    if not isinstance(model, str) or not model.strip():
        raise _reject(sid, "model", "must be a non-empty str")
    return model


def _check_params(sid: str | None, params: Mapping[str, Any], reserved: Mapping[str, str]) -> None:
    for key, why in reserved.items():
        if key in params:
            raise _reject(sid, key, why)


def _check_messages(sid: str | None, messages: object) -> list[Any]:
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise _reject(sid, "messages", "must be a list of message objects")
    if not messages:
        raise _reject(sid, "messages", "must not be empty")
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, Mapping):
            raise _reject(sid, where, f"must be an object, got {type(msg).__name__}")
        role = msg.get("role")
        # A str first: a JSON object or array as the role is unhashable (TypeError, not a 400).
        if not isinstance(role, str) or role not in CHAT_ROLES:
            raise _reject(
                sid, f"{where}.role", f"unknown role {role!r}; one of {sorted(CHAT_ROLES)}"
            )
        if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
            raise _reject(sid, f"{where}.tool_call_id", "a tool message needs its tool_call_id")
        if role == "assistant":
            if all(msg.get(k) is None for k in _ASSISTANT_PAYLOADS):
                raise _reject(sid, where, "an assistant message needs content or tool_calls")
        elif msg.get("content") is None:
            raise _reject(sid, f"{where}.content", f"a {role} message needs content")
    return list(messages)


def build_chat_body(
    model: object, messages: object, params: Mapping[str, Any], *, session_id: str | None = None
) -> dict[str, Any]:
    """The Chat Completions create body for a session stream, model rules applied.

    Raises:
        InvalidSessionRequest: an empty or malformed ``messages`` (unknown role, a tool message
            without ``tool_call_id``, ...), a reserved parameter (``model``, ``messages``,
            ``stream``), a bad ``n``, or ``max_tokens`` and ``max_completion_tokens`` that
            disagree for a reasoning model (one would have to be dropped silently).
        InvalidParameter: a value that is not plain JSON (NaN, ±Infinity, a non-JSON object,
            nesting deeper than 64); ``.field`` is its path (``temperature``,
            ``messages[0].content``).
    """
    model = _check_model(session_id, model)
    msgs = _check_messages(session_id, messages)
    _check_params(
        session_id,
        params,
        {
            "model": "pass the model as the first argument",
            "messages": "pass the messages as the second argument",
            "stream": "session streams always stream",
        },
    )
    n = params.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise _reject(session_id, "n", f"must be an int >= 1, got {n!r}")
    effort = params.get("reasoning_effort")
    if (
        is_reasoning_model(model, effort if isinstance(effort, str) else None)
        and params.get("max_tokens") is not None
        and params.get("max_completion_tokens") is not None
        and params["max_tokens"] != params["max_completion_tokens"]
    ):
        raise _reject(
            session_id,
            "max_tokens",
            f"{model} takes only max_completion_tokens; max_tokens={params['max_tokens']!r} "
            f"contradicts max_completion_tokens={params['max_completion_tokens']!r}",
        )
    body: dict[str, Any] = {"model": model, "messages": msgs, **params}
    body.setdefault("stream_options", {"include_usage": True})
    check_request(body)
    return _apply_rules("chat", body, session_id)


def _check_input(sid: str | None, value: object) -> Any:
    if isinstance(value, str):
        if not value:
            raise _reject(sid, "input", "must not be empty")
        return value
    if isinstance(value, bytes) or not isinstance(value, Sequence):
        raise _reject(sid, "input", "must be a str or a list of input items")
    if not value:
        raise _reject(sid, "input", "must not be empty")
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, Mapping):
            raise _reject(sid, where, f"must be an object, got {type(item).__name__}")
        if "role" in item:
            if not isinstance(item["role"], str) or item["role"] not in INPUT_ROLES:
                raise _reject(
                    sid,
                    f"{where}.role",
                    f"unknown role {item['role']!r}; one of {sorted(INPUT_ROLES)}",
                )
            if item.get("content") is None:
                raise _reject(sid, f"{where}.content", "an input message needs content")
        elif not isinstance(item.get("type"), str):
            raise _reject(sid, where, "an input item needs a role or a type")
    return list(value)


def check_respond_flags(session_id: str | None, durable: object, keep_events: object) -> None:
    """``respond``'s own flags: ``durable`` a bool or None, ``keep_events`` a bool. Raises
    `InvalidSessionRequest` naming the field."""
    if durable is not None and not isinstance(durable, bool):
        raise _reject(session_id, "durable", "must be a bool or None")
    if not isinstance(keep_events, bool):
        raise _reject(session_id, "keep_events", "must be a bool")


def build_responses_body(
    model: object, input: object, params: Mapping[str, Any], *, session_id: str | None = None
) -> dict[str, Any]:
    """The Responses create body for a session stream (without the durable flags), rules applied.

    Raises:
        InvalidSessionRequest: an empty or malformed ``input`` (unknown role, an item without
            role or type), a reserved parameter (``model``, ``input``, ``stream``,
            ``background``), ``max_tokens`` (the Responses API calls it ``max_output_tokens``),
            ``max_output_tokens`` below 16, or both ``previous_response_id`` and
            ``conversation``.
        InvalidParameter: a value that is not plain JSON (see `build_chat_body`), e.g.
            ``input[2].content``.
    """
    model = _check_model(session_id, model)
    checked = _check_input(session_id, input)
    _check_params(
        session_id,
        params,
        {
            "model": "pass the model as the first argument",
            "input": "pass the input as the second argument",
            "stream": "session streams always stream",
            "background": "use durable=True for a background (resumable) stream",
            "max_tokens": "the Responses API calls it max_output_tokens",
        },
    )
    limit = params.get("max_output_tokens")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 16):
        raise _reject(session_id, "max_output_tokens", f"must be an int >= 16, got {limit!r}")
    if params.get("previous_response_id") is not None and params.get("conversation") is not None:
        raise _reject(
            session_id, "conversation", "previous_response_id and conversation exclude each other"
        )
    body: dict[str, Any] = {"model": model, "input": checked, **params}
    check_request(body)
    return _apply_rules("responses", body, session_id)


def _apply_rules(api: Api, body: dict[str, Any], sid: str | None) -> dict[str, Any]:
    new, dropped = apply_model_rules(api, body)
    if dropped:
        log.info("session.params_dropped", session=sid, model=new["model"], params=list(dropped))
    return new
