"""The bridge's subscriptions: ordered push consumers that survive anything but a lost stream.

An `OrderedConsumer` lives on the bridge's asyncio thread. What it owns for good is one number,
the last stream sequence it delivered; the deliver inbox and the JetStream consumer behind it
are disposable and recreated from that number + 1 whenever something looks wrong: a consumer
sequence that skips (a message lost between server and client), a heartbeat naming a consumer
sequence other than the last one seen, two missed heartbeats (the consumer was deleted, or the
server restarted before the client noticed), or a reconnect. Whatever a replaced consumer still
sends is ignored (each inbox's callback knows its generation), and a re-delivery at or below the
last sequence is dropped: no gap, no duplicate.

nats-py has an ordered consumer of its own; it restarts from sequence 1 when nothing was
delivered yet (so a live-only subscription would replay the whole stream after a reset), and
gives up for good if re-creating the consumer fails once. Hence this one.

Flow control is the subscriber's backpressure: JetStream pauses a push consumer until its
flow-control request is answered. The answer is immediate while the trio subscriber keeps up,
and held while it is ``buffer`` messages behind, until it has received half of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Final

import attrs
import nats.errors
import nats.js.errors
import structlog
import trio
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import JetStreamContext
from nats.js import api as js_api

from ._client import LaneClient, header_fields
from ._subjects import hello_subject, origin_filter

__all__ = ["BridgeCounters", "ConsumerHost", "Message", "OrderedConsumer", "parse_ack_reply"]

log = structlog.get_logger("streamvisor.cluster")

#: Headers the bridge writes: the publishing node, and the failure of a served request.
ORIGIN_HEADER: Final = "Sv-Origin"
ERROR_HEADER: Final = "Sv-Error"
MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: Msg ids the bridge makes itself begin so; `Message.msg_id` reports them as None.
AUTO_ID: Final = "~sv~"

#: A header block with an inline status (a heartbeat, a flow-control request) begins so.
_STATUS_LINE: Final = b"NATS/1.0 "
#: Idle heartbeat of a subscription's consumer: two missed ones recreate the consumer.
HEARTBEAT: Final = 1.0
#: An abandoned consumer (its node vanished) is removed by the server after this long.
_INACTIVE: Final = 30.0
#: How often a held flow-control answer checks whether its subscriber caught up.
_DRAIN_POLL: Final = 0.02
#: Retrying a batch or a consumer: first and longest pause.
RETRY_FIRST, RETRY_MAX = 0.05, 1.0


@attrs.frozen
class Message:
    """One event as JetStream stored it."""

    #: The bus topic (the subject without the bridge's prefix and the origin).
    topic: str
    payload: bytes
    #: The JetStream stream sequence: pass the last one seen as ``after=`` to resume.
    seq: int
    #: The node id of the bridge that published it (the subject's first token after the
    #: prefix).
    origin: str
    #: The ``Nats-Msg-Id`` the publisher gave, if any.
    msg_id: str | None


@attrs.define
class BridgeCounters:
    """The bridge's running counts, written on its asyncio thread only."""

    rejected: int = 0
    retried_batches: int = 0
    consumer_resets: int = 0
    reconnects: int = 0
    flow_control_held: int = 0


@attrs.frozen
class ConsumerHost:
    """What a consumer needs from its bridge, and nothing more."""

    nc: LaneClient
    js: JetStreamContext
    stream: str
    #: The bridge's subject prefix.
    prefix: str
    #: ``len(subject_prefix) + 1``: a stored subject minus this many characters is the origin,
    #: a dot and the topic.
    prefix_len: int
    #: Set while the connection is up.
    connected: asyncio.Event
    #: Hand a message to a trio channel (batched into one trio wake-up).
    deliver: Callable[[trio.MemorySendChannel[Message], Message], None]
    #: Run a background coroutine the bridge owns.
    spawn: Callable[[Coroutine[object, object, None]], None]
    #: Forget a closed consumer.
    discard: Callable[[OrderedConsumer], None]
    counters: BridgeCounters


def parse_ack_reply(reply: bytes) -> tuple[int, int]:
    """(stream seq, consumer seq) from a JetStream delivery's reply subject.

    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>``, or the newer form
    with domain and account hash after ``$JS.ACK`` (12 tokens). Raises ``ValueError`` for
    anything else.
    """
    tokens = reply.split(b".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[6])
    return int(tokens[7]), int(tokens[8])


class OrderedConsumer:
    """One subscription's ordered consumer, on the asyncio side.

    Holds the last delivered stream sequence; everything else (the deliver inbox, the consumer)
    is disposable and recreated from it.
    """

    def __init__(
        self,
        host: ConsumerHost,
        filters: tuple[str, ...],
        last_seq: int,
        send: trio.MemorySendChannel[Message],
        buffer: int,
        skip_origin: str | None = None,
        members: Iterable[str] | None = None,
    ) -> None:
        self.host = host
        self.buffer = buffer
        #: Messages this node published are dropped here, on the asyncio side, before they cost
        #: a hop into trio and a decode (the origin is the subject's first token).
        self.skip_origin = skip_origin
        self.own_token = None if skip_origin is None else skip_origin.encode()
        #: For a feed of every other node's events (`NatsBridge.subscribe_others`): the nodes
        #: whose events it asks JetStream for, one filter each, and a node's hello adds one.
        self.members: set[str] | None = None if members is None else set(members)
        self.filters = filters if self.members is None else self._member_filters()
        #: The filters the current consumer was created with.
        self.created_filters: tuple[str, ...] = ()
        #: A flow-control answer held back while the subscriber is behind.
        self.held_reply: str | None = None
        self.last_seq = last_seq
        self.send = send
        self.last_dseq = 0
        #: Bumped whenever the consumer is replaced: each inbox's callback delivers only while
        #: its generation is current (JetStream delivers with the stored subject, so the inbox
        #: cannot tell a replaced consumer's stragglers apart).
        self.generation = 0
        self.sub: NatsSubscription | None = None
        self.consumer: str | None = None
        self.last_activity = time.monotonic()
        self.resetting = False
        self.closed = False

    def _member_filters(self) -> tuple[str, ...]:
        assert self.members is not None
        prefix = self.host.prefix
        others = sorted(self.members - {self.skip_origin})
        return (hello_subject(prefix), *(origin_filter(prefix, node) for node in others))

    async def create(self) -> None:
        """Subscribe a fresh inbox and create a consumer delivering from ``last_seq + 1``."""
        nc = self.host.nc
        inbox = nc.new_inbox()
        self.last_dseq = 0
        self.generation += 1
        generation = self.generation

        async def deliver(subject: bytes, reply: bytes, data: bytes, headers: bytes | None) -> None:
            if generation == self.generation and not self.closed:
                await self.on_message(subject, reply, data, headers)

        self.sub = await nc.subscribe_lane(inbox, deliver)
        config = js_api.ConsumerConfig(
            deliver_subject=inbox,
            deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq + 1,
            ack_policy=js_api.AckPolicy.NONE,
            max_deliver=1,
            flow_control=True,
            idle_heartbeat=HEARTBEAT,
            inactive_threshold=_INACTIVE,
            mem_storage=True,
            num_replicas=1,
        )
        filters = self.filters
        if len(filters) == 1:
            config.filter_subject = filters[0]
        else:
            config.filter_subjects = list(filters)
        self.created_filters = filters
        info = await self.host.js.add_consumer(self.host.stream, config=config)
        self.consumer = info.name
        self.last_activity = time.monotonic()

    async def on_message(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        """A delivery, a heartbeat or a flow-control request from the current consumer (the
        raw parts of a message, from the connection's lane)."""
        self.last_activity = time.monotonic()
        if headers is not None and headers.startswith(_STATUS_LINE):
            _, fields = header_fields(headers)
            await self._on_control(reply.decode("ascii", "replace"), fields)
            return
        try:
            sseq, dseq = parse_ack_reply(reply)
        except (ValueError, IndexError):
            self.reset(f"a delivery without JetStream metadata: {reply[:200]!r}")
            return
        if dseq != self.last_dseq + 1:
            self.reset(f"consumer sequence {dseq} after {self.last_dseq}")
            return
        self.last_dseq = dseq
        if sseq <= self.last_seq:
            return  # already delivered before a reset
        self.last_seq = sseq
        start = self.host.prefix_len
        dot = subject.find(b".", start)
        if dot < 0:  # a node's hello (`hello_subject`): no event
            if self.members is not None and headers is not None:
                self._hello(header_fields(headers)[1].get(ORIGIN_HEADER))
            return
        origin = subject[start:dot]
        if origin == self.own_token:
            return  # this node's own event, echoed back
        fields = {} if headers is None else header_fields(headers)[1]
        msg_id = fields.get(MSG_ID_HEADER)
        if msg_id is not None and msg_id.startswith(AUTO_ID):
            msg_id = None
        message = Message(
            topic=subject[dot + 1 :].decode("utf-8", "replace"),
            payload=data,
            seq=sseq,
            origin=origin.decode("ascii", "replace"),
            msg_id=msg_id,
        )
        self.host.deliver(self.send, message)

    def _hello(self, node: str | None) -> None:
        """A node announced itself before its first event: a node this feed does not ask for
        yet is added, and the consumer is recreated from the message after the hello (this
        one: ``last_seq``), so its first event is the new consumer's to deliver."""
        assert self.members is not None
        if node is None or node in self.members or node == self.skip_origin:
            return
        self.members.add(node)
        self.filters = self._member_filters()
        # Nothing more from this consumer: what it would deliver next may come after the new
        # node's first event, which it does not carry.
        self.generation += 1
        self.reset(f"node {node} joined")

    async def _on_control(self, reply: str, headers: dict[str, str]) -> None:
        """A flow-control request, or a heartbeat (check for a silent gap; a stalled consumer's
        heartbeat repeats the flow-control reply subject)."""
        if reply:
            await self._answer_flow_control(reply)
            return
        stalled = headers.get("Nats-Consumer-Stalled")
        if stalled:
            await self._answer_flow_control(stalled)
        last = headers.get("Nats-Last-Consumer")
        if last is not None and last != str(self.last_dseq):
            self.reset(f"heartbeat says consumer sequence {last}, delivered {self.last_dseq}")

    def backlog(self) -> int:
        """Messages handed to trio that the subscriber has not received yet.

        Read from the asyncio thread: a length read of trio's channel buffer (one int under
        the GIL), good enough for a threshold.
        """
        return self.send.statistics().current_buffer_used

    async def _answer_flow_control(self, reply: str) -> None:
        """Answer at once while the subscriber keeps up. Past ``buffer`` unreceived messages,
        hold the answer until it has received half of them: JetStream stops pushing after its
        flow-control window, so a stalled subscriber holds at most about ``buffer`` plus one
        window (JetStream grows it up to about 50,000 small messages), not the whole stream."""
        if self.backlog() <= self.buffer:
            await self.host.nc.publish(reply)
            return
        if self.held_reply is None:
            self.host.counters.flow_control_held += 1
            self.host.spawn(self._release_when_drained(self.generation))
        self.held_reply = reply

    async def _release_when_drained(self, generation: int) -> None:
        # Polled: the subscriber receives in trio, and signalling this thread on every receive
        # would cost each message a thread hop to save a rare 20 ms of wake-ups.
        while generation == self.generation and self.backlog() > self.buffer // 2:  # noqa: ASYNC110
            await asyncio.sleep(_DRAIN_POLL)
        reply, self.held_reply = self.held_reply, None
        if reply is not None and generation == self.generation and self.host.nc.is_connected:
            with contextlib.suppress(nats.errors.Error):
                await self.host.nc.publish(reply)

    def reset(self, reason: str) -> None:
        """Recreate the consumer from the last delivered sequence (once at a time)."""
        if self.resetting or self.closed:
            return
        self.resetting = True
        self.host.counters.consumer_resets += 1
        log.info("nats_consumer_reset", filters=self.filters, after=self.last_seq, reason=reason)
        self.host.spawn(self._recreate())

    async def _recreate(self) -> None:
        try:
            pause = RETRY_FIRST
            while not self.closed:
                await self.host.connected.wait()
                await self._drop()
                try:
                    await self.create()
                    if self.filters == self.created_filters:
                        return
                    continue  # a node joined meanwhile: create it again with its filter
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
                    log.warning("nats_consumer_create_failed", filters=self.filters, error=error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
        finally:
            self.resetting = False

    async def _drop(self) -> None:
        """Unsubscribe the inbox and delete the consumer, best effort (the server removes an
        abandoned one after ``_INACTIVE`` anyway, and a restart has removed it already)."""
        sub, self.sub = self.sub, None
        consumer, self.consumer = self.consumer, None
        self.generation += 1
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        if consumer is not None and self.host.nc.is_connected:
            with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
                await self.host.js.delete_consumer(self.host.stream, consumer)

    async def close(self) -> None:
        self.closed = True
        self.host.discard(self)
        await self._drop()
