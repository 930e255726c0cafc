"""Tool-call arguments from the user's words: `arguments_from_text`, and on the wire."""

from __future__ import annotations

import json
from typing import Any, Final

import jsonschema
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.mockapi import MockServer, arguments_from_text

CALCULATOR: Final = {
    "type": "object",
    "properties": {
        "a": {"type": "number"},
        "op": {"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
        "b": {"type": "number"},
    },
    "required": ["a", "op", "b"],
    "additionalProperties": False,
}
SYMBOLS: Final = {
    "type": "object",
    "properties": {
        "x": {"type": "integer", "minimum": 0},
        "operator": {"type": "string", "enum": ["+", "-", "*", "/"]},
        "y": {"type": "integer", "minimum": 0},
    },
    "required": ["x", "operator", "y"],
}
BOUNDED: Final = {
    "type": "object",
    "properties": {
        "kind": {"type": "string", "const": "fixed"},
        "even": {"type": "integer", "multipleOf": 2, "exclusiveMinimum": 0},
        "small": {"anyOf": [{"type": "number", "maximum": 10}, {"type": "null"}]},
        "name": {"type": "string", "minLength": 3, "maxLength": 8},
    },
    "required": ["kind", "even", "small", "name"],
}
WEATHER: Final = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": ["integer", "null"], "default": None},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}


class TestArgumentsFromText:
    @pytest.mark.parametrize(
        ("text", "arguments"),
        [
            ("What is 12.5 multiplied by 4?", {"a": 12.5, "op": "multiply", "b": 4}),
            ("what is 2 * 3", {"a": 2, "op": "multiply", "b": 3}),
            ("7 - 3, please", {"a": 7, "op": "subtract", "b": 3}),
            ("Divide 10 by -2.", {"a": 10, "op": "divide", "b": -2}),
            ("add 1,000 and 2.5", {"a": 1000, "op": "add", "b": 2.5}),
        ],
    )
    def test_numbers_and_the_operation_named_fill_a_calculator(
        self, text: str, arguments: dict[str, Any]
    ) -> None:
        """Numbers go to the number parameters in order; the operation to the enum naming it."""
        assert arguments_from_text(CALCULATOR, text).arguments == arguments
        assert arguments_from_text(CALCULATOR, text).made_up == ()

    def test_an_operation_maps_onto_an_enum_of_symbols_and_integers_stay_whole(self) -> None:
        """ "times" is `*` for this tool; 2.5 does not fit an integer parameter, 6 and 7 do."""
        derived = arguments_from_text(SYMBOLS, "2.5 or rather 6 times 7")
        assert derived.arguments == {"x": 6, "operator": "*", "y": 7}

    def test_a_salient_word_and_a_named_enum_value_fill_a_weather_tool(self) -> None:
        """A capitalised word that starts no sentence is a name; an enum value named is taken."""
        derived = arguments_from_text(WEATHER, "What is the weather in Tokyo, in Fahrenheit?")
        assert derived.arguments == {"city": "Tokyo", "days": None, "unit": "fahrenheit"}
        assert derived.made_up == ()

    def test_a_quoted_phrase_comes_first_and_numbers_reach_optional_parameters(self) -> None:
        """ "New York" is one value (its words are not names of their own)."""
        derived = arguments_from_text(WEATHER, 'Rain in "New York" over 3 days? In Celsius.')
        assert derived.arguments == {"city": "New York", "days": 3, "unit": "celsius"}

    def test_what_the_text_does_not_name_is_made_up_and_says_so(self) -> None:
        """No number, no operation: the example values, each named in `made_up`."""
        derived = arguments_from_text(CALCULATOR, "hello there")
        assert derived.arguments == {"a": 1.5, "op": "add", "b": 1.5}
        assert derived.made_up == ("a", "op", "b")
        weather = arguments_from_text(WEATHER, "weather?")
        assert weather.made_up == ("city", "unit")  # days keeps its default: not made up

    def test_bounds_constants_and_lengths_are_kept(self) -> None:
        """A number or word that would break the schema is passed over for the next one."""
        derived = arguments_from_text(BOUNDED, "Try 3 then 12 and 4, for Al or Bob")
        assert derived.arguments == {"kind": "fixed", "even": 12, "small": 3, "name": "Bob"}

    def test_it_is_deterministic(self) -> None:
        """The same words give the same arguments."""
        text = "What is 12.5 multiplied by 4, and what time is it now (UTC)?"
        assert arguments_from_text(CALCULATOR, text) == arguments_from_text(CALCULATOR, text)

    @settings(max_examples=200, deadline=None)
    @given(
        st.text(alphabet=st.sampled_from("0123456789.,-+*/ \"'aAbBxXPtimes"), max_size=40)
        | st.text(max_size=40)
    )
    def test_the_arguments_are_always_valid_against_the_schema(self, text: str) -> None:
        """Whatever the words, each tool's arguments validate against its parameters."""
        for schema in (CALCULATOR, SYMBOLS, BOUNDED, WEATHER):
            jsonschema.validate(arguments_from_text(schema, text).arguments, schema)


#: Schemas a client may send in ``tools`` that no finite or sane value satisfies: the derivation
#: must answer quickly, in bounded memory, and raise nothing.
HOSTILE: Final = {
    "a $ref to itself": {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    "a required cycle": {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/n"}},
        "$defs": {
            "n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}},
        },
    },
    "a billion items": {
        "type": "object",
        "properties": {"xs": {"type": "array", "minItems": 10**9, "items": {"type": "string"}}},
    },
    "a gigabyte string": {
        "type": "object",
        "properties": {"s": {"type": "string", "minLength": 10**9}},
    },
    "bounds of the wrong type": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": "x", "multipleOf": "y"},
            "f": {"type": "number", "minimum": [1]},
            "xs": {"type": "array", "minItems": "many"},
            "s": {"type": "string", "minLength": "long", "maxLength": None},
        },
    },
    "an unknown $ref and odd keywords": {
        "type": "object",
        "properties": {"a": {"$ref": 7}, "b": {"$ref": "#/nowhere"}, "c": {"anyOf": "x"}},
        "$defs": "not a mapping",
    },
    "a deep nesting": {"type": "object", "properties": {}},
}
_deep: dict[str, Any] = HOSTILE["a deep nesting"]
for _ in range(200):
    _deep["properties"] = {"x": {"type": "object", "properties": {}}}
    _deep = _deep["properties"]["x"]


class TestHostileSchemas:
    @pytest.mark.parametrize("name", list(HOSTILE))
    def test_a_hostile_schema_gets_a_small_answer_and_no_exception(self, name: str) -> None:
        derived = arguments_from_text(HOSTILE[name], 'What is 12.5 times 4 in "Paris"?')
        assert len(json.dumps(derived.arguments)) < 64 * 1024


class TestOnTheWire:
    async def test_a_tool_call_takes_the_users_numbers_and_operation(
        self, client: openai.AsyncOpenAI, server: MockServer
    ) -> None:
        """Through the official SDK: the call's arguments are the question's, none made up."""
        tool = {"type": "function", "name": "calculator", "parameters": CALCULATOR}
        response = await client.responses.create(
            model="gpt-4o",
            input="What is 12.5 multiplied by 4?",
            tools=[tool],  # type: ignore[list-item]
        )
        (call,) = response.output
        assert call.type == "function_call"
        assert json.loads(call.arguments) == {"a": 12.5, "op": "multiply", "b": 4}
        assert server.state.made_up_arguments[call.call_id] == ()

    async def test_the_server_remembers_which_arguments_it_made_up(
        self, client: openai.AsyncOpenAI, server: MockServer
    ) -> None:
        """A chat tool call the words cannot fill: the made-up parameters are recorded."""
        completion = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hello"}],
            tools=[{"type": "function", "function": {"name": "calc", "parameters": CALCULATOR}}],
        )
        (call,) = completion.choices[0].message.tool_calls or []
        assert json.loads(call.function.arguments) == {"a": 1.5, "op": "add", "b": 1.5}
        assert server.state.made_up_arguments[call.id] == ("a", "op", "b")

    @pytest.mark.parametrize("name", ["a $ref to itself", "a billion items", "a gigabyte string"])
    async def test_a_hostile_tool_schema_gets_a_tool_call_not_an_error(
        self, client: openai.AsyncOpenAI, name: str
    ) -> None:
        """The embedded server answers a hostile schema with a small call; it stays up."""
        tool = {"type": "function", "function": {"name": "t", "parameters": HOSTILE[name]}}
        completion = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "What is 12.5 times 4?"}],
            tools=[tool],  # type: ignore[list-item]
        )
        (call,) = completion.choices[0].message.tool_calls or []
        assert len(call.function.arguments) < 64 * 1024
        json.loads(call.function.arguments)
