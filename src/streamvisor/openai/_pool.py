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
"""

from __future__ import annotations

import math
import ssl

import httpx

__all__ = ["SHARD_SIZE", "ShardedTransport"]

#: Most connections per httpcore pool (its scans cost O(connections) per request and release).
SHARD_SIZE = 100


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
        self._shards = [
            httpx.AsyncHTTPTransport(verify=verify, trust_env=trust_env, limits=per_shard)
            for _ in range(shards)
        ]
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
