"""The background poller's published records and its scheduling arithmetic, as values."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamvisor.actors.background._status import (
    BACKOFF_JITTER,
    MIN_POLL_DELAY,
    BackgroundStatus,
    PollingStopped,
    error_backoff,
    poll_delay,
)
from streamvisor.config import BackgroundSection

SECTION = BackgroundSection(
    poll_interval=2.0, max_poll_interval=30.0, error_backoff_initial=1.0, error_backoff_max=60.0
)
unit = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


class TestBackgroundStatus:
    @pytest.mark.parametrize(
        ("status", "terminal"),
        [
            ("queued", False),
            ("in_progress", False),
            ("completed", True),
            ("failed", True),
            ("cancelled", True),
            ("incomplete", True),
        ],
    )
    def test_terminal_is_true_exactly_for_the_four_final_statuses(
        self, status: str, terminal: bool
    ) -> None:
        assert BackgroundStatus("resp_1", status, None, None, 1.0).terminal is terminal

    def test_an_unknown_status_is_rejected_at_construction(self) -> None:
        with pytest.raises(ValueError, match="status"):
            BackgroundStatus("resp_1", "gone", "in_progress", None, 1.0)

    def test_a_non_finite_time_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="at"):
            BackgroundStatus("resp_1", "queued", None, None, float("nan"))

    def test_it_is_frozen(self) -> None:
        note = BackgroundStatus("resp_1", "queued", None, None, 1.0)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            note.status = "completed"  # type: ignore[misc]

    def test_a_polling_stop_is_never_terminal(self) -> None:
        note = PollingStopped(
            "resp_1", "queued", "insufficient_quota: no", "insufficient_quota", 1.0
        )
        assert note.terminal is False


class TestPollDelay:
    def test_the_hint_wins_over_the_interval(self) -> None:
        assert poll_delay(0.5, SECTION) == 0.5

    def test_without_a_hint_the_interval_applies(self) -> None:
        assert poll_delay(None, SECTION) == 2.0

    def test_a_long_hint_is_capped(self) -> None:
        assert poll_delay(3600.0, SECTION) == 30.0

    def test_a_zero_hint_does_not_spin(self) -> None:
        assert poll_delay(0.0, SECTION) == MIN_POLL_DELAY


class TestErrorBackoff:
    @given(errors=st.integers(min_value=1, max_value=10_000), r=unit)
    def test_each_delay_is_its_step_minus_at_most_the_jitter_and_never_above_the_max(
        self, errors: int, r: float
    ) -> None:
        step = min(1.0 * 2.0 ** min(errors - 1, 64), 60.0)
        delay = error_backoff(errors, SECTION, lambda: r)
        assert step * (1 - BACKOFF_JITTER) - 1e-9 <= delay <= step
        assert delay <= SECTION.error_backoff_max

    @given(errors=st.integers(min_value=1, max_value=200), r=unit)
    def test_the_backoff_never_shrinks_as_errors_pile_up(self, errors: int, r: float) -> None:
        assert error_backoff(errors + 1, SECTION, lambda: r) >= error_backoff(
            errors, SECTION, lambda: r
        )

    def test_a_longer_retry_after_is_honoured_up_to_the_max(self) -> None:
        assert error_backoff(1, SECTION, lambda: 0.0, retry_after=7.0) == 7.0
        assert error_backoff(1, SECTION, lambda: 0.0, retry_after=600.0) == 60.0

    def test_a_shorter_retry_after_does_not_shorten_the_backoff(self) -> None:
        assert error_backoff(4, SECTION, lambda: 0.0, retry_after=0.1) == 8.0
