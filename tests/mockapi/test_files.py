"""Files and Uploads, checked by the official SDK and by recording 18's raw multipart body."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest
import trio

from streamvisor.mockapi import MockAPIConfig, MockServer, serve

from .conftest import API_KEY


@pytest.fixture
async def small_server() -> AsyncIterator[MockServer]:
    async with serve(MockAPIConfig(max_file_bytes=100, max_part_bytes=10)) as running:
        yield running


@pytest.fixture
async def small(small_server: MockServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=small_server.url, api_key="k", max_retries=0) as sdk:
        yield sdk


class TestFiles:
    async def test_create_retrieve_content_delete(self, client: openai.AsyncOpenAI) -> None:
        created = await client.files.create(
            file=("notes.txt", b"Paris is the capital of France.", "text/plain"),
            purpose="user_data",
        )
        assert created.id.startswith("file-")
        assert (created.filename, created.bytes, created.purpose) == ("notes.txt", 31, "user_data")
        assert (await client.files.retrieve(created.id)).model_dump() == created.model_dump()
        content = await client.files.content(created.id)
        assert content.content == b"Paris is the capital of France."
        deleted = await client.files.delete(created.id)
        assert (deleted.id, deleted.deleted) == (created.id, True)
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve(created.id)

    async def test_the_recorded_multipart_request_gets_the_recorded_response_shape(
        self, server: MockServer, recorded_dir: Path
    ) -> None:
        upload, delete = json.loads(
            (recorded_dir / "18_files_upload_delete_transcript.json").read_text()
        )
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
        ) as http:
            response = await http.post(
                "/files",
                content=upload["request"]["body"].encode(),
                headers={"content-type": upload["request"]["content_type"][0]},
            )
            served = response.json()
            gone = (await http.delete(f"/files/{served['id']}")).json()
        expected = upload["response"]["body"]
        assert set(served) == set(expected)
        assert {k: served[k] for k in ("bytes", "filename", "purpose", "object", "status")} == {
            k: expected[k] for k in ("bytes", "filename", "purpose", "object", "status")
        }
        assert set(gone) == set(delete["response"]["body"])

    async def test_list_paginates_with_after_limit_and_has_more(
        self, client: openai.AsyncOpenAI
    ) -> None:
        ids = [
            (await client.files.create(file=(f"{i}.txt", b"x", "text/plain"), purpose="batch")).id
            for i in range(5)
        ]
        await client.files.create(file=("v.png", b"png", "image/png"), purpose="vision")
        page = await client.files.list(limit=2, order="asc", purpose="batch")
        assert [f.id for f in page.data] == ids[:2]
        assert page.has_more is True
        every = [f.id async for f in client.files.list(limit=2, order="asc", purpose="batch")]
        assert every == ids
        newest_first = await client.files.list(purpose="batch")
        assert [f.id for f in newest_first.data] == ids[::-1]
        assert newest_first.has_more is False

    async def test_a_bad_purpose_is_rejected(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.files.create(file=("a.txt", b"a"), purpose="nonsense")  # type: ignore[arg-type]
        assert caught.value.param == "purpose"

    async def test_assistants_files_cannot_be_downloaded(self, client: openai.AsyncOpenAI) -> None:
        created = await client.files.create(file=("a.txt", b"a"), purpose="assistants")
        with pytest.raises(openai.BadRequestError, match="Not allowed to download"):
            await client.files.content(created.id)

    async def test_a_file_over_the_limit_is_rejected(self, small: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            await small.files.create(file=("big.bin", b"x" * 101), purpose="user_data")
        assert caught.value.code == "file_too_large"
        assert (
            await small.files.create(file=("ok.bin", b"x" * 100), purpose="user_data")
        ).bytes == 100


class TestUploads:
    async def test_parts_complete_into_a_file_in_the_given_order(
        self, client: openai.AsyncOpenAI
    ) -> None:
        upload = await client.uploads.create(
            bytes=11, filename="hello.txt", mime_type="text/plain", purpose="user_data"
        )
        assert (upload.status, upload.file) == ("pending", None)
        world = await client.uploads.parts.create(upload.id, data=b" world")
        hello = await client.uploads.parts.create(upload.id, data=b"hello")
        assert hello.object == "upload.part"
        done = await client.uploads.complete(
            upload.id,
            part_ids=[hello.id, world.id],
            md5=hashlib.md5(b"hello world").hexdigest(),
        )
        assert done.status == "completed"
        assert done.file is not None
        assert (await client.files.content(done.file.id)).content == b"hello world"

    async def test_a_byte_count_mismatch_is_rejected(self, client: openai.AsyncOpenAI) -> None:
        upload = await client.uploads.create(
            bytes=10, filename="a.txt", mime_type="text/plain", purpose="user_data"
        )
        part = await client.uploads.parts.create(upload.id, data=b"short")
        with pytest.raises(openai.BadRequestError, match=r"\(5\) does not match .* \(10\)"):
            await client.uploads.complete(upload.id, part_ids=[part.id])

    async def test_a_wrong_md5_is_rejected(self, client: openai.AsyncOpenAI) -> None:
        upload = await client.uploads.create(
            bytes=2, filename="a.txt", mime_type="text/plain", purpose="user_data"
        )
        part = await client.uploads.parts.create(upload.id, data=b"ab")
        with pytest.raises(openai.BadRequestError, match="md5"):
            await client.uploads.complete(upload.id, part_ids=[part.id], md5="0" * 32)

    async def test_a_cancelled_upload_takes_no_more_parts(self, client: openai.AsyncOpenAI) -> None:
        upload = await client.uploads.create(
            bytes=2, filename="a.txt", mime_type="text/plain", purpose="user_data"
        )
        cancelled = await client.uploads.cancel(upload.id)
        assert cancelled.status == "cancelled"
        with pytest.raises(openai.BadRequestError, match="cancelled"):
            await client.uploads.parts.create(upload.id, data=b"ab")

    async def test_a_part_over_the_limit_is_rejected(self, small: openai.AsyncOpenAI) -> None:
        upload = await small.uploads.create(
            bytes=20, filename="a.txt", mime_type="text/plain", purpose="user_data"
        )
        with pytest.raises(openai.BadRequestError) as caught:
            await small.uploads.parts.create(upload.id, data=b"x" * 11)
        assert caught.value.param == "data"

    async def test_an_expired_upload_reports_expired(self) -> None:
        async with (
            serve(MockAPIConfig(upload_ttl=0.001)) as server,
            openai.AsyncOpenAI(base_url=server.url, api_key="k", max_retries=0) as sdk,
        ):
            upload = await sdk.uploads.create(
                bytes=2, filename="a.txt", mime_type="text/plain", purpose="user_data"
            )
            record = server.state.uploads[upload.id]
            await trio.sleep_until(record.deadline)
            with pytest.raises(openai.BadRequestError, match="expired"):
                await sdk.uploads.parts.create(upload.id, data=b"ab")
