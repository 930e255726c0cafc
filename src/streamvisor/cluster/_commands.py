"""Commands for a session another node owns, sent to that node (NATS request/reply).

A session runs on one node at a time: the one the session directory (PostgreSQL) names. Any
node's facade, gateway and ``/v1`` can still serve it: `RemoteSession` has the methods of a
`SessionHandle` (``chat``, ``respond``, ``wait``, ``stop``, ``streams``), validates each request
here exactly as a local handle does (so a bad one never leaves the node), and sends it to the
owner's subject ``sv.cmd.<node id>``. The owner's `CommandServer` runs it on its local session
and answers with the result as JSON. The events themselves need no routing: the cluster bus
carries them to every node.

Errors cross too: the session's own typed errors (a bad request, an unknown or stopped stream,
too many streams, ...) and ``InvalidParameter`` are raised again here as the same class with the
same attributes, so the gateway answers them as it would locally. Anything else arrives as
`RemoteCommandFailed`, naming the owner and the error's type. An owner that does not answer
raises `OwnerUnreachable` (NATS said nobody serves its subject, or the reply timed out).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import attrs
import structlog

from streamvisor.actors import (
    InvalidSessionId,
    InvalidSessionRequest,
    InvalidStreamId,
    SessionHandle,
    StreamInfo,
    StreamLost,
    StreamOutcome,
    StreamStopped,
    StreamTicket,
    TooManyStreams,
    TrackingFailed,
    UnknownStream,
)
from streamvisor.actors.sessions._requests import (
    build_chat_body,
    build_responses_body,
    check_respond_flags,
    check_stream_id,
)
from streamvisor.openai import InvalidParameter
from streamvisor.supervisor import NoSuchActor

from ._bridge_errors import NoResponders, RequestTimeout
from ._codec import dumps
from ._errors import ClusterError

__all__ = [
    "CommandServer",
    "OwnerUnreachable",
    "RemoteCommandFailed",
    "RemoteSession",
    "command_subject",
]

log = structlog.get_logger("streamvisor.cluster")

#: Errors raised again on the calling node as themselves (all their attributes are JSON).
_PORTABLE: Final[dict[str, type[Exception]]] = {
    cls.__name__: cls
    for cls in (
        InvalidSessionRequest,
        InvalidSessionId,
        InvalidStreamId,
        TooManyStreams,
        UnknownStream,
        StreamStopped,
        StreamLost,
        TrackingFailed,
        InvalidParameter,
    )
}

#: How long a caller waits for the owner's answer, beyond the command's own wait.
_REPLY_TIMEOUT: Final = 30.0


class RemoteCommandFailed(ClusterError, RuntimeError):
    """The owner of a session ran the command and it failed with an error that does not cross
    nodes as itself; ``node``, ``error_type`` and the message name it."""

    def __init__(self, node: str, error_type: str, message: str) -> None:
        super().__init__(f"node {node} answered {error_type}: {message}")
        self.node = node
        self.error_type = error_type


class OwnerUnreachable(ClusterError, NoSuchActor):
    """The node that owns a session did not answer a command (it may be dead: a survivor takes
    its sessions over within about twice the lease TTL; retry then). A `NoSuchActor`: the
    session's worker cannot be reached now (the gateway answers 503)."""

    def __init__(self, node: str, session_id: str, reason: str) -> None:
        super().__init__(f"session.{session_id}")
        self.args = (f"session {session_id}: its node {node} did not answer ({reason})",)
        self.node = node
        self.session_id = session_id


def command_subject(node_id: str) -> str:
    """The NATS subject a node serves session commands on."""
    return f"sv.cmd.{node_id}"


class _Requester(Protocol):
    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes: ...  # noqa: ASYNC109


def _dumps(value: Any) -> bytes:
    return dumps(value).encode()


# ------------------------------------------------------------------------------ values as JSON


def _error_json(error: BaseException) -> dict[str, Any]:
    fields = {k: v for k, v in vars(error).items() if _jsonable(v)}
    return {"type": type(error).__name__, "message": str(error), "fields": fields}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _error_from(node: str, data: Mapping[str, Any]) -> Exception:
    name = str(data.get("type", "Exception"))
    message = str(data.get("message", ""))
    cls = _PORTABLE.get(name)
    if cls is None:
        return RemoteCommandFailed(node, name, message)
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    fields = data.get("fields")
    if isinstance(fields, Mapping):
        error.__dict__.update(fields)
    return error


def _outcome_json(outcome: StreamOutcome) -> dict[str, Any]:
    return {
        "stream_id": outcome.stream_id,
        "response_id": outcome.response_id,
        "status": outcome.status,
        "response": outcome.response,
        "error": None if outcome.error is None else _error_json(outcome.error),
        "last_sequence_number": outcome.last_sequence_number,
    }


def _outcome_from(node: str, data: Mapping[str, Any]) -> StreamOutcome:
    error = data.get("error")
    return StreamOutcome(
        data["stream_id"],
        data["response_id"],
        data["status"],
        data.get("response"),
        None if error is None else _error_from(node, error),
        data.get("last_sequence_number"),
    )


# ------------------------------------------------------------------------------ the caller side


class RemoteSession(SessionHandle):
    """A session another node owns, with `SessionHandle`'s methods (see the module). It has no
    actor here: ``ref`` and ``adopt`` (the owner's own handle's) raise `RemoteCommandFailed`."""

    def __init__(  # no super().__init__: there is no local target to address
        self, requester: _Requester, node: str, session_id: str, *, timeout: float | None = 60.0
    ) -> None:
        self._requester = requester
        self.node = node
        self.session_id = session_id
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<RemoteSession {self.session_id} on {self.node}>"

    @property
    def ref(self) -> Any:
        raise RemoteCommandFailed(self.node, "NoLocalActor", "the session runs on another node")

    async def adopt(
        self, response_id: str, *, model: str, request: Mapping[str, Any], cursor: int | None
    ) -> str:
        raise RemoteCommandFailed(self.node, "NotOwner", "adopt runs on the owning node")

    async def _send(self, op: str, wait: float | None = None, **args: Any) -> Any:
        payload = _dumps({"op": op, "session": self.session_id, **args})
        budget = (self.timeout or _REPLY_TIMEOUT) + (wait or 0.0)
        try:
            raw = await self._requester.request(command_subject(self.node), payload, timeout=budget)
        except (NoResponders, RequestTimeout) as exc:
            raise OwnerUnreachable(self.node, self.session_id, str(exc)) from None
        reply = json.loads(raw)
        if "error" in reply:
            raise _error_from(self.node, reply["error"])
        return reply["ok"]

    async def chat(
        self, model: str, messages: Sequence[Mapping[str, Any]], **params: Any
    ) -> StreamTicket:
        build_chat_body(model, messages, params, session_id=self.session_id)  # refused here
        return StreamTicket(
            **await self._send("chat", model=model, messages=list(messages), params=params)
        )

    async def respond(
        self,
        model: str,
        input: Any,
        *,
        durable: bool | None = None,
        keep_events: bool = False,
        **params: Any,
    ) -> StreamTicket:
        build_responses_body(model, input, params, session_id=self.session_id)
        check_respond_flags(self.session_id, durable, keep_events)
        ticket = await self._send(
            "respond",
            model=model,
            input=input,
            durable=durable,
            keep_events=keep_events,
            params=params,
        )
        return StreamTicket(**ticket)

    async def wait(self, stream_id: str, timeout: float | None = None) -> StreamOutcome:  # noqa: ASYNC109
        check_stream_id(self.session_id, stream_id)
        data = await self._send("wait", wait=timeout, stream_id=stream_id, timeout=timeout)
        return _outcome_from(self.node, data)

    async def stop(self, stream_id: str | None = None) -> list[StreamOutcome]:
        if stream_id is not None:
            check_stream_id(self.session_id, stream_id)
        data = await self._send("stop", stream_id=stream_id)
        return [_outcome_from(self.node, item) for item in data]

    async def streams(self) -> list[StreamInfo]:
        return [StreamInfo(**item) for item in await self._send("streams")]


# ------------------------------------------------------------------------------ the owner side


def _command(payload: bytes) -> dict[str, Any]:
    request = json.loads(payload)
    if not isinstance(request, dict):
        raise TypeError("a command is a JSON object")
    return request


@attrs.define
class CommandServer:
    """Runs the commands other nodes send for this node's sessions.

    ``local`` gives this node's handle of a session (starting it for ``chat``/``respond``,
    None when it is not running for the others).
    """

    node_id: str
    local: Callable[[str, bool], Awaitable[SessionHandle | None]]

    async def handle(self, payload: bytes) -> bytes:
        """One command's reply (never raises: every error is in the reply)."""
        try:
            value = await self._run(_command(payload))
        except Exception as exc:
            if type(exc).__name__ not in _PORTABLE:
                log.warning("cluster.command_failed", node=self.node_id, error=repr(exc))
            return _dumps({"error": _error_json(exc)})
        return _dumps({"ok": value})

    async def _run(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        session_id = request.get("session")
        if not isinstance(session_id, str):
            raise InvalidSessionRequest(None, "session", "must be a str")
        starts = op in ("chat", "respond")
        session = await self.local(session_id, starts)
        if session is None:
            if op == "streams":
                return []
            raise UnknownStream(session_id, str(request.get("stream_id")))
        if op == "chat":
            ticket = await session.chat(
                request["model"], request["messages"], **request.get("params", {})
            )
            return attrs.asdict(ticket)
        if op == "respond":
            ticket = await session.respond(
                request["model"],
                request["input"],
                durable=request.get("durable"),
                keep_events=bool(request.get("keep_events", False)),
                **request.get("params", {}),
            )
            return attrs.asdict(ticket)
        if op == "wait":
            return _outcome_json(await session.wait(request["stream_id"], request.get("timeout")))
        if op == "stop":
            return [_outcome_json(o) for o in await session.stop(request.get("stream_id"))]
        if op == "streams":
            return [attrs.asdict(info) for info in await session.streams()]
        raise InvalidSessionRequest(session_id, "op", f"unknown command {op!r:.40}")
