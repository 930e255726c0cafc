"""Fixtures: a whole daemon on the embedded server, over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest

from streamvisor.config import Config
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.mockapi import MockAPIConfig


def daemon_config(root: Path, registry: str = ":memory:", **env: str) -> Config:
    """A configuration for tests: no API key (embedded server), files under `root`."""
    environ: Mapping[str, str] = {
        "STREAMVISOR_BACKGROUND_REGISTRY_PATH": registry,
        "STREAMVISOR_BACKGROUND_POLL_INTERVAL": "0.05",
        "STREAMVISOR_FILES_ROOTS": f'["{root}"]',
        "STREAMVISOR_LOG_FORMAT": "json",
        **env,
    }
    return Config.load(environ=environ)


#: Fast enough for tests, slow enough that streams and background work are observable.
FAST = MockAPIConfig(token_delay=0.0, poll_after_ms=20)


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    async with open_daemon(daemon_config(tmp_path), mockapi=FAST) as running:
        yield running
