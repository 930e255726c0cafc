"""bench/cluster_bridge.py runs (at smoke size: it proves the script works, not a number)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The repository's root (tests/cluster/ is two levels below it).
ROOT = Path(__file__).resolve().parents[1].parent


def test_the_bridge_benchmark_runs_and_prints_its_rows() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.cluster_bridge", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for row in ("paced", "saturated", "publish() alone", "us CPU/event", "p99"):
        assert row in done.stdout
