"""Tools: plain Python functions (sync or async) offered to the model, with JSON schemas.

`Tool.from_function(fn)` derives the parameters' JSON schema from the signature and type hints
(str, int, float, bool, None, `Literal`, `Enum`, `list[...]`, `tuple[X, ...]`, `dict[str, ...]`,
`Optional`/unions, `Annotated[X, "description"]`; a default makes a parameter optional) and the
description from the docstring's first paragraph. Everything is checked at construction: a bad
name or a hint with no JSON equivalent raises a `ToolDefinitionError` naming the function and the
parameter, never later in a run.

A tool is *strict* (the API then guarantees the arguments match the schema) when its schema allows
it: every parameter required, every object closed. Otherwise it is sent non-strict.

`Tool.parse_arguments(text)` decodes and validates the model's JSON arguments; `Tool.invoke(text)`
runs the function and never raises for the model's mistakes or the tool's failures: they become
the output text (``"error: ValueError: ..."``) that goes back to the model.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs
import trio

from ._errors import (
    DuplicateToolName,
    InvalidToolName,
    ToolArgumentsError,
    ToolDefinitionError,
    UnsupportedToolParameter,
)

__all__ = ["Tool", "ToolOutcome", "ToolRegistry", "format_tool_error"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SIMPLE: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
    None: "null",
}
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}

Convert = Callable[[Any], Any]


class _Unsupported(Exception):
    """Internal: a hint with no schema (turned into `UnsupportedToolParameter`)."""


def _identity(value: Any) -> Any:
    return value


# ---------------------------------------------------------------------------------------------
# Hints → (schema, converter, strict-able)


def _schema_for(hint: Any) -> tuple[dict[str, Any], Convert | None, bool]:
    """The JSON schema of `hint`, a converter from decoded JSON to the Python value (None when
    the JSON value is already right), and whether the schema is strict-compatible."""
    if hint in _SIMPLE:
        if hint is float:
            return {"type": "number"}, float, True
        return {"type": _SIMPLE[hint]}, None, True
    if hint is Any:
        return {}, None, False
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Annotated:
        schema, convert, strict = _schema_for(args[0])
        docs = [m for m in args[1:] if isinstance(m, str)]
        if docs:
            schema = {**schema, "description": docs[0]}
        return schema, convert, strict
    if origin is Literal:
        return _literal(args)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        return _array(hint, origin, args)
    if origin in (dict, Mapping) or hint is dict:
        return _mapping(args)
    raise _Unsupported(f"type hint {hint!r} has no JSON-schema equivalent")


def _literal(values: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None, bool]:
    kinds: list[str] = []
    for value in values:
        kind = _SIMPLE.get(type(value))
        if kind is None:
            raise _Unsupported(f"Literal value {value!r} is not a JSON scalar")
        if kind == "integer" and isinstance(value, bool):
            kind = "boolean"
        if kind not in kinds:
            kinds.append(kind)
    type_: str | list[str] = kinds[0] if len(kinds) == 1 else kinds
    return {"type": type_, "enum": list(values)}, None, True


def _enum(cls: type[enum.Enum]) -> tuple[dict[str, Any], Convert | None, bool]:
    schema, _, _ = _literal(tuple(member.value for member in cls))
    by_value = {member.value: member for member in cls}
    return schema, by_value.__getitem__, True


def _union(args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None, bool]:
    parts = [_schema_for(arg) for arg in args]
    strict = all(p[2] for p in parts)
    schemas = [p[0] for p in parts]
    simple = all(set(s) == {"type"} and isinstance(s["type"], str) for s in schemas)
    schema: dict[str, Any] = (
        {"type": [s["type"] for s in schemas]} if simple else {"anyOf": schemas}
    )
    converters = [(s, c) for s, c, _ in parts if c is not None]
    if not converters:
        return schema, None, strict

    def convert(value: Any) -> Any:
        # The first member whose schema the value satisfies decides the conversion.
        for member, member_convert in converters:
            if not _problems(value, member, "x"):
                return member_convert(value)
        return value

    return schema, convert, strict


def _array(hint: Any, origin: Any, args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert, bool]:
    is_tuple = origin is tuple or hint is tuple
    if is_tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        raise _Unsupported(f"{hint!r}: only homogeneous tuples (tuple[X, ...]) are supported")
    if not args:
        raise _Unsupported(f"{hint!r} needs an item type, e.g. list[str]")
    items, convert, strict = _schema_for(args[0])
    container: Callable[[Iterable[Any]], Any] = tuple if is_tuple else list
    if convert is None:
        return {"type": "array", "items": items}, container, strict
    item_convert = convert
    return (
        {"type": "array", "items": items},
        lambda value: container(item_convert(v) for v in value),
        strict,
    )


def _mapping(args: tuple[Any, ...]) -> tuple[dict[str, Any], Convert | None, bool]:
    if not args or args[0] is not str:
        raise _Unsupported("a mapping needs str keys and a value type, e.g. dict[str, int]")
    values, convert, _ = _schema_for(args[1])
    schema = {"type": "object", "additionalProperties": values}
    if convert is None:
        return schema, None, False
    value_convert = convert
    return schema, lambda d: {k: value_convert(v) for k, v in d.items()}, False


# ---------------------------------------------------------------------------------------------
# Validation of decoded arguments against a JSON schema (the subset the derivation produces, plus
# what hand-written schemas commonly use).


def _problems(value: Any, schema: Any, path: str) -> list[str]:
    if not isinstance(schema, Mapping):
        return []
    if "anyOf" in schema:
        options = schema["anyOf"]
        if not any(not _problems(value, option, path) for option in options):
            return [f"{path}: {_render(value)} matches none of the allowed types"]
        return []
    type_ = schema.get("type")
    if type_ is not None:
        allowed = [type_] if isinstance(type_, str) else list(type_)
        if not any(_JSON_TYPES.get(t, lambda v: True)(value) for t in allowed):
            return [f"{path}: expected {' or '.join(allowed)}, got {_render(value)}"]
    if "enum" in schema and not any(
        value == choice and type(value) is type(choice) for choice in schema["enum"]
    ):
        choices = ", ".join(json.dumps(c) for c in schema["enum"])
        return [f"{path}: {_render(value)} is not one of {choices}"]
    if isinstance(value, list) and "items" in schema:
        out: list[str] = []
        for index, item in enumerate(value):
            out.extend(_problems(item, schema["items"], f"{path}[{index}]"))
        return out
    if isinstance(value, dict) and (
        "properties" in schema or "additionalProperties" in schema or "required" in schema
    ):
        return _object_problems(value, schema, path)
    return []


def _object_problems(value: Mapping[str, Any], schema: Mapping[str, Any], path: str) -> list[str]:
    props: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    prefix = f"{path}." if path else ""
    out = [
        f"missing required argument {prefix}{name!r}"
        for name in schema.get("required") or ()
        if name not in value
    ]
    for key, item in value.items():
        if key in props:
            out.extend(_problems(item, props[key], f"{prefix}{key}"))
        elif extra is False:
            out.append(f"unexpected argument {prefix}{key!r}")
        elif isinstance(extra, Mapping):
            out.extend(_problems(item, extra, f"{prefix}{key}"))
    return out


def _render(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------------------------
# Tools


def _description_of(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


def _check_name(function: str, name: object) -> str:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidToolName(function, name)
    return name


def _is_strict(schema: Any) -> bool:
    """Whether the API's strict mode accepts `schema`: closed objects, every property required."""
    if not isinstance(schema, Mapping):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(schema.get("properties") or {}):
            return False
    if not schema:  # {} (Any) accepts anything: strict mode needs a type
        return False
    for key in ("properties", "$defs"):
        if any(not _is_strict(s) for s in (schema.get(key) or {}).values()):
            return False
    if "items" in schema and not _is_strict(schema["items"]):
        return False
    return all(_is_strict(s) for s in schema.get("anyOf") or ())


@attrs.frozen
class ToolOutcome:
    """What running a tool produced: the text for the model, and whether it is an error."""

    #: The output sent back to the model (the tool's return value as text, or ``"error: ..."``).
    output: str = attrs.field(validator=attrs.validators.instance_of(str))
    #: True when the arguments were rejected or the tool raised or timed out.
    is_error: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


def format_tool_error(exc: BaseException) -> str:
    """The text a failing tool sends back to the model: ``"error: ValueError: message"``."""
    message = str(exc)
    return f"error: {type(exc).__name__}: {message}" if message else f"error: {type(exc).__name__}"


def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _check_parameters(instance: Tool, _attribute: Any, value: Mapping[str, Any]) -> None:
    if not isinstance(value, Mapping) or value.get("type") != "object":
        raise ToolDefinitionError(
            instance.name, 'parameters must be a JSON schema of "type": "object"'
        )
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(instance.name, f"parameters are not JSON: {exc}") from None


def _check_fn(instance: Tool, _attribute: Any, value: Callable[..., Any]) -> None:
    if not callable(value):
        raise ToolDefinitionError(instance.name, f"fn must be callable, got {value!r}")


@attrs.frozen(eq=False)
class Tool:
    """A function the model may call: its name, description, parameters schema and callable.

    Build one with `Tool.from_function(fn)`, or explicitly as ``Tool(name, description,
    parameters, fn)`` with a hand-written JSON schema (the arguments are then validated against
    that schema and passed to ``fn`` as keyword arguments).

    Raises at construction:
        InvalidToolName: the name is not 1-64 of ``[A-Za-z0-9_-]``.
        ToolDefinitionError: ``parameters`` is not an object schema or not JSON; ``fn`` is not
            callable.
    """

    name: str = attrs.field()
    description: str = attrs.field(validator=attrs.validators.instance_of(str))
    parameters: Mapping[str, Any] = attrs.field(validator=_check_parameters)
    fn: Callable[..., Any] = attrs.field(validator=_check_fn)
    #: Whether the schemas ask the API for strict mode (None: whenever the schema allows it).
    strict: bool | None = attrs.field(default=None)
    _converters: Mapping[str, Convert] = attrs.field(factory=dict, alias="_converters", repr=False)

    @name.validator
    def _check_name(self, _attribute: Any, value: object) -> None:
        _check_name(getattr(self.fn, "__name__", repr(self.fn)), value)

    def __attrs_post_init__(self) -> None:
        if self.strict is None:
            object.__setattr__(self, "strict", _is_strict(self.parameters))
        elif not isinstance(self.strict, bool):
            raise ToolDefinitionError(self.name, f"strict must be a bool, got {self.strict!r}")

    @classmethod
    def from_function(
        cls,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool | None = None,
    ) -> Tool:
        """A tool from a plain function (sync or async), its signature and type hints.

        ``name`` defaults to ``fn.__name__``; ``description`` to the docstring's first paragraph.
        ``strict`` defaults to whether the derived schema allows strict mode; forcing it on for
        a schema that does not allow it is a `ToolDefinitionError`.

        Raises:
            InvalidToolName: the name breaks the API's rule.
            UnsupportedToolParameter: ``*args``/``**kwargs``, a positional-only parameter, a
                parameter without a type hint, or a hint with no JSON-schema equivalent
                (``.function``, ``.parameter`` and ``.hint`` say which).
            ToolDefinitionError: ``fn`` is not callable, or its hints cannot be resolved.
        """
        fname = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))
        if not callable(fn):
            raise ToolDefinitionError(fname, f"not callable: {fn!r}")
        tool_name = _check_name(fname, name if name is not None else getattr(fn, "__name__", ""))
        try:
            signature = inspect.signature(fn)
            hints = typing.get_type_hints(fn, include_extras=True)
        except (TypeError, ValueError, NameError) as exc:
            raise ToolDefinitionError(fname, f"cannot read its signature: {exc}") from None
        props: dict[str, Any] = {}
        required: list[str] = []
        converters: dict[str, Convert] = {}
        can_strict = True
        for pname, param in signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise UnsupportedToolParameter(
                    fname, pname, None, "*args and **kwargs cannot be described to the model"
                )
            if param.kind is param.POSITIONAL_ONLY:
                raise UnsupportedToolParameter(
                    fname, pname, None, "positional-only parameters cannot be passed by name"
                )
            if pname not in hints:
                raise UnsupportedToolParameter(fname, pname, None, "has no type hint")
            try:
                schema, convert, strict_ok = _schema_for(hints[pname])
            except _Unsupported as exc:
                raise UnsupportedToolParameter(fname, pname, hints[pname], str(exc)) from None
            if param.default is param.empty:
                required.append(pname)
            else:
                can_strict = False
                try:
                    json.dumps(param.default)
                except (TypeError, ValueError):
                    pass
                else:
                    schema = {**schema, "default": param.default}
            can_strict = can_strict and strict_ok
            props[pname] = schema
            if convert is not None:
                converters[pname] = convert
        parameters = {
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": False,
        }
        if strict and not can_strict:
            raise ToolDefinitionError(
                fname,
                "strict mode needs every parameter required and every object closed "
                "(no defaults, no dict[str, ...], no Any)",
            )
        return cls(
            tool_name,
            description if description is not None else _description_of(fn),
            parameters,
            fn,
            can_strict if strict is None else strict,
            _converters=converters,
        )

    # -- schemas ---------------------------------------------------------------------------

    def chat_schema(self) -> dict[str, Any]:
        """The Chat Completions tool: ``{"type": "function", "function": {...}}``."""
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            function["description"] = self.description
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def responses_schema(self) -> dict[str, Any]:
        """The Responses tool: ``{"type": "function", "name", "parameters", "strict", ...}``."""
        tool: dict[str, Any] = {
            "type": "function",
            "name": self.name,
            "parameters": dict(self.parameters),
            "strict": self.strict,
        }
        if self.description:
            tool["description"] = self.description
        return tool

    # -- calling ---------------------------------------------------------------------------

    def parse_arguments(self, arguments: str | Mapping[str, Any]) -> dict[str, Any]:
        """Decode the model's JSON arguments, validate them and convert them to keyword arguments.

        An empty string counts as ``{}``.

        Raises:
            ToolArgumentsError: not JSON, not an object, a missing or unexpected argument, or a
                value of the wrong type (``.problems`` lists each).
        """
        if isinstance(arguments, str):
            try:
                decoded = json.loads(arguments) if arguments.strip() else {}
            except ValueError as exc:
                raise ToolArgumentsError(
                    self.name, [f"arguments are not valid JSON: {exc}"]
                ) from None
        else:
            decoded = dict(arguments)
        if not isinstance(decoded, dict):
            raise ToolArgumentsError(
                self.name, [f"arguments must be a JSON object, got {_render(decoded)}"]
            )
        problems = _object_problems(decoded, self.parameters, "")
        if problems:
            raise ToolArgumentsError(self.name, problems)
        kwargs = dict(decoded)
        for key, convert in self._converters.items():
            if key in kwargs:
                try:
                    kwargs[key] = convert(kwargs[key])
                except (KeyError, TypeError, ValueError) as exc:
                    raise ToolArgumentsError(self.name, [f"{key}: {exc!r}"]) from None
        try:
            inspect.signature(self.fn).bind(**kwargs)
        except TypeError as exc:
            raise ToolArgumentsError(self.name, [str(exc)]) from None
        except ValueError:
            pass  # a callable without a readable signature: trust the schema
        return kwargs

    async def invoke(
        self,
        arguments: str | Mapping[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a per-tool bound, documented
    ) -> ToolOutcome:
        """Run the tool on the model's arguments; never raises for the model or the tool.

        Sync functions run in a worker thread (``trio.to_thread.run_sync``; on timeout the thread
        is abandoned, it cannot be interrupted). Bad arguments, an exception from the tool, or
        running past ``timeout`` seconds give an error outcome whose text goes to the model.
        Cancellation of the caller propagates as usual.
        """
        try:
            kwargs = self.parse_arguments(arguments)
        except ToolArgumentsError as exc:
            return ToolOutcome(f"error: {exc}", is_error=True)
        with trio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
            try:
                value = await self._call(kwargs)
            except Exception as exc:
                return ToolOutcome(format_tool_error(exc), is_error=True)
        if scope.cancelled_caught:
            return ToolOutcome(
                f"error: TimeoutError: tool {self.name} timed out after {timeout:g} s",
                is_error=True,
            )
        return ToolOutcome(_output_text(value))

    async def _call(self, kwargs: dict[str, Any]) -> Any:
        fn = self.fn
        if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
        ):
            return await fn(**kwargs)
        result = await trio.to_thread.run_sync(lambda: fn(**kwargs), abandon_on_cancel=True)
        if inspect.isawaitable(result):
            return await result
        return result


class ToolRegistry:
    """The tools an agent offers, by name, in registration order.

    Raises `DuplicateToolName` when a name is registered twice (at construction or `add`).
    """

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool | Callable[..., Any]) -> Tool:
        """Register a `Tool` (or a plain function, through `Tool.from_function`); return it.

        Raises: `DuplicateToolName`; for a function, whatever `Tool.from_function` raises.
        """
        if not isinstance(tool, Tool):
            tool = Tool.from_function(tool)
        if tool.name in self._tools:
            raise DuplicateToolName(getattr(tool.fn, "__qualname__", tool.name), tool.name)
        self._tools[tool.name] = tool
        return tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def chat_schemas(self) -> list[dict[str, Any]]:
        """Every tool in the Chat Completions shape."""
        return [tool.chat_schema() for tool in self._tools.values()]

    def responses_schemas(self) -> list[dict[str, Any]]:
        """Every tool in the Responses shape."""
        return [tool.responses_schema() for tool in self._tools.values()]

    async def invoke(
        self,
        name: str,
        arguments: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ToolOutcome:
        """Run the named tool (see `Tool.invoke`); an unknown name is an error outcome."""
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return ToolOutcome(f"error: unknown tool {name!r}; available: {known}", is_error=True)
        return await tool.invoke(arguments, timeout=timeout)
