"""Fixtures: a whole daemon on the embedded server, over real loopback HTTP."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamvisor._logging import configure_logging, reset_logging
from streamvisor.config import LogSection
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.mockapi import MockAPIConfig
from streamvisor.testing import FAST_MOCKAPI, daemon_config

#: Fast enough for tests, slow enough that streams and background work are observable.
FAST = MockAPIConfig(**FAST_MOCKAPI)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with open_daemon(daemon_config(tmp_path), mockapi=FAST) as running:
        yield running


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line (structlog and the standard library's, debug and up) as JSON lines, for
    the test to read; the default logging is restored afterwards."""
    buffer = io.StringIO()
    configure_logging(LogSection(format="json", level="debug"), stream=buffer)
    try:
        yield buffer
    finally:
        reset_logging()


def log_events(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON log lines written to ``buffer`` so far, parsed."""
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
