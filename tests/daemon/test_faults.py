"""The daemon under failure, end to end over loopback (DESIGN.md "Bad input and faults").

Connections cut at random points of a durable stream, a session worker killed mid-stream, 429/5xx
storms against streams, background work and uploads, stalled subscribers, bad files and bad
requests: each gets what the design promises, and the rest of the tree keeps serving.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from streamvisor import _samples as samples
from streamvisor import actors
from streamvisor.daemon import Daemon
from streamvisor.mockapi import Fault, MockServer
from streamvisor.openai import (
    InternalServerError,
    OutcomeUnknownError,
    RateLimitError,
)
from streamvisor.supervisor import Missed, Overflow, SubscriberOverflow
from streamvisor.testing import EventRecorder, running_daemon

#: A stream long enough to cut in many places (39 events, ~13 KB).
LONG = {"mock_scenario": "long:30"}


def server_of(daemon: Daemon) -> MockServer:
    assert daemon.mockapi is not None
    return daemon.mockapi


def requests_to(daemon: Daemon, method: str, path: str) -> int:
    return sum(
        1
        for r in server_of(daemon).requests
        if r.method == method and (r.path == path or r.path.startswith(path + "/"))
    )


async def raw_stream(server: MockServer, body: dict[str, Any]) -> bytes:
    """The body the server sends for a streaming create, read whole by a plain client."""
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/responses", json=body)
    return response.content


async def assert_tree_serves(daemon: Daemon, session_id: str = "healthy") -> None:
    """Every root child is alive and a fresh session still streams to completion."""
    status = await daemon.status()
    assert all(c.ref is not None and c.ref.alive for c in status.children)
    async with EventRecorder.open(daemon, f"session.{session_id}") as recorder:
        session = await daemon.open_session(session_id)
        await session.respond("gpt-4o", "still there?", durable=False)
        final = await recorder.wait_terminal()
    assert final.type == "response.completed"
    assert recorder.text() == "You said: still there?"


class TestConnectionDrops:
    async def test_a_durable_stream_cut_anywhere_is_resumed_with_no_gap_and_no_duplicate(
        self, daemon: Daemon
    ) -> None:
        """For drop points drawn over the stream's whole byte length: a cut after the first
        event resumes (subscribers see 0..N once each and the full text); a cut inside the first
        event leaves the create's outcome unknown, which `respond` says as
        `OutcomeUnknownError`, publishing nothing."""
        server = server_of(daemon)
        body = {"model": "gpt-4o", "input": "Count", "stream": True, "background": True}
        raw = await raw_stream(server, {**body, "store": True, "metadata": LONG})
        first_event = raw.index(b"\n\n") + 2
        rng = random.Random(20261124)
        points = sorted(
            {0, first_event - 1, first_event, len(raw) - 1}
            | set(rng.sample(range(1, len(raw)), 24))
        )
        expected: str | None = None
        with trio.fail_after(30):
            for i, n in enumerate(points):
                server.inject(Fault.drop_after(n), method="POST", path="/v1/responses")
                async with EventRecorder.open(daemon, f"session.drop{i}") as recorder:
                    session = await daemon.open_session(f"drop{i}")
                    if n < first_event:
                        with pytest.raises(OutcomeUnknownError):
                            await session.respond("gpt-4o", "Count", metadata=LONG)
                        assert recorder.items == []
                        continue
                    ticket = await session.respond("gpt-4o", "Count", metadata=LONG)
                    final = await recorder.wait_terminal(ticket.response_id)
                assert final.type == "response.completed", n
                assert recorder.sequence_numbers() == list(range(final.sequence_number + 1)), n
                text = recorder.text()
                expected = expected or text
                assert text == expected, n
        assert expected is not None
        assert len(expected.split()) == 30

    async def test_a_stream_cut_again_while_resuming_still_arrives_whole(
        self, daemon: Daemon
    ) -> None:
        """A drop on the create and another on the resume: still one gapless copy."""
        server = server_of(daemon)
        server.inject(Fault.drop_after(3000), method="POST", path="/v1/responses")
        server.inject(Fault.drop_after(2000), method="GET", path="/v1/responses/*", times=2)
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.twice") as recorder:
                session = await daemon.open_session("twice")
                ticket = await session.respond("gpt-4o", "Count", metadata=LONG)
                final = await recorder.wait_terminal()
                outcome = await session.wait(ticket.stream_id, timeout=5)
        assert final.type == "response.completed"
        assert outcome.ok
        assert recorder.sequence_numbers() == list(range(final.sequence_number + 1))
        assert requests_to(daemon, "GET", "/v1/responses") >= 2


class TestWorkerCrash:
    async def test_a_session_worker_killed_mid_stream_is_restarted_and_subscribers_see_it_whole(
        self, daemon: Daemon
    ) -> None:
        """`ref.kill()` mid-stream: the sessions supervisor restarts the worker, which resumes
        the durable stream from its cursor; every subscriber sees 0..N once each."""
        paced = {**LONG, "mock_token_delay_ms": "5"}
        with trio.fail_after(15):
            async with (
                EventRecorder.open(daemon, "session.crashy") as first,
                EventRecorder.open(daemon, "session.*") as second,
            ):
                session = await daemon.open_session("crashy")
                old = session.ref
                ticket = await session.respond("gpt-4o", "Count", metadata=paced)
                await first.wait_for(lambda items: len(items) >= 10)
                old.kill()
                final = await first.wait_terminal(ticket.response_id)
                outcome = await session.wait(ticket.stream_id, timeout=5)
        resumes = [r.query for r in server_of(daemon).requests if "starting_after" in r.query]
        assert resumes  # the new worker resumed from its cursor, it did not start over
        assert not old.alive
        assert session.ref is not old
        assert session.ref.alive
        assert final.type == "response.completed"
        assert outcome.ok
        for recorder in (first, second):
            numbers = recorder.sequence_numbers(ticket.response_id)
            assert numbers == list(range(final.sequence_number + 1))
        assert first.text() == second.text(ticket.response_id)
        assert len(first.text().split()) == 30

    async def test_a_foreground_stream_lost_with_its_worker_ends_with_an_error_event(
        self, daemon: Daemon
    ) -> None:
        """A chat stream cannot be resumed: the restarted worker publishes a terminal `error`
        carrying `StreamLost`, never silence; the session serves again right after."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.fgcrash") as recorder:
                session = await daemon.open_session("fgcrash")
                await session.chat(
                    "gpt-4o",
                    [{"role": "user", "content": "Count"}],
                    metadata={**LONG, "mock_token_delay_ms": "5"},
                    store=True,
                )
                await recorder.wait_for(lambda items: len(items) >= 5)
                session.ref.kill()
                final = await recorder.wait_terminal()
            await assert_tree_serves(daemon, "fgcrash")
        assert final.type == "error"
        assert "lost" in str(final.data).lower()


class TestStorms:
    async def test_a_session_stream_rides_out_a_short_429_and_503_storm(
        self, daemon: Daemon
    ) -> None:
        """Two 429s (with retry-after) then one 503 on the create: retried, then streamed."""
        server = server_of(daemon)
        server.inject(Fault.status(429, retry_after=0.01), method="POST", times=2)
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.storm") as recorder:
                session = await daemon.open_session("storm")
                await session.respond("gpt-4o", "Hi", durable=True)
                final = await recorder.wait_terminal()
            server.inject(Fault.status(503), method="POST", times=1)
            async with EventRecorder.open(daemon, "session.storm2") as second:
                session2 = await daemon.open_session("storm2")
                await session2.chat("gpt-4o", [{"role": "user", "content": "Hi"}])
                final2 = await second.wait_terminal()
        assert final.type == "response.completed"
        assert final2.type == "response.completed"
        assert requests_to(daemon, "POST", "/v1/responses") == 3
        assert requests_to(daemon, "POST", "/v1/chat/completions") == 2

    async def test_a_durable_stream_resumes_through_a_storm_on_its_resume_requests(
        self, daemon: Daemon
    ) -> None:
        """The connection drops mid-stream and the resumes meet 429s and 503s: the session
        keeps resuming from its cursor; subscribers see one gapless copy."""
        server = server_of(daemon)
        server.inject(Fault.drop_after(4000), method="POST", path="/v1/responses")
        server.inject(Fault.status(429, retry_after=0.01), method="GET", path="/v1/responses/*")
        server.inject(Fault.status(503), method="GET", path="/v1/responses/*", times=2)
        with trio.fail_after(15):
            async with EventRecorder.open(daemon, "session.stormy") as recorder:
                session = await daemon.open_session("stormy")
                ticket = await session.respond("gpt-4o", "Count", metadata=LONG)
                final = await recorder.wait_terminal()
                outcome = await session.wait(ticket.stream_id, timeout=10)
        assert final.type == "response.completed"
        assert outcome.ok
        assert recorder.sequence_numbers() == list(range(final.sequence_number + 1))
        assert len(recorder.text().split()) == 30

    async def test_a_storm_that_outlasts_the_retries_is_a_typed_error_and_the_tree_runs_on(
        self, daemon: Daemon
    ) -> None:
        """More 429s than `max_retries` allows: `RateLimitError` at the call, nothing published;
        5xx likewise `InternalServerError`; the daemon keeps serving."""
        server = server_of(daemon)
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.flood") as recorder:
                session = await daemon.open_session("flood")
                server.inject(Fault.status(429, retry_after=0.01), method="POST", times=10)
                with pytest.raises(RateLimitError):
                    await session.respond("gpt-4o", "Hi")
                server.clear_faults()
                server.inject(Fault.status(503), method="POST", times=10)
                with pytest.raises(InternalServerError):
                    await session.chat("gpt-4o", [{"role": "user", "content": "Hi"}])
                server.clear_faults()
            assert recorder.items == []
            await assert_tree_serves(daemon)

    async def test_background_create_and_polling_ride_out_storms(self, daemon: Daemon) -> None:
        """429s on the create are retried; 503s on the polls are retried with backoff; the
        response is still seen completed."""
        server = server_of(daemon)
        server.inject(Fault.status(429, retry_after=0.01), method="POST", times=2)
        server.inject(Fault.status(503), method="GET", path="/v1/responses/*", times=4)
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "background.*") as recorder:
                record = await daemon.background.create(
                    "hi", "gpt-4o", metadata={"mock_queue_ms": "30"}
                )
                final = await recorder.wait_status(record.response_id)
        assert final.status == "completed"
        assert requests_to(daemon, "POST", "/v1/responses") == 3
        assert requests_to(daemon, "GET", "/v1/responses") >= 5

    async def test_background_create_in_an_endless_storm_raises_typed_and_registers_nothing(
        self, daemon: Daemon
    ) -> None:
        """429s past the retries: `RateLimitError`. A 503 on a create is not retried at all
        (the response may exist: a retry could start a duplicate job): `OutcomeUnknownError`.
        Neither is registered; the daemon keeps serving."""
        server = server_of(daemon)
        with trio.fail_after(10):
            server.inject(Fault.status(429, retry_after=0.01), method="POST", times=None)
            with pytest.raises(RateLimitError):
                await daemon.background.create("hi", "gpt-4o")
            server.clear_faults()
            server.inject(Fault.status(503), method="POST", times=1)
            with pytest.raises(OutcomeUnknownError) as unknown:
                await daemon.background.create("hi", "gpt-4o")
            assert isinstance(unknown.value.__cause__, InternalServerError)
            assert await daemon.background.active() == []
            await assert_tree_serves(daemon)

    async def test_an_upload_rides_out_a_short_storm_and_fails_typed_in_a_long_one(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """A 429 then a 503 on ``POST /files``: uploaded. A storm past the retries:
        `FileUploadFailed` naming the file, the wire error as its cause."""
        server = server_of(daemon)
        (tmp_path / "a.txt").write_text("first file\n")
        (tmp_path / "b.txt").write_text("second file\n")
        server.inject(Fault.status(429, retry_after=0.01), method="POST", path="/v1/files")
        server.inject(Fault.status(503), method="POST", path="/v1/files")
        with trio.fail_after(10):
            uploaded = await daemon.files.upload(tmp_path / "a.txt")
            server.inject(Fault.status(503), method="POST", path="/v1/files", times=10)
            with pytest.raises(actors.FileUploadFailed) as failed:
                await daemon.files.upload(tmp_path / "b.txt")
            server.clear_faults()
            again = await daemon.files.upload(tmp_path / "b.txt")
        assert uploaded["bytes"] == len("first file\n")
        assert failed.value.path.endswith("b.txt")
        assert isinstance(failed.value.__cause__, InternalServerError)
        assert again["filename"] == "b.txt"


class TestSlowSubscribers:
    async def test_a_stalled_subscriber_stalls_neither_the_stream_nor_another_subscriber(
        self, daemon: Daemon
    ) -> None:
        """A subscriber that never reads (buffer 4) loses the oldest items, and is told how
        many with `Missed(n)` before the newest four; a reading subscriber gets everything."""
        with trio.fail_after(10):
            async with (
                daemon.subscribe("session.slow", buffer=4) as stalled,
                EventRecorder.open(daemon, "session.slow") as reader,
            ):
                session = await daemon.open_session("slow")
                ticket = await session.respond("gpt-4o", "Count", metadata=LONG)
                final = await reader.wait_terminal()
                await session.wait(ticket.stream_id, timeout=5)
                late = stalled.drain()
        published = reader.items  # events and the response's status notifications
        assert reader.sequence_numbers() == list(range(final.sequence_number + 1))
        assert isinstance(late[0], Missed)
        assert late[1:] == published[-4:]
        assert late[0].count == len(published) - 4
        assert final in late

    async def test_a_disconnect_policy_subscriber_is_dropped_with_SubscriberOverflow(
        self, daemon: Daemon
    ) -> None:
        """With ``overflow=DISCONNECT`` it gets its buffered events, then `SubscriberOverflow`;
        the stream and the other subscriber carry on."""
        with trio.fail_after(10):
            async with (
                daemon.subscribe("session.strict", buffer=4, overflow=Overflow.DISCONNECT) as sub,
                EventRecorder.open(daemon, "session.strict") as reader,
            ):
                session = await daemon.open_session("strict")
                await session.respond("gpt-4o", "Count", metadata=LONG)
                final = await reader.wait_terminal()
                buffered = [await sub.receive() for _ in range(4)]
                with pytest.raises(SubscriberOverflow):
                    await sub.receive()
        assert buffered == reader.items[:4]
        assert final.type == "response.completed"
        assert reader.sequence_numbers() == list(range(final.sequence_number + 1))


@pytest.fixture
async def strict_daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    """A daemon with small file limits, so that "too big" needs no big file."""
    async with running_daemon(
        tmp_path / "root", files_max_file_bytes=4096, files_max_image_bytes=2048
    ) as daemon:
        yield daemon


class TestBadFiles:
    @pytest.fixture(autouse=True)
    def root(self, tmp_path: Path) -> Path:
        (tmp_path / "root").mkdir()
        return tmp_path / "root"

    async def _rejected(
        self, daemon: Daemon, call: Any, error: type[actors.FileInputError], rule: str, name: str
    ) -> None:
        with pytest.raises(error) as caught:
            await call()
        assert caught.value.rule == rule
        assert name in caught.value.path
        assert name in str(caught.value)

    async def test_each_bad_file_is_a_typed_error_naming_file_and_rule_then_a_good_one_works(
        self, strict_daemon: Daemon, root: Path, tmp_path: Path
    ) -> None:
        """Outside the roots, too big, an animated GIF, empty, the wrong type for the purpose,
        missing, a directory, a FIFO, a NUL in the path: each rejected before any upload
        request; the file actor keeps serving."""
        daemon = strict_daemon
        (tmp_path / "secret.txt").write_text("outside")
        (root / "big.txt").write_bytes(b"x" * 5000)
        (root / "big.png").write_bytes(samples.png(64, 64))
        (root / "anim.gif").write_bytes(samples.animated_gif(3))
        (root / "empty.txt").write_bytes(b"")
        (root / "doc.pdf").write_bytes(samples.pdf())
        (root / "adir").mkdir()
        os.mkfifo(root / "pipe")
        files = daemon.files
        cases: list[tuple[Any, type[actors.FileInputError], str, str]] = [
            (
                partial(files.upload, tmp_path / "secret.txt"),
                actors.OutsideAllowedRoots,
                "allowed_roots",
                "secret.txt",
            ),
            (partial(files.upload, root / "big.txt"), actors.FileTooLarge, "max_bytes", "big.txt"),
            (
                partial(files.image_input, root / "big.png"),
                actors.FileTooLarge,
                "max_bytes",
                "big.png",
            ),
            (
                partial(files.image_input, root / "anim.gif"),
                actors.AnimatedGifNotAllowed,
                "non_animated_gif",
                "anim.gif",
            ),
            (partial(files.upload, root / "empty.txt"), actors.EmptyFile, "non_empty", "empty.txt"),
            (
                partial(files.image_input, root / "doc.pdf"),
                actors.UnsupportedFileType,
                "allowed_types",
                "doc.pdf",
            ),
            (
                partial(files.upload, root / "missing.txt"),
                actors.MissingFile,
                "exists",
                "missing.txt",
            ),
            (partial(files.upload, root / "adir"), actors.PathIsADirectory, "regular_file", "adir"),
            (partial(files.upload, root / "pipe"), actors.NotARegularFile, "regular_file", "pipe"),
            (
                partial(files.upload, str(root / "nul\0.txt")),
                actors.UnreadableFile,
                "readable",
                "nul",
            ),
        ]
        if os.geteuid() != 0:  # root reads files whatever their permissions
            (root / "locked.txt").write_text("locked")
            (root / "locked.txt").chmod(0)
            cases.append(
                (
                    partial(files.upload, root / "locked.txt"),
                    actors.UnreadableFile,
                    "readable",
                    "locked",
                )
            )
        with trio.fail_after(10):
            for call, error, rule, name in cases:
                await self._rejected(daemon, call, error, rule, name)
            assert requests_to(daemon, "POST", "/v1/files") == 0
            (root / "good.png").write_bytes(samples.png(4, 4))
            good = await files.image_input(root / "good.png")
        assert good["file_id"].startswith("file-")
        assert requests_to(daemon, "POST", "/v1/files") == 1


class TestBadRequests:
    async def test_bad_session_requests_fail_typed_before_any_network_io(
        self, daemon: Daemon
    ) -> None:
        """Empty messages/input, a reserved parameter, contradicting reasoning-model token
        limits: `InvalidSessionRequest` (a ValueError) naming the field; nothing sent."""
        session = await daemon.open_session("strict")
        before = len(server_of(daemon).requests)
        bad: list[tuple[Any, str]] = [
            (partial(session.chat, "gpt-4o", []), "messages"),
            (partial(session.respond, "gpt-4o", ""), "input"),
            (partial(session.respond, "gpt-4o", []), "input"),
            (partial(session.chat, "gpt-4o", [{"role": "robot", "content": "hi"}]), "role"),
            (partial(session.respond, "gpt-4o", "hi", max_tokens=50), "max_tokens"),
            (
                partial(
                    session.chat,
                    "o3",
                    [{"role": "user", "content": "hi"}],
                    max_tokens=100,
                    max_completion_tokens=200,
                ),
                "max_tokens",
            ),
        ]
        with trio.fail_after(5):
            for call, field in bad:
                with pytest.raises(actors.InvalidSessionRequest) as caught:
                    await call()
                assert field in (caught.value.field or ""), caught.value
                assert isinstance(caught.value, ValueError)
        assert len(server_of(daemon).requests) == before

    async def test_sampling_parameters_are_dropped_for_a_reasoning_model_before_sending(
        self, daemon: Daemon
    ) -> None:
        """``temperature``/``top_p`` for o3 are dropped (the API would 400), not sent."""
        with trio.fail_after(5):
            async with EventRecorder.open(daemon, "session.o3") as recorder:
                session = await daemon.open_session("o3")
                await session.respond("o3", "hi", temperature=0.2, top_p=0.5, durable=False)
                await recorder.wait_terminal()
        sent = [r.body for r in server_of(daemon).requests if r.path == "/v1/responses"][-1]
        assert "temperature" not in sent
        assert "top_p" not in sent

    async def test_a_bad_background_create_fails_typed_before_any_network_io(
        self, daemon: Daemon
    ) -> None:
        """An empty model or ``stream=True``: `InvalidBackgroundRequest`; nothing sent."""
        before = len(server_of(daemon).requests)
        with pytest.raises(actors.InvalidBackgroundRequest):
            await daemon.background.create("hi", "")
        with pytest.raises(actors.InvalidBackgroundRequest):
            await daemon.background.create("hi", "gpt-4o", stream=True)
        assert len(server_of(daemon).requests) == before
