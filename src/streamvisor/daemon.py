"""The daemon: assembles the supervision tree and is the facade users embed.

```
resources (outlive every restart)    the tree (root, one_for_one; names in the registry)
  EventBus      topics → subscribers   ├── files       FileActor
  OpenAIClient  one httpx pool         ├── background  BackgroundPoller
  MockServer    when no API key        │   └── pollers DynamicSupervisor → ResponsePoller per id
                                       ├── sessions    DynamicSupervisor → StreamingSession per id
                                       └── agents      DynamicSupervisor → Agent per id
```

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

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal, cast

import attrs
import httpx
import structlog
import trio

from ._logging import configure_logging
from .actors import (
    Agent,
    AgentHandle,
    BackgroundHandle,
    BackgroundPoller,
    FileActor,
    FilesHandle,
    SessionDeps,
    SessionHandle,
    Tool,
    open_session,
    session_name,
    sessions_supervisor,
)
from .config import Config
from .mockapi import MockAPIConfig, MockServer, serve
from .openai import ClientSettings, OpenAIClient, RetryPolicy
from .supervisor import (
    AlreadyStarted,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    DynamicSupervisor,
    DynamicSupervisorRef,
    EventBus,
    NoSuchActor,
    Overflow,
    Registry,
    Restart,
    StartChildError,
    Strategy,
    Subscription,
    SupervisorRef,
    open_supervisor,
)

__all__ = ["Daemon", "DaemonStatus", "open_daemon"]

log = structlog.get_logger("streamvisor.daemon")

FILES = "files"
BACKGROUND = "background"
SESSIONS = "sessions"
AGENTS = "agents"


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
    """

    base_url: str
    embedded: bool
    children: tuple[ChildInfo, ...]
    sessions: int
    agents: int
    active_background: int


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
        mockapi: The embedded server, when no API key was configured (None otherwise).
    """

    config: Config
    bus: EventBus[Any]
    client: OpenAIClient
    registry: Registry
    root: SupervisorRef
    files: FilesHandle
    background: BackgroundHandle
    mockapi: MockServer | None
    _session_deps: SessionDeps
    _agent_defaults: Callable[..., Agent]

    def subscribe(
        self, pattern: str, *, buffer: int | None = None, overflow: Overflow | None = None
    ) -> Subscription[Any]:
        """An event channel: ``async with daemon.subscribe("session.s1") as events:``.

        Patterns are dot-separated topics; ``*`` matches one segment, a trailing ``**`` any
        number (``session.*``, ``background.**``, ``**``). A subscriber that falls behind gets a
        `Missed` notice (drop-oldest, the default) or is disconnected, per ``[bus]``.

        Raises ``InvalidPattern`` (a ``ValueError``) for a malformed pattern.
        """
        return self.bus.subscribe(pattern, buffer=buffer, overflow=overflow)

    def _dynamic(self, name: str) -> DynamicSupervisorRef:
        ref = self.registry.whereis(name)
        if ref is None:
            raise NoSuchActor(name)
        return cast(DynamicSupervisorRef, ref)

    async def open_session(self, session_id: str) -> SessionHandle:
        """The handle of session ``session_id``, starting its worker if it is not running.

        Its events are published on ``session.<id>``. Raises ``InvalidSessionId`` for an
        unusable id, ``MaxChildren`` / ``StartChildError`` if the worker cannot start.
        """
        return await open_session(self._dynamic(SESSIONS), session_id, self._session_deps)

    def session(self, session_id: str) -> SessionHandle | None:
        """The handle of session ``session_id`` if its worker is running, else None (no start)."""
        ref = self.registry.whereis(session_name(session_id))
        return None if ref is None else SessionHandle(ref, session_id, registry=self.registry)

    async def close_session(self, session_id: str) -> bool:
        """Stop session ``session_id``'s worker (its durable streams go on as polling).

        Returns False if it was not running.
        """
        ref = self.registry.whereis(session_name(session_id))
        if ref is None:
            return False
        await self._dynamic(SESSIONS).terminate_child(ref)
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

        Its stream events and tool calls/results are published on ``agent.<id>``. Raises
        ``InvalidAgentConfig`` / ``ToolDefinitionError`` for a bad definition (before anything
        starts) and ``AlreadyStarted`` if an agent of that id is running.
        """
        name = agent_name(agent_id)
        # Build once here so a bad definition fails in the caller, not in the supervisor.
        kwargs: dict[str, Any] = {
            "model": model,
            "api": api,
            "instructions": instructions,
            "tools": tuple(tools),
            "options": dict(options or {}),
        }
        self._agent_defaults(agent_id, **kwargs)
        try:
            ref = await self._dynamic(AGENTS).start_child(agent_id, kwargs, name=name)
        except StartChildError as exc:
            if isinstance(exc.__cause__, AlreadyStarted):
                raise exc.__cause__ from None
            raise
        return AgentHandle(ref, agent_id)

    def agent(self, agent_id: str) -> AgentHandle | None:
        """The handle of agent ``agent_id`` if it is running, else None."""
        ref = self.registry.whereis(agent_name(agent_id))
        return None if ref is None else AgentHandle(ref, agent_id)

    async def close_agent(self, agent_id: str) -> bool:
        """Stop agent ``agent_id``. Returns False if it was not running."""
        ref = self.registry.whereis(agent_name(agent_id))
        if ref is None:
            return False
        await self._dynamic(AGENTS).terminate_child(ref)
        return True

    async def status(self) -> DaemonStatus:
        """What is running now (see `DaemonStatus`).

        Its four questions go to four actors at once: under load each hop waits for a pass of
        the scheduler, so asking them one after the other took four times as long (``python -m
        bench durable``). The background count comes from the registry's memory, never from
        disk. Raises what the calls raise (``CallTimeout``, ``ActorExited``, ``NoSuchActor``).
        """
        answers: dict[str, Any] = {}
        failed: list[Exception] = []

        async def ask(key: str, call: Callable[[], Awaitable[Any]]) -> None:
            try:
                answers[key] = await call()
            except Exception as exc:  # raised below as is, not wrapped in a group
                failed.append(exc)

        sessions_ref, agents_ref = self._dynamic(SESSIONS), self._dynamic(AGENTS)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, SESSIONS, sessions_ref.count_children)
            nursery.start_soon(ask, AGENTS, agents_ref.count_children)
            nursery.start_soon(ask, "children", self.root.which_children)
            nursery.start_soon(ask, BACKGROUND, self.background.active)
        if failed:
            raise failed[0]
        sessions: ChildCounts = answers[SESSIONS]
        agents: ChildCounts = answers[AGENTS]
        return DaemonStatus(
            base_url=self.client.settings.base_url,
            embedded=self.mockapi is not None,
            children=tuple(answers["children"]),
            sessions=sessions.active,
            agents=agents.active,
            active_background=len(answers[BACKGROUND]),
        )


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
        ConfigError: bad configuration (from `Config.load`).
        StartChildError: a child of the root failed to start (e.g. the registry database cannot
            be opened); nothing is left running.
        ActorExited: the root supervisor gave up (restart intensity exceeded) while the block ran.
    """
    config = config if config is not None else Config.load()
    if configure_logs or (configure_logs is None and not structlog.is_configured()):
        configure_logging(config.log, secrets=[config.openai.api_key])
    async with AsyncExitStack() as stack:
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
        bus: EventBus[Any] = EventBus(
            default_buffer=config.bus.subscriber_buffer,
            default_overflow=Overflow[config.bus.overflow.upper()],
        )
        stack.callback(bus.close)
        registry = Registry()
        background = BackgroundHandle.from_registry(registry, BACKGROUND)
        deps = SessionDeps(client=client, bus=bus, config=config.sessions, tracker=background)

        def make_agent(agent_id: str, **kwargs: Any) -> Agent:
            return Agent(agent_id, client=client, bus=bus, config=config.agent, **kwargs)

        def agent_child(agent_id: str, kwargs: dict[str, Any]) -> Agent:
            return make_agent(agent_id, **kwargs)

        children = [
            ChildSpec.worker(FILES, lambda: FileActor(client, config.files), name=FILES),
            ChildSpec.worker(
                BACKGROUND,
                lambda: BackgroundPoller(client=client, bus=bus, section=config.background),
                name=BACKGROUND,
            ),
            ChildSpec.supervisor(
                SESSIONS,
                lambda: sessions_supervisor(config.sessions),
                name=SESSIONS,
            ),
            ChildSpec.supervisor(
                AGENTS,
                lambda: DynamicSupervisor(
                    agent_child, restart=Restart.TRANSIENT, shutdown=config.sessions.stop_timeout
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
        yield Daemon(
            config=config,
            bus=bus,
            client=client,
            registry=registry,
            root=root,
            files=FilesHandle.registered(registry, FILES, config.files),
            background=background,
            mockapi=server,
            session_deps=deps,
            agent_defaults=make_agent,
        )
        log.info("daemon_stopping")
