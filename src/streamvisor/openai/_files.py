"""Files and Uploads endpoints (reference §5.1-5.2), mixed into `OpenAIClient`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
import structlog
import trio

from ._errors import InvalidRequestError, OpenAIError, UploadFailed
from ._validation import id_segment

__all__ = ["MAX_PART_SIZE", "FilePager", "FilesMixin"]

log = structlog.get_logger("streamvisor.openai")

#: The largest part the Uploads API accepts (64 MB).
MAX_PART_SIZE = 64 * 1024 * 1024
_CANCEL_TIMEOUT = 10.0
_HASH_BLOCK = 1024 * 1024


def _read_range(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(length)


def _md5_file(path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FilePager:
    """Iterates every file of `GET /files`, page by page (`after=<last id>` while `has_more`).

    Raises (while iterating): as `OpenAIClient._send`.
    """

    def __init__(self, client: FilesMixin, params: dict[str, Any]) -> None:
        self._client = client
        self._params = params
        self._page: list[dict[str, Any]] = []
        self._pos = 0
        self._more = True
        #: Pages fetched so far.
        self.pages = 0

    def __aiter__(self) -> FilePager:
        return self

    async def __anext__(self) -> dict[str, Any]:
        while self._pos >= len(self._page):
            if not self._more:
                raise StopAsyncIteration
            response = await self._client._send("GET", "/files", params=self._params)
            body = response.json()
            self.pages += 1
            data = body.get("data") or []
            self._page, self._pos = data, 0
            self._more = bool(body.get("has_more")) and bool(data)
            if self._more:
                self._params = {**self._params, "after": data[-1]["id"]}
        item = self._page[self._pos]
        self._pos += 1
        return item


class FilesMixin:
    """Files and Uploads calls; every method raises as `OpenAIClient._send` unless stated, and
    `InvalidId` (before any I/O) for a ``file_id``/``upload_id`` the API cannot have issued."""

    if TYPE_CHECKING:

        async def _send(
            self,
            method: str,
            path: str,
            *,
            stream: bool = False,
            background_create: bool = False,
            **kwargs: Any,
        ) -> httpx.Response: ...

    # -- Files -----------------------------------------------------------------------------

    async def upload_file(
        self,
        content: bytes,
        *,
        filename: str,
        purpose: str,
        content_type: str = "application/octet-stream",
        expires_after_seconds: int | None = None,
    ) -> dict[str, Any]:
        """`POST /files` (multipart: `purpose` first, then `file`); returns the FileObject."""
        data: dict[str, str] = {"purpose": purpose}
        if expires_after_seconds is not None:
            data["expires_after[anchor]"] = "created_at"
            data["expires_after[seconds]"] = str(expires_after_seconds)
        response = await self._send(
            "POST", "/files", data=data, files={"file": (filename, content, content_type)}
        )
        result: dict[str, Any] = response.json()
        return result

    def list_files(
        self,
        *,
        purpose: str | None = None,
        limit: int | None = None,
        order: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every file, following the cursor across pages: `async for f in client.list_files():`."""
        params: dict[str, Any] = {}
        if purpose is not None:
            params["purpose"] = purpose
        if limit is not None:
            params["limit"] = limit
        if order is not None:
            params["order"] = order
        return FilePager(self, params)

    async def retrieve_file(self, file_id: str) -> dict[str, Any]:
        """`GET /files/{id}`. Raises `NotFoundError` for an unknown id."""
        fid = id_segment(file_id, "file_id")
        result: dict[str, Any] = (await self._send("GET", f"/files/{fid}")).json()
        return result

    async def file_content(self, file_id: str) -> bytes:
        """`GET /files/{id}/content`: the raw bytes."""
        fid = id_segment(file_id, "file_id")
        response = await self._send("GET", f"/files/{fid}/content", headers={"Accept": "*/*"})
        return response.content

    async def delete_file(self, file_id: str) -> dict[str, Any]:
        """`DELETE /files/{id}`: returns `{"id", "object": "file", "deleted": true}`."""
        fid = id_segment(file_id, "file_id")
        result: dict[str, Any] = (await self._send("DELETE", f"/files/{fid}")).json()
        return result

    # -- Uploads ---------------------------------------------------------------------------

    async def create_upload(
        self, *, filename: str, purpose: str, bytes: int, mime_type: str
    ) -> dict[str, Any]:
        """`POST /uploads`: returns the pending Upload."""
        body = {"filename": filename, "purpose": purpose, "bytes": bytes, "mime_type": mime_type}
        result: dict[str, Any] = (await self._send("POST", "/uploads", json=body)).json()
        return result

    async def add_upload_part(self, upload_id: str, data: bytes) -> dict[str, Any]:
        """`POST /uploads/{id}/parts` (multipart field `data`): returns the part (`part_…` id).

        Raises:
            InvalidRequestError: the part is larger than 64 MB (before any I/O).
        """
        uid = id_segment(upload_id, "upload_id")
        if len(data) > MAX_PART_SIZE:
            raise InvalidRequestError(f"an upload part holds at most {MAX_PART_SIZE} bytes")
        response = await self._send(
            "POST",
            f"/uploads/{uid}/parts",
            files={"data": ("blob", data, "application/octet-stream")},
        )
        result: dict[str, Any] = response.json()
        return result

    async def complete_upload(
        self, upload_id: str, part_ids: Sequence[str], *, md5: str | None = None
    ) -> dict[str, Any]:
        """`POST /uploads/{id}/complete` with the part ids in file order; returns the Upload
        (status `completed`, with the nested FileObject under `file`)."""
        uid = id_segment(upload_id, "upload_id")
        body: dict[str, Any] = {"part_ids": list(part_ids)}
        if md5 is not None:
            body["md5"] = md5
        result: dict[str, Any] = (
            await self._send("POST", f"/uploads/{uid}/complete", json=body)
        ).json()
        return result

    async def cancel_upload(self, upload_id: str) -> dict[str, Any]:
        """`POST /uploads/{id}/cancel`: returns the Upload (status `cancelled`)."""
        uid = id_segment(upload_id, "upload_id")
        result: dict[str, Any] = (await self._send("POST", f"/uploads/{uid}/cancel")).json()
        return result

    async def upload_large(
        self,
        source: bytes | str | os.PathLike[str],
        *,
        filename: str | None = None,
        purpose: str,
        mime_type: str,
        part_size: int = MAX_PART_SIZE,
        max_concurrency: int = 4,
        checksum: bool = True,
    ) -> dict[str, Any]:
        """Upload `source` (bytes or a file path) through the Uploads API, parts in parallel.

        At most `max_concurrency` parts are in flight (and in memory); the parts are completed in
        file order, with the MD5 of the whole when `checksum`. If anything fails, the upload is
        cancelled (bounded, shielded) before the error propagates. Returns the completed Upload.

        Raises:
            InvalidRequestError: bad `part_size`/`max_concurrency`, an empty source, or bytes
                without a `filename` (before any I/O to the API).
            UploadFailed: a part failed; `.upload_id` was cancelled; `.errors` are the causes.
            OSError: the file cannot be read. Otherwise as `_send` (create / complete).
        """
        if not 0 < part_size <= MAX_PART_SIZE:
            raise InvalidRequestError(f"part_size must be in (0, {MAX_PART_SIZE}], got {part_size}")
        if max_concurrency < 1:
            raise InvalidRequestError(f"max_concurrency must be >= 1, got {max_concurrency}")
        path: str | None = None
        if isinstance(source, bytes):
            size = len(source)
            if filename is None:
                raise InvalidRequestError("filename is required when uploading bytes")
        else:
            path = os.fspath(source)
            size = (await trio.Path(path).stat()).st_size
            filename = filename or os.path.basename(path)
        if size == 0:
            raise InvalidRequestError("cannot upload an empty file")

        upload = await self.create_upload(
            filename=filename, purpose=purpose, bytes=size, mime_type=mime_type
        )
        upload_id: str = upload["id"]
        offsets = range(0, size, part_size)
        part_ids: list[str] = [""] * len(offsets)
        limiter = trio.CapacityLimiter(max_concurrency)
        digest: list[str] = []

        async def send_part(index: int, offset: int) -> None:
            async with limiter:
                if path is None:
                    assert isinstance(source, bytes)
                    chunk = source[offset : offset + part_size]
                else:
                    chunk = await trio.to_thread.run_sync(
                        _read_range, path, offset, part_size, abandon_on_cancel=True
                    )
                part = await self.add_upload_part(upload_id, chunk)
                part_ids[index] = part["id"]

        async def hash_source() -> None:
            if path is None:
                assert isinstance(source, bytes)
                digest.append(
                    await trio.to_thread.run_sync(_md5_bytes, source, abandon_on_cancel=True)
                )
            else:
                # Abandoned on cancel: hashing a large file must not delay a failure's cleanup.
                digest.append(
                    await trio.to_thread.run_sync(_md5_file, path, abandon_on_cancel=True)
                )

        finished = False
        try:
            try:
                async with trio.open_nursery() as nursery:
                    for index, offset in enumerate(offsets):
                        nursery.start_soon(send_part, index, offset)
                    if checksum:
                        nursery.start_soon(hash_source)
            except ExceptionGroup as group:
                leaves: list[BaseException] = []
                _flatten(group, leaves)
                raise UploadFailed(upload_id, leaves) from group
            result = await self.complete_upload(
                upload_id, part_ids, md5=digest[0] if digest else None
            )
            finished = True
            return result
        finally:
            if not finished:
                with trio.move_on_after(_CANCEL_TIMEOUT, shield=True):
                    try:
                        await self.cancel_upload(upload_id)
                    except OpenAIError as exc:
                        log.warning(
                            "openai.upload_cancel_failed", upload_id=upload_id, error=str(exc)
                        )


def _flatten(group: BaseExceptionGroup[BaseException], out: list[BaseException]) -> None:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            _flatten(exc, out)
        else:
            out.append(exc)
