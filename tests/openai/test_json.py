"""`openai._json.loads`: a frame's JSON read exactly as `json.loads` reads it.

The wire layer parses every event through orjson and falls back to `json.loads` for what orjson
refuses, so each document must come out the same (value, types, key order, a float's sign and
NaN), and each document `json.loads` refuses must raise `ValueError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.openai._json import loads


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types, key order and float signs included, NaN equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def agree(text: str) -> None:
    """`loads` returns what `json.loads` returns, or raises ValueError where it raises (a
    RecursionError too: a frame too deep is malformed, not a crash)."""
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        with pytest.raises(ValueError):
            loads(text)
        return
    assert same(loads(text), expected), text[:200]


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


class TestAgreesWithJsonLoads:
    @pytest.mark.parametrize(
        "text",
        [
            "NaN",
            "[Infinity, -Infinity]",
            '{"x": NaN}',
            "1e400",
            "-1e400",
            "1e-400",
            "-0",
            "-0.0",
            "0.1",
            "1E+2",
            str(2**64),
            str(-(2**63) - 1),
            str(2**200),
            '"\\ud800"',
            '"\\udc00x"',
            '"\\ud83d\\ude00"',
            '{"a": 1, "b": 2, "a": 3}',
            '{"a": {"b": [1, 2, {"c": null}]}}',
            ' \t\r\n{"a": 1} \n',
            '{"a": 1} x',
            '{"a": 1,}',
            "[1,]",
            "",
            " ",
            '"\x01"',
            '"tab\there"',
            "\ufeff{}",
            "{'a': 1}",
            "01",
            "[1, 2",
            "true false",
            '{"k": "v"}\u00a0',
            "[" * 5000 + "]" * 5000,
            '{"a":' * 3000 + "1" + "}" * 3000,
        ],
    )
    def test_edge_cases(self, text: str) -> None:
        agree(text)

    @settings(max_examples=300, deadline=None)
    @given(documents)
    def test_any_document_json_writes(self, value: Any) -> None:
        agree(json.dumps(value))
        agree(json.dumps(value, ensure_ascii=False))

    @settings(max_examples=300, deadline=None)
    @given(documents, st.data())
    def test_a_document_with_one_character_changed(self, value: Any, data: st.DataObject) -> None:
        text = json.dumps(value, ensure_ascii=False)
        at = data.draw(st.integers(0, len(text)))
        what = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        char = data.draw(st.sampled_from(list('{}[]":,.-+eE0123456789 \\ntrufalsN\ud800é😊')))
        if what == "insert":
            text = text[:at] + char + text[at:]
        elif what == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
        agree(text)

    @settings(max_examples=300, deadline=None)
    @given(st.text())
    def test_any_text(self, text: str) -> None:
        agree(text)

    def test_keys_are_shared_between_documents(self) -> None:
        """A key repeated by every event is one object, not one per event (the memory of the
        events a subscriber has not read yet)."""
        first, second = loads('{"sequence_number": 1}'), loads('{"sequence_number": 2}')
        assert next(iter(first)) is next(iter(second))
