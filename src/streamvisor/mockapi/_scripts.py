"""Deterministic replies scripted from the request: scenarios, text, tool calls, refusals.

Both APIs share this: a request becomes a `Script` (what the model "says"), and `_chat` /
`_responses` turn the script into their own wire events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

from ._arguments import arguments_from_text
from ._errors import InvalidScenario
from ._wire import IdFactory, dumps, split_tokens

__all__ = [
    "REFUSAL_TEXT",
    "SCENARIOS",
    "Scenario",
    "Script",
    "ToolCall",
    "count_tokens",
    "echo_text",
    "is_reasoning_model",
    "json_arguments_tokens",
    "make_tool_calls",
    "parse_scenario",
    "pick_tools",
    "reasoning_parts",
    "reply_script",
    "text_of",
    "tool_result_text",
]

SCENARIOS = ("echo", "tools", "refusal", "reasoning", "long", "incomplete", "failed", "replay")
REFUSAL_TEXT = "I'm sorry, I can't assist with that request."
_LOREM = (
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
)


@attrs.frozen
class Scenario:
    """A parsed scenario name: `echo`, `long:40`, `replay:02_chat_text_usage`, ..."""

    name: str
    arg: str | None = None

    @property
    def long_tokens(self) -> int:
        return int(self.arg or "0") if self.name == "long" else 0


def parse_scenario(value: object) -> Scenario:
    """Parse a scenario string. Raises `InvalidScenario` for an unknown or malformed one."""
    if value is None or value == "":
        return Scenario("echo")
    if not isinstance(value, str):
        raise InvalidScenario(f"scenario must be a string, got {value!r}")
    name, _, arg = value.partition(":")
    name = name.strip()
    if name not in SCENARIOS:
        raise InvalidScenario(f"unknown scenario {value!r}; known: {', '.join(SCENARIOS)}")
    if name == "long":
        if not arg.isdigit() or int(arg) < 1:
            raise InvalidScenario(f"long:N needs a positive token count, got {value!r}")
    elif name == "replay":
        if not arg or "/" in arg or "\\" in arg or arg.startswith("."):
            raise InvalidScenario(f"replay needs a recording file stem, got {value!r}")
    elif arg:
        raise InvalidScenario(f"scenario {name!r} takes no argument, got {value!r}")
    return Scenario(name, arg or None)


def is_reasoning_model(model: str, effort: object = None) -> bool:
    """True when `model` reasons on this request (o-series, gpt-5 family; gpt-5-chat never).

    The gpt-5.N models reason only when an effort other than "none" is asked for.
    """
    name = model.lower()
    if name.startswith(("o1", "o3", "o4")):
        return True
    if not name.startswith("gpt-5"):
        return False
    if "chat" in name and not name.startswith("gpt-5."):
        return False
    if name.startswith("gpt-5."):
        return isinstance(effort, str) and effort != "none"
    return True


@attrs.frozen
class ToolCall:
    call_id: str
    name: str
    arguments: str
    #: The parameters the user's words did not supply: their values are made up.
    made_up: tuple[str, ...] = ()


@attrs.frozen
class Script:
    """What the model answers: text, a refusal, tool calls, or a failure."""

    kind: Literal["text", "refusal", "tools", "failed"]
    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: tuple[str, ...] = ()

    @property
    def tokens(self) -> list[str]:
        return split_tokens(self.text)


def text_of(content: Any) -> str:
    """The plain text of a message content (string or list of parts, either API)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, Mapping):
                value = part.get("text") or part.get("refusal")
                if isinstance(value, str):
                    pieces.append(value)
            elif isinstance(part, str):
                pieces.append(part)
        return " ".join(pieces)
    return ""


def echo_text(user_text: str, scenario: Scenario) -> str:
    if scenario.name == "long":
        words = [_LOREM[i % len(_LOREM)] for i in range(scenario.long_tokens)]
        return " ".join(words)
    user_text = " ".join(user_text.split())
    if not user_text:
        return "Hello! How can I help you today?"
    return f"You said: {user_text}"


def tool_result_text(outputs: Sequence[tuple[str, str]]) -> str:
    described = [f"{name} returned {output}" if name else output for name, output in outputs]
    return "Here is what the tools returned: " + "; ".join(described) + "."


def reasoning_parts(user_text: str) -> tuple[str, ...]:
    words = len(user_text.split())
    return (
        f"**Reading the request**\n\nThe user wrote {words} words; I should answer them directly.",
        "**Answering**\n\nI will reply by repeating what the user said.",
    )


def pick_tools(
    tools: Sequence[Mapping[str, Any]],
    tool_choice: Any,
    parallel: bool,
    scenario: Scenario,
) -> list[Mapping[str, Any]]:
    """The tools to call: none, the chosen one, the first, or all (scenario `tools`)."""
    if not tools or tool_choice == "none":
        return []
    if isinstance(tool_choice, Mapping):
        wanted = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
        return [t for t in tools if t["name"] == wanted][:1]
    if scenario.name == "tools" and parallel:
        return list(tools)
    return [tools[0]]


def reply_script(
    turns: Sequence[Any],
    scenario: Scenario,
    tools: Sequence[Mapping[str, Any]],
    tool_choice: Any,
    parallel: Any,
    ids: IdFactory,
    *,
    reasoning: bool = False,
) -> Script:
    """The reply to a request whose last turn is not tool output (both APIs): a refusal or a
    failure (by scenario), the tools `pick_tools` chooses, or the echo of the last user turn of
    ``turns`` (with `reasoning_parts` when ``reasoning``)."""
    user_text = ""
    for turn in reversed(turns):
        if isinstance(turn, Mapping) and turn.get("role") == "user":
            user_text = text_of(turn.get("content"))
            break
    if scenario.name == "refusal":
        return Script("refusal", REFUSAL_TEXT)
    if scenario.name == "failed":
        return Script("failed", echo_text(user_text, scenario))
    chosen = pick_tools(tools, tool_choice, parallel, scenario)
    if chosen:
        return Script("tools", tool_calls=make_tool_calls(chosen, ids, user_text))
    if reasoning:
        return Script("text", echo_text(user_text, scenario), reasoning=reasoning_parts(user_text))
    return Script("text", echo_text(user_text, scenario))


def make_tool_calls(
    tools: Sequence[Mapping[str, Any]], ids: IdFactory, user_text: str = ""
) -> tuple[ToolCall, ...]:
    """A call of each tool, its arguments taken from ``user_text`` where it names them
    (`arguments_from_text`) and made up otherwise."""
    calls = []
    for tool in tools:
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        derived = arguments_from_text(params, user_text)
        call_id = ids.alnum("call_", 24)
        calls.append(ToolCall(call_id, tool["name"], dumps(derived.arguments), derived.made_up))
    return tuple(calls)


def count_tokens(value: Any) -> int:
    """A deterministic stand-in for a tokenizer: word tokens of all strings in `value`."""
    if isinstance(value, str):
        return len(split_tokens(value))
    if isinstance(value, Mapping):
        return sum(count_tokens(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_tokens(v) for v in value)
    return 0


def json_arguments_tokens(arguments: str) -> list[str]:
    """Split a JSON arguments string into stream pieces, as the API streams them."""
    pieces = split_tokens(arguments)
    return pieces or [arguments]
