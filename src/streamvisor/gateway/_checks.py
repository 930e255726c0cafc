"""What the gateway checks of every input itself, before any actor sees it.

The daemon's facade validates too; the gateway does not depend on it. Each check raises a typed
`BadRequest` (400) naming the field, so a bad request is the caller's error and never an actor's
crash:

* ids (path segments and command fields): `check_id` -- a full match of a strict pattern;
* topic patterns (``/events``, ``/ws``): `check_topic` -- printable pattern characters only;
* JSON bodies and WebSocket commands: `parse_json` -- UTF-8, at most `MAX_DEPTH` levels deep
  (a 100 000-deep ``[[[[`` is a 400, not a ``RecursionError``), no ``NaN``/``Infinity``;
* the body's media type: `check_media_type` (415 for anything a plain HTML form can send).
"""

from __future__ import annotations

import json
import math
import re
from email.message import Message as _HeaderParser
from typing import Any, Final

from ..actors import NAME_PATTERN, is_topic_pattern
from ..openai import API_ID_PATTERN, MAX_JSON_DEPTH, InvalidParameter, check_json
from ..supervisor import InvalidPattern
from ._errors import BadRequest, InvalidId, InvalidJSON, UnsupportedMediaType

__all__ = [
    "MAX_DEPTH",
    "check_id",
    "check_media_type",
    "check_name",
    "check_topic",
    "media_type",
    "parse_count",
    "parse_cursor",
    "parse_flag",
    "parse_json",
]

#: Deepest nesting of arrays and objects a JSON body may have: the wire layer's own bound
#: (request bodies of the OpenAI API stay far below it).
MAX_DEPTH: Final = MAX_JSON_DEPTH

#: A ``starting_after`` cursor: a sequence number, in decimal digits.
_CURSOR: Final = re.compile(r"[0-9]{1,18}")


def parse_cursor(raw: str | None) -> int | None:
    """A ``starting_after`` query value as a sequence number (None when absent). Digits only,
    in full: ``int()`` would take ``" 1"``, ``"1\n"``, ``"+1"`` and ``"1_0"``. Raises
    `BadRequest` naming ``starting_after``."""
    if raw is None:
        return None
    if _CURSOR.fullmatch(raw) is None:
        raise BadRequest(
            "'starting_after' must be an integer from 0 to 10**18", field="starting_after"
        )
    return int(raw)


def parse_count(raw: str | None, field: str, default: int, most: int) -> int:
    """A count query value (``limit``, ``max_children``): decimal digits, 0 to ``most``;
    ``default`` when absent. Raises `BadRequest` naming ``field``."""
    if raw is None:
        return default
    if _CURSOR.fullmatch(raw) is None or int(raw) > most:
        raise BadRequest(f"'{field}' must be an integer from 0 to {most}", field=field)
    return int(raw)


def parse_flag(raw: str | None, field: str) -> bool:
    """A boolean query value: ``true``/``1`` or ``false``/``0`` (absent: false). Raises
    `BadRequest` naming ``field``."""
    if raw is None or raw in ("false", "0"):
        return False
    if raw in ("true", "1"):
        return True
    raise BadRequest(f"'{field}' must be true or false", field=field)


#: Response, file and stream ids: what the API and the daemon issue (``resp_...``, ``file-...``);
#: the wire layer's own rule, so the gateway and the Python facade accept the same ids.
_ID: Final = re.compile(API_ID_PATTERN)
#: Session and agent ids: the caller chooses them; they become a topic segment and a name (the
#: actors layer's rule).
_NAME: Final = re.compile(NAME_PATTERN)


def check_id(value: object, field: str) -> str:
    """``value`` if it is an id the API issues (`API_ID_PATTERN`, in full).

    Raises `InvalidId` naming ``field``.
    """
    if not isinstance(value, str):
        raise InvalidId(field, repr(value), "must be a string")
    if _ID.fullmatch(value) is None:
        raise InvalidId(field, value, f"must match {API_ID_PATTERN}")
    return value


def check_name(value: object, field: str) -> str:
    """``value`` if it can name a session or an agent (`NAME_PATTERN`, in full).

    Raises `InvalidId` naming ``field``.
    """
    if not isinstance(value, str):
        raise InvalidId(field, repr(value), "must be a string")
    if _NAME.fullmatch(value) is None:
        raise InvalidId(field, value, f"must match {NAME_PATTERN}")
    return value


def check_topic(pattern: str) -> str:
    """``pattern`` if its characters can form a subscription pattern (the bus checks its
    structure). Raises ``InvalidPattern`` (a ``ValueError``, as the bus raises it)."""
    if not is_topic_pattern(pattern):
        raise InvalidPattern(
            pattern, "expected 1-256 of A-Z a-z 0-9 _ - : @ + = and '.', '*', '**'"
        )
    return pattern


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    # json reads 1e999 as inf without asking parse_constant: no layer below could send it.
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"{text[:40]} is out of range for a JSON number (a finite double)")
    return value


def parse_json(data: bytes | str, what: str = "the request body") -> Any:
    """``data`` parsed as JSON. Raises `InvalidJSON` if it is not JSON, not UTF-8, nested
    deeper than `MAX_DEPTH` or carries ``NaN``/``Infinity``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise InvalidJSON(f"{what} is not UTF-8") from None
    except InvalidJSON:
        raise
    except ValueError as exc:  # JSONDecodeError, and an integer past Python's 4,300 digits
        raise InvalidJSON(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidJSON(f"{what} is nested deeper than {MAX_DEPTH} levels") from None
    # What json.loads let through and the wire would refuse: nesting past the bound, a lone
    # surrogate (UTF-8 cannot hold one; a "\ud800" escape can make one). The wire's own check,
    # walked only when the text could hold either: many brackets, or an escape.
    if text.count("[") + text.count("{") > MAX_DEPTH or "\\u" in text:
        try:
            check_json(value)
        except InvalidParameter as exc:
            raise InvalidJSON(f"{what}: {exc}", field=exc.field or None) from None
    return value


def media_type(content_type: str | None) -> str | None:
    """The media type of a ``content-type`` value, lowercased, without its parameters."""
    if not content_type:
        return None
    parser = _HeaderParser()
    parser["content-type"] = content_type
    return parser.get_content_type()


def check_media_type(content_type: str | None, body: bytes, accepted: str) -> None:
    """Refuse a body that is not of the ``accepted`` media type; an empty body without a
    content type passes (``POST .../cancel``). Raises `UnsupportedMediaType`."""
    if not content_type and not body:
        return
    if media_type(content_type) != accepted:
        raise UnsupportedMediaType(content_type, accepted)
