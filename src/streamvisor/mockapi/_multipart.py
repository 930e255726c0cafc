"""A small `multipart/form-data` parser (RFC 7578), enough for the Files and Uploads APIs."""

from __future__ import annotations

from email.message import Message

import attrs

from ._wire import ApiProblem

__all__ = ["FormPart", "parse_multipart"]


@attrs.frozen
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def _boundary(content_type: str) -> bytes:
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise ApiProblem(
            400,
            "Invalid Content-Type header, expected multipart/form-data.",
            code="invalid_content_type",
        )
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ApiProblem(400, "Missing boundary in multipart/form-data Content-Type header.")
    return boundary.encode("latin-1")


def _disposition(raw_headers: bytes) -> tuple[str, str | None, str | None]:
    message = Message()
    for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
        header, sep, value = line.partition(":")
        if sep:
            message[header.strip()] = value.strip()
    field = message.get_param("name", header="content-disposition")
    filename = message.get_param("filename", header="content-disposition")
    if not isinstance(field, str):
        raise ApiProblem(400, "Malformed multipart body: a part has no name.")
    return (
        field,
        filename if isinstance(filename, str) else None,
        message.get("content-type"),
    )


def parse_multipart(content_type: str, body: bytes) -> dict[str, FormPart]:
    """The parts of a multipart body by field name (the last wins). Raises `ApiProblem` (400)."""
    delimiter = b"--" + _boundary(content_type)
    sections = body.split(delimiter)
    if len(sections) < 2:
        raise ApiProblem(400, "Malformed multipart body.")
    parts: dict[str, FormPart] = {}
    for section in sections[1:]:
        if section.startswith(b"--"):
            break
        section = section.removeprefix(b"\r\n")
        head, sep, data = section.partition(b"\r\n\r\n")
        if not sep:
            raise ApiProblem(400, "Malformed multipart body: a part has no header block.")
        name, filename, part_type = _disposition(head)
        parts[name] = FormPart(name, filename, part_type, data.removesuffix(b"\r\n"))
    return parts
