"""Generated bad input, each value with a short repr (what Hypothesis prints for a falsifying
example) and built into the real, possibly huge, value only when a probe uses it.

Two families, because they deserve different answers:

* **malformed** — no daemon may accept it: control characters, NUL, traversal, ``%``-escapes,
  whitespace, dots and wildcards in ids; NaN, ±Infinity, ``1e999``, 1,000- to 100,000-deep
  nesting, strings over the API's 10 MiB limit, lone surrogates and Python objects with no JSON
  form in parameters; values of the wrong type. The answer must be a typed ``ValueError`` (or
  ``TypeError``) / a 4xx, and nothing may reach the upstream API.
* **unknown** — well-formed ids that name nothing (``resp_`` + 48 hex digits never issued). The
  answer must be a typed ``LookupError`` / 404.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Callable
from typing import Any, Final

import attrs
from hypothesis import strategies as st

from streamvisor.openai import MAX_REQUEST_BYTES

#: One past the largest request body the wire layer sends (`MAX_REQUEST_BYTES`, sized for the
#: API's 50 MB of base64 inline images per request): malformed whatever field holds it.
HUGE_TEXT: Final = MAX_REQUEST_BYTES + 1
#: Depths of nested JSON no request needs (Python's own json module gives up near 1,000).
DEPTHS: Final = (1_000, 10_000, 100_000)


@attrs.frozen(repr=False)
class Bad:
    """One bad value: ``label`` is how it prints, ``make()`` builds it (fresh on each call)."""

    label: str
    make: Callable[[], Any] = attrs.field(eq=False)

    def __repr__(self) -> str:
        return self.label


def deep_value(depth: int, kind: str) -> Any:
    """``[[[...]]]`` or ``{"a": {"a": ...}}``, ``depth`` levels, built without recursion."""
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def deep_text(depth: int, kind: str) -> str:
    """The JSON text of `deep_value` (what no parser should recurse into)."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _deep(depth: int, kind: str) -> Bad:
    return Bad(f"deep_value({depth}, {kind!r})", lambda: deep_value(depth, kind))


def _fixed(label: str, value: Any) -> Bad:
    return Bad(label, lambda: value)


class _Opaque:
    """An object with no JSON form."""


#: Values no JSON parameter can carry.
NON_FINITE: Final = (
    _fixed("nan", math.nan),
    _fixed("inf", math.inf),
    _fixed("-inf", -math.inf),
    _fixed("1e999", float("1e999")),
    _fixed("[nan]", [math.nan]),
    _fixed("{'x': {'y': -inf}}", {"x": {"y": -math.inf}}),
)
NOT_JSON: Final = (
    Bad("object()", _Opaque),
    _fixed("b'bytes'", b"bytes"),
    _fixed("{1, 2}", {1, 2}),
    _fixed("frozenset()", frozenset()),
    _fixed("1+2j", 1 + 2j),
    _fixed("Decimal('NaN')", decimal.Decimal("NaN")),
    Bad("lambda", lambda: lambda: None),
    _fixed("{('a', 'b'): 1}", {("a", "b"): 1}),
    _fixed("'\\ud800' (a lone surrogate)", "\ud800"),
    _fixed("{'k': ['\\udfff']}", {"k": ["\udfff"]}),
)
HUGE: Final = (Bad(f"'x' * {HUGE_TEXT}", lambda: "x" * HUGE_TEXT),)


def json_params() -> st.SearchStrategy[Bad]:
    """A value no JSON request parameter may hold."""
    return st.one_of(
        st.sampled_from(NON_FINITE),
        st.sampled_from(NOT_JSON),
        st.builds(_deep, st.sampled_from(DEPTHS), st.sampled_from(("list", "object"))),
        st.sampled_from(HUGE),
    )


WRONG_TYPES: Final = (
    _fixed("None", None),
    _fixed("1", 1),
    _fixed("1.5", 1.5),
    _fixed("True", True),
    _fixed("b'abc'", b"abc"),
    _fixed("['abc']", ["abc"]),
    _fixed("{'id': 'abc'}", {"id": "abc"}),
    Bad("object()", _Opaque),
)

#: Characters no id may hold: C0 controls, DEL, NEL, line/paragraph separators, bidi override,
#: whitespace, path and URL syntax, topic syntax, quotes and markup. (Session ids may hold
#: ``_-:@+=``, so those are not here.)
BAD_ID_CHARS: Final = (
    [chr(c) for c in range(0x20)]
    + ["\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\ufeff"]
    + list(" /\\%?#.*&;'\"<>")
)
#: The malformed ids the issue names, and their relatives.
NAMED_BAD_IDS: Final = (
    "",
    ".",
    "..",
    "../files",
    "..%2Ffiles",
    "/etc/passwd",
    "a/b",
    "a\\b",
    "%01",
    "%2e%2e",
    "resp_1\n",
    "resp_1\r\n",
    "\nresp_1",
    " resp_1",
    "resp_1 ",
    "resp_1\t",
    "\x00",
    "resp_\x00",
    "resp_1?x=1",
    "resp_1#x",
    "*",
    "**",
    ".hidden",
    "\u202eevil",
    "\ud800",
)
#: Far longer than any id.
LONG_ID: Final = 100_000


def _with_bad_char(prefix: str, body: str, char: str, where: int) -> str:
    text = prefix + body
    index = where % (len(text) + 1)
    return text[:index] + char + text[index:]


def malformed_id_texts(prefix: str = "resp_", long: int = LONG_ID) -> st.SearchStrategy[str]:
    """Strings no id may be: the named cases, a plausible id with a bad character inside, and
    one ``long`` characters long."""
    plausible = st.text(alphabet="0123456789abcdef", min_size=1, max_size=12)
    return st.one_of(
        # The cases, on a branch of their own so that few examples still try them.
        st.sampled_from((prefix + "1\n", "\x00", "%01", "../files", prefix + "\x00")),
        st.sampled_from(NAMED_BAD_IDS),
        st.builds(
            _with_bad_char,
            st.just(prefix),
            plausible,
            st.sampled_from(BAD_ID_CHARS),
            st.integers(0, 64),
        ),
        st.just(prefix + "a" * long),
    )


def shown(text: str) -> str:
    """``repr(text)``, abridged when long."""
    return repr(text) if len(text) <= 80 else f"{text[:12]!r} + 'a' * {len(text) - 12}"


def _id_bad(text: str) -> Bad:
    return Bad(shown(text), lambda: text)


def malformed_ids(prefix: str = "resp_") -> st.SearchStrategy[Bad]:
    """A malformed id, or a value of the wrong type where an id belongs."""
    return st.one_of(malformed_id_texts(prefix).map(_id_bad), st.sampled_from(WRONG_TYPES))


def malformed_filenames() -> st.SearchStrategy[Bad]:
    """Upload names the API cannot carry: empty, a control character or NUL, a ``/``, a lone
    surrogate (spaces, ``#``, ``%`` and dots are fine in a file name, so they are not here)."""
    controls = [chr(c) for c in range(0x20)] + ["\x7f"]
    return st.one_of(
        st.sampled_from(["", "a/b.txt", "../a.txt", "a\x00.txt", "a.txt\n", "\ud800.txt"]).map(
            _id_bad
        ),
        st.builds(
            _with_bad_char,
            st.just("notes"),
            st.just(".txt"),
            st.sampled_from(controls),
            st.integers(0, 9),
        ).map(_id_bad),
        st.sampled_from([b for b in WRONG_TYPES if b.label not in ("None",)]),
    )


def unknown_ids(kind: str) -> st.SearchStrategy[str]:
    """Well-formed ids of ``kind`` (``response``, ``file``, ``stream``) that name nothing."""
    hex_digits = st.text(alphabet="0123456789abcdef", min_size=48, max_size=48)
    alnum = st.text(
        alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        min_size=22,
        max_size=22,
    )
    if kind == "response":
        return hex_digits.map(lambda h: "resp_" + h)
    if kind == "file":
        return alnum.map(lambda a: "file-" + a)
    # The daemon numbers its streams (``stream-<n>``): anything else is malformed, not unknown.
    return st.integers(10**6, 10**12).map(lambda n: f"stream-{n}")


#: Subscription patterns no topic can match usefully: NUL, spaces, controls, bad wildcards.
NAMED_BAD_TOPICS: Final = (
    "",
    "\x00",
    "session.\x00",
    "session s1",
    "session.s1 ",
    " ",
    "session.s1\n",
    "a..b",
    ".session",
    "session.",
    "**.session",
    "ses*ion",
    "session.%00",
    "session.\u2028",
)


def bad_topics() -> st.SearchStrategy[str]:
    """A malformed subscription pattern."""
    segment = st.text(alphabet="abcdefghij", min_size=1, max_size=8)
    return st.one_of(
        st.sampled_from(NAMED_BAD_TOPICS),
        st.builds(
            _with_bad_char,
            st.just("session."),
            segment,
            st.sampled_from([c for c in BAD_ID_CHARS if c not in ".*"]),
            st.integers(0, 16),
        ),
    )


# -------------------------------------------------------------------------- raw request bodies


@attrs.frozen(repr=False)
class Body:
    """A raw request body: ``label`` prints it, ``make()`` builds its bytes."""

    label: str
    make: Callable[[], bytes] = attrs.field(eq=False)

    def __repr__(self) -> str:
        return self.label


def _raw(label: str, data: bytes) -> Body:
    return Body(label, lambda: data)


#: Bodies that are not a JSON object a route can use (any route: no valid fields inside).
NOT_AN_OBJECT: Final = (
    _raw("b'{'", b"{"),
    _raw("b'nan'", b"nan"),
    _raw("b'NaN'", b"NaN"),
    _raw("b'[]'", b"[]"),
    _raw("b'\"text\"'", b'"text"'),
    _raw("b'1'", b"1"),
    _raw("b'null'", b"null"),
    _raw("b'\\xff\\xfe'", b"\xff\xfe"),
    _raw("b'{\"a\":1}\\x00'", b'{"a":1}\x00'),
    _raw('b\'{"a": "\\ud800"}\' (a lone surrogate escape)', b'{"a": "\\ud800"}'),
    Body("b'[' * 100000", lambda: b"[" * 100_000),
    Body("b'{\"a\":' * 100000", lambda: b'{"a":' * 100_000),
)


#: JSON texts no field of a request may hold (Python's json module reads every one of them).
BAD_FIELD_TEXTS: Final = (
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "[NaN]",
    '{"x": -Infinity}',
    '"\\ud800"',
    '["\\udfff"]',
)


def bad_field_texts() -> st.SearchStrategy[tuple[str, Callable[[], str]]]:
    """(label, make) of a JSON text no field may hold: non-finite numbers, lone surrogates,
    1,000- to 100,000-deep nesting."""
    fixed = st.sampled_from([(text, (lambda t=text: t)) for text in BAD_FIELD_TEXTS])
    deep = st.builds(
        lambda depth, kind: (f"deep_text({depth}, {kind!r})", lambda: deep_text(depth, kind)),
        st.sampled_from(DEPTHS),
        st.sampled_from(("list", "object")),
    )
    return st.one_of(fixed, deep)


_MARKER: Final = "@@adversarial-field@@"


def body_with(base: dict[str, Any], field: str, raw: str) -> bytes:
    """The JSON text of ``base`` with ``field`` set to the raw JSON text ``raw`` (which
    ``json.dumps`` would refuse to write: ``NaN``, a 100,000-deep array...)."""
    text = json.dumps({**base, field: _MARKER})
    return text.replace(json.dumps(_MARKER), raw, 1).encode()
