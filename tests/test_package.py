"""The package's public face is deliberate (as httpx's test_exported_members)."""

from __future__ import annotations

import types

import pytest

import streamvisor
import streamvisor.actors
import streamvisor.gateway
import streamvisor.mockapi
import streamvisor.openai
import streamvisor.supervisor


def test_version_is_exported() -> None:
    """`streamvisor.__version__` is a public name."""
    assert "__version__" in streamvisor.__all__
    assert isinstance(streamvisor.__version__, str)


@pytest.mark.parametrize(
    "module",
    [
        streamvisor,
        streamvisor.actors,
        streamvisor.gateway,
        streamvisor.mockapi,
        streamvisor.openai,
        streamvisor.supervisor,
    ],
)
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    """Every public name bound in the module is in `__all__`, and `__all__` names exist.

    Submodules count only when `__all__` lists them (``streamvisor.openai``); the implicit
    bindings of ``from .config import ...`` (``streamvisor.config``) are modules, not API names.
    """
    exported = set(module.__all__)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "annotations"  # the __future__ feature
        and not (isinstance(value, types.ModuleType) and name not in exported)
    }
    assert exported - {"__version__"} == public
    for name in exported:
        assert hasattr(module, name), name


def test_the_design_api_is_reachable_from_the_top() -> None:
    """The names DESIGN.md's example uses exist at the top level."""
    for name in ("Config", "open_daemon", "format_stream_event", "handle_stream_events"):
        assert hasattr(streamvisor, name)
    assert streamvisor.supervisor.Actor is not None
