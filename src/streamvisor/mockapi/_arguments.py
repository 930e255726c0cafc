"""Tool-call arguments taken from the user's words, where they can be.

The embedded server is no model, but a tool call whose arguments ignore the question ("1.5 add
1.5" for "12.5 multiplied by 4") misleads whoever watches it. `arguments_from_text` fills a tool's
parameters from the last user message, deterministically and always valid against the schema:

* numbers (``12.5``, ``-3``, ``1,000``), in the order they appear, go to the ``number`` and
  ``integer`` parameters that accept them (an integer parameter takes only whole numbers; bounds
  are respected);
* an arithmetic operation named in words or symbols (``multiplied by``, ``plus``, ``*``, ``/``)
  goes to a string parameter whose enum names one (``multiply``, ``mul``, ``times``, ``*``, ...);
* any other enum value the text names as a word (case-insensitive) goes to its parameter;
* a quoted phrase, else a salient word (a capitalised word that does not start a sentence, such
  as ``Paris`` or ``UTC``), goes to a free string parameter, one each, in order.

Every other parameter gets its default, else `schema_example`'s made-up value, which
`DerivedArguments.made_up` names, so that whoever shows the call can say so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = ["DerivedArguments", "arguments_from_text", "schema_example"]


@attrs.frozen
class DerivedArguments:
    """A tool call's arguments and which of them no word of the request supplied."""

    #: The arguments object (valid against the tool's parameters schema).
    arguments: Any
    #: The top-level parameters whose values are made up (`schema_example`), in schema order.
    made_up: tuple[str, ...] = ()


#: Bounds on what a client's schema can make the server build or scan (the schema is the
#: client's: a ``$ref`` cycle, ``minItems: 10**9`` or a huge enum must cost next to nothing).
_MAX_DEPTH: Final = 16
_MAX_ITEMS: Final = 8
_MAX_CHARS: Final = 1024
_MAX_PARAMETERS: Final = 256
_MAX_ENUM: Final = 1024
#: Characters of the user's message looked at (a question names its arguments early).
_MAX_TEXT: Final = 4096


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(value: Any, default: int) -> int:
    """A schema's count keyword (``minItems``, ``minLength``...) if it is one, else ``default``."""
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def schema_example(
    schema: Any, defs: Mapping[str, Any] | None = None, name: str = "value", _depth: int = 0
) -> Any:
    """A deterministic value that satisfies a (simple) JSON schema -- within bounds: nesting
    beyond 16 levels (a ``$ref`` cycle) gives null, arrays at most 8 items, strings at most
    1,024 characters, whatever the schema asks."""
    if _depth > _MAX_DEPTH:
        return None
    if not isinstance(schema, Mapping):
        return f"sample {name}"
    deeper = _depth + 1
    defs = {
        **(defs or {}),
        **_mapping(schema.get("$defs")),
        **_mapping(schema.get("definitions")),
    }
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = defs.get(schema["$ref"].rsplit("/", 1)[-1])
        return schema_example(target, defs, name, deeper)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [
                o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
            ]
            return schema_example((usable or options)[0], defs, name, deeper)
    type_ = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(type_, list):
        non_null = [t for t in type_ if t != "null"]
        type_ = non_null[0] if non_null else "null"
    if type_ == "object":
        props = list(_mapping(schema.get("properties")).items())[:_MAX_PARAMETERS]
        return {key: schema_example(sub, defs, key, deeper) for key, sub in props}
    if type_ == "array":
        count = min(max(1, _count(schema.get("minItems"), 1)), _MAX_ITEMS)
        return [schema_example(schema.get("items", {}), defs, name, deeper) for _ in range(count)]
    if type_ == "integer":
        low, above = _finite(schema.get("minimum")), _finite(schema.get("exclusiveMinimum"))
        if low is not None:
            value = math.ceil(low)
        elif above is not None:
            value = math.floor(above) + 1
        else:
            value = 1
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            value = -(-value // step) * step  # the first multiple at or above it
        return value
    if type_ == "number":
        low = _finite(schema.get("minimum"))
        return float(low) if low is not None else 1.5
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
    most = _count(schema.get("maxLength"), _MAX_CHARS)
    text = f"sample {name}"[:most]
    return text.ljust(min(_count(schema.get("minLength"), 0), _MAX_CHARS), "x")


#: A number as people write it: ``4``, ``-3``, ``12.5``, ``1,000``.
_NUMBER: Final = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")

#: Each operation: how the text names it, and the enum values that mean it.
_OPERATIONS: Final[Mapping[str, tuple[re.Pattern[str], frozenset[str]]]] = {
    "add": (
        re.compile(r"\b(?:plus|add|added|adding|sum)\b|\+", re.I),
        frozenset({"add", "addition", "plus", "sum", "+"}),
    ),
    "subtract": (
        re.compile(r"\b(?:minus|subtract\w*|difference)\b|(?<=\d) [-\u2212] (?=-?\d)", re.I),
        frozenset({"subtract", "subtraction", "minus", "sub", "difference", "-"}),
    ),
    "multiply": (
        re.compile(r"\b(?:times|multipl\w*|product)\b|[\u00d7*]", re.I),
        frozenset({"multiply", "multiplication", "times", "mul", "mult", "product", "*", "\u00d7"}),
    ),
    "divide": (
        re.compile(r"\b(?:divided|divide|division|quotient)\b|[\u00f7/]", re.I),
        frozenset({"divide", "division", "div", "quotient", "/", "\u00f7"}),
    ),
}

#: What `_Words.value` returns for a parameter the text does not supply.
_NOTHING: Final = object()

_QUOTED: Final = re.compile(r'"([^"]+)"|“([^”]+)”|(?<!\w)\'([^\']+)\'(?!\w)')
_CAPITALISED: Final = re.compile(r"\b[A-Z][\w-]*")


def arguments_from_text(parameters: Any, text: str) -> DerivedArguments:
    """Arguments for a tool with the ``parameters`` JSON schema, taken from ``text`` where it
    names them (see the module's docstring) and made up otherwise. Raises nothing: a schema it
    does not understand gets `schema_example` as a whole."""
    example = schema_example(parameters, None, "arguments")
    properties = parameters.get("properties") if isinstance(parameters, Mapping) else None
    text = text[:_MAX_TEXT]
    if not isinstance(example, dict) or not isinstance(properties, Mapping):
        return DerivedArguments(example, ())
    words = _Words.of(text)
    required = parameters.get("required") or ()
    made_up = []
    for name, schema in list(properties.items())[:_MAX_PARAMETERS]:
        # A guessed name suits a parameter the caller must give, not one with a default.
        value = words.value(schema, guess=name in required)
        if value is not _NOTHING:
            example[name] = value
        elif not (isinstance(schema, Mapping) and ("const" in schema or "default" in schema)):
            made_up.append(name)
    return DerivedArguments(example, tuple(made_up))


@attrs.define
class _Words:
    """What the text offers, each number and phrase used once."""

    text: str
    operation: str | None
    numbers: list[str]
    quoted: list[str]
    salient: list[str]

    @classmethod
    def of(cls, text: str) -> _Words:
        return cls(
            text,
            _operation(text),
            [m.group() for m in _NUMBER.finditer(text)],
            [next(g for g in m.groups() if g) for m in _QUOTED.finditer(text)],
            list(_salient(_QUOTED.sub(" ", text))),
        )

    def value(self, schema: Any, *, guess: bool) -> Any:
        """The value for one parameter (using up a number or phrase), else `_NOTHING`."""
        if not isinstance(schema, Mapping):
            return _NOTHING
        options = [schema, *_options(schema)]
        if any("const" in o for o in options):
            return _NOTHING  # the schema says what it is
        if any("enum" in o for o in options):
            enum = [v for o in options for v in _list(o.get("enum")) if isinstance(v, str)]
            return _enum_value(enum[:_MAX_ENUM], self.text, self.operation)
        types = {t for o in options for t in _types(o)}
        if types & {"number", "integer"}:
            for index, raw in enumerate(self.numbers):
                number = _number(raw, integer="number" not in types)
                if number is not None and _within(number, options):
                    del self.numbers[index]
                    return number
        if "string" in types and not any("format" in o or "pattern" in o for o in options):
            for phrases in (self.quoted, self.salient) if guess else (self.quoted,):
                for index, phrase in enumerate(phrases):
                    if _fits_length(phrase, options):
                        return phrases.pop(index)
        return _NOTHING


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _options(schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("anyOf", "oneOf"):
        for option in _list(schema.get(key)):
            if isinstance(option, Mapping):
                yield option


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def _enum_value(enum: list[str], text: str, operation: str | None) -> Any:
    if operation is not None:
        for value in enum:
            if value.lower() in _OPERATIONS[operation][1]:
                return value
    named = [
        (found.start(), value)
        for value in enum
        if len(value) > 1 and (found := re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.I))
    ]
    return min(named)[1] if named else _NOTHING


def _operation(text: str) -> str | None:
    """The operation the text names first, if any."""
    found = [(m.start(), name) for name, (p, _) in _OPERATIONS.items() if (m := p.search(text))]
    return min(found)[1] if found else None


def _number(raw: str, *, integer: bool) -> int | float | None:
    value = float(raw.replace(",", ""))
    if not math.isfinite(value):  # 400 digits: no JSON number a tool could take
        return None
    if value.is_integer():
        return int(value)
    return None if integer else value


def _within(value: float, options: list[Mapping[str, Any]]) -> bool:
    """Whether ``value`` keeps every numeric bound the options set."""
    for o in options:
        # (A boolean exclusiveMinimum is JSON Schema draft 4's: too old to bother with.)
        bounds = {k: v for k, v in o.items() if _finite(v) is not None}
        if "minimum" in bounds and value < bounds["minimum"]:
            return False
        if "maximum" in bounds and value > bounds["maximum"]:
            return False
        if "exclusiveMinimum" in bounds and value <= bounds["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in bounds and value >= bounds["exclusiveMaximum"]:
            return False
        step = bounds.get("multipleOf")
        if step is not None and not (step > 0 and (value / step).is_integer()):
            return False
    return True


def _fits_length(phrase: str, options: list[Mapping[str, Any]]) -> bool:
    return all(
        _count(o.get("minLength"), 0) <= len(phrase) <= _count(o.get("maxLength"), len(phrase))
        for o in options
    )


def _salient(text: str) -> Iterator[str]:
    """Capitalised words that do not start a sentence (names, places, acronyms), in order."""
    for match in _CAPITALISED.finditer(text):
        before = text[: match.start()].rstrip()
        if before and before[-1] not in ".!?:\"'“" and match.group() != "I":
            yield match.group()
