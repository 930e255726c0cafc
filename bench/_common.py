"""Shared benchmark machinery: result tables, resource readings, pinned subprocesses.

Every row compares a measurement with a reference measured side by side in the same run (a bare
trio equivalent, or the official SDK), so a row's *ratio* is meaningful on any machine; absolute
numbers are printed for context only.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs
import structlog

try:
    import psutil  # type: ignore[import-untyped]
except ImportError:  # the `bench` extra is not installed: fall back to /proc and resource
    psutil = None

__all__ = [
    "Background",
    "Row",
    "Table",
    "Target",
    "at_least",
    "at_most",
    "call_in_subprocess",
    "cpu_seconds",
    "pin_args",
    "pin_self",
    "quiet_logs",
    "rss_bytes",
    "start_pinned",
]


# ---------------------------------------------------------------------------------------------
# Tables


@attrs.frozen
class Target:
    """A bound on a row's ratio (value / reference)."""

    op: str = attrs.field(validator=attrs.validators.in_([">=", "<="]))
    bound: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


def at_least(bound: float) -> Target:
    """Target: the ratio must be at least `bound` (higher is better)."""
    return Target(">=", bound)


def at_most(bound: float) -> Target:
    """Target: the ratio must be at most `bound` (lower is better)."""
    return Target("<=", bound)


@attrs.frozen
class Row:
    """One measurement, its side-by-side reference and the target for their ratio."""

    name: str
    value: float
    unit: str
    reference: float | None = None
    reference_name: str = ""
    target: Target | None = None

    @property
    def ratio(self) -> float | None:
        if self.reference is None or self.reference == 0:
            return None
        return self.value / self.reference

    @property
    def passed(self) -> bool | None:
        """True/False against the target, None when the row has no target."""
        ratio = self.ratio
        if self.target is None or ratio is None:
            return None
        return self.target.met(ratio)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


_COLUMNS = (("name", 52), ("value", 14), ("unit", 10), ("reference", 13), ("ratio", 7))


class Table:
    """Rows printed as they are measured, with a pass/fail mark per target, and a summary."""

    def __init__(self, title: str, *, out: Callable[[str], None] = print) -> None:
        self.title = title
        self.rows: list[Row] = []
        self._out = out
        self._header_done = False

    @classmethod
    def for_run(cls, name: str, *, smoke: bool) -> Table:
        """The table of one benchmark, its title marking a run at smoke sizes."""
        return cls(f"{name}{' (smoke sizes)' if smoke else ''}")

    def _header(self) -> None:
        self._out("")
        self._out(f"== {self.title} ==")
        head = "".join(
            label.ljust(width) if label in ("name", "unit") else label.rjust(width) + " "
            for label, width in _COLUMNS
        )
        self._out(f"{head} {'target':<8} mark  reference is")
        self._header_done = True

    def add(self, row: Row) -> Row:
        """Record and print a row."""
        if not self._header_done:
            self._header()
        self.rows.append(row)
        mark = {True: "PASS", False: "FAIL", None: "-"}[row.passed]
        target = str(row.target) if row.target else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        self._out(
            f"{row.name:<52}{_fmt(row.value):>14} {row.unit:<10}{_fmt(row.reference):>13} "
            f"{ratio:>7}  {target:<8} {mark:<5} {row.reference_name}"
        )
        return row

    def note(self, text: str) -> None:
        """Print a free-form line under the table (a skipped row, a caveat)."""
        if not self._header_done:
            self._header()
        self._out(f"  {text}")

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if row.passed is False]

    def summary(self) -> str:
        with_target = [row for row in self.rows if row.passed is not None]
        return (
            f"{len(self.rows)} rows, "
            f"{len(with_target) - len(self.failed)}/{len(with_target)} targets met"
        )


def quiet_logs() -> None:
    """Drop log events below CRITICAL: benchmarks measure the work, not a terminal's speed."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


# ---------------------------------------------------------------------------------------------
# Resource readings


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (default: this one), in bytes."""
    if psutil is not None:
        return int(psutil.Process(pid).memory_info().rss)
    with open(f"/proc/{pid or 'self'}/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time consumed by a process (default: this one), in seconds."""
    if psutil is not None:
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    if pid is None:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# ---------------------------------------------------------------------------------------------
# Subprocesses, optionally pinned to one core


def _nth_allowed_core(core: int) -> int:
    """The `core`-th (modulo their number) of the cores this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[core % len(allowed)]


def pin_args(core: int | None) -> list[str]:
    """The `taskset` prefix pinning a command to `core` (modulo the cores we may use), if any."""
    if core is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(_nth_allowed_core(core))]


def pin_self(core: int) -> set[int] | None:
    """Pin this process to `core` (modulo the allowed cores); return the previous affinity, or
    None where the platform cannot pin (nothing is changed then)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    previous = set(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {_nth_allowed_core(core)})
    return previous


def _child_command(target: str, args: Sequence[Any], core: int | None) -> list[str]:
    payload = json.dumps({"target": target, "args": list(args)})
    code = "from bench._common import _child_main; _child_main()"
    return [*pin_args(core), sys.executable, "-c", code, payload]


def _project_env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH", "")]))
    return env


def _child_main() -> None:
    """Subprocess entry point: run `module:function(*args)` and print its result as JSON."""
    quiet_logs()
    spec = json.loads(sys.argv[1])
    module_name, _, function_name = spec["target"].partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(*spec["args"])
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def call_in_subprocess(
    target: str, *args: Any, core: int | None = None, timeout: float = 120.0
) -> Any:
    """Run ``module:function(*args)`` in a fresh Python process and return its JSON result.

    A fresh process keeps measurements (RSS especially) from polluting each other. `core` pins it
    with `taskset` when available. Raises `RuntimeError` with the child's stderr if it fails.
    """
    done = subprocess.run(
        _child_command(target, args, core),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_project_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed (exit {done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@attrs.frozen
class Background:
    """A background process started by `start_pinned`."""

    proc: subprocess.Popen[str]
    #: The line the child printed to say it was ready (e.g. with the port it listens on).
    ready: str | None


@contextlib.contextmanager
def start_pinned(
    target: str,
    *args: Any,
    core: int | None = None,
    ready_prefix: str | None = None,
    ready_timeout: float = 30.0,
) -> Iterator[Background]:
    """Run ``module:function(*args)`` in a background process (a load server) for the block.

    `core` pins it with `taskset` when available. If `ready_prefix` is given, waits until the child
    prints a line starting with it, and hands that line back as ``.ready``. Raises `RuntimeError`
    if the child exits or stays silent for `ready_timeout` seconds first. When the block ends the
    child is terminated, and killed if it is still alive 5 s later.
    """
    proc = subprocess.Popen(
        _child_command(target, args, core),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_project_env(),
    )
    try:
        ready = None if ready_prefix is None else wait_for_line(proc, ready_prefix, ready_timeout)
        yield Background(proc, ready)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    """The first line ``proc`` prints that starts with ``prefix`` (its other lines are skipped);
    RuntimeError if it exits first or says nothing of the kind within ``timeout`` seconds."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([proc.stdout], [], [], remaining)
        if not readable:
            break
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{proc.args!r} exited before printing {prefix!r}")
        if line.startswith(prefix):
            return line.rstrip("\n")
    raise RuntimeError(f"{proc.args!r} did not print {prefix!r} within {timeout} s")
