"""A node paused (SIGSTOP) past its lease never writes again with its old token, in a real
process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from ._support import node, sql, until_expired

_NODE = Path(__file__).with_name("_paused_node.py")


async def read_answer(stream: trio.abc.ReceiveStream, buffer: bytearray) -> str:
    """The node's next answer line (``ready``, ``wrote``, ``fenced N``), past its log lines."""
    while True:
        while b"\n" not in buffer:
            chunk = await stream.receive_some()
            if not chunk:
                raise EOFError(f"the node process ended; it said {bytes(buffer)!r}")
            buffer.extend(chunk)
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        answer = line.decode()
        if answer == "ready" or answer.split(" ")[0] in {"wrote", "fenced"}:
            return answer


class TestPausedNode:
    async def test_a_node_woken_after_a_take_over_is_fenced(self, pg_dsn: str) -> None:
        process = await trio.lowlevel.open_process(
            [sys.executable, str(_NODE), pg_dsn],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        buffer = bytearray()
        try:
            with trio.fail_after(10):
                assert await read_answer(process.stdout, buffer) == "ready"
                os.kill(process.pid, signal.SIGSTOP)
                async with node(pg_dsn, "survivor") as survivor:
                    await until_expired(pg_dsn, "paused")
                    taken = await survivor.take_over("paused")
                    assert taken is not None
                    assert [r.response_id for r in taken] == ["resp_paused"]
                    os.kill(process.pid, signal.SIGCONT)
                    await process.stdin.send_all(b"go\n")
                    assert await read_answer(process.stdout, buffer) == "fenced 1"
                    assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                with trio.move_on_after(5, shield=True):
                    await process.wait()
        assert sql(pg_dsn, "SELECT node_id, cursor FROM responses") == [("survivor", None)]
