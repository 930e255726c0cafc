"""The daemon: assembles the supervision tree and is the facade users embed.

```
resources (outlive every restart)    the tree (root, one_for_one; names in the registry)
  EventBus      topics → subscribers   ├── files       FileActor
  OpenAIClient  one httpx pool         ├── background  BackgroundPoller
  MockServer    when no API key        │   └── pollers DynamicSupervisor → ResponsePoller per id
                                       ├── sessions    DynamicSupervisor → StreamingSession per id
                                       └── agents      DynamicSupervisor → Agent per id
```

Each dynamic level gives every child a restart budget of its own (``[supervisor]
<level>_child_*``): a session, agent or poller that crash-loops is given up alone -- its
subscribers get a terminal ``error`` event (code ``restart_budget_exhausted``), its siblings and
the daemon run on, and the same id can be opened again. The root's own intensity
(``[supervisor] intensity``) counts only restarts of its infrastructure children.

The event bus and the HTTP client are *resources* handed to every actor rather than processes in
the tree: neither runs code of its own that can fail (a publish is a synchronous buffer append, the
client is a connection pool), and restarting either would silently invalidate the references every
actor holds. They are opened before the tree and closed after it. Everything that does run — the
uploads, the polling, the streams, the agents' turns — is an actor under the root supervisor and is
restarted per its child spec. Handles address actors by registered name, so a restart is invisible
to callers.

Shutdown (leaving `open_daemon`; ``python run.py`` does so on SIGINT/SIGTERM) stops the tree in
reverse start order — agents, then sessions (durable streams are handed over to the poller, not
cancelled), then the poller (its registry is on disk), then the file actor — then closes the
client, the bus and the embedded server.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs
import httpx
import structlog
import trio

from ._logging import configure_logging
from ._metrics import DaemonMetrics, MetricsCollector
from .actors import (
    EMBEDDED_NAMESPACE,
    TOPIC_PATTERN,
    Agent,
    AgentHandle,
    BackgroundHandle,
    BackgroundPoller,
    EventLog,
    FileActor,
    FilesHandle,
    InvalidAgentConfig,
    RegistryView,
    SessionDeps,
    SessionHandle,
    StoreError,
    Tool,
    TrackedResponse,
    agent_given_up_reporter,
    check_agent_id,
    check_session_id,
    is_topic_pattern,
    open_event_log,
    open_session,
    registry_namespace,
    session_name,
    sessions_supervisor,
)
from .config import Config, ConfigError
from .mockapi import MockAPIConfig, MockServer, serve
from .openai import ClientSettings, OpenAIClient, RetryPolicy
from .supervisor import (
    AlreadyStarted,
    ChildInfo,
    ChildSpec,
    DynamicSupervisor,
    DynamicSupervisorRef,
    EventBus,
    InvalidPattern,
    NamedRef,
    Overflow,
    Registry,
    Restart,
    RestartBudget,
    StartChildError,
    Strategy,
    Subscription,
    SupervisorRef,
    open_supervisor,
)

if TYPE_CHECKING:
    from .cluster import ClusterNode, NodeStatus
    from .cluster import Hooks as ClusterHooks

__all__ = ["Daemon", "DaemonStatus", "open_daemon"]


@contextlib.contextmanager
def _gc_threshold(young: int) -> Iterator[None]:
    """The collector's young-generation threshold at ``young`` while the daemon runs (``[runtime]
    gc_threshold``: hundreds of streams allocate fast enough that the default, 700, pauses them
    hundreds of times a second); the previous thresholds are restored on exit. 0: untouched."""
    if young <= 0:
        yield
        return
    previous = gc.get_threshold()
    gc.set_threshold(young, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _options(options: object) -> dict[str, Any]:
    """An agent's ``options`` as a dict. Raises `InvalidAgentConfig` unless it is a mapping."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise InvalidAgentConfig(f"options must be a mapping of body fields, not {options!r:.80}")
    return dict(options)


log = structlog.get_logger("streamvisor.daemon")

FILES = "files"
BACKGROUND = "background"
SESSIONS = "sessions"
AGENTS = "agents"
#: Seconds a call by name waits for an actor being restarted (`NamedRef.restart_wait`).
RESTART_WAIT: Final = 1.0


@attrs.frozen
class DaemonStatus:
    """A snapshot of the running daemon, for status lines and health checks.

    Attributes:
        base_url: Where API requests go (the embedded server's URL when it is used).
        embedded: True when the embedded OpenAI-compatible server is serving the daemon.
        children: The root supervisor's children, in start order.
        sessions: Session workers running.
        agents: Agents running.
        active_background: Background responses not yet terminal in the registry.
        cluster: This node's membership of a cluster (`NodeStatus`), or None for one node.
    """

    base_url: str
    embedded: bool
    children: tuple[ChildInfo, ...]
    sessions: int
    agents: int
    active_background: int
    cluster: NodeStatus | None = None


def agent_name(agent_id: str) -> str:
    """The registered name of agent ``agent_id`` (its topic is the same string)."""
    return f"agent.{agent_id}"


@attrs.define(eq=False)
class Daemon:
    """The running daemon. Get one from `open_daemon`; never construct it by hand.

    Attributes:
        config: The configuration it runs with.
        bus: The event bus (`subscribe` is the usual way in).
        client: The shared OpenAI client (rate limits last seen: ``client.rate_limits``).
        registry: The name registry of the tree (``files``, ``background``, ``sessions``,
            ``agents``, ``session.<id>``, ``agent.<id>``).
        root: The root supervisor (``which_children``, ``count_children``, ...).
        files: The file actor's handle (uploads, image/file inputs, listing).
        background: The background poller's handle (create, poll, cancel, active, stream).
        event_log: The events kept of streams started with ``keep_events`` (``[eventlog]``).
        mockapi: The embedded server, when no API key was configured (None otherwise).
        metrics: Its Prometheus metrics (a registry of its own; ``GET /metrics`` serves them).
        node: This daemon's membership of a cluster (``[cluster]``), or None for one node.
    """

    config: Config
    bus: EventBus[Any]
    client: OpenAIClient
    registry: Registry
    root: SupervisorRef
    files: FilesHandle
    background: BackgroundHandle
    event_log: EventLog
    mockapi: MockServer | None
    metrics: DaemonMetrics
    _session_deps: SessionDeps
    _agent_defaults: Callable[..., Agent]
    _registry_view: RegistryView
    node: ClusterNode | None = None

    def subscribe(
        self, pattern: str, *, buffer: int | None = None, overflow: Overflow | None = None
    ) -> Subscription[Any]:
        """An event channel: ``async with daemon.subscribe("session.s1") as events:``.

        Patterns are dot-separated topics; ``*`` matches one segment, a trailing ``**`` any
        number (``session.*``, ``background.**``, ``**``). A subscriber that falls behind gets a
        `Missed` notice (drop-oldest, the default) or is disconnected, per ``[bus]``.

        Raises ``InvalidPattern`` (a ``ValueError``) for a malformed pattern, or one holding a
        character no topic of the daemon has (`TOPIC_PATTERN`).
        """
        if isinstance(pattern, str) and not is_topic_pattern(pattern):
            raise InvalidPattern(pattern, f"holds characters outside {TOPIC_PATTERN}")
        return self.bus.subscribe(pattern, buffer=buffer, overflow=overflow)

    def _named(self, name: str) -> NamedRef:
        return self.registry.ref(name, restart_wait=RESTART_WAIT)

    async def _supervisor(self, name: str) -> DynamicSupervisorRef:
        """The dynamic supervisor registered as ``name`` (``sessions``, ``agents``), waiting up to
        `RESTART_WAIT` for one being restarted. Raises ``NoSuchActor``."""
        ref = await self._named(name).resolve()
        assert isinstance(ref, DynamicSupervisorRef), ref
        return ref

    async def _child_ids(self, supervisor: str, prefix: str) -> list[str]:
        children = (await self._supervisor(supervisor)).which_children_nowait()
        return [
            child.ref.name[len(prefix) :]
            for child in children
            if child.ref is not None and child.ref.name and child.ref.name.startswith(prefix)
        ]

    async def session_ids(self) -> list[str]:
        """The ids of the sessions whose workers run on this daemon, in start order. Raises
        ``NoSuchActor`` if the sessions supervisor is not running."""
        return await self._child_ids(SESSIONS, "session.")

    async def agent_ids(self) -> list[str]:
        """The ids of the agents running on this daemon, in start order (as `session_ids`)."""
        return await self._child_ids(AGENTS, "agent.")

    async def open_session(self, session_id: str) -> SessionHandle:
        """The handle of session ``session_id``, starting its worker if it is not running.

        Its events are published on ``session.<id>``; the handle addresses the worker by name, so
        it follows it across restarts. Raises ``InvalidSessionId`` (a ValueError) for an id that
        is not 1-128 letters, digits or ``_-:@+=`` (before anything starts), ``MaxChildren`` /
        ``StartChildError`` if the worker cannot start. In a cluster, the session runs on the
        node the directory names (this one if nobody runs it): the handle of another node's
        session sends it commands there; ``StoreError`` when the directory cannot be read and
        the session does not run here.
        """
        check_session_id(session_id)
        node = self.node
        if node is not None:
            try:
                owner = await node.store.claim_session(session_id)
            except StoreError:
                # The directory cannot be read now (PostgreSQL away, or this node fenced): a
                # session running here goes on being served; any other cannot be placed.
                running = self.session(session_id)
                if running is None:
                    raise
                return running
            if owner != node.node_id:
                return node.remote_session(owner, session_id)
        return await self.open_local_session(session_id)

    async def open_local_session(self, session_id: str) -> SessionHandle:
        """`open_session` on this node, whichever node the cluster's directory names (a
        takeover, or a command another node routed here)."""
        sessions = await self._supervisor(SESSIONS)
        return await open_session(sessions, session_id, self._session_deps)

    async def find_session(self, session_id: str) -> SessionHandle | None:
        """The handle of session ``session_id`` if it runs: here, or (in a cluster) on the node
        that owns it, whose handle sends it commands there. None if it runs nowhere known.
        Raises ``InvalidSessionId``."""
        local = self.session(session_id)
        node = self.node
        if local is not None or node is None:
            return local
        owner = await node.store.session_owner(session_id)
        if owner is None or owner == node.node_id:
            return None
        return node.remote_session(owner, session_id)

    def session(self, session_id: str) -> SessionHandle | None:
        """The handle of session ``session_id`` if its worker is running, else None (no start).

        Raises ``InvalidSessionId`` for an id that cannot name a session."""
        named = self._named(session_name(check_session_id(session_id)))
        return SessionHandle(named, session_id) if named.alive else None

    async def close_session(self, session_id: str) -> bool:
        """Stop session ``session_id``'s worker (its durable streams go on as polling).

        Returns False if it was not running. Raises ``InvalidSessionId`` for an unusable id.
        """
        ref = self._named(session_name(check_session_id(session_id))).whereis()
        if ref is None:
            return False
        await (await self._supervisor(SESSIONS)).terminate_child(ref)
        return True

    async def open_agent(
        self,
        agent_id: str,
        *,
        model: str,
        api: Literal["chat", "responses"] = "responses",
        instructions: str | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        options: Mapping[str, Any] | None = None,
    ) -> AgentHandle:
        """Start an agent (a conversation with tools) under the ``agents`` supervisor.

        Its stream events and tool calls/results are published on ``agent.<id>``; the handle
        addresses it by name, so it follows it across restarts. Raises ``InvalidAgentId`` (an
        id that is not 1-128 letters, digits or ``_-:@+=``), ``InvalidAgentConfig`` (e.g.
        ``options`` that are not plain JSON) / ``ToolDefinitionError`` for a bad definition
        (before anything starts) and ``AlreadyStarted`` if an agent of that id is running.
        """
        name = agent_name(check_agent_id(agent_id))
        # Build once here so a bad definition fails in the caller, not in the supervisor.
        kwargs: dict[str, Any] = {
            "model": model,
            "api": api,
            "instructions": instructions,
            "tools": tuple(tools),
            "options": _options(options),
        }
        self._agent_defaults(agent_id, **kwargs)
        try:
            agents = await self._supervisor(AGENTS)
            await agents.start_child(agent_id, kwargs, name=name)
        except StartChildError as exc:
            if isinstance(exc.__cause__, AlreadyStarted):
                raise exc.__cause__ from None
            raise
        return AgentHandle(self._named(name), agent_id)

    def agent(self, agent_id: str) -> AgentHandle | None:
        """The handle of agent ``agent_id`` if it is running, else None.

        Raises ``InvalidAgentId`` for an id that cannot name an agent."""
        named = self._named(agent_name(check_agent_id(agent_id)))
        return AgentHandle(named, agent_id) if named.alive else None

    async def close_agent(self, agent_id: str) -> bool:
        """Stop agent ``agent_id``. Returns False if it was not running. Raises
        ``InvalidAgentId`` for an id that cannot name an agent."""
        ref = self._named(agent_name(check_agent_id(agent_id))).whereis()
        if ref is None:
            return False
        await (await self._supervisor(AGENTS)).terminate_child(ref)
        return True

    async def status(self) -> DaemonStatus:
        """What is running now (see `DaemonStatus`).

        Read without a message to any actor: the supervisors' tables (``*_nowait``) and the
        registry's memory (`RegistryView`), in this task. Under load every hop to an actor waits
        for its turn in the scheduler; a health check must not (``python -m bench durable``).
        Only while the background poller is restarting is it asked (waiting for the restart).
        Raises ``NoSuchActor`` / ``ActorExited`` if a supervisor is not running.
        """
        sessions = (await self._supervisor(SESSIONS)).count_children_nowait()
        agents = (await self._supervisor(AGENTS)).count_children_nowait()
        children = self.root.which_children_nowait()
        active = self._registry_view.active_count()
        if active is None:
            active = len(await self.background.active())
        else:
            await trio.lowlevel.checkpoint()
        return DaemonStatus(
            base_url=self.client.settings.base_url,
            embedded=self.mockapi is not None,
            children=tuple(children),
            sessions=sessions.active,
            agents=agents.active,
            active_background=active,
            cluster=None if self.node is None else self.node.status(),
        )


def _check_cluster_extra(config: Config) -> None:
    """Raise `ConfigError` (before anything starts) if ``[cluster]`` is on and the cluster extra
    (psycopg, nats-py) is not installed."""
    try:
        import streamvisor.cluster  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"[cluster] needs the cluster extra ({exc.name or exc} is not installed): "
            "pip install 'streamvisor[cluster]' (or -e '.[cluster]' in a checkout)",
            key="cluster.postgres_dsn",
            value=config.cluster.postgres_dsn,
        ) from exc


async def _join_cluster(stack: AsyncExitStack, config: Config, namespace: str) -> ClusterNode:
    """Join the cluster of ``[cluster]``: PostgreSQL (the node's store, its lease), NATS (the
    bridge), the cluster bus, and the node's loops, which outlive the tree (they are stopped
    after it, so the lease is held while the tree hands its work over). Leaving ends the lease
    at once: the survivors take over what is left without waiting for it to expire."""
    from .cluster import ClusterBus, ClusterNode, NatsBridge, default_node_id
    from .cluster._node import NodeStore

    section = config.cluster
    assert section.postgres_dsn is not None
    assert section.nats_url is not None
    node_id = section.node_id or default_node_id()
    store = await stack.enter_async_context(
        NodeStore.open(
            section.postgres_dsn,
            node_id=node_id,
            namespace=namespace,
            lease_ttl=section.lease_ttl,
        )
    )
    bridge = await stack.enter_async_context(
        NatsBridge.open(section.nats_url, node_id=node_id, interval=section.publish_interval)
    )
    assert isinstance(store, NodeStore)
    store.before_cursors = bridge.flush
    store.events_flow = lambda: bridge.connected
    bus = ClusterBus(
        node_id,
        default_buffer=config.bus.subscriber_buffer,
        default_overflow=Overflow[config.bus.overflow.upper()],
    )
    bus.attach(bridge)
    node = ClusterNode(store=store, bridge=bridge, bus=bus, lease_ttl=section.lease_ttl)
    stack.push_async_callback(store.leave)
    nursery = await stack.enter_async_context(trio.open_nursery())
    stack.callback(nursery.cancel_scope.cancel)
    nursery.start_soon(node.keep_lease)
    nursery.start_soon(node.deliver)
    nursery.start_soon(node.watch)
    nursery.start_soon(node.serve_commands)
    log.info("cluster_joined", node=node_id, token=store.token)
    return node


def _cluster_hooks(daemon: Daemon) -> ClusterHooks:
    """What a cluster node does to its daemon's tree: stop the children that own work when
    fenced (and start them again once joined again), resume a dead node's durable stream in its
    owner's session, poll the rest of what it left."""
    from .cluster import Hooks

    owners = (SESSIONS, AGENTS, BACKGROUND)

    async def fenced() -> None:
        for child in owners:
            with contextlib.suppress(Exception):
                await daemon.root.terminate_child(child)

    async def rejoined() -> None:
        for child in reversed(owners):
            try:
                await daemon.root.restart_child(child)
            except Exception as exc:  # reported; the root decides what follows
                log.exception("cluster_restart_failed", child=child, error=repr(exc))

    async def resume(record: TrackedResponse) -> None:
        assert record.owner is not None
        session = await daemon.open_local_session(record.owner)
        await session.adopt(
            record.response_id,
            model=record.model,
            request=dict(record.request),
            cursor=record.cursor,
        )

    async def poll(response_ids: Sequence[str]) -> None:
        await daemon.background.adopt(response_ids)

    async def local(session_id: str, start: bool) -> SessionHandle | None:
        if start:
            return await daemon.open_local_session(session_id)
        return daemon.session(session_id)

    return Hooks(fenced=fenced, rejoined=rejoined, resume=resume, poll=poll, local=local)


def _client_settings(config: Config, server: MockServer | None) -> ClientSettings:
    section = config.openai
    return ClientSettings(
        api_key=section.api_key if server is None else None,
        base_url=section.base_url if server is None else server.url,
        organization=section.organization,
        project=section.project,
        connect_timeout=section.connect_timeout,
        read_timeout=section.read_timeout,
        max_connections=section.max_connections,
        max_keepalive_connections=section.max_keepalive_connections,
        retry=RetryPolicy(max_retries=section.max_retries),
    )


@asynccontextmanager
async def open_daemon(
    config: Config | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    mockapi: MockAPIConfig | None = None,
    configure_logs: bool | None = None,
) -> AsyncIterator[Daemon]:
    """Start the whole tree; stop it in order when the block exits.

    Args:
        config: The configuration (default: `Config.load()`: ``config/streamvisor.toml`` and
            the environment). With no API key, the embedded OpenAI-compatible server is started
            on loopback and the daemon talks to it.
        transport: An httpx transport for the client (tests); disables the embedded server.
        mockapi: The embedded server's configuration (default: from ``config.mockapi``).
        configure_logs: Apply ``[log]`` to structlog and stdlib logging (JSON lines or pretty,
            the level, secret redaction). None (default): only if the host program has not
            configured structlog itself, so an embedding application keeps its own logging.

    Raises:
        ConfigError: bad configuration (from `Config.load`), or ``[cluster]`` without the
            cluster extra installed.
        StartChildError: a child of the root failed to start (e.g. the registry database cannot
            be opened); nothing is left running.
        ActorExited: the root supervisor gave up (restart intensity exceeded) while the block ran.
    """
    config = config if config is not None else Config.load()
    if config.cluster.enabled:
        _check_cluster_extra(config)
    if configure_logs or (configure_logs is None and not structlog.is_configured()):
        configure_logging(config.log, secrets=[config.openai.api_key])
    async with AsyncExitStack() as stack:
        stack.enter_context(_gc_threshold(config.runtime.gc_threshold))
        server: MockServer | None = None
        if config.use_embedded_server and transport is None:
            section = config.mockapi
            server = await stack.enter_async_context(
                serve(
                    mockapi
                    or MockAPIConfig(
                        host=section.host,
                        port=section.port,
                        token_delay=section.token_delay,
                        keepalive_interval=section.keepalive_interval,
                    )
                )
            )
            log.info("embedded_server_started", url=server.url)
        client = await stack.enter_async_context(
            OpenAIClient.open(_client_settings(config, server), transport=transport)
        )
        overflow = Overflow[config.bus.overflow.upper()]
        namespace = (
            EMBEDDED_NAMESPACE
            if server is not None
            else registry_namespace(client.settings.base_url)
        )
        node: ClusterNode | None = None
        bus: EventBus[Any]
        if config.cluster.enabled:
            node = await _join_cluster(stack, config, namespace)
            bus = node.bus
        else:
            bus = EventBus(default_buffer=config.bus.subscriber_buffer, default_overflow=overflow)
        stack.callback(bus.close)
        kept = config.eventlog
        event_log = await stack.enter_async_context(
            open_event_log(
                kept.path,
                namespace=namespace,
                retention=kept.retention,
                max_events=kept.max_events,
                flush_interval=kept.flush_interval,
            )
        )
        registry = Registry()
        background = BackgroundHandle.from_registry(registry, BACKGROUND)
        deps = SessionDeps(
            client=client,
            bus=bus,
            config=config.sessions,
            tracker=background,
            event_log=event_log,
        )

        def make_agent(agent_id: str, **kwargs: Any) -> Agent:
            return Agent(agent_id, client=client, bus=bus, config=config.agent, **kwargs)

        def agent_child(agent_id: str, kwargs: dict[str, Any]) -> Agent:
            return make_agent(agent_id, **kwargs)

        # [supervisor]: each dynamic level's own intensity, and a budget per child so that one
        # session, agent or poller crash-looping is given up alone (README: "What each
        # supervisor level tolerates").
        levels = config.supervisor

        def budget(level: str) -> RestartBudget:
            return RestartBudget(*levels.child_budget(level))

        view = RegistryView()
        pollers_intensity, pollers_period = levels.level("pollers")
        sessions_intensity, sessions_period = levels.level("sessions")
        agents_intensity, agents_period = levels.level("agents")
        children = [
            ChildSpec.worker(FILES, lambda: FileActor(client, config.files), name=FILES),
            ChildSpec.worker(
                BACKGROUND,
                lambda: BackgroundPoller(
                    client=client,
                    bus=bus,
                    section=config.background,
                    poller_intensity=pollers_intensity,
                    poller_period=pollers_period,
                    poller_budget=budget("pollers"),
                    view=view,
                    namespace=None if server is None else EMBEDDED_NAMESPACE,
                    open_store=None if node is None else node.open_store,
                ),
                name=BACKGROUND,
            ),
            ChildSpec.supervisor(
                SESSIONS,
                lambda: sessions_supervisor(
                    config.sessions,
                    intensity=sessions_intensity,
                    period=sessions_period,
                    restart_budget=budget("sessions"),
                ),
                name=SESSIONS,
            ),
            ChildSpec.supervisor(
                AGENTS,
                lambda: DynamicSupervisor(
                    agent_child,
                    restart=Restart.TRANSIENT,
                    shutdown=config.sessions.stop_timeout,
                    intensity=agents_intensity,
                    period=agents_period,
                    restart_budget=budget("agents"),
                    on_give_up=agent_given_up_reporter(bus),
                ),
                name=AGENTS,
            ),
        ]
        root = await stack.enter_async_context(
            open_supervisor(
                children,
                strategy=Strategy.ONE_FOR_ONE,
                intensity=config.supervisor.intensity,
                period=config.supervisor.period,
                registry=registry,
                name="root",
            )
        )
        log.info("daemon_started", base_url=client.settings.base_url, embedded=server is not None)
        daemon = Daemon(
            config=config,
            bus=bus,
            client=client,
            registry=registry,
            root=root,
            files=FilesHandle.registered(registry, FILES, config.files),
            background=background,
            event_log=event_log,
            mockapi=server,
            metrics=DaemonMetrics(
                MetricsCollector(
                    client=client,
                    bus=bus,
                    delivery=deps.delivery,
                    registry_view=view,
                    root=root,
                )
            ),
            session_deps=deps,
            agent_defaults=make_agent,
            registry_view=view,
            node=node,
        )
        if node is not None:
            node.attach(_cluster_hooks(daemon))
        yield daemon
        log.info("daemon_stopping")
