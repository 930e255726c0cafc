"""`streamvisor.openai.__all__` is the deliberate public surface, and the contract names exist."""

from __future__ import annotations

import streamvisor.openai as wire
from streamvisor.openai import _errors

CONTRACT = {  # docs/contracts.md §2
    "StreamEvent",
    "TERMINAL_TYPES",
    "ChatAccumulator",
    "ResponseAccumulator",
    "ClientSettings",
    "OpenAIClient",
    "EventStream",
    "RetryPolicy",
    "RateLimits",
    "apply_model_rules",
    "ModelRules",
    "is_reasoning_model",
    "OpenAIError",
    "APIError",
    "APIStatusError",
    "RateLimitError",
    "InsufficientQuotaError",
    "APIConnectionError",
    "APITimeoutError",
    "StreamError",
    "StreamInterrupted",
    "OutcomeUnknownError",
    "SequenceError",
    "InvalidRequestError",
}


def test_all_lists_exactly_the_public_names() -> None:
    public = {name for name in vars(wire) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(wire, name)).__name__ == "module"}
    assert set(wire.__all__) == public - modules - {"annotations"}


def test_every_contract_name_is_exported() -> None:
    assert set(wire.__all__) >= CONTRACT


def test_every_error_is_exported_and_rooted_at_openai_error() -> None:
    errors = {n for n in _errors.__all__ if n != "status_error_from"}
    assert errors <= set(wire.__all__)
    for name in errors:
        assert issubclass(getattr(wire, name), wire.OpenAIError)


def test_records_with_dicts_are_still_hashable() -> None:
    event = wire.StreamEvent("keepalive", 1, {"type": "keepalive"})
    assert hash(event) == hash(wire.StreamEvent("keepalive", 1, {}))
    hash(wire.ClientSettings(default_headers={"x": "y"}))
    hash(wire.Polled({"id": "r"}))


def test_terminal_types_match_the_contract() -> None:
    assert {
        "response.completed",
        "response.failed",
        "response.incomplete",
        "response.cancelled",
        "error",
    } == wire.TERMINAL_TYPES
