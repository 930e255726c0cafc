"""The durable active-response registry: background responses tracked in SQLite.

The BackgroundPoller keeps every background response it tracks here, so that after a daemon
restart -- even ``kill -9`` -- every non-terminal response is adopted again instead of forgotten
(the Erlang original kept them in gen_server state and lost them with the process).

Its records (`TrackedResponse`, `StatusChange`, the statuses) are in ``_records.py``, its errors
(`StoreError` and its leaves) in ``_errors.py``. What each write does to a record is in
``_transitions.py``, the write calls in ``_writes.py`` and the queued operation in
``_operation.py``: the cluster's PostgreSQL store shares all three; this module is the SQLite.

Group commit: one writer thread owns the ``sqlite3.Connection``. Every operation (reads too, so
that a read sees every write submitted before it) is queued; the writer takes everything queued
at once, runs it as one transaction, commits once, and wakes every waiter on the trio side (one
``run_sync_soon`` per batch). An operation that fails (``DuplicateResponse``,
``UnknownResponse``...) is undone alone: it fails before its one write statement, or in it (SQLite
undoes a failed statement by itself), or, if it writes more than once, it runs under a SAVEPOINT.
Under load the batches grow and the commits (each one fsync) stay few: about 4,000 operations of
1,000 durable streams took 170-1,200 commits (``python -m bench durable``). Nothing runs on the
event loop; a caller waits only for its own batch. An operation a cancelled caller left before the
writer reached it is skipped (nothing is written); one the writer already ran is committed with
its batch.

Reads that must never wait behind writes are served from memory: ``active()`` answers from a
mirror of the non-terminal records, loaded once from the database and kept up to date from the
committed results of every operation (this store is the only writer of its namespace).

Durability: a file database runs in WAL mode with ``synchronous=FULL``: a call returns only after
its transaction is in the WAL *and* the WAL is fsynced, so a committed record survives ``kill
-9`` (which NORMAL already gives: the WAL append reaches the OS) and also an OS crash or power
loss (which NORMAL does not: it syncs at checkpoints only). A durable stream's ticket is a
promise that the response is in the registry; group commit makes keeping it cheap (one fsync per
batch, not per record). A half-written transaction is never visible (uncommitted WAL frames are
ignored on recovery). ``":memory:"`` gives a private database that lives exactly as long as the
store.

Namespaces: every record belongs to the server that issued its id (`registry_namespace` of the
client's base URL). A store opened for one namespace never lists, adopts, updates or collides with
another's records: two servers (or one embedded server restarted with the same ids) can share a
file. Rows from before namespaces (schema 1) were moved to the empty namespace, which no daemon
uses (a daemon's namespace is its base URL): they stay in the file, visible to a store opened
without a namespace, and are never adopted or polled against a server that did not issue them.

Times: every timestamp is passed in by the caller as a float. The poller uses wall-clock time
(``time.time()``) for persisted timestamps -- they must mean something after a restart, which
``trio.current_time()`` does not -- and keeps its scheduling on trio's clock. Tests pass constants.

Secrets: records are scrubbed of credentials when they are built (see ``_records.py``), and a
namespace drops any user:password part of the URL, so nothing secret can reach the database.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import attrs
import structlog
import trio

from ._errors import (
    CorruptStore,
    DuplicateResponse,
    StoreClosed,
    StoreError,
    UnknownResponse,
    UnsupportedSchema,
)
from ._operation import BatchWriter, Operation, StoreCounters, deliver
from ._records import (
    RESPONSE_STATUSES,
    TERMINAL_STATUSES,
    StatusChange,
    TrackedResponse,
    _dumps,
)
from ._transitions import (
    COLUMNS,
)
from ._writes import RegistryWrites

__all__ = [
    "EMBEDDED_NAMESPACE",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Migration",
    "RegistryStore",
    "RegistryView",
    "ResponseStore",
    "registry_namespace",
]

_log = structlog.get_logger("streamvisor.registry")
_T = TypeVar("_T")

#: How long a writer waits for another connection's lock before giving up (SQLITE_BUSY).
_BUSY_TIMEOUT_MS: Final = 5000
#: Bound on closing: the longest an in-flight batch can take, plus slack.
_CLOSE_TIMEOUT: Final = _BUSY_TIMEOUT_MS / 1000 + 5.0


def registry_namespace(base_url: str) -> str:
    """The namespace of the records a server issues: its base URL, normalised.

    Scheme and host are lower-cased, a default port and a trailing ``/`` are dropped, and so are
    any ``user:password@``, query and fragment (never stored). ``https://API.openai.com:443/v1/``
    and ``https://api.openai.com/v1`` are one namespace.
    """
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port is not None and (scheme, port) not in {("http", 80), ("https", 443)}:
        host = f"{host}:{port}"
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


#: The namespace of the embedded server's records, whatever port it got: its ids are random (never
#: reused), and a restarted daemon adopts what an earlier embedded server left, finds it gone
#: (404), records it failed and purges it after ``terminal_ttl`` -- instead of leaving it under a
#: namespace (a random port) that no daemon would ever open again.
EMBEDDED_NAMESPACE: Final = "embedded"


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


_V1_COLUMNS: Final = (
    "response_id, status, model, owner, mode, created_at, updated_at, last_polled_at, cursor, "
    "poll_attempts, error_count, terminal_at, last_error, metadata, request"
)


def _v2_namespaces(conn: sqlite3.Connection) -> None:
    """Key every record by (namespace, response_id). Rows from schema 1 get the empty namespace:
    which server issued them is unknown, so no daemon (whose namespace is its base URL) adopts
    them; they stay for an operator to see (``RegistryStore.open(path)``) or delete."""
    statuses = ", ".join(f"'{s}'" for s in sorted(RESPONSE_STATUSES))
    terminal = ", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES))
    conn.execute(
        f"""
        CREATE TABLE responses_v2 (
            namespace      TEXT NOT NULL,
            response_id    TEXT NOT NULL,
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
            PRIMARY KEY (namespace, response_id),
            CHECK ((status IN ({terminal})) = (terminal_at IS NOT NULL))
        )
        """
    )
    conn.execute(
        f"INSERT INTO responses_v2 (namespace, {_V1_COLUMNS}) "
        f"SELECT '', {_V1_COLUMNS} FROM responses ORDER BY rowid"
    )
    parked = conn.execute("SELECT COUNT(*) FROM responses WHERE terminal_at IS NULL").fetchone()[0]
    conn.execute("DROP TABLE responses")
    conn.execute("ALTER TABLE responses_v2 RENAME TO responses")
    conn.execute(
        "CREATE INDEX responses_active ON responses (namespace, created_at) "
        "WHERE terminal_at IS NULL"
    )
    conn.execute("CREATE INDEX responses_terminal ON responses (namespace, terminal_at)")
    if parked:
        _log.warning(
            "registry.legacy_rows_parked",
            active=parked,
            hint="rows from before namespaces are kept in the empty namespace, not adopted",
        )


#: ``MIGRATIONS[i]`` upgrades version ``i`` to ``i + 1``; append, never edit a released one.
MIGRATIONS: Final[tuple[Migration, ...]] = (_v1_responses_table, _v2_namespaces)
#: The schema version this code writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

_COLUMNS: Final = COLUMNS
_JSON_COLUMNS: Final = frozenset({"metadata", "request"})


# ---------------------------------------------------------------- synchronous side (the writer)


def _translate(exc: sqlite3.Error, what: str) -> StoreError:
    name = getattr(exc, "sqlite_errorname", "")
    if name in {"SQLITE_CORRUPT", "SQLITE_NOTADB"}:
        error: StoreError = CorruptStore(
            f"{what}: the registry database is damaged or not a database ({exc})"
        )
    else:
        error = StoreError(f"{what}: {exc}")
    error.__cause__ = exc
    return error


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
    f"INSERT INTO responses (namespace, {', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (len(_COLUMNS) + 1))})"
)
_REPLACE: Final = (
    f"UPDATE responses SET {', '.join(f'{c} = ?' for c in _COLUMNS[1:])} "
    "WHERE namespace = ? AND response_id = ?"
)


@attrs.define(eq=False)
class _Tx:
    """One operation's view of the batch transaction: its namespace, and the records it changed
    (None: removed) for the active mirror, applied only if the operation and the commit succeed."""

    conn: sqlite3.Connection
    namespace: str
    changed: dict[str, TrackedResponse | None] = attrs.field(factory=dict)

    def select(self, response_id: str) -> TrackedResponse | None:
        row = self.conn.execute(
            "SELECT * FROM responses WHERE namespace = ? AND response_id = ?",
            (self.namespace, response_id),
        ).fetchone()
        return None if row is None else _row_to_record(row)

    def require(self, response_id: str) -> TrackedResponse:
        record = self.select(response_id)
        if record is None:
            raise UnknownResponse(response_id)
        return record

    def insert(self, record: TrackedResponse) -> None:
        self.conn.execute(_INSERT, (self.namespace, *_record_to_row(record)))
        self.changed[record.response_id] = record

    def write(self, record: TrackedResponse) -> None:
        values = _record_to_row(record)
        self.conn.execute(_REPLACE, (*values[1:], self.namespace, values[0]))
        self.changed[record.response_id] = record

    def write_cursor(self, record: TrackedResponse) -> None:
        # Two columns, not every one: no JSON encoding of the request for a cursor write.
        self.conn.execute(
            "UPDATE responses SET cursor = ?, updated_at = ? "
            "WHERE namespace = ? AND response_id = ?",
            (record.cursor, record.updated_at, self.namespace, record.response_id),
        )
        self.changed[record.response_id] = record

    def delete(self, response_id: str) -> None:
        self.conn.execute(
            "DELETE FROM responses WHERE namespace = ? AND response_id = ?",
            (self.namespace, response_id),
        )
        self.changed[response_id] = None

    def query(self, where: str, *args: Any) -> list[TrackedResponse]:
        rows = self.conn.execute(
            f"SELECT * FROM responses WHERE namespace = ?{where} ORDER BY created_at, rowid",
            (self.namespace, *args),
        )
        return [_row_to_record(row) for row in rows]


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
        conn.execute("PRAGMA synchronous = FULL")  # see the module docstring: Durability
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


#: One queued operation: the shared `Operation` on this store's transaction view.
_Op = Operation[_Tx, _T]


class _Writer(BatchWriter):
    """The thread that owns the connection and runs the queued operations in batches.

    Runs until stopped; everything queued before it is still committed and delivered. Each
    batch is delivered to trio in one ``run_sync_soon`` call, in queue order. Closing it closes
    the connection.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        deliver: Callable[[list[_Op[Any]]], None],
    ) -> None:
        super().__init__(
            deliver,
            thread_name="streamvisor-registry",
            close_timeout=_CLOSE_TIMEOUT,
            log=_log,
            prefix="registry",
        )
        self.conn = conn
        self.namespace = namespace

    def _main(self) -> None:
        stopping = False
        try:
            while not stopping:
                batch, stopping = self._next_batch()
                if batch:
                    try:
                        self._run_batch(batch)
                    except Exception as exc:  # the connection itself failed (SAVEPOINT...)
                        self._fail(batch, exc)
                    self._send(batch)
                # Not kept while the thread waits for the next operation: the operations'
                # arguments and results (``all()``: every record, each with its request).
                del batch
        finally:
            try:
                _close_connection(self.conn)
            except sqlite3.Error as exc:
                _log.warning("registry.close_failed", error=str(exc))

    def _fail(self, batch: list[_Op[Any]], exc: Exception) -> None:
        """Nothing of this batch was committed: every operation in it fails with ``exc``."""
        with contextlib.suppress(sqlite3.Error):
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        for op in batch:
            error = _translate(exc, op.what) if isinstance(exc, sqlite3.Error) else exc
            op.error, op.result, op.changed = error, None, {}

    def _run_batch(self, batch: list[_Op[Any]]) -> None:
        conn = self.conn
        ran: list[_Op[Any]] = []  # succeeded in the open transaction, not yet committed
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            for op in batch:
                op.error = _translate(exc, op.what)
            return
        for op in batch:
            if op.abandoned:
                continue
            op.ran = True
            if not conn.in_transaction:  # an error rolled the whole transaction back: go on
                conn.execute("BEGIN IMMEDIATE")
            tx = _Tx(conn, self.namespace)
            # Fewer statements per batch are fewer GIL hand-overs with the event loop's thread.
            if op.savepoint:
                conn.execute("SAVEPOINT operation")
            try:
                op.result = op.fn(tx)
            except Exception as exc:
                op.error = _translate(exc, op.what) if isinstance(exc, sqlite3.Error) else exc
                if not conn.in_transaction:  # SQLite rolled back everything (disk full...)
                    for earlier in ran:
                        earlier.error, earlier.result, earlier.changed = op.error, None, {}
                    ran = []
                elif op.savepoint:
                    conn.execute("ROLLBACK TO operation")
                    conn.execute("RELEASE operation")
            else:
                if op.savepoint:
                    conn.execute("RELEASE operation")
                op.changed = tx.changed
                ran.append(op)
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for op in ran:
                op.error, op.result, op.changed = _translate(exc, op.what), None, {}
        self.batches += 1
        self.operations += len(batch)


class _InlineWriter(_Writer):
    """Runs each operation at once on the trio thread: for tests on trio's autojump clock, which
    would leap to the next deadline while a real thread works (``monkeypatch`` it in as
    ``_store._Writer``). Same SQL, one operation per batch, and delivered as the thread delivers
    (``run_sync_soon``): callers and ``add_nowait`` callbacks see the production order."""

    def start(self) -> None:
        pass

    def submit(self, op: _Op[Any]) -> None:
        self._taken = time.perf_counter()
        try:
            self._run_batch([op])
        except Exception as exc:
            self._fail([op], exc)
        self._send([op])

    async def stop(self) -> None:
        await trio.lowlevel.checkpoint()
        _close_connection(self.conn)


# ------------------------------------------------------------------------------------ store


class RegistryStore(RegistryWrites[_Tx]):
    """The registry of tracked background responses of one namespace, on one SQLite connection.

    Obtain one with ``async with RegistryStore.open(path, namespace=...) as store:``. Every
    method is one operation of a group-committed batch run by the store's writer thread (see the
    module docstring); it returns once its batch is committed. Every method raises
    ``StoreClosed`` once the block has ended, ``CorruptStore`` for a damaged database or row, and
    ``StoreError`` for other database failures (e.g. the file stayed locked by another process
    for longer than the busy timeout, or the disk is full).
    """

    _writes_log = _log
    _writes_prefix = "registry"

    def __init__(self, conn: sqlite3.Connection, path: str, namespace: str) -> None:
        """Private: use ``RegistryStore.open``."""
        self._writer = _Writer(conn, namespace, self._deliver)
        self._closed = False
        #: The non-terminal records, once loaded (see ``active``).
        self._mirror: dict[str, TrackedResponse] | None = None
        #: Where the database lives (``":memory:"`` for a private in-memory one).
        self.path = path
        #: The server whose records this store sees (`registry_namespace` of its base URL).
        self.namespace = namespace

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | Path,
        *,
        namespace: str = "",
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> AsyncIterator[RegistryStore]:
        """Open (creating it and its parent directory if needed) and migrate the database.

        *path* is a file path or ``":memory:"``. *namespace* selects the records of one server
        (`registry_namespace` of its base URL; ``""``, the default, holds the rows from before
        namespaces). *migrations* is the schema's upgrade path (the hook tests and future
        versions use). Raises ``CorruptStore`` if the file is not a registry database or fails
        SQLite's quick check, ``UnsupportedSchema`` if its schema is newer than *migrations*
        knows, ``StoreError`` for other database errors and ``OSError`` if the directory cannot
        be created. On exit the queued operations finish and the connection is closed (bounded,
        shielded).
        """
        spath = str(path)
        conn = await trio.to_thread.run_sync(_open_connection, spath, tuple(migrations))
        store = cls(conn, spath, namespace)
        store._writer.start()
        _log.debug("registry.opened", path=spath, namespace=namespace)
        try:
            yield store
        finally:
            await store._aclose()

    async def _aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.stop()

    @property
    def statistics(self) -> tuple[int, int]:
        """(batches committed, operations in them) so far: operations / batches is the group
        commit's average batch size."""
        return self._writer.batches, self._writer.operations

    def _deliver(self, batch: list[_Op[Any]]) -> None:
        """On the trio thread: apply a committed batch to the mirror, in order; wake its callers."""
        self._mirror = deliver(
            batch,
            self._mirror,
            _log,
            "registry.callback_failed",
            self._writer.counters.finished,
        )

    async def _run(
        self,
        what: str,
        fn: Callable[[_Tx], _T],
        *,
        loads_mirror: bool = False,
        savepoint: bool = False,
    ) -> _T:
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closed:
            raise StoreClosed(f"the registry store {self.path!r} is closed")
        op: _Op[_T] = _Op[_T](what, fn, loads_mirror=loads_mirror, savepoint=savepoint)
        self._writer.submit(op)
        return await op.outcome()

    # ------------------------------------------------------------------------------- reads

    async def get(self, response_id: str) -> TrackedResponse:
        """The record for *response_id*. Raises ``UnknownResponse`` if it is not tracked."""
        return await self._run("get", lambda tx: tx.require(response_id))

    async def find(self, response_id: str) -> TrackedResponse | None:
        """The record for *response_id*, or None if it is not tracked."""
        return await self._run("find", lambda tx: tx.select(response_id))

    async def active(self) -> list[TrackedResponse]:
        """Every non-terminal record, oldest (``created_at``, then insertion order) first.

        Served from memory once loaded (the first call reads the database): it never waits
        behind writes, and it shows every write whose call has returned.
        """
        if self._mirror is None:
            await self._run(
                "active", lambda tx: tx.query(" AND terminal_at IS NULL"), loads_mirror=True
            )
        else:
            await trio.lowlevel.checkpoint()
        return self.active_nowait()

    def active_count_nowait(self) -> int | None:
        """How many records are active, from memory; None once closed or before the first
        ``active()`` loaded it (no sort, no copy: for health checks)."""
        if self._closed or self._mirror is None:
            return None
        return len(self._mirror)

    def active_nowait(self) -> list[TrackedResponse]:
        """`active` without a checkpoint, for an actor answering from memory in one step.
        Raises ``StoreClosed``, and ``RuntimeError`` if ``active()`` was never awaited (the
        mirror is loaded by the first ``active()``)."""
        if self._closed:
            raise StoreClosed(f"the registry store {self.path!r} is closed")
        if self._mirror is None:
            raise RuntimeError("active_nowait() before the first active(): nothing loaded yet")
        return sorted(self._mirror.values(), key=lambda record: record.created_at)

    async def all(self) -> list[TrackedResponse]:
        """Every record, terminal or not, oldest first."""
        return await self._run("all", lambda tx: tx.query(""))

    # ------------------------------------------------------------------------------ writes

    def add_nowait(
        self,
        record: TrackedResponse,
        on_done: Callable[[TrackedResponse | None, BaseException | None], None],
    ) -> None:
        """`add` without waiting: queue it and return; once its batch is committed,
        ``on_done(record, None)`` -- or ``on_done(None, error)`` with what `add` would raise --
        runs on the trio thread (from a ``run_sync_soon`` callback: it must not block, and an
        exception it raises is logged, not propagated). Saves a caller that only forwards the
        answer (the background poller) two passes of the scheduler per add. Raises
        ``StoreClosed`` at once if the store is closed."""
        if not isinstance(record, TrackedResponse):
            raise TypeError(f"add_nowait() takes a TrackedResponse, got {type(record).__name__}")
        if self._closed:
            raise StoreClosed(f"the registry store {self.path!r} is closed")
        self._writer.submit(_Op[TrackedResponse]("add", _inserter(record), callback=on_done))

    async def add(self, record: TrackedResponse) -> TrackedResponse:
        """Start tracking *record*; returns it. Raises ``DuplicateResponse`` if already tracked."""
        if not isinstance(record, TrackedResponse):
            raise TypeError(f"add() takes a TrackedResponse, got {type(record).__name__}")
        return await self._run("add", _inserter(record))

    # --------------------------------------------------- what the writes need (RegistryWrites)

    def _require(self, tx: _Tx, response_id: str) -> TrackedResponse:
        return tx.require(response_id)

    def _find(self, tx: _Tx, response_id: str) -> TrackedResponse | None:
        return tx.select(response_id)

    def _purge(self, tx: _Tx, cutoff: float) -> list[str]:
        rows = tx.conn.execute(
            "SELECT response_id FROM responses WHERE namespace = ? "
            "AND terminal_at IS NOT NULL AND terminal_at <= ? ORDER BY terminal_at, rowid",
            (tx.namespace, cutoff),
        ).fetchall()
        ids = [row["response_id"] for row in rows]
        tx.conn.executemany(
            "DELETE FROM responses WHERE namespace = ? AND response_id = ?",
            [(tx.namespace, i) for i in ids],
        )
        return ids


class ResponseStore(Protocol):
    """What the background poller needs of a registry: `RegistryStore` (SQLite, one node) and
    the cluster's PostgreSQL store (``streamvisor.cluster``) both provide it, with the same
    arguments, results and errors (see `RegistryStore` for each method's contract)."""

    @property
    def statistics(self) -> tuple[int, int]: ...
    def count_into(self, counters: StoreCounters) -> None: ...
    async def get(self, response_id: str) -> TrackedResponse: ...
    async def find(self, response_id: str) -> TrackedResponse | None: ...
    async def active(self) -> list[TrackedResponse]: ...
    def active_count_nowait(self) -> int | None: ...
    def active_nowait(self) -> list[TrackedResponse]: ...
    async def all(self) -> list[TrackedResponse]: ...
    def add_nowait(
        self,
        record: TrackedResponse,
        on_done: Callable[[TrackedResponse | None, BaseException | None], None],
    ) -> None: ...
    async def add(self, record: TrackedResponse) -> TrackedResponse: ...
    async def update(self, response_id: str, /, **changes: Any) -> TrackedResponse: ...
    async def record_status(
        self, response_id: str, status: str, *, at: float, error: str | None = None
    ) -> StatusChange: ...
    async def record_cursor(
        self, response_id: str, cursor: int, *, at: float | None = None
    ) -> TrackedResponse: ...
    async def record_cursors(
        self, cursors: Mapping[str, int], *, at: float | None = None
    ) -> dict[str, TrackedResponse]: ...
    async def record_poll(
        self, response_id: str, *, at: float, error: str | None = None
    ) -> TrackedResponse: ...
    async def remove(self, response_id: str) -> TrackedResponse: ...
    async def purge_terminal(self, older_than: float, now: float) -> list[str]: ...


class RegistryView:
    """A read-only window on the registry of whichever background poller runs now, for answers
    that must not wait for the poller's turn (``Daemon.status()``, ``/health``).

    The daemon creates one and hands it to every `BackgroundPoller` it starts; a poller attaches
    its store once open. Reads come from the store's memory, in the caller's task.
    """

    __slots__ = ("_store", "counters")

    def __init__(self) -> None:
        self._store: ResponseStore | None = None
        #: The commits and finished records of every store its pollers open
        #: (`ResponseStore.count_into`).
        self.counters = StoreCounters()

    def attach(self, store: ResponseStore) -> None:
        """The store of the poller that just started (replacing a restarted one's)."""
        self._store = store

    def active_count(self) -> int | None:
        """How many tracked responses are not terminal; None while no poller's store is open
        (the poller is starting or restarting: ask it instead)."""
        store = self._store
        if store is None:
            return None
        return store.active_count_nowait()

    def active_statuses(self) -> dict[str, int] | None:
        """How many tracked responses are in each non-terminal status (``queued``,
        ``in_progress``), from memory; None as for `active_count`."""
        store = self._store
        if store is None or store.active_count_nowait() is None:
            return None
        counts: dict[str, int] = {}
        for record in store.active_nowait():
            counts[record.status] = counts.get(record.status, 0) + 1
        return counts


def _inserter(record: TrackedResponse) -> Callable[[_Tx], TrackedResponse]:
    def insert(tx: _Tx) -> TrackedResponse:
        try:
            tx.insert(record)
        except sqlite3.IntegrityError as exc:
            if tx.select(record.response_id) is not None:
                raise DuplicateResponse(record.response_id) from exc
            raise
        return record

    return insert
