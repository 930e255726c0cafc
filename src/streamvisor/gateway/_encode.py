"""What crosses the wire: the daemon's records as plain JSON, and bus items as named events.

A bus item becomes ``(name, data)``: a `StreamEvent` is named by its ``type``
(``response.output_text.delta``...), a `BackgroundStatus` is ``background.status``, a `Missed`
notice ``missed``, an agent's `ToolCall`/`ToolResult` ``agent.tool_call``/``agent.tool_result``.
SSE sends it as ``event: <name>`` + ``data: <json>``; the WebSocket as
``{"kind": "event", "event": <name>, "data": <json>}``.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._secrets import redact_text
from ..actors import (
    AgentReply,
    BackgroundStatus,
    PollingStopped,
    StreamInfo,
    StreamOutcome,
    StreamTicket,
    ToolCall,
    ToolResult,
)
from ..daemon import DaemonStatus
from ..openai import StreamEvent
from ..supervisor import MailboxStatistics, Missed, TreeNode

__all__ = [
    "agent_reply_json",
    "bus_item",
    "outcome_json",
    "sse_frame",
    "status_json",
    "stream_info_json",
    "ticket_json",
    "tree_json",
]

#: Longest exit reason a tree node shows (an exception's message can be long).
_REASON_CHARS = 300


def event_json(event: StreamEvent) -> dict[str, Any]:
    return {
        "type": event.type,
        "sequence_number": event.sequence_number,
        "session_id": event.session_id,
        "response_id": event.response_id,
        "api": event.api,
        "terminal": event.terminal,
        "data": event.data,
        "received_at": event.received_at,
    }


def background_status_json(status: BackgroundStatus) -> dict[str, Any]:
    return {
        "response_id": status.response_id,
        "status": status.status,
        "previous": status.previous,
        "terminal": status.terminal,
        "owner": status.owner,
        "error": status.error,
        "gone": status.gone,
        "at": status.at,
        "response": status.response,
    }


def bus_item(item: object) -> tuple[str, Any]:
    """``(event name, JSON data)`` of anything published on the bus."""
    if isinstance(item, StreamEvent):
        return item.type, event_json(item)
    if isinstance(item, BackgroundStatus):
        return "background.status", background_status_json(item)
    if isinstance(item, Missed):
        return "missed", {"count": item.count, "topic": item.topic}
    if isinstance(item, PollingStopped):
        return "background.polling_stopped", attrs.asdict(item)
    if isinstance(item, ToolCall):
        return "agent.tool_call", attrs.asdict(item)
    if isinstance(item, ToolResult):
        return "agent.tool_result", attrs.asdict(item)
    if attrs.has(type(item)):
        return type(item).__name__, attrs.asdict(item, recurse=False)  # type: ignore[arg-type]
    return type(item).__name__, {"value": repr(item)}


def sse_frame(name: str, data: str) -> str:
    """One server-sent event (``data`` is one line of JSON, so one ``data:`` line)."""
    return f"event: {name}\ndata: {data}\n\n"


def ticket_json(ticket: StreamTicket) -> dict[str, Any]:
    return attrs.asdict(ticket)


def outcome_json(outcome: StreamOutcome) -> dict[str, Any]:
    error = outcome.error
    return {
        "stream_id": outcome.stream_id,
        "response_id": outcome.response_id,
        "status": outcome.status,
        "ok": outcome.ok,
        "response": outcome.response,
        "error": None if error is None else {"type": type(error).__name__, "message": str(error)},
        "last_sequence_number": outcome.last_sequence_number,
    }


def stream_info_json(info: StreamInfo) -> dict[str, Any]:
    return attrs.asdict(info)


def agent_reply_json(reply: AgentReply) -> dict[str, Any]:
    return attrs.asdict(reply)


def status_json(status: DaemonStatus) -> dict[str, Any]:
    return {
        "status": "ok",
        "base_url": status.base_url,
        "embedded": status.embedded,
        "children": [
            {
                "id": child.id,
                "type": child.type.name.lower(),
                "alive": child.ref is not None and child.ref.alive,
                "restarting": child.restarting,
            }
            for child in status.children
        ],
        "sessions": status.sessions,
        "agents": status.agents,
        "active_background": status.active_background,
        "cluster": None if status.cluster is None else attrs.asdict(status.cluster),
    }


def _mailbox_json(mailbox: MailboxStatistics | None) -> dict[str, Any] | None:
    if mailbox is None:
        return None
    size = mailbox.size
    return {
        "used": mailbox.used,
        "size": None if size == float("inf") else int(size),
        "peak": mailbox.peak,
        "dropped": mailbox.dropped,
        "waiting_senders": mailbox.waiting_senders,
    }


def tree_json(node: TreeNode) -> dict[str, Any]:
    """A supervision tree node (`observe_tree`) and everything below it. ``last_exit`` is the
    exit reason's text, redacted and cut to 300 characters; ``size`` None: unbounded."""
    last = None if node.last_exit is None else redact_text(str(node.last_exit))[:_REASON_CHARS]
    return {
        "id": node.id,
        "name": node.name,
        "label": node.label,
        "kind": node.kind,
        "actor": node.actor,
        "alive": node.alive,
        "restarting": node.restarting,
        "restarts": node.restarts,
        "restart_reasons": dict(node.restart_reasons),
        "last_exit": last,
        "last_exit_at": node.last_exit_at,
        "mailbox": _mailbox_json(node.mailbox),
        "children": [tree_json(child) for child in node.children],
        "omitted": node.omitted,
        "child_restarts": dict(node.child_restarts),
    }
