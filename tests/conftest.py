"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

#: The recorded OpenAI streams shipped beside the repository (see ../shared/fixtures/recorded/SOURCES.md).
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded"


@pytest.fixture
def recorded_dir() -> Path:
    if not RECORDED.is_dir():
        pytest.fail(f"recorded fixtures not found at {RECORDED}")
    return RECORDED
