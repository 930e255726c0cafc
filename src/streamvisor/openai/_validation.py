"""What the wire accepts from a caller: the shape of an API id, and JSON the API can parse.

Both checks run before any I/O. An id is put into a URL path only after `check_id` accepted it,
and then percent-encoded as one path segment anyway (`id_segment`), so no id can reach another
endpoint (``../files``) or make httpx refuse the URL. A request body is walked once by
`encode_json`, which names the first offending field (``temperature``, ``input[2].content``) and
returns the bytes that are sent, so the check and the encoding cannot disagree.
"""

from __future__ import annotations

import json
import math
import re
from typing import Final
from urllib.parse import quote

from ._errors import InvalidId, InvalidParameter

__all__ = [
    "API_ID_PATTERN",
    "MAX_JSON_DEPTH",
    "MAX_REQUEST_BYTES",
    "MODEL_PATTERN",
    "check_id",
    "check_json",
    "check_model",
    "check_request",
    "encode_json",
    "id_segment",
]

#: What an id issued by the API may look like (``resp_…``, ``file-…``, ``upload_…``, ``part_…``):
#: 1-256 letters, digits, ``_ - :``, starting with a letter or digit, matched in full. No dots:
#: an id is one path segment, and no id the API issues has one.
API_ID_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9_:-]{0,255}"
_API_ID: Final = re.compile(API_ID_PATTERN)

#: Containers (objects and arrays) nested deeper than this are refused.
MAX_JSON_DEPTH: Final = 64
#: The largest encoded request body (bytes). Inline images may add up to 50 MB per request (the
#: API's limit), which base64 makes about 67 MB: the bound leaves room for that and no more.
MAX_REQUEST_BYTES: Final = 80 * 1024 * 1024

_SCALARS: Final = (int, type(None))


def check_id(value: object, field: str) -> str:
    """Return ``value`` if it can be an id issued by the API; raise `InvalidId` otherwise.

    ``field`` names the argument in the error (``response_id``, ``file_id``, ``upload_id``).
    """
    if not isinstance(value, str) or _API_ID.fullmatch(value) is None:
        raise InvalidId(field, value, f"must match {API_ID_PATTERN}")
    return value


def id_segment(value: object, field: str) -> str:
    """``value`` checked by `check_id`, percent-encoded as one URL path segment."""
    return quote(check_id(value, field), safe="")


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _check_text(text: str, path: str) -> None:
    # A lone surrogate ("\udcff", from a mis-decoded file name) cannot be encoded as UTF-8.
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError as exc:
            raise InvalidParameter(
                path, f"text with a lone surrogate at {exc.start} is not UTF-8"
            ) from None


def _walk(value: object, path: str, depth: int) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParameter(
                path, f"{value!r} is not a JSON number (the API takes finite numbers only)"
            )
        return
    if isinstance(value, str):
        _check_text(value, path)
        return
    if isinstance(value, _SCALARS):  # bool is an int
        return
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_JSON_DEPTH:
            raise InvalidParameter(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidParameter(
                        f"{path}[{key!r}]", "object keys must be strings in JSON"
                    )
                _check_text(key, path)
                _walk(item, _child(path, key), depth + 1)
        else:
            for index, item in enumerate(value):
                _walk(item, _child(path, index), depth + 1)
        return
    raise InvalidParameter(path, f"a {type(value).__name__} is not a JSON value")


def check_json(value: object, field: str = "") -> None:
    """Raise `InvalidParameter` unless ``value`` is plain JSON the API can parse.

    Plain JSON: dicts with str keys, lists and tuples, str (UTF-8 encodable: no lone
    surrogates), int, bool, None and *finite* floats (no NaN or ±Infinity, which Python's
    ``json`` would write but the API refuses), nested at most `MAX_JSON_DEPTH` deep. The error
    names the first offending field below ``field``.
    """
    _walk(value, field, 0)


_NUMBER: Final = (int, float)
#: The JSON type of each well-known top-level parameter of Chat Completions and Responses (None,
#: JSON's null, is always allowed: the API reads it as "not set"). A value of another type is
#: refused here, as the API would refuse it, before any I/O; other parameters pass unchecked.
_PARAMETER_TYPES: Final[dict[str, tuple[type, ...]]] = {
    **dict.fromkeys(("temperature", "top_p", "presence_penalty", "frequency_penalty"), _NUMBER),
    **dict.fromkeys(
        (
            "max_tokens",
            "max_completion_tokens",
            "max_output_tokens",
            "max_tool_calls",
            "n",
            "seed",
            "top_logprobs",
        ),
        (int,),
    ),
    **dict.fromkeys(("stream", "parallel_tool_calls", "store", "logprobs", "background"), (bool,)),
    **dict.fromkeys(
        (
            "model",
            "user",
            "instructions",
            "previous_response_id",
            "service_tier",
            "prompt_cache_key",
            "safety_identifier",
        ),
        (str,),
    ),
    **dict.fromkeys(
        ("metadata", "stream_options", "response_format", "text", "reasoning", "logit_bias"),
        (dict,),
    ),
    "messages": (list, tuple),
    "tools": (list, tuple),
    "stop": (str, list, tuple),
    "input": (str, list, tuple),
    "tool_choice": (str, dict),
}
_JSON_NAMES: Final = {
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    str: "a string",
    dict: "an object",
    list: "an array",
    tuple: "an array",
}


#: A model name: what the API and compatible servers use (``gpt-4o``, ``o3-pro``,
#: ``ft:gpt-4o-mini:org::id``, ``org/model``): 1-256 printable characters, no whitespace.
MODEL_PATTERN: Final = r"[^\s\x00-\x1f\x7f]{1,256}"
_MODEL: Final = re.compile(MODEL_PATTERN)


def check_model(model: object, field: str = "model") -> str:
    """``model`` if it can name a model (`MODEL_PATTERN`, in full). Raises `InvalidParameter`."""
    if not isinstance(model, str) or _MODEL.fullmatch(model) is None or not model.isprintable():
        raise InvalidParameter(
            field, f"a model name is 1-256 printable characters without spaces, not {model!r:.80}"
        )
    return model


def check_request(body: object, field: str = "") -> None:
    """`check_json`, then the JSON type of each well-known top-level parameter (``temperature``
    a number, ``max_output_tokens`` an integer, ``stream`` a boolean, ``tools`` an array, ...).

    Raises `InvalidParameter` naming the field (below ``field``: ``options.temperature``).
    """
    check_json(body, field)
    if not isinstance(body, dict):
        return
    for name, value in body.items():
        allowed = _PARAMETER_TYPES.get(name)
        if allowed is None or value is None:
            continue
        # A bool is an int in Python, never in JSON: true is no temperature.
        fits = bool in allowed if isinstance(value, bool) else isinstance(value, allowed)
        if not fits:
            wanted = " or ".join(dict.fromkeys(_JSON_NAMES[t] for t in allowed))
            raise InvalidParameter(_child(field, name), f"must be {wanted}, not {value!r:.80}")
        if name == "model":
            check_model(value, _child(field, name))


def encode_json(body: object) -> bytes:
    """The request body as sent (UTF-8 JSON, compact, as httpx encodes it), after `check_json`.

    Raises:
        InvalidParameter: a value that is not plain JSON, nested too deep, or a body larger than
            `MAX_REQUEST_BYTES` once encoded (``field`` is ``""``: the body as a whole).
    """
    check_json(body)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    if len(data) > MAX_REQUEST_BYTES:
        raise InvalidParameter(
            "", f"the request body is {len(data)} bytes encoded; the limit is {MAX_REQUEST_BYTES}"
        )
    return data
