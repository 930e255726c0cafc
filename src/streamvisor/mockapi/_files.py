"""The Files and Uploads APIs, with the real limits (reference §5)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import trio

from ._http import Request, Responder
from ._multipart import FormPart, parse_multipart
from ._state import FileRecord, MockState, PartRecord, UploadRecord
from ._wire import ApiProblem, missing_parameter, query_limit

__all__ = [
    "add_part",
    "cancel_upload",
    "complete_upload",
    "create_file",
    "create_upload",
    "delete_file",
    "file_content",
    "list_files",
    "retrieve_file",
]

CREATE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: Purposes whose content the API refuses to hand back.
NOT_DOWNLOADABLE = frozenset({"assistants"})


def _purpose(value: str | None) -> str:
    if value is None or value == "":
        raise missing_parameter("purpose")
    if value not in CREATE_PURPOSES:
        raise ApiProblem(
            400,
            f"Invalid value for 'purpose': '{value}'. Supported values are: "
            + ", ".join(f"'{p}'" for p in CREATE_PURPOSES)
            + ".",
            param="purpose",
            code="invalid_value",
        )
    return value


def _text(part: FormPart | None) -> str | None:
    return None if part is None else part.data.decode("utf-8", "replace")


def _expires_at(parts: dict[str, FormPart], created: int, purpose: str) -> int | None:
    anchor = _text(parts.get("expires_after[anchor]"))
    seconds = _text(parts.get("expires_after[seconds]"))
    if anchor is None and seconds is None:
        return created + 30 * 86400 if purpose == "batch" else None
    if anchor != "created_at":
        raise ApiProblem(
            400,
            "Invalid value for 'expires_after.anchor': expected 'created_at'.",
            param="expires_after.anchor",
            code="invalid_value",
        )
    try:
        value = int(seconds or "")
    except ValueError:
        value = -1
    if not 3600 <= value <= 2_592_000:
        raise ApiProblem(
            400,
            "Invalid 'expires_after.seconds': expected a value between 3600 and 2592000.",
            param="expires_after.seconds",
            code="invalid_value",
        )
    return created + value


def _file(state: MockState, file_id: str) -> FileRecord:
    record = state.files.get(file_id)
    if record is None:
        raise ApiProblem(404, f"No such File object: {file_id}", param="id")
    return record


async def create_file(state: MockState, request: Request, responder: Responder) -> None:
    """`POST /v1/files` (multipart: `purpose`, `file`, optional `expires_after[...]`)."""
    parts = parse_multipart(request.headers.get("content-type", ""), request.body)
    purpose = _purpose(_text(parts.get("purpose")))
    upload = parts.get("file")
    if upload is None or upload.filename is None:
        raise missing_parameter("file")
    if len(upload.data) > state.config.max_file_bytes:
        raise ApiProblem(
            400,
            f"File is too large. Maximum size is {state.config.max_file_bytes} bytes.",
            param="file",
            code="file_too_large",
        )
    created = int(time.time())
    record = FileRecord(
        id=state.ids.alnum("file-", 22),
        filename=upload.filename,
        purpose=purpose,
        data=upload.data,
        created_at=created,
        expires_at=_expires_at(parts, created, purpose),
    )
    state.files[record.id] = record
    await responder.json(200, record.to_json())


async def list_files(state: MockState, request: Request, responder: Responder) -> None:
    """`GET /v1/files?after=&limit=&order=&purpose=` (cursor pagination with `has_more`)."""
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiProblem(
            400,
            f"Invalid value for 'order': '{order}'. Expected 'asc' or 'desc'.",
            param="order",
            code="invalid_value",
        )
    limit = query_limit(query, 10000, 10000)
    records = list(state.files.values())  # insertion order == creation order
    if order == "desc":
        records.reverse()
    purpose = query.get("purpose")
    if purpose:
        records = [r for r in records if r.purpose == purpose]
    after = query.get("after")
    if after:
        ids = [r.id for r in records]
        if after not in ids:
            raise ApiProblem(400, f"No such File object: {after}", param="after")
        records = records[ids.index(after) + 1 :]
    page = records[:limit]
    body: dict[str, Any] = {
        "object": "list",
        "data": [r.to_json() for r in page],
        "has_more": len(records) > limit,
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
    }
    await responder.json(200, body)


async def retrieve_file(
    state: MockState, request: Request, responder: Responder, file_id: str
) -> None:
    """`GET /v1/files/{id}`."""
    await responder.json(200, _file(state, file_id).to_json())


async def file_content(
    state: MockState, request: Request, responder: Responder, file_id: str
) -> None:
    """`GET /v1/files/{id}/content`: the raw bytes (refused for some purposes)."""
    record = _file(state, file_id)
    if record.purpose in NOT_DOWNLOADABLE:
        raise ApiProblem(400, f"Not allowed to download files of purpose: {record.purpose}")
    await responder.bytes(200, record.data, "application/octet-stream")


async def delete_file(
    state: MockState, request: Request, responder: Responder, file_id: str
) -> None:
    """`DELETE /v1/files/{id}`."""
    _file(state, file_id)
    del state.files[file_id]
    await responder.json(200, {"id": file_id, "object": "file", "deleted": True})


def _upload(state: MockState, upload_id: str) -> UploadRecord:
    record = state.uploads.get(upload_id)
    if record is None:
        raise ApiProblem(404, f"Upload with id '{upload_id}' not found.", param="upload_id")
    if record.status == "pending" and trio.current_time() >= record.deadline:
        record.status = "expired"
    return record


def _require_pending(record: UploadRecord, action: str) -> None:
    if record.status != "pending":
        raise ApiProblem(
            400,
            f"Cannot {action} upload {record.id}: its status is '{record.status}'.",
            param="upload_id",
        )


async def create_upload(state: MockState, request: Request, responder: Responder) -> None:
    """`POST /v1/uploads {bytes, filename, mime_type, purpose}`."""
    body = request.json_object()
    for field in ("bytes", "filename", "mime_type", "purpose"):
        if body.get(field) in (None, ""):
            raise missing_parameter(field)
    size = body["bytes"]
    if not isinstance(size, int) or size < 0:
        raise ApiProblem(400, "Invalid 'bytes': expected a non-negative integer.", param="bytes")
    if size > state.config.max_upload_bytes:
        raise ApiProblem(
            400,
            f"Invalid 'bytes': an Upload can be at most {state.config.max_upload_bytes} bytes.",
            param="bytes",
            code="invalid_value",
        )
    purpose = _purpose(str(body["purpose"]))
    created = int(time.time())
    record = UploadRecord(
        id=state.ids.alnum("upload_", 24),
        bytes=size,
        filename=str(body["filename"]),
        mime_type=str(body["mime_type"]),
        purpose=purpose,
        created_at=created,
        expires_at=created + int(state.config.upload_ttl),
        deadline=trio.current_time() + state.config.upload_ttl,
    )
    state.uploads[record.id] = record
    await responder.json(200, record.to_json())


async def add_part(
    state: MockState, request: Request, responder: Responder, upload_id: str
) -> None:
    """`POST /v1/uploads/{id}/parts` (multipart field `data`, at most 64 MB)."""
    record = _upload(state, upload_id)
    _require_pending(record, "add a part to")
    parts = parse_multipart(request.headers.get("content-type", ""), request.body)
    data = parts.get("data")
    if data is None:
        raise missing_parameter("data")
    if len(data.data) > state.config.max_part_bytes:
        raise ApiProblem(
            400,
            f"Part is too large. Maximum size is {state.config.max_part_bytes} bytes.",
            param="data",
            code="invalid_value",
        )
    part = PartRecord(
        id=state.ids.alnum("part_", 24),
        upload_id=record.id,
        data=data.data,
        created_at=int(time.time()),
    )
    record.parts[part.id] = part
    await responder.json(200, part.to_json())


async def complete_upload(
    state: MockState, request: Request, responder: Responder, upload_id: str
) -> None:
    """`POST /v1/uploads/{id}/complete {part_ids, md5?}`: the File is created from the parts."""
    record = _upload(state, upload_id)
    _require_pending(record, "complete")
    body = request.json_object()
    part_ids = body.get("part_ids")
    if not isinstance(part_ids, list) or not all(isinstance(p, str) for p in part_ids):
        raise missing_parameter("part_ids")
    unknown = [p for p in part_ids if p not in record.parts]
    if unknown:
        raise ApiProblem(
            400, f"Part with id '{unknown[0]}' not found for this upload.", param="part_ids"
        )
    data = b"".join(record.parts[p].data for p in part_ids)
    if len(data) != record.bytes:
        raise ApiProblem(
            400,
            f"The number of bytes uploaded ({len(data)}) does not match the expected number"
            f" of bytes ({record.bytes}).",
            param="part_ids",
        )
    md5 = body.get("md5")
    if md5 and hashlib.md5(data, usedforsecurity=False).hexdigest() != str(md5).lower():
        raise ApiProblem(
            400, "The md5 checksum of the uploaded data does not match 'md5'.", param="md5"
        )
    file = FileRecord(
        id=state.ids.alnum("file-", 22),
        filename=record.filename,
        purpose=record.purpose,
        data=data,
        created_at=int(time.time()),
    )
    state.files[file.id] = file
    record.file = file
    record.status = "completed"
    await responder.json(200, record.to_json())


async def cancel_upload(
    state: MockState, request: Request, responder: Responder, upload_id: str
) -> None:
    """`POST /v1/uploads/{id}/cancel`: no more parts can be added."""
    record = _upload(state, upload_id)
    _require_pending(record, "cancel")
    record.status = "cancelled"
    await responder.json(200, record.to_json())
