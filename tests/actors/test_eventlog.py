"""The event log: what the daemon keeps of a stream so a client can replay it after a cursor."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from streamvisor.actors import open_event_log
from streamvisor.openai import StreamEvent


def event(seq: int, kind: str = "response.output_text.delta", rid: str = "resp_1") -> StreamEvent:
    data = {"type": kind, "sequence_number": seq, "delta": f"t{seq}"}
    return StreamEvent(kind, seq, data, rid, "s1", "responses", 0.0)


async def test_a_read_sees_what_is_pending_and_what_is_written(tmp_path: Path) -> None:
    async with open_event_log(str(tmp_path / "e.sqlite3"), namespace="n") as log:
        for seq in range(5):
            log.append(event(seq))
        read = await log.read("resp_1", 1)  # nothing written yet: all from memory
        assert [seq for seq, _, _ in read.frames] == [2, 3, 4]
        await log.flush()
        log.append(event(5))
        read = await log.read("resp_1", None)
        assert [seq for seq, _, _ in read.frames] == [0, 1, 2, 3, 4, 5]
        assert read.frames[3][2]["delta"] == "t3"
        assert read.after == 5


async def test_the_log_outlives_the_process(tmp_path: Path) -> None:
    path = str(tmp_path / "e.sqlite3")
    async with open_event_log(path, namespace="n") as log:
        log.annotate("resp_1", session_id="s1", background=False)
        for seq in range(3):
            log.append(event(seq))
        log.append(event(3, "response.completed"))
    async with open_event_log(path, namespace="n") as log:
        read = await log.read("resp_1", 0)
        assert [seq for seq, _, _ in read.frames] == [1, 2, 3]
        assert read.response is not None
        assert read.response.terminal == "response.completed"
        assert read.response.background is False
        assert read.response.session_id == "s1"
    async with open_event_log(path, namespace="another server") as log:
        assert (await log.read("resp_1", None)).response is None


async def test_an_overlap_is_kept_once_and_a_gap_is_never_served() -> None:
    async with open_event_log(":memory:", namespace="n") as log:
        for seq in (0, 1, 2, 1, 2, 5):  # a resumed connection's overlap, then a hole
            log.append(event(seq))
        await log.flush()
        read = await log.read("resp_1", None)
        assert [seq for seq, _, _ in read.frames] == [0, 1, 2]
        assert read.after == 2  # where a reader must continue (upstream)


async def test_a_response_beyond_max_events_is_marked_truncated() -> None:
    async with open_event_log(":memory:", namespace="n", max_events=3) as log:
        for seq in range(6):
            log.append(event(seq))
        await log.flush()
        read = await log.read("resp_1", None)
        assert [seq for seq, _, _ in read.frames] == [0, 1, 2]
        assert read.response is not None
        assert read.response.truncated


async def test_old_responses_are_purged_and_forgotten_ones_deleted() -> None:
    async with open_event_log(":memory:", namespace="n", retention=3600) as log:
        log.append(event(0, rid="resp_old"))
        log.append(event(0, rid="resp_kept"))
        await log.flush()
        assert await log.purge(before=0.0) == 0  # nothing is that old
        assert await log.purge() == 0  # nor older than the retention
        assert await log.purge(before=float("inf")) == 2
        assert (await log.read("resp_old", None)).response is None
        log.append(event(0, rid="resp_2"))
        await log.flush()
        await log.forget("resp_2")
        assert (await log.read("resp_2", None)).frames == ()


async def test_the_flusher_writes_on_its_own() -> None:
    """(A real clock: the writes run on a worker thread, which a mock clock would jump over.)"""
    async with open_event_log(":memory:", namespace="n", flush_interval=0.01) as log:
        log.append(event(0, "response.completed"))
        with trio.fail_after(5):
            while log.known("resp_1") is not None:  # memory is freed once the end is written
                await trio.sleep(0.01)
        assert [s for s, _, _ in (await log.read("resp_1", None)).frames] == [0]


async def test_a_flush_waits_for_the_one_in_flight() -> None:
    """A flush called while another writes returns only once that write is done too: the
    caller sees everything appended before it written (and the finished stream's memory
    freed), not just its own empty batch."""
    async with open_event_log(":memory:", namespace="n", flush_interval=3600) as log:
        log.append(event(0, "response.completed"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(log.flush)
            await trio.testing.wait_all_tasks_blocked()  # the first is on its worker thread
            await log.flush()  # nothing left to write of its own
            assert log.known("resp_1") is None
