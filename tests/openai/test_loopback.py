"""The stream over a real loopback socket (httpcore underneath): drops, stalls, early close."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial

import pytest
import trio

from streamvisor.openai import ClientSettings, OpenAIClient, StreamInterrupted

Body = Callable[[trio.SocketStream], Awaitable[None]]
RESP = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}


def frame(type: str, seq: int, **data: object) -> bytes:
    payload = json.dumps({"type": type, "sequence_number": seq, **data})
    return f"event: {type}\ndata: {payload}\n\n".encode()


async def send_chunk(stream: trio.SocketStream, data: bytes) -> None:
    await stream.send_all(b"%x\r\n%s\r\n" % (len(data), data))


@asynccontextmanager
async def server(body: Body) -> AsyncIterator[str]:
    """A one-route HTTP/1.1 server: reads the request head, sends SSE headers, runs `body`."""

    async def handle(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(65536)
        head, _, rest = request.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(rest) < length:
            rest += await stream.receive_some(65536)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"x-request-id: req_loop\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        with suppress(trio.BrokenResourceError):
            await body(stream)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def client(url: str, **settings: float) -> AsyncIterator[OpenAIClient]:
    async with OpenAIClient.open(ClientSettings(base_url=url, **settings)) as c:  # type: ignore[arg-type]
        yield c


class TestLoopback:
    async def test_breaking_out_of_an_endless_stream_closes_cleanly(self) -> None:
        """With httpcore's generators underneath: no ResourceWarning, the socket is closed."""

        async def endless(stream: trio.SocketStream) -> None:
            await send_chunk(stream, frame("response.created", 0, response=RESP))
            seq = 1
            while True:
                await send_chunk(stream, frame("keepalive", seq))
                seq += 1
                await trio.sleep(0.001)

        async with server(endless) as url, client(url) as c:
            for _ in range(3):
                async with c.stream_response({"model": "m", "input": "x"}) as stream:
                    async for event in stream:
                        if event.sequence_number >= 5:
                            break
                assert stream.response.is_closed
            gc.collect()
            await trio.sleep(0.01)

    async def test_a_peer_that_closes_mid_stream_gives_interrupted_with_the_cursor(self) -> None:
        async def dropping(stream: trio.SocketStream) -> None:
            await send_chunk(stream, frame("response.created", 0, response=RESP))
            await send_chunk(stream, frame("keepalive", 1))
            await stream.aclose()  # no terminating zero-length chunk

        async with (
            server(dropping) as url,
            client(url) as c,
            c.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            with pytest.raises(StreamInterrupted) as info:
                async for _ in stream:
                    pass
        assert (info.value.cursor, info.value.response_id) == (1, "resp_1")
        assert info.value.request_id == "req_loop"

    async def test_silence_longer_than_the_read_timeout_is_an_interruption(self) -> None:
        async def stalling(stream: trio.SocketStream) -> None:
            await send_chunk(stream, frame("response.created", 0, response=RESP))
            await trio.sleep_forever()

        async with (
            server(stalling) as url,
            client(url, read_timeout=0.2) as c,
            c.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            with pytest.raises(StreamInterrupted, match="idle timeout") as info:
                async for _ in stream:
                    pass
        assert info.value.cursor == 0
