"""Reasoning-model rules: which models reason, and what their requests must not carry.

A prefix table (longest prefix wins, matched at a `-` boundary), not a substring list: the Erlang
original's substring match made gpt-4.1 a reasoning model. Unknown models get no rules; the client
still recovers from a 400 `unsupported_parameter`/`unsupported_value` by retrying once without
the named parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = [
    "SAMPLING_PARAMS",
    "ModelRules",
    "apply_model_rules",
    "is_reasoning_model",
    "rules_for",
]

#: Rejected by reasoning models while reasoning is on.
SAMPLING_PARAMS: tuple[str, ...] = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
)

Reasoning = Literal["always", "opt_in", "default_on", "never"]


@attrs.frozen
class ModelRules:
    """What one family of models accepts.

    Attributes:
        prefix: The model-name prefix this row covers (matched exactly or before a `-`).
        reasoning: "always"; "opt_in" (only with an effort other than "none"); "default_on"
            (unless the effort is "none"); "never".
        system_role: False when the model rejects `system`/`developer` messages (o1-mini).
    """

    prefix: str = attrs.field(validator=attrs.validators.min_len(1))
    reasoning: Reasoning = attrs.field(
        validator=attrs.validators.in_(("always", "opt_in", "default_on", "never"))
    )
    system_role: bool = True

    def reasons(self, effort: str | None) -> bool:
        """Whether a request with this reasoning effort (None = unset) reasons."""
        if self.reasoning == "always":
            return True
        if self.reasoning == "opt_in":
            return effort is not None and effort != "none"
        if self.reasoning == "default_on":
            return effort != "none"
        return False


def _table() -> dict[str, ModelRules]:
    rows = [
        ModelRules("o1", "always"),
        ModelRules("o1-mini", "always", system_role=False),
        ModelRules("o3", "always"),
        ModelRules("o4-mini", "always"),
        ModelRules("gpt-5", "always"),  # gpt-5, gpt-5-mini, gpt-5-nano, gpt-5-codex, gpt-5-pro
        ModelRules("gpt-5-chat", "never"),
        ModelRules("gpt-5.6", "default_on"),
    ]
    for minor in range(1, 6):
        rows.append(ModelRules(f"gpt-5.{minor}", "opt_in"))
        rows.extend(ModelRules(f"gpt-5.{minor}-{v}", "always") for v in ("pro", "codex", "chat"))
    return {row.prefix: row for row in rows}


_TABLE = _table()
_NO_RULES = ModelRules("*", "never")


def rules_for(model: str) -> ModelRules | None:
    """The table row for a model id (dated snapshots and `ft:` ids included), or None."""
    name = model.strip().lower()
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    name = name.rsplit("/", 1)[-1]
    while name:
        row = _TABLE.get(name)
        if row is not None:
            return row
        cut = name.rfind("-")
        if cut <= 0:
            return None
        name = name[:cut]
    return None


def is_reasoning_model(model: str, effort: str | None = None) -> bool:
    """Whether `model` reasons with this effort (None = unset): o-series, gpt-5 (not
    gpt-5-chat), gpt-5.x pro/codex/chat always; gpt-5.1 to 5.5 only with an effort set."""
    return (rules_for(model) or _NO_RULES).reasons(effort)


def _effort(api: str, body: Mapping[str, Any]) -> str | None:
    if api == "chat":
        value = body.get("reasoning_effort")
    else:
        reasoning = body.get("reasoning")
        value = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    return value if isinstance(value, str) else None


def _user_role(messages: Any) -> tuple[Any, bool]:
    if not isinstance(messages, list):
        return messages, False
    changed = False
    out = []
    for msg in messages:
        if isinstance(msg, Mapping) and msg.get("role") in ("system", "developer"):
            msg = {**msg, "role": "user"}
            changed = True
        out.append(msg)
    return out, changed


def apply_model_rules(
    api: Literal["chat", "responses"], body: Mapping[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Adapt a create body to its model; return `(new_body, dropped_params)`.

    For a reasoning request: drops the sampling parameters (`SAMPLING_PARAMS`) and, for Chat,
    moves `max_tokens` to `max_completion_tokens` (reported as dropped `max_tokens`). For
    o1-mini, `system`/`developer` messages become `user`. The input is never mutated.

    Raises:
        ValueError: `api` is neither "chat" nor "responses".
    """
    if api not in ("chat", "responses"):
        raise ValueError(f"api must be 'chat' or 'responses', got {api!r}")
    new = dict(body)
    model = new.get("model")
    rules = rules_for(model) if isinstance(model, str) else None
    if rules is None:
        return new, ()
    dropped: list[str] = []
    if rules.reasons(_effort(api, new)):
        for name in SAMPLING_PARAMS:
            if name in new:
                del new[name]
                dropped.append(name)
        if api == "chat" and "max_tokens" in new:
            value = new.pop("max_tokens")
            new.setdefault("max_completion_tokens", value)
            dropped.append("max_tokens")
    if not rules.system_role:
        key = "messages" if api == "chat" else "input"
        converted, changed = _user_role(new.get(key))
        if changed:
            new[key] = converted
    return new, tuple(dropped)
