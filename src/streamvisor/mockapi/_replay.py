"""Replay mode: serve a recorded `.sse` body byte for byte, optionally re-chunked."""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ._http import Responder, SSEWriter
from ._state import MockState
from ._wire import ApiProblem

__all__ = ["parse_chunk_sizes", "serve_replay"]


def parse_chunk_sizes(value: object) -> tuple[int, ...]:
    """`"7,13"` → (7, 13). Raises `ApiProblem` (400) for anything else."""
    if value is None or value == "":
        return ()
    try:
        sizes = tuple(int(p) for p in str(value).split(",") if p.strip())
    except ValueError:
        raise ApiProblem(400, f"mock chunk sizes must be integers, got {value!r}") from None
    if not sizes or any(s < 1 for s in sizes):
        raise ApiProblem(400, f"mock chunk sizes must be positive, got {value!r}")
    return sizes


def split_frames(data: bytes) -> list[bytes]:
    """Split an SSE body after each blank line (`\\n\\n`), keeping every byte."""
    pieces = data.split(b"\n\n")
    frames = [piece + b"\n\n" for piece in pieces[:-1]]
    if pieces[-1]:
        frames.append(pieces[-1])
    return frames


def rechunk(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """Cut `data` into pieces of the given sizes, cycling through them."""
    chunks, offset, i = [], 0, 0
    while offset < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[offset : offset + size])
        offset += size
        i += 1
    return chunks


async def serve_replay(
    state: MockState,
    responder: Responder,
    stem: str,
    chunk_sizes: Sequence[int],
    delay: float,
) -> None:
    """Send `<recordings_dir>/<stem>.sse` as `text/event-stream`. Raises `ApiProblem` (400)
    when replay is not configured or the recording does not exist."""
    directory = state.config.recordings_dir
    if directory is None:
        raise ApiProblem(400, "replay scenarios need MockAPIConfig.recordings_dir")
    path = trio.Path(directory) / f"{stem}.sse"
    if not await path.is_file():
        raise ApiProblem(400, f"no recording named {stem!r} in {directory}")
    data = await path.read_bytes()
    chunks = rechunk(data, chunk_sizes) if chunk_sizes else split_frames(data)
    writer = SSEWriter(responder, "raw")
    await writer.open()
    for chunk in chunks:
        await writer.raw(chunk)
        await trio.sleep(delay)
    await responder.finish()
