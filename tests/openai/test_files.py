"""Files and Uploads: multipart shapes, pagination, and parallel uploads that clean up."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from streamvisor.openai import InvalidRequestError, NotFoundError, UploadFailed

from .conftest import client_for, json_response


def form_fields(request: httpx.Request) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content-type, value) of each multipart part, in order."""
    boundary = request.headers["content-type"].split("boundary=")[1].encode()
    out = []
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        text = head.decode()
        name = re.search(r'name="([^"]+)"', text)
        filename = re.search(r'filename="([^"]+)"', text)
        ctype = re.search(r"Content-Type: (.+)", text)
        out.append(
            (
                name.group(1) if name else "",
                filename.group(1) if filename else None,
                ctype.group(1).strip() if ctype else None,
                value,
            )
        )
    return out


class TestFiles:
    async def test_upload_sends_purpose_first_then_the_file(self, recorded_dir: Path) -> None:
        transcript = json.loads(
            (recorded_dir / "18_files_upload_delete_transcript.json").read_text()
        )
        seen: list[httpx.Request] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            await request.aread()
            seen.append(request)
            return json_response(200, transcript[0]["response"]["body"])

        content = b"Paris is the capital of France. It is known for the Eiffel Tower."
        async with client_for(handler) as client:
            got = await client.upload_file(
                content, filename="tmp2zuepgia.txt", purpose="assistants", content_type="text/plain"
            )
        assert got["id"] == "file-U6Ke78qu8nkANsrCrjoYBr"
        (request,) = seen
        assert request.url.path == "/v1/files"
        assert form_fields(request) == [
            ("purpose", None, None, b"assistants"),
            ("file", "tmp2zuepgia.txt", "text/plain", content),
        ]

    async def test_expiry_fields_follow_the_purpose(self) -> None:
        seen: list[httpx.Request] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            await request.aread()
            seen.append(request)
            return json_response(200, {"id": "file-1"})

        async with client_for(handler) as client:
            await client.upload_file(
                b"x", filename="a.jsonl", purpose="batch", expires_after_seconds=3600
            )
        assert [f[0] for f in form_fields(seen[0])] == [
            "purpose",
            "expires_after[anchor]",
            "expires_after[seconds]",
            "file",
        ]

    async def test_list_files_follows_the_cursor_across_pages(self) -> None:
        pages = {
            None: {"data": [{"id": "f1"}, {"id": "f2"}], "has_more": True},
            "f2": {"data": [{"id": "f3"}], "has_more": True},
            "f3": {"data": [{"id": "f4"}], "has_more": False},
        }
        seen: list[httpx.Request] = []

        async def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return json_response(200, {"object": "list", **pages[request.url.params.get("after")]})

        async with client_for(handler) as client:
            ids = [f["id"] async for f in client.list_files(purpose="user_data", limit=2)]
        assert ids == ["f1", "f2", "f3", "f4"]
        assert [dict(r.url.params) for r in seen] == [
            {"purpose": "user_data", "limit": "2"},
            {"purpose": "user_data", "limit": "2", "after": "f2"},
            {"purpose": "user_data", "limit": "2", "after": "f3"},
        ]

    async def test_retrieve_content_and_delete(self, recorded_dir: Path) -> None:
        transcript = json.loads(
            (recorded_dir / "18_files_upload_delete_transcript.json").read_text()
        )

        async def handler(request: httpx.Request) -> httpx.Response:
            if request.method == "DELETE":
                return json_response(200, transcript[1]["response"]["body"])
            if request.url.path.endswith("/content"):
                return httpx.Response(200, content=b"\x00raw")
            if request.url.path.endswith("/file-missing"):
                return json_response(404, {"error": {"message": "No such File object"}})
            return json_response(200, {"id": "file-1", "object": "file"})

        async with client_for(handler) as client:
            assert (await client.retrieve_file("file-1"))["object"] == "file"
            assert await client.file_content("file-1") == b"\x00raw"
            assert (await client.delete_file("file-U6Ke78qu8nkANsrCrjoYBr"))["deleted"] is True
            with pytest.raises(NotFoundError):
                await client.retrieve_file("file-missing")


class FakeUploads:
    """The Uploads API in memory, recording concurrency and calls."""

    def __init__(self, fail_part: int | None = None) -> None:
        self.parts: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed: dict[str, Any] | None = None
        self.fail_part = fail_part
        self.count = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        path = request.url.path
        if path == "/v1/uploads":
            self.calls.append("create")
            self.created = json.loads(request.content)
            return json_response(200, {"id": "upload_1", "status": "pending"})
        if path.endswith("/parts"):
            self.count += 1
            number = self.count
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            await trio.sleep(0.01 * (number % 3))
            self.in_flight -= 1
            if number == self.fail_part:
                return json_response(400, {"error": {"message": "bad part"}})
            (field,) = form_fields(request)
            assert field[0] == "data"
            part_id = f"part_{len(self.parts)}"
            self.parts[part_id] = field[3]
            return json_response(200, {"id": part_id, "object": "upload.part"})
        if path.endswith("/complete"):
            self.calls.append("complete")
            self.completed = json.loads(request.content)
            return json_response(
                200, {"id": "upload_1", "status": "completed", "file": {"id": "file-9"}}
            )
        if path.endswith("/cancel"):
            self.calls.append("cancel")
            return json_response(200, {"id": "upload_1", "status": "cancelled"})
        raise AssertionError(path)

    def assembled(self) -> bytes:
        assert self.completed is not None
        return b"".join(self.parts[p] for p in self.completed["part_ids"])


class TestUploads:
    DATA = bytes(range(256)) * 40  # 10240 bytes

    async def test_upload_large_sends_parts_in_parallel_and_completes_in_order(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        api = FakeUploads()
        async with client_for(api) as client:
            result = await client.upload_large(
                self.DATA,
                filename="big.bin",
                purpose="user_data",
                mime_type="application/octet-stream",
                part_size=1000,
                max_concurrency=3,
            )
        assert result["status"] == "completed"
        assert api.created == {
            "filename": "big.bin",
            "purpose": "user_data",
            "bytes": 10240,
            "mime_type": "application/octet-stream",
        }
        assert len(api.parts) == 11
        assert api.assembled() == self.DATA
        assert api.completed is not None
        assert api.completed["md5"] == hashlib.md5(self.DATA).hexdigest()
        assert api.max_in_flight == 3
        assert api.calls == ["create", "complete"]

    async def test_upload_large_reads_a_file_part_by_part(self, tmp_path: Path) -> None:
        source = tmp_path / "data.bin"
        source.write_bytes(self.DATA)
        api = FakeUploads()
        async with client_for(api) as client:
            await client.upload_large(
                source, purpose="user_data", mime_type="text/plain", part_size=4096
            )
        assert api.created["filename"] == "data.bin"
        assert api.assembled() == self.DATA

    async def test_a_failed_part_cancels_the_upload(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        api = FakeUploads(fail_part=4)
        async with client_for(api) as client:
            with pytest.raises(UploadFailed) as info:
                await client.upload_large(
                    self.DATA,
                    filename="big.bin",
                    purpose="user_data",
                    mime_type="text/plain",
                    part_size=1000,
                )
        assert info.value.upload_id == "upload_1"
        assert api.calls == ["create", "cancel"]
        assert "bad part" in str(info.value.errors[0])

    async def test_cancelling_the_caller_cancels_the_upload(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        api = FakeUploads()
        async with client_for(api) as client:
            with trio.move_on_after(0.005):
                await client.upload_large(
                    self.DATA,
                    filename="b",
                    purpose="user_data",
                    mime_type="text/plain",
                    part_size=1000,
                )
        assert api.calls == ["create", "cancel"]

    @pytest.mark.parametrize(
        "kwargs", [{"part_size": 0}, {"part_size": 64 * 2**20 + 1}, {"max_concurrency": 0}]
    )
    async def test_bad_sizes_are_rejected_before_any_request(self, kwargs: dict[str, int]) -> None:
        api = FakeUploads()
        async with client_for(api) as client:
            with pytest.raises(InvalidRequestError):
                await client.upload_large(b"x", filename="b", purpose="p", mime_type="t", **kwargs)
        assert api.calls == []

    async def test_an_empty_source_is_rejected(self) -> None:
        async with client_for(FakeUploads()) as client:
            with pytest.raises(InvalidRequestError):
                await client.upload_large(b"", filename="b", purpose="p", mime_type="t")

    async def test_a_part_over_64_mb_is_rejected_locally(self) -> None:
        async with client_for(FakeUploads()) as client:
            with pytest.raises(InvalidRequestError):
                await client.add_upload_part("upload_1", b"\0" * (64 * 2**20 + 1))
