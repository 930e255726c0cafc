"""The registry API of `ClusterStore`: what `RegistryStore` promises, on PostgreSQL.

The expectations are those of ``tests/actors/test_store.py`` (same results, same typed errors),
plus ownership: a node writes only its own records, and reads any record of its namespace.
"""

from __future__ import annotations

import attrs
import pytest
import structlog.testing
import trio

from streamvisor.actors.background._errors import (
    CorruptStore,
    DuplicateResponse,
    IllegalTransition,
    StoreClosed,
    UnknownResponse,
)
from streamvisor.actors.background._records import TrackedResponse
from streamvisor.cluster import NotOwner

from ._support import T0, node, rec, sql

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


class TestRoundTrip:
    async def test_an_added_record_reads_back_equal_with_every_field(self, pg_dsn: str) -> None:
        """add() then get() returns an equal record, JSON fields included."""
        record = rec(
            owner="s1",
            mode="stream",
            cursor=7,
            last_polled_at=T0 + 0.125,
            poll_attempts=3,
            error_count=1,
            metadata={"n": 1, "f": 0.5, "tags": ["a", {"b": None}], "ok": True},
            request={"model": "o3-pro", "input": "hï ✓", "background": True},
            last_error="boom",
        )
        async with node(pg_dsn) as store:
            assert await store.add(record) == record
            assert await store.get("resp_1") == record
            assert await store.find("resp_1") == record
            assert await store.all() == [record]
        rows = sql(pg_dsn, "SELECT node_id, token, request->>'input' FROM responses")
        assert rows == [("n1", 1, "hï ✓")]

    async def test_no_secret_reaches_the_database(self, pg_dsn: str) -> None:
        """Credentials in request, metadata and last_error are scrubbed before they are stored."""
        record = rec(
            request={"model": "o3-pro", "api_key": KEY, "headers": {"Authorization": KEY}},
            metadata={"note": f"key {KEY}"},
            last_error=f"401 for Bearer {KEY}",
        )
        async with node(pg_dsn) as store:
            await store.add(record)
            stored = await store.get("resp_1")
        assert stored.request == {"model": "o3-pro", "headers": {}}
        dumped = sql(pg_dsn, "SELECT request::text, metadata::text, last_error FROM responses")
        assert dumped
        assert KEY not in repr(dumped)
        assert "[REDACTED]" in dumped[0][1]

    async def test_a_duplicate_add_is_a_typed_error_and_keeps_the_first(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            with pytest.raises(DuplicateResponse) as info:
                await store.add(rec(owner="other"))
            assert isinstance(info.value, ValueError)
            assert info.value.response_id == "resp_1"
            assert (await store.get("resp_1")).owner is None

    async def test_an_unknown_id_is_a_typed_error(self, pg_dsn: str) -> None:
        """get/update/remove/record_* of an untracked id raise UnknownResponse, a KeyError."""
        async with node(pg_dsn) as store:
            for call in (
                store.get("nope"),
                store.update("nope", owner="x"),
                store.remove("nope"),
                store.record_cursor("nope", 1),
                store.record_poll("nope", at=T0),
                store.record_status("nope", "completed", at=T0),
            ):
                with pytest.raises(UnknownResponse, match="nope") as info:
                    await call
                assert isinstance(info.value, KeyError)
            assert await store.find("nope") is None

    async def test_update_validates_the_whole_new_record(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            new = await store.update("resp_1", owner="s2", updated_at=T0 + 5)
            assert new == attrs.evolve(rec(), owner="s2", updated_at=T0 + 5)
            with pytest.raises(ValueError, match="terminal_at"):
                await store.update("resp_1", status="completed", owner="s3")
            with pytest.raises(TypeError, match="colour"):
                await store.update("resp_1", colour="red")
            with pytest.raises(ValueError, match="response_id"):
                await store.update("resp_1", response_id="resp_2")
            assert await store.get("resp_1") == new

    async def test_update_cannot_leave_a_terminal_status(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec(status="completed", terminal_at=T0))
            with pytest.raises(IllegalTransition):
                await store.update("resp_1", status="queued", terminal_at=None)

    async def test_remove_returns_the_removed_record(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            assert (await store.remove("resp_1")).response_id == "resp_1"
            assert await store.all() == []
            assert sql(pg_dsn, "SELECT count(*) FROM responses") == [(0,)]

    async def test_active_lists_non_terminal_records_oldest_first(self, pg_dsn: str) -> None:
        """active() skips terminal records and orders by created_at, then insertion."""
        async with node(pg_dsn) as store:
            await store.add(rec("c", created_at=T0 + 2))
            await store.add(rec("a", created_at=T0 + 1, status="in_progress"))
            await store.add(rec("done", status="failed", terminal_at=T0))
            await store.add(rec("b", created_at=T0 + 1))
            assert [r.response_id for r in await store.active()] == ["a", "b", "c"]
            assert [r.response_id for r in await store.all()] == ["done", "a", "b", "c"]

    async def test_the_mirror_follows_every_committed_write(self, pg_dsn: str) -> None:
        """active_nowait() answers from memory, and shows each write once its call returned."""
        async with node(pg_dsn) as store:
            await store.add(rec("a"))
            with pytest.raises(RuntimeError, match="active"):
                store.active_nowait()
            assert store.active_count_nowait() is None
            await store.active()
            await store.add(rec("b", created_at=T0 + 1))
            assert [r.response_id for r in store.active_nowait()] == ["a", "b"]
            await store.record_status("a", "completed", at=T0 + 2)
            await store.record_cursor("b", 4)
            assert store.active_nowait() == [rec("b", created_at=T0 + 1, cursor=4)]
            assert store.active_count_nowait() == 1
        assert store.active_count_nowait() is None

    async def test_a_closed_store_raises_store_closed(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            pass
        with pytest.raises(StoreClosed):
            await store.get("resp_1")
        with pytest.raises(StoreClosed):
            store.add_nowait(rec(), lambda *_: None)
        with pytest.raises(StoreClosed):
            await store.renew()

    async def test_add_nowait_answers_from_the_commit(self, pg_dsn: str) -> None:
        """The callback gets the record once committed, or the error add() would raise."""
        answers: list[tuple[TrackedResponse | None, BaseException | None]] = []
        async with node(pg_dsn) as store:
            done = trio.Event()

            def on_done(record: TrackedResponse | None, error: BaseException | None) -> None:
                answers.append((record, error))
                if len(answers) == 2:
                    done.set()

            store.add_nowait(rec(), on_done)
            store.add_nowait(rec(), on_done)
            assert await store.find("resp_1") == rec()  # queued behind the add: sees it
            await done.wait()
        assert answers[0] == (rec(), None)
        assert answers[1][0] is None
        assert isinstance(answers[1][1], DuplicateResponse)

    async def test_a_row_that_fails_validation_is_corrupt(self, pg_dsn: str) -> None:
        """A row changed behind the store's back to an impossible value is CorruptStore."""
        async with node(pg_dsn) as store:
            await store.add(rec())
            sql(pg_dsn, "UPDATE responses SET mode = 'carrier-pigeon'")
            with pytest.raises(CorruptStore, match="invalid"):
                await store.get("resp_1")


class TestStatus:
    async def test_active_to_terminal_stamps_terminal_at(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            await store.record_status("resp_1", "in_progress", at=T0 + 1)
            change = await store.record_status("resp_1", "failed", at=T0 + 9, error="server_error")
            assert (change.applied, change.changed, change.previous) == (True, True, "in_progress")
            assert change.record.terminal_at == T0 + 9
            assert change.record.updated_at == T0 + 9
            assert change.record.last_error == "server_error"
            assert await store.get("resp_1") == change.record

    async def test_a_stale_active_status_after_terminal_is_ignored_and_logged(
        self, pg_dsn: str
    ) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            done = (await store.record_status("resp_1", "incomplete", at=T0 + 1)).record
            with structlog.testing.capture_logs() as logs:
                change = await store.record_status("resp_1", "queued", at=T0 + 2)
            assert (change.applied, change.changed, change.record) == (False, False, done)
            assert await store.get("resp_1") == done
        assert {
            "event": "cluster.status_ignored",
            "log_level": "info",
            "response_id": "resp_1",
            "status": "queued",
            "current": "incomplete",
            "reason": "stale 'queued' after terminal 'incomplete'",
        } in logs

    async def test_the_same_terminal_status_again_is_idempotent(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            first = (await store.record_status("resp_1", "cancelled", at=T0 + 1)).record
            change = await store.record_status("resp_1", "cancelled", at=T0 + 5)
            assert not change.applied
            assert change.reason == "already cancelled"
            assert change.record == first

    async def test_a_different_terminal_status_is_rejected(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            await store.record_status("resp_1", "completed", at=T0 + 1)
            with pytest.raises(IllegalTransition) as info:
                await store.record_status("resp_1", "cancelled", at=T0 + 2)
            assert (info.value.current, info.value.requested) == ("completed", "cancelled")
            assert (await store.get("resp_1")).status == "completed"

    async def test_an_unknown_status_is_rejected(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            with pytest.raises(ValueError, match="unknown response status"):
                await store.record_status("resp_1", "done", at=T0)


class TestCursorsPollsPurge:
    async def test_the_cursor_only_moves_forward(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            assert (await store.record_cursor("resp_1", 0)).cursor == 0
            assert (await store.record_cursor("resp_1", 5, at=T0 + 1)).cursor == 5
            stale = await store.record_cursor("resp_1", 3, at=T0 + 2)
            assert (stale.cursor, stale.updated_at) == (5, T0 + 1)
            with pytest.raises(ValueError, match="cursor"):
                await store.record_cursor("resp_1", -1)

    async def test_record_cursors_skips_ids_it_does_not_track(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec("a"))
            await store.add(rec("b"))
            stored = await store.record_cursors({"a": 3, "gone": 9, "b": 1}, at=T0 + 1)
            assert {k: v.cursor for k, v in stored.items()} == {"a": 3, "b": 1}
            assert (await store.get("a")).updated_at == T0 + 1

    async def test_record_poll_counts_attempts_and_consecutive_errors(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec())
            await store.record_poll("resp_1", at=T0 + 1, error="502 bad gateway")
            r = await store.record_poll("resp_1", at=T0 + 2, error="timeout")
            assert (r.poll_attempts, r.error_count, r.last_error) == (2, 2, "timeout")
            r = await store.record_poll("resp_1", at=T0 + 3)
            assert (r.poll_attempts, r.error_count, r.last_polled_at) == (3, 0, T0 + 3)

    async def test_purge_removes_only_terminal_records_past_the_ttl(self, pg_dsn: str) -> None:
        async with node(pg_dsn) as store:
            await store.add(rec("old", status="completed", terminal_at=T0))
            await store.add(rec("older", status="incomplete", terminal_at=T0 - 10))
            await store.add(rec("edge", status="failed", terminal_at=T0 + 400))
            await store.add(rec("young", status="cancelled", terminal_at=T0 + 401))
            await store.add(rec("active", created_at=T0 - 10_000))
            removed = await store.purge_terminal(older_than=3600, now=T0 + 4000)
            assert removed == ["older", "old", "edge"]
            assert {r.response_id for r in await store.all()} == {"young", "active"}
            with pytest.raises(ValueError, match="older_than"):
                await store.purge_terminal(older_than=-1, now=T0)


class TestOwnershipAndNamespaces:
    async def test_a_node_reads_any_record_but_writes_only_its_own(self, pg_dsn: str) -> None:
        """get/find see another node's record; a write to it is NotOwner and changes nothing."""
        async with node(pg_dsn, "n1") as one, node(pg_dsn, "n2") as two:
            await one.add(rec())
            assert await two.get("resp_1") == rec()
            assert await two.all() == []
            assert await two.active() == []
            for call in (
                two.update("resp_1", owner="x"),
                two.record_status("resp_1", "completed", at=T0),
                two.record_poll("resp_1", at=T0),
                two.remove("resp_1"),
            ):
                with pytest.raises(NotOwner) as info:
                    await call
                assert (info.value.owner, info.value.node_id) == ("n1", "n2")
                assert isinstance(info.value, PermissionError)
            assert await two.record_cursors({"resp_1": 5}) == {}
            with pytest.raises(DuplicateResponse):
                await two.add(rec())
            assert await one.get("resp_1") == rec()

    async def test_two_namespaces_never_see_each_other(self, pg_dsn: str) -> None:
        async with (
            node(pg_dsn, "n1", namespace="https://a.test/v1") as a,
            node(pg_dsn, "n2", namespace="https://b.test/v1") as b,
        ):
            await a.add(rec())
            await b.add(rec(owner="b's"))
            assert (await a.get("resp_1")).owner is None
            assert (await b.get("resp_1")).owner == "b's"
            assert await a.remove("resp_1") == rec()
            assert await b.find("resp_1") is not None
