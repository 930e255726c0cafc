"""The benchmarks run: each present bench module completes at smoke size and prints its table.

No timing is asserted here (ratios at smoke size mean nothing); `make bench` is for numbers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.__main__ import MODULES, _load

ROOT = Path(__file__).resolve().parents[1]
PRESENT = [name for name in MODULES if (ROOT / "bench" / f"{name}.py").exists()]


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class TestBenchSmoke:
    @pytest.mark.parametrize("name", PRESENT)
    def test_each_present_bench_module_completes_and_prints_its_table(self, name: str) -> None:
        """`python -m bench NAME --smoke` exits 0 and prints a table with rows and a summary."""
        done = run_bench(name, "--smoke")
        assert done.returncode == 0, done.stderr
        assert f"== {name}" in done.stdout
        assert "reference is" in done.stdout  # the table header
        assert "== summary ==" in done.stdout
        assert f"{name} (smoke sizes):" in done.stdout

    def test_the_runtime_bench_is_present(self) -> None:
        """The runtime bench ships with the runtime; the others arrive with their layers."""
        assert "runtime" in PRESENT

    def test_an_absent_bench_module_is_reported_as_missing_not_an_error(self) -> None:
        """The dispatcher treats a bench module that is not in the checkout as absent."""
        assert _load("no_such_bench_module") is None
