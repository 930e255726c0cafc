"""The durable active-response registry (`streamvisor.actors.background._store`)."""

from __future__ import annotations

import gc
import json
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import weakref
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
import structlog.testing
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.actors.background._errors import (
    CorruptStore,
    DuplicateResponse,
    IllegalTransition,
    StoreClosed,
    StoreError,
    UnknownResponse,
    UnsupportedSchema,
)
from streamvisor.actors.background._records import (
    RESPONSE_STATUSES,
    TERMINAL_STATUSES,
    TrackedResponse,
    scrub_secrets,
)
from streamvisor.actors.background._store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    RegistryStore,
    RegistryView,
    registry_namespace,
)

T0 = 1_700_000_000.0
KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def rec(response_id: str = "resp_1", status: str = "queued", **kw: Any) -> TrackedResponse:
    kw.setdefault("created_at", T0)
    return TrackedResponse(response_id=response_id, status=status, model="o3-pro", **kw)


def dump_db(path: Path) -> list[tuple[Any, ...]]:
    """Every row of the responses table, read with a plain connection (the raw truth)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT * FROM responses ORDER BY response_id").fetchall()
    finally:
        conn.close()


def all_bytes(directory: Path) -> bytes:
    """The concatenated content of every file in *directory* (database, WAL, shm)."""
    return b"".join(file.read_bytes() for file in sorted(directory.iterdir()))


class TestTrackedResponse:
    def test_updated_at_defaults_to_created_at(self) -> None:
        """A new record was last updated when it was created."""
        assert rec().updated_at == T0

    def test_unknown_status_is_rejected(self) -> None:
        """Only the six OpenAI statuses are accepted."""
        with pytest.raises(ValueError, match="status"):
            rec(status="running")

    def test_terminal_status_needs_terminal_at(self) -> None:
        """terminal_at is set exactly when the status is terminal."""
        with pytest.raises(ValueError, match="terminal_at"):
            rec(status="completed")
        with pytest.raises(ValueError, match="terminal_at"):
            rec(status="in_progress", terminal_at=T0)
        assert rec(status="incomplete", terminal_at=T0).is_terminal

    def test_negative_cursor_is_rejected(self) -> None:
        """The resume cursor is a sequence number, never negative."""
        with pytest.raises(ValueError, match="cursor"):
            rec(cursor=-1)

    def test_non_finite_time_is_rejected(self) -> None:
        """Times are finite floats."""
        with pytest.raises(ValueError, match="finite"):
            rec(created_at=float("nan"))

    def test_mappings_are_deep_frozen_copies(self) -> None:
        """Mutating the caller's dict or the record's mapping cannot change the record."""
        body = {"input": [{"role": "user", "content": "hi"}], "model": "o3-pro"}
        record = rec(request=body)
        body["input"].append({"role": "user", "content": "later"})
        assert len(record.request["input"]) == 1
        with pytest.raises(TypeError):
            record.request["model"] = "other"  # type: ignore[index]
        assert record.as_json()["request"] == {
            "input": [{"role": "user", "content": "hi"}],
            "model": "o3-pro",
        }

    def test_an_id_that_cannot_be_stored_as_utf8_is_rejected(self) -> None:
        """A lone surrogate (from a JSON escape) is refused at construction, not by SQLite."""
        with pytest.raises(ValueError, match="response_id"):
            rec("resp_\ud800")

    async def test_an_error_text_with_a_lone_surrogate_is_stored_readably(self) -> None:
        """Server-provided error text is made storable instead of failing the write."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec(last_error="bad \ud800 byte"))
            assert (await store.get("resp_1")).last_error == "bad ? byte"

    def test_metadata_must_be_small(self) -> None:
        """metadata is a small JSON object (at most 16 KiB encoded)."""
        with pytest.raises(ValueError, match="metadata"):
            rec(metadata={"blob": "x" * 20_000})

    def test_non_json_metadata_is_rejected(self) -> None:
        """metadata holds JSON data only."""
        with pytest.raises(TypeError, match="JSON"):
            rec(metadata={"when": object()})


class TestSecrets:
    def test_credential_keys_are_dropped_at_any_depth(self) -> None:
        """Authorization headers and api keys never stay in a record's request or metadata."""
        record = rec(
            request={
                "model": "o3-pro",
                "api_key": KEY,
                "extra_headers": {"Authorization": f"Bearer {KEY}", "X-Api-Key": KEY, "x": "1"},
            },
            metadata={"OPENAI_API_KEY": KEY, "note": "ok"},
        )
        assert record.as_json()["request"] == {"model": "o3-pro", "extra_headers": {"x": "1"}}
        assert record.as_json()["metadata"] == {"note": "ok"}

    def test_key_shaped_strings_are_redacted(self) -> None:
        """An sk- key or bearer token inside any string value is replaced."""
        record = rec(
            request={"input": f"my key is {KEY} ok", "h": ["Bearer abc.def"]},
            last_error="Incorrect API key provided: sk-proj-ab**********************wxyz.",
        )
        text = json.dumps(record.as_json())
        assert "sk-proj" not in text
        assert "abc.def" not in text
        assert record.request["input"] == "my key is [REDACTED] ok"

    def test_words_containing_sk_are_kept(self) -> None:
        """Ordinary words such as task-identifiers are not mistaken for keys."""
        assert scrub_secrets({"id": "task-1234567890abcdef"}) == {"id": "task-1234567890abcdef"}

    async def test_the_database_file_never_contains_the_key(self, tmp_path: Path) -> None:
        """What reaches the disk is the scrubbed record."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path) as store:
            await store.add(rec(request={"api_key": KEY, "input": KEY}))
            await store.update("resp_1", metadata={"authorization": KEY}, last_error=KEY)
        assert b"sk-proj" not in all_bytes(tmp_path)


class TestRoundTrip:
    async def test_added_record_reads_back_equal(self) -> None:
        """add() then get() returns an equal record with every field."""
        record = rec(
            owner="s1",
            mode="stream",
            cursor=7,
            metadata={"n": 1, "tags": ["a"]},
            request={"model": "o3-pro", "input": "hi", "background": True},
            last_error="boom",
        )
        async with RegistryStore.open(":memory:") as store:
            assert await store.add(record) == record
            assert await store.get("resp_1") == record
            assert await store.all() == [record]

    async def test_duplicate_add_is_a_typed_error(self) -> None:
        """Adding an id twice raises DuplicateResponse, a ValueError, and keeps the first."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            with pytest.raises(DuplicateResponse) as info:
                await store.add(rec(owner="other"))
            assert isinstance(info.value, ValueError)
            assert info.value.response_id == "resp_1"
            assert (await store.get("resp_1")).owner is None

    async def test_unknown_id_is_a_typed_error(self) -> None:
        """get/update/remove of an untracked id raise UnknownResponse, a KeyError."""
        async with RegistryStore.open(":memory:") as store:
            for call in (
                store.get("nope"),
                store.update("nope", owner="x"),
                store.remove("nope"),
                store.record_cursor("nope", 1),
                store.record_status("nope", "completed", at=T0),
            ):
                with pytest.raises(UnknownResponse, match="nope") as info:
                    await call
                assert isinstance(info.value, KeyError)
            assert await store.find("nope") is None

    async def test_update_changes_fields_atomically_and_returns_the_new_record(self) -> None:
        """update() validates the whole new record before writing it."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            new = await store.update("resp_1", owner="s2", updated_at=T0 + 5)
            assert new == attrs.evolve(rec(), owner="s2", updated_at=T0 + 5)
            with pytest.raises(ValueError, match="terminal_at"):
                await store.update("resp_1", status="completed", owner="s3")
            assert await store.get("resp_1") == new

    async def test_update_rejects_unknown_fields_and_the_id(self) -> None:
        """Typos and id changes are errors, not silent no-ops."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            with pytest.raises(TypeError, match="colour"):
                await store.update("resp_1", colour="red")
            with pytest.raises(ValueError, match="response_id"):
                await store.update("resp_1", response_id="resp_2")

    async def test_update_cannot_leave_a_terminal_status(self) -> None:
        """update() applies the terminal rule strictly."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec(status="completed", terminal_at=T0))
            with pytest.raises(IllegalTransition):
                await store.update("resp_1", status="queued", terminal_at=None)

    async def test_remove_returns_the_removed_record(self) -> None:
        """remove() forgets the id."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            assert (await store.remove("resp_1")).response_id == "resp_1"
            assert await store.all() == []

    async def test_active_lists_non_terminal_records_oldest_first(self) -> None:
        """active() skips terminal records and orders by created_at, then insertion."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec("c", created_at=T0 + 2))
            await store.add(rec("a", created_at=T0 + 1, status="in_progress"))
            await store.add(rec("done", status="failed", terminal_at=T0))
            await store.add(rec("b", created_at=T0 + 1))
            assert [r.response_id for r in await store.active()] == ["a", "b", "c"]
            assert [r.response_id for r in await store.all()] == ["done", "a", "b", "c"]


class TestRegistryView:
    """`RegistryView`: the active count read from the open store's memory, without a message."""

    async def test_it_counts_what_the_attached_store_holds_active(self) -> None:
        view = RegistryView()
        assert view.active_count() is None  # no poller's store yet
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec("a"))
            await store.add(rec("done", status="failed", terminal_at=T0))
            await store.active()  # what the poller's init does: loads the memory
            view.attach(store)
            assert view.active_count() == 1
            await store.add(rec("b"))
            assert view.active_count() == 2
        assert view.active_count() is None  # closed: ask the (restarting) poller instead


class TestStatus:
    async def test_active_to_terminal_stamps_terminal_at(self) -> None:
        """Becoming terminal records when, and the error if given."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            await store.record_status("resp_1", "in_progress", at=T0 + 1)
            change = await store.record_status("resp_1", "failed", at=T0 + 9, error="server_error")
            assert change.applied
            assert change.changed
            assert change.previous == "in_progress"
            assert change.record.terminal_at == T0 + 9
            assert change.record.updated_at == T0 + 9
            assert change.record.last_error == "server_error"
            assert await store.get("resp_1") == change.record

    async def test_stale_active_status_after_terminal_is_ignored(self) -> None:
        """completed → in_progress (a stale poll) leaves the record unchanged and says so."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            done = (await store.record_status("resp_1", "completed", at=T0 + 1)).record
            change = await store.record_status("resp_1", "in_progress", at=T0 + 2)
            assert not change.applied
            assert not change.changed
            assert change.reason is not None
            assert "stale" in change.reason
            assert change.record == done
            assert await store.get("resp_1") == done

    async def test_an_ignored_status_is_logged(self) -> None:
        """The poller's operators can see that a stale status was dropped."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            await store.record_status("resp_1", "incomplete", at=T0 + 1)
            with structlog.testing.capture_logs() as logs:
                await store.record_status("resp_1", "queued", at=T0 + 2)
        assert logs == [
            {
                "event": "registry.status_ignored",
                "log_level": "info",
                "response_id": "resp_1",
                "status": "queued",
                "current": "incomplete",
                "reason": "stale 'queued' after terminal 'incomplete'",
            }
        ]

    async def test_same_terminal_status_again_is_idempotent(self) -> None:
        """cancelled → cancelled (cancel twice) is a no-op."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            first = (await store.record_status("resp_1", "cancelled", at=T0 + 1)).record
            change = await store.record_status("resp_1", "cancelled", at=T0 + 5)
            assert not change.applied
            assert change.record == first

    async def test_a_different_terminal_status_is_rejected(self) -> None:
        """completed → cancelled raises IllegalTransition and writes nothing."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            await store.record_status("resp_1", "completed", at=T0 + 1)
            with pytest.raises(IllegalTransition) as info:
                await store.record_status("resp_1", "cancelled", at=T0 + 2)
            assert (info.value.current, info.value.requested) == ("completed", "cancelled")
            assert (await store.get("resp_1")).status == "completed"

    async def test_unknown_status_is_rejected_before_touching_the_store(self) -> None:
        """A status the API does not have is a ValueError."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            with pytest.raises(ValueError, match="unknown response status"):
                await store.record_status("resp_1", "done", at=T0)


class TestCursorAndPolls:
    async def test_cursor_only_moves_forward(self) -> None:
        """record_cursor never goes back."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            assert (await store.record_cursor("resp_1", 5, at=T0 + 1)).cursor == 5
            stale = await store.record_cursor("resp_1", 3, at=T0 + 2)
            assert stale.cursor == 5
            assert stale.updated_at == T0 + 1
            assert (await store.record_cursor("resp_1", 0)).cursor == 5
            assert (await store.get("resp_1")).cursor == 5

    async def test_a_cursor_write_stores_the_cursor_and_its_time_and_keeps_the_rest(self) -> None:
        """Cursor writes update their two columns only (no JSON of the request): read back
        from the database, the record is the one before with those two changed."""
        async with RegistryStore.open(":memory:") as store:
            request = {"input": [{"role": "user", "content": "hi"}], "tools": [{"type": "x"}]}
            added = await store.add(rec(owner="session:s1", metadata={"k": "v"}, request=request))
            await store.record_cursors({"resp_1": 7}, at=T0 + 3)
            stored = await store.get("resp_1")
        assert stored == attrs.evolve(added, cursor=7, updated_at=T0 + 3)

    async def test_cursor_starts_from_zero(self) -> None:
        """The first cursor may be 0 (response.created)."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            assert (await store.record_cursor("resp_1", 0)).cursor == 0

    async def test_negative_cursor_is_rejected(self) -> None:
        """A negative cursor is a caller bug."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            with pytest.raises(ValueError, match="cursor"):
                await store.record_cursor("resp_1", -1)

    async def test_record_poll_counts_attempts_and_consecutive_errors(self) -> None:
        """A failed poll adds to error_count; a successful one resets it."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            await store.record_poll("resp_1", at=T0 + 1, error="502 bad gateway")
            r = await store.record_poll("resp_1", at=T0 + 2, error="timeout")
            assert (r.poll_attempts, r.error_count, r.last_error) == (2, 2, "timeout")
            r = await store.record_poll("resp_1", at=T0 + 3)
            assert (r.poll_attempts, r.error_count, r.last_polled_at) == (3, 0, T0 + 3)


class TestPurge:
    async def test_purge_removes_only_terminal_records_past_the_ttl(self) -> None:
        """Expired terminal records go; young terminal and all active records stay."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec("old", status="completed", terminal_at=T0))
            await store.add(rec("older", status="incomplete", terminal_at=T0 - 10))
            await store.add(rec("edge", status="failed", terminal_at=T0 + 400))
            await store.add(rec("young", status="cancelled", terminal_at=T0 + 401))
            await store.add(rec("active", created_at=T0 - 10_000))
            removed = await store.purge_terminal(older_than=3600, now=T0 + 4000)
            assert removed == ["older", "old", "edge"]
            assert {r.response_id for r in await store.all()} == {"young", "active"}

    async def test_negative_ttl_is_rejected(self) -> None:
        """older_than is a duration."""
        async with RegistryStore.open(":memory:") as store:
            with pytest.raises(ValueError, match="older_than"):
                await store.purge_terminal(older_than=-1, now=T0)


class TestDurability:
    async def test_records_survive_close_and_reopen(self, tmp_path: Path) -> None:
        """A file database keeps every committed change across a restart."""
        path = tmp_path / "var" / "registry.sqlite3"
        async with RegistryStore.open(path) as store:
            await store.add(rec("a", owner="s1", request={"input": "hi"}))
            await store.add(rec("b"))
            await store.record_cursor("a", 12)
            await store.record_status("b", "completed", at=T0 + 3)
            before = await store.all()
        async with RegistryStore.open(path) as store:
            assert await store.all() == before
            assert [r.response_id for r in await store.active()] == ["a"]

    async def test_file_database_uses_wal_with_normal_sync(self, tmp_path: Path) -> None:
        """WAL mode is persisted in the file."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path):
            pass
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()

    async def test_memory_database_lives_as_long_as_the_store(self) -> None:
        """Two operations see the same :memory: database; a new store starts empty."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            assert len(await store.all()) == 1
        async with RegistryStore.open(":memory:") as store:
            assert await store.all() == []

    async def test_using_a_closed_store_raises_store_closed(self) -> None:
        """After the block the store refuses work with a ClosedResourceError."""
        async with RegistryStore.open(":memory:") as store:
            pass
        with pytest.raises(StoreClosed) as info:
            await store.all()
        assert isinstance(info.value, trio.ClosedResourceError)

    async def test_a_file_that_is_not_a_database_is_corrupt(self, tmp_path: Path) -> None:
        """Garbage on disk is CorruptStore, not a crash deep inside a poll."""
        path = tmp_path / "r.sqlite3"
        path.write_bytes(b"this is not a database" * 100)
        with pytest.raises(CorruptStore, match="not a database"):
            async with RegistryStore.open(path):
                pass

    async def test_an_invalid_row_is_reported_as_corrupt(self, tmp_path: Path) -> None:
        """A row that fails validation (edited by hand) names the response."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path) as store:
            await store.add(rec())
        conn = sqlite3.connect(path)
        conn.execute("UPDATE responses SET metadata = '[1, 2'")
        conn.commit()
        conn.close()
        async with RegistryStore.open(path) as store:
            with pytest.raises(CorruptStore, match="resp_1"):
                await store.get("resp_1")


class TestSchema:
    async def test_a_new_database_is_at_the_current_version(self, tmp_path: Path) -> None:
        """The schema_version table records every migration applied."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path):
            pass
        conn = sqlite3.connect(path)
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
        conn.close()
        assert versions == list(range(1, SCHEMA_VERSION + 1))

    async def test_a_later_migration_upgrades_an_existing_database(self, tmp_path: Path) -> None:
        """The migration hook runs only the steps a database has not seen, keeping its rows."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path) as store:
            await store.add(rec())
        seen: list[int] = []

        def v2(conn: sqlite3.Connection) -> None:
            seen.append(2)
            conn.execute("CREATE TABLE notes (text TEXT)")

        for _ in range(2):
            async with RegistryStore.open(path, migrations=(*MIGRATIONS, v2)) as store:
                assert (await store.get("resp_1")).status == "queued"
        assert seen == [2]

    async def test_a_failing_migration_leaves_the_old_version_intact(self, tmp_path: Path) -> None:
        """A migration is one transaction with its version bump."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path):
            pass

        def broken(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE half (x)")
            raise RuntimeError("migration bug")

        with pytest.raises(RuntimeError, match="migration bug"):
            async with RegistryStore.open(path, migrations=(*MIGRATIONS, broken)):
                pass
        conn = sqlite3.connect(path)
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
        conn.close()
        assert "half" not in tables

    async def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database from a newer streamvisor is not silently misread."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path, migrations=(*MIGRATIONS, lambda conn: None)):
            pass
        with pytest.raises(UnsupportedSchema, match="newer"):
            async with RegistryStore.open(path):
                pass


_WRITER = textwrap.dedent(
    """
    import os, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("PRAGMA cache_size = 1")          # spill uncommitted pages into the WAL
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE responses SET status = 'completed', terminal_at = 1.0")
    for i in range(2000):
        conn.execute(
            "INSERT INTO responses (namespace, response_id, status, model, created_at, updated_at)"
            " VALUES ('', ?, 'queued', 'm', 0, 0)", (f"ghost_{i}" + "x" * 200,))
    sys.stdout.write("written\\n"); sys.stdout.flush()
    os._exit(9)                                   # die mid-transaction, no commit, no cleanup
    """
)

_COMMITTER = textwrap.dedent(
    """
    import sys, trio
    from streamvisor.actors.background._records import TrackedResponse
    from streamvisor.actors.background._store import RegistryStore

    async def main():
        async with RegistryStore.open(sys.argv[1]) as store:
            i = 0
            while True:
                await store.add(TrackedResponse(
                    response_id=f"r{i}", status="queued", model="m", created_at=float(i),
                    request={"input": "x" * 500}))
                await store.record_cursor(f"r{i}", i)
                sys.stdout.write(f"{i}\\n"); sys.stdout.flush()
                i += 1

    trio.run(main)
    """
)


class TestCrashSafety:
    async def test_a_writer_that_dies_mid_transaction_leaves_no_trace(self, tmp_path: Path) -> None:
        """Uncommitted work of a process that exits abruptly is never visible."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path) as store:
            await store.add(rec("a"))
            await store.record_cursor("a", 4)
        before = dump_db(path)
        result = await trio.run_process(
            [sys.executable, "-c", _WRITER, str(path)], capture_stdout=True, check=False
        )
        assert result.stdout == b"written\n"
        assert result.returncode == 9
        async with RegistryStore.open(path) as store:
            assert [r.response_id for r in await store.all()] == ["a"]
            assert (await store.get("a")).cursor == 4
        assert dump_db(path) == before

    async def test_kill_9_keeps_every_committed_record(self, tmp_path: Path) -> None:
        """SIGKILL during a stream of commits loses nothing that was reported committed."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path):
            pass  # create the schema first, so the child starts writing at once
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-c", _COMMITTER, str(path)], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        seen = b""
        with trio.fail_after(60):
            while seen.count(b"\n") < 30:
                chunk = await proc.stdout.receive_some()
                assert chunk, "the writer exited early"
                seen += chunk
        proc.kill()
        await proc.wait()
        await proc.stdout.aclose()
        committed = int(seen.rsplit(b"\n", 2)[-2])
        async with RegistryStore.open(path) as store:
            records = await store.all()
        ids = {r.response_id for r in records}
        assert {f"r{i}" for i in range(committed + 1)} <= ids
        # The record being written at the kill is whole or absent, never half-written.
        for record in records:
            assert record.request == {"input": "x" * 500}
        by_id = {r.response_id: r for r in records}
        assert all(by_id[f"r{i}"].cursor == i for i in range(committed + 1))


class TestConcurrency:
    async def test_many_tasks_share_one_store_safely(self) -> None:
        """Concurrent adds, cursor moves and reads from many trio tasks are serialized."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec("shared"))
            cursors = list(range(50))
            random.Random(7).shuffle(cursors)
            async with trio.open_nursery() as nursery:
                for i in range(40):
                    nursery.start_soon(store.add, rec(f"r{i:02}", created_at=T0 + i))
                for n in cursors:
                    nursery.start_soon(store.record_cursor, "shared", n)
                for _ in range(10):
                    nursery.start_soon(store.active)
            assert (await store.get("shared")).cursor == 49
            assert len(await store.active()) == 41

    async def test_a_call_cancelled_before_it_runs_writes_nothing(self) -> None:
        """Cancellation at the lock leaves the store untouched and usable."""
        async with RegistryStore.open(":memory:") as store:
            with trio.CancelScope() as scope:
                scope.cancel()
                await store.add(rec())
            assert scope.cancelled_caught
            assert await store.find("resp_1") is None
            await store.add(rec())
            assert await store.find("resp_1") is not None


async def held(store: RegistryStore, gate: threading.Event) -> None:
    """Occupy the store's writer thread until ``gate`` is set (bounded, in case a test fails)."""
    await store._run("held", lambda _tx: gate.wait(10))


class TestGroupCommit:
    async def test_operations_queued_together_are_committed_in_one_batch(
        self, tmp_path: Path
    ) -> None:
        """200 adds that wait behind one commit are committed together, not one by one."""
        gate = threading.Event()
        async with (
            RegistryStore.open(tmp_path / "r.sqlite3") as store,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(held, store, gate)
            await trio.sleep(0.05)
            before = store.statistics
            for i in range(200):
                nursery.start_soon(store.add, rec(f"r{i:03}", created_at=T0 + i))
            await trio.sleep(0.05)
            gate.set()
        batches, operations = store.statistics
        assert operations - before[1] == 201  # the held one and the 200 adds
        assert batches - before[0] <= 2
        assert len(dump_db(tmp_path / "r.sqlite3")) == 200

    async def test_a_failing_operation_is_rolled_back_alone(self, tmp_path: Path) -> None:
        """In one batch: a duplicate add fails with its typed error; its neighbours commit."""
        batches_before = 0
        gate = threading.Event()
        results: dict[str, Any] = {}

        async def add(key: str, record: TrackedResponse) -> None:
            try:
                results[key] = await store.add(record)
            except DuplicateResponse as exc:
                results[key] = exc

        async with (
            RegistryStore.open(tmp_path / "r.sqlite3") as store,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(held, store, gate)
            await trio.sleep(0.05)
            batches_before = store.statistics[0]
            for key, record in (("first", rec("a")), ("again", rec("a")), ("other", rec("b"))):
                nursery.start_soon(add, key, record)
                await trio.sleep(0.01)  # queued in this order
            gate.set()
        assert isinstance(results["again"], DuplicateResponse)
        assert results["first"] == rec("a")
        assert results["other"] == rec("b")
        # The held operation's batch, then one batch for the three queued behind it.
        assert store.statistics[0] - batches_before == 2
        assert [row[1] for row in dump_db(tmp_path / "r.sqlite3")] == ["a", "b"]

    async def test_a_caller_cancelled_while_queued_writes_nothing(self, tmp_path: Path) -> None:
        """An operation its caller gave up on before the writer reached it is skipped."""
        gate = threading.Event()
        async with RegistryStore.open(tmp_path / "r.sqlite3") as store:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held, store, gate)
                await trio.sleep(0.05)
                with trio.move_on_after(0.05):
                    await store.add(rec("gave_up"))
                gate.set()
            await store.add(rec("kept"))
            assert [r.response_id for r in await store.all()] == ["kept"]

    async def test_a_caller_cancelled_after_its_write_ran_still_sees_it_in_memory(
        self, tmp_path: Path
    ) -> None:
        """Cancelled between the writer running its add and the batch's delivery: the add is
        committed, and ``active()`` (the memory) shows it like the file does."""
        first, second = threading.Event(), threading.Event()
        async with RegistryStore.open(tmp_path / "r.sqlite3") as store:
            assert await store.active() == []
            add_scope = trio.CancelScope()

            async def add() -> None:
                with add_scope:
                    await store.add(rec("ran"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(held, store, first)
                await trio.sleep(0.05)
                nursery.start_soon(add)
                await trio.sleep(0.05)
                nursery.start_soon(held, store, second)  # queued behind the add
                await trio.sleep(0.05)
                first.set()  # next batch: the add runs, then the writer waits on `second`
                await trio.sleep(0.1)
                add_scope.cancel()
                await trio.sleep(0.05)
                second.set()
            assert add_scope.cancelled_caught
            assert [r.response_id for r in await store.all()] == ["ran"]
            assert [r.response_id for r in await store.active()] == ["ran"]

    async def test_active_answers_from_memory_while_the_writer_is_busy(
        self, tmp_path: Path
    ) -> None:
        """``active()`` does not queue behind writes; it shows every write that returned."""
        gate = threading.Event()
        async with RegistryStore.open(tmp_path / "r.sqlite3") as store:
            await store.add(rec("a"))
            assert [r.response_id for r in await store.active()] == ["a"]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(held, store, gate)
                nursery.start_soon(store.add, rec("b", created_at=T0 - 1))
                await trio.sleep(0.05)
                with trio.fail_after(1):
                    assert [r.response_id for r in await store.active()] == ["a"]
                gate.set()
            await store.record_status("a", "completed", at=T0 + 1)
            assert [r.response_id for r in await store.active()] == ["b"]

    async def test_add_nowait_answers_from_the_commit(self) -> None:
        """The callback gets the record once committed, or the error ``add`` would raise; one
        that raises is logged and leaves the store working."""
        answers: list[tuple[Any, Any]] = []
        committed = trio.Event()

        def on_done(record: TrackedResponse | None, error: BaseException | None) -> None:
            answers.append((record, error))
            if len(answers) == 2:
                committed.set()
            raise RuntimeError("a buggy callback")

        async with RegistryStore.open(":memory:") as store:
            with structlog.testing.capture_logs() as logs:
                store.add_nowait(rec("a"), on_done)
                store.add_nowait(rec("a"), on_done)
                assert answers == []  # queued, not yet committed
                with trio.fail_after(5):
                    await committed.wait()
            assert await store.get("a") == rec("a")
        assert answers[0] == (rec("a"), None)
        assert answers[1][0] is None
        assert isinstance(answers[1][1], DuplicateResponse)
        assert [e["event"] for e in logs] == ["registry.callback_failed"] * 2

    async def test_the_connection_runs_with_synchronous_full(self, tmp_path: Path) -> None:
        """synchronous=FULL (2), so a returned write survives an OS crash, not only a killed
        process (what that pragma promises is SQLite's to keep; this checks it is set)."""
        async with RegistryStore.open(tmp_path / "r.sqlite3") as store:
            row = await store._run(
                "sync", lambda tx: tx.conn.execute("PRAGMA synchronous").fetchone()
            )
            assert row[0] == 2

    async def test_the_writer_does_not_keep_its_last_batch_while_it_waits(self) -> None:
        """The writer thread lives as long as the store: waiting for the next operation, it
        kept the last batch -- the operations' arguments and results (``all()``: every record,
        each with its request) -- until another came. No operation more here (it would replace
        the batch kept): the thread is polled until it has let go."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec(request={"input": "x" * 1000}))
            records = await store.all()
            gone = weakref.ref(records[0])
            del records
            with trio.fail_after(5):
                gc.collect()
                while gone() is not None:
                    await trio.sleep(0.01)
                    gc.collect()


class TestNamespaces:
    async def test_two_servers_share_a_file_without_seeing_each_other(self, tmp_path: Path) -> None:
        """The same id from two servers: two records; each store lists, reads, updates and
        purges only its own."""
        path = tmp_path / "r.sqlite3"
        async with (
            RegistryStore.open(path, namespace="http://127.0.0.1:8001/v1") as a,
            RegistryStore.open(path, namespace="https://api.openai.com/v1") as b,
        ):
            await a.add(rec("resp_1", owner="from_a"))
            await b.add(rec("resp_1", owner="from_b"))
            await b.add(rec("resp_2"))
            await a.record_status("resp_1", "completed", at=T0 + 1)
            assert (await b.get("resp_1")).status == "queued"
            assert [r.owner for r in await a.all()] == ["from_a"]
            assert [r.response_id for r in await b.active()] == ["resp_1", "resp_2"]
            assert await a.find("resp_2") is None
            with pytest.raises(UnknownResponse):
                await a.remove("resp_2")
            assert await b.purge_terminal(0, now=T0 + 10) == []
            assert await a.purge_terminal(0, now=T0 + 10) == ["resp_1"]
            assert [r.owner for r in await b.all()] == ["from_b", None]

    @pytest.mark.parametrize(
        ("url", "namespace"),
        [
            ("https://API.OpenAI.com:443/v1/", "https://api.openai.com/v1"),
            ("http://user:secret@127.0.0.1:8080/v1?x=1#f", "http://127.0.0.1:8080/v1"),
            ("http://[::1]:9000/v1", "http://[::1]:9000/v1"),
            ("http://localhost:80", "http://localhost"),
        ],
    )
    def test_a_base_url_is_normalised_and_stripped_of_credentials(
        self, url: str, namespace: str
    ) -> None:
        assert registry_namespace(url) == namespace

    async def test_rows_from_before_namespaces_move_to_the_empty_namespace(
        self, tmp_path: Path
    ) -> None:
        """Migrating schema 1: every row and field is kept, under the namespace ``""``, which
        a daemon (whose namespace is its base URL) never adopts."""
        path = tmp_path / "r.sqlite3"
        async with RegistryStore.open(path, migrations=MIGRATIONS[:1]):
            pass
        conn = sqlite3.connect(path)
        conn.execute(
            "INSERT INTO responses (response_id, status, model, owner, created_at, updated_at, "
            "cursor, request) VALUES ('resp_1', 'queued', 'o3-pro', 's1', ?, ?, 7, ?)",
            (T0, T0, '{"input":"hi"}'),
        )
        conn.execute(
            "INSERT INTO responses (response_id, status, model, created_at, updated_at, "
            "terminal_at) VALUES ('resp_2', 'completed', 'o3-pro', ?, ?, ?)",
            (T0 + 1, T0 + 2, T0 + 2),
        )
        conn.commit()
        conn.close()
        before = [
            rec("resp_1", owner="s1", cursor=7, request={"input": "hi"}),
            rec("resp_2", "completed", created_at=T0 + 1, updated_at=T0 + 2, terminal_at=T0 + 2),
        ]
        async with RegistryStore.open(path, namespace="http://127.0.0.1:8001/v1") as daemon:
            assert await daemon.active() == []
            assert await daemon.all() == []
            await daemon.add(rec("resp_1"))  # the same id from this server: no collision
        async with RegistryStore.open(path) as legacy:
            assert await legacy.all() == before
        conn = sqlite3.connect(path)
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_version")]
        conn.close()
        assert versions == [1, 2] == list(range(1, SCHEMA_VERSION + 1))


class TestErrors:
    def test_errors_share_one_root(self) -> None:
        """Every store error can be caught as StoreError."""
        for error in (
            UnknownResponse,
            DuplicateResponse,
            IllegalTransition,
            CorruptStore,
            StoreClosed,
        ):
            assert issubclass(error, StoreError)


json_data = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
times = st.floats(0, 4e9, allow_nan=False)
maybe_text = st.none() | st.text(min_size=1, max_size=30)


@st.composite
def tracked(draw: st.DrawFn) -> TrackedResponse:
    status = draw(st.sampled_from(sorted(RESPONSE_STATUSES)))
    return TrackedResponse(
        response_id=draw(st.text(min_size=1, max_size=30)).encode("utf-8", "replace").decode(),
        status=status,
        model=draw(st.sampled_from(["o3-pro", "gpt-4o", "模型"])),
        created_at=draw(times),
        updated_at=draw(times),
        owner=draw(st.none() | st.sampled_from(["s1", "session two"])),
        mode=draw(st.sampled_from(["poll", "stream"])),
        last_polled_at=draw(st.none() | times),
        cursor=draw(st.none() | st.integers(0, 2**40)),
        poll_attempts=draw(st.integers(0, 10**6)),
        error_count=draw(st.integers(0, 100)),
        terminal_at=draw(times) if status in TERMINAL_STATUSES else None,
        last_error=draw(maybe_text),
        metadata=draw(st.dictionaries(st.text(max_size=8), json_data, max_size=4)),
        request=draw(st.dictionaries(st.text(max_size=8), json_data, max_size=4)),
    )


class TestProperties:
    @settings(max_examples=60, deadline=None)
    @given(record=tracked())
    async def test_any_valid_record_round_trips_through_the_database(
        self, record: TrackedResponse
    ) -> None:
        """What add() stores, get() returns unchanged -- unicode, big ints, nested JSON."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(record)
            assert await store.get(record.response_id) == record

    @given(
        data=json_data,
        separator=st.sampled_from([" ", "=", ":", '"', "\n", "_", "/", ""]),
    )
    def test_a_key_inside_any_json_never_survives_scrubbing(
        self, data: Any, separator: str
    ) -> None:
        """Wherever the key is embedded (after a non-alphanumeric), it is removed."""
        wrapped = {"a": [data, f"x{separator}{KEY}" if separator else KEY], "b": {"c": KEY}}
        scrubbed = scrub_secrets(wrapped)
        assert KEY not in json.dumps(scrubbed)
        assert scrub_secrets(scrubbed) == scrubbed

    @settings(max_examples=30, deadline=None)
    @given(cursors=st.lists(st.integers(0, 1000), min_size=1, max_size=12))
    async def test_the_cursor_is_the_maximum_ever_recorded(self, cursors: list[int]) -> None:
        """Whatever order the cursors arrive in, the stored one is their maximum."""
        async with RegistryStore.open(":memory:") as store:
            await store.add(rec())
            for n in cursors:
                await store.record_cursor("resp_1", n)
            assert (await store.get("resp_1")).cursor == max(cursors)
