"""Fixtures for the runtime's conformance tests."""

from __future__ import annotations

import pytest

from streamvisor.testing import Trace


@pytest.fixture
def trace() -> Trace:
    return Trace()
