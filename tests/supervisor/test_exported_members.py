"""The package's public surface is deliberate (as httpx's test_exported_members)."""

from __future__ import annotations

import pytest

import streamvisor.supervisor as sup
import streamvisor.testing as testing


@pytest.mark.parametrize("module", [sup, testing])
def test_all_lists_exactly_the_public_names(module: object) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith(module.__name__)  # type: ignore[attr-defined]
    }
    assert set(module.__all__) >= public  # type: ignore[attr-defined]
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name)


def test_the_supervisor_package_exports_the_contract_names() -> None:
    contract = [
        "Actor",
        "ActorRef",
        "Caller",
        "NoReply",
        "StopActor",
        "ExitReason",
        "ChildSpec",
        "Restart",
        "ChildType",
        "Strategy",
        "AutoShutdown",
        "Supervisor",
        "SupervisorRef",
        "start_supervisor",
        "open_supervisor",
        "DynamicSupervisor",
        "Registry",
        "Down",
        "Exit",
        "ActorError",
        "CallTimeout",
        "NoSuchActor",
        "ActorExited",
        "DuplicateChildId",
        "InvalidChildSpec",
    ]
    assert set(contract) <= set(sup.__all__)


def test_errors_subclass_the_builtins_they_specialise() -> None:
    assert issubclass(sup.CallTimeout, TimeoutError)
    assert issubclass(sup.NoSuchActor, LookupError)
    assert issubclass(sup.ChildNotFound, LookupError)
    assert issubclass(sup.DuplicateChildId, ValueError)
    assert issubclass(sup.InvalidChildSpec, ValueError)
    assert issubclass(sup.InvalidSupervisorFlags, ValueError)
    assert issubclass(sup.CallingSelf, RuntimeError)


def test_an_ActorRef_comes_only_from_starting_an_actor() -> None:
    with pytest.raises(TypeError):
        sup.ActorRef()
