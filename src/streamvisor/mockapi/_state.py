"""The server's state: what it saw, the responses with their event logs, files and uploads.

One `MockState` per app; every handler runs on the one trio thread, so no locks are needed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import trio

from ._config import MockAPIConfig
from ._faults import FaultTable
from ._wire import IdFactory

__all__ = [
    "FileRecord",
    "MockState",
    "PartRecord",
    "RecordedRequest",
    "StoredResponse",
    "UploadRecord",
]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete"})


@attrs.frozen
class RecordedRequest:
    """One request as the server saw it (for test assertions)."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    #: The body parsed as JSON, or None (empty, multipart or not JSON).
    body: Any
    #: The raw body size in bytes.
    size: int


@attrs.define(eq=False)
class StoredResponse:
    """A Responses API response: its current object and its event log (the resume source)."""

    id: str
    response: dict[str, Any]
    background: bool
    store: bool
    created_at: float  # trio time, for retention
    events: list[dict[str, Any]] = attrs.field(factory=list)
    #: The request's input as stored items (each with an id), for `GET .../input_items`.
    input_items: list[dict[str, Any]] = attrs.field(factory=list)
    done: bool = False  # no event will be appended any more
    cancel_scope: trio.CancelScope | None = None
    _changed: trio.Event = attrs.field(factory=trio.Event)

    @property
    def status(self) -> str:
        return str(self.response["status"])

    @property
    def next_sequence_number(self) -> int:
        return len(self.events)

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Log an event (its `sequence_number` is its index) and wake the followers."""
        event["sequence_number"] = len(self.events)
        self.events.append(event)
        self._wake()
        return event

    def finish(self) -> None:
        self.done = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        """Return after the next event is logged or generation ends."""
        await self._changed.wait()

    async def wait_done(self) -> None:
        """Return once no more events will be logged (terminal, cancelled or stopped)."""
        while not self.done:
            await self.wait_changed()


@attrs.define(eq=False)
class FileRecord:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    expires_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@attrs.define(eq=False)
class PartRecord:
    id: str
    upload_id: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload.part",
            "created_at": self.created_at,
            "upload_id": self.upload_id,
        }


@attrs.define(eq=False)
class UploadRecord:
    id: str
    bytes: int
    filename: str
    mime_type: str
    purpose: str
    created_at: int
    expires_at: int
    deadline: float  # trio time after which the upload is expired
    status: str = "pending"
    parts: dict[str, PartRecord] = attrs.field(factory=dict)
    file: FileRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "upload",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": self.status,
            "file": None if self.file is None else self.file.to_json(),
        }


@attrs.define(eq=False)
class MockState:
    """Everything the server holds; `MockServer.state` exposes it for inspection."""

    config: MockAPIConfig
    ids: IdFactory
    faults: FaultTable = attrs.field(factory=FaultTable)
    requests: list[RecordedRequest] = attrs.field(factory=list)
    responses: dict[str, StoredResponse] = attrs.field(factory=dict)
    files: dict[str, FileRecord] = attrs.field(factory=dict)
    uploads: dict[str, UploadRecord] = attrs.field(factory=dict)
    #: For each tool call the server made (by call id), the parameters it made up because the
    #: user's words did not supply them (empty: every argument came from the request).
    made_up_arguments: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    #: Where background generation runs (the server's nursery); set while serving.
    nursery: trio.Nursery | None = None
    #: Requests seen in the current rate-limit minute window: (window start, count, tokens).
    window: tuple[float, int, int] = (0.0, 0, 0)

    def record(self, request: RecordedRequest) -> None:
        """Keep ``request`` for inspection: the newest `MockAPIConfig.recorded` of them (trimmed
        in one go when twice as many piled up, so appending stays O(1) amortized)."""
        requests, keep = self.requests, self.config.recorded
        requests.append(request)
        if len(requests) > 2 * keep:
            del requests[:-keep]

    def note_made_up(self, calls: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        """Remember which arguments of these tool calls were made up (the newest `recorded`)."""
        notes, keep = self.made_up_arguments, self.config.recorded
        notes.update(calls)
        if len(notes) > 2 * keep:
            for call_id in list(notes)[: len(notes) - keep]:
                del notes[call_id]

    def live_response(self, response_id: str) -> StoredResponse | None:
        """The response if it exists and is retrievable (retention rule applied)."""
        stored = self.responses.get(response_id)
        if stored is None:
            return None
        if not stored.store:
            if not stored.background:
                return None
            if trio.current_time() - stored.created_at >= self.config.retention:
                if stored.done:
                    del self.responses[response_id]
                return None
        return stored
