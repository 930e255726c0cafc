"""`DurableTracker`: how a durable session stream tells the background poller about its response.

Sessions depend on this protocol, not on the poller: `BackgroundHandle` implements it, and the
session tests use an in-memory fake (docs/contracts.md §4.1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["DurableTracker"]


@runtime_checkable
class DurableTracker(Protocol):
    """What a durable session stream tells the background poller (contracts §4.1).

    `BackgroundHandle` implements it; tests use a small in-memory fake. The session calls
    ``track_stream`` when a stream's first event names its response, *before* publishing that
    event or handing out the ticket (again after a worker restart if that call never returned):
    it must return only once the response is durably recorded, and raise if it cannot be (the
    session then cancels the response and fails the start with ``TrackingFailed``).
    ``note_cursor`` every `SessionDeps.cursor_every` events and at the end
    (always a server sequence number, never one of the session's own events), and
    ``stream_finished`` once: with the terminal status, or with ``"in_progress"`` and no
    response to hand the response over to polling (resume kept failing, an `error` frame left
    its fate unknown, the session shut down). ``stream_abandoned`` does the same hand-over from
    outside the session, when its supervisor gave it up (no worker is left to call).
    ``note_cursor`` runs on the streaming task and must not raise (it would crash the worker,
    which then restarts and resumes); the awaited calls are bounded and their failures are
    logged, never fatal to the stream.
    """

    async def track_stream(
        self,
        *,
        response_id: str,
        owner: str,
        model: str,
        request: Mapping[str, Any],
        cursor: int | None,
    ) -> None: ...

    def note_cursor(self, response_id: str, cursor: int) -> None: ...

    async def stream_finished(
        self, response_id: str, status: str, response: Mapping[str, Any] | None
    ) -> None: ...

    def stream_abandoned(self, response_id: str) -> None:
        """The stream's session was given up (over its restart budget) with the response still
        running: hand it over to polling. A cast: never blocks, never raises."""
