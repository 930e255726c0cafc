"""Shared test configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streamvisor._logging import reset_logging
from tests._recorded import RECORDED


@pytest.fixture
def recorded_dir() -> Path:
    if not RECORDED.is_dir():
        pytest.fail(f"recorded fixtures not found at {RECORDED}")
    return RECORDED


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    """Logging is process-global: a test (or a daemon it opens, which applies ``[log]`` when
    structlog is unconfigured) must not change what the next test's logs look like."""
    yield
    reset_logging()
