"""One operation of a registry store's group-committed batch, the writer thread's queue, and
handing a batch back to trio.

Both registry stores -- `RegistryStore` (SQLite) and the cluster's ``ClusterStore``
(PostgreSQL) -- queue an `Operation` per call to a writer thread, which runs a batch of them in
one transaction, records each one's outcome on it, and hands the batch to `deliver` on the trio
thread. Only the transaction (``TxT``: each store's view of it) differs. For the daemon's
metrics, the writer times each batch, from taking it off the queue to its commit (or failure),
and `deliver` counts the records it sees become terminal: both into the writer's `StoreCounters`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import trio

from .._histogram import COMMIT_BUCKETS, Histogram
from ._records import TrackedResponse

__all__ = ["BatchWriter", "Operation", "StoreCounters", "apply_changes", "deliver"]

TxT = TypeVar("TxT")
_T = TypeVar("_T")


@attrs.define(eq=False)
class Operation(Generic[TxT, _T]):
    """One queued operation and, once its batch is committed, its outcome."""

    what: str
    fn: Callable[[TxT], _T]
    done: trio.Event = attrs.field(factory=trio.Event)
    #: Set by a caller cancelled before the writer got to it: the writer skips it.
    abandoned: bool = False
    #: Set by the writer when it runs it (then its result stands, abandoned or not).
    ran: bool = False
    #: Its result replaces the active mirror (the mirror's first load).
    loads_mirror: bool = False
    #: It may write more than once: run it under a SAVEPOINT, so that a failure undoes it all.
    #: (SQLite: every other operation fails before its one write, or in it, and SQLite undoes a
    #: failed statement by itself. PostgreSQL runs every operation under a savepoint.)
    savepoint: bool = False
    result: _T | None = None
    error: BaseException | None = None
    changed: dict[str, TrackedResponse | None] = attrs.field(factory=dict)
    #: Called on the trio thread once committed (``add_nowait``), after ``done`` is set.
    callback: Callable[[_T | None, BaseException | None], None] | None = None

    async def outcome(self) -> _T:
        """Wait for the batch; return the result or raise the error. A caller cancelled before
        the writer reached the operation marks it abandoned (then it is skipped)."""
        try:
            await self.done.wait()
        finally:
            if not self.done.is_set():
                self.abandoned = True
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]  # set when error is None


@attrs.define(eq=False)
class StoreCounters:
    """What a registry store counts for the daemon's metrics, written on the trio thread and
    read at scrape time. The daemon's `RegistryView` holds one for every store its restarted
    pollers open (``count_into``); a store alone has its own."""

    #: Seconds per group commit, from taking the batch off the queue to its commit (or failure).
    commit_seconds: Histogram = attrs.field(factory=lambda: Histogram(COMMIT_BUCKETS))
    #: Records that went from active to terminal, by their terminal status.
    finished: dict[str, int] = attrs.field(factory=dict)


def apply_changes(
    mirror: dict[str, TrackedResponse],
    changed: Mapping[str, TrackedResponse | None],
    finished: dict[str, int] | None = None,
) -> None:
    """Bring a mirror of the active records up to date with committed changes (None: removed);
    count in ``finished`` the records that leave it by becoming terminal, by status."""
    for response_id, record in changed.items():
        if record is None or record.is_terminal:
            left = mirror.pop(response_id, None)
            if finished is not None and left is not None and record is not None:
                finished[record.status] = finished.get(record.status, 0) + 1
        else:
            mirror[response_id] = record


def deliver(
    batch: Iterable[Operation[Any, Any]],
    mirror: dict[str, TrackedResponse] | None,
    log: Any,
    callback_failed: str,
    finished: dict[str, int] | None = None,
) -> dict[str, TrackedResponse] | None:
    """On the trio thread: apply a committed batch to *mirror* in order (counting in *finished*
    the records it ends, see `apply_changes`), wake every caller and run the callbacks; returns
    the mirror (a new one if an operation loaded it). A callback that raises is logged as
    *callback_failed* on *log*, never raised into trio's ``run_sync_soon`` (that would end the
    run)."""
    for op in batch:
        # An operation whose caller left after the writer ran it is committed all the same: the
        # mirror must show it.
        if op.error is None and op.ran:
            if op.loads_mirror:
                mirror = {r.response_id: r for r in op.result or ()}
            elif mirror is not None:
                apply_changes(mirror, op.changed, finished)
        op.done.set()
        if op.callback is not None and not op.abandoned:
            try:
                op.callback(op.result, op.error)
            except Exception:
                log.exception(callback_failed, operation=op.what)
    return mirror


#: Tells the writer thread to exit.
_STOP: Final = object()


class BatchWriter:
    """The queue side of a store's writer thread: callers `submit` operations; the thread (the
    subclass's ``_main``) takes everything queued at once with `_next_batch`, runs it as one
    transaction and hands it back to trio with `_send`, in queue order.

    Runs until `stop`; everything queued before it is still run and delivered. *prefix* names
    the store in its log events (``registry``, ``cluster``).
    """

    def __init__(
        self,
        deliver: Callable[[list[Operation[Any, Any]]], None],
        *,
        thread_name: str,
        close_timeout: float,
        log: Any,
        prefix: str,
    ) -> None:
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._deliver = deliver
        self._token = trio.lowlevel.current_trio_token()
        self._close_timeout = close_timeout
        self._log = log
        self._prefix = prefix
        self.thread = threading.Thread(target=self._main, name=thread_name, daemon=True)
        #: Transactions run and the operations in them (for tests, the bench and the logs).
        self.batches = 0
        self.operations = 0
        #: What the metrics read (a store's ``count_into`` replaces it with the daemon's).
        self.counters = StoreCounters()
        # When the thread took the batch being run (`_next_batch`).
        self._taken = 0.0

    def _main(self) -> None:  # pragma: no cover - every store's writer has its own
        raise NotImplementedError

    def start(self) -> None:
        self.thread.start()

    def submit(self, op: Operation[Any, Any]) -> None:
        self.queue.put(op)

    async def stop(self) -> None:
        """Run what is queued, then end the thread (bounded, shielded)."""
        self.queue.put(_STOP)
        with trio.move_on_after(self._close_timeout, shield=True) as scope:
            await trio.to_thread.run_sync(self.thread.join)
        if scope.cancelled_caught:  # pragma: no cover - needs a wedged database call
            self._log.error(f"{self._prefix}.close_timeout", timeout=self._close_timeout)

    def _next_batch(self) -> tuple[list[Operation[Any, Any]], bool]:
        """In the thread: wait for an operation, then take everything queued with it; returns
        the batch and whether `stop` was called (nothing after it is taken)."""
        batch: list[Operation[Any, Any]] = []
        item = self.queue.get()
        self._taken = time.perf_counter()
        while True:
            if item is _STOP:
                return batch, True
            batch.append(item)
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return batch, False

    def _send(self, batch: list[Operation[Any, Any]]) -> None:
        seconds = time.perf_counter() - self._taken
        # (RunFinishedError: the store outlived its trio run; nobody is waiting any more.)
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._committed, batch, seconds)

    def _committed(self, batch: list[Operation[Any, Any]], seconds: float) -> None:
        """On the trio thread: count the batch's commit time, then deliver it."""
        self.counters.commit_seconds.observe(seconds)
        self._deliver(batch)
