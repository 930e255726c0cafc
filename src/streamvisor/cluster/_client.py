"""`LaneClient`: nats-py's client with direct lanes for the bridge's one-per-event messages.

nats-py hands every message to a subscription the same way: it parses the header block into a
dict, builds a `Msg`, puts it on the subscription's queue, and the subscription's own task takes
it off and awaits the callback. For the two subscriptions that carry one message per event --
the JetStream acks of what this node publishes, and the deliveries of its ordered consumers --
that was about a quarter of a receiving bridge thread's time (py-spy, bench/cluster at 10,000
events/s). A lane is called straight from the client's read loop with the raw subject, reply,
payload and header bytes, in the order the server sent them; the handler reads only the
header fields it needs (`header_fields`). With lanes, ``python -m bench.cluster_bridge``
(process CPU per event published on one bridge and delivered on the other, 3 back-to-back runs
each) went from 61/59/65 to 51/59/52 us at 10,000 events/s, from 156/144/149 to 129/152/132 us
at 2,000. Publishing has its lane too: `LaneClient.publish_many` queues a whole batch.

A lane runs inside nats-py's read loop, which an exception ends (the connection would stop
reading): a handler that raises is logged and its message skipped. Everything else (commands,
requests, the server's replies to API calls) keeps nats-py's own path.

This relies on nats-py's private ``Client._process_msg(sid, subject, reply, data, headers)``,
called by its protocol parser for every MSG/HMSG, on ``Subscription._id``, and for publishing
on ``_pending``, ``_pending_data_size``, ``_max_pending_size``, ``_flush_queue`` and
``_flush_pending`` (nats-py 2.x; ``tests/cluster/test_nats_lanes.py`` checks they are still
there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ["Lane", "LaneClient", "Outgoing", "header_fields"]

log = structlog.get_logger("streamvisor.cluster")

#: A lane's handler: (subject, reply, payload, header block or None).
Lane = Callable[[bytes, bytes, bytes, "bytes | None"], Awaitable[None]]
#: One message for `LaneClient.publish_many`: (subject, header block, payload).
Outgoing = tuple[bytes, bytes, bytes]


def header_fields(block: bytes) -> tuple[str | None, dict[str, str]]:
    """The inline status (``"100"`` for a JetStream heartbeat or flow-control request, None
    for a plain message) and the fields of a raw NATS header block.

    ``NATS/1.0[ <status>[ <description>]]\\r\\n<Key>: <value>\\r\\n...\\r\\n\\r\\n``. Never
    raises: a block that another node or a broken peer made malformed yields what could be
    read of it (a line without a colon is skipped; bytes that are not UTF-8 are replaced).
    """
    lines = block.decode("utf-8", "replace").split("\r\n")
    first = lines[0]
    status = None
    if first.startswith("NATS/1.0 "):
        status = first[9:].split(" ", 1)[0] or None
    fields = {}
    for line in lines[1:]:
        key, colon, value = line.partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    return status, fields


async def _ignore(msg: Msg) -> None:
    """The nats-py callback of a lane's subscription: a lane's messages never reach it."""


class LaneClient(Client):
    """A nats-py `Client` whose `subscribe_lane` subscriptions bypass the per-message queue
    (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._lanes: dict[int, Lane] = {}
        #: Messages a lane's handler raised on (skipped, logged).
        self.lane_failures = 0

    async def subscribe_lane(self, subject: str, lane: Lane) -> Subscription:
        """Subscribe ``subject`` with ``lane`` as its handler, called from the read loop."""
        sub = await self.subscribe(subject, cb=_ignore)
        self._lanes[sub._id] = lane
        return sub

    async def publish_many(
        self, messages: Sequence[Outgoing], reply_prefix: bytes, first: int
    ) -> None:
        """Queue every message of ``messages`` for the server, the n-th with the reply subject
        ``reply_prefix`` + ``first + n``, and wake the client's writer once.

        nats-py's ``publish`` validates the subject and the reply, checks and encodes every
        header and wakes the writer, per message: a third of the publishing thread's time at
        10,000 events/s. Here the caller vouches for its parts -- subjects and header blocks
        the bridge checked when they were published (printable ASCII, no whitespace in a
        subject, no line break in a header) -- and each message is one ``HPUB`` line on
        nats-py's pending buffer (``_pending``, as its own ``_send_command`` does; its
        writer flushes it, also after a reconnect).

        Raises nats-py's ``ConnectionReconnectingError`` (before queueing anything) while the
        connection is down, and what its forced flush raises if the buffer overflows.
        """
        if not self.is_connected:
            raise nats.errors.ConnectionReconnectingError
        for n, (subject, headers, payload) in enumerate(messages):
            size = len(headers)
            command = b"HPUB %b %b%d %d %d\r\n%b%b\r\n" % (
                subject, reply_prefix, first + n, size, size + len(payload), headers, payload
            )  # fmt: skip
            self._pending.append(command)
            self._pending_data_size += len(command)
            if self._pending_data_size > self._max_pending_size > 0:
                await self._flush_pending(force_flush=True)
        if self._flush_queue is not None and self._flush_queue.empty():  # as nats-py's publish
            await self._flush_pending()

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._lanes.pop(sid, None)
        super()._remove_sub(sid, max_msgs)

    async def _process_msg(
        self,
        sid: int,
        subject: bytes,
        reply: bytes,
        data: bytes,
        headers: bytes | None,
    ) -> None:
        lane = self._lanes.get(sid)
        if lane is None:
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        try:
            await lane(subject, reply, data, headers)
        except Exception:
            self.lane_failures += 1
            log.exception("nats_lane_failed", subject=subject[:200].decode("utf-8", "replace"))
