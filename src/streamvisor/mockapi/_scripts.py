"""Deterministic replies scripted from the request: scenarios, text, tool calls, refusals.

Both APIs share this: a request becomes a `Script` (what the model "says"), and `_chat` /
`_responses` turn the script into their own wire events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

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
    "schema_example",
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


def schema_example(schema: Any, defs: Mapping[str, Any] | None = None, name: str = "value") -> Any:
    """A deterministic value that satisfies a (simple) JSON schema."""
    if not isinstance(schema, Mapping):
        return f"sample {name}"
    defs = {**(defs or {}), **schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1])
        return schema_example(target, defs, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [
                o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
            ]
            return schema_example((usable or options)[0], defs, name)
    type_ = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(type_, list):
        non_null = [t for t in type_ if t != "null"]
        type_ = non_null[0] if non_null else "null"
    if type_ == "object":
        props = schema.get("properties", {})
        return {key: schema_example(sub, defs, key) for key, sub in props.items()}
    if type_ == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [schema_example(schema.get("items", {}), defs, name) for _ in range(count)]
    if type_ == "integer":
        if "minimum" in schema:
            return int(schema["minimum"])
        if "exclusiveMinimum" in schema:
            return int(schema["exclusiveMinimum"]) + 1
        return 1
    if type_ == "number":
        return float(schema.get("minimum", 1.5))
    if type_ == "boolean":
        return True
    if type_ == "null":
        return None
    fmt = schema.get("format")
    if fmt == "date":
        return "2024-01-01"
    if fmt == "date-time":
        return "2024-01-01T00:00:00Z"
    if fmt == "email":
        return "user@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com"
    return f"sample {name}"


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
        return Script("tools", tool_calls=make_tool_calls(chosen, ids))
    if reasoning:
        return Script("text", echo_text(user_text, scenario), reasoning=reasoning_parts(user_text))
    return Script("text", echo_text(user_text, scenario))


def make_tool_calls(tools: Sequence[Mapping[str, Any]], ids: IdFactory) -> tuple[ToolCall, ...]:
    calls = []
    for tool in tools:
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        args = schema_example(params, None, tool["name"])
        calls.append(ToolCall(ids.alnum("call_", 24), tool["name"], dumps(args)))
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
