"""Image and file input parts, built and checked in the shapes the API really accepts.

The Erlang original sent the Assistants shape ``{"type": "image_file", "image_file": {...}}`` to
the Responses API, which rejects it. The builders here produce:

* Responses: ``{"type": "input_image", "image_url" | "file_id", "detail"}`` and
  ``{"type": "input_file", "file_id" | "file_url" | "file_data" + "filename"}``;
* Chat Completions: ``{"type": "image_url", "image_url": {"url", "detail"}}`` and
  ``{"type": "file", "file": {"file_id" | "file_data" + "filename"}}``.

Inline bytes become ``data:<mime>;base64,...`` URLs whose MIME type is sniffed from the bytes.
:func:`validate_input` / :func:`validate_inputs` check hand-built parts (and whole ``input`` lists)
against the same rules plus the per-request limits, before any network I/O.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs

from ._errors import (
    AssistantsShapeNotAllowed,
    EmptyFile,
    FileTooLarge,
    InvalidDataURL,
    InvalidInputPart,
    RequestLimitExceeded,
    UnsupportedFileType,
)
from ._rules import DEFAULT_RULES, FileRules, check_image
from ._sniff import IMAGE_TYPES, SniffResult, sniff

__all__ = [
    "CHAT_DETAILS",
    "RESPONSES_DETAILS",
    "Api",
    "InputTotals",
    "chat_file_part",
    "chat_image_part",
    "decode_data_url",
    "encode_data_url",
    "file_input",
    "image_input",
    "validate_input",
    "validate_inputs",
]

Api = Literal["responses", "chat"]
Part = dict[str, Any]

#: ``detail`` values of a Responses ``input_image``.
RESPONSES_DETAILS = frozenset({"auto", "low", "high", "original"})
#: ``detail`` values of a Chat Completions ``image_url``.
CHAT_DETAILS = frozenset({"auto", "low", "high"})

_WEB_SCHEMES = ("https://", "http://")


# --------------------------------------------------------------------------------------------
# Data URLs


def encode_data_url(data: bytes, mime_type: str) -> str:
    """``data:<mime_type>;base64,<standard base64 of data>``."""
    return f"data:{mime_type};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str, *, path: str = "<data url>") -> tuple[str, bytes]:
    """Split a base64 ``data:`` URL into its (lower-cased) MIME type and its bytes.

    Raises:
        InvalidDataURL: not a ``data:`` URL, no MIME type, not base64-encoded, or the payload is
            not valid standard base64 (whitespace and URL-safe characters are refused too).
    """
    if not url.startswith("data:"):
        raise InvalidDataURL(path, "not a data: URL")
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise InvalidDataURL(path, "data URL has no ',' between header and payload")
    params = header.split(";")
    mime_type = params[0].strip().lower()
    if "/" not in mime_type:
        raise InvalidDataURL(path, f"data URL header {header!r} has no MIME type")
    if params[-1].strip().lower() != "base64":
        raise InvalidDataURL(path, f"data URL header {header!r} is not ';base64'")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidDataURL(path, f"data URL payload is not valid base64 ({exc})") from None
    return mime_type, data


def _sniff_declared(data: bytes, declared: str | None, path: str) -> SniffResult:
    if not data:
        raise EmptyFile(path)
    found = sniff(data)
    if declared is not None and declared.lower() != found.mime_type:
        raise InvalidDataURL(
            path, f"declared {declared} but the bytes are {found.mime_type} (by content)"
        )
    return found


def _image_data(data: bytes, declared: str | None, rules: FileRules, path: str) -> str:
    found = _sniff_declared(data, declared, path)
    if found.mime_type not in IMAGE_TYPES:
        raise UnsupportedFileType(path, found.mime_type, "input_image", IMAGE_TYPES)
    check_image(data, found, rules=rules, path=path)
    return encode_data_url(data, found.mime_type)


def _file_data(data: bytes, declared: str | None, rules: FileRules, path: str) -> str:
    found = _sniff_declared(data, declared, path)
    if found.mime_type not in rules.input_file_types:
        raise UnsupportedFileType(path, found.mime_type, "input_file", rules.input_file_types)
    if len(data) > rules.max_file_bytes:
        raise FileTooLarge(path, len(data), rules.max_file_bytes, None)
    return encode_data_url(data, found.mime_type)


def _one_of(func: str, **given: object) -> str:
    named = [name for name, value in given.items() if value is not None]
    if len(named) != 1:
        options = ", ".join(f"{name}=" for name in given)
        raise TypeError(f"{func}() takes exactly one of {options} (got {len(named)})")
    return named[0]


def _check_detail(detail: object, allowed: frozenset[str], path: str) -> None:
    if detail not in allowed:
        raise InvalidInputPart(
            path, f"detail {detail!r} is not one of {', '.join(sorted(allowed))}"
        )


def _image_url(url: str, rules: FileRules, path: str) -> str:
    if url.startswith("data:"):
        declared, data = decode_data_url(url, path=path)
        return _image_data(data, declared, rules, path)
    if url.startswith(_WEB_SCHEMES):
        return url
    raise InvalidInputPart(path, f"image URL must be https://, http:// or data:, not {url[:40]!r}")


# --------------------------------------------------------------------------------------------
# Builders


def image_input(
    *,
    file_id: str | None = None,
    data: bytes | None = None,
    mime_type: str | None = None,
    url: str | None = None,
    detail: str = "auto",
    rules: FileRules = DEFAULT_RULES,
    name: str = "<image>",
) -> Part:
    """A Responses ``input_image`` part from an uploaded file, inline bytes or a URL.

    ``data`` is sniffed; ``mime_type``, if given, must agree with it. A ``data:`` ``url`` is checked
    like ``data``. ``name`` labels the image in errors.

    Raises:
        TypeError: not exactly one of ``file_id``, ``data``, ``url``.
        InvalidInputPart: bad ``detail``, or a URL that is not https/http/data.
        InvalidDataURL: ``mime_type`` (or a data URL's header) contradicts the bytes; bad base64.
        EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedImageNotAllowed (of which
            AnimatedGifNotAllowed), MalformedFile, TooManyPixels: inline bytes that are not an
            acceptable image (see :func:`~._rules.check_image`).
    """
    source = _one_of("image_input", file_id=file_id, data=data, url=url)
    _check_detail(detail, RESPONSES_DETAILS, name)
    if source == "file_id":
        return {"type": "input_image", "file_id": _file_id(file_id, name), "detail": detail}
    if source == "data":
        assert data is not None
        image_url = _image_data(data, mime_type, rules, name)
    else:
        assert url is not None
        image_url = _image_url(url, rules, name)
    return {"type": "input_image", "image_url": image_url, "detail": detail}


def file_input(
    *,
    file_id: str | None = None,
    data: bytes | None = None,
    filename: str | None = None,
    mime_type: str | None = None,
    url: str | None = None,
    rules: FileRules = DEFAULT_RULES,
) -> Part:
    """A Responses ``input_file`` part from an uploaded file, inline bytes (+ filename) or a URL.

    Inline ``data`` is sniffed and must be one of ``rules.input_file_types``; ``filename`` names it
    for the model (the API requires it with ``file_data``) and never decides its type.

    Raises:
        TypeError: not exactly one of ``file_id``, ``data``, ``url``; ``data`` without ``filename``.
        InvalidInputPart: a URL that is not https/http, or an empty ``file_id``.
        InvalidDataURL: ``mime_type`` contradicts the bytes.
        EmptyFile, FileTooLarge, UnsupportedFileType: inline bytes that are not acceptable.
    """
    source = _one_of("file_input", file_id=file_id, data=data, url=url)
    name = filename or "<file>"
    if source == "file_id":
        return {"type": "input_file", "file_id": _file_id(file_id, name)}
    if source == "url":
        assert url is not None
        if not url.startswith(_WEB_SCHEMES):
            raise InvalidInputPart(name, f"file URL must be https:// or http://, not {url[:40]!r}")
        return {"type": "input_file", "file_url": url}
    assert data is not None
    if not filename:
        raise TypeError("file_input(data=...) needs filename= (the API requires it with file_data)")
    return {
        "type": "input_file",
        "filename": filename,
        "file_data": _file_data(data, mime_type, rules, name),
    }


def chat_image_part(
    *,
    url: str | None = None,
    data: bytes | None = None,
    mime_type: str | None = None,
    detail: str = "auto",
    rules: FileRules = DEFAULT_RULES,
    name: str = "<image>",
) -> Part:
    """A Chat Completions ``image_url`` part from a URL or inline bytes (sniffed, checked).

    Raises:
        TypeError: not exactly one of ``url``, ``data``.
        InvalidInputPart: bad ``detail`` (auto/low/high) or URL scheme.
        InvalidDataURL, EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedImageNotAllowed,
            MalformedFile, TooManyPixels: as for :func:`image_input`.
    """
    source = _one_of("chat_image_part", url=url, data=data)
    _check_detail(detail, CHAT_DETAILS, name)
    if source == "data":
        assert data is not None
        image_url = _image_data(data, mime_type, rules, name)
    else:
        assert url is not None
        image_url = _image_url(url, rules, name)
    return {"type": "image_url", "image_url": {"url": image_url, "detail": detail}}


def chat_file_part(
    *,
    file_id: str | None = None,
    data: bytes | None = None,
    filename: str | None = None,
    mime_type: str | None = None,
    rules: FileRules = DEFAULT_RULES,
) -> Part:
    """A Chat Completions ``file`` part from an uploaded file or inline bytes (+ filename).

    Raises:
        TypeError: not exactly one of ``file_id``, ``data``; ``data`` without ``filename``.
        InvalidInputPart: an empty ``file_id``.
        InvalidDataURL, EmptyFile, FileTooLarge, UnsupportedFileType: as for :func:`file_input`.
    """
    source = _one_of("chat_file_part", file_id=file_id, data=data)
    name = filename or "<file>"
    if source == "file_id":
        return {"type": "file", "file": {"file_id": _file_id(file_id, name)}}
    assert data is not None
    if not filename:
        raise TypeError("chat_file_part(data=...) needs filename=")
    file_data = _file_data(data, mime_type, rules, name)
    return {"type": "file", "file": {"file_data": file_data, "filename": filename}}


def _file_id(file_id: object, path: str) -> str:
    if not isinstance(file_id, str) or not file_id.strip():
        raise InvalidInputPart(path, f"file_id must be a non-empty string, not {file_id!r}")
    return file_id


# --------------------------------------------------------------------------------------------
# Validation of hand-built parts


@attrs.frozen
class InputTotals:
    """What one part (or a whole request) counts against the per-request image limits."""

    #: Images referenced (inline, by URL or by file id).
    images: int = 0
    #: Decoded bytes of inline (data URL) images; images by URL or file id are not counted.
    image_bytes: int = 0

    def __add__(self, other: InputTotals) -> InputTotals:
        return InputTotals(self.images + other.images, self.image_bytes + other.image_bytes)


_CHAT_TYPES = {"image_url": "input_image", "file": "input_file"}
_RESPONSES_TYPES = {"input_image": "image_url", "input_file": "file"}


def validate_input(
    part: object,
    *,
    api: Api = "responses",
    rules: FileRules = DEFAULT_RULES,
    path: str = "part",
) -> InputTotals:
    """Check one hand-built content part for ``api``; return what it counts toward the limits.

    Parts of types this module does not know (``input_text``, ``output_text``, ...) pass, apart
    from having to be objects with a ``type``: the check is for the image and file shapes.

    Raises:
        AssistantsShapeNotAllowed: an Assistants ``image_file`` part (the message says what to use).
        InvalidInputPart: not an object, no ``type``, the other API's shape, both or neither of the
            alternatives (``image_url``/``file_id``; ``file_id``/``file_url``/``file_data``),
            ``file_data`` without ``filename``, a bad ``detail`` or URL.
        InvalidDataURL: a data URL with a bad header or base64, or a MIME type the bytes contradict.
        EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedImageNotAllowed, MalformedFile,
            TooManyPixels: inline bytes that are not acceptable.
    """
    if not isinstance(part, Mapping):
        raise InvalidInputPart(path, f"a content part must be an object, not {type(part).__name__}")
    kind = part.get("type")
    if not isinstance(kind, str):
        raise InvalidInputPart(path, "a content part needs a string 'type'")
    if kind == "image_file":
        _reject_assistants_shape(part, api, path)
    if api == "responses":
        if kind in _CHAT_TYPES:
            raise InvalidInputPart(
                path,
                f"{kind!r} is the Chat Completions shape; the Responses API takes "
                f"{{'type': {_CHAT_TYPES[kind]!r}, ...}}",
            )
        if kind == "input_image":
            return _check_input_image(part, rules, path)
        if kind == "input_file":
            _check_file_fields(part, ("file_id", "file_url", "file_data"), rules, path)
    else:
        if kind in _RESPONSES_TYPES:
            raise InvalidInputPart(
                path,
                f"{kind!r} is the Responses shape; Chat Completions takes "
                f"{{'type': {_RESPONSES_TYPES[kind]!r}, ...}}",
            )
        if kind == "image_url":
            return _check_chat_image(part, rules, path)
        if kind == "file":
            inner = part.get("file")
            if not isinstance(inner, Mapping):
                raise InvalidInputPart(path, "a 'file' part needs a 'file' object")
            _check_file_fields(inner, ("file_id", "file_data"), rules, path)
    return InputTotals()


def _reject_assistants_shape(part: Mapping[str, Any], api: Api, path: str) -> None:
    inner = part.get("image_file")
    file_id = inner.get("file_id") if isinstance(inner, Mapping) else None
    shown = repr(file_id) if file_id else "'file-...'"
    if api == "responses":
        use = f"{{'type': 'input_image', 'file_id': {shown}, 'detail': 'auto'}}"
    else:
        use = "{'type': 'image_url', 'image_url': {'url': ...}} (Chat takes no image file ids)"
    raise AssistantsShapeNotAllowed(
        path, f"'image_file' is the Assistants API shape, not accepted here; use {use}"
    )


def _check_input_image(part: Mapping[str, Any], rules: FileRules, path: str) -> InputTotals:
    image_url, file_id = part.get("image_url"), part.get("file_id")
    if (image_url is None) == (file_id is None):
        raise InvalidInputPart(path, "input_image needs exactly one of 'image_url' and 'file_id'")
    if "detail" in part:
        _check_detail(part["detail"], RESPONSES_DETAILS, path)
    if file_id is not None:
        _file_id(file_id, path)
        return InputTotals(images=1)
    if isinstance(image_url, Mapping):
        raise InvalidInputPart(
            path,
            "image_url must be a URL string in the Responses API "
            "(an object {'url': ...} is the Chat Completions shape)",
        )
    return _check_image_url(image_url, rules, path)


def _check_chat_image(part: Mapping[str, Any], rules: FileRules, path: str) -> InputTotals:
    inner = part.get("image_url")
    if not isinstance(inner, Mapping):
        raise InvalidInputPart(path, "an 'image_url' part needs an object {'url': ..., 'detail'}")
    if "detail" in inner:
        _check_detail(inner["detail"], CHAT_DETAILS, path)
    return _check_image_url(inner.get("url"), rules, path)


def _check_image_url(url: object, rules: FileRules, path: str) -> InputTotals:
    if not isinstance(url, str):
        raise InvalidInputPart(path, f"image URL must be a string, not {type(url).__name__}")
    if url.startswith("data:"):
        declared, data = decode_data_url(url, path=path)
        _image_data(data, declared, rules, path)
        return InputTotals(images=1, image_bytes=len(data))
    _image_url(url, rules, path)
    return InputTotals(images=1)


def _check_file_fields(
    fields: Mapping[str, Any], options: tuple[str, ...], rules: FileRules, path: str
) -> None:
    present = [name for name in options if fields.get(name) is not None]
    if len(present) != 1:
        raise InvalidInputPart(path, f"a file part needs exactly one of {', '.join(options)}")
    (name,) = present
    value = fields[name]
    if name == "file_id":
        _file_id(value, path)
    elif name == "file_url":
        if not isinstance(value, str) or not value.startswith(_WEB_SCHEMES):
            raise InvalidInputPart(path, "file_url must be an https:// or http:// URL")
    else:
        if not isinstance(fields.get("filename"), str) or not fields["filename"]:
            raise InvalidInputPart(path, "file_data needs a 'filename'")
        if not isinstance(value, str):
            raise InvalidInputPart(path, "file_data must be a data: URL string")
        declared, data = decode_data_url(value, path=path)
        _file_data(data, declared, rules, path)


def validate_inputs(
    items: str | Iterable[object],
    *,
    api: Api = "responses",
    rules: FileRules = DEFAULT_RULES,
) -> InputTotals:
    """Check a request's input: every part, then the per-request image count and bytes.

    ``items`` is a Responses ``input`` (a string, or a list of items) or a list of Chat messages,
    or simply a list of content parts: items with a ``content`` list are entered, and their parts
    are labelled ``input[i].content[j]`` in errors; other items are checked as parts (``input[i]``).

    Raises:
        RequestLimitExceeded: more than ``rules.max_images_per_request`` images, or more than
            ``rules.max_request_image_bytes`` of inline image bytes.
        Any error of :func:`validate_input`, for the first bad part.
    """
    if isinstance(items, str):
        return InputTotals()
    totals = InputTotals()
    for i, item in enumerate(items):
        content = item.get("content") if isinstance(item, Mapping) else None
        if isinstance(content, str):
            continue
        if isinstance(content, list):
            for j, part in enumerate(content):
                where = f"input[{i}].content[{j}]"
                totals += validate_input(part, api=api, rules=rules, path=where)
        elif isinstance(item, Mapping) and "role" in item and "type" not in item:
            continue  # a message without content (e.g. an assistant turn with only tool calls)
        else:
            totals += validate_input(item, api=api, rules=rules, path=f"input[{i}]")
    if totals.images > rules.max_images_per_request:
        raise RequestLimitExceeded(
            "request",
            "max_images_per_request",
            totals.images,
            rules.max_images_per_request,
            "images",
        )
    if totals.image_bytes > rules.max_request_image_bytes:
        raise RequestLimitExceeded(
            "request",
            "max_request_image_bytes",
            totals.image_bytes,
            rules.max_request_image_bytes,
            "inline image bytes",
        )
    return totals
