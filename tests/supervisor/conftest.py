"""Fixtures for the runtime's conformance tests."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.testing import Trace

#: Seconds of virtual time (under a MockClock) or of real time before a test counts as hung.
MOCK_HANG_LIMIT = 1_000_000.0
REAL_HANG_LIMIT = 60.0


@pytest.fixture
def trace() -> Trace:
    return Trace()


def _hang_guard(test: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Run the test under ``trio.fail_after``: under ``autojump_clock`` a test stuck on a wait
    without deadline would otherwise never wake; the far deadline makes the clock jump to it and
    the test fail with ``TooSlowError`` instead of hanging the suite."""

    @functools.wraps(test)
    async def guarded(*args: Any, **kwargs: Any) -> None:
        mock = isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)
        with trio.fail_after(MOCK_HANG_LIMIT if mock else REAL_HANG_LIMIT):
            await test(*args, **kwargs)

    return guarded


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and inspect.iscoroutinefunction(item.obj)
            and "tests/supervisor/" in str(item.path).replace("\\", "/")
        ):
            item.obj = _hang_guard(item.obj)
