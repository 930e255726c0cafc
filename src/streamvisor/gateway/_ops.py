"""The operations behind the routes and the WebSocket commands: JSON in, JSON out.

Each takes the daemon and the request's JSON object, checks the shape the gateway itself needs
(`BadRequest`), calls the daemon's handles, and returns plain JSON data. What the handles raise
propagates as it is (typed: the app maps it to a status with `status_for`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..actors import TrackedResponse, UnknownResponse
from ..daemon import Daemon
from ..supervisor import ActorExited, CallTimeout, observe_tree
from ._encode import (
    agent_reply_json,
    outcome_json,
    status_json,
    stream_info_json,
    ticket_json,
    tree_json,
)
from ._errors import BadRequest, NotFound, NotOverHTTP, TimeoutElapsed

__all__ = [
    "agent_ask",
    "agent_close",
    "agent_open",
    "agents_list",
    "background_active",
    "background_cancel",
    "background_create",
    "background_json",
    "background_poll",
    "background_recent",
    "health",
    "session_chat",
    "session_respond",
    "session_stop",
    "session_streams",
    "session_wait",
    "sessions_list",
    "tree",
]

#: Names the handles take as their own keyword arguments: never API parameters.
_HANDLE_KEYWORDS = frozenset({"self", "timeout", "owner"})


def text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name!r} must be a non-empty string", field=name)
    return value


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{name!r} must be a string", field=name)
    return value


def _timeout(body: dict[str, Any]) -> float | None:
    value = body.get("timeout")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise BadRequest("'timeout' must be a number of seconds >= 0", field="timeout")
    return float(value)


def _params(body: dict[str, Any], *taken: str) -> dict[str, Any]:
    """The API parameters of a create body: everything but the fields named in ``taken``."""
    params = {k: v for k, v in body.items() if k not in taken}
    clash = sorted(params.keys() & _HANDLE_KEYWORDS)
    if clash:
        raise BadRequest(f"{clash[0]!r} is not a parameter of this request", field=clash[0])
    return params


async def health(daemon: Daemon) -> dict[str, Any]:
    """The daemon's status (`DaemonStatus`) as JSON."""
    return status_json(await daemon.status())


def tree(daemon: Daemon, max_children: int) -> dict[str, Any]:
    """The live supervision tree (`observe_tree` of the root, at most ``max_children`` listed
    per supervisor): ``{"object": "tree", "root": node}``."""
    root = observe_tree(daemon.root, max_children=max_children)
    return {"object": "tree", "root": tree_json(root)}


# ------------------------------------------------------------------------------------ sessions


async def sessions_list(daemon: Daemon, limit: int) -> dict[str, Any]:
    """The sessions running on this daemon (the first ``limit`` in start order), each with its
    active streams: ``{"object": "list", "data": [{"id", "streams": [...]}], "omitted": n}``.
    A session that stops while it is asked is left out."""
    names = await daemon.session_ids()
    data: list[dict[str, Any]] = []
    for session_id in names[:limit]:
        session = daemon.session(session_id)
        if session is None:
            continue
        try:
            streams = await session.streams()
        except ActorExited:
            continue
        data.append({"id": session_id, "streams": [stream_info_json(s) for s in streams]})
    return {"object": "list", "data": data, "omitted": max(0, len(names) - limit)}


async def session_chat(daemon: Daemon, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a chat stream in session ``session_id`` (starting the session); return the ticket."""
    model = text_field(body, "model")
    if "messages" not in body:
        raise BadRequest("'messages' is required", field="messages")
    session = await daemon.open_session(session_id)
    ticket = await session.chat(model, body["messages"], **_params(body, "model", "messages"))
    return ticket_json(ticket)


async def session_respond(daemon: Daemon, session_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start a Responses stream (``durable`` optional) in session ``session_id``; the ticket."""
    model = text_field(body, "model")
    if "input" not in body:
        raise BadRequest("'input' is required", field="input")
    durable = body.get("durable")
    if durable is not None and not isinstance(durable, bool):
        raise BadRequest("'durable' must be true, false or null", field="durable")
    session = await daemon.open_session(session_id)
    params = _params(body, "model", "input", "durable")
    ticket = await session.respond(model, body["input"], durable=durable, **params)
    return ticket_json(ticket)


async def _running_session(daemon: Daemon, session_id: str) -> Any:
    session = await daemon.find_session(session_id)
    if session is None:
        raise NotFound(f"no session {session_id!r} is running")
    return session


async def session_stop(
    daemon: Daemon, session_id: str, body: dict[str, Any]
) -> dict[str, list[Any]]:
    """Stop one stream (``stream_id``) or every stream of a running session: ``{"outcomes":
    [...]}`` (the same over HTTP and the WebSocket)."""
    stream_id = _optional_text(body, "stream_id")
    session = await _running_session(daemon, session_id)
    return {"outcomes": [outcome_json(o) for o in await session.stop(stream_id)]}


async def session_streams(daemon: Daemon, session_id: str) -> dict[str, list[Any]]:
    """The active streams of a running session: ``{"streams": [...]}`` (the same over HTTP and
    the WebSocket)."""
    session = await _running_session(daemon, session_id)
    return {"streams": [stream_info_json(info) for info in await session.streams()]}


async def session_wait(
    daemon: Daemon, session_id: str, stream_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Wait (at most ``timeout`` seconds, if given) for a stream to end; its outcome. Raises
    `TimeoutElapsed` (409) if it is still running when ``timeout`` runs out."""
    timeout = _timeout(body)
    session = await _running_session(daemon, session_id)
    try:
        outcome = await session.wait(stream_id, timeout=timeout)
    except CallTimeout:
        if timeout is None:
            raise
        raise TimeoutElapsed(f"{stream_id} did not end (it is still running)", timeout) from None
    return outcome_json(outcome)


# ---------------------------------------------------------------------------------- background


def background_json(
    response_id: str, record: TrackedResponse | None, response: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The one shape of a background response on every route and WebSocket command: a
    ``background`` object.

    ``{"object": "background", "id", "tracked", "status", "model", ..., "response"}``. A tracked
    response (the registry has a record) carries every field of its record (``owner``,
    ``mode``, ``created_at``, ``updated_at``, ``cursor``, ``poll_attempts``, ...; its
    ``response_id`` is ``id``) and its ``status``/``model`` are the registry's. An untracked one
    (polled or cancelled by id only) takes ``status`` and ``model`` from the Response and has no
    registry fields. ``response`` is the OpenAI Response object the answer was made with, or
    None where none was fetched (create and list answer from the registry).
    """
    if record is not None:
        fields = record.as_json()
        del fields["response_id"]
        return {
            "object": "background",
            "id": response_id,
            "tracked": True,
            **fields,
            "response": None if response is None else dict(response),
        }
    response = response or {}
    status, model = response.get("status"), response.get("model")
    return {
        "object": "background",
        "id": response_id,
        "tracked": False,
        "status": status if isinstance(status, str) else None,
        "model": model if isinstance(model, str) else None,
        "response": dict(response),
    }


async def _record(daemon: Daemon, response_id: str) -> TrackedResponse | None:
    try:
        return await daemon.background.get(response_id)
    except UnknownResponse:
        return None


async def background_create(daemon: Daemon, body: dict[str, Any]) -> dict[str, Any]:
    """Create and track a background response (``owner`` optional); its `background_json`
    (``response`` None: the registry's record is the answer)."""
    model = text_field(body, "model")
    if "input" not in body:
        raise BadRequest("'input' is required", field="input")
    owner = _optional_text(body, "owner")
    params = _params(body, "model", "input", "owner")
    record = await daemon.background.create(body["input"], model, owner=owner, **params)
    return background_json(record.response_id, record, None)


async def background_active(daemon: Daemon) -> dict[str, Any]:
    """Every tracked response not yet terminal, oldest first: ``{"object": "list", "data":
    [background objects]}`` (each ``response`` None)."""
    records = await daemon.background.active()
    return {
        "object": "list",
        "data": [background_json(record.response_id, record, None) for record in records],
    }


async def background_recent(daemon: Daemon, limit: int) -> dict[str, Any]:
    """The newest ``limit`` tracked responses, terminal ones included, newest first: ``{"object":
    "list", "data": [background objects]}`` (each ``response`` None)."""
    records = await daemon.background.recent(limit)
    return {
        "object": "list",
        "data": [background_json(record.response_id, record, None) for record in records],
    }


async def background_poll(daemon: Daemon, response_id: str) -> dict[str, Any]:
    """GET the response now (the registry is updated if it is tracked); its `background_json`
    with the Response just fetched. Raises ``ResponseGone`` (404) and what the poll raises."""
    response = await daemon.background.poll(response_id)
    return background_json(response_id, await _record(daemon, response_id), response)


async def background_cancel(daemon: Daemon, response_id: str) -> dict[str, Any]:
    """Cancel a background response; its `background_json` with the Response in its final
    state. Raises ``ResponseGone`` (404), ``CancelRejected`` (400) and what the cancel raises."""
    response = await daemon.background.cancel(response_id)
    return background_json(response_id, await _record(daemon, response_id), response)


# -------------------------------------------------------------------------------------- agents


async def agents_list(daemon: Daemon) -> dict[str, Any]:
    """The agents running on this daemon, in start order: ``{"object": "list", "data": [{"id":
    ...}]}`` (their tree nodes, restarts included, are in `tree`)."""
    return {"object": "list", "data": [{"id": agent_id} for agent_id in await daemon.agent_ids()]}


async def agent_open(daemon: Daemon, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Start an agent (``model``, optional ``instructions``, ``api``, ``options``)."""
    if "tools" in body:
        raise NotOverHTTP(
            "tools are Python callables and cannot be defined over HTTP: register them on the"
            " agent from the program that embeds the daemon",
            field="tools",
        )
    model = text_field(body, "model")
    unknown = sorted(body.keys() - {"model", "instructions", "api", "options"})
    if unknown:
        raise BadRequest(f"unknown agent field {unknown[0]!r}", field=unknown[0])
    api = body.get("api", "responses")
    if api not in ("chat", "responses"):
        raise BadRequest("'api' must be 'chat' or 'responses'", field="api")
    options = body.get("options")
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'options' must be a JSON object", field="options")
    handle = await daemon.open_agent(
        agent_id,
        model=model,
        api=api,
        instructions=_optional_text(body, "instructions"),
        options=options,
    )
    return {"agent_id": handle.agent_id, "topic": handle.topic, "model": model, "api": api}


async def agent_ask(daemon: Daemon, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Run one turn of a running agent; its reply. Raises `TimeoutElapsed` (409) if
    ``timeout`` runs out first (the turn is cancelled)."""
    text = body.get("text")
    if not isinstance(text, str):
        raise BadRequest("'text' must be a string", field="text")
    timeout = _timeout(body)
    agent = daemon.agent(agent_id)
    if agent is None:
        raise NotFound(f"no agent {agent_id!r} is running")
    try:
        reply = await agent.ask(text, timeout=timeout)
    except CallTimeout:
        if timeout is None:
            raise
        raise TimeoutElapsed("the turn did not finish (it was cancelled)", timeout) from None
    return agent_reply_json(reply)


async def agent_close(daemon: Daemon, agent_id: str) -> dict[str, Any]:
    """Stop a running agent."""
    if not await daemon.close_agent(agent_id):
        raise NotFound(f"no agent {agent_id!r} is running")
    return {"agent_id": agent_id, "closed": True}
