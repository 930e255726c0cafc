"""`coalesced_body`: a response body one network read at a time, over a real loopback socket."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import httpcore
import httpx
import pytest
import trio
from httpcore._async.connection_pool import PoolByteStream
from httpcore._async.http11 import AsyncHTTP11Connection, HTTP11ConnectionByteStream
from httpx._client import BoundAsyncStream
from httpx._transports.default import AsyncResponseStream

from streamvisor.openai._body import _MAX_PARTS, coalesced_body
from streamvisor.openai._pool import ShardedTransport, _CountedStream

#: What the server sends after a request's head: the response, all of it or a part.
Reply = Callable[[trio.SocketStream], Awaitable[None]]

_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def body_a(stream: trio.SocketStream) -> None:
    """A whole chunked body: one chunk, ``a``."""
    await stream.send_all(_HEAD + chunk(b"a") + chunk(b""))


@asynccontextmanager
async def server(reply: Reply) -> AsyncIterator[tuple[str, list[int]]]:
    """A keep-alive HTTP/1.1 server: each request on a connection gets ``reply``. Yields its URL
    and a list with the number of connections it accepted."""
    accepted = [0]

    async def handle(stream: trio.SocketStream) -> None:
        accepted[0] += 1
        buffer = b""
        with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                _, _, buffer = buffer.partition(b"\r\n\r\n")  # GET: no request body
                await reply(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/", accepted
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def sharded(read_timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on `ShardedTransport`, as `OpenAIClient` makes it."""
    transport = ShardedTransport(httpx.Limits(max_connections=10, max_keepalive_connections=10))
    async with httpx.AsyncClient(transport=transport, timeout=read_timeout) as client:
        yield client


@asynccontextmanager
async def body_of(reply: Reply, read_timeout: float = 5.0) -> AsyncIterator[AsyncIterator[bytes]]:
    """The coalesced body of one GET to a `server` answering with ``reply``."""
    async with (
        server(reply) as (url, _),
        sharded(read_timeout) as client,
        client.stream("GET", url) as response,
    ):
        body = coalesced_body(response)
        assert body is not None
        yield body


async def pieces_of(client: httpx.AsyncClient, url: str) -> list[bytes]:
    async with client.stream("GET", url) as response:
        body = coalesced_body(response)
        assert body is not None
        return [piece async for piece in body]


class TestShapes:
    def test_the_private_parts_it_reads_are_still_there(self) -> None:
        """httpx and httpcore are pinned; this says what an upgrade must keep (else
        `coalesced_body` would return None everywhere, or worse)."""
        for cls, attributes in (
            (BoundAsyncStream, ("_stream",)),
            (AsyncResponseStream, ("_httpcore_stream",)),
            (PoolByteStream, ("_stream",)),
            (HTTP11ConnectionByteStream, ("_connection", "_closed")),
            (AsyncHTTP11Connection, ("_h11_state", "_network_stream")),
        ):
            source = inspect.getsource(cls.__init__)
            for attribute in attributes:
                assert f"self.{attribute} =" in source, (cls.__name__, attribute)
        assert isinstance(AsyncHTTP11Connection.READ_NUM_BYTES, int)
        source = inspect.getsource(AsyncHTTP11Connection._receive_response_body)
        assert "h11.Data" in source
        assert "h11.EndOfMessage" in source


class TestPieces:
    async def test_chunks_that_arrive_together_come_up_as_one_piece(self) -> None:
        parts = [b"data: %d\n\n" % i for i in range(5)]

        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD)
            await trio.sleep(0.05)  # the client is waiting in its read: one write, one read
            await stream.send_all(b"".join(chunk(p) for p in parts) + chunk(b""))

        async with server(reply) as (url, _), sharded() as client:
            pieces = await pieces_of(client, url)
        assert pieces == [b"".join(parts)]
        assert all(type(p) is bytes for p in pieces)

    async def test_a_long_backlog_comes_up_a_few_chunks_at_a_time(self) -> None:
        """What one read brought is joined at most `_MAX_PARTS` chunks at a time: a stream that
        is far behind holds the rest as bytes in h11's buffer, not as parsed frames."""
        parts = [b"data: %d\n\n" % i for i in range(2 * _MAX_PARTS + 3)]

        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD)
            await trio.sleep(0.05)
            await stream.send_all(b"".join(chunk(p) for p in parts) + chunk(b""))

        async with server(reply) as (url, _), sharded() as client:
            pieces = await pieces_of(client, url)
        m = _MAX_PARTS
        assert pieces == [b"".join(parts[:m]), b"".join(parts[m : 2 * m]), b"".join(parts[2 * m :])]

    async def test_each_read_is_handed_up_before_the_next_one(self) -> None:
        """A piece is not held back waiting for more: what one read brought comes up at once."""
        seen = trio.Event()

        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + chunk(b"first"))
            await seen.wait()
            await stream.send_all(chunk(b"second") + chunk(b""))

        async with body_of(reply) as body:
            assert await body.__anext__() == b"first"
            seen.set()
            assert [piece async for piece in body] == [b"second"]

    async def test_a_content_length_body_is_read_the_same_way(self) -> None:
        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
            await trio.sleep(0.05)
            await stream.send_all(b"world")

        async with server(reply) as (url, _), sharded() as client:
            pieces = await pieces_of(client, url)
        assert pieces == [b"hello", b"world"]


class TestConnection:
    async def test_a_whole_body_leaves_the_connection_to_the_pool(self) -> None:
        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + chunk(b"data: x\n\n") + chunk(b""))

        async with server(reply) as (url, accepted), sharded() as client:
            for _ in range(3):
                assert b"".join(await pieces_of(client, url)) == b"data: x\n\n"
        assert accepted == [1]

    async def test_a_body_left_unread_closes_its_connection(self) -> None:
        """Closing the response before the body's end: the connection is not reused (its
        framing is mid-body), the next request opens another."""

        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + chunk(b"data: 1\n\n"))
            await trio.sleep_forever()

        async with server(reply) as (url, accepted), sharded() as client:
            for _ in range(2):
                async with client.stream("GET", url) as response:
                    body = coalesced_body(response)
                    assert body is not None
                    assert await body.__anext__() == b"data: 1\n\n"
                # closed by the block; the drained body then ends with httpx's ReadError
                with pytest.raises(httpx.ReadError):
                    await body.__anext__()
        assert accepted == [2]


class TestErrors:
    async def test_a_connection_dropped_mid_body_raises_httpx_remote_protocol_error(self) -> None:
        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + chunk(b"data: 1\n\n") + b"20\r\nhalf")
            await stream.aclose()

        async with body_of(reply) as body:
            with pytest.raises(httpx.RemoteProtocolError):
                async for _ in body:
                    pass

    async def test_a_silent_server_raises_httpx_read_timeout(self) -> None:
        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + chunk(b"data: 1\n\n"))
            await trio.sleep_forever()

        async with body_of(reply, read_timeout=0.2) as body:
            assert await body.__anext__() == b"data: 1\n\n"
            with pytest.raises(httpx.ReadTimeout):
                await body.__anext__()

    async def test_a_malformed_chunk_raises_httpx_remote_protocol_error(self) -> None:
        async def reply(stream: trio.SocketStream) -> None:
            await stream.send_all(_HEAD + b"zz\r\nnot hex\r\n")
            await trio.sleep_forever()

        async with body_of(reply) as body:
            with pytest.raises(httpx.RemoteProtocolError) as raised:
                await body.__anext__()
        assert isinstance(raised.value.__cause__, httpcore.RemoteProtocolError)


class TestTransports:
    @pytest.mark.parametrize(
        ("client_of", "wrapper"),
        [(sharded, _CountedStream), (httpx.AsyncClient, AsyncResponseStream)],
        ids=["ShardedTransport", "httpx's own transport"],
    )
    async def test_both_transports_are_read_one_read_at_a_time(
        self, client_of: Callable[[], Any], wrapper: type
    ) -> None:
        """`ShardedTransport` wraps httpx's response stream in its counting stream, which is
        looked through; httpx's own transport has no wrapper."""
        async with (
            server(body_a) as (url, _),
            client_of() as client,
            client.stream("GET", url) as response,
        ):
            assert type(response.stream._stream) is wrapper
            body = coalesced_body(response)
            assert body is not None
            assert [piece async for piece in body] == [b"a"]

    async def test_a_mock_transport_or_a_body_already_read_is_left_alone(self) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=b"data: x\n\n")

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            async with client.stream("GET", "http://test/") as response:
                assert coalesced_body(response) is None
            response = await client.get("http://test/")
            assert coalesced_body(response) is None

        async with (
            server(body_a) as (url, _),
            sharded() as client,
            client.stream("GET", url) as response,
        ):
            await response.aread()  # the body is read: its connection is back in the pool
            assert coalesced_body(response) is None
