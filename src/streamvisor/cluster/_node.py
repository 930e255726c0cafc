"""`ClusterNode`: one daemon's membership of a cluster -- its lease, takeovers, remote events.

Four loops, each in the node's own nursery (outside the supervision tree: like the bus and the
HTTP client they are resources the tree runs on, and they must outlive its shutdown):

``keep_lease``
    Renews the node's lease every third of the TTL. The lease is measured on PostgreSQL's clock,
    so a node's own clock never decides who is alive. When a renewal says the lease is lost (it
    expired while the node was paused or cut off, or a survivor already took it over), the node
    is *fenced*: `Hooks.fenced` stops every child that owns work (sessions, agents, pollers),
    and the node joins again with a new fencing token and starts them again (`Hooks.rejoined`):
    what it still owns is adopted again, what a survivor took is not. While PostgreSQL cannot
    be reached the node serves on (Chat streams, durable streams already running; new durable
    work is refused by the store with a typed error): nobody can take it over without the
    database either, and the renewal that reaches it again decides. Writes with an old token
    are refused by the database itself, so a stale child cannot corrupt what a survivor owns.

``watch``
    Every half TTL, looks for nodes whose lease expired and takes each over (not within a TTL
    of this node's own rejoin or PostgreSQL outage: after an outage every lease ran out at once,
    and each node gets the time to join again before it counts as dead) (one survivor wins
    each dead node: the store bumps the dead node's token in the same transaction). What moved:
    a durable stream with an owning session is resumed here from its cursor by that session
    (`Hooks.resume`), everything else is polled (`Hooks.poll`); the dead node's foreground
    streams -- Chat, or ``durable=False``, which no API can resume -- end with an ``error``
    event (code ``node_lost``) on every node, built from what this node saw of them.

``deliver``
    Reads every other node's events from JetStream into the local bus (`ClusterBus.run`).

``serve_commands``
    Runs the session commands other nodes route here (`CommandServer`): any node's facade and
    gateway serve every session, wherever it runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final, Protocol

import attrs
import structlog
import trio

from streamvisor.actors import ResponseStore, SessionHandle, StoreError, TrackedResponse

from ._bridge import Message
from ._bridge_errors import BridgeError
from ._bus import ClusterBus
from ._codec import UndecodableItem, decode
from ._commands import CommandServer, RemoteSession, command_subject
from ._errors import ClusterStoreError, LeaseLost
from ._pgstore import ClusterStore
from ._subjects import is_name

__all__ = ["ClusterNode", "Hooks", "NodeStatus", "NodeStore", "default_node_id"]

log = structlog.get_logger("streamvisor.cluster")

#: Retrying PostgreSQL for the list of nodes (seconds): first pause, longest pause.
_RETRY_FIRST: Final = 0.25
_RETRY_MAX: Final = 5.0

#: The error code of a dead node's foreground stream, ended by a survivor.
NODE_LOST: Final = "node_lost"


class NodeStore(ClusterStore):
    """The node's `ClusterStore`, whose cursor writes first wait until JetStream acknowledged
    every event published before them (``before_cursors``: the bridge's ``flush``), and which
    takes no new record (no new durable stream or background response: a `ClusterStoreError`
    at the call) while NATS is unreachable (``events_flow``).

    That is the no-gap rule of a takeover: a survivor resumes a stream after the cursor in
    PostgreSQL, so everything up to that cursor must have reached the other nodes. If NATS does
    not acknowledge in time the cursor is not written (a `ClusterStoreError`; the poller keeps
    it pending): PostgreSQL stays behind, which costs a survivor a longer replay, never a gap.
    """

    before_cursors: Callable[[], Awaitable[None]] | None = None
    #: Whether NATS is reachable now: new records (durable work) are refused while it is not.
    events_flow: Callable[[], bool] | None = None

    def _check_events_flow(self) -> None:
        flowing = self.events_flow
        if flowing is not None and not flowing():
            raise ClusterStoreError(
                "new durable work is refused: NATS is unreachable, so its events could not "
                "reach the other nodes or survive this one",
                node_id=self.node_id,
            )

    def add_nowait(
        self,
        record: TrackedResponse,
        on_done: Callable[[TrackedResponse | None, BaseException | None], None],
    ) -> None:
        self._check_events_flow()
        super().add_nowait(record, on_done)

    async def add(self, record: TrackedResponse) -> TrackedResponse:
        self._check_events_flow()
        return await super().add(record)

    async def _acknowledged(self) -> None:
        wait = self.before_cursors
        if wait is None:
            return
        try:
            await wait()
        except BridgeError as exc:
            raise ClusterStoreError(
                f"cursors not recorded: NATS has not acknowledged the events before them ({exc})",
                node_id=self.node_id,
            ) from exc

    async def record_cursor(
        self, response_id: str, cursor: int, *, at: float | None = None
    ) -> TrackedResponse:
        await self._acknowledged()
        return await super().record_cursor(response_id, cursor, at=at)

    async def record_cursors(
        self, cursors: Mapping[str, int], *, at: float | None = None
    ) -> dict[str, TrackedResponse]:
        await self._acknowledged()
        return await super().record_cursors(cursors, at=at)


def default_node_id() -> str:
    """``<host>-<pid>``, cut to the 1-64 characters of A-Z a-z 0-9 _ - a node id may hold."""
    host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname()).strip("-") or "node"
    suffix = f"-{os.getpid()}"
    return host[: 64 - len(suffix)] + suffix


class _Bridge(Protocol):
    def subscribe(
        self, pattern: str, *, after: int | None = None, skip_origin: str | None = None
    ) -> Any: ...
    def subscribe_others(self, nodes: Iterable[str], *, after: int) -> Any: ...
    async def last_seq(self) -> int: ...
    def serve(self, subject: str, handler: Callable[[bytes], Awaitable[bytes]]) -> Any: ...
    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes: ...  # noqa: ASYNC109


@attrs.define
class Hooks:
    """What the node asks of its daemon (set once the tree is up)."""

    #: Stop every child that owns work: the node lost its lease.
    fenced: Callable[[], Awaitable[None]]
    #: Start them again: the node joined again with a new token.
    rejoined: Callable[[], Awaitable[None]]
    #: Resume a durable stream of a dead node in its owner's session here.
    resume: Callable[[TrackedResponse], Awaitable[None]]
    #: Poll these taken-over responses.
    poll: Callable[[Sequence[str]], Awaitable[None]]
    #: This node's handle of a session (``start``: start it if it is not running; else None
    #: when it is not), for the commands other nodes route here.
    local: Callable[[str, bool], Awaitable[SessionHandle | None]]


@attrs.frozen
class NodeStatus:
    """What ``Daemon.status()`` shows of the node."""

    node_id: str
    token: int
    #: False while fenced (lease lost, not yet joined again): new durable work is refused.
    leased: bool
    #: Nodes this one took over, oldest first.
    took_over: tuple[str, ...]
    forwarded: int
    received: int
    duplicates: int


class ClusterNode:
    """A daemon's membership of the cluster (see the module docstring)."""

    def __init__(
        self,
        *,
        store: NodeStore,
        bridge: _Bridge,
        bus: ClusterBus,
        lease_ttl: float,
    ) -> None:
        self.store = store
        self.bridge = bridge
        self.bus = bus
        self.lease_ttl = lease_ttl
        self.hooks: Hooks | None = None
        self.leased = True
        self.took_over: list[str] = []
        #: No takeovers before this (trio clock): after an outage every node's lease ran out
        #: together, and each deserves a TTL to join again before it is taken over.
        self._quiet_until = 0.0
        self._hooked = trio.Event()

    @property
    def node_id(self) -> str:
        return self.store.node_id

    def status(self) -> NodeStatus:
        return NodeStatus(
            self.node_id,
            self.store.token,
            self.leased,
            tuple(self.took_over),
            self.bus.forwarded,
            self.bus.received,
            self.bus.duplicates,
        )

    def open_store(self, namespace: str) -> AbstractAsyncContextManager[ResponseStore]:
        """The background poller's registry: the node's store, open as long as the node (a
        restarted poller gets the same one). Raises ``ValueError`` for another namespace."""
        if namespace != self.store.namespace:
            raise ValueError(
                f"the node's store holds namespace {self.store.namespace!r}, not {namespace!r}"
            )
        return contextlib.nullcontext(self.store)

    def attach(self, hooks: Hooks) -> None:
        """The daemon's tree is up: takeovers and fencing can act on it from now on."""
        self.hooks = hooks
        self._hooked.set()

    # -- the lease ------------------------------------------------------------------------------

    async def keep_lease(self) -> None:
        """Renew forever (see the module docstring); never raises for an engine failure."""
        every = self.lease_ttl / 3
        while True:
            await trio.sleep(every)
            try:
                await self.store.renew()
            except LeaseLost:
                await self._fence("lease_lost")
                await self._rejoin()
            except StoreError as exc:
                # PostgreSQL unreachable: serve on (nobody can take over without it either);
                # the renewal that reaches it again says whether the lease outlived the outage.
                self._quiet_until = trio.current_time() + 2 * self.lease_ttl
                log.warning("cluster.lease_unrenewable", node=self.node_id, error=str(exc))

    async def _fence(self, why: str) -> None:
        if self.leased:
            self.leased = False
            log.error("cluster.fenced", node=self.node_id, token=self.store.token, reason=why)
        hooks = self.hooks
        if hooks is not None:
            await hooks.fenced()

    async def _rejoin(self) -> None:
        """Join again with a new token, retrying until PostgreSQL answers."""
        delay = min(1.0, self.lease_ttl / 3)
        while True:
            try:
                token = await self.store.rejoin()
            except StoreError as exc:
                log.warning("cluster.rejoin_failed", node=self.node_id, error=str(exc))
                await trio.sleep(delay)
                continue
            self.leased = True
            self._quiet_until = trio.current_time() + self.lease_ttl
            log.info("cluster.rejoined", node=self.node_id, token=token)
            if self.hooks is not None:
                await self.hooks.rejoined()
            return

    # -- takeovers -------------------------------------------------------------------------------

    async def watch(self) -> None:
        """Take over every node whose lease expired, forever."""
        await self._hooked.wait()
        every = self.lease_ttl / 2
        while True:
            if self.leased and trio.current_time() >= self._quiet_until:
                try:
                    for dead in await self.store.expired_nodes():
                        await self.take_over(dead)
                except StoreError as exc:
                    log.warning("cluster.watch_failed", node=self.node_id, error=str(exc))
            await trio.sleep(every)

    async def take_over(self, dead: str) -> bool:
        """Take ``dead``'s work if this node wins it; True if it did."""
        records = await self.store.take_over(dead)
        if records is None:
            return False
        hooks = self.hooks
        assert hooks is not None
        self.took_over.append(dead)
        resumed: set[str] = set()
        polled: list[str] = []
        for record in records:
            resumed.add(record.response_id)
            if record.mode == "stream" and record.owner is not None:
                try:
                    await hooks.resume(record)
                    continue
                except Exception as exc:  # it is polled instead, and said so
                    log.warning(
                        "cluster.resume_failed",
                        response_id=record.response_id,
                        session=record.owner,
                        error=repr(exc),
                    )
            polled.append(record.response_id)
        if polled:
            await hooks.poll(polled)
        ended = 0
        for stream in self.bus.open_streams(dead):
            if stream.response_id in resumed:
                continue
            self.bus.end_stream(
                stream,
                NODE_LOST,
                f"node {dead} stopped while streaming; this stream cannot be resumed",
            )
            ended += 1
        log.warning(
            "cluster.took_over",
            node=self.node_id,
            dead=dead,
            resumed=len(records) - len(polled),
            polled=len(polled),
            ended=ended,
        )
        return True

    # -- sessions other nodes own, and commands for ours ---------------------------------------

    def remote_session(self, owner: str, session_id: str) -> SessionHandle:
        """A handle that sends session ``session_id``'s commands to ``owner``."""
        return RemoteSession(self.bridge, owner, session_id)

    async def serve_commands(self) -> None:
        """Run the commands other nodes route to this node's sessions, forever."""
        await self._hooked.wait()
        hooks = self.hooks
        assert hooks is not None
        server = CommandServer(self.node_id, hooks.local)
        async with self.bridge.serve(command_subject(self.node_id), server.handle):
            await trio.sleep_forever()

    # -- replay ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def replay(
        self, pattern: str, *, after: int | None = None
    ) -> AsyncIterator[trio.MemoryReceiveChannel[Message]]:
        """Every node's events on topics ``pattern`` matches, from JetStream: after stream
        sequence ``after`` (stored ones first, then live ones), or from now on (None). In one
        order for every node, without gap or duplicate, across NATS reconnects: a subscriber
        that moves to another node resumes with the last sequence it saw. Each `Message`'s
        ``seq`` is that cursor; `decode` gives its item. A channel, not an async generator, so a
        caller may time out a receive (a keepalive) and go on receiving."""
        async with self.bridge.subscribe(pattern, after=after) as messages:
            yield messages

    def decode(self, message: Message) -> object | None:
        """The bus item a message from JetStream carries; None (counted on the bus) when it
        does not decode."""
        try:
            return decode(message.payload)
        except UndecodableItem:
            self.bus.undecodable += 1
            return None

    # -- events from other nodes ----------------------------------------------------------------

    async def deliver(self) -> None:
        """Deliver every other node's events here, forever (the bridge resumes after outages).

        JetStream is asked for the other nodes' events only, not for this node's own (which
        its subscribers had in-process): the stream's last sequence is read first, then the
        nodes that joined (every node joins in PostgreSQL before it opens its bridge; long
        fenced ones left out, see `ClusterStore.other_nodes`), and a node that joins later announces
        itself on the stream (`NatsBridge.subscribe_others`).
        """
        after = await self.bridge.last_seq()
        pause = _RETRY_FIRST
        while True:
            try:
                nodes = await self.store.other_nodes()
                break
            except StoreError as exc:  # PostgreSQL away: nothing is missed meanwhile (after)
                log.warning("cluster.nodes_unknown", error=str(exc), retry_in=pause)
                await trio.sleep(pause)
                pause = min(2 * pause, _RETRY_MAX)
        others = [node for node in nodes if is_name(node)]  # one a bridge can publish under
        async with self.bridge.subscribe_others(others, after=after) as messages:
            await self.bus.run(messages)
