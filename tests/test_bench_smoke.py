"""The benchmarks run: each present bench module completes at smoke size and prints its table.

No timing is asserted here (ratios at smoke size mean nothing); `make bench` is for numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench.__main__ import ALONE, MODULES, _load
from bench._common import call_in_subprocess, cpu_seconds, rss_bytes, start_pinned

ROOT = Path(__file__).resolve().parents[1]
PRESENT = [name for name in (*MODULES, *ALONE) if (ROOT / "bench" / f"{name}.py").exists()]


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
        assert "reference is" in done.stdout  # the table's header
        summary = done.stdout.split("== summary ==")[1]
        line = next(line for line in summary.splitlines() if line.startswith(f"bench.{name}:"))
        assert not line.startswith(f"bench.{name}: 0 rows"), line
        assert "targets met" in line

    def test_the_runtime_bench_is_present(self) -> None:
        """The runtime bench ships with the runtime; the others arrive with their layers."""
        assert "runtime" in PRESENT

    def test_an_absent_bench_module_is_reported_as_missing_not_an_error(self) -> None:
        """The dispatcher treats a bench module that is not in the checkout as absent."""
        assert _load("no_such_bench_module") is None


def add(a: int, b: int) -> int:
    """A subprocess target for the helper tests."""
    return a + b


def serve(tag: str) -> None:
    """A stand-in load server: says it is ready, then idles until terminated."""
    print(f"ready {tag}", flush=True)
    time.sleep(120)


class TestBenchHelpers:
    def test_a_function_runs_in_a_fresh_pinned_process_and_returns_its_result(self) -> None:
        """`call_in_subprocess` runs module:function in a new interpreter, result as JSON."""
        assert call_in_subprocess("tests.test_bench_smoke:add", 2, 3, core=0, timeout=30) == 5

    def test_a_failing_subprocess_raises_with_its_stderr(self) -> None:
        """A crash in the child is an error in the parent, with the child's traceback."""
        with pytest.raises(RuntimeError, match="TypeError"):
            call_in_subprocess("tests.test_bench_smoke:add", 1, timeout=30)

    def test_a_background_server_hands_back_its_ready_line_and_is_stopped(self) -> None:
        """`start_pinned` waits for the ready line, and ends the process with the block."""
        with start_pinned("tests.test_bench_smoke:serve", "p1", core=1, ready_prefix="ready") as bg:
            assert bg.ready == "ready p1"
            assert bg.proc.poll() is None
        assert bg.proc.poll() is not None

    def test_resource_readings_describe_this_process(self) -> None:
        """RSS and CPU time are positive numbers for a running interpreter."""
        assert rss_bytes() > 1_000_000
        assert cpu_seconds() > 0
