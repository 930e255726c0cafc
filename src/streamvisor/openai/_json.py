"""`loads`: a frame's JSON, read exactly as `json.loads` reads it, by orjson when it can.

Every event of a stream is one JSON document, and the events a subscriber has not read yet wait
decoded. The json module makes every document's keys anew; orjson (already the cluster codec's)
reuses the key strings of the documents before (a cache of short keys): a Responses delta event
holds 667 bytes instead of 1,139 (tracemalloc, one event of the recordings' shape, 2026-12-04).
The CPU is about the same: 1.15 against 1.05 us for such an event, 1.33 against 1.16 with a
non-ASCII character in it, 1.53 against 1.68 for a Chat chunk (the json module's C scanner,
`timeit`, same process), the guard below included.

orjson refuses some documents `json.loads` reads: ``NaN`` and ``Infinity``, a number too large
for a double, a lone surrogate escape (``"\\ud800"``), nesting past 1,024 levels. A document
orjson refuses goes to `json.loads`, which reads it or raises its `ValueError`. One it reads
differently: an integer beyond 64 bits becomes a float. An integer that large has at least 19
digits in a row, so a document with a run of 19 digits (in a string too: ids, stamps) goes to
`json.loads` as well, found in the UTF-8 orjson reads anyway (a digit map and a search, in C).
Otherwise orjson reads every document as `json.loads` does and refuses every document it
refuses (``tests/openai/test_json.py`` checks both, on edge cases and on generated and mutated
documents). Nesting deep enough to exhaust the interpreter's stack raises `ValueError` as well
(`json.loads` raises `RecursionError`): a frame is data from the network, and no frame may end
a stream other than as a malformed one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["loads"]

_orjson_loads = orjson.loads
_json_loads = json.loads


#: Every byte to a blank but the ASCII digits, which become "0": a run of digits becomes a run
#: of zeros (`bytes.translate`).
_DIGITS = bytes(48 if 48 <= byte <= 57 else 32 for byte in range(256))
#: The shortest run of digits that can write an integer beyond 64 bits (-2**63 - 1).
_LONG = b"0" * 19


def loads(text: str) -> Any:
    """The value of the JSON document ``text``, as `json.loads` returns it.

    Raises `ValueError` where `json.loads` raises (a `json.JSONDecodeError`, or for nesting
    too deep for the interpreter's stack).
    """
    data = text.encode("utf-8", "surrogatepass")
    if _LONG in data.translate(_DIGITS):
        return _exact(text)
    try:
        return _orjson_loads(data)
    except ValueError:  # orjson.JSONDecodeError: malformed, or a document only json reads
        return _exact(text)


def _exact(text: str) -> Any:
    """`json.loads`, with a `RecursionError` raised as `ValueError`."""
    try:
        return _json_loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
