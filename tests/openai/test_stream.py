"""EventStream: errors, interruptions, order, resume and clean closing on the wire."""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
import trio.lowlevel

from streamvisor.openai import (
    EventStream,
    MalformedStreamError,
    OutcomeUnknownError,
    SequenceError,
    StreamError,
    StreamEvent,
    StreamInterrupted,
)

from .conftest import SSE_HEADERS, Chunked, Handler, client_for, frames, sse_response


def rframe(type: str, seq: int | None, **data: Any) -> bytes:
    """One Responses-framed event."""
    body: dict[str, Any] = {"type": type, **data}
    if seq is not None:
        body["sequence_number"] = seq
    return f"event: {type}\ndata: {json.dumps(body)}\n\n".encode()


def cframe(obj: Any) -> bytes:
    return f"data: {json.dumps(obj)}\n\n".encode()


RESP = {"id": "resp_1", "object": "response", "status": "in_progress", "output": []}
DONE = {**RESP, "status": "completed"}


def serving(body: bytes) -> Handler:
    """A handler answering every request with `body` as an event stream."""

    async def handler(request: httpx.Request) -> httpx.Response:
        return sse_response(body)

    return handler


async def drained(stream: EventStream) -> tuple[list[StreamEvent], Any]:
    """Every event `stream` yields, and the exception that ended it (None at a clean end)."""
    got: list[StreamEvent] = []
    error: Any = None
    try:
        async for event in stream:
            got.append(event)
    except Exception as exc:
        error = exc
    return got, error


async def responses_events(body: bytes, **kw: Any) -> tuple[list[StreamEvent], Any]:
    async with (
        client_for(serving(body)) as client,
        client.stream_response({"model": "gpt-4o", "input": "x"}, **kw) as stream,
    ):
        return await drained(stream)


async def chat_events(body: bytes) -> tuple[list[StreamEvent], Any]:
    async with (
        client_for(serving(body)) as client,
        client.stream_chat({"model": "gpt-4o", "messages": []}) as stream,
    ):
        return await drained(stream)


def created_then_raising(exc: Exception) -> Handler:
    """A handler whose body yields one `response.created` frame, then fails with `exc`."""

    class Failing(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield rframe("response.created", 0, response=RESP)
            raise exc

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=SSE_HEADERS, stream=Failing())

    return handler


E = TypeVar("E", bound=BaseException)


async def raised_by(
    handler: Handler, expected: type[E], match: str | None = None, **request: Any
) -> E:
    """Iterate a Responses stream served by `handler`; the `expected` error it raised."""
    async with (
        client_for(handler) as client,
        client.stream_response({"model": "m", "input": "x", **request}) as stream,
    ):
        with pytest.raises(expected, match=match) as info:
            async for _ in stream:
                pass
    return info.value


class TestErrorFrames:
    async def test_a_chat_error_frame_is_yielded_then_raised_as_stream_error(self) -> None:
        body = cframe({"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]})
        body += cframe(
            {"error": {"message": "boom", "type": "server_error", "param": None, "code": "x1"}}
        )
        events, error = await chat_events(body)
        assert [e.type for e in events] == [
            "response.created",
            "response.output_text.delta",
            "error",
        ]
        assert isinstance(error, StreamError)
        assert (error.message, error.code, error.type) == ("boom", "x1", "server_error")
        assert error.request_id == "req_stream"
        assert error.event is events[-1]

    async def test_a_flat_responses_error_then_failed_yields_both_then_raises(self) -> None:
        failed = {**RESP, "status": "failed", "error": {"code": "server_error", "message": "m"}}
        body = (
            rframe("response.created", 0, response=RESP)
            + rframe("error", 1, code="server_error", message="m", param=None)
            + rframe("response.failed", 2, response=failed)
        )
        events, error = await responses_events(body)
        assert [e.type for e in events] == ["response.created", "error", "response.failed"]
        assert isinstance(error, StreamError)
        assert error.code == "server_error"

    async def test_the_nested_gateway_error_form_is_understood(self) -> None:
        body = rframe("response.created", 0, response=RESP) + rframe(
            "error",
            1,
            error={"type": "rate_limit_error", "code": "rl", "message": "slow down", "param": None},
        )
        _, error = await responses_events(body)
        assert isinstance(error, StreamError)
        assert (error.code, error.type, error.message) == ("rl", "rate_limit_error", "slow down")


class TestPassThrough:
    async def test_keepalive_and_unknown_events_are_passed_on_in_order(self) -> None:
        body = (
            rframe("response.created", 0, response=RESP)
            + rframe("keepalive", 1)
            + b"event: keepalive\ndata: \n\n"
            + rframe("response.brand_new.thing", 2, stuff=[1])
            + rframe("response.completed", 3, response=DONE)
        )
        events, error = await responses_events(body)
        assert error is None
        assert [(e.type, e.sequence_number) for e in events] == [
            ("response.created", 0),
            ("keepalive", 1),
            ("keepalive", 1),
            ("response.brand_new.thing", 2),
            ("response.completed", 3),
        ]

    async def test_an_unnumbered_keepalive_never_takes_a_real_events_number(self) -> None:
        """A bare `event: keepalive` first (no data, no number) must not swallow seq 0."""
        body = (
            b"event: keepalive\ndata: \n\n"
            + rframe("response.created", 0, response=RESP)
            + b'event: keepalive\ndata: {"type":"keepalive"}\n\n'
            + rframe("response.completed", 1, response=DONE)
        )
        events, error = await responses_events(body)
        assert error is None
        assert [(e.type, e.sequence_number) for e in events] == [
            ("keepalive", -1),
            ("response.created", 0),
            ("keepalive", 0),
            ("response.completed", 1),
        ]

    async def test_an_unnumbered_keepalive_at_the_start_of_a_resume_is_harmless(self) -> None:
        body = (
            b"event: keepalive\ndata: \n\n"
            + rframe("response.in_progress", 5, response=RESP)
            + rframe("response.completed", 6, response=DONE)
        )

        async with (
            client_for(serving(body)) as client,
            client.resume_response("resp_1", starting_after=4) as stream,
        ):
            events = [e async for e in stream]
        assert [(e.type, e.sequence_number) for e in events] == [
            ("keepalive", 4),
            ("response.in_progress", 5),
            ("response.completed", 6),
        ]
        assert stream.accumulator.result == DONE

    async def test_events_after_completed_are_delivered_and_the_final_stays(self) -> None:
        body = (
            rframe("response.created", 0, response=RESP)
            + rframe("response.completed", 1, response=DONE)
            + rframe("response.rate_limits.updated", 2, rate_limits=[])
        )

        async with (
            client_for(serving(body)) as client,
            client.stream_response({"model": "gpt-4o", "input": "x"}) as stream,
        ):
            events = [e async for e in stream]
        assert events[-1].type == "response.rate_limits.updated"
        assert stream.accumulator.result == DONE
        assert stream.cursor == 2

    async def test_old_streams_without_sequence_numbers_get_a_local_counter(
        self, recorded_dir: Path
    ) -> None:
        events, error = await responses_events(
            (recorded_dir / "05_responses_text.sse").read_bytes()
        )
        assert error is None
        assert [e.sequence_number for e in events] == list(range(len(events)))

    async def test_events_carry_the_session_and_response_ids(self) -> None:
        body = rframe("response.created", 0, response=RESP) + rframe(
            "response.completed", 1, response=DONE
        )
        events, _ = await responses_events(body, session_id="s9")
        assert {(e.session_id, e.response_id, e.api) for e in events} == {
            ("s9", "resp_1", "responses")
        }


class TestInterruption:
    async def test_eof_before_the_terminal_event_raises_interrupted_with_the_cursor(
        self,
    ) -> None:
        body = rframe("response.created", 0, response=RESP) + rframe("keepalive", 1)
        events, error = await responses_events(body)
        assert len(events) == 2
        assert isinstance(error, StreamInterrupted)
        assert (error.cursor, error.response_id, error.request_id) == (1, "resp_1", "req_stream")

    async def test_a_truncated_last_frame_is_not_half_parsed(self) -> None:
        body = rframe("response.created", 0, response=RESP)
        body += rframe("response.completed", 1, response=DONE)[:-30]
        events, error = await responses_events(body)
        assert [e.type for e in events] == ["response.created"]
        assert isinstance(error, StreamInterrupted)

    async def test_a_chat_stream_without_done_is_interrupted(self) -> None:
        body = cframe(
            {
                "id": "c",
                "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}],
            }
        )
        _, error = await chat_events(body)
        assert isinstance(error, StreamInterrupted)

    async def test_a_connection_drop_mid_stream_raises_interrupted(self) -> None:
        drop = httpx.RemoteProtocolError("peer closed connection (incomplete chunked read)")
        error = await raised_by(created_then_raising(drop), StreamInterrupted)
        assert error.cursor == 0
        assert isinstance(error.__cause__, httpx.RemoteProtocolError)

    async def test_an_idle_timeout_raises_interrupted(self) -> None:
        stall = httpx.ReadTimeout("no bytes for 120 s")
        await raised_by(created_then_raising(stall), StreamInterrupted, match="idle timeout")

    async def test_malformed_json_raises_after_the_good_events(self) -> None:
        body = rframe("response.created", 0, response=RESP) + b"event: x\ndata: {nope\n\n"
        events, error = await responses_events(body)
        assert len(events) == 1
        assert isinstance(error, MalformedStreamError)
        assert isinstance(error, StreamInterrupted)
        assert error.cursor == 0

    async def test_invalid_utf8_raises_malformed_after_the_good_events(self) -> None:
        """Bad bytes are not replaced with U+FFFD (that would corrupt text silently)."""
        body = rframe("response.created", 0, response=RESP) + b'event: x\ndata: {"d":"\xff"}\n\n'
        events, error = await responses_events(body)
        assert [e.type for e in events] == ["response.created"]
        assert isinstance(error, MalformedStreamError)
        assert "invalid UTF-8" in str(error)
        assert error.cursor == 0

    async def test_a_frame_split_at_every_byte_decodes_the_same(self) -> None:
        """Chunk boundaries inside a character, inside CRLF, anywhere: the same events."""
        body = (
            rframe("response.created", 0, response=RESP).replace(b"\n", b"\r\n")
            + rframe("response.output_text.delta", 1, delta="héllo ✓ 🙂")
            + rframe("response.completed", 2, response=DONE)
        )
        whole, _ = await responses_events(body)
        assert whole[1].data["delta"] == "héllo ✓ 🙂"

        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200, headers=SSE_HEADERS, stream=Chunked(body[i : i + 1] for i in range(len(body)))
            )

        async with (
            client_for(handler) as client,
            client.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            split = [e async for e in stream]
        assert [(e.type, e.data) for e in split] == [(e.type, e.data) for e in whole]

    async def test_blanks_around_the_json_of_a_frame_are_accepted(self) -> None:
        body = (
            b'event: response.created\ndata:   {"type":"response.created","sequence_number":0,'
            + json.dumps({"response": RESP})[1:].encode()
            + b"  \n\n"
            + rframe("response.completed", 1, response=DONE)
        )
        events, error = await responses_events(body)
        assert error is None
        assert [e.type for e in events] == ["response.created", "response.completed"]

    async def test_extra_data_after_the_json_value_is_malformed(self) -> None:
        body = rframe("response.created", 0, response=RESP) + b"data: {} {}\n\n"
        events, error = await responses_events(body)
        assert len(events) == 1
        assert isinstance(error, MalformedStreamError)

    async def test_a_frame_nested_too_deep_is_malformed_not_a_recursion_error(self) -> None:
        """A frame is data from the network: no nesting may end the stream otherwise than as a
        malformed one (json.loads raises RecursionError for this)."""
        deep = "[" * 100_000 + "]" * 100_000
        body = rframe("response.created", 0, response=RESP) + f"data: {deep}\n\n".encode()
        events, error = await responses_events(body)
        assert [e.type for e in events] == ["response.created"]
        assert isinstance(error, MalformedStreamError)
        assert error.cursor == 0
        chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}}]}
        events, error = await chat_events(cframe(chunk) + f"data: {deep}\n\n".encode())
        assert [e.type for e in events] == ["response.created", "response.output_text.delta"]
        assert isinstance(error, MalformedStreamError)

    async def test_numbers_are_read_as_json_loads_reads_them(self) -> None:
        """An integer beyond 64 bits stays an exact int, NaN and an overflowing number are
        floats, as the official SDK (json.loads) reads them. The big integer has a frame of its
        own: a NaN beside it would send the frame to json.loads whatever its digits."""
        big = 2**70
        body = (
            rframe("response.created", 0, response=RESP)
            + b'data: {"type": "x.big", "sequence_number": 1, "n": '
            + str(big).encode()
            + b"}\n\n"
            + b'data: {"type": "x.odd", "sequence_number": 2, "id": "1234567890123456789012", '
            + b'"f": NaN, "g": 1e400, "h": -0.0}\n\n'
            + rframe("x.small", 3, n=7, f=0.5)
            + rframe("response.completed", 4, response=DONE)
        )
        events, error = await responses_events(body)
        assert error is None
        assert type(events[1].data["n"]) is int
        assert events[1].data["n"] == big
        odd = events[2].data
        assert odd["id"] == "1234567890123456789012"
        assert odd["f"] != odd["f"]  # NaN
        assert odd["g"] == float("inf")
        assert str(odd["h"]) == "-0.0"
        assert events[3].data["n"] == 7
        assert events[3].data["f"] == 0.5

    async def test_a_done_sentinel_ends_a_responses_stream_like_eof(self) -> None:
        body = (
            rframe("response.created", 0, response=RESP)
            + rframe("response.completed", 1, response=DONE)
            + b"data: [DONE]\n\n"
            + rframe("keepalive", 2)
        )
        events, error = await responses_events(body)
        assert error is None
        assert [e.type for e in events] == ["response.created", "response.completed"]

    async def test_a_gap_in_sequence_numbers_raises_sequence_error(self) -> None:
        body = (
            rframe("response.created", 0, response=RESP)
            + rframe("keepalive", 1)
            + rframe("keepalive", 5)
        )
        events, error = await responses_events(body)
        assert len(events) == 2
        assert isinstance(error, SequenceError)
        assert (error.expected, error.got) == (2, 5)

    async def test_a_200_that_is_not_an_event_stream_is_rejected(self) -> None:
        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={"id": "resp_1"})

        async with client_for(handler) as client:
            with pytest.raises(MalformedStreamError, match="text/event-stream"):
                async with client.stream_response({"model": "m", "input": "x"}):
                    pass


class TestBackgroundStreams:
    async def test_a_background_stream_lost_before_its_id_is_outcome_unknown(self) -> None:
        handler = serving(b": connected\n\n")
        error = await raised_by(handler, OutcomeUnknownError, background=True)
        assert isinstance(error.__cause__, StreamInterrupted)

    async def test_once_the_id_is_known_a_drop_is_a_resumable_interruption(self) -> None:
        handler = serving(rframe("response.created", 0, response=RESP))
        error = await raised_by(handler, StreamInterrupted, background=True)
        assert (error.response_id, error.cursor) == ("resp_1", 0)

    async def test_iterating_after_the_error_was_raised_just_stops(self) -> None:
        body = rframe("error", 0, code="x", message="m", param=None)

        async with (
            client_for(serving(body)) as client,
            client.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            with pytest.raises(StreamError):
                async for _ in stream:
                    pass
            assert [e async for e in stream] == []


class TestResume:
    async def test_resume_sends_starting_after_on_the_wire(self, recorded_dir: Path) -> None:
        seen: list[httpx.Request] = []
        body = (recorded_dir / "11_responses_background_resume_starting_after_0.sse").read_bytes()

        async def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return sse_response(body)

        async with (
            client_for(handler) as client,
            client.resume_response("resp_abc", starting_after=0) as stream,
        ):
            events = [e async for e in stream]
        (request,) = seen
        assert request.method == "GET"
        assert request.url.path == "/v1/responses/resp_abc"
        assert dict(request.url.params) == {"stream": "true", "starting_after": "0"}
        assert request.headers["accept"] == "text/event-stream"
        assert events[0].sequence_number == 1
        assert stream.accumulator.result == frames(body)[-1]["response"]

    async def test_resume_drops_the_events_the_seed_already_holds(self, recorded_dir: Path) -> None:
        """A server replaying from an older cursor causes no duplicate delivery."""
        create = (recorded_dir / "10_responses_background_stream_create.sse").read_bytes()
        resume = (recorded_dir / "11_responses_background_resume_starting_after_0.sse").read_bytes()
        bodies = iter([create[: create.index(b"response.output_text.delta") + 400], resume])

        async def handler(request: httpx.Request) -> httpx.Response:
            return sse_response(next(bodies))

        async with client_for(handler) as client:
            async with client.stream_response(
                {"model": "m", "input": "x", "background": True}
            ) as first:
                with pytest.raises(StreamInterrupted) as info:
                    async for _ in first:
                        pass
            cursor = info.value.cursor
            assert cursor is not None
            async with client.resume_response(
                "resp_x", starting_after=0, snapshot=first.accumulator.snapshot
            ) as second:
                second.accumulator._cursor = cursor  # the server replayed from 0, not cursor
                events = [e async for e in second]
        assert events[0].sequence_number == cursor + 1
        assert second.accumulator.duplicates == cursor
        assert second.accumulator.result == frames(resume)[-1]["response"]


class TestClosing:
    async def test_breaking_out_early_closes_without_resource_warnings(self) -> None:
        """No async generator of httpx is left for the garbage collector (a trio warning)."""
        body = b"".join(rframe("keepalive", i) for i in range(50))

        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200,
                headers=SSE_HEADERS,
                stream=Chunked([body[i : i + 64] for i in range(0, len(body), 64)]),
            )

        async with client_for(handler) as client:
            for _ in range(3):
                async with client.stream_response({"model": "m", "input": "x"}) as stream:
                    async for event in stream:
                        if event.sequence_number == 3:
                            break
                assert stream.response.is_closed
        gc.collect()
        await trio.lowlevel.checkpoint()

    async def test_after_the_terminal_event_a_silent_server_is_not_waited_on(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        class Lingering(httpx.AsyncByteStream):
            async def __aiter__(self) -> AsyncIterator[bytes]:
                yield rframe("response.created", 0, response=RESP)
                yield rframe("response.completed", 1, response=DONE)
                await trio.sleep(3600)
                yield b""

        async def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, headers=SSE_HEADERS, stream=Lingering())

        async with client_for(handler) as client:
            start = trio.current_time()
            async with client.stream_response({"model": "m", "input": "x"}) as stream:
                events = [e async for e in stream]
            assert len(events) == 2
            assert trio.current_time() - start < 10


class TestBody:
    """How the body's chunks are taken: straight from the response's stream unless encoded."""

    BODY = rframe("response.created", 0, response=RESP) + rframe(
        "response.completed", 1, response=DONE
    )

    async def test_a_compressed_stream_is_decoded(self) -> None:
        import gzip

        packed = gzip.compress(self.BODY)

        async def handler(request: httpx.Request) -> httpx.Response:
            headers = {**SSE_HEADERS, "content-encoding": "gzip"}
            return httpx.Response(200, headers=headers, stream=Chunked([packed[:9], packed[9:]]))

        async with (
            client_for(handler) as client,
            client.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            assert not stream._direct  # decoded by httpx's own content decoder
            events, error = await drained(stream)
        assert error is None
        assert [e.type for e in events] == ["response.created", "response.completed"]

    async def test_an_identity_body_is_released_as_soon_as_it_ends(self) -> None:
        """As `aiter_raw` would: the response is closed at EOF, before the caller leaves."""
        async with (
            client_for(serving(self.BODY)) as client,
            client.stream_response({"model": "m", "input": "x"}) as stream,
        ):
            assert stream._direct  # chunks straight from the response's byte stream
            assert stream.response.is_stream_consumed
            assert not stream.response.is_closed
            events, error = await drained(stream)
            assert error is None
            assert len(events) == 2
            assert stream.response.is_closed

    async def test_a_drop_keeps_the_request_on_the_transport_error(self) -> None:
        drop = httpx.ReadError("connection reset")
        error = await raised_by(created_then_raising(drop), StreamInterrupted)
        cause = error.__cause__
        assert isinstance(cause, httpx.ReadError)
        assert cause.request.url.path.endswith("/responses")
