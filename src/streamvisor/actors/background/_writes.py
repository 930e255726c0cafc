"""The registry's write API, once for both stores: each call checks its arguments, then runs one
operation that reads the record in the store's transaction, applies the transition rules
(``_transitions.py``) and writes the result back.

`RegistryStore` (SQLite) and the cluster's ``ClusterStore`` (PostgreSQL) subclass `RegistryWrites`
and supply the storage: how an operation runs (``_run``), which record a write may touch
(``_require``, ``_find``: the cluster's are the node's own), the purge's SQL (``_purge``) and the
logger and prefix of their log events (``registry.status_ignored``, ``cluster.status_ignored``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from ._operation import BatchWriter, StoreCounters
from ._records import StatusChange, TrackedResponse, _time
from ._transitions import (
    advance_cursor,
    apply_status,
    check_cursor,
    check_purge,
    check_status,
    check_update,
    count_poll,
    update_record,
)

__all__ = ["RecordTx", "RegistryWrites"]

_T = TypeVar("_T")


class RecordTx(Protocol):
    """What the writes need of a store's view of its transaction."""

    def write(self, record: TrackedResponse) -> None: ...
    def write_cursor(self, record: TrackedResponse) -> None:
        """`write` for a record whose cursor and ``updated_at`` alone changed."""

    def delete(self, response_id: str) -> None: ...


TxT = TypeVar("TxT", bound=RecordTx)


class RegistryWrites(Generic[TxT]):
    """The write calls of the registry API (see `RegistryStore` for the whole contract), over a
    store's transaction ``TxT``. Every call raises what the store's ``_run`` raises too."""

    #: The store's logger, and the prefix of its log events.
    _writes_log: ClassVar[Any]
    _writes_prefix: ClassVar[str]
    #: The store's writer thread.
    _writer: BatchWriter

    def count_into(self, counters: StoreCounters) -> None:
        """Count commits and finished records into ``counters`` from now on (instead of the
        store's own): the daemon keeps one for all the stores its restarted pollers open."""
        self._writer.counters = counters

    async def _run(self, what: str, fn: Callable[[TxT], _T], *, savepoint: bool = False) -> _T:
        raise NotImplementedError  # pragma: no cover - every store has its own

    def _require(self, tx: TxT, response_id: str) -> TrackedResponse:
        """The record a write may change; raises ``UnknownResponse`` (or the store's own
        error) if there is none."""
        raise NotImplementedError  # pragma: no cover - every store has its own

    def _find(self, tx: TxT, response_id: str) -> TrackedResponse | None:
        """The record a write may change, or None (a batch of writes skips it)."""
        raise NotImplementedError  # pragma: no cover - every store has its own

    def _purge(self, tx: TxT, cutoff: float) -> list[str]:
        """Delete the terminal records with ``terminal_at <= cutoff``; their ids, longest-
        terminal first."""
        raise NotImplementedError  # pragma: no cover - every store has its own

    async def update(self, response_id: str, /, **changes: Any) -> TrackedResponse:
        """Change fields of one record atomically; returns the new record.

        Any field but ``response_id`` may change; the new record is validated as a whole (e.g.
        a terminal status needs ``terminal_at``). A status change follows the same rule as
        ``record_status``, strictly: leaving a terminal status raises ``IllegalTransition``.
        Raises ``UnknownResponse``, ``IllegalTransition``, ``TypeError`` for an unknown field and
        ``ValueError``/``TypeError`` for an invalid value; nothing is written on error.
        """
        check_update(changes)

        def apply(tx: TxT) -> TrackedResponse:
            new = update_record(self._require(tx, response_id), changes)
            tx.write(new)
            return new

        return await self._run("update", apply)

    async def record_status(
        self, response_id: str, status: str, *, at: float, error: str | None = None
    ) -> StatusChange:
        """Record a status seen by polling or streaming at wall-clock time *at*.

        Active → anything is applied (``updated_at`` = *at*; ``terminal_at`` = *at* when the new
        status is terminal; ``last_error`` = *error* if given). A terminal status is final: the
        same status again is an idempotent no-op, and an active status after it (a stale poll,
        e.g. completed → in_progress) is ignored -- both return the unchanged record with
        ``applied=False`` and a ``reason``. Raises ``IllegalTransition`` for a different terminal
        status, ``UnknownResponse``, and ``ValueError`` for an unknown status.
        """
        check_status(status)
        at = _time(at)

        def apply(tx: TxT) -> StatusChange:
            change = apply_status(self._require(tx, response_id), status, at=at, error=error)
            if change.applied:
                tx.write(change.record)
            return change

        change = await self._run("record_status", apply)
        if not change.applied:
            self._writes_log.info(
                f"{self._writes_prefix}.status_ignored",
                response_id=response_id,
                status=status,
                current=change.previous,
                reason=change.reason,
            )
        return change

    async def record_cursor(
        self, response_id: str, cursor: int, *, at: float | None = None
    ) -> TrackedResponse:
        """Advance the resume cursor to *cursor* if it is higher; it never goes back.

        Returns the stored record (unchanged when *cursor* is not higher). ``updated_at`` becomes
        *at* when given and the cursor moved. Raises ``UnknownResponse`` and ``ValueError`` for a
        negative or non-int cursor.
        """
        check_cursor(cursor)
        stamp = None if at is None else _time(at)
        return await self._run(
            "record_cursor",
            lambda tx: _advance(tx, self._require(tx, response_id), cursor, stamp),
        )

    async def record_cursors(
        self, cursors: Mapping[str, int], *, at: float | None = None
    ) -> dict[str, TrackedResponse]:
        """`record_cursor` for many responses in one operation (coalesced cursor writes).

        Returns the stored record of each response that is tracked; an id that is not tracked
        (any more) is skipped. Raises ``ValueError`` for a negative or non-int cursor (before
        anything is written).
        """
        for cursor in cursors.values():
            check_cursor(cursor)
        stamp = None if at is None else _time(at)
        pending = dict(cursors)

        def apply(tx: TxT) -> dict[str, TrackedResponse]:
            stored: dict[str, TrackedResponse] = {}
            for response_id, cursor in pending.items():
                record = self._find(tx, response_id)
                if record is not None:
                    stored[response_id] = _advance(tx, record, cursor, stamp)
            return stored

        return await self._run("record_cursors", apply, savepoint=True)

    async def record_poll(
        self, response_id: str, *, at: float, error: str | None = None
    ) -> TrackedResponse:
        """Count one poll made at *at*: ``poll_attempts`` + 1 and ``last_polled_at`` = *at*.

        A failed poll (*error* given) also adds one to ``error_count`` and stores ``last_error``;
        a successful one resets ``error_count`` to 0. Raises ``UnknownResponse``.
        """
        at = _time(at)

        def apply(tx: TxT) -> TrackedResponse:
            new = count_poll(self._require(tx, response_id), at=at, error=error)
            tx.write(new)
            return new

        return await self._run("record_poll", apply)

    async def remove(self, response_id: str) -> TrackedResponse:
        """Stop tracking *response_id*; returns the removed record. Raises ``UnknownResponse``."""

        def delete(tx: TxT) -> TrackedResponse:
            record = self._require(tx, response_id)
            tx.delete(response_id)
            return record

        return await self._run("remove", delete)

    async def purge_terminal(self, older_than: float, now: float) -> list[str]:
        """Remove terminal records whose age ``now - terminal_at`` is at least *older_than*.

        Returns the removed ids, longest-terminal first. Active records are never removed.
        Raises ``ValueError`` for a negative or non-finite *older_than*.
        """
        cutoff = check_purge(older_than, now)
        removed = await self._run(
            "purge_terminal", lambda tx: self._purge(tx, cutoff), savepoint=True
        )
        if removed:
            self._writes_log.debug(f"{self._writes_prefix}.purged", count=len(removed))
        return removed


def _advance(
    tx: RecordTx, record: TrackedResponse, cursor: int, stamp: float | None
) -> TrackedResponse:
    new = advance_cursor(record, cursor, stamp)
    if new is not record:
        tx.write_cursor(new)
    return new
