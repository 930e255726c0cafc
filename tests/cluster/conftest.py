"""Fixtures of the cluster tests, one module per engine (each imported on its own line)."""

from .conftest_nats import *  # noqa: F403
from .conftest_pg import *  # noqa: F403
