"""A streamed response's body, one piece per network read instead of one per HTTP chunk.

An SSE body arrives in HTTP/1.1 chunks, usually one event per chunk. httpx hands each chunk up
through four async generators (httpx's bound stream and response stream, httpcore's pool stream
and connection stream), entering httpcore's exception-mapping context manager once per chunk on
the way: profiled at 1,000 streams, that was about a tenth of the daemon's CPU, paid per event.
When one read from the socket holds several chunks (a busy process reads less often, so its
reads hold more), every one of them paid it.

`coalesced_body` reads the same connection with the same parts -- httpcore's network stream for
the reads (its timeouts and its error mapping), h11 for the chunked framing, httpx's mapping of
httpcore's errors to its own -- but hands up, per read, what h11 decoded from it as one bytes
object (at most `_MAX_PARTS` chunks each), through one async generator. Nothing else changes:
the response still owns the connection, and closing the response (as every caller does, at the
end of the body or of the stream) releases it to the pool exactly as before, reusable when h11
saw the whole body.

It applies to a plain HTTP/1.1 response from httpx's own transport (what `OpenAIClient` sends
through `ShardedTransport`); for anything else -- a mock transport, HTTP/2, a body already read
-- `coalesced_body` returns None and the caller iterates the response's stream as usual. It
reads private attributes of httpx 0.28 (`BoundAsyncStream._stream`,
`AsyncResponseStream._httpcore_stream`, `map_httpcore_exceptions`) and httpcore 1.0
(`PoolByteStream._stream`, `HTTP11ConnectionByteStream._connection`,
`AsyncHTTP11Connection._h11_state`, `._network_stream`, `.READ_NUM_BYTES`); both are pinned in
pyproject, and ``tests/openai/test_body.py`` checks the shapes it relies on.

Measured (2026-12-04): one fast stream (``bench/wire``, 100,000 events) went from 1.08x/1.09x
to 1.4-1.5x the events per CPU second of httpx-sse + ``json.loads`` (Responses/Chat); 1,000
paced streams through the daemon (``bench/daemon``'s load, three paired runs), CPU per event
0.874x -> 0.841x bare trio + httpx, RSS per stream unchanged (86.9 / 87.4 KiB).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import h11
import httpcore
import httpx
from httpcore._async.connection_pool import PoolByteStream
from httpcore._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream
from httpx._client import BoundAsyncStream
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions

from ._pool import _CountedStream

__all__ = ["coalesced_body"]

#: The most HTTP chunks one piece joins. A piece becomes frames that its stream holds until it
#: has delivered them all; a read that brought a long backlog stays in h11's buffer as bytes
#: meanwhile, not as parsed frames. At 1,000 streams behind by ~30 events each: 8 gave the CPU of
#: joining a whole read (wire: 1.5x httpx-sse + json.loads either way) with the RSS per stream of
#: one chunk at a time (87 KiB); joining whole reads held 3-8 KiB more per stream.
_MAX_PARTS = 8


def coalesced_body(response: httpx.Response) -> AsyncIterator[bytes] | None:
    """The body of ``response`` one read at a time, or None when it is not a plain HTTP/1.1
    body on httpx's own transport, untouched yet (see the module docstring)."""
    stream: Any = response.stream
    if type(stream) is not BoundAsyncStream:
        return None
    stream = stream._stream
    if type(stream) is _CountedStream:  # ShardedTransport's: its own, and its aclose still runs
        stream = stream._inner
    if type(stream) is not AsyncResponseStream:
        return None
    stream = stream._httpcore_stream
    if type(stream) is not PoolByteStream:
        return None
    stream = stream._stream
    if type(stream) is not HTTP11ConnectionByteStream or stream._closed:
        return None
    connection = stream._connection
    if type(connection) is not AsyncHTTP11Connection:
        return None
    state = connection._h11_state
    if state.their_state is not h11.SEND_BODY:
        return None
    timeout = response.request.extensions.get("timeout", {}).get("read")
    return _reads(connection, state, timeout)


async def _reads(
    connection: AsyncHTTP11Connection, state: h11.Connection, read_timeout: float | None
) -> AsyncIterator[bytes]:
    network = connection._network_stream
    size = connection.READ_NUM_BYTES
    with map_httpcore_exceptions():  # as httpx's AsyncResponseStream: httpcore's -> httpx's
        while True:
            parts: list[bytes] = []  # h11 hands out bytearrays; the join copies them to bytes
            event: Any = None
            while len(parts) < _MAX_PARTS:
                try:
                    event = state.next_event()
                except h11.RemoteProtocolError as exc:  # as httpcore maps it
                    raise httpcore.RemoteProtocolError(exc) from exc
                if type(event) is not h11.Data:
                    break
                parts.append(event.data)
            if parts:
                yield b"".join(parts)
            if event is h11.NEED_DATA:
                state.receive_data(await network.read(size, timeout=read_timeout))
            elif event is h11.PAUSED or type(event) is h11.EndOfMessage:
                return
            # (a piece of `_MAX_PARTS` chunks, or an event a body does not have: read on)
