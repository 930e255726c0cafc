"""The package's public face is deliberate (as httpx's test_exported_members)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

import streamvisor
import streamvisor.actors
import streamvisor.cluster
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
        streamvisor.cluster,
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


#: The repository's root (tests/ is one level below it).
_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", ["src", "tests", "bench"])
def test_nothing_reads_outside_the_repository(folder: str) -> None:
    """A clone alone passes `make test`: no code reaches for a sibling folder of the repository
    (the recordings live in tests/fixtures/recorded/)."""
    sibling = re.compile(r"""\.\./shared|["']shared["']\s*/|parents\[[2-9]\]""")
    offenders = [
        f"{path.relative_to(_ROOT)}:{number}: {line.strip()}"
        for path in sorted((_ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if sibling.search(line) and path.name != "test_package.py"
    ]
    assert offenders == []


def test_the_recordings_are_inside_the_repository() -> None:
    recorded = _ROOT / "tests" / "fixtures" / "recorded"
    assert (recorded / "SOURCES.md").is_file()
    assert len(list(recorded.glob("*.sse"))) >= 13


#: Each layer's one root: every exception a layer exports descends from it (``StopActor`` is the
#: runtime's way for a callback to stop its actor, not an error).
_ROOTS = {
    streamvisor.supervisor: (streamvisor.supervisor.ActorError,),
    streamvisor.openai: (streamvisor.openai.OpenAIError,),
    streamvisor.actors: (streamvisor.actors.ActorsLayerError,),
    streamvisor.gateway: (streamvisor.gateway.GatewayError,),
    streamvisor.mockapi: (streamvisor.mockapi.MockAPIError,),
    streamvisor.cluster: (streamvisor.cluster.ClusterError,),
}


@pytest.mark.parametrize("module", list(_ROOTS), ids=lambda m: m.__name__)
def test_every_exported_exception_descends_from_its_layers_root(module: types.ModuleType) -> None:
    exported = [getattr(module, name) for name in module.__all__]  # type: ignore[attr-defined]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert errors
    strays = [
        e.__name__
        for e in errors
        if not issubclass(e, _ROOTS[module]) and e is not streamvisor.supervisor.StopActor
    ]
    assert strays == []
