"""Group commit: operations queued while a transaction is in flight share the next one."""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import trio
import trio.testing

from streamvisor.actors.background._errors import DuplicateResponse, UnknownResponse
from streamvisor.cluster import ClusterStore

from ._support import T0, eventually, node, rec, sql


class Held:
    """Occupies the writer's transaction with one operation until released, so that what is
    submitted meanwhile queues up for the next transaction."""

    def __init__(self, store: ClusterStore) -> None:
        self.store = store
        self.running = threading.Event()
        self.gate = threading.Event()

    async def hold(self) -> None:
        def held(_tx: Any) -> None:
            self.running.set()
            self.gate.wait(5)  # bounded, should a test fail before releasing

        store: Any = self.store  # the private hook the SQLite store's tests use as well
        await store._run("held", held)

    async def queued(self, count: int) -> None:
        """Wait until the held operation runs and *count* operations wait behind it."""
        writer: Any = self.store._writer  # type: ignore[attr-defined]

        async def ready() -> bool:
            return self.running.is_set() and writer.queue.qsize() == count

        await eventually(ready)

    def release(self) -> None:
        self.gate.set()


class TestGroupCommit:
    async def test_operations_queued_together_run_in_one_transaction(self, pg_dsn: str) -> None:
        """200 adds that wait behind one transaction are committed together, not one by one."""
        async with node(pg_dsn) as store:
            held = Held(store)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held.hold)
                await held.queued(0)
                for i in range(200):
                    nursery.start_soon(store.add, rec(f"r{i:03}", created_at=T0 + i))
                await held.queued(200)
                held.release()
            assert store.statistics == (2, 201)  # the held one's, then one for all 200
            assert len(await store.all()) == 200
        assert sql(pg_dsn, "SELECT count(*) FROM responses") == [(200,)]

    async def test_concurrent_callers_share_transactions(self, pg_dsn: str) -> None:
        """Without any holding back, 300 concurrent writes take far fewer transactions."""
        async with node(pg_dsn) as store:
            async with trio.open_nursery() as nursery:
                for i in range(300):
                    nursery.start_soon(store.add, rec(f"r{i:03}"))
            batches, operations = store.statistics
        assert operations == 300
        assert batches < 150

    async def test_a_failing_operation_is_undone_alone(self, pg_dsn: str) -> None:
        """In one transaction: a duplicate add and an unknown update fail with their own typed
        errors; the operations around them commit."""
        results: dict[str, Any] = {}

        async def call(key: str, fn: Any, *args: Any) -> None:
            try:
                results[key] = await fn(*args)
            except (DuplicateResponse, UnknownResponse) as exc:
                results[key] = exc

        async with node(pg_dsn) as store:
            held = Held(store)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held.hold)
                await held.queued(0)
                calls = [
                    ("first", store.add, rec("a")),
                    ("again", store.add, rec("a")),
                    ("missing", store.remove, "nope"),
                    ("other", store.add, rec("b")),
                ]
                for queued, (key, fn, arg) in enumerate(calls, 1):
                    nursery.start_soon(call, key, fn, arg)
                    await held.queued(queued)  # queued in this order
                held.release()
            assert store.statistics == (2, 5)
        assert isinstance(results["again"], DuplicateResponse)
        assert isinstance(results["missing"], UnknownResponse)
        assert (results["first"], results["other"]) == (rec("a"), rec("b"))
        assert sql(pg_dsn, "SELECT response_id FROM responses ORDER BY 1") == [("a",), ("b",)]

    async def test_a_caller_cancelled_while_queued_writes_nothing(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            held = Held(store)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held.hold)
                await held.queued(0)
                scope = trio.CancelScope()

                async def gave_up() -> None:
                    with scope:
                        await store.add(rec("gave_up"))

                nursery.start_soon(store.add, rec("kept"))
                nursery.start_soon(gave_up)
                await held.queued(2)
                scope.cancel()
                await trio.testing.wait_all_tasks_blocked()
                held.release()
            assert await store.find("gave_up") is None
            assert await store.find("kept") == rec("kept")

    async def test_memory_answers_while_the_writer_is_busy(self, pg_dsn: str) -> None:
        """The writer is a thread: the event loop runs on, and active() answers from memory,
        while a transaction is in flight."""
        async with node(pg_dsn) as store:
            await store.add(rec("a"))
            await store.active()
            held = Held(store)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held.hold)
                await held.queued(0)
                with trio.fail_after(1):
                    assert [r.response_id for r in await store.active()] == ["a"]
                    await trio.sleep(0.01)  # timers fire: the loop is not blocked
                held.release()

    async def test_closing_runs_what_is_queued(self, pg_dsn: str) -> None:
        """Leaving the block commits what was submitted, and answers add_nowait's callback."""
        answers: list[object] = []
        async with node(pg_dsn) as store:
            store.add_nowait(rec("last"), lambda record, error: answers.append(record or error))
        assert answers == [rec("last")]
        assert sql(pg_dsn, "SELECT response_id FROM responses") == [("last",)]

    async def test_the_writer_does_not_keep_its_last_batch_while_it_waits(
        self, pg_dsn: str
    ) -> None:
        """The writer thread lives as long as the node: waiting for the next operation, it
        kept the last batch -- the operations' arguments and results (``all()``: every record,
        each with its request) -- until another came. No operation more here (it would replace
        the batch kept): the thread is polled until it has let go."""
        async with node(pg_dsn) as store:
            await store.add(rec(request={"input": "x" * 1000}))
            records = await store.all()
            gone = weakref.ref(records[0])
            del records

            async def let_go() -> bool:
                gc.collect()
                return gone() is None

            await eventually(let_go)


class TestMetricsCounters:
    async def test_each_transaction_is_timed_and_each_record_that_ends_is_counted(
        self, pg_dsn: str
    ) -> None:
        """The writer shared with the SQLite store times every PostgreSQL transaction, and the
        mirror counts a record that became terminal, by status, into the store's counters (what
        the daemon's metrics read)."""
        async with node(pg_dsn) as store:
            await store.active()  # the mirror, loaded
            await store.add(rec("r1"))
            await store.add(rec("r2"))
            await store.record_status("r1", "completed", at=T0 + 1)
            await store.record_status("r1", "completed", at=T0 + 2)  # already terminal
            counters = store._writer.counters  # type: ignore[attr-defined]
            assert counters.commit_seconds.count == store.statistics[0] > 0
            assert counters.commit_seconds.sum > 0
            assert counters.finished == {"completed": 1}
