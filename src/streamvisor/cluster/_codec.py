"""What crosses between nodes: the bus's items as compact JSON, and back.

Every item the daemon publishes has a kind here: a `StreamEvent` (the hot path: a positional
array, no field names), a `BackgroundStatus` or `PollingStopped` from the background poller, an
agent's `ToolCall`/`ToolResult`. Anything else is not forwarded to other nodes: `encode` returns
None and the caller counts it (a programming error to fix, not a reason to crash a publisher).

A payload that does not decode (another version's kind, a corrupt message) raises
`UndecodableItem`, naming what was wrong; the receiving node skips it and counts it.

`dedup_key` names what makes an item unique across the cluster, for JetStream's ``Nats-Msg-Id``:
a stream event is its topic, response id and sequence number, which a survivor re-publishing a
resumed stream repeats exactly (the nodes' own filter, in `cluster._bus`, keys on the same).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from streamvisor.actors import BackgroundStatus, PollingStopped, ToolCall, ToolResult
from streamvisor.openai import StreamEvent
from streamvisor.openai._events import new_event

from ._errors import ClusterError

__all__ = ["UndecodableItem", "decode", "dedup_key", "dumps", "encode"]


class UndecodableItem(ClusterError, ValueError):
    """A payload from another node that is not an item this version knows."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"undecodable cluster item: {reason}")
        self.reason = reason


def _plain(value: Any) -> Any:
    """JSON for the read-only views records hold (mapping proxies, tuples)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON data: {type(value).__name__}")


#: Compact JSON of plain data and the records' read-only views; NaN and infinities refused.
dumps: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), default=_plain, allow_nan=False
).encode

#: attrs records other than events, by their one-letter kind.
_RECORDS: Final[dict[str, type[Any]]] = {
    "s": BackgroundStatus,
    "p": PollingStopped,
    "c": ToolCall,
    "r": ToolResult,
}
_KINDS: Final[dict[type[Any], str]] = {cls: kind for kind, cls in _RECORDS.items()}


def encode(item: object) -> bytes | None:
    """The item as bytes for another node, or None if it is of no kind this module knows."""
    if type(item) is StreamEvent:
        return dumps(
            [
                "e",
                item.type,
                item.sequence_number,
                item.data,
                item.response_id,
                item.session_id,
                item.api,
                item.received_at,
            ]
        ).encode()
    kind = _KINDS.get(type(item))
    if kind is None or not attrs.has(type(item)):
        return None
    return dumps([kind, attrs.asdict(item, recurse=False)]).encode()  # type: ignore[arg-type]


def decode(payload: bytes) -> object:
    """The item `encode` made. Raises `UndecodableItem` for anything else."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UndecodableItem(f"not JSON ({exc})") from None
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise UndecodableItem("not a [kind, ...] array")
    kind = value[0]
    if kind == "e":
        return _event(value)
    cls = _RECORDS.get(kind)
    if cls is None or len(value) != 2 or not isinstance(value[1], dict):
        raise UndecodableItem(f"unknown kind {kind!r:.40} or shape")
    try:
        return cls(**value[1])
    except (TypeError, ValueError) as exc:
        raise UndecodableItem(f"bad {cls.__name__}: {exc}") from None


def _event(value: list[Any]) -> StreamEvent:
    if len(value) != 8:
        raise UndecodableItem("a stream event has 7 fields")
    _, type_, seq, data, response_id, session_id, api, received_at = value
    ok = (
        isinstance(type_, str)
        and type(seq) is int
        and isinstance(data, dict)
        and (response_id is None or isinstance(response_id, str))
        and (session_id is None or isinstance(session_id, str))
        and api in ("chat", "responses")
        and isinstance(received_at, int | float)
    )
    if not ok:
        raise UndecodableItem("a stream event field has the wrong type")
    return new_event(type_, seq, data, response_id, session_id, api, float(received_at))


def dedup_key(topic: str, item: object) -> str | None:
    """What makes ``item`` on ``topic`` unique in the cluster, or None when nothing does.

    A stream event with a response id and a sequence number of its own (not a keepalive, which
    repeats the current cursor) is ``<topic>/<response id>/<sequence number>``.
    """
    if type(item) is StreamEvent and item.response_id is not None and item.type != "keepalive":
        return f"{topic}/{item.response_id}/{item.sequence_number}"
    return None
