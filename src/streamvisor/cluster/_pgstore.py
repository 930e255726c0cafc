"""The cluster's system of record: the registry of background responses, the nodes' leases and
the session directory, in PostgreSQL.

Several daemons (nodes) share one database. Each node owns the responses it tracks and the
sessions it runs; `ClusterStore` is one node's view: the `RegistryStore` API (same names,
arguments, results and errors, so that a `BackgroundPoller` runs on it unchanged), scoped to the
node's namespace and to what the node owns, plus leases and the session directory.

Leases and fencing: joining (`ClusterStore.open`, `rejoin`) upserts the node's row with a
*fencing token* one higher than any the node id ever had -- tokens are never reused, even across
restarts -- and a lease of ``lease_ttl`` seconds. Every lease is measured on the database's clock
(``clock_timestamp()``), so the nodes' clocks never matter. `renew` extends the lease only while
it is still live: once expired, a token is dead for good and the node must `rejoin`. Every write
by the node is one SQL statement conditional on its token holding a live lease, which also takes
a share lock on the node's row: a survivor's `take_over` (which bumps the dead node's token)
waits for a write already under way to commit, then moves it; a write that comes later -- from a
node paused (SIGSTOP) past its lease and woken up -- finds its token dead and raises `Fenced`,
and nothing is written.

Group commit, as in ``_store.py``: one writer thread takes every queued registry and session
operation at once, runs them in ONE transaction on one pooled connection and commits once. Each
operation runs under its own SAVEPOINT: one that fails (``UnknownResponse``, ``Fenced``, a
constraint) is undone alone and reports its own error, and the others commit. Reads are queued
too, so that a read sees every write submitted before it (``add_nowait`` then ``find``). The
lease calls (`renew`, `rejoin`, `take_over`, ...) do not queue behind a batch: each runs in its
own transaction on another pooled connection. Nothing blocks the event loop: the writer is a
thread, the lease calls run in ``trio.to_thread``.

Engine failures: a connection that cannot be made within ``connect_timeout``, or that breaks
during an operation, raises `EngineUnavailable` from that operation (for a broken commit, as for
any database, whether it was committed is unknown). Nothing crashes: the pool checks each
connection before use, discards broken ones and reconnects in the background (retrying with
backoff, starting over at least every ten seconds), so the store works again by itself once
PostgreSQL is back.

Ownership: `get` and `find` see every record of the namespace, whichever node owns it (any node
can answer for any response); `active`, `all`, `purge_terminal` and every write are the node's
own (another node's record: `NotOwner`). `take_over` moves all the dead node's records of the
namespace (terminal ones too, so that someone purges them) and all its sessions (the session
directory has no namespace). The schema and its migrations are in ``_pgschema.py``, the writer
and the fenced statements in ``_pgbatch.py``.

Values: the records' times are floats (wall-clock seconds, as in ``_store.py``) stored as
``double precision``; ``request`` and ``metadata`` are ``jsonb``, written so that every value
comes back as it went in (a float such as ``3.3e+16`` in fixed notation: jsonb would print it
as an int). Unlike SQLite, PostgreSQL cannot store the NUL character (U+0000) in text or jsonb:
a record holding one is refused with a ``StoreError`` naming the field. Records are scrubbed of
credentials when built (``_records.py``): nothing secret reaches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import psycopg
import structlog
import trio
from psycopg_pool import ConnectionPool

from streamvisor.actors.background._errors import StoreClosed
from streamvisor.actors.background._operation import apply_changes, deliver
from streamvisor.actors.background._records import TrackedResponse, _time
from streamvisor.actors.background._writes import RegistryWrites

from ._errors import Fenced, LeaseLost
from ._pgbatch import (
    CLOSE_TIMEOUT,
    FENCE,
    Op,
    Tx,
    Writer,
    open_pool,
    row_to_record,
    translate,
)
from ._pgschema import MIGRATIONS, Connection, Migration, migrate

__all__ = ["ClusterStore"]

_log = structlog.get_logger("streamvisor.cluster.store")
_T = TypeVar("_T")

#: How long `take_over` waits for the dead node's row (held by a write of its still under way).
_TAKE_OVER_LOCK_TIMEOUT: Final = "5s"
#: Seconds after its lease ran out that a node taken over stops being listed by `other_nodes`:
#: far beyond what a leaving node's bridge waits for its last acks (``flush_timeout``, 10 s).
SETTLED_AFTER: Final = 300.0


# ------------------------------------------------------------------------------------ store


class ClusterStore(RegistryWrites[Tx]):
    """One node's view of the cluster database: its registry of background responses (the
    `RegistryStore` API), its lease and fencing token, and the session directory.

    Obtain one with ``async with ClusterStore.open(dsn, node_id=..., namespace=...,
    lease_ttl=...) as store:``. Registry and session calls are operations of a group-committed
    batch (see the module docstring) and return once it is committed. Reads (`get`, `find`)
    see every node's records of the namespace; `active`, `all`, the writes and the purges are
    this node's own. Every call raises ``StoreClosed`` once the block has ended,
    `EngineUnavailable` when PostgreSQL cannot be reached (retry later: the store reconnects by
    itself), ``CorruptStore`` for a row that fails validation and ``StoreError`` for other
    database failures. Every write also raises `Fenced` when the node's token no longer holds a
    live lease, and `NotOwner` for a response another node owns.
    """

    _writes_log = _log
    _writes_prefix = "cluster"

    def __init__(
        self,
        pool: ConnectionPool[Connection],
        *,
        node_id: str,
        namespace: str,
        lease_ttl: float,
        token: int,
    ) -> None:
        """Private: use ``ClusterStore.open``."""
        self._pool = pool
        self._closed = False
        #: The non-terminal records this node owns, once loaded (see ``active``).
        self._mirror: dict[str, TrackedResponse] | None = None
        #: This node's id: its row in ``nodes``, the owner of its responses and sessions.
        self.node_id = node_id
        #: The server whose records this store sees (`registry_namespace` of its base URL).
        self.namespace = namespace
        #: Seconds a lease lasts from a join or renewal (on the database's clock).
        self.lease_ttl = lease_ttl
        #: The current fencing token: every write is conditional on it holding a live lease.
        self.token = token
        self._writer = Writer(pool, self, self._deliver)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        dsn: str,
        *,
        node_id: str,
        namespace: str,
        lease_ttl: float,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        migrations: list[Migration] = MIGRATIONS,
    ) -> AsyncIterator[ClusterStore]:
        """Connect, migrate the database, and join the cluster as *node_id*.

        Joining upserts the node's row with a new fencing token (one higher than any this node
        id ever had) and a lease of *lease_ttl* seconds from now on the database's clock; the
        caller keeps it with `renew`. *namespace* selects the records of one server
        (`registry_namespace` of its base URL). *pool_size* bounds the connections (the writer
        uses one at a time; lease calls the others). *connect_timeout* bounds the wait for a
        connection, here and in every later call. *migrations* is the schema's upgrade path
        (the hook tests and future versions use).

        Raises ``ValueError`` for a bad argument, `EngineUnavailable` if PostgreSQL cannot be
        reached, ``UnsupportedSchema`` if the database is newer than *migrations* knows and
        ``StoreError`` for other database errors. On exit the queued operations finish and the
        pool is closed (bounded, shielded); the lease is left to expire -- call `leave` first
        for a clean shutdown that lets survivors take over at once.
        """
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"node_id must be a non-empty string, got {node_id!r}")
        if not isinstance(namespace, str):
            raise TypeError(f"namespace must be a string, got {namespace!r}")
        lease_ttl = _time(lease_ttl)
        if lease_ttl <= 0:
            raise ValueError(f"lease_ttl must be > 0 seconds, got {lease_ttl!r}")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 2:
            raise ValueError(f"pool_size must be an int >= 2 (writer + leases), got {pool_size!r}")

        def connect() -> tuple[ConnectionPool[Connection], int]:
            what = "opening the cluster store"
            conn: Connection | None = None
            try:
                pool = open_pool(dsn, pool_size, connect_timeout)
            except Exception as exc:
                raise translate(exc, what, node_id, None) from exc
            try:
                with pool.connection() as conn:
                    migrate(conn, list(migrations))
                    with conn.transaction():
                        token = _join(conn, node_id, lease_ttl)
            except BaseException as exc:
                pool.close(timeout=1.0)
                translated = translate(exc, what, node_id, conn)
                if translated is exc:
                    raise
                raise translated from exc
            return pool, token

        pool, token = await trio.to_thread.run_sync(connect)
        store = cls(pool, node_id=node_id, namespace=namespace, lease_ttl=lease_ttl, token=token)
        store._writer.start()
        _log.info("cluster.joined", node_id=node_id, token=token, namespace=namespace)
        try:
            yield store
        finally:
            await store._aclose()

    async def _aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._writer.stop()
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await trio.to_thread.run_sync(lambda: self._pool.close(timeout=5.0))

    @property
    def statistics(self) -> tuple[int, int]:
        """(transactions run by the writer, operations in them) so far: operations /
        transactions is the group commit's average batch size. (A property, as on
        `RegistryStore`.)"""
        return self._writer.batches, self._writer.operations

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"the cluster store of node {self.node_id!r} is closed")

    # --------------------------------------------------------------------- running operations

    def _deliver(self, batch: list[Op[Any]]) -> None:
        """On the trio thread: apply a committed batch to the mirror, in order; wake callers."""
        self._mirror = deliver(
            batch,
            self._mirror,
            _log,
            "cluster.callback_failed",
            self._writer.counters.finished,
        )

    def _apply(self, changed: Mapping[str, TrackedResponse | None]) -> None:
        assert self._mirror is not None
        apply_changes(self._mirror, changed)

    async def _run(
        self,
        what: str,
        fn: Callable[[Tx], _T],
        *,
        loads_mirror: bool = False,
        savepoint: bool = False,  # every operation runs under a savepoint here anyway
    ) -> _T:
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        op: Op[_T] = Op[_T](what, fn, loads_mirror=loads_mirror)
        self._writer.submit(op)
        return await op.outcome()

    async def _direct(self, what: str, fn: Callable[[Connection], _T]) -> _T:
        """Run *fn* in its own transaction on a pooled connection, in a worker thread."""
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()

        def run() -> _T:
            conn: Connection | None = None
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return fn(conn)
            except Exception as exc:
                translated = translate(exc, what, self.node_id, conn)
                if translated is exc:
                    raise
                raise translated from exc

        return await trio.to_thread.run_sync(run)

    # ------------------------------------------------------------------------------ the lease

    async def renew(self) -> float:
        """Extend the lease to ``lease_ttl`` seconds from now (database clock) if this token
        still holds it and it has not expired; returns the seconds it has left.

        Raises `LeaseLost` otherwise (stop the owned children, then `rejoin`), and
        `EngineUnavailable` when PostgreSQL cannot be reached -- the lease then runs on: renew
        again before it expires.
        """
        token = self.token

        def renew(conn: Connection) -> float:
            row = conn.execute(
                "UPDATE nodes SET lease_expires = clock_timestamp() + make_interval(secs => %s), "
                "renewed_at = clock_timestamp() "
                "WHERE node_id = %s AND token = %s AND lease_expires > clock_timestamp() "
                "RETURNING extract(epoch FROM lease_expires - clock_timestamp()) AS left",
                (self.lease_ttl, self.node_id, token),
            ).fetchone()
            if row is not None:
                return float(row["left"])
            now = conn.execute(
                "SELECT token, lease_expires <= clock_timestamp() AS expired FROM nodes "
                "WHERE node_id = %s",
                (self.node_id,),
            ).fetchone()
            if now is None:
                reason = "its node row is gone"
            elif now["token"] != token:
                reason = f"its token is now {now['token']} (taken over, or joined elsewhere)"
            else:
                reason = "it expired before this renewal"
            raise LeaseLost(self.node_id, token, reason)

        return await self._direct("renew", renew)

    async def rejoin(self) -> int:
        """Join again after `LeaseLost`: a new fencing token (one higher than any before) and a
        fresh lease; returns the token. The active mirror is reloaded: what a survivor took
        over while this node was away is no longer this node's. Raises `EngineUnavailable`."""

        def rejoin(conn: Connection) -> tuple[int, list[TrackedResponse]]:
            token = _join(conn, self.node_id, self.lease_ttl)
            rows = conn.execute(
                "SELECT * FROM responses WHERE namespace = %s AND node_id = %s "
                "AND terminal_at IS NULL ORDER BY created_at, seq",
                (self.namespace, self.node_id),
            )
            return token, [row_to_record(row) for row in rows]

        token, active = await self._direct("rejoin", rejoin)
        self.token = token
        if self._mirror is not None:
            self._mirror = {record.response_id: record for record in active}
        _log.info("cluster.rejoined", node_id=self.node_id, token=token)
        return token

    async def expired_nodes(self) -> list[str]:
        """The other nodes whose lease has expired (database clock), by id: candidates for
        `take_over` (including nodes that left, and ones already taken over)."""

        def expired(conn: Connection) -> list[str]:
            rows = conn.execute(
                "SELECT node_id FROM nodes WHERE node_id <> %s AND taken_by IS NULL "
                "AND lease_expires <= clock_timestamp() ORDER BY node_id",
                (self.node_id,),
            )
            return [row["node_id"] for row in rows]

        return await self._direct("expired_nodes", expired)

    async def other_nodes(self, *, settled_after: float = SETTLED_AFTER) -> list[str]:
        """The other nodes that may still publish events, by id (the nodes whose events this
        node asks JetStream for, from now on): every node that joined, alive or not, except
        one taken over (`take_over`) whose lease ran out more than ``settled_after`` seconds
        ago (the database's clock). Such a node is fenced: whatever it published while it was
        a member is stored by then, and it joins again, announcing itself, before it publishes
        anything new. So a cluster whose nodes start under fresh ids (a pod name) does not
        grow every node's filter with each one that ever lived."""

        def nodes(conn: Connection) -> list[str]:
            rows = conn.execute(
                "SELECT node_id FROM nodes WHERE node_id <> %s AND (taken_by IS NULL "
                "OR lease_expires > clock_timestamp() - make_interval(secs => %s)) "
                "ORDER BY node_id",
                (self.node_id, settled_after),
            )
            return [row["node_id"] for row in rows]

        return await self._direct("other_nodes", nodes)

    async def take_over(self, dead_node: str) -> list[TrackedResponse] | None:
        """Take over the work of *dead_node* if its lease has expired and nobody took it over
        yet; returns its active records now owned by this node (oldest first, maybe none), to
        adopt, or None when this node did not take it over.

        In one transaction: *dead_node*'s token is bumped (so it is fenced for good even if it
        wakes up) and ``taken_by`` set to this node (`expired_nodes` no longer lists it, until
        it joins again), and its records of this namespace (terminal ones too, for the purge)
        and all its sessions move to this node with this node's token. Of two survivors racing,
        exactly one takes it; the other gets None. None too when *dead_node* is this node,
        unknown, already taken over, still holds a live lease, or is still inside a write begun
        before its lease ran out (retry later). Raises `Fenced` if this node's own lease is not
        live (it may not take anything), and `EngineUnavailable`.
        """
        token = self.token

        def take(conn: Connection) -> list[TrackedResponse] | None:
            if dead_node == self.node_id:
                return None
            try:
                with conn.transaction():  # a savepoint, so that a lock timeout is answered here
                    return move(conn)
            except psycopg.errors.LockNotAvailable:
                # The dead node is still inside a write begun before its lease ran out (or is
                # paused there: the server closes its session after ten seconds idle). Not yet.
                _log.info("cluster.take_over_postponed", node_id=self.node_id, dead=dead_node)
                return None

        def move(conn: Connection) -> list[TrackedResponse] | None:
            conn.execute(f"SET LOCAL lock_timeout = '{_TAKE_OVER_LOCK_TIMEOUT}'")
            bumped = conn.execute(
                "UPDATE nodes SET token = token + 1, taken_by = %s WHERE node_id = %s "
                "AND taken_by IS NULL AND lease_expires <= clock_timestamp() RETURNING token",
                (self.node_id, dead_node),
            ).fetchone()
            if bumped is None:
                return None
            params = {"namespace": self.namespace, "node": self.node_id, "token": token}
            rows = conn.execute(
                "UPDATE responses SET node_id = %(node)s, token = %(token)s "
                f"WHERE namespace = %(namespace)s AND node_id = %(dead)s AND {FENCE} "
                "RETURNING *",
                {**params, "dead": dead_node},
            ).fetchall()
            sessions = conn.execute(
                "UPDATE sessions SET node_id = %(node)s, token = %(token)s, "
                f"claimed_at = clock_timestamp() WHERE node_id = %(dead)s AND {FENCE}",
                {**params, "dead": dead_node},
            ).rowcount
            live = conn.execute(f"SELECT {FENCE} AS live", params).fetchone()
            if not (live and live["live"]):
                raise Fenced(self.node_id, token, "take_over")  # rolls the bump back too
            active = sorted(
                (row for row in rows if row["terminal_at"] is None),
                key=lambda row: (row["created_at"], row["seq"]),
            )
            records = [row_to_record(row) for row in active]
            _log.info(
                "cluster.took_over",
                node_id=self.node_id,
                dead_node=dead_node,
                fenced_token=bumped["token"],
                active=len(records),
                records=len(rows),
                sessions=sessions,
            )
            return records

        taken = await self._direct("take_over", take)
        if taken is None:
            return None
        if self._mirror is not None:
            self._apply({record.response_id: record for record in taken})
        return taken

    async def leave(self) -> None:
        """Clean shutdown: expire this node's lease now, so that survivors take its work over
        at once. Later writes raise `Fenced`; `rejoin` to come back. Raises
        `EngineUnavailable` (then the lease simply runs out)."""
        token = self.token

        def leave(conn: Connection) -> None:
            conn.execute(
                "UPDATE nodes SET lease_expires = clock_timestamp() "
                "WHERE node_id = %s AND token = %s AND lease_expires > clock_timestamp()",
                (self.node_id, token),
            )

        await self._direct("leave", leave)
        _log.info("cluster.left", node_id=self.node_id, token=token)

    # -------------------------------------------------------------------------- registry reads

    async def get(self, response_id: str) -> TrackedResponse:
        """The record for *response_id*, whichever node owns it. Raises ``UnknownResponse``."""
        return await self._run("get", lambda tx: tx.require(response_id))

    async def find(self, response_id: str) -> TrackedResponse | None:
        """The record for *response_id* (whichever node owns it), or None if not tracked."""

        def find(tx: Tx) -> TrackedResponse | None:
            found = tx.select(response_id)
            return None if found is None else found[0]

        return await self._run("find", find)

    async def active(self) -> list[TrackedResponse]:
        """This node's non-terminal records, oldest (``created_at``, then insertion) first.

        Served from memory once loaded (the first call reads the database): it never waits
        behind writes, and it shows every write whose call has returned and every record
        `take_over` moved here.
        """
        if self._mirror is None:
            await self._run(
                "active", lambda tx: tx.query_own(" AND terminal_at IS NULL"), loads_mirror=True
            )
        else:
            await trio.lowlevel.checkpoint()
        return self.active_nowait()

    def active_count_nowait(self) -> int | None:
        """How many of this node's records are active, from memory; None once closed or before
        the first ``active()`` loaded it."""
        if self._closed or self._mirror is None:
            return None
        return len(self._mirror)

    def active_nowait(self) -> list[TrackedResponse]:
        """`active` without a checkpoint. Raises ``StoreClosed``, and ``RuntimeError`` if
        ``active()`` was never awaited (the mirror is loaded by the first ``active()``)."""
        self._check_open()
        if self._mirror is None:
            raise RuntimeError("active_nowait() before the first active(): nothing loaded yet")
        return sorted(self._mirror.values(), key=lambda record: record.created_at)

    async def all(self) -> list[TrackedResponse]:
        """Every record this node owns, terminal or not, oldest first."""
        return await self._run("all", lambda tx: tx.query_own(""))

    # ------------------------------------------------------------------------- registry writes

    def add_nowait(
        self,
        record: TrackedResponse,
        on_done: Callable[[TrackedResponse | None, BaseException | None], None],
    ) -> None:
        """`add` without waiting: once its batch is committed, ``on_done(record, None)`` -- or
        ``on_done(None, error)`` with what `add` would raise -- runs on the trio thread (it
        must not block; an exception it raises is logged). Raises ``StoreClosed`` at once if
        the store is closed."""
        if not isinstance(record, TrackedResponse):
            raise TypeError(f"add_nowait() takes a TrackedResponse, got {type(record).__name__}")
        self._check_open()
        self._writer.submit(Op[TrackedResponse]("add", _inserter(record), callback=on_done))

    async def add(self, record: TrackedResponse) -> TrackedResponse:
        """Start tracking *record*, owned by this node; returns it. Raises
        ``DuplicateResponse`` if any node already tracks it."""
        if not isinstance(record, TrackedResponse):
            raise TypeError(f"add() takes a TrackedResponse, got {type(record).__name__}")
        return await self._run("add", _inserter(record))

    # --------------------------------------------------- what the writes need (RegistryWrites)

    def _require(self, tx: Tx, response_id: str) -> TrackedResponse:
        return tx.require_own(response_id)

    def _find(self, tx: Tx, response_id: str) -> TrackedResponse | None:
        found = tx.select(response_id)
        return found[0] if found is not None and found[1] == tx.node else None

    def _purge(self, tx: Tx, cutoff: float) -> list[str]:
        rows = tx.conn.execute(
            "DELETE FROM responses WHERE namespace = %(namespace)s AND node_id = %(node)s "
            f"AND terminal_at IS NOT NULL AND terminal_at <= %(cutoff)s AND {FENCE} "
            "RETURNING response_id, terminal_at, seq",
            tx.params(cutoff=cutoff),
        ).fetchall()
        if not rows and not tx.holds_lease():
            raise tx.fenced()
        rows.sort(key=lambda row: (row["terminal_at"], row["seq"]))
        return [row["response_id"] for row in rows]

    # ---------------------------------------------------------------------- session directory

    async def claim_session(self, session_id: str) -> str:
        """Claim *session_id* for this node; returns its owner's node id afterwards: this node
        if it was unclaimed, already this node's, or its owner's lease had expired (then it is
        taken over, with this node's token); else the live owner. Raises `Fenced` if this
        node's lease is not live, and ``ValueError`` for an empty id."""
        _check_session_id(session_id)

        def claim(tx: Tx) -> str:
            row = tx.conn.execute(
                "INSERT INTO sessions (session_id, node_id, token, claimed_at) "
                f"SELECT %(session)s, %(node)s, %(token)s, clock_timestamp() WHERE {FENCE} "
                "ON CONFLICT (session_id) DO UPDATE SET node_id = excluded.node_id, "
                "token = excluded.token, claimed_at = excluded.claimed_at "
                "WHERE sessions.node_id = excluded.node_id OR EXISTS (SELECT 1 FROM nodes "
                "WHERE nodes.node_id = sessions.node_id "
                "AND nodes.lease_expires <= clock_timestamp()) "
                "RETURNING node_id",
                tx.params(session=session_id),
            ).fetchone()
            if row is not None:
                return str(row["node_id"])
            if not tx.holds_lease():
                raise tx.fenced()
            owner = tx.conn.execute(
                "SELECT node_id FROM sessions WHERE session_id = %s", (session_id,)
            ).fetchone()
            if owner is None:  # released between the two statements: claim again
                return claim(tx)
            return str(owner["node_id"])

        return await self._run("claim_session", claim)

    async def session_owner(self, session_id: str) -> str | None:
        """The node that owns *session_id*, or None if nobody claimed it. (An owner whose lease
        expired is still named until someone claims the session or takes the node over.)"""

        def owner(tx: Tx) -> str | None:
            row = tx.conn.execute(
                "SELECT node_id FROM sessions WHERE session_id = %s", (session_id,)
            ).fetchone()
            return None if row is None else str(row["node_id"])

        return await self._run("session_owner", owner)

    async def release_session(self, session_id: str) -> None:
        """Release *session_id* if this node owns it (else nothing happens). Raises `Fenced`
        when it is this node's but the node's lease is not live."""

        def release(tx: Tx) -> None:
            cursor = tx.conn.execute(
                "DELETE FROM sessions WHERE session_id = %(session)s AND node_id = %(node)s "
                f"AND {FENCE}",
                tx.params(session=session_id),
            )
            if cursor.rowcount == 0 and not tx.holds_lease():
                mine = tx.conn.execute(
                    "SELECT 1 FROM sessions WHERE session_id = %s AND node_id = %s",
                    (session_id, tx.node),
                ).fetchone()
                if mine is not None:
                    raise tx.fenced()

        await self._run("release_session", release)

    async def node_sessions(self) -> list[str]:
        """The sessions this node owns, in the order it claimed them."""

        def sessions(tx: Tx) -> list[str]:
            rows = tx.conn.execute(
                "SELECT session_id FROM sessions WHERE node_id = %s "
                "ORDER BY claimed_at, session_id",
                (tx.node,),
            )
            return [str(row["session_id"]) for row in rows]

        return await self._run("node_sessions", sessions)


def _join(conn: Connection, node_id: str, lease_ttl: float) -> int:
    """Upsert the node's row with the next fencing token and a fresh lease; return the token."""
    row = conn.execute(
        "INSERT INTO nodes (node_id, token, lease_expires, started_at, renewed_at) "
        "VALUES (%(node)s, 1, clock_timestamp() + make_interval(secs => %(ttl)s), "
        "clock_timestamp(), clock_timestamp()) "
        "ON CONFLICT (node_id) DO UPDATE SET token = nodes.token + 1, "
        "lease_expires = excluded.lease_expires, started_at = excluded.started_at, "
        "renewed_at = excluded.renewed_at RETURNING token",
        {"node": node_id, "ttl": lease_ttl},
    ).fetchone()
    assert row is not None  # an upsert with RETURNING always returns its row
    taken_by = conn.execute(  # schema 3 on: whoever took it over before is forgotten
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = 'nodes' AND column_name = 'taken_by'"
    ).fetchone()
    if taken_by is not None:
        conn.execute("UPDATE nodes SET taken_by = NULL WHERE node_id = %s", (node_id,))
    return int(row["token"])


def _inserter(record: TrackedResponse) -> Callable[[Tx], TrackedResponse]:
    def insert(tx: Tx) -> TrackedResponse:
        tx.insert(record)
        return record

    return insert


def _check_session_id(session_id: object) -> None:
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"session_id must be a non-empty string, got {session_id!r}")
