"""`NatsBridge`: JetStream event channels and NATS request/reply, for a trio daemon.

nats-py is asyncio-only and the daemon is trio, so the bridge runs nats-py on a dedicated
asyncio event loop in one thread and meets trio at three narrow points:

* **Publishing** is a synchronous append to a `collections.deque` (atomic under the GIL): no
  await and no thread hop per event. Only when the asyncio side has gone idle does a publish
  wake it, with one ``call_soon_threadsafe``. The asyncio side then takes everything queued as
  one batch, sends it with JetStream async publish (every message in flight at once) and awaits
  the acks in bulk; events published meanwhile form the next batch. Under load a batch starts at
  most once per ``interval`` (7.5 ms by default), so batches grow with the rate: acks come back
  within 1-3 ms, and a batch sent as soon as the one before it was acked held 12-15 events at
  10,000 events/s. Measured in ``bench cluster`` (10,000 events/s, interleaved single runs):
  with 7.5 ms the node running the streams spent 4.0-4.4 s of CPU per run against 4.7-4.9 s,
  the receiving node 0.9-1.1 against 1.4-1.5 s, for a cross-node p50 of 6.6-7.4 ms against
  1.8-2.9 and a p99 of 13-17 ms against 9-25 (5 ms: little CPU saved on the streaming node;
  10 ms: the same CPU as 7.5, p99 17-20 ms).
* **Deliveries** from JetStream are appended to one deque of (subscription, message); the first
  append after trio drained it schedules one ``TrioToken.run_sync_soon``, which hands the whole
  batch to the subscribers' trio memory channels.
* **Calls** that must wait for the server (opening a subscription, a request, `flush`) run as
  coroutines on the loop (``run_coroutine_threadsafe``); their completion wakes trio through
  ``run_sync_soon``, and a trio cancellation cancels the asyncio task.

The loop is asyncio's own. The thread shares the GIL with trio's, and what decides the
cross-node latency is how soon trio's thread gets the GIL back. asyncio's loop is Python: it
lets go of the GIL in every socket call and at every bytecode boundary where trio's thread asks
for it. uvloop, the loop here until 2026-12-04, runs a loop turn and its socket callbacks in C,
holding the GIL through them. Measured in ``bench cluster`` (10,000 events/s; interleaved runs
of each loop on the same machine): cross-node p99 12.8 and 14.1 ms against 23.6 and 30.8 ms
with uvloop (single runs 10.1, 10.5, 13.4 against 16.6, 11.4, 15.1 ms), p50 1.8-3.1 against
2.7-7.1 ms. The price is CPU: the node running the streams paid 4-7% more per event (cluster
path 1.37 and 1.39x against 1.09 and 1.22x the daemon without ``[cluster]``), a receiving node
up to a third more in single runs (1.40-1.51 against 1.05-1.49 s of CPU per run). Both stay
within bench cluster's bounds.

trio-asyncio was the alternative. It would run nats-py inside trio's thread, but every nats-py
callback then runs as an asyncio-in-trio task, its loop is a second scheduler layered on trio's
(the per-event costs compound on the daemon's one core), and it is in maintenance only. A
thread keeps nats-py's hot loops off the daemon's thread and makes the crossing explicit, once
per batch.

Reliability, and how it is bounded:

* nats-py reconnects forever (``max_reconnect_attempts=-1``). The publishing loop sends nothing
  while disconnected: events wait in the bridge's backlog, at most ``max_backlog`` of them
  (100,000 by default); past that `publish` raises `PublishBacklogFull` (the event is refused,
  not dropped silently). A batch whose acks do not all arrive within ``ack_timeout`` is sent
  again, in order, once connected. Every event carries a ``Nats-Msg-Id`` (the caller's, or,
  with ``auto_msg_ids``, one the bridge makes), so JetStream drops the copies of a retried event
  that had in fact been stored (within ``duplicate_window``: an outage longer than that can
  duplicate the events whose acks it swallowed). Order survives a retry: a connection that
  drops loses a suffix of what it carried, and the resent prefix is dropped as duplicates. The
  one exception is JetStream refusing an event for a moment (a 503 while it starts) and taking
  the next: the refused one is stored after it. The price of ``auto_msg_ids``: the server keeps
  every id for ``duplicate_window`` (at 10,000 events/s and 120 s, about 1.2 M entries, on the
  order of 100 MB); pass ``auto_msg_ids=False`` to keep only the callers' ids, and a lost ack
  may then store an event twice.
* Subscriptions are ordered push consumers the bridge runs itself (`_consumer.py`: ack none,
  flow control, idle heartbeats, in server memory). Each remembers the last stream sequence it
  delivered and, on any sign of trouble, recreates its consumer from that sequence + 1: no
  gap, no duplicate. A subscriber that falls behind holds back the consumer's flow-control
  answer, so JetStream stops pushing to it.
* `flush` waits, bounded by ``flush_timeout``, for every event published before it to be acked
  (`NatsUnavailable` otherwise). Closing the bridge flushes within that bound too, then closes
  the connection and joins the thread.

What it costs (``python -m bench.cluster_bridge``, two bridges in one process, one server on
loopback, 136-byte events, 2 shared cores; interleaved pairs on 2026-12-04, asyncio's loop
against uvloop, three at 10,000 events/s and two at 2,000): at 10,000 events/s, 28-39 us of CPU
per event published on one node and delivered on the other (uvloop: 27-32), of which 10-14 us
in the trio thread (0.3 us of it is `publish` itself; the rest is waking up for deliveries and
receiving them) and the rest in the two asyncio threads, mostly nats-py's protocol parsing and
the acks. At 2,000 events/s, 74-79 us (uvloop: 69-72): each batch's wake-ups, socket writes and
reads are shared by fewer events. Latency publish -> delivery into the other node's trio task:
p50 3.7-4.4 ms, p99 5.4-7.7 ms (the 2 ms linger included), the same as uvloop's. Saturated:
about 50,000-56,000 events/s. With the 7.5 ms ``interval`` (two runs each, that evening):
28-32 us per event at 10,000 events/s and 68-74 at 2,000, about the same (this bench publishes
a 5 ms tick's events at once, so its batches were a tick each already), latency p50 6.3-6.8
and p99 11.7-12.2 ms at 10,000, p50 4.5-4.7 and p99 8.8-8.9 ms at 2,000. This bench's trio
thread has little else to do, so it shows neither what the loop's choice is for nor what the
interval saves: in a daemon whose trio thread is busy, the time the asyncio thread holds the
GIL is time the daemon's own thread cannot run Python (see the loop, above).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import enum
import json
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, TypeVar

import attrs
import nats
import nats.errors
import nats.js.errors
import structlog
import trio
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import api as js_api

from ._bridge_errors import (
    BridgeClosed,
    HandlerFailed,
    NatsUnavailable,
    NoResponders,
    PayloadTooLarge,
    PublishBacklogFull,
    RequestTimeout,
    StreamRefused,
)
from ._client import LaneClient, Outgoing
from ._consumer import (
    AUTO_ID,
    ERROR_HEADER,
    HEARTBEAT,
    MSG_ID_HEADER,
    ORIGIN_HEADER,
    RETRY_FIRST,
    RETRY_MAX,
    BridgeCounters,
    ConsumerHost,
    Message,
    OrderedConsumer,
)
from ._subjects import check_name, check_subject, hello_subject, pattern_filters, topic_subject

__all__ = ["BridgeStatistics", "Message", "NatsBridge"]

T = TypeVar("T")

log = structlog.get_logger("streamvisor.cluster")


#: The most events one batch sends before awaiting their acks.
_BATCH: Final = 2048
#: `NatsBridge.open`'s ``interval``: under load, at most one batch per this many seconds.
DEFAULT_INTERVAL: Final = 0.0075
#: Bounded cleanup: closing the connection and joining the thread.
_CLOSE_TIMEOUT: Final = 5.0
#: Topics resolved to subjects, at most this many cached; past it the cache starts over.
_CACHE_LIMIT: Final = 4096
_HEADER_VALUE: Final = re.compile(r"[\x20-\x7e]{1,512}")
_MSG_ID: Final = MSG_ID_HEADER.encode()


@attrs.frozen
class BridgeStatistics:
    """Counters of one bridge (each a snapshot; the asyncio side updates them)."""

    #: Events `publish` accepted so far.
    published: int
    #: Events JetStream acked (or rejected for good: see ``rejected``).
    acked: int
    #: Events accepted but not yet acked: queued, in flight or being retried.
    backlog: int
    #: Events JetStream refused for good (logged, not retried).
    rejected: int
    #: Batches sent again after a missing ack.
    retried_batches: int
    #: Consumers recreated (gap, missed heartbeats, reconnect, a node joining).
    consumer_resets: int
    #: Times the connection came back after a loss.
    reconnects: int
    #: Times a subscriber fell ``buffer`` behind and JetStream was held back.
    flow_control_held: int
    #: Batches sent (retries not counted): ``published / batches`` is the mean batch size.
    batches: int


class _Ack(enum.Enum):
    STORED = "stored"  # or a duplicate JetStream dropped: stored either way
    RETRY = "retry"


class _Acks:
    """The acks of one batch attempt: tokens ``base`` .. ``base + size - 1``."""

    __slots__ = ("all_in", "base", "count", "expected", "outcomes")

    def __init__(self, base: int, size: int) -> None:
        self.base = base
        #: Per message: None (no ack yet), an `_Ack`, or the description of a refusal.
        self.outcomes: list[_Ack | str | None] = [None] * size
        self.count = 0
        self.expected = size
        self.all_in = asyncio.Event()

    def record(self, index: int, outcome: _Ack | str) -> None:
        if 0 <= index < len(self.outcomes) and self.outcomes[index] is None:
            self.outcomes[index] = outcome
            self.count += 1
            if self.count >= self.expected:
                self.all_in.set()

    def expect(self, sent: int) -> None:
        """Only ``sent`` messages went out: wait for that many acks."""
        self.expected = sent
        if self.count >= sent:
            self.all_in.set()


class NatsBridge:
    """A connection to NATS JetStream for one node, usable from trio.

    Obtain one from `NatsBridge.open` (an async context manager); the constructor is private.
    Publishing is synchronous and cheap; everything else awaits the server through the bridge's
    asyncio thread. See the module docstring for the design and its bounds.
    """

    def __init__(
        self,
        url: str,
        *,
        node_id: str,
        stream: str,
        subject_prefix: str,
        max_age: float,
        duplicate_window: float,
        max_backlog: int,
        flush_timeout: float,
        ack_timeout: float,
        auto_msg_ids: bool,
        linger: float,
        interval: float,
        _private: object = None,
    ) -> None:
        if _private is not _PRIVATE:
            raise TypeError("NatsBridge is created by `async with NatsBridge.open(...)`")
        self._url = url
        self._node_id = node_id
        self._stream = stream
        self._prefix = subject_prefix
        self._prefix_len = len(subject_prefix) + 1
        self._max_age = max_age
        self._duplicate_window = duplicate_window
        self._max_backlog = max_backlog
        self._flush_timeout = flush_timeout
        self._ack_timeout = ack_timeout
        self._auto_msg_ids = auto_msg_ids
        self._linger = linger
        self._interval = interval
        self._batches = 0  # asyncio side
        self._instance = f"{AUTO_ID}{node_id}~{os.urandom(6).hex()}~"
        #: Every message's header block begins so (then its msg id, if any, and a blank line).
        self._origin_block = f"NATS/1.0\r\n{ORIGIN_HEADER}: {node_id}\r\n".encode()
        self._closed = False
        self._subjects: dict[str, bytes] = {}
        # -- shared between the threads (each field written by one side only) --
        self._outbox: collections.deque[tuple[bytes, bytes, str | None]] = collections.deque()
        self._drainer_idle = False
        self._published = 0  # trio side
        self._acked = 0  # asyncio side
        self._max_payload = 1024 * 1024
        self._deliveries: collections.deque[tuple[trio.MemorySendChannel[Message], Message]] = (
            collections.deque()
        )
        self._delivery_scheduled = False
        # -- asyncio side --
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"streamvisor-nats-{node_id}", daemon=True
        )
        self._thread_done = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._nc = LaneClient()
        self._js = self._nc.jetstream()
        self._ack_prefix = ""
        self._acks: _Acks | None = None
        self._next_token = 0
        self._wake: asyncio.Event
        self._connected: asyncio.Event
        self._host: ConsumerHost
        self._feeds: set[OrderedConsumer] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ack_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._auto_ids = 0
        self._counters = BridgeCounters()

    # -----------------------------------------------------------------------------------------
    # Life cycle

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        url: str,
        *,
        node_id: str,
        stream: str = "STREAMVISOR",
        subject_prefix: str = "sv.events",
        max_age: float = 3600.0,
        duplicate_window: float = 120.0,
        max_backlog: int = 100_000,
        flush_timeout: float = 10.0,
        ack_timeout: float = 2.0,
        connect_timeout: float = 5.0,
        auto_msg_ids: bool = True,
        linger: float = 0.002,
        interval: float = DEFAULT_INTERVAL,
    ) -> AsyncIterator[NatsBridge]:
        """Connect to ``url``, create or update the stream, and yield the bridge.

        The stream (file storage) captures ``f"{subject_prefix}.>"``, keeps messages for
        ``max_age`` seconds and drops a repeated ``Nats-Msg-Id`` within ``duplicate_window``.
        ``max_backlog``: events published but not yet acked before `publish` refuses more.
        ``flush_timeout``: how long `flush` (and closing) waits for acks. ``ack_timeout``: how
        long a batch waits for its acks before it is sent again. ``auto_msg_ids``: give every
        event without a caller's msg_id one of the bridge's (retries then never duplicate; see
        the module docstring for what the server pays). ``linger``: how long the publishing
        loop, woken from idle by a publish, waits for more before it sends the batch (seconds;
        0 sends at once). ``interval``: under load, a batch starts at most once per this many
        seconds (unless a full batch is waiting), so batches grow with the rate (0: each batch
        as soon as the one before it is acked; see the module docstring for the trade).

        Raises `InvalidSubject` for a bad node id, stream name or prefix, `NatsUnavailable` if
        the server cannot be reached within ``connect_timeout``, `StreamRefused` if JetStream
        refuses the stream (its subjects overlap another stream's, say). On exit
        it flushes (bounded by ``flush_timeout``; what is left is logged), closes the connection
        and joins the bridge's thread.
        """
        check_name(node_id, "node id")  # a token of every subject it publishes on
        check_name(stream, "stream name")
        check_subject(subject_prefix, wildcards=False)
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, not {max_backlog}")
        if not 0 <= linger <= 1:
            raise ValueError(f"linger must be 0-1 s, not {linger}")
        if not 0 <= interval <= 1:
            raise ValueError(f"interval must be 0-1 s, not {interval}")
        bridge = cls(
            url,
            node_id=node_id,
            stream=stream,
            subject_prefix=subject_prefix,
            max_age=max_age,
            duplicate_window=duplicate_window,
            max_backlog=max_backlog,
            flush_timeout=flush_timeout,
            ack_timeout=ack_timeout,
            auto_msg_ids=auto_msg_ids,
            linger=linger,
            interval=interval,
            _private=_PRIVATE,
        )
        bridge._thread.start()
        try:
            with trio.move_on_after(connect_timeout) as scope:
                await bridge._call(bridge._connect(connect_timeout))
            if scope.cancelled_caught:
                raise NatsUnavailable(url, f"no connection within {connect_timeout} s")
            yield bridge
        finally:
            await bridge._close()

    async def _close(self) -> None:
        """Flush (bounded), close the connection, stop the loop and join the thread."""
        was_open, self._closed = not self._closed, True
        with trio.move_on_after(self._flush_timeout + 2 * _CLOSE_TIMEOUT, shield=True):
            if was_open and self._published > self._acked:
                try:
                    await self._flush_within(self._flush_timeout)
                except NatsUnavailable as error:
                    log.warning("nats_bridge_closed_unflushed", error=str(error))
            with contextlib.suppress(concurrent.futures.CancelledError):
                await self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
            await self._thread_done.wait()
        self._thread.join(_CLOSE_TIMEOUT if self._thread_done.is_set() else 0)
        if self._thread.is_alive():  # pragma: no cover - only if nats-py hangs in close
            log.error("nats_bridge_thread_leaked", thread=self._thread.name)

    def _run_loop(self) -> None:
        """The bridge thread: run the loop until `_close` stops it, then tidy it up."""
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._thread_done.set)

    async def _connect(self, within: float) -> None:
        """(asyncio) Connect, ensure the stream, start the publishing loop and the watchdog."""
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        try:
            await self._nc.connect(
                self._url,
                name=f"streamvisor-{self._node_id}",
                connect_timeout=max(1, math.ceil(within)),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,  # type: ignore[arg-type]  # a float is fine
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise NatsUnavailable(self._url, f"{type(error).__name__}: {error}") from None
        self._max_payload = self._nc.max_payload
        self._ack_prefix = f"{self._nc.new_inbox()}."
        await self._nc.subscribe_lane(f"{self._ack_prefix}*", self._on_ack)
        self._host = ConsumerHost(
            nc=self._nc,
            js=self._js,
            stream=self._stream,
            prefix=self._prefix,
            prefix_len=self._prefix_len,
            connected=self._connected,
            deliver=self._deliver,
            spawn=self._spawn,
            discard=self._feeds.discard,
            counters=self._counters,
        )
        self._connected.set()
        await self._ensure_stream()
        await self._say_hello()
        self._spawn(self._drain_outbox())
        self._spawn(self._watch_feeds())

    async def _ensure_stream(self) -> None:
        config = js_api.StreamConfig(
            name=self._stream,
            subjects=[f"{self._prefix}.>"],
            storage=js_api.StorageType.FILE,
            max_age=self._max_age,
            duplicate_window=self._duplicate_window,
        )
        try:
            try:
                await self._js.add_stream(config)
            except nats.js.errors.BadRequestError as refused:
                # It exists with another configuration (then update it), or its subjects
                # overlap another stream's (then the update finds no such stream).
                try:
                    await self._js.update_stream(config)
                except nats.js.errors.NotFoundError:
                    raise StreamRefused(self._stream, str(refused.description)) from None
        except nats.js.errors.APIError as error:
            raise StreamRefused(self._stream, str(error.description)) from None
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
            raise NatsUnavailable(
                self._url, f"stream {self._stream!r}: {type(error).__name__}: {error}"
            ) from None

    async def _say_hello(self) -> None:
        """(asyncio) Announce this node on the stream, stored before any event it publishes:
        a node asking JetStream for the other nodes' events adds it (`subscribe_others`)."""
        try:
            await self._js.publish(
                hello_subject(self._prefix),
                b"",
                timeout=self._ack_timeout,
                headers={ORIGIN_HEADER: self._node_id},
            )
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
            raise NatsUnavailable(
                self._url, f"announcing node {self._node_id!r}: {type(error).__name__}: {error}"
            ) from None

    async def _shutdown(self) -> None:
        """(asyncio) Stop the tasks, drop the consumers, close the connection (bounded)."""
        for task in list(self._tasks):
            task.cancel()
        for feed in list(self._feeds):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(feed.close(), _CLOSE_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._nc.close(), _CLOSE_TIMEOUT)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """(asyncio) Run a background task the bridge owns and cancels when it closes."""
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("nats_bridge_task_failed", error=repr(task.exception()))

    async def _on_error(self, error: Exception) -> None:
        log.debug("nats_client_error", error=f"{type(error).__name__}: {error}")

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self._closed:  # closing disconnects on purpose
            log.warning("nats_disconnected", url=self._url, node=self._node_id)

    async def _on_reconnected(self) -> None:
        self._counters.reconnects += 1
        self._connected.set()
        log.info("nats_reconnected", url=self._url, node=self._node_id)
        # A restarted server lost the in-memory consumers: recreate them now rather than after
        # two missed heartbeats (a consumer that survived a blip is recreated, harmlessly).
        for feed in list(self._feeds):
            feed.reset("reconnected")

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the bridge's loop and wait for it in trio; cancelling the trio task
        cancels the coroutine. Raises what the coroutine raised."""
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        done = trio.Event()
        token = self._token
        future.add_done_callback(lambda _: token.run_sync_soon(done.set))
        try:
            await done.wait()
        finally:
            future.cancel()  # no-op once done
        return future.result()

    @property
    def connected(self) -> bool:
        """Whether the connection to the server is up right now."""
        return self._nc.is_connected and not self._closed

    @property
    def node_id(self) -> str:
        return self._node_id

    def statistics(self) -> BridgeStatistics:
        """A snapshot of the bridge's counters."""
        published, acked = self._published, self._acked
        return BridgeStatistics(
            published=published,
            acked=acked,
            backlog=published - acked,
            rejected=self._counters.rejected,
            retried_batches=self._counters.retried_batches,
            consumer_resets=self._counters.consumer_resets,
            reconnects=self._counters.reconnects,
            flow_control_held=self._counters.flow_control_held,
            batches=self._batches,
        )

    # -----------------------------------------------------------------------------------------
    # Publishing

    def publish(self, topic: str, payload: bytes, *, msg_id: str | None = None) -> None:
        """Queue one event for ``f"{subject_prefix}.{node_id}.{topic}"``; never blocks, never
        awaits.

        ``msg_id`` becomes the ``Nats-Msg-Id`` header: JetStream stores one message per id
        within the duplicate window (a node re-publishing a dead node's events after a takeover
        does not duplicate them). The publish is only queued: `flush` tells when it is stored.

        Raises `InvalidSubject` for a topic NATS cannot carry, `PayloadTooLarge`,
        `PublishBacklogFull` when ``max_backlog`` events await acks, `BridgeClosed` after
        close, and `ValueError` for a msg_id that is not printable ASCII or that begins with
        the bridge's own ``~sv~``.
        """
        if self._closed:
            raise BridgeClosed("publish on a closed NatsBridge")
        subject = self._subjects.get(topic)
        if subject is None:
            subject = topic_subject(self._prefix, self._node_id, topic).encode()
            if len(self._subjects) >= _CACHE_LIMIT:
                self._subjects.clear()
            self._subjects[topic] = subject
        if len(payload) > self._max_payload:
            raise PayloadTooLarge(len(payload), self._max_payload)
        if msg_id is not None and (
            _HEADER_VALUE.fullmatch(msg_id) is None or msg_id.startswith(AUTO_ID)
        ):
            raise ValueError(f"msg_id {msg_id!r} must be printable ASCII, not beginning ~sv~")
        if self._published - self._acked >= self._max_backlog:
            raise PublishBacklogFull(self._published - self._acked)
        self._outbox.append((subject, payload, msg_id))
        self._published += 1
        if self._drainer_idle:
            self._drainer_idle = False
            self._loop.call_soon_threadsafe(self._wake.set)

    async def flush(self) -> None:
        """Return once every event published before this call is stored (acked) by JetStream.

        Raises `NatsUnavailable` if that takes longer than the bridge's ``flush_timeout`` (the
        events stay queued and are still sent once the server is back), `BridgeClosed` after
        close.
        """
        if self._closed:
            raise BridgeClosed("flush on a closed NatsBridge")
        await self._flush_within(self._flush_timeout)

    async def _flush_within(self, seconds: float) -> None:
        target = self._published
        if self._acked >= target:
            return
        with trio.move_on_after(seconds):
            await self._call(self._wait_acked(target))
            return
        raise NatsUnavailable(
            self._url, f"{target - self._acked} events not acked by JetStream within {seconds} s"
        )

    async def _wait_acked(self, target: int) -> None:
        if self._acked >= target:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._ack_waiters.append((target, waiter))
        await waiter

    def _count_acked(self, count: int) -> None:
        self._acked += count
        acked, still = self._acked, []
        for target, waiter in self._ack_waiters:
            if target <= acked:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._ack_waiters = still

    async def _drain_outbox(self) -> None:
        """(asyncio) Send what `publish` queued, batch after batch, each acked before the next.

        Idleness is announced before the last look at the deque, so a publish either sees the
        flag and wakes this loop, or its event is seen by that look.

        Woken from idle, the loop lingers (``linger``) before it takes the batch: at a low rate
        every event would otherwise be a batch of its own, and each batch costs a wake-up of
        this thread, a socket write, a read of its acks and, on every node, a read of its
        delivery. Under load the loop is never idle (a batch forms while the previous one
        awaits its acks), so lingering costs latency only when there was nothing to wait for.
        Under load, a batch starts at most once per ``interval`` (unless a full batch waits):
        the acks of a batch come back within 1-3 ms, and without it the batches stay that
        small however high the rate (12-15 events at 10,000 events/s).
        """
        outbox = self._outbox
        clock = self._loop.time
        started = -math.inf  # when the last batch went
        while True:
            if not outbox:
                self._wake.clear()
                self._drainer_idle = True
                if not outbox:
                    await self._wake.wait()
                self._drainer_idle = False
                if self._linger:
                    await asyncio.sleep(self._linger)
                continue
            wait = self._interval - (clock() - started)
            if wait > 0 and len(outbox) < _BATCH:
                await asyncio.sleep(wait)
            started = clock()
            count = min(len(outbox), _BATCH)
            batch = []
            origin = self._origin_block
            for _ in range(count):
                subject, payload, msg_id = outbox.popleft()
                if msg_id is None and self._auto_msg_ids:
                    self._auto_ids += 1
                    msg_id = f"{self._instance}{self._auto_ids}"
                if msg_id is None:
                    headers = origin + b"\r\n"
                else:
                    headers = b"%b%b: %b\r\n\r\n" % (origin, _MSG_ID, msg_id.encode())
                batch.append((subject, headers, payload))
            self._batches += 1
            await self._send_batch(batch)
            self._count_acked(count)
            # Not kept while the loop waits, idle, for the next publish (every payload of the
            # last batch, for as long as the node published nothing more).
            del batch, payload

    async def _send_batch(self, batch: list[Outgoing]) -> None:
        """(asyncio) Publish a batch with every message in flight, and retry, in order, those
        whose ack is missing until all are stored (or refused for good: logged, counted).

        This is JetStream's async publish without nats-py's ``publish_async``: that makes a
        future, a done callback and an ``os.urandom`` token per message and parses every ack
        into a dataclass, which profiled at about half of the publishing thread's time. Here
        each message's reply subject is the bridge's ack inbox plus a counter, and one
        subscription on that inbox files each ack into the batch's slot. Measured with
        bench/cluster_bridge.py at 10,000 events/s: 90 -> 63 us CPU per event, latency p50
        100 ms -> 3.5 ms (publish_async could not keep up, so events queued). The batch goes
        to the connection's buffer in one call (`LaneClient.publish_many`). If that fails
        part-way (the connection dropped), the whole attempt counts as unsent: what did reach
        JetStream is dropped as a duplicate when it is sent again.
        """
        pending = batch
        pause = RETRY_FIRST
        while pending:
            await self._connected.wait()
            acks = _Acks(self._next_token, len(pending))
            self._next_token += len(pending)
            self._acks = acks
            sent = 0
            try:
                await self._nc.publish_many(pending, self._ack_prefix.encode(), acks.base)
                sent = len(pending)
            except nats.errors.Error as error:  # the connection went away
                log.debug("nats_publish_interrupted", error=f"{type(error).__name__}: {error}")
            acks.expect(sent)
            if sent:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._ack_timeout):  # no task per batch
                        await acks.all_in.wait()
            retry = []
            for item, outcome in zip(pending, acks.outcomes, strict=True):
                if outcome is _Ack.STORED:
                    continue
                if outcome is None or outcome is _Ack.RETRY:
                    retry.append(item)
                else:
                    self._counters.rejected += 1
                    log.error("nats_publish_rejected", subject=item[0].decode(), error=outcome)
            if retry and len(retry) == len(pending) and self._nc.is_connected:
                with contextlib.suppress(NatsUnavailable, StreamRefused):
                    await self._ensure_stream()  # someone may have deleted it
            if retry:
                self._counters.retried_batches += 1
                log.info("nats_publish_retry", events=len(retry))
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
            pending = retry

    async def _on_ack(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        """(asyncio) File one JetStream ack (or error) into the current batch's slot (the raw
        parts of the message, from the connection's lane)."""
        acks = self._acks
        if acks is None:
            return
        try:
            token = int(subject[len(self._ack_prefix) :])
        except ValueError:
            return
        outcome: _Ack | str
        if not data:  # a status instead of an ack: 503, no stream captures the subject (yet)
            outcome = _Ack.RETRY
        elif b'"error"' not in data:
            outcome = _Ack.STORED
        else:
            try:
                error = json.loads(data)["error"]
                code, description = error.get("code"), str(error.get("description"))
            except (ValueError, KeyError, TypeError, AttributeError):
                code, description = None, data.decode("utf-8", "replace")
            # 503: JetStream is not ready (a restarting server): try again, unlike a refusal.
            outcome = _Ack.RETRY if code == 503 else description
        acks.record(token - acks.base, outcome)

    # -----------------------------------------------------------------------------------------
    # Subscribing

    def subscribe(
        self,
        pattern: str,
        *,
        after: int | None = None,
        buffer: int = 10_000,
        skip_origin: str | None = None,
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[Message]]:
        """Receive the stored events whose topic matches the bus ``pattern``, in stream order.

        ``after=None``: events stored from now on. ``after=N``: every stored event with
        sequence > N, then live ones, with no gap and no duplicate, across reconnects and
        server restarts. Events whose origin is ``skip_origin`` (this node's id, for a node
        that already delivered its own events in-process) are left out on the bridge's thread,
        before they cost anything in trio; otherwise every node's events are included.

        A subscriber that falls ``buffer`` messages behind holds JetStream back (its
        flow-control answer waits until the subscriber has caught up half-way): its channel then
        holds at most about ``buffer`` plus one flow-control window, and nothing is dropped.

        Raises `InvalidSubject` for a malformed pattern (at once), `NatsUnavailable` on entry
        if the consumer cannot be created, `BridgeClosed` after close.
        """
        filters = pattern_filters(self._prefix, pattern)
        if after is not None and (not isinstance(after, int) or after < 0):
            raise ValueError(f"after must be a stream sequence >= 0 or None, not {after!r}")
        if not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a positive int, not {buffer!r}")
        return self._subscription(filters, after, buffer, skip_origin)

    def subscribe_others(
        self, nodes: Iterable[str], *, after: int, buffer: int = 10_000
    ) -> AbstractAsyncContextManager[trio.MemoryReceiveChannel[Message]]:
        """Receive every other node's events after stream sequence ``after``, in stream order,
        without this node's own: JetStream is asked for ``nodes``' events only (one filter per
        node, so this node's own events are never sent to it), and for every node's hello.

        A bridge's first message is its hello, stored before any event it publishes. A hello
        from a node not asked for yet adds it and recreates the consumer from the message after
        the hello: nothing of the new node is missed. So that no node is missed at all, the
        caller reads ``after`` (`last_seq`) *before* it lists ``nodes``, and a node registers
        (is listed) before it opens its bridge: a node not listed then said hello after
        ``after``.

        Raises `NatsUnavailable` on entry if the consumer cannot be created, `BridgeClosed`
        after close, `InvalidSubject` for a node id that is not one.
        """
        members = {check_name(node, "node id") for node in nodes}
        if not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a stream sequence >= 0, not {after!r}")
        if not isinstance(buffer, int) or buffer < 1:
            raise ValueError(f"buffer must be a positive int, not {buffer!r}")
        return self._subscription((), after, buffer, self._node_id, members)

    async def last_seq(self) -> int:
        """The stream's last sequence now (the ``after`` of a feed of what is published from
        now on). Raises `NatsUnavailable`, `BridgeClosed`."""
        if self._closed:
            raise BridgeClosed("last_seq on a closed NatsBridge")
        return await self._call(self._last_seq())

    async def _last_seq(self) -> int:
        try:
            info = await self._js.stream_info(self._stream)
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
            raise NatsUnavailable(
                self._url, f"stream {self._stream!r}: {type(error).__name__}: {error}"
            ) from None
        return int(info.state.last_seq)

    @asynccontextmanager
    async def _subscription(
        self,
        filters: tuple[str, ...],
        after: int | None,
        buffer: int,
        skip_origin: str | None,
        members: set[str] | None = None,
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
        if self._closed:
            raise BridgeClosed("subscribe on a closed NatsBridge")
        send, receive = trio.open_memory_channel[Message](math.inf)
        feed = await self._call(self._open_feed(filters, after, send, buffer, skip_origin, members))
        try:
            with receive:
                yield receive
        finally:
            with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                await self._call(feed.close())
            send.close()

    async def _open_feed(
        self,
        filters: tuple[str, ...],
        after: int | None,
        send: trio.MemorySendChannel[Message],
        buffer: int,
        skip_origin: str | None,
        members: set[str] | None,
    ) -> OrderedConsumer:
        try:
            if after is None:
                after = await self._last_seq()
            feed = OrderedConsumer(self._host, filters, after, send, buffer, skip_origin, members)
            await feed.create()
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as error:
            raise NatsUnavailable(
                self._url, f"subscribing to {filters}: {type(error).__name__}: {error}"
            ) from None
        self._feeds.add(feed)
        return feed

    def _deliver(self, send: trio.MemorySendChannel[Message], message: Message) -> None:
        """(asyncio) Queue a delivery; the first since trio's last hand-over schedules one."""
        self._deliveries.append((send, message))
        if not self._delivery_scheduled:
            self._delivery_scheduled = True
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(self._hand_over)

    def _hand_over(self) -> None:
        """(trio) Move every queued delivery into its subscriber's channel.

        The flag drops before the drain, so an append racing with it either is drained here or
        schedules the next hand-over. It must not raise: it runs as a trio system callback.
        """
        self._delivery_scheduled = False
        deliveries = self._deliveries
        while deliveries:
            send, message = deliveries.popleft()
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                send.send_nowait(message)

    async def _watch_feeds(self) -> None:
        """(asyncio) Recreate a consumer whose heartbeats stopped (deleted, or a server that
        restarted before the client noticed)."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            if not self._nc.is_connected:
                continue
            silent = time.monotonic() - 2.5 * HEARTBEAT
            for feed in list(self._feeds):
                if feed.last_activity < silent:
                    feed.reset("heartbeats stopped")

    # -----------------------------------------------------------------------------------------
    # Commands: NATS core request/reply

    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes:  # noqa: ASYNC109
        """Send ``payload`` to whoever serves ``subject`` and return the reply.

        Raises `InvalidSubject`, `NoResponders` (nobody serves it), `RequestTimeout` (no reply
        within ``timeout``; also while the server is away), `HandlerFailed` (the handler
        raised), `BridgeClosed` after close.
        """
        if self._closed:
            raise BridgeClosed("request on a closed NatsBridge")
        check_subject(subject, wildcards=False)
        with trio.move_on_after(timeout + _CLOSE_TIMEOUT):
            try:
                reply = await self._call(self._request(subject, payload, timeout))
            except nats.errors.NoRespondersError:
                raise NoResponders(subject) from None
            except (nats.errors.TimeoutError, TimeoutError):
                raise RequestTimeout(subject, timeout) from None
            except nats.errors.Error as error:
                raise NatsUnavailable(self._url, f"{type(error).__name__}: {error}") from None
            if reply.headers and ERROR_HEADER in reply.headers:
                raise HandlerFailed(subject, reply.headers[ERROR_HEADER])
            return reply.data
        raise RequestTimeout(subject, timeout)

    async def _request(self, subject: str, payload: bytes, seconds: float) -> Msg:
        return await self._nc.request(subject, payload, timeout=seconds)

    def serve(
        self,
        subject: str,
        handler: Callable[[bytes], Awaitable[bytes]],
        *,
        queue: str | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Answer requests on ``subject`` (``*`` and a trailing ``>`` allowed) while the block
        runs; ``queue`` shares the subject with other servers of the same group.

        ``handler`` runs in trio, one task per request, in a nursery the block owns; its return
        is the reply. If it raises an `Exception`, the requester gets `HandlerFailed` naming it
        (and the error is logged here). Leaving the block stops serving and cancels handlers
        still running. Raises `InvalidSubject` at once, `NatsUnavailable` on entry.
        """
        check_subject(subject, wildcards=True)
        return self._serving(subject, handler, queue)

    @asynccontextmanager
    async def _serving(
        self,
        subject: str,
        handler: Callable[[bytes], Awaitable[bytes]],
        queue: str | None,
    ) -> AsyncIterator[None]:
        if self._closed:
            raise BridgeClosed("serve on a closed NatsBridge")
        send, receive = trio.open_memory_channel[tuple[bytes, str]](math.inf)
        token = self._token

        def accept(item: tuple[bytes, str]) -> None:  # (trio) must not raise
            with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
                send.send_nowait(item)

        async def on_request(msg: Msg) -> None:  # (asyncio)
            if msg.reply:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(accept, (msg.data, msg.reply))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._dispatch, receive, handler, subject, nursery)
            try:
                sub = await self._call(self._subscribe_core(subject, queue, on_request))
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
            try:
                yield
            finally:
                with trio.move_on_after(_CLOSE_TIMEOUT, shield=True):
                    with contextlib.suppress(nats.errors.Error):
                        await self._call(sub.unsubscribe())
                send.close()
                nursery.cancel_scope.cancel()

    async def _subscribe_core(
        self, subject: str, queue: str | None, callback: Callable[[Msg], Awaitable[None]]
    ) -> NatsSubscription:
        try:
            sub = await self._nc.subscribe(subject, queue=queue or "", cb=callback)
            # A PING/PONG round trip: the server has the subscription once this returns, so a
            # request sent from another connection right after `serve` finds its responder.
            await self._nc.flush()
        except nats.errors.Error as error:
            raise NatsUnavailable(self._url, f"serving {subject!r}: {error}") from None
        return sub

    async def _dispatch(
        self,
        receive: trio.MemoryReceiveChannel[tuple[bytes, str]],
        handler: Callable[[bytes], Awaitable[bytes]],
        subject: str,
        nursery: trio.Nursery,
    ) -> None:
        async for payload, reply in receive:
            nursery.start_soon(self._answer, handler, subject, payload, reply)

    async def _answer(
        self,
        handler: Callable[[bytes], Awaitable[bytes]],
        subject: str,
        payload: bytes,
        reply: str,
    ) -> None:
        headers: dict[str, str] | None = None
        try:
            result = await handler(payload)
        except Exception as error:
            log.exception("nats_handler_failed", subject=subject)
            line = " ".join(f"{type(error).__name__}: {error}".split())
            headers = {ERROR_HEADER: line.encode("ascii", "replace").decode()[:512]}
            result = b""
        self._loop.call_soon_threadsafe(self._send_reply, reply, result, headers)

    def _send_reply(self, reply: str, payload: bytes, headers: dict[str, str] | None) -> None:
        """(asyncio) Publish a handler's reply (a lost reply is a requester's timeout)."""
        if self._nc.is_connected:
            self._spawn(self._nc.publish(reply, payload, headers=headers))


_PRIVATE: Final = object()
