"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Real recorded OpenAI streams beside the repository (../shared/fixtures/recorded/SOURCES.md).
RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded"


@pytest.fixture
def recorded_dir() -> Path:
    if not RECORDED.is_dir():
        pytest.fail(f"recorded fixtures not found at {RECORDED}")
    return RECORDED
