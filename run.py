"""The daemon's command line: `python run.py --help`."""

from __future__ import annotations

import sys

from streamvisor._cli import main

if __name__ == "__main__":
    sys.exit(main())
