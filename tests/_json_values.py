"""A hypothesis strategy for any value `json.loads` can make, shared by the tests of every
place that writes such values out again (the cluster codec, the gateway's JSON)."""

from __future__ import annotations

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
