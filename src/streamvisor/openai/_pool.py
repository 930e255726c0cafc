"""`ShardedTransport`: the client's connections in several small httpcore pools instead of one.

Why: httpcore 1.0's pool scans every connection it holds on every request and every release
(`_assign_requests_to_connections`), and for each idle connection lists them all again. A stream
holds its connection for its whole life, so a daemon running 1,000 streams has 1,000 connections
in one pool and pays O(1,000) per request and per release, O(idle x connections) when many end
together: profiled at 1,000 paced streams, the scans were 3-14% of the client's CPU (and the
same in bare httpx at that size; `bench/daemon`'s pool rows measure it). Splitting the
connections over pools of at most `SHARD_SIZE` keeps every scan short while the limits the user
configured still hold in total.

Routing: each request goes to the shard with the fewest requests in flight (ties: the first), so
shards fill evenly and a new request finds a free connection wherever one is. A request counts
as in flight from `handle_async_request` until its response stream is closed (httpx closes it
when the body is read, or when the caller leaves `client.stream(...)`), exactly the span during
which httpcore holds its connection. Keep-alive connections are reused within a shard: with
even routing, each shard keeps its share of the idle pool.

The limits: `max_connections` and `max_keepalive_connections` are divided among the shards
(rounded up, so the total may exceed the setting by less than one connection per shard); a
request waits for a connection (up to the pool timeout) only when its shard is full, which with
even routing means every shard is. With at most `SHARD_SIZE` connections there is one shard:
the same single pool as `httpx.AsyncClient(limits=...)` would build.

Reads: every connection reads at most `READ_CAP` bytes from its socket at a time (httpcore asks
for 64 KiB). Behind on a busy core, a read brings whatever the kernel has buffered: at 64 KiB a
whole short stream, held raw in h11's receive buffer (a bytearray, reallocated as it is drained
and refilled) while the events before it are decoded and wait for their subscribers. The cap
bounds that buffer per connection. Measured in six back-to-back pairs at 1,000 paced streams
(`bench/daemon`'s rows, on a quiet machine): Responses RSS per stream 98.5 against 102.8 KiB
(medians), Chat 99.6 against 97.1 (no difference beyond this machine's spread), CPU per event
unchanged (paired medians 1.00x and 1.01x). A stream that keeps up reads one event per read
either way.
"""

# httpcore's network interface takes its timeouts as arguments (the wrappers pass them on).
# ruff: noqa: ASYNC109

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["READ_CAP", "SHARD_SIZE", "ShardedTransport"]

#: Most connections per httpcore pool (its scans cost O(connections) per request and release).
SHARD_SIZE = 100

#: Most bytes one socket read takes (see the module's docstring).
READ_CAP = 8 * 1024


class _CappedStream(httpcore.AsyncNetworkStream):
    """A network stream whose reads take at most `READ_CAP` bytes; the rest passes through."""

    __slots__ = ("_inner",)

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(min(max_bytes, READ_CAP), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _CappedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _CappedBackend(httpcore.AsyncNetworkBackend):
    """The pool's own network backend, its streams wrapped in `_CappedStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CappedStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _CappedStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _shard(
    verify: ssl.SSLContext, trust_env: bool, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """One httpx transport whose connections read at most `READ_CAP` bytes at a time.

    httpx does not take a network backend, so the one its httpcore pool made is wrapped before
    the pool opens any connection (`_pool._network_backend`: private, pinned by pyproject's
    httpx range, and `test_pool.py` fails if the wrapping stops taking effect).
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, trust_env=trust_env, limits=limits)
    pool = transport._pool
    pool._network_backend = _CappedBackend(pool._network_backend)
    return transport


class _CountedStream(httpx.AsyncByteStream):
    """A response stream that tells its shard when it is closed, once.

    `__aiter__` returns the inner stream's own iterator: no async generator is added per chunk.
    """

    __slots__ = ("_inner", "_owner", "_shard")

    def __init__(self, inner: httpx.AsyncByteStream, owner: ShardedTransport, shard: int) -> None:
        self._inner = inner
        self._owner: ShardedTransport | None = owner
        self._shard = shard

    def __aiter__(self):  # type: ignore[no-untyped-def]  # the inner iterator, whatever its type
        return self._inner.__aiter__()

    async def aclose(self) -> None:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._active[self._shard] -= 1
        await self._inner.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncHTTPTransport` per `SHARD_SIZE` connections, used as one transport.

    Args:
        limits: The limits for all shards together (divided among them).
        verify: TLS verification, as `httpx.AsyncHTTPTransport` takes it; one SSL context is
            made here and shared by every shard.
        trust_env: As `httpx.AsyncHTTPTransport`.
    """

    def __init__(
        self,
        limits: httpx.Limits,
        *,
        verify: ssl.SSLContext | str | bool = True,
        trust_env: bool = True,
    ) -> None:
        total = limits.max_connections
        shards = 1 if total is None else max(1, math.ceil(total / SHARD_SIZE))
        keepalive = limits.max_keepalive_connections
        per_shard = httpx.Limits(
            max_connections=None if total is None else math.ceil(total / shards),
            max_keepalive_connections=None if keepalive is None else math.ceil(keepalive / shards),
            keepalive_expiry=limits.keepalive_expiry,
        )
        if not isinstance(verify, ssl.SSLContext):
            verify = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
        self._shards = [_shard(verify, trust_env, per_shard) for _ in range(shards)]
        #: Requests in flight per shard (sent, response stream not closed yet).
        self._active = [0] * shards

    @property
    def shards(self) -> int:
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        active = self._active
        shard = active.index(min(active)) if len(active) > 1 else 0
        active[shard] += 1
        try:
            response = await self._shards[shard].handle_async_request(request)
        except BaseException:
            active[shard] -= 1
            raise
        stream = response.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(stream, self, shard)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
