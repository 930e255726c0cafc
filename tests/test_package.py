"""The package's public face."""

from __future__ import annotations

import streamvisor


def test_version_is_exported() -> None:
    """`streamvisor.__version__` is a public name."""
    assert "__version__" in streamvisor.__all__
    assert isinstance(streamvisor.__version__, str)
