"""Reasoning-model rules: a prefix table, not a substring match."""

from __future__ import annotations

from typing import Any

import pytest

from streamvisor.openai import ModelRules, apply_model_rules, is_reasoning_model
from streamvisor.openai._models import rules_for


class TestWhichModelsReason:
    @pytest.mark.parametrize(
        "model",
        [
            "o1",
            "o1-mini",
            "o1-mini-2024-09-12",
            "o3",
            "o3-mini-2025-01-31",
            "o3-pro",
            "o4-mini",
            "o4-mini-deep-research",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
            "gpt-5-2025-08-07",
            "gpt-5-codex",
            "gpt-5.1-codex",
            "gpt-5.1-codex-mini",
            "gpt-5.2-pro",
            "gpt-5.1-chat-latest",
            "gpt-5.3-chat",
            "ft:o4-mini-2025-04-16:org::abc",
            "openai/o3",
        ],
    )
    def test_always_reasoning_models(self, model: str) -> None:
        assert is_reasoning_model(model)
        assert is_reasoning_model(model, "none")

    @pytest.mark.parametrize(
        "model",
        [
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-5-chat",
            "gpt-5-chat-latest",
            "o10-unknown",
            "gpt-5.10",
            "omni-moderation-latest",
            "chatgpt-4o-latest",
        ],
    )
    def test_models_that_do_not_reason(self, model: str) -> None:
        """gpt-4.1 was the Erlang original's mistake; gpt-5-chat does not reason."""
        assert not is_reasoning_model(model)
        assert not is_reasoning_model(model, "high")

    @pytest.mark.parametrize("model", ["gpt-5.1", "gpt-5.2-2025-12-11", "gpt-5.5", "gpt-5.4-mini"])
    def test_opt_in_models_reason_only_with_an_effort_other_than_none(self, model: str) -> None:
        assert not is_reasoning_model(model)
        assert not is_reasoning_model(model, "none")
        assert is_reasoning_model(model, "low")

    def test_gpt_5_6_reasons_unless_effort_is_none(self) -> None:
        assert is_reasoning_model("gpt-5.6")
        assert not is_reasoning_model("gpt-5.6", "none")

    def test_rules_are_validated_records(self) -> None:
        with pytest.raises(ValueError):
            ModelRules("x", "sometimes")  # type: ignore[arg-type]
        assert rules_for("o1-mini") == ModelRules("o1-mini", "always", system_role=False)


SAMPLING = {
    "temperature": 0.2,
    "top_p": 0.9,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.1,
    "logit_bias": {"1": 1},
    "logprobs": True,
    "top_logprobs": 2,
}


class TestApply:
    def test_sampling_params_are_dropped_for_a_reasoning_chat_request(self) -> None:
        body = {"model": "o3", "messages": [], "max_tokens": 50, **SAMPLING}
        new, dropped = apply_model_rules("chat", body)
        assert new == {"model": "o3", "messages": [], "max_completion_tokens": 50}
        assert set(dropped) == {*SAMPLING, "max_tokens"}
        assert body["temperature"] == 0.2, "the input is not mutated"

    def test_an_explicit_max_completion_tokens_wins_over_max_tokens(self) -> None:
        new, _ = apply_model_rules(
            "chat", {"model": "o3", "max_tokens": 5, "max_completion_tokens": 9}
        )
        assert new == {"model": "o3", "max_completion_tokens": 9}

    def test_responses_requests_lose_sampling_params_when_reasoning_is_on(self) -> None:
        body = {"model": "gpt-5.1", "input": "x", "temperature": 1, "reasoning": {"effort": "low"}}
        assert apply_model_rules("responses", body) == (
            {"model": "gpt-5.1", "input": "x", "reasoning": {"effort": "low"}},
            ("temperature",),
        )

    @pytest.mark.parametrize(
        "body",
        [
            {"model": "gpt-5.1", "input": "x", "temperature": 1},
            {"model": "gpt-5.1", "input": "x", "temperature": 1, "reasoning": {"effort": "none"}},
            {"model": "gpt-4.1", "input": "x", "temperature": 1},
            {"model": "gpt-5-chat-latest", "input": "x", "temperature": 1},
        ],
    )
    def test_non_reasoning_requests_keep_their_sampling_params(self, body: dict[str, Any]) -> None:
        assert apply_model_rules("responses", body) == (body, ())

    def test_chat_reasoning_effort_turns_opt_in_models_into_reasoning(self) -> None:
        new, dropped = apply_model_rules(
            "chat", {"model": "gpt-5.2", "reasoning_effort": "high", "top_p": 1, "max_tokens": 3}
        )
        assert dropped == ("top_p", "max_tokens")
        assert new["max_completion_tokens"] == 3

    def test_o1_mini_gets_user_messages_instead_of_system_ones(self) -> None:
        messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
        new, _ = apply_model_rules("chat", {"model": "o1-mini", "messages": messages})
        assert [m["role"] for m in new["messages"]] == ["user", "user"]
        assert messages[0]["role"] == "system"
        new, _ = apply_model_rules("responses", {"model": "o1-mini", "input": messages})
        assert [m["role"] for m in new["input"]] == ["user", "user"]

    def test_other_reasoning_models_keep_their_system_messages(self) -> None:
        messages = [{"role": "system", "content": "x"}]
        new, _ = apply_model_rules("chat", {"model": "o3", "messages": messages})
        assert new["messages"] == messages

    def test_an_unknown_api_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            apply_model_rules("completions", {"model": "o3"})  # type: ignore[arg-type]
