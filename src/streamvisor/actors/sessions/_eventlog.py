"""`EventLog`: what the daemon keeps of a response's stream, so a client can replay it.

A session stream started with ``keep_events=True`` (what the gateway's ``/v1`` does for every
streamed response) appends each event it publishes to the log, in the same synchronous step as
the publish (`append`: a list append, no checkpoint). A flusher task writes what is pending to
SQLite every ``flush_interval`` seconds, one transaction per batch, off the event loop. `read`
answers from the database *and* from what is still pending or being written, so a reader that
subscribed to the session's topic before calling it sees every event either in the read or on
the bus -- never neither (the gateway's replay-then-live relay relies on it).

Bounds, all per `EventLogSection`: a response keeps at most ``max_events`` events (beyond them
its log is marked truncated and a reader must go upstream for the rest); a response whose last
event is older than ``retention`` seconds is deleted with its events (checked at open and every
``purge_interval`` seconds). Each record is the event's frame as the server sent it (its JSON
text), so a replay is what the client would have received live.

Durability: WAL with ``synchronous=NORMAL`` -- a crash of the machine may lose the last batches
(a process crash loses only what was pending, at most ``flush_interval`` of events). A log that
lacks a range is never served with a gap: `LogRead.after` says where a reader must continue
(upstream, with ``starting_after``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import attrs
import structlog
import trio

from streamvisor.openai import TERMINAL_TYPES, StreamEvent

__all__ = ["EventLog", "LogRead", "LoggedResponse", "open_event_log"]

log = structlog.get_logger("streamvisor.actors")

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS responses (
        namespace TEXT NOT NULL, response_id TEXT NOT NULL, session_id TEXT,
        background INTEGER, last_seq INTEGER, terminal TEXT, truncated INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL, PRIMARY KEY (namespace, response_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS events (
        namespace TEXT NOT NULL, response_id TEXT NOT NULL, seq INTEGER NOT NULL,
        frame TEXT NOT NULL, PRIMARY KEY (namespace, response_id, seq)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS responses_age ON responses (updated_at)",
)


@attrs.frozen
class LoggedResponse:
    """What the log knows of a response: ``session_id`` (whose topic carries it live),
    ``background`` (what the client asked, None if not said), ``last_seq`` (in memory: the last
    kept; read back: as of the record's last write), ``terminal`` (the
    terminal event's type once logged), ``truncated`` (it outgrew ``max_events``)."""

    response_id: str
    session_id: str | None
    background: bool | None
    last_seq: int | None
    terminal: str | None
    truncated: bool


@attrs.frozen
class LogRead:
    """The answer of `EventLog.read`: ``frames`` -- ``(sequence_number, type, data)`` of the
    consecutive events after the cursor the log holds -- and ``response`` (None: the log has
    never seen the response). ``after`` is the cursor to continue from (the last frame's number,
    or the asked cursor when there is none)."""

    response: LoggedResponse | None
    frames: tuple[tuple[int, str, Mapping[str, Any]], ...]
    after: int | None


@attrs.define(eq=False)
class _Open:
    """A response being logged (in memory until its terminal event is written)."""

    session_id: str | None
    background: bool | None = None
    count: int = 0
    last_seq: int | None = None
    terminal: str | None = None
    truncated: bool = False


class EventLog:
    """The log of kept streams (see the module docstring). Get one from `open_event_log`."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        namespace: str,
        retention: float,
        max_events: int,
    ) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.namespace = namespace
        self.retention = retention
        self.max_events = max_events
        self._open: dict[str, _Open] = {}
        #: Responses whose record (not their events) must be written at the next flush.
        self._dirty: set[str] = set()
        #: Events appended and not yet handed to the writer: (response_id, event).
        self._pending: list[StreamEvent] = []
        #: The batch the writer thread holds now (read by `read` until it is committed).
        self._writing: list[StreamEvent] = []
        self._wake = trio.Event()
        self._flushing = trio.Lock()
        #: Responses deleted by `forget`: events still arriving for them are not kept.
        self._forgotten: OrderedDict[str, None] = OrderedDict()
        self.closed = False

    def __repr__(self) -> str:
        return f"<EventLog namespace={self.namespace!r} open={len(self._open)}>"

    # -- the writers' side (synchronous, called where events are published) ----------------

    def annotate(self, response_id: str, *, session_id: str | None, background: bool) -> None:
        """Remember what the client asked of ``response_id`` (``background``) and which session
        streams it, before or after its first event."""
        if response_id in self._forgotten:
            return
        entry = self._open.get(response_id)
        if entry is None:
            entry = self._open[response_id] = _Open(session_id)
        entry.background = background
        entry.session_id = session_id or entry.session_id
        self._dirty.add(response_id)
        self._kick()

    def append(self, event: StreamEvent) -> None:
        """Keep ``event`` (of a response: ``event.response_id`` set). Never blocks, never
        raises; an event at or below the last kept number is ignored (a resumed connection's
        overlap), one beyond ``max_events`` marks the log truncated."""
        rid = event.response_id
        if rid is None or self.closed or rid in self._forgotten:
            return
        entry = self._open.get(rid)
        if entry is None:
            entry = self._open[rid] = _Open(event.session_id)
            self._dirty.add(rid)
        seq = event.sequence_number
        if (entry.last_seq is not None and seq <= entry.last_seq) or entry.truncated:
            return
        if entry.count >= self.max_events:
            entry.truncated = True
            self._dirty.add(rid)
            log.warning("eventlog.truncated", response_id=rid, max_events=self.max_events)
            self._kick()
            return
        entry.count += 1
        entry.last_seq = seq
        # The record is rewritten when something in it matters (its end), and now and then as
        # a sign of life for the retention: not with every event (that doubled the writes).
        if event.type in TERMINAL_TYPES:
            entry.terminal = event.type
            self._dirty.add(rid)
        elif not entry.count % _HEARTBEAT:
            self._dirty.add(rid)
        self._pending.append(event)
        if len(self._pending) >= _BATCH:
            self._kick()

    def _kick(self) -> None:
        self._wake.set()

    # -- readers -----------------------------------------------------------------------------

    async def read(self, response_id: str, after: int | None) -> LogRead:
        """The events of ``response_id`` after ``after`` (None: from the first) that the log
        holds without a gap, with what it knows of the response. Raises ``sqlite3.Error`` if the
        database cannot be read."""
        # Snapshot memory first: whatever is appended after this is published after it too.
        memory = [e for e in (*self._writing, *self._pending) if e.response_id == response_id]
        entry = self._open.get(response_id)
        meta_mem = None if entry is None else self._meta(response_id, entry)
        if response_id in self._forgotten:
            return LogRead(None, (), after)
        lower = -1 if after is None else after
        stored, meta_db = await trio.to_thread.run_sync(self._select, response_id, lower)
        frames: dict[int, tuple[int, str, Mapping[str, Any]]] = {}
        for seq, text in stored:
            data = json.loads(text)
            frames[seq] = (seq, str(data.get("type", "")), data)
        for event in memory:
            if event.sequence_number > lower:
                frames.setdefault(
                    event.sequence_number, (event.sequence_number, event.type, event.data)
                )
        meta = meta_mem or meta_db
        if meta is None:
            return LogRead(None, (), after)
        ordered: list[tuple[int, str, Mapping[str, Any]]] = []
        expected = lower + 1  # a stream's numbers start at 0
        for seq in sorted(frames):
            if seq != expected:
                break  # a gap: continue from the last one in order
            ordered.append(frames[seq])
            expected = seq + 1
        last = ordered[-1][0] if ordered else after
        return LogRead(meta, tuple(ordered), last)

    async def describe(self, response_id: str) -> LoggedResponse | None:
        """What the log knows of ``response_id`` (memory first, then the database), or None.
        Raises ``sqlite3.Error`` if the database cannot be read."""
        if response_id in self._forgotten:
            return None
        known = self.known(response_id)
        if known is not None:
            return known
        _, meta = await trio.to_thread.run_sync(self._select, response_id, _NO_EVENTS)
        return meta

    def known(self, response_id: str) -> LoggedResponse | None:
        """What the log knows of a response it is keeping now (memory only), else None."""
        entry = self._open.get(response_id)
        return None if entry is None else self._meta(response_id, entry)

    @staticmethod
    def _meta(response_id: str, entry: _Open) -> LoggedResponse:
        return LoggedResponse(
            response_id,
            entry.session_id,
            entry.background,
            entry.last_seq,
            entry.terminal,
            entry.truncated,
        )

    async def purge(self, before: float | None = None) -> int:
        """Delete the responses whose last event was written before ``before`` (wall-clock
        seconds; default: now minus ``retention``), with their events. Returns how many."""
        cutoff = time.time() - self.retention if before is None else before
        gone = await trio.to_thread.run_sync(self._purge, cutoff)
        for rid in gone:
            self._open.pop(rid, None)
        return len(gone)

    async def forget(self, response_id: str) -> None:
        """Delete ``response_id``'s log (``DELETE /v1/responses/{id}``); events still arriving
        for it (its stream winding down) are not kept, and it reads as never seen."""
        with self._lock:  # no write in flight keeps it (see `_write`)
            self._forgotten[response_id] = None
            while len(self._forgotten) > _FORGOTTEN_KEPT:
                self._forgotten.popitem(last=False)
        self._open.pop(response_id, None)
        self._pending = [e for e in self._pending if e.response_id != response_id]
        await trio.to_thread.run_sync(self._delete, response_id)

    # -- the database (worker threads, one at a time under the lock) -------------------------

    def _select(
        self, response_id: str, lower: int
    ) -> tuple[list[tuple[int, str]], LoggedResponse | None]:
        with self._lock:
            row = self._conn.execute(
                "SELECT session_id, background, last_seq, terminal, truncated FROM responses "
                "WHERE namespace = ? AND response_id = ?",
                (self.namespace, response_id),
            ).fetchone()
            if row is None:
                return [], None
            rows = self._conn.execute(
                "SELECT seq, frame FROM events WHERE namespace = ? AND response_id = ? "
                "AND seq > ? ORDER BY seq",
                (self.namespace, response_id, lower),
            ).fetchall()
        meta = LoggedResponse(
            response_id,
            row[0],
            None if row[1] is None else bool(row[1]),
            row[2],
            row[3],
            bool(row[4]),
        )
        return rows, meta

    def _write(self, batch: list[StreamEvent], metas: list[tuple[Any, ...]], now: float) -> None:
        with self._lock:
            gone = self._forgotten  # read under the lock: a delete before this write wins
            rows = [
                (self.namespace, e.response_id, e.sequence_number, json.dumps(_plain(e.data)))
                for e in batch
                if e.response_id not in gone
            ]
            metas = [meta for meta in metas if meta[0] not in gone]
            conn = self._conn
            conn.execute("BEGIN")
            try:
                conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", rows)
                conn.executemany(
                    "INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (namespace, response_id) DO UPDATE SET "
                    "session_id = excluded.session_id, background = excluded.background, "
                    "last_seq = excluded.last_seq, terminal = excluded.terminal, "
                    "truncated = excluded.truncated, updated_at = excluded.updated_at",
                    [(self.namespace, *meta, now) for meta in metas],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _delete(self, response_id: str) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            for table in ("events", "responses"):
                self._conn.execute(
                    f"DELETE FROM {table} WHERE namespace = ? AND response_id = ?",
                    (self.namespace, response_id),
                )
            self._conn.execute("COMMIT")

    def _purge(self, before: float) -> list[str]:
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN")
            gone = [
                r[0]
                for r in conn.execute(
                    "SELECT response_id FROM responses WHERE namespace = ? AND updated_at < ?",
                    (self.namespace, before),
                )
            ]
            for rid in gone:
                for table in ("events", "responses"):
                    conn.execute(
                        f"DELETE FROM {table} WHERE namespace = ? AND response_id = ?",
                        (self.namespace, rid),
                    )
            conn.execute("COMMIT")
        return gone

    # -- the flusher ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything appended so far (one transaction), after any write in flight (one
        at a time: `read` sees the batch being written). Raises ``sqlite3.Error``."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        metas: list[tuple[Any, ...]] = []
        finished: list[str] = []
        dirty, self._dirty = self._dirty, set()
        for rid in dirty:
            entry = self._open.get(rid)
            if entry is None:  # forgotten meanwhile
                continue
            background = None if entry.background is None else int(entry.background)
            metas.append(
                (
                    rid,
                    entry.session_id,
                    background,
                    entry.last_seq,
                    entry.terminal,
                    int(entry.truncated),
                )
            )
            if entry.terminal is not None or entry.truncated:
                finished.append(rid)
        if not batch and not metas:
            return
        self._writing = batch
        try:
            await trio.to_thread.run_sync(self._write, batch, metas, time.time())
        finally:
            self._writing = []
        for rid in finished:  # written with its terminal event: memory no longer needed
            if rid not in self._dirty:
                self._open.pop(rid, None)

    async def _run(self, flush_interval: float, purge_interval: float) -> None:
        next_purge = trio.current_time()
        while True:
            with trio.move_on_after(flush_interval):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self.flush()
                if trio.current_time() >= next_purge:
                    gone = await self.purge()
                    if gone:
                        log.info("eventlog.purged", responses=gone)
                    next_purge = trio.current_time() + purge_interval
            except sqlite3.Error as exc:  # keep the events in memory; try again next round
                log.warning("eventlog.write_failed", error=repr(exc))


#: A cursor past every sequence number: `describe` reads a record without its events.
_NO_EVENTS: Final = 2**62
#: Pending events that wake the flusher before its interval.
_BATCH: Final = 2048
#: Events after which a long stream's record is rewritten (its retention clock restarts).
_HEARTBEAT: Final = 4096
#: Deleted response ids remembered (so a stream winding down does not log them again).
_FORGOTTEN_KEPT: Final = 10_000


def _plain(data: Mapping[str, Any]) -> Mapping[str, Any]:
    return data if type(data) is dict else dict(data)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    for statement in _SCHEMA:
        conn.execute(statement)
    return conn


@asynccontextmanager
async def open_event_log(
    path: str,
    *,
    namespace: str,
    retention: float = 86400.0,
    max_events: int = 100_000,
    flush_interval: float = 0.05,
    purge_interval: float = 60.0,
) -> AsyncIterator[EventLog]:
    """Open (creating it if needed) the event log at ``path`` (``:memory:`` for a private one)
    for the responses of ``namespace`` (the registry's: the server that issued the ids), run its
    flusher for the block, and write what is pending on exit (bounded, shielded).

    Raises ``sqlite3.Error`` if the database cannot be opened, ``OSError`` if its directory
    cannot be created."""
    if path != ":memory:":
        import pathlib

        pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = await trio.to_thread.run_sync(_connect, path)
    eventlog = EventLog(conn, namespace=namespace, retention=retention, max_events=max_events)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(eventlog._run, flush_interval, purge_interval)
            try:
                yield eventlog
            finally:
                nursery.cancel_scope.cancel()
        with trio.move_on_after(5.0, shield=True):
            await eventlog.flush()
    finally:
        eventlog.closed = True
        conn.close()
