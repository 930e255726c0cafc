"""The registry's record-transition rules, without a store (``background._transitions``).

Both registry stores apply these; ``test_store.py`` and ``tests/cluster/test_pg_*.py`` check them
through each store's API.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import attrs
import pytest

from streamvisor.actors.background._errors import IllegalTransition
from streamvisor.actors.background._records import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    TrackedResponse,
)
from streamvisor.actors.background._transitions import (
    advance_cursor,
    apply_status,
    check_cursor,
    check_purge,
    check_status,
    check_update,
    count_poll,
    update_record,
)


def _record(status: str = "queued", **kw: Any) -> TrackedResponse:
    if status in TERMINAL_STATUSES:
        kw.setdefault("terminal_at", 5.0)
    return TrackedResponse(
        response_id="resp_1", status=status, model="o3-pro", created_at=1.0, updated_at=1.0, **kw
    )


class TestApplyStatus:
    @pytest.mark.parametrize("current", sorted(ACTIVE_STATUSES))
    @pytest.mark.parametrize("new", sorted(ACTIVE_STATUSES | TERMINAL_STATUSES))
    def test_an_active_record_takes_any_status(self, current: str, new: str) -> None:
        """Active → anything is applied, stamped with the time it was seen."""
        change = apply_status(_record(current), new, at=9.0)
        assert change.applied
        assert change.reason is None
        assert change.previous == current
        assert change.record.status == new
        assert change.record.updated_at == 9.0
        assert change.record.terminal_at == (9.0 if new in TERMINAL_STATUSES else None)

    def test_an_error_is_kept_with_the_status(self) -> None:
        """A status seen with an error stores it as ``last_error``."""
        change = apply_status(_record(), "failed", at=2.0, error="boom")
        assert change.record.last_error == "boom"

    @pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
    def test_the_same_terminal_status_again_is_an_idempotent_no_op(self, terminal: str) -> None:
        """A terminal status seen again changes nothing and says so."""
        record = _record(terminal)
        change = apply_status(record, terminal, at=9.0)
        assert (change.record, change.applied, change.reason) == (
            record,
            False,
            f"already {terminal}",
        )

    @pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
    @pytest.mark.parametrize("active", sorted(ACTIVE_STATUSES))
    def test_a_stale_active_status_after_a_terminal_one_is_ignored(
        self, terminal: str, active: str
    ) -> None:
        """An active status after a terminal one (a stale poll) is ignored, with a reason."""
        record = _record(terminal)
        change = apply_status(record, active, at=9.0)
        assert change.record is record
        assert not change.applied
        assert change.reason == f"stale {active!r} after terminal {terminal!r}"

    @pytest.mark.parametrize(
        ("terminal", "other"), list(itertools.permutations(sorted(TERMINAL_STATUSES), 2))
    )
    def test_another_terminal_status_after_a_terminal_one_is_illegal(
        self, terminal: str, other: str
    ) -> None:
        """A terminal status is final: a different terminal status raises."""
        with pytest.raises(IllegalTransition):
            apply_status(_record(terminal), other, at=9.0)


class TestUpdate:
    def test_leaving_a_terminal_status_is_illegal(self) -> None:
        """``update`` follows the transition rule strictly: no way out of a terminal status."""
        with pytest.raises(IllegalTransition):
            update_record(_record("completed"), {"status": "in_progress"})

    def test_other_fields_of_a_terminal_record_may_change(self) -> None:
        """Only the status is final; the same status and other fields may be written."""
        new = update_record(_record("completed"), {"status": "completed", "owner": "me"})
        assert new.owner == "me"

    def test_response_id_and_unknown_fields_are_refused(self) -> None:
        """The checks that need no record refuse what ``update`` can never do."""
        with pytest.raises(ValueError, match="cannot change response_id"):
            check_update({"response_id": "x"})
        with pytest.raises(TypeError, match=r"unknown TrackedResponse fields: \['nope'\]"):
            check_update({"nope": 1, "owner": "me"})


class TestCursorAndPolls:
    def test_the_cursor_only_moves_up(self) -> None:
        """A lower or equal cursor returns the record itself (nothing to write)."""
        record = _record(cursor=5)
        assert advance_cursor(record, 5, 9.0) is record
        assert advance_cursor(record, 4, 9.0) is record
        moved = advance_cursor(record, 6, 9.0)
        assert (moved.cursor, moved.updated_at) == (6, 9.0)
        assert advance_cursor(_record(), 0, None).updated_at == 1.0

    def test_a_moved_cursor_is_the_record_evolve_would_make_without_refreezing_it(self) -> None:
        """The hot path of every durable stream: the request and metadata are the same
        (frozen) objects, not frozen again; every other field is kept; the copy is frozen."""
        record = _record(
            status="completed",
            cursor=1,
            owner="session:s1",
            mode="stream",
            poll_attempts=2,
            last_error="timeout",
            metadata={"k": "v"},
            request={"input": [{"role": "user", "content": "hi"}], "tools": [{"type": "x"}]},
        )
        moved = advance_cursor(record, 7, 9.5)
        assert moved == attrs.evolve(record, cursor=7, updated_at=9.5)
        assert moved.request is record.request
        assert moved.metadata is record.metadata
        assert advance_cursor(record, 8, None) == attrs.evolve(record, cursor=8)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            moved.cursor = 9  # type: ignore[misc]

    @pytest.mark.parametrize("cursor", [-1, True, 1.0, "3", None])
    def test_a_bad_cursor_is_refused(self, cursor: object) -> None:
        """A cursor is an int >= 0 (not a bool)."""
        with pytest.raises(ValueError, match="cursor must be an int >= 0"):
            check_cursor(cursor)

    def test_a_poll_counts_and_its_error_accumulates_until_a_success(self) -> None:
        """A failed poll adds to ``error_count``; a successful one resets it."""
        failed = count_poll(count_poll(_record(), at=2.0, error="a"), at=3.0, error="b")
        assert (failed.poll_attempts, failed.error_count, failed.last_error) == (2, 2, "b")
        ok = count_poll(failed, at=4.0)
        assert (ok.poll_attempts, ok.error_count, ok.last_polled_at) == (3, 0, 4.0)
        assert ok.last_error == "b"


class TestArguments:
    def test_an_unknown_status_is_refused(self) -> None:
        """Only the response statuses exist."""
        with pytest.raises(ValueError, match="unknown response status 'done'"):
            check_status("done")

    def test_the_purge_cutoff_is_now_minus_the_age(self) -> None:
        """A record terminal at or before the cutoff is old enough; the age cannot be negative."""
        assert check_purge(10.0, 100.0) == 90.0
        with pytest.raises(ValueError, match="older_than must be >= 0"):
            check_purge(-1.0, 100.0)
        with pytest.raises(ValueError):
            check_purge(math.inf, 100.0)
