"""LaneClient: the bridge's one-per-event messages skip nats-py's per-message queue.

The lane relies on two private parts of nats-py; the first test says so when an upgrade moves
them. The header parser reads what other nodes (and the server) send, so it must never raise.
"""

from __future__ import annotations

import asyncio
import inspect

import hypothesis
import hypothesis.strategies as st
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from streamvisor.cluster._client import LaneClient, header_fields

#: Generous bound for a loaded CI core.
WAIT = 10.0


def test_nats_py_still_has_the_private_parts_a_lane_relies_on() -> None:
    params = list(inspect.signature(Client._process_msg).parameters)
    assert params == ["self", "sid", "subject", "reply", "data", "headers"]
    assert list(inspect.signature(Client._remove_sub).parameters)[:2] == ["self", "sid"]
    assert "force_flush" in inspect.signature(Client._flush_pending).parameters
    client = Client()
    assert (client._pending, client._pending_data_size) == ([], 0)
    assert isinstance(client._max_pending_size, int)  # set by connect()
    assert hasattr(client, "_flush_queue")


class TestHeaderFields:
    def test_a_plain_message_has_no_status_and_its_fields(self) -> None:
        block = b"NATS/1.0\r\nSv-Origin: node-a\r\nNats-Msg-Id: t/r/1\r\n\r\n"
        assert header_fields(block) == (None, {"Sv-Origin": "node-a", "Nats-Msg-Id": "t/r/1"})

    def test_a_heartbeat_has_its_status_and_fields(self) -> None:
        block = (
            b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 5\r\nNats-Last-Stream: 9\r\n\r\n"
        )
        assert header_fields(block) == (
            "100",
            {"Nats-Last-Consumer": "5", "Nats-Last-Stream": "9"},
        )

    def test_a_flow_control_request_is_a_status_without_fields(self) -> None:
        assert header_fields(b"NATS/1.0 100 FlowControl Request\r\n\r\n") == ("100", {})

    def test_malformed_lines_are_skipped_and_bad_bytes_replaced(self) -> None:
        block = b"NATS/1.0\r\nno colon here\r\nSv-Origin: \xffa\r\n\r\n"
        assert header_fields(block) == (None, {"Sv-Origin": "\ufffda"})

    @hypothesis.given(st.binary(max_size=300))
    def test_any_bytes_at_all_are_read_without_raising(self, block: bytes) -> None:
        status, fields = header_fields(block)
        assert status is None or isinstance(status, str)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


def test_a_lane_that_raises_loses_its_message_not_the_connection(nats_url: str) -> None:
    """The lane runs inside nats-py's read loop, which stops reading on an exception."""

    async def main() -> tuple[bytes, int, bool]:
        nc = LaneClient()
        await nc.connect(nats_url, allow_reconnect=False)
        try:
            later: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

            async def broken(*_: object) -> None:
                raise RuntimeError("a handler bug")

            async def check(msg: Msg) -> None:
                if not later.done():
                    later.set_result(msg)

            await nc.subscribe_lane("lane.broken", broken)
            await nc.subscribe("lane.check", cb=check)
            for _ in range(3):
                await nc.publish("lane.broken", b"x")
            await nc.publish("lane.check", b"still reading")
            got = await asyncio.wait_for(later, WAIT)
            return got.data, nc.lane_failures, nc.is_connected
        finally:
            await nc.close()

    assert asyncio.run(main()) == (b"still reading", 3, True)


def test_an_unsubscribed_lane_is_forgotten(nats_url: str) -> None:
    async def main() -> int:
        nc = LaneClient()
        await nc.connect(nats_url, allow_reconnect=False)
        try:

            async def lane(*_: object) -> None:
                pass

            sub = await nc.subscribe_lane("lane.gone", lane)
            await sub.unsubscribe()
            return len(nc._lanes)
        finally:
            await nc.close()

    assert asyncio.run(main()) == 0


@pytest.mark.parametrize("status_line", [b"NATS/1.0 503\r\n\r\n", b"NATS/1.0 404 No Messages\r\n"])
def test_a_bare_status_is_a_status(status_line: bytes) -> None:
    status, _ = header_fields(status_line)
    assert status == status_line[9:12].decode()


def test_publish_many_sends_each_message_with_its_reply_headers_and_payload(nats_url: str) -> None:
    async def main() -> list[tuple[str, str, dict[str, str] | None, bytes]]:
        nc = LaneClient()
        await nc.connect(nats_url, allow_reconnect=False)
        try:
            got: list[Msg] = []
            done = asyncio.Event()

            async def collect(msg: Msg) -> None:
                got.append(msg)
                if len(got) == 3:
                    done.set()

            await nc.subscribe("many.>", cb=collect)
            await nc.flush()
            await nc.publish_many(
                [
                    (b"many.a", b"NATS/1.0\r\nSv-Origin: n1\r\n\r\n", b"one"),
                    (b"many.b", b"NATS/1.0\r\nSv-Origin: n1\r\nNats-Msg-Id: m\r\n\r\n", b""),
                    (b"many.a", b"NATS/1.0\r\n\r\n", b"three"),
                ],
                b"acks.",
                41,
            )
            await asyncio.wait_for(done.wait(), WAIT)
            return [(m.subject, m.reply, m.headers, m.data) for m in got]
        finally:
            await nc.close()

    assert asyncio.run(main()) == [
        ("many.a", "acks.41", {"Sv-Origin": "n1"}, b"one"),
        ("many.b", "acks.42", {"Sv-Origin": "n1", "Nats-Msg-Id": "m"}, b""),
        ("many.a", "acks.43", None, b"three"),
    ]


def test_publish_many_refuses_while_the_connection_is_down() -> None:
    async def main() -> None:
        await LaneClient().publish_many([(b"x", b"NATS/1.0\r\n\r\n", b"")], b"acks.", 0)

    with pytest.raises(nats.errors.ConnectionReconnectingError):
        asyncio.run(main())
