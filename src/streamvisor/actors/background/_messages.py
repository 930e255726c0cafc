"""The background poller's messages (private to the actor and its handle) and shared checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from streamvisor.openai import InvalidId, check_id

from .._ids import is_name
from ._errors import InvalidBackgroundRequest, InvalidResponseId
from ._records import TERMINAL_STATUSES

__all__ = [
    "Active",
    "Cancel",
    "Create",
    "Cursor",
    "Get",
    "Observed",
    "Poll",
    "Recent",
    "StreamFinished",
    "StreamInfo",
    "Track",
    "check_owner",
    "check_response_id",
    "registry_request",
    "seed_snapshot",
]

#: A create's ``input`` larger than this (JSON bytes) is not copied into the registry.
_MAX_STORED_INPUT: Final = 64 * 1024


# ------------------------------------------------------------------------------------ messages


@attrs.frozen
class Create:
    """call: create a background response (the body is final: forced flags, model rules)."""

    body: Mapping[str, Any]
    owner: str | None
    #: Answer ``(record, the API's Response)`` instead of the record alone.
    with_response: bool = False


@attrs.frozen
class Poll:
    """call: GET a response now."""

    response_id: str


@attrs.frozen
class Cancel:
    """call: cancel a response."""

    response_id: str


@attrs.frozen
class Get:
    """call: the registry record of a response."""

    response_id: str


@attrs.frozen
class Active:
    """call: every non-terminal registry record."""


@attrs.frozen
class Recent:
    """call: the newest ``limit`` registry records, terminal or not, newest first."""

    limit: int


@attrs.frozen
class Adopt:
    """call: follow by polling these registry records, which this poller's store now holds
    (a cluster takeover moved them here). Answered with the ids now polled."""

    response_ids: tuple[str, ...]


@attrs.frozen
class Track:
    """call: a durable session stream's response (DurableTracker.track_stream)."""

    response_id: str
    owner: str
    model: str
    request: Mapping[str, Any]
    cursor: int | None


@attrs.frozen
class StreamFinished:
    """call: a durable stream ended (DurableTracker.stream_finished)."""

    response_id: str
    status: str
    response: Mapping[str, Any] | None


@attrs.frozen
class Cursor:
    """cast: the last published sequence number of a durable stream (batched writes)."""

    response_id: str
    cursor: int


@attrs.frozen
class Observed:
    """cast: a status seen in a resumed stream's terminal event."""

    response_id: str
    status: str
    response: Mapping[str, Any] | None


@attrs.frozen
class StreamInfo:
    """call: the client and bus a resumed stream runs on (in the caller's task)."""


# -------------------------------------------------------------------------------------- helpers


def check_owner(owner: str | None) -> None:
    """Raise ``InvalidBackgroundRequest`` unless ``owner`` is None or a session id (it is a bus
    topic segment: `NAME_PATTERN`, matched in full)."""
    if owner is None:
        return
    if not is_name(owner):
        raise InvalidBackgroundRequest(
            f"owner must be a session id (1-128 letters, digits or _-:@+=), got {owner!r:.80}"
        )


def check_response_id(response_id: object) -> str:
    """Return ``response_id`` if the API could have issued it; raise `InvalidResponseId`."""
    try:
        return check_id(response_id, "response_id")
    except InvalidId as exc:
        raise InvalidResponseId(response_id) from exc


def registry_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The create body as the registry keeps it: a large ``input`` (images as data URLs...) is
    replaced by a note, so that the registry stays small."""
    stored = dict(body)
    if "input" in stored:
        size = len(json.dumps(stored["input"], default=str))
        if size > _MAX_STORED_INPUT:
            stored["input"] = None
            stored["input_omitted_bytes"] = size
    return stored


def seed_snapshot(response: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot a resumed stream's events apply to. A GET shows output up to *now*, not up to
    ``starting_after``, so an active response's output is left out rather than doubled; the
    terminal event carries the whole Response."""
    seed = dict(response)
    if seed.get("status") not in TERMINAL_STATUSES:
        seed["output"] = []
    return seed
