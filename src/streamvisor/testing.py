"""Helpers for testing code built on streamvisor (as ``trio.testing`` is for trio).

The runtime (``streamvisor.supervisor``):

* ``Trace`` — an append-only event log that actors write and tests await (no polling);
* ``Recorder`` — an actor that records every call, cast and info it receives into a ``Trace``;
* ``Crashable`` — a child actor that crashes, exits or stalls on command, and records its
  ``init``/``terminate`` into a ``Trace`` (so restarts are observable across instances);
* ``quiesce()`` — wait until every task is blocked (pair it with ``autojump_clock``).

The daemon, over real loopback HTTP against the embedded server (no API key, no network)::

    from streamvisor.testing import EventRecorder, running_daemon

    async def test_my_feature(tmp_path):
        async with running_daemon(tmp_path) as daemon:
            async with EventRecorder.open(daemon, "session.s1") as recorder:
                session = await daemon.open_session("s1")
                await session.respond("gpt-4o", "Hello")
                await recorder.wait_terminal()
            assert recorder.text() == "You said: Hello"

* ``daemon_config(root, **overrides)`` — a `Config` for tests, built by hand (no file, no
  environment): an in-memory registry, ``root`` as the only readable root, fast polling, the
  embedded server; ``<section>_<key>=value`` overrides any setting;
* ``running_daemon(root, **overrides)`` — ``open_daemon`` on that config and a fast embedded
  server (no token pacing, a 20 ms poll hint);
* ``running_mockapi(**options)`` — the embedded server alone, with the same fast defaults;
* ``daemon_fixture(...)`` / ``mockapi_fixture(...)`` — the two as pytest(-trio) fixtures
  (``daemon = daemon_fixture(bus_overflow="disconnect")`` in a conftest);
* ``EventRecorder`` — subscribes to a pattern and collects what is published, with awaitable
  conditions (``wait_for``, ``wait_terminal``, ``wait_status``) and views (``events``,
  ``statuses``, ``missed``, ``text``/``texts`` joining the text deltas);
* ``gateway_thread(root, **overrides)`` — the daemon, its embedded server and its gateway in a
  trio loop on a thread of their own, for synchronous and asyncio code (an OpenAI SDK pointed
  at ``.v1_url`` with ``api_key=.token``); ``.run(async_fn, *args)`` runs in the daemon's loop.

All waits take a ``timeout`` and raise ``trio.TooSlowError`` rather than hang.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import attrs
import httpx
import trio
import trio.testing

from streamvisor.actors import BackgroundStatus
from streamvisor.config import Config, ConfigError
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import (
    Actor,
    Caller,
    ExitReason,
    Missed,
    Overflow,
    StopActor,
    SubscriberOverflow,
    Subscription,
)

__all__ = [
    "FAST_MOCKAPI",
    "RECORDER_BUFFER",
    "Crash",
    "Crashable",
    "EventRecorder",
    "ExitWith",
    "GatewayThread",
    "Recorder",
    "Stall",
    "Trace",
    "daemon_config",
    "daemon_fixture",
    "gateway_thread",
    "mockapi_fixture",
    "quiesce",
    "running_daemon",
    "running_mockapi",
]

Event = tuple[Any, ...]


class Trace:
    """Events recorded by actors under test, in order, with awaitable conditions."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed: trio.Event | None = None

    def record(self, *event: Any) -> None:
        """Append ``event`` (a tuple; by convention ``(kind, actor_tag, ...)``)."""
        self.events.append(event)
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def of(self, kind: str, tag: object = None) -> list[Event]:
        """The events of one kind (and actor tag, if given), in order."""
        return [e for e in self.events if e[0] == kind and (tag is None or e[1] == tag)]

    def count(self, kind: str, tag: object = None) -> int:
        return len(self.of(kind, tag))

    async def wait_for(
        self,
        predicate: Callable[[Sequence[Event]], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors the runtime's call(timeout=)
    ) -> None:
        """Wait until ``predicate(events)`` holds. Raises ``trio.TooSlowError`` after
        ``timeout`` seconds."""
        with trio.fail_after(timeout):
            while not predicate(self.events):
                if self._changed is None:
                    self._changed = trio.Event()
                await self._changed.wait()

    async def wait_count(
        self,
        kind: str,
        tag: object,
        n: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until at least ``n`` events of ``kind`` for ``tag`` were recorded."""
        await self.wait_for(lambda _: self.count(kind, tag) >= n, timeout)


async def quiesce() -> None:
    """Return once every other task is blocked (``trio.testing.wait_all_tasks_blocked``)."""
    await trio.testing.wait_all_tasks_blocked()


class Recorder(Actor):
    """Records ``("call"|"cast"|"info", tag, message)`` for everything it receives; calls are
    answered with ``reply`` (default None)."""

    def __init__(self, trace: Trace, tag: str = "recorder", reply: object = None) -> None:
        self.trace = trace
        self.tag = tag
        self.reply = reply

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        self.trace.record("call", self.tag, request)
        return self.reply

    async def handle_cast(self, message: Any) -> None:
        self.trace.record("cast", self.tag, message)

    async def handle_info(self, message: Any) -> None:
        self.trace.record("info", self.tag, message)


@attrs.frozen
class Crash:
    """Command: raise ``error`` from the callback (cast or call)."""

    error: Exception = attrs.field(factory=lambda: RuntimeError("crash on command"))


@attrs.frozen
class ExitWith:
    """Command: stop with ``reason`` (``StopActor``); a call gets ``"ok"`` first."""

    reason: ExitReason = attrs.field(factory=ExitReason.normal)


@attrs.frozen
class Stall:
    """Command: sleep ``seconds`` inside the callback (a call then gets ``"stalled"``)."""

    seconds: float = math.inf


class Crashable(Actor):
    """A child that does what it is told. Records ``("init", tag)``, ``("terminate", tag,
    reason)``; answers the call ``"ping"`` with ``"pong"``; obeys ``Crash``, ``ExitWith`` and
    ``Stall`` sent by call or cast. ``init_error`` makes ``init`` raise it (a failed start);
    ``stall_terminate`` makes ``terminate`` sleep that long (to test shutdown timeouts)."""

    def __init__(
        self,
        tag: str,
        trace: Trace,
        *,
        init_error: Exception | None = None,
        stall_terminate: float = 0.0,
    ) -> None:
        self.tag = tag
        self.trace = trace
        self.init_error = init_error
        self.stall_terminate = stall_terminate

    async def init(self) -> None:
        self.trace.record("init", self.tag)
        if self.init_error is not None:
            raise self.init_error

    async def _obey(self, command: Any) -> Any:
        if isinstance(command, Crash):
            raise command.error
        if isinstance(command, ExitWith):
            raise StopActor(command.reason, reply="ok")
        if isinstance(command, Stall):
            await trio.sleep(command.seconds)
            return "stalled"
        if command == "ping":
            return "pong"
        raise ValueError(f"unknown command {command!r}")

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        return await self._obey(request)

    async def handle_cast(self, message: Any) -> None:
        await self._obey(message)

    async def terminate(self, reason: ExitReason) -> None:
        self.trace.record("terminate", self.tag, reason)
        if self.stall_terminate:
            await trio.sleep(self.stall_terminate)


# ---------------------------------------------------------------------------------------------
# The daemon in tests: a fast embedded server, a hand-built config, an event recorder

#: What `running_mockapi` and `running_daemon` change in `MockAPIConfig`'s defaults: no pause
#: between streamed tokens, and a 20 ms ``openai-poll-after-ms`` hint.
FAST_MOCKAPI: Final[dict[str, Any]] = {"token_delay": 0.0, "poll_after_ms": 20}

#: The settings `daemon_config` changes from the built-in defaults (besides ``files_roots``).
_TEST_SETTINGS: Final[dict[str, Any]] = {
    "background_registry_path": ":memory:",
    "eventlog_path": ":memory:",
    "background_poll_interval": 0.02,
    "background_max_poll_interval": 0.2,
    "background_error_backoff_initial": 0.02,
    "background_error_backoff_max": 0.2,
    "mockapi_token_delay": 0.0,
    "log_format": "json",
}


def _setting_value(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return tuple(_setting_value(v) for v in value)
    return value


def daemon_config(root: str | os.PathLike[str], **overrides: Any) -> Config:
    """A `Config` for tests, built from sections by hand: no file, no environment is read.

    Compared with the built-in defaults: the background registry is ``:memory:``, polling and
    error backoff are 20 ms to 200 ms, ``root`` is the only readable root for files, the embedded
    server paces no tokens and logs are JSON. There is no API key, so `open_daemon` serves the
    embedded server; pass ``openai_api_key=...`` and ``openai_base_url=...`` to use another
    server (your own `running_mockapi`, say).

    ``overrides`` are ``<section>_<key>=value`` with typed values, e.g.
    ``background_registry_path=tmp_path / "registry.sqlite3"``, ``bus_overflow="disconnect"``,
    ``files_max_file_bytes=1024``; paths become strings and lists tuples.

    Raises:
        ConfigError: an unknown setting, or a value its section rejects.
    """
    defaults = Config()
    sections: dict[str, dict[str, Any]] = {name: {} for name in attrs.fields_dict(Config)}
    settings = {**_TEST_SETTINGS, "files_roots": (os.fspath(root),), **overrides}
    for name, value in settings.items():
        section, _, key = name.partition("_")
        if section not in sections or key not in attrs.fields_dict(
            type(getattr(defaults, section))
        ):
            known = ", ".join(sorted(sections))
            raise ConfigError(
                f"unknown setting {name!r}: expected <section>_<key> with a section among "
                f"{known} and one of its keys",
                key=None,
                source="daemon_config",
            )
        sections[section][key] = _setting_value(value)
    built = {
        name: type(getattr(defaults, name))(**values) for name, values in sections.items() if values
    }
    return attrs.evolve(defaults, **built)


@asynccontextmanager
async def running_mockapi(**options: Any) -> AsyncIterator[MockServer]:
    """Serve the embedded OpenAI-compatible server on loopback for the block.

    ``options`` are `MockAPIConfig` fields over `FAST_MOCKAPI` (e.g. ``queue_delay=0.2``,
    ``api_key="test-key"``). Raises ``TypeError``/``ValueError`` for a bad option and
    ``OSError`` if the address cannot be bound.
    """
    async with serve(MockAPIConfig(**{**FAST_MOCKAPI, **options})) as server:
        yield server


@asynccontextmanager
async def running_daemon(
    root: str | os.PathLike[str],
    *,
    mockapi: MockAPIConfig | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **overrides: Any,
) -> AsyncIterator[Daemon]:
    """Run the whole daemon for the block, on `daemon_config` (``root`` and ``overrides``).

    With no API key among ``overrides`` the daemon serves its embedded server with ``mockapi``
    (default: `FAST_MOCKAPI`), reachable as ``daemon.mockapi`` for faults and request
    assertions. Raises what `daemon_config` and `open_daemon` raise.
    """
    config = daemon_config(root, **overrides)
    server = mockapi if mockapi is not None else MockAPIConfig(**FAST_MOCKAPI)
    async with open_daemon(config, transport=transport, mockapi=server) as daemon:
        yield daemon


def mockapi_fixture(**options: Any) -> Any:
    """A pytest(-trio) fixture serving `running_mockapi(**options)`, named by the attribute it
    is bound to: ``mockapi = mockapi_fixture(queue_delay=0.2)`` in a conftest."""
    import pytest  # test-only dependency: imported when a fixture is asked for

    async def fixture() -> AsyncIterator[MockServer]:
        async with running_mockapi(**options) as server:
            yield server

    return pytest.fixture(fixture)


def daemon_fixture(*, mockapi: MockAPIConfig | None = None, **overrides: Any) -> Any:
    """A pytest(-trio) fixture running `running_daemon(tmp_path, **overrides)` for each test:
    ``daemon = daemon_fixture(bus_subscriber_buffer=16)`` in a conftest."""
    import pytest

    async def fixture(tmp_path: os.PathLike[str]) -> AsyncIterator[Daemon]:
        async with running_daemon(tmp_path, mockapi=mockapi, **overrides) as daemon:
            yield daemon

    return pytest.fixture(fixture)


class _Subscribable(Protocol):
    def subscribe(
        self, pattern: str, *, buffer: int | None = ..., overflow: Overflow | None = ...
    ) -> Subscription[Any]: ...


#: `EventRecorder`'s buffer: large, so that a test which waits late still sees everything.
RECORDER_BUFFER: Final = 1 << 16

_TEXT_DELTA: Final = "response.output_text.delta"


class EventRecorder:
    """Everything published on a pattern, in order, with awaitable conditions.

    Open it with ``async with EventRecorder.open(daemon, "session.s1") as recorder`` (a `Daemon`
    or an `EventBus`) *before* starting the work whose events you want: like any subscription it
    sees only what is published after it is entered. It runs no task: items are taken from the
    subscription whenever you look (``items``, the views) or wait (``wait_for``...), so a
    recorder cannot fail behind your back. After the block it keeps (and shows) everything
    published while it was open. Its buffer holds `RECORDER_BUFFER` items; past that
    the oldest are dropped and a `Missed` notice is recorded in their place.
    """

    def __init__(self, subscription: Subscription[Any]) -> None:
        """Record from an entered ``subscription`` (`open` does this for you)."""
        self._subscription = subscription
        self._items: list[Any] = []
        self._ended: BaseException | None = None

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        source: _Subscribable,
        pattern: str,
        *,
        buffer: int = RECORDER_BUFFER,
        overflow: Overflow = Overflow.DROP_OLDEST,
    ) -> AsyncIterator[EventRecorder]:
        """Subscribe to ``pattern`` on ``source`` for the block. Raises ``InvalidPattern`` (a
        ``ValueError``) for a malformed pattern, ``BusClosed`` if the bus is closed."""
        async with source.subscribe(pattern, buffer=buffer, overflow=overflow) as subscription:
            recorder = cls(subscription)
            try:
                yield recorder
            finally:
                recorder._take()  # keep what was published while open, for after the block

    @property
    def pattern(self) -> str:
        return self._subscription.pattern

    def _take(self) -> None:
        if self._ended is not None:
            return
        while True:
            try:
                self._items.append(self._subscription.receive_nowait())
            except trio.WouldBlock:
                return
            except (trio.EndOfChannel, SubscriberOverflow, trio.ClosedResourceError) as end:
                self._ended = end
                return

    @property
    def items(self) -> list[Any]:
        """Everything recorded so far (events, statuses, `Missed` notices...), in order."""
        self._take()
        return list(self._items)

    def events(self, type: str | None = None, response_id: str | None = None) -> list[StreamEvent]:
        """The recorded `StreamEvent`s, of one ``type`` and/or response if given."""
        return [
            item
            for item in self.items
            if isinstance(item, StreamEvent)
            and (type is None or item.type == type)
            and (response_id is None or item.response_id == response_id)
        ]

    def statuses(self, response_id: str | None = None) -> list[BackgroundStatus]:
        """The recorded `BackgroundStatus` notifications (of one response if given)."""
        return [
            item
            for item in self.items
            if isinstance(item, BackgroundStatus)
            and (response_id is None or item.response_id == response_id)
        ]

    def missed(self) -> list[Missed]:
        """The `Missed` notices (the recorder fell a whole buffer behind)."""
        return [item for item in self.items if isinstance(item, Missed)]

    def texts(self) -> dict[str | None, str]:
        """The output text of each response (its ``response.output_text.delta`` deltas joined),
        keyed by response id in order of first appearance."""
        joined: dict[str | None, list[str]] = {}
        for event in self.events(_TEXT_DELTA):
            joined.setdefault(event.response_id, []).append(str(event.data.get("delta", "")))
        return {rid: "".join(parts) for rid, parts in joined.items()}

    def text(self, response_id: str | None = None) -> str:
        """The text deltas joined: of one response, or of everything recorded."""
        return "".join(
            str(event.data.get("delta", "")) for event in self.events(_TEXT_DELTA, response_id)
        )

    def sequence_numbers(self, response_id: str | None = None) -> list[int]:
        """The sequence numbers of the recorded events (of one response), in arrival order:
        ``list(range(n))`` for a stream seen whole, with no gap and no duplicate."""
        return [e.sequence_number for e in self.events(response_id=response_id)]

    async def wait_for(
        self,
        predicate: Callable[[Sequence[Any]], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - mirrors Trace.wait_for
    ) -> list[Any]:
        """Wait until ``predicate(items)`` holds (it is checked after every new item); return
        the items recorded by then.

        Raises:
            trio.TooSlowError: not within ``timeout`` seconds.
            trio.EndOfChannel: the bus closed (the daemon stopped) first.
            SubscriberOverflow: a ``Overflow.DISCONNECT`` recorder was disconnected first.
        """
        with trio.fail_after(timeout):
            while True:
                self._take()
                if predicate(self._items):
                    return list(self._items)
                if self._ended is not None:
                    raise self._ended
                try:
                    self._items.append(await self._subscription.receive())
                except (trio.EndOfChannel, SubscriberOverflow, trio.ClosedResourceError) as end:
                    self._ended = end

    async def wait_terminal(
        self,
        response_id: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> StreamEvent:
        """Wait for a terminal `StreamEvent` (completed, failed, incomplete, cancelled, error)
        of ``response_id`` (or of any response) and return it. Raises as `wait_for`."""

        def found(items: Sequence[Any]) -> bool:
            return any(_is_terminal_event(item, response_id) for item in items)

        items = await self.wait_for(found, timeout)
        event: StreamEvent = next(i for i in items if _is_terminal_event(i, response_id))
        return event

    async def wait_status(
        self,
        response_id: str,
        status: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> BackgroundStatus:
        """Wait for a `BackgroundStatus` of ``response_id`` with ``status`` (default: any
        terminal one) and return it. Raises as `wait_for`."""

        def matches(item: Any) -> bool:
            return (
                isinstance(item, BackgroundStatus)
                and item.response_id == response_id
                and (item.terminal if status is None else item.status == status)
            )

        items = await self.wait_for(lambda seen: any(map(matches, seen)), timeout)
        found: BackgroundStatus = next(item for item in items if matches(item))
        return found


def _is_terminal_event(item: Any, response_id: str | None) -> bool:
    return (
        isinstance(item, StreamEvent)
        and item.terminal
        and (response_id is None or item.response_id == response_id)
    )


# ---------------------------------------------------------------------------------------------
# The daemon on a thread of its own (for synchronous and asyncio callers)


class GatewayThread:
    """A daemon, its embedded server and its gateway, running in a trio loop on a thread of
    their own. Get one from `gateway_thread`.

    Attributes (set once started):
        daemon / gateway / mockapi: the running objects (touch them only through `run`).
        url: the gateway's ``http://127.0.0.1:PORT``; ``v1_url`` its OpenAI-compatible base URL.
        token: the gateway's token: the API key an OpenAI SDK presents.
        upstream_url: the embedded server's base URL (``.../v1``), for direct comparisons.
    """

    def __init__(self, config: Config, mockapi: MockAPIConfig, token: str | None) -> None:
        self._config, self._mockapi, self._token_wanted = config, mockapi, token
        self._trio_token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="streamvisor-daemon", daemon=True)
        self.error: BaseException | None = None
        self.daemon: Daemon
        self.gateway: Any
        self.mockapi: MockServer
        self.url = self.v1_url = self.token = self.upstream_url = ""

    def _main(self) -> None:
        try:
            trio.run(self._serve)
        except BaseException as exc:  # reported by start()/stop(), never swallowed
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from streamvisor.gateway import serve_gateway  # the gateway sits above this module

        async with (
            open_daemon(self._config, mockapi=self._mockapi, configure_logs=False) as daemon,
            serve_gateway(daemon, token=self._token_wanted) as gateway,
        ):
            assert daemon.mockapi is not None
            self.daemon, self.gateway, self.mockapi = daemon, gateway, daemon.mockapi
            self.url, self.token = gateway.url, gateway.token
            self.v1_url, self.upstream_url = f"{gateway.url}/v1", daemon.mockapi.url
            self._stop = trio.Event()
            self._trio_token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until the gateway answers. Raises ``RuntimeError`` (caused by what
        failed) if it does not start within ``timeout`` seconds."""
        self._thread.start()
        self._ready.wait(timeout)
        if self._trio_token is None:
            raise RuntimeError("the daemon did not start") from self.error

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the gateway and the daemon (in order) and join the thread."""
        if self._trio_token is not None and self._stop is not None and self._thread.is_alive():
            with contextlib.suppress(trio.RunFinishedError):
                trio.from_thread.run_sync(self._stop.set, trio_token=self._trio_token)
        self._thread.join(timeout)

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(*args)`` in the daemon's loop and return (or raise) its result."""
        if self._trio_token is None:
            raise RuntimeError("the daemon is not running")
        return trio.from_thread.run(fn, *args, trio_token=self._trio_token)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the daemon's loop (e.g. ``mockapi.inject``) and return its result."""
        if self._trio_token is None:
            raise RuntimeError("the daemon is not running")
        return trio.from_thread.run_sync(fn, *args, trio_token=self._trio_token)


@contextlib.contextmanager
def gateway_thread(
    root: str | os.PathLike[str],
    *,
    mockapi: MockAPIConfig | None = None,
    token: str | None = None,
    **overrides: Any,
) -> Iterator[GatewayThread]:
    """Run the daemon (on `daemon_config` of ``root`` and ``overrides``), its embedded server
    (``mockapi``, default `FAST_MOCKAPI`) and its gateway (``token``, default a random one) on a
    thread for the block::

        with gateway_thread(tmp_path) as running:
            client = openai.OpenAI(base_url=running.v1_url, api_key=running.token)

    Raises what `daemon_config` raises, and ``RuntimeError`` if the daemon does not start."""
    config = daemon_config(root, **overrides)
    running = GatewayThread(config, mockapi or MockAPIConfig(**FAST_MOCKAPI), token)
    running.start()
    try:
        yield running
    finally:
        running.stop()
