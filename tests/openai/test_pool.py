"""`ShardedTransport` over loopback sockets: routing, the shared limits, the in-flight count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import partial

import httpx
import pytest
import trio

from streamvisor.openai import _pool
from streamvisor.openai._pool import SHARD_SIZE, ShardedTransport


@asynccontextmanager
async def held_server() -> AsyncIterator[tuple[str, trio.Event]]:
    """An HTTP/1.1 server whose responses send their head, then hold the body until `release`."""
    release = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:  # keep-alive: one request after another on the connection
                request = b""
                while b"\r\n\r\n" not in request:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    request += data
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                    b"transfer-encoding: chunked\r\n\r\n"
                )
                await release.wait()
                await stream.send_all(b"2\r\nok\r\n0\r\n\r\n")

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}", release
        nursery.cancel_scope.cancel()


def limits(connections: int, keepalive: int) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive)


class TestShape:
    def test_one_pool_up_to_the_shard_size(self) -> None:
        transport = ShardedTransport(limits(SHARD_SIZE, 20))
        assert transport.shards == 1
        pool = transport._shards[0]._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (SHARD_SIZE, 20)

    def test_limits_are_divided_rounding_up(self) -> None:
        transport = ShardedTransport(limits(2 * SHARD_SIZE + 1, 7))
        assert transport.shards == 3
        pools = [shard._pool for shard in transport._shards]
        assert [p._max_connections for p in pools] == [(2 * SHARD_SIZE + 1 + 2) // 3] * 3
        assert [p._max_keepalive_connections for p in pools] == [3, 3, 3]

    def test_shards_share_one_ssl_context(self) -> None:
        transport = ShardedTransport(limits(3 * SHARD_SIZE, 30))
        contexts = {id(shard._pool._ssl_context) for shard in transport._shards}
        assert len(contexts) == 1


class TestRouting:
    async def test_requests_spread_evenly_and_are_counted_until_closed(self) -> None:
        async with held_server() as (url, release):
            transport = ShardedTransport(limits(3 * SHARD_SIZE, 30))
            async with httpx.AsyncClient(base_url=url, transport=transport) as http:
                opened: list[httpx.Response] = []
                all_open = trio.Event()

                async def hold() -> None:
                    async with http.stream("GET", "/") as response:
                        opened.append(response)
                        if len(opened) == 7:
                            all_open.set()
                        assert await response.aread() == b"ok"

                async with trio.open_nursery() as nursery:
                    for _ in range(7):
                        nursery.start_soon(hold)
                    await all_open.wait()
                    # Held open: the least busy shard took each request.
                    assert sorted(transport._active) == [2, 2, 3]
                    release.set()
                # Every body read and every stream closed: nothing in flight.
                assert transport._active == [0, 0, 0]
                # Each shard keeps its own connections alive for reuse.
                assert sum(len(s._pool.connections) for s in transport._shards) == 7

    async def test_a_failed_request_is_not_counted(self) -> None:
        with trio.socket.socket() as sock:  # a port nobody listens on
            await sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        transport = ShardedTransport(limits(2 * SHARD_SIZE, 10))
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")
        assert transport._active == [0, 0]

    async def test_closing_a_response_twice_counts_once(self) -> None:
        async with held_server() as (url, release):
            release.set()
            transport = ShardedTransport(limits(2 * SHARD_SIZE, 10))
            async with httpx.AsyncClient(base_url=url, transport=transport) as http:
                response = await http.get("/")
                await response.aclose()
                await response.aclose()
                assert transport._active == [0, 0]
                assert response.text == "ok"

    async def test_the_total_limit_holds_across_shards(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two shards of one connection: two streams fill them, a third waits for the pool."""
        monkeypatch.setattr(_pool, "SHARD_SIZE", 1)
        async with held_server() as (url, release):
            transport = ShardedTransport(limits(2, 2))
            assert transport.shards == 2
            timeout = httpx.Timeout(10.0, pool=0.2)
            async with httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout) as h:
                async with h.stream("GET", "/"), h.stream("GET", "/"):
                    assert transport._active == [1, 1]
                    with pytest.raises(httpx.PoolTimeout):
                        await h.get("/")
                    release.set()
                assert transport._active == [0, 0]
