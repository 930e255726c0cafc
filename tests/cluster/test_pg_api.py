"""`ClusterStore` is a drop-in `RegistryStore` for the background poller, and the cluster's
errors extend the registry store's tree."""

from __future__ import annotations

import inspect

import pytest

import streamvisor.cluster
from streamvisor.actors import ActorsLayerError
from streamvisor.actors.background._errors import StoreError
from streamvisor.actors.background._store import RegistryStore
from streamvisor.cluster import (
    ClusterStore,
    ClusterStoreError,
    EngineUnavailable,
    Fenced,
    LeaseLost,
    NotOwner,
    PostgresServerError,
)
from streamvisor.cluster._errors import mask_password

#: The registry API the background poller uses, by name (``open`` differs by design).
#: Every public call of `RegistryStore`, its own and inherited (the writes are `RegistryWrites`').
REGISTRY_API = [
    name
    for name in dir(RegistryStore)
    if not name.startswith("_")
    and name != "open"
    and (
        callable(value := inspect.getattr_static(RegistryStore, name))
        or isinstance(value, property)
    )
]


class TestRegistryParity:
    def test_the_registry_api_is_complete(self) -> None:
        assert set(REGISTRY_API) >= {"get", "add_nowait", "record_cursors", "statistics"}
        assert [name for name in REGISTRY_API if not hasattr(ClusterStore, name)] == []

    @pytest.mark.parametrize("name", REGISTRY_API)
    def test_each_call_has_the_same_signature(self, name: str) -> None:
        ours, theirs = getattr(ClusterStore, name), getattr(RegistryStore, name)
        if isinstance(theirs, property):
            assert isinstance(ours, property)
            ours, theirs = ours.fget, theirs.fget
        assert inspect.signature(ours) == inspect.signature(theirs)
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(theirs)


class TestErrors:
    def test_every_exported_store_error_descends_from_the_store_errors(self) -> None:
        from streamvisor.cluster import _errors

        errors = {getattr(_errors, name) for name in _errors.__all__} - {_errors.ClusterError}
        errors |= {PostgresServerError}
        for name in _errors.__all__:
            assert getattr(streamvisor.cluster, name) is getattr(_errors, name)
        assert errors == {
            ClusterStoreError,
            EngineUnavailable,
            Fenced,
            LeaseLost,
            NotOwner,
            PostgresServerError,
        }
        for error in errors - {PostgresServerError}:  # the test server's own, not the store's
            assert issubclass(error, ClusterStoreError)
            assert issubclass(error, StoreError)
            assert issubclass(error, ActorsLayerError)
        assert issubclass(PostgresServerError, _errors.ClusterError)
        assert issubclass(EngineUnavailable, ConnectionError)
        assert issubclass(NotOwner, PermissionError)

    def test_errors_name_the_node_and_the_token(self) -> None:
        fenced = Fenced("n1", 7, "add")
        assert (fenced.node_id, fenced.token, fenced.what) == ("n1", 7, "add")
        assert str(fenced) == "add: node 'n1' is fenced, its token 7 no longer holds a live lease"
        lost = LeaseLost("n1", 7, "it expired before this renewal")
        assert str(lost) == "node 'n1' lost its lease (token 7): it expired before this renewal"

    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("postgresql://u:s3cret@db:5432/x failed", "postgresql://u:***@db:5432/x failed"),
            ("host=db password=s3cret user=u", "host=db password=*** user=u"),
            ("password = 'with space' dbname=x", "password = *** dbname=x"),
            ("postgresql://u@db/x", "postgresql://u@db/x"),
        ],
    )
    def test_a_password_never_shows(self, text: str, shown: str) -> None:
        assert mask_password(text) == shown
        error = EngineUnavailable("get", text, node_id="n1")
        assert "s3cret" not in str(error)
        assert "with space" not in str(error)
