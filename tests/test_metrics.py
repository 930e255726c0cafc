"""The pieces of the daemon's metrics that are plain logic: `Histogram` and `RestartTotals`.

(The metrics moving with a running daemon: ``tests/daemon/test_metrics.py``; ``GET /metrics``:
``tests/gateway/test_metrics.py``.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from streamvisor._metrics import RestartTotals
from streamvisor.actors._histogram import Histogram
from streamvisor.supervisor import TreeNode


def worker(name: str) -> TreeNode:
    return TreeNode(id=None, name=name, label=name, kind="worker", actor="Worker", alive=True)


def supervisor(name: str, restarts: Mapping[str, int], *children: TreeNode) -> TreeNode:
    return TreeNode(
        id=name,
        name=name,
        label=name,
        kind="supervisor",
        actor="Supervisor",
        alive=True,
        children=children,
        child_restarts=restarts,
    )


class TestHistogram:
    def test_a_value_counts_in_the_first_bucket_whose_bound_holds_it(self) -> None:
        """Bounds are inclusive (Prometheus's ``le``); above the last, the +Inf bucket."""
        histogram = Histogram([0.1, 1.0])
        for value in (0.05, 0.1, 0.5, 1.0, 7.0):
            histogram.observe(value)
        assert histogram.cumulative() == [(0.1, 2), (1.0, 4), (math.inf, 5)]
        assert histogram.count == 5
        assert histogram.sum == pytest.approx(8.65)

    @pytest.mark.parametrize("bounds", [[], [1.0, 1.0], [2.0, 1.0]])
    def test_bounds_must_increase_strictly(self, bounds: list[float]) -> None:
        """No bounds, a repeated or a decreasing one: ValueError at construction."""
        with pytest.raises(ValueError, match="strictly increasing"):
            Histogram(bounds)


class TestRestartTotals:
    def test_restarts_are_summed_by_supervisor_and_reason(self) -> None:
        """Each supervisor's restarts of its children, by reason, nested supervisors included."""
        tree = supervisor(
            "root",
            {"crashed:RuntimeError": 2},
            worker("files"),
            supervisor("sessions", {"killed": 3, "crashed:RuntimeError": 1}, worker("session.a")),
        )
        assert RestartTotals().update(tree) == {
            ("root", "crashed:RuntimeError"): 2,
            ("sessions", "killed"): 3,
            ("sessions", "crashed:RuntimeError"): 1,
        }

    def test_growth_is_added_and_a_count_that_went_back_is_a_new_incarnation(self) -> None:
        """A supervisor's count that grows adds the difference; one lower than last seen (the
        supervisor was restarted) adds its whole count: the total never goes down."""
        totals = RestartTotals()
        totals.update(supervisor("root", {}, supervisor("sessions", {"killed": 2})))
        grown = totals.update(supervisor("root", {}, supervisor("sessions", {"killed": 3})))
        assert grown == {("sessions", "killed"): 3}
        again = totals.update(supervisor("root", {}, supervisor("sessions", {"killed": 1})))
        assert again == {("sessions", "killed"): 4}
        steady = totals.update(supervisor("root", {}, supervisor("sessions", {"killed": 1})))
        assert steady == {("sessions", "killed"): 4}

    def test_a_supervisor_gone_keeps_its_restarts_counted(self) -> None:
        """A supervisor that left the tree (being restarted) takes nothing from the totals."""
        totals = RestartTotals()
        totals.update(supervisor("root", {}, supervisor("sessions", {"killed": 2})))
        assert totals.update(supervisor("root", {"killed": 1})) == {
            ("sessions", "killed"): 2,
            ("root", "killed"): 1,
        }
