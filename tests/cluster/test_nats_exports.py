"""The cluster package's NATS face is deliberate, and its errors form one tree."""

from __future__ import annotations

import streamvisor.cluster
from streamvisor.cluster import BridgeError, _bridge, _bridge_errors, _nats_server


def test_every_nats_name_is_exported_from_the_package() -> None:
    for module in (_bridge, _bridge_errors, _nats_server):
        for name in module.__all__:
            assert name in streamvisor.cluster.__all__, name
            assert getattr(streamvisor.cluster, name) is getattr(module, name)


def test_every_bridge_error_descends_from_bridge_error_and_a_builtin() -> None:
    """`except BridgeError` catches them all; `except TimeoutError` etc. still works."""
    errors = [getattr(_bridge_errors, name) for name in _bridge_errors.__all__]
    for error in errors:
        assert issubclass(error, BridgeError), error
        assert error is BridgeError or len(error.__mro__) > 3, error
