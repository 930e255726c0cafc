"""The adversarial suite's harness: one daemon per module, driven by Hypothesis, judged strictly.

**One daemon per module.** pytest-trio fixtures are per test and Hypothesis's ``@given`` runs
every example in a fresh ``trio.run``, so neither can keep one daemon up across many examples.
`RunningDaemon` runs the daemon, its embedded server, the gateway and an httpx client in a trio
loop on a thread of its own for the whole module; the (synchronous) tests hand it probes with
`RunningDaemon.run`. Hypothesis then works as usual (``@given`` on a plain function, with a
fixed example sequence: see `ADVERSARIAL`).

**The verdicts.** Every probe of bad input is judged by one of:

* `expect_refused` (the Python facade): a typed error from the allowed set (see
  `ALLOWED_FOR_MALFORMED` and `ALLOWED_FOR_UNKNOWN`), raised by streamvisor's own code;
* `expect_http_refusal` (a route): a 4xx with a JSON ``{"error": {"type", "message"}}`` body;
* `expect_ws_refusal` (a WebSocket command): ``{"kind": "error", "status": 4xx, "error": ...}``
  echoing the command's ``ref``, and the socket still answers a ``ping`` afterwards;

and, for every probe, `RunningDaemon.watch`: no actor crashed (no ``actor_crashed`` /
``child_restarted`` log event), the root's children are the same refs (no restart), every
registered actor that was there before still is with the same ref, and (for malformed input)
nothing reached the upstream API. After each test `RunningDaemon.assert_healthy`: ``/health`` is
200 with every child alive and a normal chat stream completes.
"""

from __future__ import annotations

import linecache
import os
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import httpx
import pytest
import structlog
import trio
from hypothesis import HealthCheck, Phase, settings

import streamvisor
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.gateway import Gateway, serve_gateway
from streamvisor.mockapi import MockAPIConfig
from streamvisor.testing import FAST_MOCKAPI, daemon_config
from tests.gateway import _ws_client as _ws

T = TypeVar("T")

#: Every generated-input test: a fixed example sequence per test (reproducible, so the list of
#: what fails is a checklist), no deadline (a probe is a real HTTP round trip), modest counts
#: (two cores are shared; ``STREAMVISOR_ADVERSARIAL_EXAMPLES`` raises them), and no shrinking:
#: the inputs are small descriptions already, and shrinking an input that crashes actors would
#: crash them again for every step.
ADVERSARIAL: Final = settings(
    max_examples=int(os.environ.get("STREAMVISOR_ADVERSARIAL_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Seconds one probe may take before "no answer" is its verdict.
PROBE_TIMEOUT: Final = 5.0

MODEL: Final = "gpt-4o"
HELLO: Final = [{"role": "user", "content": "Hello"}]


# ------------------------------------------------------------------------------- gateway auth
# THE one place the gateway's authentication is wired into this suite.

#: The gateway's bearer token in the suite; every request carries it (``gateway.auth_headers``).
TOKEN: Final = "adversarial-suite-token-0123456789abcdef"


# ------------------------------------------------------------------------------------- verdicts

#: What the facade may raise for malformed input: a ValueError (a bad value) or a TypeError (a
#: value of the wrong type) -- and, for a file *path*, the file-access errors (OSError: outside
#: the readable roots, missing, ...). Never a LookupError: a malformed id is not "unknown".
ALLOWED_FOR_MALFORMED: Final = (ValueError, TypeError)
ALLOWED_FOR_PATHS: Final = (ValueError, TypeError, OSError)
#: What the facade may raise for a well-formed id that names nothing.
ALLOWED_FOR_UNKNOWN: Final = (LookupError,)

_PACKAGE: Final = str(Path(streamvisor.__file__).resolve().parent)


def _raised_by_streamvisor(exc: BaseException) -> bool:
    """The exception's class is streamvisor's, or a ``raise <ItsClass>(...)`` statement of
    streamvisor's own code built it -- not the standard library or a dependency deep inside
    (``json.dumps``'s "Out of range float values are not JSON compliant", a RecursionError...),
    nor one of those re-raised by streamvisor."""
    if type(exc).__module__.split(".")[0] == "streamvisor":
        return True
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
    line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
    return filename.startswith(_PACKAGE) and line.startswith(f"raise {type(exc).__name__}(")


def expect_refused(
    exc: BaseException | None, allowed: tuple[type[BaseException], ...], what: str
) -> None:
    """Assert that ``exc`` (what the facade call raised, None if it returned) is one typed error
    of ``allowed``, raised on purpose by streamvisor."""
    if exc is None:
        raise AssertionError(f"{what}: accepted (no error raised)")
    if isinstance(exc, BaseExceptionGroup):
        raise AssertionError(f"{what}: an exception group, not one typed error: {exc!r}")
    if not isinstance(exc, allowed):
        names = ", ".join(t.__name__ for t in allowed)
        raise AssertionError(f"{what}: {type(exc).__name__} is not one of ({names}): {exc!r}")
    if not _raised_by_streamvisor(exc):
        raise AssertionError(
            f"{what}: {type(exc).__name__} escaped from outside streamvisor (not a typed "
            f"refusal): {exc!r}"
        )


#: The statuses a refused request may get: bad request, no such route / id, method not
#: allowed, too large, unsupported media type, unprocessable.
MALFORMED_STATUSES: Final = frozenset({400, 404, 405, 413, 415, 422})


def expect_http_refusal(
    response: httpx.Response, what: str, statuses: frozenset[int] = MALFORMED_STATUSES
) -> dict[str, Any]:
    """Assert a 4xx among ``statuses`` with a JSON error body naming the problem; return it."""
    body: Any = None
    with suppress(ValueError):
        body = response.json()
    if response.status_code not in statuses:
        raise AssertionError(
            f"{what}: HTTP {response.status_code} (expected one of {sorted(statuses)}): "
            f"{response.text[:300]!r}"
        )
    error = body.get("error") if isinstance(body, dict) else None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and error["type"] not in ("", "InternalError")
        and isinstance(error.get("message"), str)
        and error["message"]
    ):
        raise AssertionError(f"{what}: the error body names no typed problem: {body!r}")
    return error


def expect_ws_refusal(
    message: Any, ref: Any, what: str, statuses: frozenset[int] = MALFORMED_STATUSES
) -> None:
    """Assert a WebSocket error answer: ``kind`` error, ``ref`` echoed, a 4xx, a typed error."""
    if not isinstance(message, dict) or message.get("kind") != "error":
        raise AssertionError(f"{what}: not an error answer: {message!r}")
    if message.get("ref") != ref:
        raise AssertionError(f"{what}: the answer does not echo ref {ref!r}: {message!r}")
    if message.get("status") not in statuses:
        raise AssertionError(f"{what}: status {message.get('status')!r}: {message!r}")
    error = message.get("error")
    if not (
        isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and error["type"] not in ("", "InternalError")
        and error.get("message")
    ):
        raise AssertionError(f"{what}: the error names no typed problem: {message!r}")


# ------------------------------------------------------------------------------ the tree watch


@attrs.frozen
class TreeSnapshot:
    """Who is running: the root's children and every registered name, with their refs."""

    children: tuple[tuple[str | None, Any], ...]
    names: dict[str, Any]

    @classmethod
    async def take(cls, daemon: Daemon) -> TreeSnapshot:
        # A restart shows as a changed ref here, and in the log (``actor_crashed``).
        children = tuple((c.id, c.ref) for c in await daemon.root.which_children())
        names = {name: daemon.registry.whereis(name) for name in daemon.registry.names()}
        return cls(children, names)

    def changes_since(self, before: TreeSnapshot) -> list[str]:
        """What restarted or vanished between ``before`` and this snapshot."""
        changes = [
            f"root child {old[0]!r}: {old[1:]} -> {new[1:]}"
            for old, new in zip(before.children, self.children, strict=False)
            if old != new
        ]
        if len(before.children) != len(self.children):
            changes.append(f"root children {before.children} -> {self.children}")
        for name, ref in before.names.items():
            if self.names.get(name) is not ref:
                changes.append(f"{name}: {ref!r} -> {self.names.get(name)!r}")
        return changes


#: Log events that mean an actor died of an exception, or was restarted.
CRASH_EVENTS: Final = frozenset(
    {"actor_crashed", "child_restarted", "child_restart_failed", "child_terminated"}
)


@attrs.define
class _Mark:
    tree: TreeSnapshot
    logs: int
    requests: int
    responses: frozenset[str]


class RunningDaemon:
    """A daemon, its embedded server, its gateway and an httpx client for it, in a trio loop
    on a thread of its own: `run` hands it a probe and returns (or raises) what the probe did.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemon: Daemon
        self.gateway: Gateway
        self.http: httpx.AsyncClient
        self.logs: list[dict[str, Any]] = []
        self._reset()

    def _reset(self) -> None:
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._thread_main, name="adversarial", daemon=True)
        self.error: BaseException | None = None

    # -- lifetime ---------------------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        config = daemon_config(self.root)
        mockapi = MockAPIConfig(**FAST_MOCKAPI)
        async with (
            open_daemon(config, mockapi=mockapi, configure_logs=False) as daemon,
            serve_gateway(daemon, token=TOKEN) as gateway,
            httpx.AsyncClient(
                base_url=gateway.url, headers=gateway.auth_headers, timeout=PROBE_TIMEOUT
            ) as http,
        ):
            self.daemon, self.gateway, self.http = daemon, gateway, http
            self._stop = trio.Event()
            self._token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(60)
        if self._token is None:
            raise RuntimeError(f"the daemon did not start: {self.error!r}")

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive() and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        if self._thread.is_alive():
            self._thread.join(30)

    def ensure_running(self) -> None:
        """Start a fresh daemon if an earlier test brought this one down."""
        if not self.alive:
            self.stop()
            self._reset()
            self.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self.error is None

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` in the daemon's loop, bounded by `PROBE_TIMEOUT`."""
        if not self.alive:
            pytest.fail(f"the module's daemon is not running (it stopped: {self.error!r})")

        async def bounded() -> T:
            with trio.fail_after(PROBE_TIMEOUT):
                return await fn(*args)

        return trio.from_thread.run(bounded, trio_token=self._token)

    # -- watching -----------------------------------------------------------------------------

    @contextmanager
    def capturing(self) -> Iterator[None]:
        """Capture the daemon's log events (into `logs`) for the block."""
        with structlog.testing.capture_logs() as captured:
            self.logs = captured
            yield

    async def _mark(self) -> _Mark:
        server = self.daemon.mockapi
        assert server is not None
        return _Mark(
            tree=await TreeSnapshot.take(self.daemon),
            logs=len(self.logs),
            requests=len(server.state.requests),
            responses=frozenset(server.state.responses),
        )

    def _check(self, mark: _Mark, *, upstream: bool, what: str) -> None:
        tree = self.run(TreeSnapshot.take, self.daemon)
        problems = [f"restarted or gone: {c}" for c in tree.changes_since(mark.tree)]
        crashes = Counter(
            f"{e['event']}: {e.get('actor') or e.get('child')} ({e.get('reason')!s:.160})"
            for e in self.logs[mark.logs :]
            if e.get("event") in CRASH_EVENTS
        )
        problems += [f"{text} x{n}" if n > 1 else text for text, n in crashes.items()]
        if not upstream:
            server = self.daemon.mockapi
            assert server is not None
            sent = [
                f"{r.method} {r.path}"
                for r in server.state.requests[mark.requests :]
                # The background poller's GETs of responses created before the probe.
                if not (r.method == "GET" and r.path.split("/")[-1] in mark.responses)
            ]
            if sent:
                problems.append(f"reached the upstream API: {sent[:3]}")
        if problems:
            shown = problems[:8] + ([f"... {len(problems) - 8} more"] if len(problems) > 8 else [])
            raise AssertionError(f"{what}: " + "; ".join(shown))

    @contextmanager
    def watch(self, what: str, *, upstream: bool = False) -> Iterator[None]:
        """Around one probe: no crash, no restart, and (unless ``upstream``) no request sent to
        the upstream API."""
        mark = self.run(self._mark)
        yield
        self._check(mark, upstream=upstream, what=what)

    def assert_healthy(self) -> None:
        """``/health`` answers 200 with every child alive, and a chat stream completes."""
        self.run(self._assert_healthy)

    async def _assert_healthy(self) -> None:
        await trio.sleep(0.05)  # a crash that follows its answer has time to show
        response = await self.http.get("/health")
        assert response.status_code == 200, response.text
        children = response.json()["children"]
        assert children, response.text
        assert all(c["alive"] for c in children), children
        async with self.daemon.subscribe("session.healthy") as events:
            session = await self.daemon.open_session("healthy")
            ticket = await session.chat(MODEL, HELLO)
            async for event in events:
                if getattr(event, "terminal", False):
                    assert event.type == "response.completed", event
                    break
        outcome = await session.wait(ticket.stream_id, timeout=5)
        assert outcome.status == "completed", outcome


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """The module's daemon."""
    holder = RunningDaemon(tmp_path_factory.mktemp("adversarial"))
    holder.start()
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def daemon_under_test(running: RunningDaemon) -> Iterator[RunningDaemon]:
    """The module's daemon (a fresh one if an earlier test brought it down), its logs captured;
    after the test, it must still run, unchanged (no restart, no crash) and healthy."""
    running.ensure_running()
    with running.capturing():
        mark = running.run(running._mark)
        yield running
        if not running.alive:
            pytest.fail(f"the daemon stopped during the test: {running.error!r}")
        try:
            running._check(mark, upstream=True, what="after the test")
            running.assert_healthy()
        except Exception as exc:  # any way of being unhealthy
            pytest.fail(
                f"after the test: {exc!r}" if not isinstance(exc, AssertionError) else str(exc)
            )


# ------------------------------------------------------------------------------------- probes


def facade_refuses(
    running: RunningDaemon,
    what: str,
    call: Callable[[], Awaitable[Any]],
    allowed: tuple[type[BaseException], ...] = ALLOWED_FOR_MALFORMED,
    *,
    upstream: bool = False,
) -> None:
    """``await call()`` must raise a typed error of ``allowed`` (`expect_refused`), crash and
    restart nothing, and (unless ``upstream``) send nothing to the upstream API."""

    async def attempt() -> BaseException | None:
        try:
            await call()
        except Exception as exc:  # judged by expect_refused
            return exc
        return None

    with running.watch(what, upstream=upstream):
        expect_refused(running.run(attempt), allowed, what)


def route_refuses(
    running: RunningDaemon,
    what: str,
    method: str,
    target: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    statuses: frozenset[int] = MALFORMED_STATUSES,
    upstream: bool = False,
) -> dict[str, Any]:
    """``method target`` (a raw, already escaped target) must be refused with a typed 4xx
    (`expect_http_refusal`) and leave the tree as it was; returns the error body."""

    async def send() -> httpx.Response:
        return await running.http.request(method, target, content=content, headers=headers)

    with running.watch(what, upstream=upstream):
        return expect_http_refusal(running.run(send), what, statuses)


async def _ws_exchange(running: RunningDaemon, frame: str | bytes) -> tuple[Any, Any]:
    """Send ``frame`` on a fresh socket; (the first reply or error, the answer to a ping sent
    after it). A socket the server closes instead answers `_ws.Closed`."""
    gateway = running.gateway
    target = "/ws?topic=session.adversarial-ws"
    async with _ws.connect(gateway.host, gateway.port, target, token=gateway.token) as sock:
        await sock.receive_json()  # {"kind": "subscribed", ...}
        if isinstance(frame, bytes):
            await sock.send_bytes(frame)
        else:
            await sock.send_text(frame)
        try:
            answer = await sock.next_answer()
        except _ws.Closed as closed:
            return closed, None
        await sock.send_json({"op": "ping", "ref": "still-open"})
        try:
            pong = await sock.next_answer()
        except _ws.Closed as closed:
            return answer, closed
        return answer, pong


def ws_refuses(
    running: RunningDaemon,
    what: str,
    frame: str | bytes,
    ref: Any,
    *,
    statuses: frozenset[int] = MALFORMED_STATUSES,
    ref_unreadable: bool = False,
) -> None:
    """The command ``frame`` must get a typed error (`expect_ws_refusal`) echoing ``ref`` (or
    None when ``ref_unreadable``: a frame that cannot be parsed), the socket must answer a
    ``ping`` after it, and the tree must be as it was."""
    with running.watch(what):
        answer, pong = running.run(_ws_exchange, running, frame)
        if isinstance(answer, _ws.Closed):
            raise AssertionError(f"{what}: the socket was closed instead of answered: {answer}")
        expected = None if ref_unreadable and answer.get("ref") is None else ref
        expect_ws_refusal(answer, expected, what, statuses)
        if pong != {"kind": "reply", "op": "ping", "ref": "still-open", "result": "pong"}:
            raise AssertionError(f"{what}: the socket did not answer a ping afterwards: {pong!r}")


async def events_answer(running: RunningDaemon, topic: str) -> httpx.Response:
    """``GET /events?topic=``'s answer: its error, or a stand-in 200 if a stream started (an
    event stream never ends by itself)."""
    async with running.http.stream("GET", "/events", params={"topic": topic}) as response:
        if response.status_code == 200:
            return httpx.Response(200, text="(an event stream started)")
        await response.aread()
        return response


async def ws_topic_answer(running: RunningDaemon, topic: str) -> tuple[int, Any]:
    """How ``/ws?topic=`` answers: (the refused handshake's status, its body as JSON), or (the
    ``status`` of an error sent right after accepting, ``{"error": ...}``), or (101, the first
    message) if the socket was accepted without an error."""
    gateway = running.gateway
    target = str(httpx.URL("/ws", params={"topic": topic}))
    try:
        async with _ws.connect(gateway.host, gateway.port, target, token=gateway.token) as sock:
            first = await sock.receive_json()
    except _ws.Rejected as refused:
        return refused.status_code, refused.body
    if first.get("kind") == "error":
        return int(first.get("status", 0)), {"error": first.get("error")}
    return 101, first


def topic_refused_alike(running: RunningDaemon, topic: str) -> None:
    """``/events`` refuses ``topic`` with a typed 400, and ``/ws`` with the same status and
    error type (by refusing the handshake, or by an error message before closing)."""
    what = f"topic {topic!r}"
    with running.watch(what):
        sse = expect_http_refusal(
            running.run(events_answer, running, topic), f"/events {what}", frozenset({400})
        )
        status, body = running.run(ws_topic_answer, running, topic)
        if status != 400 or not isinstance(body, dict):
            raise AssertionError(f"/ws {what}: answered {status}: {body!r}")
        error = body.get("error")
        if not isinstance(error, dict) or error.get("type") != sse["type"]:
            raise AssertionError(f"/ws {what}: {body!r}; /events: {sse!r}")
