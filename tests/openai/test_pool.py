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


async def read_request_head(stream: trio.SocketStream) -> bool:
    """Read one request's head (these tests send no bodies); False if the client closed."""
    request = b""
    while b"\r\n\r\n" not in request:
        data = await stream.receive_some(65536)
        if not data:
            return False
        request += data
    return True


@asynccontextmanager
async def held_server() -> AsyncIterator[tuple[str, trio.Event]]:
    """An HTTP/1.1 server whose responses send their head, then hold the body until `release`."""
    release = trio.Event()

    async def handle(stream: trio.SocketStream) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            # keep-alive: one request after another on the connection
            while await read_request_head(stream):
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


@asynccontextmanager
async def bulk_server(body: bytes) -> AsyncIterator[str]:
    """An HTTP/1.1 server that answers every request with `body` in one send (content-length),
    so the whole body is in the client's socket buffer before it reads."""

    async def handle(stream: trio.SocketStream) -> None:
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            if not await read_request_head(stream):
                return
            head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            await stream.send_all(head + body)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}"
        nursery.cancel_scope.cancel()


class TestReads:
    async def test_a_buffered_body_is_read_at_most_read_cap_bytes_at_a_time(self) -> None:
        # httpcore asks for 64 KiB per read: the body arrives in chunks of up to that size
        # (h11 hands out what one read brought) unless the backend caps the reads.
        body = bytes(range(256)) * 1024  # 256 KiB
        async with bulk_server(body) as url:
            transport = ShardedTransport(limits(10, 10))
            async with (
                httpx.AsyncClient(base_url=url, transport=transport) as http,
                http.stream("GET", "/") as response,
            ):
                await trio.sleep(0.2)  # let the whole body reach the socket buffer
                chunks = [chunk async for chunk in response.aiter_raw()]
        assert b"".join(chunks) == body
        assert max(map(len, chunks)) <= _pool.READ_CAP
        assert len(chunks) >= len(body) // _pool.READ_CAP

    async def test_the_capped_stream_passes_everything_else_through(self) -> None:
        async with bulk_server(b"ok") as url:
            transport = ShardedTransport(limits(10, 10))
            async with (
                httpx.AsyncClient(base_url=url, transport=transport) as http,
                http.stream("GET", "/") as response,
            ):
                stream = response.extensions["network_stream"]
                assert isinstance(stream, _pool._CappedStream)
                assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
                assert await response.aread() == b"ok"
