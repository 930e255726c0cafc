"""``python -m bench [runtime|wire|daemon|front_door|cluster|durable|metrics|all] [--smoke]``: run
benchmark modules, print tables. ``daemon`` includes the ``durable`` rows (the registry under 1,000
durable streams); ``durable`` runs them alone; ``metrics`` (what metrics cost per event) runs
only alone."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from types import ModuleType

from bench._common import quiet_logs

#: Every benchmark module, in the order `all` runs them.
MODULES = ("runtime", "wire", "daemon", "front_door", "cluster")
#: Modules that can also run alone (``daemon`` runs their rows too).
ALONE = ("durable", "metrics")


def _load(name: str) -> ModuleType | None:
    """The module `bench.<name>`, or None if it is not there (yet)."""
    try:
        return importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"bench.{name}":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("which", nargs="?", default="all", choices=[*MODULES, *ALONE, "all"])
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes: prove the benches run, measure nothing"
    )
    args = parser.parse_args(argv)
    quiet_logs()
    names = MODULES if args.which == "all" else (args.which,)
    summaries: list[str] = []
    missed = 0
    for name in names:
        module = _load(name)
        if module is None:
            line = f"bench.{name}: not present in this checkout, skipped"
            print(f"\n{line}")
            summaries.append(line)
            continue
        started = time.perf_counter()
        table = module.main(smoke=args.smoke)
        missed += len(table.failed)
        elapsed = time.perf_counter() - started
        summaries.append(f"bench.{name}: {table.summary()} ({elapsed:.1f} s)")
    print("\n== summary ==")
    for line in summaries:
        print(line)
    if args.smoke:
        print("(smoke sizes: the ratios are not meaningful)")
    elif missed:
        print(f"{missed} target(s) missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
