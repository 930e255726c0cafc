"""A child Python process that starts durable work, says so, and is then SIGKILLed.

The durability tests of the background poller and of the daemon both need "a process that
tracked a response and died without any cleanup": this runs a script until it prints
``TRACKED <response id>``, kills it with SIGKILL and hands the id back. `tickets_then_sigkilled`
does the same at a chosen instant of a stream of ``TICKET <id>`` lines.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import trio

__all__ = ["tickets_then_sigkilled", "tracked_then_sigkilled"]


async def tracked_then_sigkilled(script: str, *args: str) -> str:
    """Run ``python -c script *args`` until it prints ``TRACKED <id>``, SIGKILL it, return the id.

    Asserts the child died of that SIGKILL (not of its own accord first). Raises
    `AssertionError` if it exits before printing the marker; bound the call with
    `trio.fail_after`, as it waits for the marker as long as the child runs.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        response_id = await _read_marker(process.stdout)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    return response_id


async def _read_marker(stdout: trio.abc.ReceiveStream) -> str:
    buffer = b""
    while True:
        chunk = await stdout.receive_some()
        if not chunk:
            raise AssertionError(f"the child exited before tracking: {buffer[-2000:]!r}")
        buffer += chunk
        for line in buffer.split(b"\n")[:-1]:  # complete lines only
            if line.startswith(b"TRACKED "):
                return line.split()[1].decode()


async def tickets_then_sigkilled(
    script: str, *args: str, after: int, delay: float
) -> tuple[list[str], list[str]]:
    """Run ``python -c script *args``; once it printed ``after`` ``TICKET <id>`` lines, wait
    ``delay`` seconds (reading on), SIGKILL it. Returns (every id read before the kill, the
    ids read by the time of the SIGKILL itself and after it, from the pipe: they too were
    handed out before the process died).

    Asserts the child died of that SIGKILL. Raises `AssertionError` if it exits first; bound the
    call with `trio.fail_after`.
    """
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    buffer = b""
    try:
        while buffer.count(b"TICKET ") < after:
            chunk = await process.stdout.receive_some()
            if not chunk:
                raise AssertionError(f"the child exited before {after} tickets: {buffer[-2000:]!r}")
            buffer += chunk
        with trio.move_on_after(delay):
            while chunk := await process.stdout.receive_some():
                buffer += chunk
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    before = _tickets(buffer)
    while chunk := await process.stdout.receive_some():  # what was in the pipe at the kill
        buffer += chunk
    await process.stdout.aclose()
    assert process.returncode == -signal.SIGKILL
    return before, _tickets(buffer)[len(before) :]


def _tickets(buffer: bytes) -> list[str]:
    return [
        line.split()[1].decode()
        for line in buffer.split(b"\n")[:-1]  # complete lines only
        if line.startswith(b"TICKET ")
    ]
