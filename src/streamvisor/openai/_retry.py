"""When to retry, how long to wait, and what the rate-limit headers say.

`RetryPolicy` follows openai-python's (reference §6.4) and adds what a daemon needs: quota errors
are permanent, a `retry-after` beyond the cap is not waited for (the error carries the hint), the
random source is injectable, and all sleeping is done by the caller with `trio.sleep`.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime

import attrs

from ._errors import InsufficientQuotaError

__all__ = ["RateLimits", "RetryPolicy", "parse_go_duration", "parse_retry_after"]

_RETRY_STATUSES = frozenset({408, 409, 429})


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """The server's retry hint in seconds: `retry-after-ms`, else `retry-after` (seconds or an
    HTTP-date, relative to `now()`), else None. Negative or unparsable values give None."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            pass
        else:
            return value if value >= 0 else None
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        value = when.timestamp() - now()
    return value if value >= 0 else None


@attrs.frozen
class RetryPolicy:
    """Which failures are retried and after how long.

    Attributes:
        max_retries: Retries after the first attempt (default 2, so 3 attempts).
        initial_delay: Backoff base in seconds: `min(initial * 2**n, max_delay) * (1 - jitter*r)`.
        max_delay: Backoff cap in seconds.
        jitter: Fraction of the delay removed at random (0.25 → 75 to 100 % of it).
        max_retry_after: A server hint above this (seconds) is not waited for: the error is
            raised with its `.retry_after` so the caller can reschedule.
        random: The random source in [0, 1) (injectable for tests).
        wall_clock: Wall-clock seconds, only to turn an HTTP-date `retry-after` into a delay.
    """

    max_retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    initial_delay: float = attrs.field(default=0.5, validator=_non_negative)
    max_delay: float = attrs.field(default=8.0, validator=_non_negative)
    jitter: float = attrs.field(
        default=0.25, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    max_retry_after: float = attrs.field(default=120.0, validator=_non_negative)
    random: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)
    wall_clock: Callable[[], float] = attrs.field(default=time.time, eq=False, repr=False)

    def backoff(self, retries_taken: int) -> float:
        """The jittered exponential delay before retry number `retries_taken + 1`."""
        base = min(self.initial_delay * 2.0**retries_taken, self.max_delay)
        return base * (1.0 - self.jitter * self.random())

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """The server's hint in seconds, if any (see `parse_retry_after`)."""
        return parse_retry_after(headers, now=self.wall_clock)

    def should_retry_status(
        self, status_code: int, headers: Mapping[str, str], error: Exception | None = None
    ) -> bool:
        """Whether an answer with this status may be retried (ignoring the attempt count).

        `x-should-retry` decides when present; `insufficient_quota` never; then 408, 409, 429
        and >= 500; never when the server asks for a longer wait than `max_retry_after`.
        """
        if isinstance(error, InsufficientQuotaError):
            return False
        flag = headers.get("x-should-retry")
        if flag == "false":
            return False
        hint = self.retry_after(headers)
        if hint is not None and hint > self.max_retry_after:
            return False
        if flag == "true":
            return True
        return status_code in _RETRY_STATUSES or status_code >= 500

    def delay(self, retries_taken: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to sleep before the next attempt: the server's hint when it is within
        `(0, max_retry_after]`, else the backoff."""
        if headers is not None:
            hint = self.retry_after(headers)
            if hint is not None and 0 < hint <= self.max_retry_after:
                return hint
        return self.backoff(retries_taken)


_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float | None:
    """Seconds from a Go duration (`17ms`, `7.66s`, `1m26.4s`, `6m0s`); a bare number is
    seconds; None when it does not parse."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _GO_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(text) and pos > 0 else None


def _int(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _duration(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    return None if raw is None else parse_go_duration(raw)


@attrs.frozen
class RateLimits:
    """The `x-ratelimit-*` headers of one answer (None where absent or unparsable).

    Attributes:
        limit_requests / limit_tokens: The quota per window.
        remaining_requests / remaining_tokens: What is left in the window.
        reset_requests / reset_tokens: Seconds until the window resets.
    """

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits | None:
        """Parse the headers; None when the answer carried no rate-limit header at all."""
        raw = getattr(headers, "raw", None)
        if raw is not None and not any(k[:12].lower() == b"x-ratelimit-" for k, _ in raw):
            return None
        limits = cls(
            limit_requests=_int(headers, "x-ratelimit-limit-requests"),
            limit_tokens=_int(headers, "x-ratelimit-limit-tokens"),
            remaining_requests=_int(headers, "x-ratelimit-remaining-requests"),
            remaining_tokens=_int(headers, "x-ratelimit-remaining-tokens"),
            reset_requests=_duration(headers, "x-ratelimit-reset-requests"),
            reset_tokens=_duration(headers, "x-ratelimit-reset-tokens"),
        )
        return None if limits == _EMPTY else limits


_EMPTY = RateLimits()
