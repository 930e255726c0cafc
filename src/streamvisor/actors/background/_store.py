"""The durable active-response registry: background responses tracked in SQLite.

The BackgroundPoller keeps every background response it tracks here, so that after a daemon
restart -- even ``kill -9`` -- every non-terminal response is adopted again instead of forgotten
(the Erlang original kept them in gen_server state and lost them with the process).

Its records (`TrackedResponse`, `StatusChange`, the statuses) are in ``_records.py``, its errors
(`StoreError` and its leaves) in ``_errors.py``.

Concurrency: one ``sqlite3.Connection`` per store, opened with ``check_same_thread=False`` and
used by exactly one worker thread at a time (``trio.to_thread.run_sync`` under a ``trio.Lock``).
Thread calls are never abandoned on cancellation, so the lock is never released while a thread
still holds the connection, and an operation that started always finishes (committed or rolled
back) before its task sees ``Cancelled``.

Durability: a file database runs in WAL mode with ``synchronous=NORMAL``. Every operation is one
transaction; a commit reaches the OS with the WAL append, so a crashed or ``kill -9``-ed daemon
loses nothing it committed and a half-written transaction is never visible (uncommitted WAL frames
are ignored on recovery). Only an OS crash or power loss can roll back the last few commits --
NORMAL skips the per-commit fsync that FULL pays for and syncs at checkpoints instead. That is the
right trade here: a registry entry lost that way is a response the server still has (an orphan the
operator can list), and a cursor that goes back only makes a resume replay events, which the
session discards by sequence number; paying an fsync per poll would not buy anything better.
``":memory:"`` gives a private database that lives exactly as long as the store.

Times: every timestamp is passed in by the caller as a float. The poller uses wall-clock time
(``time.time()``) for persisted timestamps -- they must mean something after a restart, which
``trio.current_time()`` does not -- and keeps its scheduling on trio's clock. Tests pass constants.

Secrets: records are scrubbed of credentials when they are built (see ``_records.py``), so
nothing secret can reach the database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import structlog
import trio

from ._errors import (
    CorruptStore,
    DuplicateResponse,
    IllegalTransition,
    StoreClosed,
    StoreError,
    UnknownResponse,
    UnsupportedSchema,
)
from ._records import (
    ACTIVE_STATUSES,
    RESPONSE_STATUSES,
    TERMINAL_STATUSES,
    StatusChange,
    TrackedResponse,
    _dumps,
    _time,
)

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "RegistryStore"]

_log = structlog.get_logger("streamvisor.registry")
_T = TypeVar("_T")

#: How long a writer waits for another connection's lock before giving up (SQLITE_BUSY).
_BUSY_TIMEOUT_MS: Final = 5000
#: Bound on closing: the longest an in-flight operation can take, plus slack.
_CLOSE_TIMEOUT: Final = _BUSY_TIMEOUT_MS / 1000 + 5.0


# ----------------------------------------------------------------------------------- schema

#: A migration takes the schema from version ``i`` to ``i + 1`` on the connection it is given,
#: inside the transaction that also records the new version (DDL is transactional in SQLite, so a
#: crash mid-migration leaves the old version intact). It must not commit (no ``executescript``).
Migration = Callable[[sqlite3.Connection], None]


def _v1_responses_table(conn: sqlite3.Connection) -> None:
    statuses = ", ".join(f"'{s}'" for s in sorted(RESPONSE_STATUSES))
    terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
    conn.execute(
        f"""
        CREATE TABLE responses (
            response_id    TEXT PRIMARY KEY NOT NULL,
            status         TEXT NOT NULL CHECK (status IN ({statuses})),
            model          TEXT NOT NULL,
            owner          TEXT,
            mode           TEXT NOT NULL DEFAULT 'poll',
            created_at     REAL NOT NULL,
            updated_at     REAL NOT NULL,
            last_polled_at REAL,
            cursor         INTEGER CHECK (cursor IS NULL OR cursor >= 0),
            poll_attempts  INTEGER NOT NULL DEFAULT 0,
            error_count    INTEGER NOT NULL DEFAULT 0,
            terminal_at    REAL,
            last_error     TEXT,
            metadata       TEXT NOT NULL DEFAULT '{{}}',
            request        TEXT NOT NULL DEFAULT '{{}}',
            CHECK ((status IN ({terminal})) = (terminal_at IS NOT NULL))
        )
        """
    )
    conn.execute(
        "CREATE INDEX responses_active ON responses (created_at) WHERE terminal_at IS NULL"
    )
    conn.execute("CREATE INDEX responses_terminal ON responses (terminal_at)")


#: ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``; append, never edit a released one.
MIGRATIONS: Final[tuple[Migration, ...]] = (_v1_responses_table,)
#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = tuple(field.name for field in attrs.fields(TrackedResponse))
_JSON_COLUMNS: Final = frozenset({"metadata", "request"})


# ---------------------------------------------------------------- synchronous side (in a thread)


def _translate(exc: sqlite3.Error, what: str) -> StoreError:
    name = getattr(exc, "sqlite_errorname", "")
    if name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"}:
        return CorruptStore(f"{what}: the registry database is damaged or not a database ({exc})")
    return StoreError(f"{what}: {exc}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed on success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock later
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _row_to_record(row: sqlite3.Row) -> TrackedResponse:
    response_id = row["response_id"]
    try:
        values = {
            name: json.loads(row[name]) if name in _JSON_COLUMNS else row[name] for name in _COLUMNS
        }
        return TrackedResponse(**values)
    except (ValueError, TypeError) as exc:
        raise CorruptStore(f"registry row {response_id!r} is invalid: {exc}") from exc


def _record_to_row(record: TrackedResponse) -> tuple[Any, ...]:
    return tuple(
        _dumps(getattr(record, name)) if name in _JSON_COLUMNS else getattr(record, name)
        for name in _COLUMNS
    )


_INSERT: Final = (
    f"INSERT INTO responses ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_REPLACE: Final = (
    f"UPDATE responses SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])} WHERE response_id = ?"
)


def _select(conn: sqlite3.Connection, response_id: str) -> TrackedResponse | None:
    row = conn.execute("SELECT * FROM responses WHERE response_id = ?", (response_id,)).fetchone()
    return None if row is None else _row_to_record(row)


def _require(conn: sqlite3.Connection, response_id: str) -> TrackedResponse:
    record = _select(conn, response_id)
    if record is None:
        raise UnknownResponse(response_id)
    return record


def _write(conn: sqlite3.Connection, record: TrackedResponse) -> None:
    values = _record_to_row(record)
    conn.execute(_REPLACE, (*values[1:], values[0]))


def _check_transition(record: TrackedResponse, status: str) -> None:
    if record.is_terminal and status != record.status:
        raise IllegalTransition(record.response_id, record.status, status)


def _open_connection(path: str, migrations: Sequence[Migration]) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions; every write is an explicit BEGIN/COMMIT.
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        _configure(conn, path)
        _migrate(conn, path, migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise _translate(exc, f"opening registry database {path!r}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: str) -> None:
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    if path != ":memory:":
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            _log.warning("registry.no_wal", path=path, journal_mode=mode)
        conn.execute("PRAGMA synchronous = NORMAL")
    check = conn.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise CorruptStore(f"registry database {path!r} failed its integrity check: {check}")


def _migrate(conn: sqlite3.Connection, path: str, migrations: Sequence[Migration]) -> None:
    with _transaction(conn):  # BEGIN IMMEDIATE: two processes never migrate at once
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY NOT NULL, applied_at REAL NOT NULL)"
        )
        current = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if current > len(migrations):
            raise UnsupportedSchema(
                f"registry database {path!r} has schema version {current}; this streamvisor "
                f"understands up to {len(migrations)} (was it written by a newer version?)"
            )
        for version in range(current, len(migrations)):
            migrations[version](conn)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version + 1, time.time()),  # wall clock: a persisted, human-facing timestamp
            )
        if current < len(migrations):
            _log.info("registry.migrated", path=path, from_version=current, to=len(migrations))


def _close_connection(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA optimize")
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ store


class RegistryStore:
    """The registry of tracked background responses, on one SQLite connection.

    Obtain one with ``async with RegistryStore.open(path) as store:``. Every method runs its SQL in
    a worker thread, as one transaction, serialized with the store's other calls; every method
    raises ``StoreClosed`` once the block has ended, ``CorruptStore`` for a damaged database or
    row, and ``StoreError`` for other database failures (e.g. the file stayed locked by another
    process for longer than the busy timeout, or the disk is full).
    """

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        """Private: use ``RegistryStore.open``."""
        self._conn = conn
        self._lock = trio.Lock()
        self._closed = False
        #: Where the database lives (``":memory:"`` for a private in-memory one).
        self.path = path

    @classmethod
    @asynccontextmanager
    async def open(
        cls, path: str | Path, *, migrations: Sequence[Migration] = MIGRATIONS
    ) -> AsyncIterator[RegistryStore]:
        """Open (creating it and its parent directory if needed) and migrate the database.

        *path* is a file path or ``":memory:"``. *migrations* is the schema's upgrade path (the
        hook tests and future versions use). Raises ``CorruptStore`` if the file is not a
        registry database or fails SQLite's quick check, ``UnsupportedSchema`` if its schema is
        newer than *migrations* knows, ``StoreError`` for other database errors and ``OSError``
        if the directory cannot be created. On exit the connection is closed (bounded, shielded).
        """
        spath = str(path)
        conn = await trio.to_thread.run_sync(_open_connection, spath, tuple(migrations))
        store = cls(conn, spath)
        _log.debug("registry.opened", path=spath)
        try:
            yield store
        finally:
            await store._aclose()

    async def _aclose(self) -> None:
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True) as scope:
            async with self._lock:
                self._closed = True
                await trio.to_thread.run_sync(_close_connection, self._conn)
        if scope.cancelled_caught:  # pragma: no cover - needs a wedged SQLite call
            self._closed = True
            _log.error("registry.close_timeout", path=self.path, timeout=_CLOSE_TIMEOUT)

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        async with self._lock:
            if self._closed:
                raise StoreClosed(f"the registry store {self.path!r} is closed")

            def call() -> _T:
                try:
                    return fn(self._conn)
                except sqlite3.Error as exc:
                    raise _translate(exc, what) from exc

            # Never abandon_on_cancel: the lock must cover the thread's whole use of the
            # connection, and a write that started must finish (commit or roll back).
            return await trio.to_thread.run_sync(call)

    # ------------------------------------------------------------------------------- reads

    async def get(self, response_id: str) -> TrackedResponse:
        """The record for *response_id*. Raises ``UnknownResponse`` if it is not tracked."""
        return await self._run("get", lambda conn: _require(conn, response_id))

    async def find(self, response_id: str) -> TrackedResponse | None:
        """The record for *response_id*, or None if it is not tracked."""
        return await self._run("find", lambda conn: _select(conn, response_id))

    async def active(self) -> list[TrackedResponse]:
        """Every non-terminal record, oldest (``created_at``, then insertion order) first."""

        def query(conn: sqlite3.Connection) -> list[TrackedResponse]:
            rows = conn.execute(
                "SELECT * FROM responses WHERE terminal_at IS NULL ORDER BY created_at, rowid"
            )
            return [_row_to_record(row) for row in rows]

        return await self._run("active", query)

    async def all(self) -> list[TrackedResponse]:
        """Every record, terminal or not, oldest first."""

        def query(conn: sqlite3.Connection) -> list[TrackedResponse]:
            rows = conn.execute("SELECT * FROM responses ORDER BY created_at, rowid")
            return [_row_to_record(row) for row in rows]

        return await self._run("all", query)

    # ------------------------------------------------------------------------------ writes

    async def add(self, record: TrackedResponse) -> TrackedResponse:
        """Start tracking *record*; returns it. Raises ``DuplicateResponse`` if already tracked."""
        if not isinstance(record, TrackedResponse):
            raise TypeError(f"add() takes a TrackedResponse, got {type(record).__name__}")

        def insert(conn: sqlite3.Connection) -> TrackedResponse:
            with _transaction(conn):
                if _select(conn, record.response_id) is not None:
                    raise DuplicateResponse(record.response_id)
                conn.execute(_INSERT, _record_to_row(record))
            return record

        return await self._run("add", insert)

    async def update(self, response_id: str, /, **changes: Any) -> TrackedResponse:
        """Change fields of one record atomically; returns the new record.

        Any field but ``response_id`` may change; the new record is validated as a whole (e.g.
        a terminal status needs ``terminal_at``). A status change follows the same rule as
        ``record_status``, strictly: leaving a terminal status raises ``IllegalTransition``.
        Raises ``UnknownResponse``, ``IllegalTransition``, ``TypeError`` for an unknown field and
        ``ValueError``/``TypeError`` for an invalid value; nothing is written on error.
        """
        if "response_id" in changes:
            raise ValueError("update() cannot change response_id; remove() and add() instead")
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise TypeError(f"update() got unknown TrackedResponse fields: {sorted(unknown)}")

        def apply(conn: sqlite3.Connection) -> TrackedResponse:
            with _transaction(conn):
                record = _require(conn, response_id)
                if "status" in changes:
                    _check_transition(record, changes["status"])
                new = attrs.evolve(record, **changes)
                _write(conn, new)
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
        if status not in RESPONSE_STATUSES:
            raise ValueError(f"unknown response status {status!r}")
        at = _time(at)

        def apply(conn: sqlite3.Connection) -> StatusChange:
            with _transaction(conn):
                record = _require(conn, response_id)
                if record.is_terminal:
                    if status == record.status:
                        reason = f"already {status}"
                    elif status in ACTIVE_STATUSES:
                        reason = f"stale {status!r} after terminal {record.status!r}"
                    else:
                        raise IllegalTransition(response_id, record.status, status)
                    return StatusChange(record, record.status, applied=False, reason=reason)
                changes: dict[str, Any] = {"status": status, "updated_at": at}
                if status in TERMINAL_STATUSES:
                    changes["terminal_at"] = at
                if error is not None:
                    changes["last_error"] = error
                new = attrs.evolve(record, **changes)
                _write(conn, new)
            return StatusChange(new, record.status, applied=True)

        change = await self._run("record_status", apply)
        if not change.applied:
            _log.info(
                "registry.status_ignored",
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
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
            raise ValueError(f"cursor must be an int >= 0, got {cursor!r}")
        stamp = None if at is None else _time(at)

        def apply(conn: sqlite3.Connection) -> TrackedResponse:
            with _transaction(conn):
                record = _require(conn, response_id)
                if record.cursor is not None and cursor <= record.cursor:
                    return record
                changes: dict[str, Any] = {"cursor": cursor}
                if stamp is not None:
                    changes["updated_at"] = stamp
                new = attrs.evolve(record, **changes)
                _write(conn, new)
            return new

        return await self._run("record_cursor", apply)

    async def record_poll(
        self, response_id: str, *, at: float, error: str | None = None
    ) -> TrackedResponse:
        """Count one poll made at *at*: ``poll_attempts`` + 1 and ``last_polled_at`` = *at*.

        A failed poll (*error* given) also adds one to ``error_count`` and stores ``last_error``;
        a successful one resets ``error_count`` to 0. Raises ``UnknownResponse``.
        """
        at = _time(at)

        def apply(conn: sqlite3.Connection) -> TrackedResponse:
            with _transaction(conn):
                record = _require(conn, response_id)
                if error is None:
                    errors: dict[str, Any] = {"error_count": 0}
                else:
                    errors = {"error_count": record.error_count + 1, "last_error": error}
                new = attrs.evolve(
                    record,
                    poll_attempts=record.poll_attempts + 1,
                    last_polled_at=at,
                    **errors,
                )
                _write(conn, new)
            return new

        return await self._run("record_poll", apply)

    async def remove(self, response_id: str) -> TrackedResponse:
        """Stop tracking *response_id*; returns the removed record. Raises ``UnknownResponse``."""

        def delete(conn: sqlite3.Connection) -> TrackedResponse:
            with _transaction(conn):
                record = _require(conn, response_id)
                conn.execute("DELETE FROM responses WHERE response_id = ?", (response_id,))
            return record

        return await self._run("remove", delete)

    async def purge_terminal(self, older_than: float, now: float) -> list[str]:
        """Remove terminal records whose age ``now - terminal_at`` is at least *older_than*.

        Returns the removed ids, longest-terminal first. Active records are never removed.
        Raises ``ValueError`` for a negative or non-finite *older_than*.
        """
        older_than = _time(older_than)
        if older_than < 0:
            raise ValueError(f"older_than must be >= 0, got {older_than!r}")
        cutoff = _time(now) - older_than

        def delete(conn: sqlite3.Connection) -> list[str]:
            with _transaction(conn):
                rows = conn.execute(
                    "SELECT response_id FROM responses WHERE terminal_at IS NOT NULL "
                    "AND terminal_at <= ? ORDER BY terminal_at, rowid",
                    (cutoff,),
                ).fetchall()
                ids = [row["response_id"] for row in rows]
                conn.executemany("DELETE FROM responses WHERE response_id = ?", [(i,) for i in ids])
            return ids

        removed = await self._run("purge_terminal", delete)
        if removed:
            _log.debug("registry.purged", count=len(removed))
        return removed
