"""ASGI plumbing by hand: the parsed request, a one-response sender, multipart form parsing.

No web framework: `Request` is what the gateway needs of ``scope`` + body, `Responder` sends one
response (a whole JSON/bytes body, or a stream of chunks), and `parse_form` reads the
``multipart/form-data`` of an upload (RFC 7578), exactly, byte for byte.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from email.message import Message as _HeaderParser
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import attrs
import trio

from .._asgi import (
    BodyTooLarge,
    Message,
    Receive,
    Scope,
    Send,
    encode_headers,
    parse_query,
)
from .._asgi import read_body as _read_body
from ._checks import parse_json
from ._errors import BadRequest, PayloadTooLarge, Redactor

__all__ = [
    "ClientGone",
    "FormPart",
    "Receive",
    "Request",
    "Responder",
    "Scope",
    "Send",
    "dumps",
    "json_object",
    "parse_form",
    "parse_query",
    "path_segments",
    "read_body",
    "serve_watched",
    "upload_form",
    "watch_disconnect",
]


class ClientGone(Exception):
    """The client went away while the response was being sent (nothing more can be sent)."""


def _json_default(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if attrs.has(type(value)):
        return attrs.asdict(value, recurse=False)  # type: ignore[arg-type]
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    return str(value)


#: A lone surrogate: text no UTF-8 encoder takes.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def json_text(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """Compact strict JSON (RFC 8259), UTF-8 as is, that every UTF-8 encoder and every JSON
    parser takes.

    Two things `json.loads` reads from an OpenAI-compatible server's frame have no strict JSON
    form, and are written as a client in any language can read them (they used to fail the
    encode and end the client's connection, or reach a browser as a ``NaN`` token its
    ``JSON.parse`` refuses):

    - a string holding a lone surrogate (half an emoji, sent as a ``"\\ud83d"`` escape): the
      JSON is written with ASCII escapes, which read back to the same string;
    - a NaN or an infinity: written as ``null``, as JavaScript's ``JSON.stringify`` writes it.
    """
    try:
        text = json.dumps(
            value, separators=(",", ":"), default=default, ensure_ascii=False, allow_nan=False
        )
    except ValueError:  # a NaN or an infinity somewhere (the rare path)
        value = _finite(value, default)
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii() and _SURROGATE.search(text) is not None:
        return json.dumps(value, separators=(",", ":"), default=default)
    return text


def _finite(value: Any, default: Callable[[Any], Any] | None) -> Any:
    """``value`` as plain JSON data with every non-finite float replaced by None (what
    ``default`` converts is converted first, so that a record's floats are reached too)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, dict):
        return {key: _finite(item, default) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item, default) for item in value]
    if default is None:
        return value  # not JSON: the encode raises its TypeError
    return _finite(default(value), default)


def dumps(value: Any) -> str:
    """Compact JSON (`json_text`); mappings, attrs records and errors are converted, anything
    else is str()."""
    return json_text(value, _json_default)


@attrs.frozen
class Request:
    """What one HTTP request carried; ``params`` are the route's path parameters."""

    method: str
    path: str
    query: Mapping[str, str]
    #: Not in the repr: they carry the token.
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=lambda body: f"<{len(body)} bytes>")
    params: Mapping[str, str] = attrs.field(factory=dict)
    #: It carried the gateway's token (only the page is served without it).
    authenticated: bool = True

    @classmethod
    def from_scope(
        cls,
        scope: Scope,
        headers: Mapping[str, str],
        body: bytes,
        params: Mapping[str, str],
        *,
        authenticated: bool,
    ) -> Request:
        return cls(
            method=str(scope["method"]).upper(),
            path=str(scope["path"]),
            query=parse_query(scope),
            headers=dict(headers),
            body=body,
            params=dict(params),
            authenticated=authenticated,
        )

    def json_object(self, *, empty_ok: bool = False) -> dict[str, Any]:
        """The body as a JSON object (``{}`` for an empty body when ``empty_ok``).

        Raises `InvalidJSON` if it is not JSON (see `parse_json`), `BadRequest` if it is not an
        object.
        """
        return json_object(self.body, empty_ok=empty_ok)


def json_object(body: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """``body`` as a JSON object (``{}`` for an empty body when ``empty_ok``). Raises
    `InvalidJSON` if it is not JSON (see `parse_json`), `BadRequest` if it is not an object."""
    if not body.strip():
        if empty_ok:
            return {}
        raise BadRequest("the request body must be a JSON object")
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body.

    Raises `PayloadTooLarge` past ``limit`` bytes (the rest is read and discarded, so the
    connection stays usable for the answer) and ``trio.BrokenResourceError`` if the client
    disconnects first.
    """
    try:
        return await _read_body(receive, limit)
    except BodyTooLarge:
        raise PayloadTooLarge(limit) from None


async def watch_disconnect(
    receive: Receive, responder: Responder, cancel_scope: trio.CancelScope
) -> None:
    """Cancel ``cancel_scope`` when the client goes away (after the body has been read)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            responder.disconnected = True
            cancel_scope.cancel()
            return


async def serve_watched(
    receive: Receive,
    out: Responder,
    handler: Callable[[], Awaitable[None]],
    answer: Callable[[Exception], Awaitable[None]],
) -> None:
    """Run ``handler`` until it returns or the client goes away (which cancels it); an
    exception it raises is answered by ``answer`` (an error response, or the end of a stream
    already started)."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_disconnect, receive, out, nursery.cancel_scope)
        try:
            await handler()
        except ClientGone:
            pass
        except Exception as exc:
            await answer(exc)
        nursery.cancel_scope.cancel()


class Responder:
    """Sends one HTTP response; every text it sends goes through the `Redactor` first."""

    def __init__(self, send: Send, redact: Redactor) -> None:
        self._send = send
        self.redact = redact
        self.started = False
        self.finished = False
        #: The client went away: nothing more can be sent.
        self.disconnected = False
        #: What a stream sends last if the gateway stops while it runs (an SSE frame).
        self.farewell: str | None = None

    async def _message(self, message: Message) -> None:
        try:
            await self._send(message)
        except Exception as exc:
            # The server refuses messages once the client has gone (the disconnect notice may
            # still be on its way to `watch_disconnect`).
            self.disconnected = True
            raise ClientGone(repr(exc)) from exc

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        """Send the status and headers. Raises `ClientGone`."""
        raw = encode_headers(headers)
        await self._message({"type": "http.response.start", "status": status, "headers": raw})
        self.started = True

    async def _body(self, data: bytes, more: bool) -> None:
        await self._message({"type": "http.response.body", "body": data, "more_body": more})

    async def write(self, text: str) -> None:
        """Send a chunk of the body (after `start`). Raises `ClientGone`."""
        data = self.redact(text).encode()
        if data:
            await self._body(data, True)

    async def finish(self) -> None:
        """End the body (nothing happens if it has ended, or the client is gone)."""
        if not self.finished and not self.disconnected:
            self.finished = True
            await self._body(b"", False)

    async def json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send a whole JSON response."""
        data = self.redact(dumps(value)).encode()
        await self.bytes(status, data, "application/json", headers)

    async def bytes(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Send a whole response body with its ``content-length``."""
        await self.start(
            status,
            {
                "content-type": content_type,
                "content-length": str(len(data)),
                "cache-control": "no-store",
                **(headers or {}),
            },
        )
        await self._body(data, False)
        self.finished = True


# ------------------------------------------------------------------------------ multipart form


@attrs.frozen
class FormPart:
    """One field of a ``multipart/form-data`` body."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes = attrs.field(repr=lambda data: f"<{len(data)} bytes>")


def _header_params(lines: list[str]) -> _HeaderParser:
    parser = _HeaderParser()
    for line in lines:
        header, sep, value = line.partition(":")
        if sep:
            parser[header.strip()] = value.strip()
    return parser


def parse_form(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a ``multipart/form-data`` body by field name (the last one wins).

    Raises `BadRequest` for another content type, a missing boundary or a malformed body.
    """
    header = _header_params([f"content-type: {content_type}"])
    if header.get_content_type() != "multipart/form-data":
        raise BadRequest("expected a multipart/form-data body", field="content-type")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise BadRequest("the multipart/form-data content type has no boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise BadRequest("malformed multipart body: no closing boundary")
    parts: dict[str, FormPart] = {}
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n"):
            raise BadRequest("malformed multipart body: a boundary is not followed by CRLF")
        head, sep, data = section[2:].partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise BadRequest("malformed multipart body: a part has no header block")
        fields = _header_params(head.decode("utf-8", "replace").split("\r\n"))
        name = fields.get_param("name", header="content-disposition")
        filename = fields.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            raise BadRequest("malformed multipart body: a part has no name")
        parts[name] = FormPart(
            name=name,
            filename=filename if isinstance(filename, str) else None,
            content_type=fields.get("content-type"),
            data=data[:-2],
        )
    return parts


def path_segments(scope: Scope) -> tuple[str, ...]:
    """The request path's segments, each percent-decoded on its own: ``/background/..%2Ffiles``
    is two segments, the second ``../files`` (an invalid id, not a way into ``/files``).

    Raises `BadRequest` for a segment that is not UTF-8.
    """
    raw = scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8")
    raw = bytes(raw).split(b"?", 1)[0]
    try:
        segments = tuple(unquote_to_bytes(s).decode("utf-8") for s in raw.split(b"/")[1:])
    except UnicodeDecodeError:
        raise BadRequest("the request path is not UTF-8") from None
    return () if segments == ("",) else segments


def upload_form(
    headers: Mapping[str, str], body: bytes, default_purpose: str | None
) -> tuple[FormPart, str]:
    """A file upload's multipart form: its ``file`` part and its ``purpose`` (UTF-8 text;
    ``default_purpose`` when absent, None: required). Raises `BadRequest` naming the field."""
    form = parse_form(headers.get("content-type", ""), body)
    part = form.get("file")
    if part is None:
        raise BadRequest("the form has no 'file' field", field="file")
    purpose_part = form.get("purpose")
    if purpose_part is None:
        if default_purpose is None:
            raise BadRequest("the form has no 'purpose' field", field="purpose")
        return part, default_purpose
    try:
        return part, purpose_part.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest("'purpose' must be UTF-8 text", field="purpose") from None
