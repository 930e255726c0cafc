"""FileActor end to end against the embedded server: uploads, dedup, inputs, listing, deletion."""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path

import pytest
import trio

from streamvisor import _samples as samples
from streamvisor.actors.files._actor import EXPIRY_MARGIN, FileActor
from streamvisor.actors.files._errors import AssistantsShapeNotAllowed
from streamvisor.actors.files._handle import FilesHandle
from streamvisor.config import FilesSection
from streamvisor.openai import ClientSettings, NotFoundError, OpenAIClient
from streamvisor.supervisor import CallTimeout, ChildSpec, NoSuchActor, Registry, open_supervisor

from ._file_actor_env import FilesEnv, files_env

JSONL = b'{"custom_id": "r1", "method": "POST"}\n{"custom_id": "r2", "method": "POST"}\n'
TEXT = b"plain notes\nsecond line\n"


def _text(i: int, size: int = 40) -> bytes:
    """Distinct plain-text content number ``i``."""
    line = f"document {i}: ".encode()
    return (line * (size // len(line) + 1))[:size]


class TestSmallUploads:
    """Below the threshold a file goes through `POST /files`, typed by its content."""

    @pytest.mark.parametrize(
        ("name", "data", "purpose", "mime_type"),
        [
            pytest.param("a.png", samples.png(), "vision", "image/png", id="png"),
            pytest.param("a.jpg", samples.jpeg(), "vision", "image/jpeg", id="jpeg"),
            pytest.param("a.gif", samples.static_gif(), "vision", "image/gif", id="gif"),
            pytest.param("a.webp", samples.webp(), "vision", "image/webp", id="webp"),
            pytest.param("a.pdf", samples.pdf(), "user_data", "application/pdf", id="pdf"),
            pytest.param("a.jsonl", JSONL, "batch", "application/jsonl", id="jsonl"),
            pytest.param("a.txt", TEXT, "user_data", "text/plain", id="text"),
        ],
    )
    async def test_each_type_is_uploaded_with_its_sniffed_content_type(
        self, tmp_path: Path, name: str, data: bytes, purpose: str, mime_type: str
    ) -> None:
        """The server stores the exact bytes, and the file part declares the sniffed type."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                file = await env.files.upload(env.write(name, data), purpose=purpose)
                assert (file["object"], file["purpose"], file["filename"]) == (
                    "file",
                    purpose,
                    name,
                )
                assert file["bytes"] == len(data)
                assert env.server.state.files[file["id"]].data == data
                (body,) = env.wire.multipart("POST", "/v1/files")
                assert body["purpose"].data == purpose.encode()
                assert body["file"].content_type == mime_type
                assert body["file"].filename == name

    async def test_the_type_comes_from_the_content_never_from_the_name(
        self, tmp_path: Path
    ) -> None:
        """A PDF named `.png` is sent as `application/pdf` under the name it was given."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                file = await env.files.upload(env.write("scan.png", samples.pdf()))
                (body,) = env.wire.multipart("POST", "/v1/files")
                assert body["file"].content_type == "application/pdf"
                assert file["filename"] == "scan.png"

    async def test_bytes_are_uploaded_under_the_given_name_or_one_from_their_type(
        self, tmp_path: Path
    ) -> None:
        """In-memory bytes need no file; without a name they get `upload<ext>`."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                named = await env.files.upload(samples.pdf("one"), filename="report.pdf")
                unnamed = await env.files.upload(samples.pdf("two"))
                assert named["filename"] == "report.pdf"
                assert unnamed["filename"] == "upload.pdf"
                assert env.server.state.files[unnamed["id"]].data == samples.pdf("two")

    async def test_a_relative_path_is_read_under_the_first_root(self, tmp_path: Path) -> None:
        """`notes/a.txt` means `<root>/notes/a.txt`, not a path under the working directory."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                env.write("notes/a.txt", TEXT)
                file = await env.files.upload("notes/a.txt")
                assert env.server.state.files[file["id"]].data == TEXT


class TestLargeUploads:
    """Above `upload_threshold` a file goes through the Uploads API in parallel parts."""

    async def test_parts_are_sent_in_parallel_and_completed_in_file_order(
        self, tmp_path: Path
    ) -> None:
        """12 parts, at most `upload_parallelism` at once; the server's file has the right bytes."""
        data = _text(0, 3000)
        with trio.fail_after(15):
            async with files_env(
                tmp_path, upload_threshold=1000, part_size=256, upload_parallelism=4
            ) as env:
                env.wire.delay("POST", "/v1/uploads/*/parts", 0.02)
                file = await env.files.upload(env.write("big.txt", data))

                (create,) = env.seen("POST", "/v1/uploads")
                assert create.body == {
                    "filename": "big.txt",
                    "purpose": "user_data",
                    "bytes": 3000,
                    "mime_type": "text/plain",
                }
                assert env.seen("POST", "/v1/files") == []
                parts = env.seen("POST", "/v1/uploads/*/parts")
                assert len(parts) == 12
                assert env.wire.peak("POST", "/v1/uploads/*/parts") == 4
                (complete,) = env.seen("POST", "/v1/uploads/*/complete")
                upload = next(iter(env.server.state.uploads.values()))
                ordered = [upload.parts[p].data for p in complete.body["part_ids"]]
                assert [len(p) for p in ordered] == [256] * 11 + [184]
                assert b"".join(ordered) == data
                assert complete.body["md5"] == hashlib.md5(data, usedforsecurity=False).hexdigest()
                assert await env.files.content(file["id"]) == data
                stats = await env.files.statistics()
                assert (stats.uploads, stats.multipart_uploads) == (1, 1)

    async def test_a_file_at_the_threshold_still_goes_through_post_files(
        self, tmp_path: Path
    ) -> None:
        """The threshold is inclusive for the simple path: only larger files are split."""
        with trio.fail_after(10):
            async with files_env(tmp_path, upload_threshold=len(TEXT)) as env:
                await env.files.upload(TEXT)
                assert len(env.seen("POST", "/v1/files")) == 1
                assert env.seen("POST", "/v1/uploads") == []


class TestDeduplication:
    """Identical bytes for one purpose are uploaded once; `delete` makes them upload again."""

    async def test_a_second_upload_of_the_same_bytes_returns_the_file_without_network_io(
        self, tmp_path: Path
    ) -> None:
        """The server sees one upload; both callers get the same FileObject."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                first = await env.files.upload(env.write("a.pdf", samples.pdf()))
                requests_before = len(env.server.requests)
                second = await env.files.upload(samples.pdf(), filename="copy.pdf")
                assert second == first
                assert len(env.server.requests) == requests_before
                assert (await env.files.statistics()).deduplicated == 1

    async def test_the_same_bytes_for_another_purpose_are_another_file(
        self, tmp_path: Path
    ) -> None:
        """The purpose is part of the identity: `vision` and `user_data` get one file each."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                as_data = await env.files.upload(samples.png(), purpose="user_data")
                as_vision = await env.files.upload(samples.png(), purpose="vision")
                assert as_data["id"] != as_vision["id"]
                assert len(env.seen("POST", "/v1/files")) == 2

    async def test_a_deleted_file_is_evicted_and_its_bytes_upload_again(
        self, tmp_path: Path
    ) -> None:
        """After `delete`, the same bytes make a new file on the server."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                first = await env.files.upload(TEXT)
                deleted = await env.files.delete(first["id"])
                assert deleted == {"id": first["id"], "object": "file", "deleted": True}
                again = await env.files.upload(TEXT)
                assert again["id"] != first["id"]
                assert len(env.seen("POST", "/v1/files")) == 2
                assert set(env.server.state.files) == {again["id"]}

    async def test_a_file_deleted_elsewhere_is_forgotten_once_the_api_says_so(
        self, tmp_path: Path
    ) -> None:
        """A 404 on retrieve evicts the id, so the next upload of those bytes sends them."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                first = await env.files.upload(TEXT)
                await env.client.delete_file(first["id"])  # behind the actor's back
                with pytest.raises(NotFoundError):
                    await env.files.retrieve(first["id"])
                again = await env.files.upload(TEXT)
                assert again["id"] != first["id"]

    async def test_concurrent_identical_uploads_are_coalesced_into_one(
        self, tmp_path: Path
    ) -> None:
        """Five callers at once, one network upload, and every caller gets its FileObject."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                env.wire.delay("POST", "/v1/files", 0.2)
                results: list[dict[str, object]] = []

                async def one() -> None:
                    results.append(await env.files.upload(samples.pdf(), filename="x.pdf"))

                async with trio.open_nursery() as nursery:
                    for _ in range(5):
                        nursery.start_soon(one)
                assert len(env.seen("POST", "/v1/files")) == 1
                assert len({r["id"] for r in results}) == 1
                assert len(results) == 5
                stats = await env.files.statistics()
                assert (stats.uploads, stats.coalesced) == (1, 4)

    async def test_a_file_about_to_expire_is_uploaded_again_rather_than_reused(
        self, tmp_path: Path
    ) -> None:
        """`batch` files expire after 30 days: near `expires_at` the bytes are sent afresh."""
        now = [time.time()]
        with trio.fail_after(10):
            async with files_env(tmp_path, wall_clock=lambda: now[0]) as env:
                first = await env.files.upload(JSONL, purpose="batch")
                assert first["expires_at"] is not None
                assert await env.files.upload(JSONL, purpose="batch") == first
                now[0] = first["expires_at"] - EXPIRY_MARGIN
                again = await env.files.upload(JSONL, purpose="batch")
                assert again["id"] != first["id"]
                assert len(env.seen("POST", "/v1/files")) == 2

    async def test_with_dedupe_off_every_upload_is_sent(self, tmp_path: Path) -> None:
        """`dedupe = false` turns the index and the coalescing off."""
        with trio.fail_after(10):
            async with files_env(tmp_path, dedupe=False) as env:
                first = await env.files.upload(TEXT)
                second = await env.files.upload(TEXT)
                assert first["id"] != second["id"]
                assert len(env.seen("POST", "/v1/files")) == 2


class TestConcurrency:
    """Uploads run beside the mailbox, at most `max_concurrent_uploads` at a time."""

    async def test_the_actor_answers_other_requests_while_an_upload_is_in_flight(
        self, tmp_path: Path
    ) -> None:
        """With the upload held at the wire, `list` and `statistics` are still answered."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                gate = env.wire.gate("POST", "/v1/files")
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(env.files.upload, TEXT)
                    await gate.arrived.wait()
                    assert await env.files.list() == []
                    assert (await env.files.statistics()).in_flight == 1
                    gate.release.set()
                assert len(await env.files.list()) == 1

    async def test_an_upload_the_caller_gave_up_on_still_lands_in_the_index(
        self, tmp_path: Path
    ) -> None:
        """After a `CallTimeout` the upload completes; asking again costs no second upload."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                gate = env.wire.gate("POST", "/v1/files")
                with pytest.raises(CallTimeout):
                    await env.files.upload(TEXT, timeout=0.05)
                gate.release.set()
                file = await env.files.upload(TEXT)
                assert env.server.state.files[file["id"]].data == TEXT
                assert len(env.seen("POST", "/v1/files")) == 1

    async def test_at_most_the_configured_number_of_uploads_are_sent_at_once(
        self, tmp_path: Path
    ) -> None:
        """Six distinct uploads with a bound of 2: the wire never carries more than 2."""
        with trio.fail_after(10):
            async with files_env(tmp_path, max_concurrent_uploads=2) as env:
                env.wire.delay("POST", "/v1/files", 0.03)
                async with trio.open_nursery() as nursery:
                    for i in range(6):
                        nursery.start_soon(env.files.upload, _text(i))
                assert len(env.seen("POST", "/v1/files")) == 6
                assert env.wire.peak("POST", "/v1/files") == 2
                assert (await env.files.statistics()).peak_in_flight == 2


class TestInputs:
    """`image_input` / `file_input` build the parts the Responses API takes."""

    async def _accepted(self, env: FilesEnv, part: dict[str, object]) -> None:
        body = {
            "model": "gpt-4o",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "what is it"}, part]}
            ],
        }
        env.files.validate_inputs(body["input"])  # type: ignore[arg-type]
        response = await env.client.create_response(body)
        assert response["status"] == "completed"
        (seen,) = env.seen("POST", "/v1/responses")
        assert seen.body["input"][0]["content"][1] == part

    async def test_an_image_by_file_id_is_uploaded_for_vision_and_accepted(
        self, tmp_path: Path
    ) -> None:
        """`input_image` with the file id (never the Assistants `image_file` shape)."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                part = await env.files.image_input(env.write("d.png", samples.png()), detail="high")
                (file_id,) = env.server.state.files
                assert part == {"type": "input_image", "file_id": file_id, "detail": "high"}
                assert env.server.state.files[file_id].purpose == "vision"
                await self._accepted(env, part)

    async def test_an_image_by_data_url_is_inlined_without_an_upload(self, tmp_path: Path) -> None:
        """`image_url` is a base64 data URL of the sniffed type; nothing is uploaded."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                jpeg = samples.jpeg()
                part = await env.files.image_input(env.write("photo.png", jpeg), via="data_url")
                prefix = "data:image/jpeg;base64,"
                assert part["type"] == "input_image"
                assert part["detail"] == "auto"
                assert part["image_url"].startswith(prefix)
                assert base64.b64decode(part["image_url"][len(prefix) :]) == jpeg
                assert env.seen("POST", "/v1/files") == []
                await self._accepted(env, part)

    async def test_a_document_by_file_id_is_uploaded_as_user_data(self, tmp_path: Path) -> None:
        """`input_file` with the id of a `user_data` file."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                part = await env.files.file_input(env.write("r.pdf", samples.pdf()))
                (file_id,) = env.server.state.files
                assert part == {"type": "input_file", "file_id": file_id}
                assert env.server.state.files[file_id].purpose == "user_data"
                await self._accepted(env, part)

    async def test_a_document_by_data_is_inlined_with_its_name(self, tmp_path: Path) -> None:
        """`file_data` is a data URL of the sniffed type, `filename` the file's name."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                pdf = samples.pdf()
                part = await env.files.file_input(env.write("r.pdf", pdf), via="data")
                assert part == {
                    "type": "input_file",
                    "filename": "r.pdf",
                    "file_data": "data:application/pdf;base64," + base64.b64encode(pdf).decode(),
                }
                assert env.seen("POST", "/v1/files") == []
                await self._accepted(env, part)

    async def test_inline_bytes_without_a_name_are_named_from_their_type(
        self, tmp_path: Path
    ) -> None:
        """The API requires a filename with `file_data`: bytes get `file<ext>`."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                part = await env.files.file_input(JSONL, via="data")
                assert part["filename"] == "file.jsonl"

    def test_hand_built_parts_are_checked_without_a_hop_to_the_actor(self) -> None:
        """`validate_input` is pure: it works on a handle whose actor never ran."""
        handle = FilesHandle.registered(Registry(), "nobody", FilesSection())
        with pytest.raises(AssistantsShapeNotAllowed, match="input_image"):
            handle.validate_input({"type": "image_file", "image_file": {"file_id": "file-1"}})
        totals = handle.validate_input({"type": "input_image", "file_id": "file-1"})
        assert totals.images == 1


class TestFilesApi:
    """`list` follows the pages; `retrieve`, `content` and `delete` reach the file."""

    async def test_list_follows_the_cursor_across_pages(self, tmp_path: Path) -> None:
        """Eight files in pages of three: three `GET /files`, every file once, newest first."""
        with trio.fail_after(10):
            async with files_env(tmp_path, list_page_size=3) as env:
                ids = [(await env.files.upload(_text(i)))["id"] for i in range(8)]
                listed = await env.files.list()
                assert [f["id"] for f in listed] == ids[::-1]
                pages = env.seen("GET", "/v1/files")
                assert len(pages) == 3
                assert [p.query.get("after") for p in pages] == [None, ids[5], ids[2]]
                assert all(p.query["limit"] == "3" for p in pages)

    async def test_list_can_be_narrowed_to_a_purpose(self, tmp_path: Path) -> None:
        """Only the files of that purpose come back."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                image = await env.files.upload(samples.png(), purpose="vision")
                await env.files.upload(TEXT)
                assert await env.files.list(purpose="vision") == [image]

    async def test_retrieve_and_content_return_the_file_and_its_bytes(self, tmp_path: Path) -> None:
        """The FileObject as uploaded, and the exact bytes."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                file = await env.files.upload(samples.pdf(), filename="r.pdf")
                assert await env.files.retrieve(file["id"]) == file
                assert await env.files.content(file["id"]) == samples.pdf()


class TestConstruction:
    """Bad settings are refused when the actor is built; a handle needs a live actor."""

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            pytest.param({"max_concurrent_uploads": 0}, "max_concurrent_uploads", id="bound"),
            pytest.param({"list_page_size": 0}, "list_page_size", id="page-size-low"),
            pytest.param({"list_page_size": 10_001}, "list_page_size", id="page-size-high"),
        ],
    )
    async def test_bad_settings_are_refused(self, kwargs: dict[str, int], message: str) -> None:
        """`ValueError` naming the setting, before anything starts."""
        async with OpenAIClient.open(ClientSettings(base_url="http://127.0.0.1:9/v1")) as client:
            with pytest.raises(ValueError, match=message):
                FileActor(client, FilesSection(), **kwargs)

    async def test_a_registered_handle_without_its_actor_raises_no_such_actor(self) -> None:
        """Nothing registered under the name: `NoSuchActor`, not a hang."""
        handle = FilesHandle.registered(Registry(), "files")
        with pytest.raises(NoSuchActor):
            await handle.list()

    async def test_an_unknown_route_is_a_value_error(self, tmp_path: Path) -> None:
        """`via` must name one of the two routes."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                with pytest.raises(ValueError, match="via"):
                    await env.files.image_input(samples.png(), via="url")  # type: ignore[arg-type]
                with pytest.raises(ValueError, match="via"):
                    await env.files.file_input(samples.pdf(), via="url")  # type: ignore[arg-type]
                assert env.server.requests == []


class TestRestarts:
    """A registry handle follows the actor across a restart by its supervisor."""

    async def test_a_registered_handle_reaches_the_restarted_actor(self, tmp_path: Path) -> None:
        """After the actor is killed and restarted, the same handle uploads through the new one."""
        with trio.fail_after(10):
            async with files_env(tmp_path) as env:
                section = FilesSection(roots=(str(env.root),))
                registry = Registry()
                spec = ChildSpec.worker(
                    "files", lambda: FileActor(env.client, section), name="files"
                )
                async with open_supervisor([spec], registry=registry):
                    handle = FilesHandle.registered(registry, "files", section)
                    before = await handle.upload(TEXT)
                    first = registry.whereis("files")
                    assert first is not None
                    first.kill()
                    await first.wait()
                    second = await registry.wait_for("files", timeout=5)
                    assert second is not first
                    after = await handle.upload(_text(1))
                    assert after["id"] != before["id"]
                    assert (await handle.statistics()).uploads == 1
