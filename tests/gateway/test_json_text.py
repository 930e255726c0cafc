"""The gateway's JSON (`/events`, the WebSocket, REST bodies, `/v1` frames): whatever a server's
frame held, a client in any language reads it."""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings

from streamvisor.gateway._http import dumps, json_text

from .._json_values import JSON_VALUES, same, strict_json


def finite(value: Any) -> Any:
    """``value`` as JavaScript's ``JSON.stringify`` would write it: a non-finite number as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_value_is_written_as_strict_json_any_client_reads(value: Any) -> None:
    text = json_text({"value": value})
    text.encode()  # strict UTF-8: a lone surrogate is written as its escape
    assert same(strict_json(text), {"value": finite(value)})


def test_utf8_is_written_as_is_and_numbers_untouched() -> None:
    text = json_text({"t": "é🙂", "n": [2**70, 1.5e300, -0.0, 0.1]})
    assert text == '{"t":"é🙂","n":[1180591620717411303424,1.5e+300,-0.0,0.1]}'


def test_a_surrogate_and_a_nan_together() -> None:
    value = json.loads('{"d": "x\\ud83dy", "p": NaN, "q": [-Infinity]}')
    assert json_text(value) == '{"d":"x\\ud83dy","p":null,"q":[null]}'


def test_records_the_gateway_converts_are_written_the_same_way() -> None:
    """`dumps` converts attrs records (an event, a status) before writing them: a NaN inside
    one is written as null too."""

    @attrs.frozen
    class Event:
        data: dict[str, Any]

    assert strict_json(dumps({"event": Event({"p": math.inf})})) == {"event": {"data": {"p": None}}}


def test_what_is_not_json_still_raises_beside_a_nan() -> None:
    """Without a converter, an object JSON has no form for is refused as `json.dumps` refuses
    it, whether or not a NaN came before it."""
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"p": math.nan, "o": object()})
    with pytest.raises(TypeError, match="not JSON serializable"):
        json_text({"o": object()})


def test_a_non_finite_key_is_written_as_python_names_it() -> None:
    """Only numbers become null: a key is a string in JSON (json.loads never makes a float
    key, but a Python caller might)."""
    assert strict_json(json_text({math.nan: 1})) == {"NaN": 1}
