"""The daemon's configuration: ``Config`` from ``config/streamvisor.toml`` plus the environment.

``Config.load()`` reads, in increasing precedence:

1. the built-in defaults (the same values ``config/streamvisor.toml`` documents);
2. the TOML file: the *path* argument, else ``$STREAMVISOR_CONFIG``, else
   ``config/streamvisor.toml`` relative to the working directory (skipped silently only when it is
   this default and does not exist);
3. the official SDK's variables ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``OPENAI_ORG_ID`` and
   ``OPENAI_PROJECT_ID`` (an empty value counts as unset);
4. ``STREAMVISOR_<SECTION>_<KEY>`` for any key, e.g. ``STREAMVISOR_BACKGROUND_POLL_INTERVAL=5``.
   Values are parsed by the key's type: numbers, ``true``/``false``/``1``/``0``/``yes``/``no``,
   sizes such as ``64MiB``, and lists as a JSON array or ``os.pathsep``-separated.

Every bad value raises ``ConfigError`` (a ``ValueError``) naming the key, the value, where it came
from and what is expected; unknown sections, keys and ``STREAMVISOR_*`` variables are errors too
(typo protection). The API key comes from the environment only -- never from a file that could be
committed -- and never appears in ``repr(config)`` or in an error message.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import attrs

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "TOKEN_PATTERN",
    "AgentSection",
    "BackgroundSection",
    "BusSection",
    "ClusterSection",
    "Config",
    "ConfigError",
    "EventLogSection",
    "FilesSection",
    "LogSection",
    "MockAPISection",
    "OpenAISection",
    "RuntimeSection",
    "SessionsSection",
    "SupervisorSection",
    "is_loopback",
    "is_token",
]

#: Where ``Config.load()`` looks when neither an argument nor ``$STREAMVISOR_CONFIG`` names a file.
DEFAULT_CONFIG_PATH: Final = Path("config") / "streamvisor.toml"
_ENV_PATH: Final = "STREAMVISOR_CONFIG"
_ENV_PREFIX: Final = "STREAMVISOR_"
#: Values never shown (in a repr or an error); the first may not come from a file either.
_SECRET_KEYS: Final = frozenset(
    {"openai.api_key", "gateway.token", "cluster.postgres_dsn", "cluster.nats_url"}
)
_ENV_ONLY_KEYS: Final = frozenset({"openai.api_key"})
#: The official SDK's variable names → our keys.
_SDK_ENV: Final = {
    "OPENAI_API_KEY": ("openai", "api_key"),
    "OPENAI_BASE_URL": ("openai", "base_url"),
    "OPENAI_ORG_ID": ("openai", "organization"),
    "OPENAI_PROJECT_ID": ("openai", "project"),
}

_KIB: Final = 1024
_MIB: Final = 1024 * _KIB
_MB: Final = 1000 * 1000


class ConfigError(ValueError):
    """A configuration value is wrong: says which key, which value, from where, expecting what.

    ``key`` is dotted (``"background.poll_interval"``) or None for a file-level problem;
    ``source`` is e.g. ``"config/streamvisor.toml [background] poll_interval"``,
    ``"environment STREAMVISOR_BUS_OVERFLOW"``, ``"default"`` or ``"argument"``. Secret values
    are shown as ``'<redacted>'``.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: Any = None,
        source: str = "argument",
        expected: str | None = None,
    ) -> None:
        self.key = key
        #: The offending value (``'<redacted>'`` for a secret, so no traceback can show it).
        self.value = "<redacted>" if key in _SECRET_KEYS else value
        self.source = source
        self.expected = expected
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        if self.key is None:
            return f"{self.source}: {self.detail}"
        shown = "'<redacted>'" if self.key in _SECRET_KEYS else repr(self.value)
        text = f"{self.source}: {self.key} = {shown}: {self.detail}"
        if self.expected:
            text += f" (expected {self.expected})"
        return text

    def with_source(self, source: str) -> ConfigError:
        """The same error, attributed to *source*."""
        return ConfigError(
            self.detail, key=self.key, value=self.value, source=source, expected=self.expected
        )


# ------------------------------------------------------------------------- field helpers


def _section_of(instance: object) -> str:
    return getattr(type(instance), "SECTION", type(instance).__name__)


def _checked(check: Callable[[Any], bool], expected: str) -> Callable[[Any, Any, Any], None]:
    def validate(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not check(value):
            raise ConfigError(
                "invalid value",
                key=f"{_section_of(instance)}.{attribute.name}",
                value=value,
                expected=expected,
            )

    return validate


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (
        isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) != float("inf")
    )


def _setting(
    default: Any, kind: str, check: Callable[[Any], bool], expected: str, **kw: Any
) -> Any:
    return attrs.field(
        default=default,
        validator=_checked(check, expected),
        metadata={"kind": kind, "expected": expected},
        **kw,
    )


def _int(default: int, *, low: int, high: int | None = None) -> Any:
    expected = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    return _setting(
        default,
        "int",
        lambda v: _is_int(v) and v >= low and (high is None or v <= high),
        expected,
    )


def _float(default: float, *, low: float, strict: bool = True, high: float | None = None) -> Any:
    expected = f"a number {'>' if strict else '>='} {low:g}" + (
        f" and <= {high:g}" if high is not None else ""
    )
    return _setting(
        default,
        "float",
        lambda v: _is_num(v) and (v > low if strict else v >= low) and (high is None or v <= high),
        expected + " (seconds)",
    )


def _size(default: int, *, high: int | None = None) -> Any:
    expected = "a size in bytes > 0 (an integer, or a string such as '64MiB' or '20MB')"
    if high is not None:
        expected += f", at most {high}"
    return _setting(
        default, "size", lambda v: _is_int(v) and v > 0 and (high is None or v <= high), expected
    )


def _bool(default: bool) -> Any:
    return _setting(default, "bool", lambda v: isinstance(v, bool), "true or false")


def _choice(default: str, *choices: str) -> Any:
    return _setting(
        default, "choice", lambda v: v in choices, "one of " + ", ".join(map(repr, choices))
    )


def _text(default: str | None, *, optional: bool = False, **kw: Any) -> Any:
    if optional:
        return _setting(
            default,
            "optional_str",
            lambda v: v is None or (isinstance(v, str) and v != ""),
            "a non-empty string, or unset",
            **kw,
        )
    return _setting(
        default, "str", lambda v: isinstance(v, str) and v != "", "a non-empty string", **kw
    )


def _cross_check(section: object, key: str, ok: bool, detail: str) -> None:
    if not ok:
        raise ConfigError(detail, key=f"{_section_of(section)}.{key}", value=getattr(section, key))


_URL: Final = re.compile(r"https?://[^\s/?#]+[^\s?#]*")


def _url(default: str) -> Any:
    return _setting(
        default,
        "str",
        lambda v: isinstance(v, str) and _URL.fullmatch(v) is not None,
        "an http:// or https:// URL, e.g. https://api.openai.com/v1",
        converter=lambda v: v.rstrip("/") if isinstance(v, str) else v,
    )


def _secret_repr(value: str | None) -> str:
    return "None" if value is None else "'<redacted>'"


# ------------------------------------------------------------------------------ sections


@attrs.frozen
class OpenAISection:
    """``[openai]``: where requests go and how the shared HTTP client behaves."""

    SECTION: ClassVar[str] = "openai"

    #: From ``OPENAI_API_KEY`` only (never from a file); None → use the embedded server.
    api_key: str | None = _text(None, optional=True, repr=_secret_repr)
    base_url: str = _url("https://api.openai.com/v1")
    organization: str | None = _text(None, optional=True)
    project: str | None = _text(None, optional=True)
    connect_timeout: float = _float(5.0, low=0)
    #: Idle time between bytes of a stream; keep it above the server's ~30 s keepalive gaps.
    read_timeout: float = _float(120.0, low=0)
    max_connections: int = _int(1000, low=1)
    max_keepalive_connections: int = _int(100, low=0)
    max_retries: int = _int(2, low=0)

    def __attrs_post_init__(self) -> None:
        _cross_check(
            self,
            "max_keepalive_connections",
            self.max_keepalive_connections <= self.max_connections,
            f"must not exceed openai.max_connections ({self.max_connections})",
        )

    @property
    def use_embedded_server(self) -> bool:
        """True when no API key is set: the daemon starts and uses the embedded server."""
        return self.api_key is None


@attrs.frozen
class MockAPISection:
    """``[mockapi]``: the embedded OpenAI-compatible server (used when no API key is set)."""

    SECTION: ClassVar[str] = "mockapi"

    host: str = _text("127.0.0.1")
    port: int = _int(0, low=0, high=65535)
    token_delay: float = _float(0.02, low=0, strict=False)
    keepalive_interval: float = _float(30.0, low=0)


@attrs.frozen
class BusSection:
    """``[bus]``: the event bus's per-subscriber buffers."""

    SECTION: ClassVar[str] = "bus"

    subscriber_buffer: int = _int(1024, low=1)
    overflow: str = _choice("drop_oldest", "drop_oldest", "disconnect")


@attrs.frozen
class SessionsSection:
    """``[sessions]``: streaming sessions."""

    SECTION: ClassVar[str] = "sessions"

    durable_responses: bool = _bool(True)
    mailbox_size: int = _int(256, low=1)
    stop_timeout: float = _float(5.0, low=0)
    #: Finished streams per session whose outcome keeps its whole response for `wait`.
    results_kept: int = _int(16, low=0)


@attrs.frozen
class BackgroundSection:
    """``[background]``: the background poller and its durable registry."""

    SECTION: ClassVar[str] = "background"

    registry_path: str = _text("var/streamvisor-registry.sqlite3")
    poll_interval: float = _float(2.0, low=0)
    max_poll_interval: float = _float(30.0, low=0)
    error_backoff_initial: float = _float(1.0, low=0)
    error_backoff_max: float = _float(60.0, low=0)
    terminal_ttl: float = _float(3600.0, low=0, strict=False)
    cleanup_interval: float = _float(300.0, low=0)

    def __attrs_post_init__(self) -> None:
        _cross_check(
            self,
            "max_poll_interval",
            self.max_poll_interval >= self.poll_interval,
            f"must be >= background.poll_interval ({self.poll_interval:g})",
        )
        _cross_check(
            self,
            "error_backoff_max",
            self.error_backoff_max >= self.error_backoff_initial,
            f"must be >= background.error_backoff_initial ({self.error_backoff_initial:g})",
        )


def _roots(v: Any) -> bool:
    return isinstance(v, tuple) and len(v) > 0 and all(isinstance(p, str) and p for p in v)


@attrs.frozen
class FilesSection:
    """``[files]``: the file actor's roots, limits and upload strategy."""

    SECTION: ClassVar[str] = "files"

    roots: tuple[str, ...] = _setting(
        (".",),
        "paths",
        _roots,
        "a non-empty list of directory paths",
        converter=lambda v: tuple(v) if isinstance(v, list) else v,
    )
    upload_threshold: int = _size(64 * _MIB)
    part_size: int = _size(64 * _MIB, high=64 * _MIB)
    upload_parallelism: int = _int(4, low=1)
    max_file_bytes: int = _size(512 * _MB)
    max_image_bytes: int = _size(20 * _MB)
    dedupe: bool = _bool(True)


@attrs.frozen
class AgentSection:
    """``[agent]``: tool-calling agents."""

    SECTION: ClassVar[str] = "agent"

    tool_timeout: float = _float(30.0, low=0)
    max_turns: int = _int(8, low=1)


def _hosts(v: Any) -> bool:
    return isinstance(v, tuple) and all(isinstance(h, str) and h for h in v)


#: A chosen gateway token: long enough to guess at no better than chance, and URL-safe (the
#: page's URL carries it).
TOKEN_PATTERN: Final = r"[A-Za-z0-9._~-]{16,512}"
_TOKEN: Final = re.compile(TOKEN_PATTERN)


def is_token(v: object) -> bool:
    """True for a usable gateway token: `TOKEN_PATTERN`, in full."""
    return isinstance(v, str) and _TOKEN.fullmatch(v) is not None


def _token(v: Any) -> bool:
    return v is None or is_token(v)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and any loopback address (``127.0.0.0/8``, ``::1``, bracketed)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@attrs.frozen
class GatewaySection:
    """``[gateway]``: the daemon's HTTP + SSE + WebSocket front door and live page."""

    SECTION: ClassVar[str] = "gateway"

    enabled: bool = _bool(True)
    host: str = _text("127.0.0.1")
    port: int = _int(8080, low=0, high=65535)
    keepalive: float = _float(15.0, low=0)
    max_upload_bytes: int = _size(64 * _MIB)
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "paths",
        _hosts,
        "a list of host names",
        converter=lambda v: tuple(v) if isinstance(v, list) else v,
    )
    #: What every request must carry (``Authorization: Bearer``); None: a random one per start.
    token: str | None = _setting(
        None,
        "optional_str",
        _token,
        "16-512 URL-safe characters (A-Z a-z 0-9 - _ . ~), or unset to generate one",
        repr=_secret_repr,
    )
    #: Where the token is written (mode 0600) while the gateway runs.
    token_file: str = _text("var/gateway-token")
    #: Streamed Responses on ``/v1`` are created in background mode upstream and resumed after
    #: a drop (the client never sees it); false: relayed as the client asked.
    v1_durable: bool = _bool(True)
    #: Seconds an unnamed ``/v1`` session (one per client connection) may stay idle before the
    #: gateway stops its worker.
    v1_session_idle: float = _float(300.0, low=0)

    def __attrs_post_init__(self) -> None:
        _cross_check(
            self,
            "token",
            not self.enabled or self.token is not None or is_loopback(self.host),
            f"must be set when gateway.host ({self.host!r}) is not a loopback address",
        )


@attrs.frozen
class EventLogSection:
    """``[eventlog]``: the events the daemon keeps of the streams served on ``/v1`` (so a client
    can replay a response's stream after ``starting_after`` long after the API's own limit)."""

    SECTION: ClassVar[str] = "eventlog"

    #: The SQLite file (``:memory:``: kept only while the daemon runs).
    path: str = _text("var/streamvisor-events.sqlite3")
    #: Seconds a response's events are kept after its last one.
    retention: float = _float(86400.0, low=0)
    #: Events kept per response; a longer stream is replayed from the API beyond them.
    max_events: int = _int(100_000, low=1)
    #: Seconds between two writes of what was appended (a process crash loses at most these).
    flush_interval: float = _float(0.05, low=0)


@attrs.frozen
class LogSection:
    """``[log]``: structlog output."""

    SECTION: ClassVar[str] = "log"

    format: str = _choice("auto", "auto", "json", "pretty")
    level: str = _choice("info", "debug", "info", "warning", "error", "critical")


@attrs.frozen
class RuntimeSection:
    """``[runtime]``: how the daemon's process runs."""

    SECTION: ClassVar[str] = "runtime"

    #: The garbage collector's young-generation threshold while the daemon runs (restored when
    #: it stops); 0 leaves Python's setting alone.
    gc_threshold: int = _int(10_000, low=0)


_NODE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _node_id(v: Any) -> bool:
    return v is None or (isinstance(v, str) and _NODE_ID.fullmatch(v) is not None)


def _engine_url(*schemes: str) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        return v is None or (
            isinstance(v, str) and any(v.startswith(f"{scheme}://") for scheme in schemes)
        )

    return check


@attrs.frozen
class ClusterSection:
    """``[cluster]``: several daemons as one system, on PostgreSQL and NATS JetStream.

    Off unless both ``postgres_dsn`` and ``nats_url`` are set (README: "Running several
    daemons"). Both may hold credentials: neither is ever shown in a repr, an error or a log.
    """

    SECTION: ClassVar[str] = "cluster"

    #: The system of record (``postgresql://user:password@host:port/db``); unset: one node.
    postgres_dsn: str | None = _setting(
        None,
        "optional_str",
        _engine_url("postgresql", "postgres"),
        "a postgresql:// URL, or unset",
        repr=_secret_repr,
    )
    #: The event channels across nodes and commands to owners (``nats://host:4222``).
    nats_url: str | None = _setting(
        None,
        "optional_str",
        _engine_url("nats", "tls"),
        "a nats:// or tls:// URL, or unset",
        repr=_secret_repr,
    )
    #: This node's name in the cluster: 1-64 of A-Z a-z 0-9 _ -. Unset: ``<host>-<pid>``, a new
    #: node at every start (what a node of that name owned is taken over by the survivors).
    node_id: str | None = _setting(
        None, "optional_str", _node_id, "1-64 letters, digits, '_' or '-', or unset"
    )
    #: Seconds a node's lease lasts without renewal (measured on the database's clock): a node
    #: that dies is taken over within about two of these; renewed every third of it.
    lease_ttl: float = _float(10.0, low=0)
    #: Under load, a node sends its events to JetStream in at most one batch per this many
    #: seconds (0-1; 0: a batch as soon as the one before it is acked). Larger batches cost
    #: less CPU per event on every node; each event may wait up to this long before it leaves.
    publish_interval: float = _float(0.0075, low=0, strict=False, high=1)

    def __attrs_post_init__(self) -> None:
        _cross_check(
            self,
            "nats_url" if self.postgres_dsn is not None else "postgres_dsn",
            (self.postgres_dsn is None) == (self.nats_url is None),
            "cluster.postgres_dsn and cluster.nats_url go together: set both for a cluster, "
            "neither for one node",
        )

    @property
    def enabled(self) -> bool:
        """True when both engines are configured: the daemon runs as one node of a cluster."""
        return self.postgres_dsn is not None


#: The dynamic supervisors whose children get a restart budget of their own (``[supervisor]``).
_LEVELS: Final = ("sessions", "agents", "pollers")


@attrs.frozen
class SupervisorSection:
    """``[supervisor]``: how much failure each level of the tree tolerates (OTP's MaxR/MaxT).

    ``intensity``/``period`` are the root's: more restarts of its infrastructure (files,
    background, the sessions/agents supervisors) than that stops the daemon. Each dynamic level
    (sessions, agents, the background pollers) has its own supervisor intensity/period and a
    per-child budget (``<level>_child_intensity``/``_period``): a child over its budget is given
    up alone. A child budget must fit inside its supervisor's (child intensity <= intensity,
    child period >= period), so one child alone can never stop its siblings.
    """

    SECTION: ClassVar[str] = "supervisor"

    intensity: int = _int(3, low=0)
    period: float = _float(5.0, low=0)
    sessions_intensity: int = _int(30, low=0)
    sessions_period: float = _float(5.0, low=0)
    sessions_child_intensity: int = _int(3, low=0)
    sessions_child_period: float = _float(5.0, low=0)
    agents_intensity: int = _int(30, low=0)
    agents_period: float = _float(5.0, low=0)
    agents_child_intensity: int = _int(3, low=0)
    agents_child_period: float = _float(5.0, low=0)
    pollers_intensity: int = _int(30, low=0)
    pollers_period: float = _float(60.0, low=0)
    pollers_child_intensity: int = _int(3, low=0)
    pollers_child_period: float = _float(60.0, low=0)

    def __attrs_post_init__(self) -> None:
        for level in _LEVELS:
            intensity, period = self.level(level)
            child_intensity, child_period = self.child_budget(level)
            _cross_check(
                self,
                f"{level}_child_intensity",
                child_intensity <= intensity,
                f"must be <= supervisor.{level}_intensity ({intensity}): a child's budget must "
                "fit inside its supervisor's, or one child alone could stop its siblings",
            )
            _cross_check(
                self,
                f"{level}_child_period",
                child_period >= period,
                f"must be >= supervisor.{level}_period ({period:g}): a child's budget must "
                "fit inside its supervisor's, or one child alone could stop its siblings",
            )

    def level(self, level: str) -> tuple[int, float]:
        """``(intensity, period)`` of the ``sessions``, ``agents`` or ``pollers`` supervisor."""
        return getattr(self, f"{level}_intensity"), getattr(self, f"{level}_period")

    def child_budget(self, level: str) -> tuple[int, float]:
        """``(intensity, period)`` of each child's own restart budget at ``level``."""
        return getattr(self, f"{level}_child_intensity"), getattr(self, f"{level}_child_period")


_SECTIONS: Final[dict[str, type[Any]]] = {
    "openai": OpenAISection,
    "mockapi": MockAPISection,
    "bus": BusSection,
    "sessions": SessionsSection,
    "background": BackgroundSection,
    "files": FilesSection,
    "agent": AgentSection,
    "gateway": GatewaySection,
    "eventlog": EventLogSection,
    "log": LogSection,
    "supervisor": SupervisorSection,
    "runtime": RuntimeSection,
    "cluster": ClusterSection,
}


def _instance_of(cls: type[Any]) -> Callable[[Any, Any, Any], None]:
    return attrs.validators.instance_of(cls)


@attrs.frozen
class Config:
    """The whole configuration; build it with ``Config.load()`` (or sections by hand in tests)."""

    openai: OpenAISection = attrs.field(
        factory=OpenAISection, validator=_instance_of(OpenAISection)
    )
    mockapi: MockAPISection = attrs.field(
        factory=MockAPISection, validator=_instance_of(MockAPISection)
    )
    bus: BusSection = attrs.field(factory=BusSection, validator=_instance_of(BusSection))
    sessions: SessionsSection = attrs.field(
        factory=SessionsSection, validator=_instance_of(SessionsSection)
    )
    background: BackgroundSection = attrs.field(
        factory=BackgroundSection, validator=_instance_of(BackgroundSection)
    )
    files: FilesSection = attrs.field(factory=FilesSection, validator=_instance_of(FilesSection))
    agent: AgentSection = attrs.field(factory=AgentSection, validator=_instance_of(AgentSection))
    gateway: GatewaySection = attrs.field(
        factory=GatewaySection, validator=_instance_of(GatewaySection)
    )
    eventlog: EventLogSection = attrs.field(
        factory=EventLogSection, validator=_instance_of(EventLogSection)
    )
    log: LogSection = attrs.field(factory=LogSection, validator=_instance_of(LogSection))
    supervisor: SupervisorSection = attrs.field(
        factory=SupervisorSection, validator=_instance_of(SupervisorSection)
    )
    runtime: RuntimeSection = attrs.field(
        factory=RuntimeSection, validator=_instance_of(RuntimeSection)
    )
    cluster: ClusterSection = attrs.field(
        factory=ClusterSection, validator=_instance_of(ClusterSection)
    )

    @property
    def use_embedded_server(self) -> bool:
        """True when no API key is set: the daemon serves and uses ``streamvisor.mockapi``."""
        return self.openai.use_embedded_server

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Read the TOML file and the environment (see the module docstring for precedence).

        *environ* defaults to ``os.environ``. Raises ``ConfigError`` for an unreadable or
        malformed file, a file named explicitly that does not exist, an unknown section, key or
        ``STREAMVISOR_*`` variable, an API key in the file, and any invalid value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
        sources: dict[str, str] = {}

        file = _choose_file(path, env)
        if file is not None:
            _read_file(file, values, sources)
        _read_environment(env, values, sources)

        sections: dict[str, Any] = {}
        for name, section_cls in _SECTIONS.items():
            try:
                sections[name] = section_cls(**values[name])
            except ConfigError as exc:
                raise exc.with_source(sources.get(exc.key or "", "default")) from None
        return cls(**sections)


# -------------------------------------------------------------------------------- loading


def _choose_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen, origin = Path(path), "argument path"
    elif env.get(_ENV_PATH):
        chosen, origin = Path(env[_ENV_PATH]), f"environment {_ENV_PATH}"
    else:
        return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None
    if not chosen.is_file():
        raise ConfigError(f"configuration file {str(chosen)!r} does not exist", source=origin)
    return chosen


def _read_file(file: Path, values: dict[str, dict[str, Any]], sources: dict[str, str]) -> None:
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(file)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", source=str(file)) from None
    for section, table in document.items():
        if section not in _SECTIONS:
            raise ConfigError(
                f"unknown section [{section}]{_suggest(section, _SECTIONS)}; "
                f"known sections: {', '.join(_SECTIONS)}",
                source=str(file),
            )
        if not isinstance(table, dict):
            raise ConfigError(f"[{section}] must be a table", source=str(file))
        fields = attrs.fields_dict(_SECTIONS[section])
        for key, value in table.items():
            source = f"{file} [{section}] {key}"
            dotted = f"{section}.{key}"
            if key not in fields:
                raise ConfigError(
                    f"unknown key{_suggest(key, fields)}",
                    key=dotted,
                    value=value,
                    source=source,
                    expected="one of " + ", ".join(fields),
                )
            if dotted in _ENV_ONLY_KEYS:
                raise ConfigError(
                    "an API key must not be stored in a configuration file",
                    key=dotted,
                    source=source,
                    expected="OPENAI_API_KEY in the environment",
                )
            values[section][key] = _coerce(fields[key], dotted, value, source, from_env=False)
            sources[dotted] = source


def _read_environment(
    env: Mapping[str, str], values: dict[str, dict[str, Any]], sources: dict[str, str]
) -> None:
    for var, (section, key) in _SDK_ENV.items():
        raw = env.get(var)
        if raw:  # empty means unset, as in the SDK
            _set_from_env(var, section, key, raw, values, sources)
    for var in sorted(env):
        if not var.startswith(_ENV_PREFIX) or var == _ENV_PATH:
            continue
        section, _, key = var[len(_ENV_PREFIX) :].lower().partition("_")
        if section not in _SECTIONS or key not in attrs.fields_dict(_SECTIONS[section]):
            known = [
                f"{_ENV_PREFIX}{s.upper()}_{k.upper()}"
                for s, c in _SECTIONS.items()
                for k in attrs.fields_dict(c)
            ]
            raise ConfigError(
                f"unknown variable {var}{_suggest(var, known)}",
                source=f"environment {var}",
            )
        _set_from_env(var, section, key, env[var], values, sources)


def _set_from_env(
    var: str,
    section: str,
    key: str,
    raw: str,
    values: dict[str, dict[str, Any]],
    sources: dict[str, str],
) -> None:
    dotted = f"{section}.{key}"
    source = f"environment {var}"
    field = attrs.fields_dict(_SECTIONS[section])[key]
    values[section][key] = _coerce(field, dotted, raw, source, from_env=True)
    sources[dotted] = source


_SIZE: Final = re.compile(r"\s*(\d+)\s*([KMG]i?B|B)?\s*", re.IGNORECASE)
_UNITS: Final = {
    "b": 1,
    "kb": 1000,
    "mb": _MB,
    "gb": 1000 * _MB,
    "kib": _KIB,
    "mib": _MIB,
    "gib": 1024 * _MIB,
}
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})


def _coerce(
    field: attrs.Attribute[Any], dotted: str, value: Any, source: str, *, from_env: bool
) -> Any:
    """Turn a raw file or environment value into the field's type; validators check the rest."""
    kind = field.metadata["kind"]

    def fail() -> ConfigError:
        return ConfigError(
            "invalid value",
            key=dotted,
            value=value,
            source=source,
            expected=field.metadata["expected"],
        )

    if kind == "size" and isinstance(value, str):
        match = _SIZE.fullmatch(value)
        if match is None:
            raise fail()
        return int(match[1]) * _UNITS[(match[2] or "b").lower()]
    if kind == "choice" and isinstance(value, str):
        return value.strip().lower()
    if not from_env:
        if kind == "float" and _is_int(value):
            return float(value)
        return value
    text = value.strip()
    try:
        if kind in {"int", "size"}:
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise fail() from None
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise fail()
    if kind == "paths":
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise fail() from None
            return tuple(items) if isinstance(items, list) else items
        return tuple(part for part in text.split(os.pathsep) if part)
    if kind == "optional_str":
        return text or None
    return value


def _suggest(word: str, candidates: Any) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
