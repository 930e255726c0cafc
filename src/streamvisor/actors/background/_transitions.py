"""The registry's record-transition rules, with no storage: what each write does to a record.

Both registry stores -- `RegistryStore` (SQLite) and the cluster's ``ClusterStore``
(PostgreSQL) -- read a record in their own transaction, ask these functions for the new record
(or the `StatusChange`, or the error), and write it back their own way. Argument checks that need
no record (``check_*``) run before anything is queued, so that nothing is written on error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import attrs

from ._errors import IllegalTransition
from ._records import (
    ACTIVE_STATUSES,
    RESPONSE_STATUSES,
    TERMINAL_STATUSES,
    StatusChange,
    TrackedResponse,
    _time,
    with_cursor,
)

__all__ = [
    "COLUMNS",
    "advance_cursor",
    "apply_status",
    "check_cursor",
    "check_purge",
    "check_status",
    "check_transition",
    "check_update",
    "count_poll",
    "update_record",
]

#: The fields of a `TrackedResponse`, in order (``response_id`` first): the stores' columns.
COLUMNS: tuple[str, ...] = tuple(field.name for field in attrs.fields(TrackedResponse))


def check_status(status: str) -> None:
    """Raises ``ValueError`` for a status that is not a response status."""
    if status not in RESPONSE_STATUSES:
        raise ValueError(f"unknown response status {status!r}")


def check_cursor(cursor: object) -> None:
    """Raises ``ValueError`` for a cursor that is not an int >= 0 (a bool is not one)."""
    if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
        raise ValueError(f"cursor must be an int >= 0, got {cursor!r}")


def check_update(changes: Collection[str]) -> None:
    """Raises ``ValueError`` if *changes* would change ``response_id`` and ``TypeError`` if they
    name a field a `TrackedResponse` does not have."""
    if "response_id" in changes:
        raise ValueError("update() cannot change response_id; remove() and add() instead")
    unknown = set(changes) - set(COLUMNS)
    if unknown:
        raise TypeError(f"update() got unknown TrackedResponse fields: {sorted(unknown)}")


def check_purge(older_than: float, now: float) -> float:
    """The ``terminal_at`` at or before which a terminal record is old enough to purge. Raises
    ``ValueError`` for a negative or non-finite *older_than* (or a non-finite *now*)."""
    older_than = _time(older_than)
    if older_than < 0:
        raise ValueError(f"older_than must be >= 0, got {older_than!r}")
    return _time(now) - older_than


def check_transition(record: TrackedResponse, status: str) -> None:
    """Raises ``IllegalTransition`` if *record* is terminal and *status* is another status: a
    terminal status is final."""
    if record.is_terminal and status != record.status:
        raise IllegalTransition(record.response_id, record.status, status)


def update_record(record: TrackedResponse, changes: Mapping[str, Any]) -> TrackedResponse:
    """*record* with *changes* (already passed `check_update`), validated as a whole. Raises
    ``IllegalTransition`` for leaving a terminal status and ``ValueError``/``TypeError`` for an
    invalid value."""
    if "status" in changes:
        check_transition(record, changes["status"])
    return attrs.evolve(record, **changes)


def apply_status(
    record: TrackedResponse, status: str, *, at: float, error: str | None = None
) -> StatusChange:
    """The outcome of seeing *status* (already passed `check_status`) at time *at*.

    An active record takes any status (``updated_at`` = *at*, ``terminal_at`` = *at* for a
    terminal one, ``last_error`` = *error* if given): ``applied=True``. A terminal record is
    final: the same status again, or an active one after it (a stale poll), leaves it unchanged
    (``applied=False`` and a ``reason``); another terminal status raises ``IllegalTransition``.
    """
    if record.is_terminal:
        if status == record.status:
            reason = f"already {status}"
        elif status in ACTIVE_STATUSES:
            reason = f"stale {status!r} after terminal {record.status!r}"
        else:
            raise IllegalTransition(record.response_id, record.status, status)
        return StatusChange(record, record.status, applied=False, reason=reason)
    changes: dict[str, Any] = {"status": status, "updated_at": at}
    if status in TERMINAL_STATUSES:
        changes["terminal_at"] = at
    if error is not None:
        changes["last_error"] = error
    return StatusChange(attrs.evolve(record, **changes), record.status, applied=True)


def advance_cursor(record: TrackedResponse, cursor: int, stamp: float | None) -> TrackedResponse:
    """*record* with its resume cursor moved up to *cursor* (and ``updated_at`` = *stamp* if
    given); *record* itself -- the same object, nothing to write -- if *cursor* is not higher.
    Both are checked by the caller (``check_cursor``, ``_time``: the registry's cursor writes
    check every cursor before writing any), as `with_cursor` requires."""
    if record.cursor is not None and cursor <= record.cursor:
        return record
    return with_cursor(record, cursor, stamp)


def count_poll(record: TrackedResponse, *, at: float, error: str | None = None) -> TrackedResponse:
    """*record* after one more poll at *at*: ``poll_attempts`` + 1, ``last_polled_at`` = *at*; a
    failed poll (*error*) adds one to ``error_count`` and sets ``last_error``, a successful one
    resets ``error_count`` to 0."""
    if error is None:
        errors: dict[str, Any] = {"error_count": 0}
    else:
        errors = {"error_count": record.error_count + 1, "last_error": error}
    return attrs.evolve(record, poll_attempts=record.poll_attempts + 1, last_polled_at=at, **errors)
