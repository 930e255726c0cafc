"""`ClusterBus`: the in-process event bus, with every event also carried to every other node.

A node's own publishers and subscribers keep the in-process fast path: ``publish`` delivers to
local subscribers exactly as `EventBus.publish` does, then hands the encoded item to the NATS
bridge (a synchronous append; the bridge publishes to JetStream in batches on its own thread).
``run`` reads every other node's events back from JetStream and delivers them to this node's
subscribers. JetStream keeps one order for all of them, so a stream's events reach every node in
the order they were published, whichever node published them.

No duplicate, across a takeover: a survivor resumes a dead node's durable stream from the cursor
in PostgreSQL, which may be behind what the dead node had already published, so the first events
it publishes can be ones every node has already seen. Two filters drop them: JetStream drops a
message whose ``Nats-Msg-Id`` (topic, response id, sequence number: `dedup_key`) it stored in the
last two minutes, and every node keeps the highest sequence number it delivered per topic and
response, and drops an event at or below it. The second also covers a survivor's own local
subscribers, which JetStream's filter never sees.

No gap: the cursor written to PostgreSQL never passes what JetStream has acknowledged (the node
flushes the bridge before writing cursors), so what a survivor resumes from was seen by every
node, and everything after it is published again.

A terminal event ends a stream for good on every node: anything published for that topic and
response after it (a stale node that was cut off and is still streaming what a survivor ended)
is dropped.

What each node learns from the flow of events -- which streams are open, on which node, of which
API -- is what lets a survivor end a dead node's foreground streams (Chat cannot be resumed)
with an ``error`` event on every node: `open_streams`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

import attrs
import structlog
import trio

from streamvisor.openai import StreamEvent
from streamvisor.openai._events import TERMINAL_TYPES
from streamvisor.supervisor import EventBus, Overflow

from ._bridge_errors import BridgeError
from ._codec import UndecodableItem, decode, dedup_key, encode

__all__ = ["ClusterBus", "OpenStream"]

log = structlog.get_logger("streamvisor.cluster")

#: A finished stream's last sequence number is remembered this long (seconds), to drop a late
#: duplicate of it; JetStream's own duplicate window is two minutes.
_REMEMBER_FINISHED: Final = 600.0
#: `ClusterBus.run` delivers at most this many waiting messages between two checkpoints.
_RUN_BATCH: Final = 256


class _Message(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def origin(self) -> str: ...


class _Bridge(Protocol):
    def publish(self, topic: str, payload: bytes, *, msg_id: str | None = None) -> None: ...


@attrs.define(slots=True)
class OpenStream:
    """A stream this node has seen events of and no terminal event yet."""

    topic: str
    response_id: str
    #: The node whose events these are (this node's id for its own streams).
    node: str
    api: str
    session_id: str | None
    last: int


class ClusterBus(EventBus[Any]):
    """An `EventBus` whose items also reach every other node's subscribers (see the module).

    ``attach`` gives it the bridge once connected; until then, and for items `encode` does not
    know, publishing is local only (counted in ``unforwarded``).
    """

    def __init__(
        self,
        node_id: str,
        *,
        default_buffer: int = 1024,
        default_overflow: Overflow = Overflow.DROP_OLDEST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(default_buffer=default_buffer, default_overflow=default_overflow)
        self.node_id = node_id
        self._bridge: _Bridge | None = None
        self._clock = clock
        self._streams: dict[tuple[str, str], OpenStream] = {}
        self._finished: dict[tuple[str, str], tuple[int, float]] = {}
        #: Items published here and handed to the bridge.
        self.forwarded = 0
        #: Items published here and not forwarded (no bridge yet, or a kind with no codec).
        self.unforwarded = 0
        #: Items from other nodes delivered here.
        self.received = 0
        #: Events dropped as duplicates (a resumed stream's replay, here or from elsewhere).
        self.duplicates = 0
        #: Payloads from other nodes that did not decode (skipped).
        self.undecodable = 0

    def attach(self, bridge: _Bridge) -> None:
        """Forward every item published from now on through ``bridge``."""
        self._bridge = bridge

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, topic: str, item: Any) -> int:
        if type(item) is StreamEvent and not self._fresh(topic, item, self.node_id):
            return 0
        delivered = super().publish(topic, item)
        self._forward(topic, item)
        return delivered

    def publish_many(self, topic: str, items: Iterable[Any]) -> int:
        return sum(self.publish(topic, item) for item in items)

    def _forward(self, topic: str, item: Any) -> None:
        if type(item) is StreamEvent and item.type == "keepalive":
            return  # a connection's liveness, not news for other nodes
        bridge = self._bridge
        if bridge is None or (payload := encode(item)) is None:
            self.unforwarded += 1
            return
        try:
            bridge.publish(topic, payload, msg_id=dedup_key(topic, item))
        except BridgeError as exc:  # NATS away too long (backlog full), or the bridge closed
            self.unforwarded += 1
            if self.unforwarded & (self.unforwarded - 1) == 0:  # 1, 2, 4, 8...: not a flood
                log.warning("cluster.not_forwarded", topic=topic, error=str(exc))
            return
        self.forwarded += 1

    def _fresh(self, topic: str, event: StreamEvent, node: str) -> bool:
        """Whether ``event`` is news on ``topic`` (not a replayed duplicate); notes it if so."""
        rid = event.response_id
        if rid is None or event.type == "keepalive":
            return True
        key = (topic, rid)
        seq = event.sequence_number
        stream = self._streams.get(key)
        if stream is None:
            if key in self._finished:  # a terminal event was delivered: nothing comes after it
                self.duplicates += 1
                return False
            if event.type in TERMINAL_TYPES:
                self._finish(key, seq)
                return True
            self._streams[key] = OpenStream(topic, rid, node, event.api, event.session_id, seq)
            return True
        if seq <= stream.last:
            self.duplicates += 1
            return False
        stream.last = seq
        stream.node = node
        if event.type in TERMINAL_TYPES:
            del self._streams[key]
            self._finish(key, seq)
        return True

    def _finish(self, key: tuple[str, str], seq: int) -> None:
        now = self._clock()
        self._finished[key] = (seq, now)
        if len(self._finished) > 4096:
            horizon = now - _REMEMBER_FINISHED
            self._finished = {k: v for k, v in self._finished.items() if v[1] >= horizon}

    # -- receiving ---------------------------------------------------------------------------

    def deliver(self, message: _Message) -> int:
        """Deliver one message from JetStream to this node's subscribers (skipping this node's
        own, which its subscribers already have). Returns how many subscribers got it."""
        if message.origin == self.node_id:
            return 0
        try:
            item = decode(message.payload)
        except UndecodableItem as exc:
            self.undecodable += 1
            log.warning("cluster.undecodable", topic=message.topic, error=str(exc))
            return 0
        if type(item) is StreamEvent and not self._fresh(message.topic, item, message.origin):
            return 0
        self.received += 1
        return super().publish(message.topic, item)

    async def run(self, messages: trio.MemoryReceiveChannel[Any]) -> None:
        """Deliver every message of ``messages`` (the bridge's subscription to every topic)
        until it ends.

        The bridge hands over what arrived together in one go; the messages already waiting
        are taken without a checkpoint each (a ``receive`` costs one), at most
        `_RUN_BATCH` between checkpoints so other tasks still run during a long backlog.
        """
        async for message in messages:
            self.deliver(message)
            for _ in range(_RUN_BATCH - 1):
                try:
                    message = messages.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):  # the next receive says which
                    break
                self.deliver(message)
            # Not kept while the loop waits for the next batch (a quiet cluster kept its last
            # message, a ``response.completed`` with the whole response, for the node's life).
            del message

    # -- what a survivor needs ----------------------------------------------------------------

    def open_streams(self, node: str | None = None) -> list[OpenStream]:
        """Streams seen without a terminal event yet, all or only those of ``node``."""
        return [s for s in self._streams.values() if node is None or s.node == node]

    def end_stream(self, stream: OpenStream, code: str, message: str) -> StreamEvent:
        """Publish a terminal ``error`` event for ``stream`` (one past its last sequence
        number) on its topic, here and on every node; return it."""
        event = StreamEvent(
            type="error",
            sequence_number=stream.last + 1,
            data={"type": "error", "code": code, "message": message, "param": None},
            response_id=stream.response_id,
            session_id=stream.session_id,
            api=stream.api,  # type: ignore[arg-type]
            received_at=time.time(),
        )
        self.publish(stream.topic, event)
        return event
