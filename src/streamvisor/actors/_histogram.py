"""`Histogram`: observations counted into fixed buckets, for a metrics scrape to read.

A plain list of counts and a float sum, written by the one thread that observes (the trio
thread) and read at scrape time: no lock, no call into a metrics library per observation. The
daemon's metrics collector (``streamvisor._metrics``) turns it into a Prometheus histogram.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["COMMIT_BUCKETS", "DELIVERY_BUCKETS", "Histogram"]

#: Upper bounds (seconds) for an event's delivery: from its network chunk's arrival to its
#: publication on the bus. Decoding and publishing take microseconds; the scheduler's turns
#: under load and a durable stream's first commit take milliseconds.
DELIVERY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
#: Upper bounds (seconds) for one group commit of the registry (a transaction and its fsync).
COMMIT_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Histogram:
    """Counts of observations per bucket (upper bounds inclusive, as Prometheus's ``le``) and
    their sum. Hot paths may inline `observe`: ``counts[bisect_left(bounds, v)] += 1``;
    ``sum += v``.

    Raises ``ValueError`` for no bounds or bounds that are not strictly increasing.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(float(b) for b in bounds)
        if not self.bounds or any(
            a >= b for a, b in zip(self.bounds, self.bounds[1:], strict=False)
        ):
            raise ValueError(f"bounds must be strictly increasing, got {self.bounds!r}")
        #: One count per bound, then the count above the last bound.
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} sum={self.sum:.6f}>"

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """How many observations were counted."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` per bucket, ending with ``(inf, count)``."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out
