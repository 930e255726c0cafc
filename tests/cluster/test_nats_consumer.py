"""`OrderedConsumer` of other nodes' events, against a scripted JetStream: what it asks for
when nodes announce themselves, including while it is being recreated.

The real server is in test_nats_bridge.py; here the order of things that the server makes a
matter of timing (an announcement delivered while a consumer is still being created) is
made certain.
"""

from __future__ import annotations

import asyncio
from typing import Any

import trio

from streamvisor.cluster._consumer import BridgeCounters, ConsumerHost, Message, OrderedConsumer

PREFIX = "p"


def _ack(sseq: int, dseq: int) -> bytes:
    return b"$JS.ACK.S.C.1.%d.%d.0.0" % (sseq, dseq)


def _hello(node: str) -> bytes:
    return f"NATS/1.0\r\nSv-Origin: {node}\r\n\r\n".encode()


class _Sub:
    async def unsubscribe(self) -> None:
        pass


class _Script:
    """The connection and JetStream a consumer sees: each created consumer is recorded, and
    ``during_create`` runs while the n-th creation is awaited (a push racing its answer)."""

    is_connected = True

    def __init__(self) -> None:
        self.lanes: list[Any] = []
        self.created: list[tuple[int, list[str]]] = []
        self.during_create: dict[int, Any] = {}

    def new_inbox(self) -> str:
        return f"_INBOX.{len(self.lanes)}"

    async def subscribe_lane(self, subject: str, lane: Any) -> _Sub:
        self.lanes.append(lane)
        return _Sub()

    async def add_consumer(self, stream: str, config: Any) -> Any:
        filters = config.filter_subjects or [config.filter_subject]
        self.created.append((config.opt_start_seq, list(filters)))
        push = self.during_create.get(len(self.created))
        if push is not None:
            await push(self.lanes[-1])
        return type("Info", (), {"name": f"c{len(self.created)}"})()

    async def delete_consumer(self, stream: str, name: str) -> None:
        pass


async def _scenario() -> tuple[list[tuple[int, list[str]]], set[str] | None, list[Message]]:
    script = _Script()
    delivered: list[Message] = []
    tasks: list[asyncio.Task[None]] = []
    connected = asyncio.Event()
    connected.set()
    host = ConsumerHost(
        nc=script,  # type: ignore[arg-type]
        js=script,  # type: ignore[arg-type]
        stream="S",
        prefix=PREFIX,
        prefix_len=len(PREFIX) + 1,
        connected=connected,
        deliver=lambda send, message: delivered.append(message),
        spawn=lambda coro: tasks.append(asyncio.get_running_loop().create_task(coro)),
        discard=lambda feed: None,
        counters=BridgeCounters(),
    )
    send, _receive = trio.open_memory_channel[Message](10)
    feed = OrderedConsumer(host, (), 10, send, 100, skip_origin="a", members=["b"])

    async def hello_d_while_created(lane: Any) -> None:
        await lane(b"p.~", _ack(13, 1), b"", _hello("d"))

    script.during_create[2] = hello_d_while_created
    await feed.create()
    first = script.lanes[-1]
    await first(b"p.b.x", _ack(11, 1), b"b1", None)  # b's event: delivered
    await first(b"p.~", _ack(12, 2), b"", _hello("c"))  # c joins
    await first(b"p.b.x", _ack(13, 3), b"b2", None)  # after c's hello: not from this consumer
    while tasks:
        await tasks.pop()
    new = script.lanes[-1]
    await new(b"p.c.x", _ack(14, 1), b"c1", None)
    await new(b"p.a.x", _ack(15, 2), b"mine", None)  # never asked for; dropped if it came
    return script.created, feed.members, delivered


def test_an_announcement_during_a_recreation_recreates_it_again() -> None:
    """c's hello recreates the consumer from the message after it; d's hello, pushed while
    that consumer is being created, recreates it once more, from the message after d's hello,
    with d's filter too. (b's second event, after c's hello, is the new consumers' to
    deliver: here none of them does, as none is scripted to.)"""
    created, members, delivered = asyncio.run(_scenario())
    assert created == [
        (11, ["p.~", "p.b.>"]),
        (13, ["p.~", "p.b.>", "p.c.>"]),
        (14, ["p.~", "p.b.>", "p.c.>", "p.d.>"]),
    ]
    assert members == {"b", "c", "d"}
    assert [(m.origin, m.payload) for m in delivered] == [("b", b"b1"), ("c", b"c1")]
