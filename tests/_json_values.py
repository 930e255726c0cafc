"""Any value `json.loads` can make, for the tests of every place that writes such values out
again (the cluster codec, the gateway's JSON): a hypothesis strategy, an exact comparison, and
a strict reader."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Any value `json.loads` can make: integers of any size, every float (NaN, infinities, -0.0),
#: text with lone surrogates, nested lists and objects.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=())),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=()), max_size=4), inner, max_size=4
        )
    ),
    max_leaves=20,
)


def same(a: object, b: object) -> bool:
    """Equal, with NaN equal to NaN and -0.0 told apart from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return repr(a) == repr(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _not_json(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def strict_json(text: str) -> Any:
    """``text`` read as strict JSON (RFC 8259): ``NaN`` and ``Infinity`` refused, as a
    browser's ``JSON.parse`` refuses them."""
    return json.loads(text, parse_constant=_not_json)
