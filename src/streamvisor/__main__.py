"""``python -m streamvisor``: the daemon's command line, as ``python run.py``."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
