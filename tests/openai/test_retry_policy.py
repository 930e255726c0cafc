"""RetryPolicy arithmetic and the rate-limit headers."""

from __future__ import annotations

import httpx
import pytest

from streamvisor.openai import RateLimits, RetryPolicy, parse_go_duration, parse_retry_after


class TestBackoff:
    def test_the_sdk_formula_with_no_jitter(self) -> None:
        policy = RetryPolicy(random=lambda: 0.0)
        assert [policy.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]

    def test_full_jitter_takes_a_quarter_off(self) -> None:
        policy = RetryPolicy(random=lambda: 1.0)
        assert [policy.backoff(n) for n in range(3)] == [0.375, 0.75, 1.5]

    def test_a_hint_within_the_cap_replaces_the_backoff(self) -> None:
        policy = RetryPolicy(random=lambda: 0.0)
        assert policy.delay(0, {"retry-after": "0"}) == 0.5, "zero is not a usable hint"
        assert policy.delay(0, {"retry-after": "120"}) == 120.0
        assert policy.delay(1, {"retry-after": "121"}) == 1.0

    @pytest.mark.parametrize("bad", [{"max_retries": -1}, {"jitter": 1.5}, {"max_delay": -1}])
    def test_bad_policies_are_rejected(self, bad: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]


class TestRetryAfter:
    def test_milliseconds_win_over_seconds(self) -> None:
        assert parse_retry_after({"retry-after-ms": "20", "retry-after": "5"}) == 0.02

    def test_an_http_date_is_measured_from_now(self) -> None:
        hint = parse_retry_after(
            {"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=lambda: 1767225600.0
        )
        assert hint == 10.0

    @pytest.mark.parametrize("value", ["", "later", "-3"])
    def test_unusable_values_give_no_hint(self, value: str) -> None:
        assert parse_retry_after({"retry-after": value}) is None


class TestRateLimits:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("17ms", 0.017),
            ("7.66s", 7.66),
            ("1m26.4s", 86.4),
            ("6m0s", 360.0),
            ("1h2m", 3720.0),
            ("250us", 0.00025),
            ("3", 3.0),
            ("0s", 0.0),
        ],
    )
    def test_go_durations(self, text: str, seconds: float) -> None:
        assert parse_go_duration(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("text", ["", "ms", "1x", "1m-2s", "s1"])
    def test_bad_go_durations(self, text: str) -> None:
        assert parse_go_duration(text) is None

    def test_all_six_headers_are_parsed(self) -> None:
        headers = httpx.Headers(
            {
                "x-ratelimit-limit-requests": "5000",
                "x-ratelimit-limit-tokens": "800000",
                "x-ratelimit-remaining-requests": "4999",
                "x-ratelimit-remaining-tokens": "799",
                "x-ratelimit-reset-requests": "12ms",
                "x-ratelimit-reset-tokens": "6m0s",
            }
        )
        assert RateLimits.from_headers(headers) == RateLimits(5000, 800000, 4999, 799, 0.012, 360.0)

    def test_no_headers_no_limits(self) -> None:
        assert RateLimits.from_headers(httpx.Headers({"content-type": "x"})) is None
        assert RateLimits.from_headers({}) is None

    def test_garbage_values_are_none_not_errors(self) -> None:
        limits = RateLimits.from_headers({"x-ratelimit-remaining-tokens": "many"})
        assert limits is None
        limits = RateLimits.from_headers(
            {"x-ratelimit-remaining-tokens": "many", "x-ratelimit-limit-tokens": "10"}
        )
        assert limits == RateLimits(limit_tokens=10)
