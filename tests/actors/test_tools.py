"""Tools from plain functions (`actors.agents._tools`): schemas, validation, invocation."""

from __future__ import annotations

import enum
import inspect
import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Optional, Union

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from streamvisor.actors.agents._errors import (
    DuplicateToolName,
    InvalidToolName,
    ToolArgumentsError,
    ToolDefinitionError,
    UnsupportedToolParameter,
)
from streamvisor.actors.agents._tools import Tool, ToolOutcome, ToolRegistry, format_tool_error
from streamvisor.mockapi import schema_example


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def schema_of(hint: Any) -> dict[str, Any]:
    """The property schema derived for a single required parameter of type `hint`."""

    def fn(x: hint) -> None:  # type: ignore[valid-type]
        pass

    fn.__annotations__ = {"x": hint, "return": None}
    props: dict[str, Any] = Tool.from_function(fn).parameters["properties"]
    return dict(props["x"])


class TestSchemaDerivation:
    @pytest.mark.parametrize(
        ("hint", "schema"),
        [
            (str, {"type": "string"}),
            (int, {"type": "integer"}),
            (float, {"type": "number"}),
            (bool, {"type": "boolean"}),
            (None, {"type": "null"}),
            (Literal["a", "b"], {"type": "string", "enum": ["a", "b"]}),
            (Literal[1, "x"], {"type": ["integer", "string"], "enum": [1, "x"]}),
            (Literal[True], {"type": "boolean", "enum": [True]}),
            (Color, {"type": "string", "enum": ["red", "green"]}),
            (Level, {"type": "integer", "enum": [1, 2]}),
            (list[int], {"type": "array", "items": {"type": "integer"}}),
            (Sequence[str], {"type": "array", "items": {"type": "string"}}),
            (tuple[float, ...], {"type": "array", "items": {"type": "number"}}),
            (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
            (Optional[str], {"type": ["string", "null"]}),  # noqa: UP045 - the spelling under test
            (int | None, {"type": ["integer", "null"]}),
            (Union[int, str], {"type": ["integer", "string"]}),  # noqa: UP007
            (
                list[int] | None,
                {"anyOf": [{"type": "array", "items": {"type": "integer"}}, {"type": "null"}]},
            ),
            (Annotated[str, "the city"], {"type": "string", "description": "the city"}),
            (
                list[Annotated[Color, "a colour"]],
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": ["red", "green"],
                        "description": "a colour",
                    },
                },
            ),
            (Any, {}),
        ],
        ids=lambda v: repr(v) if not isinstance(v, dict) else "",
    )
    def test_each_supported_hint_maps_to_its_json_schema(
        self, hint: Any, schema: dict[str, Any]
    ) -> None:
        """The table of hints and the schema the model sees for each."""
        assert schema_of(hint) == schema

    def test_the_object_schema_lists_required_parameters_and_is_closed(self) -> None:
        """Parameters without defaults are required; no other keys are allowed."""

        def f(a: int, b: str = "x", c: bool | None = None) -> None:
            pass

        params = Tool.from_function(f).parameters
        assert params == {
            "type": "object",
            "properties": {
                "a": {"type": "integer"},
                "b": {"type": "string", "default": "x"},
                "c": {"type": ["boolean", "null"], "default": None},
            },
            "required": ["a"],
            "additionalProperties": False,
        }

    def test_a_default_that_is_not_json_is_left_out_of_the_schema(self) -> None:
        """An Enum default is optional but has no JSON default to show."""

        def f(color: Color = Color.RED) -> None:
            pass

        assert Tool.from_function(f).parameters["properties"]["color"] == {
            "type": "string",
            "enum": ["red", "green"],
        }

    def test_the_description_is_the_docstrings_first_paragraph(self) -> None:
        """Later paragraphs (Args: sections...) are not sent."""

        def f() -> None:
            """Get the weather
            for a city.

            Args:
                nothing.
            """

        assert Tool.from_function(f).description == "Get the weather for a city."

    def test_name_and_description_can_be_given(self) -> None:
        """Explicit values win over the function's."""

        def f() -> None:
            """Doc."""

        tool = Tool.from_function(f, name="other-name", description="Custom.")
        assert (tool.name, tool.description) == ("other-name", "Custom.")

    @pytest.mark.parametrize(
        ("signature", "strict"),
        [
            ("def f(a: int, b: list[str]) -> None: pass", True),
            ("def f() -> None: pass", True),
            ("def f(a: int = 1) -> None: pass", False),
            ("def f(a: dict[str, int]) -> None: pass", False),
            ("def f(a: Any) -> None: pass", False),
        ],
    )
    def test_strict_mode_is_on_exactly_when_the_schema_allows_it(
        self, signature: str, strict: bool
    ) -> None:
        """All required and all objects closed: strict; defaults, maps or Any: not."""
        namespace: dict[str, Any] = {"Any": Any}
        exec(signature, namespace)
        assert Tool.from_function(namespace["f"]).strict is strict

    def test_forcing_strict_on_a_schema_that_cannot_be_strict_is_an_error(self) -> None:
        """strict=True with an optional parameter is refused at construction."""

        def f(a: int = 1) -> None:
            pass

        with pytest.raises(ToolDefinitionError, match="strict mode"):
            Tool.from_function(f, strict=True)


class TestSchemasForBothApis:
    def test_chat_and_responses_shapes(self) -> None:
        """Chat nests the function; Responses is flat with strict always present."""

        def ping(host: str) -> str:
            """Ping a host."""
            return host

        tool = Tool.from_function(ping)
        params = tool.parameters
        assert tool.chat_schema() == {
            "type": "function",
            "function": {
                "name": "ping",
                "description": "Ping a host.",
                "parameters": params,
                "strict": True,
            },
        }
        assert tool.responses_schema() == {
            "type": "function",
            "name": "ping",
            "description": "Ping a host.",
            "parameters": params,
            "strict": True,
        }

    def test_an_explicit_tool_is_strict_only_if_its_schema_allows(self) -> None:
        """A hand-written open schema is sent non-strict; a closed one strict."""
        open_schema = {"type": "object", "properties": {"q": {"type": "string"}}}
        closed = {**open_schema, "required": ["q"], "additionalProperties": False}
        assert Tool("t", "", open_schema, lambda q: q).strict is False
        assert Tool("t", "", closed, lambda q: q).strict is True
        assert "strict" not in Tool("t", "", open_schema, lambda q: q).chat_schema()["function"]


class TestDefinitionErrors:
    @pytest.mark.parametrize("name", ["", "has space", "dot.ted", "x" * 65, "émoji", "tool\n"])
    def test_a_name_the_api_rejects_is_refused(self, name: str) -> None:
        """Names are 1-64 of [A-Za-z0-9_-]."""

        def f() -> None:
            pass

        with pytest.raises(InvalidToolName) as caught:
            Tool.from_function(f, name=name)
        assert caught.value.name == name
        assert isinstance(caught.value, ValueError)

    @pytest.mark.parametrize(
        ("source", "parameter", "why"),
        [
            ("def f(x): pass", "x", "has no type hint"),
            ("def f(*args: int): pass", "args", "*args and **kwargs"),
            ("def f(**kw: int): pass", "kw", "*args and **kwargs"),
            ("def f(x: int, /): pass", "x", "positional-only"),
            ("def f(x: complex): pass", "x", "no JSON-schema equivalent"),
            ("def f(x: dict[int, str]): pass", "x", "str keys"),
            ("def f(x: tuple[int, str]): pass", "x", "homogeneous tuples"),
            ("def f(x: list): pass", "x", "item type"),
            ("def f(x: Literal[1.5j]): pass", "x", "not a JSON scalar"),
        ],
    )
    def test_a_parameter_without_a_json_schema_is_refused_naming_it(
        self, source: str, parameter: str, why: str
    ) -> None:
        """The typed error names the function and the parameter."""
        namespace: dict[str, Any] = {"Literal": Literal}
        exec(source, namespace)
        with pytest.raises(UnsupportedToolParameter, match=re.escape(why)) as caught:
            Tool.from_function(namespace["f"])
        assert caught.value.parameter == parameter
        assert caught.value.function == "f"
        assert f"parameter {parameter!r} of tool function 'f'" in str(caught.value)
        assert isinstance(caught.value, TypeError)

    def test_an_explicit_tool_needs_an_object_schema(self) -> None:
        """parameters must be a JSON object schema."""
        with pytest.raises(ToolDefinitionError, match="type"):
            Tool("t", "", {"type": "string"}, lambda: None)

    def test_an_explicit_tool_needs_a_callable(self) -> None:
        with pytest.raises(ToolDefinitionError, match="callable"):
            Tool("t", "", {"type": "object"}, "not a function")  # type: ignore[arg-type]

    def test_duplicate_names_in_a_registry_are_refused(self) -> None:
        """At construction and on add."""

        def f() -> None:
            pass

        with pytest.raises(DuplicateToolName) as caught:
            ToolRegistry([f, Tool.from_function(f)])
        assert caught.value.name == "f"
        registry = ToolRegistry([f])
        with pytest.raises(DuplicateToolName):
            registry.add(f)
        assert registry.names == ("f",)


def weather(city: str, unit: Color = Color.RED, days: list[int] | None = None) -> str:
    """Weather."""
    return f"{city}/{unit.value}/{days}"


class TestArgumentParsing:
    def test_valid_arguments_are_converted_to_python_values(self) -> None:
        """Enum values become members; lists stay lists."""
        tool = Tool.from_function(weather)
        assert tool.parse_arguments('{"city": "Oslo", "unit": "green", "days": [1, 2]}') == {
            "city": "Oslo",
            "unit": Color.GREEN,
            "days": [1, 2],
        }

    def test_an_empty_arguments_string_means_no_arguments(self) -> None:
        def now() -> str:
            return "noon"

        assert Tool.from_function(now).parse_arguments("") == {}

    @pytest.mark.parametrize(
        ("arguments", "problems"),
        [
            ("{}", ["missing required argument 'city'"]),
            ('{"city": "x", "town": "y"}', ["unexpected argument 'town'"]),
            ('{"city": 3}', ["city: expected string, got 3"]),
            ('{"city": "x", "unit": "blue"}', ['unit: "blue" is not one of "red", "green"']),
            (
                '{"city": "x", "days": [1, "2"]}',
                ['days: [1, "2"] matches none of the allowed types'],
            ),
            ("[1]", ["arguments must be a JSON object, got [1]"]),
            ("{not json", ["arguments are not valid JSON"]),
        ],
    )
    def test_bad_arguments_raise_listing_each_problem(
        self, arguments: str, problems: list[str]
    ) -> None:
        """Missing, extra, wrong-typed and undecodable arguments are each named."""
        with pytest.raises(ToolArgumentsError) as caught:
            Tool.from_function(weather).parse_arguments(arguments)
        found = [p.split(": Expecting")[0] for p in caught.value.problems]
        assert found == problems

    def test_booleans_are_not_integers_and_integers_are_numbers(self) -> None:
        """JSON true is not an int; 3 is a valid float (converted)."""

        def f(n: int, x: float) -> None:
            pass

        tool = Tool.from_function(f)
        assert tool.parse_arguments('{"n": 1, "x": 3}') == {"n": 1, "x": 3.0}
        assert isinstance(tool.parse_arguments('{"n": 1, "x": 3}')["x"], float)
        with pytest.raises(ToolArgumentsError, match="n: expected integer, got true"):
            tool.parse_arguments('{"n": true, "x": 1}')

    def test_an_explicit_tool_validates_against_its_own_schema(self) -> None:
        """Hand-written schema: required and types are checked, then fn gets kwargs."""
        schema = {
            "type": "object",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
            "additionalProperties": False,
        }
        tool = Tool("search", "Search.", schema, lambda q: q.upper())
        assert tool.parse_arguments('{"q": "a"}') == {"q": "a"}
        with pytest.raises(ToolArgumentsError, match="missing required argument 'q'"):
            tool.parse_arguments("{}")

    @given(
        city=st.text(),
        unit=st.sampled_from(Color),
        days=st.none() | st.lists(st.integers(min_value=-(2**53), max_value=2**53)),
    )
    def test_arguments_round_trip_through_json(
        self, city: str, unit: Color, days: list[int] | None
    ) -> None:
        """Any valid call, encoded as the model would, decodes to the same Python values."""
        encoded = json.dumps({"city": city, "unit": unit.value, "days": days})
        assert Tool.from_function(weather).parse_arguments(encoded) == {
            "city": city,
            "unit": unit,
            "days": days,
        }


class TestInvoke:
    async def test_a_sync_tool_runs_and_its_value_becomes_text(self) -> None:
        """Non-str results are JSON-encoded."""

        def pair(a: int) -> dict[str, int]:
            return {"a": a, "b": a * 2}

        assert await Tool.from_function(pair).invoke('{"a": 2}') == ToolOutcome('{"a": 2, "b": 4}')

    async def test_an_async_tool_is_awaited(self) -> None:
        async def echo(text: str) -> str:
            await trio.lowlevel.checkpoint()
            return text

        assert (await Tool.from_function(echo).invoke('{"text": "hi"}')).output == "hi"

    async def test_an_exception_becomes_an_error_outcome(self) -> None:
        """'error: <Type>: <message>' -- never raised."""

        def bad() -> None:
            raise KeyError("k")

        out = await Tool.from_function(bad).invoke("{}")
        assert out == ToolOutcome("error: KeyError: 'k'", is_error=True)

    async def test_bad_arguments_become_an_error_outcome_without_calling_the_tool(self) -> None:
        called = False

        def f(n: int) -> None:
            nonlocal called
            called = True

        out = await Tool.from_function(f).invoke('{"n": "x"}')
        assert out.is_error
        assert out.output == 'error: invalid arguments for f: n: expected integer, got "x"'
        assert not called

    async def test_a_tool_past_its_timeout_becomes_an_error_outcome(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        """The tool is cancelled at the timeout."""

        async def slow() -> str:
            await trio.sleep(10)
            return "late"

        start = trio.current_time()
        out = await Tool.from_function(slow).invoke("{}", timeout=2.0)
        assert out == ToolOutcome(
            "error: TimeoutError: tool slow timed out after 2 s", is_error=True
        )
        assert trio.current_time() - start == pytest.approx(2.0)

    async def test_an_unknown_tool_name_is_an_error_outcome_listing_the_known_ones(self) -> None:
        registry = ToolRegistry([weather])
        out = await registry.invoke("nope", "{}")
        assert out == ToolOutcome("error: unknown tool 'nope'; available: weather", is_error=True)

    def test_format_tool_error_without_a_message_names_the_type(self) -> None:
        assert format_tool_error(TimeoutError()) == "error: TimeoutError"


SCALARS = st.sampled_from([str, int, float, bool, Color, Level, Literal["x", "y"]])
HINTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        inner.map(lambda h: list[h]),  # type: ignore[valid-type]
        inner.map(lambda h: dict[str, h]),  # type: ignore[valid-type]
        inner.map(lambda h: h | None),  # type: ignore[operator]
        inner.map(lambda h: Annotated[h, "doc"]),
    ),
    max_leaves=4,
)


class TestDerivedSchemasAgainstAnExampleMaker:
    @given(hints=st.lists(HINTS, min_size=1, max_size=3))
    def test_a_value_built_from_the_schema_parses_for_any_supported_signature(
        self, hints: list[Any]
    ) -> None:
        """What the embedded server's schema_example makes from a derived schema is accepted:
        schema and validator agree (the model sees exactly what the function takes)."""

        def fn(**kwargs: Any) -> None:
            pass

        params = [
            inspect.Parameter(f"p{i}", inspect.Parameter.KEYWORD_ONLY, annotation=hint)
            for i, hint in enumerate(hints)
        ]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        tool = Tool.from_function(fn)
        example = schema_example(tool.parameters)
        parsed = tool.parse_arguments(json.dumps(example))
        assert set(parsed) == {p.name for p in params}
