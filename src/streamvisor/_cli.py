"""Command line: run the daemon, serve the embedded OpenAI-compatible server, or show a demo.

    python run.py                      run the daemon (embedded server when OPENAI_API_KEY is unset)
    python run.py mockapi [--port N]   serve the embedded server alone, for any OpenAI client
    python run.py demo FEATURE         show one feature live in the terminal
    python run.py cluster [--nodes N]  N daemons as one cluster, with PostgreSQL and NATS

Exit codes: 0 after a clean shutdown (SIGINT / SIGTERM) or a demo that ran to its end, 1 for a
demo that failed, 2 for bad arguments or configuration, 130 for an interrupted demo or an
interrupt during startup.
"""

from __future__ import annotations

import argparse
import functools
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Final, TextIO

import attrs
import trio

from .config import Config, ConfigError, GatewaySection

if TYPE_CHECKING:
    from .daemon import Daemon, DaemonStatus
    from .gateway import Gateway

__all__ = ["DEMOS", "build_parser", "main", "serve_daemon", "serve_mockapi", "status_line"]

DEMOS: Final = ("stream", "responses", "background", "files", "agent", "combined")

_DEMO_HELP: Final = """\
features:
  stream      a chat stream that calls a weather tool, then a plain text stream
  responses   a durable Responses stream with a reasoning summary and its semantic events
  background  two background responses: status transitions, a cancel, active() shrinking
  files       PNG and PDF uploads (types sniffed from content), input parts, list(), a rejected
              animated GIF, delete()
  agent       an agent with a calculator and a clock answering one question
  combined    a durable background stream with an image input, then background.poll
  all         each of the above in turn, on one daemon

Without OPENAI_API_KEY the demos run against the embedded server (canned replies, not a model),
paced so that streaming is visible (each takes a few seconds); with a key they use the real API
and the models below.
"""

_EPILOG: Final = """\
examples:
  python run.py                              run the daemon (Ctrl-C to stop)
  python run.py daemon --status-interval 5   ... with a status line every 5 s
  python run.py mockapi --port 8765          serve the embedded server for any OpenAI client
  python run.py demo stream                  watch a chat stream with a tool call
  python run.py demo --help                  the demos and their options
  python run.py cluster --nodes 3            three daemons as one cluster (and its engines)

Run 'run.py COMMAND --help' for a command's options. Settings: config/streamvisor.toml and
OPENAI_API_KEY / OPENAI_BASE_URL / STREAMVISOR_<SECTION>_<KEY> in the environment.
"""

_CLUSTER_HELP: Final = """\
Each node is 'python -m streamvisor daemon' with [cluster] set in its environment:
  STREAMVISOR_CLUSTER_POSTGRES_DSN  postgresql://user:password@host:port/db  (system of record)
  STREAMVISOR_CLUSTER_NATS_URL      nats://host:4222  (JetStream: events across nodes)
  STREAMVISOR_CLUSTER_NODE_ID       node-1, node-2, ...
Set the first two before 'run.py cluster' to use real servers instead of throwaway ones; run
'python run.py daemon' with the same three variables on other machines to add nodes there.
"""

_EXAMPLE: Final = (
    "OPENAI_BASE_URL={url} OPENAI_API_KEY=sk-anything python -c "
    "\"import openai; print(openai.OpenAI().chat.completions.create(model='gpt-4o-mini', "
    "messages=[{{'role': 'user', 'content': 'Hello'}}]).choices[0].message.content)\""
)


#: What ``run.py mockapi`` prints once listening (the URL last: scripts read it from there).
_MOCKAPI_BANNER: Final = (
    "streamvisor embedded OpenAI-compatible server (canned replies, no model) on {url}"
)


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``run.py`` argument parser (each command documents itself: ``run.py CMD --help``)."""
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=(
            "streamvisor: a supervised streaming daemon for the OpenAI API. With no "
            "OPENAI_API_KEY it starts an embedded OpenAI-compatible server and uses it."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="a streamvisor.toml (default: $STREAMVISOR_CONFIG, else config/streamvisor.toml)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    daemon = sub.add_parser(
        "daemon",
        help="run the daemon until Ctrl-C / SIGTERM (the default command)",
        description=(
            "Run the daemon until SIGINT or SIGTERM, then stop it in order. Without "
            "OPENAI_API_KEY it starts the embedded OpenAI-compatible server and says where."
        ),
    )
    daemon.add_argument(
        "--status-interval",
        type=_non_negative,
        default=30.0,
        metavar="SECONDS",
        help="print a one-line status (sessions, agents, active background responses) this "
        "often; 0 turns it off (default 30)",
    )
    mock = sub.add_parser(
        "mockapi",
        help="serve the embedded OpenAI-compatible server alone (Ctrl-C to stop)",
        description="Serve the embedded OpenAI-compatible server for any OpenAI client.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    mock.add_argument(
        "--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)"
    )
    mock.add_argument(
        "--token-delay",
        type=_non_negative,
        default=None,
        metavar="SECONDS",
        help="pause between streamed tokens (default: [mockapi] token_delay)",
    )
    mock.add_argument(
        "--queue-delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="how long background responses stay queued (default 0)",
    )
    demo = sub.add_parser(
        "demo",
        help="show one feature live in the terminal",
        description="Show one feature live: tokens as they arrive, tool calls, status changes.",
        epilog=_DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "feature", choices=(*DEMOS, "all"), help="which feature to show ('all': each in turn)"
    )
    demo.add_argument(
        "--model", default=None, help="the model of the chat/background/agent demos (gpt-4o-mini)"
    )
    demo.add_argument(
        "--reasoning-model",
        default=None,
        help="the model of the 'responses' demo (o4-mini)",
    )
    cluster = sub.add_parser(
        "cluster",
        help="run several daemons on this machine as one cluster, with their engines",
        description=(
            "Start PostgreSQL and NATS JetStream (throwaway servers from their PyPI wheels, "
            "under --directory; or the ones STREAMVISOR_CLUSTER_POSTGRES_DSN and "
            "STREAMVISOR_CLUSTER_NATS_URL name), one OpenAI-compatible server (the embedded one "
            "without OPENAI_API_KEY), and --nodes daemons, each with its own gateway. Ctrl-C "
            "stops them all. Needs the cluster extra: pip install -e '.[cluster]'."
        ),
        epilog=_CLUSTER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cluster.add_argument("--nodes", type=int, default=3, help="how many daemons (default 3)")
    cluster.add_argument(
        "--lease-ttl",
        type=_non_negative,
        default=5.0,
        metavar="SECONDS",
        help="[cluster] lease_ttl of every node: a killed node is taken over within about "
        "twice this (default 5)",
    )
    cluster.add_argument(
        "--directory",
        default="var/cluster",
        help="where the engines' data and each node's files and log go (default var/cluster)",
    )
    cluster.add_argument(
        "--base-port",
        type=int,
        default=8081,
        help="node i's gateway listens on base-port + i - 1; 0 picks free ports (default 8081)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``run.py``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = Config.load(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from ._logging import configure_logging

    command = args.command or "daemon"
    log = config.log
    if command in ("demo", "cluster") and log.level == "info":
        # The demo's own output tells the story; routine log lines would interleave with tokens.
        # The cluster's nodes log to their own files; the launcher says what matters itself.
        log = attrs.evolve(log, level="warning")
    # The gateway's token is chosen now, so that the log redactor knows it from the first line.
    gateway_token = None
    if command == "daemon" and config.gateway.enabled:
        from .gateway import new_token

        gateway_token = config.gateway.token or new_token()
    configure_logging(log, secrets=[config.openai.api_key, gateway_token])
    try:
        if command == "mockapi":
            return trio.run(
                serve_mockapi, config, args.host, args.port, args.token_delay, args.queue_delay
            )
        if command == "cluster":
            from .cluster._launch import serve_cluster

            return trio.run(
                functools.partial(
                    serve_cluster,
                    config,
                    nodes=args.nodes,
                    lease_ttl=args.lease_ttl,
                    directory=args.directory,
                    base_port=args.base_port,
                )
            )
        if command == "demo":
            from ._demos import Models, run_demo

            defaults = Models()
            models = Models(
                chat=args.model or defaults.chat,
                reasoning=args.reasoning_model or defaults.reasoning,
            )
            demo = functools.partial(run_demo, args.feature, config, models=models)
            return trio.run(until_interrupted, demo)
        interval = getattr(args, "status_interval", 30.0)
        return trio.run(
            functools.partial(serve_daemon, config, interval, gateway_token=gateway_token)
        )
    except KeyboardInterrupt:
        # Only before the signal handlers are installed: nothing left running.
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # An address that cannot be bound (the embedded server's port in use, ...) is the
        # user's to fix, not a bug: say so without a traceback. Anything else is a bug.
        leaf = _only_error(exc)
        if not isinstance(leaf, OSError):
            raise
        print(f"error: {leaf}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # not an Exception: it holds a KeyboardInterrupt
        # Ctrl-C before the handlers are installed, arriving through a nursery: grouped.
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        print("interrupted", file=sys.stderr)
        return 130


async def until_interrupted(run: Callable[[], Awaitable[int]]) -> int:
    """``await run()`` (a demo) and return its exit code, or 130 after saying "interrupted" on
    stderr if SIGINT came first.

    SIGINT is taken as a signal, not as trio's ``KeyboardInterrupt``: that would be raised in
    whatever task was running when it came, and a task whose caller catches exception groups
    could swallow it (hypercorn's ASGI wrapper logs any group but a cancellation and goes on,
    and the embedded server runs in the demo's process): the demo then ran to its end and
    exited 0 (seen once in a full `make test` run). Must run in the main thread.
    """
    interrupted = False
    code = 0
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal interrupted
                async for _ in signals:
                    interrupted = True
                    nursery.cancel_scope.cancel()
                    return

            nursery.start_soon(watch)
            code = await run()
            nursery.cancel_scope.cancel()
    if interrupted:
        print("interrupted", file=sys.stderr)
        return 130
    return code


def _only_error(exc: BaseException) -> BaseException:
    """The single error inside (nested) exception groups of one error each, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def status_line(status: DaemonStatus, uptime: float | None = None) -> str:
    """One line about a running daemon: sessions, agents, active background responses, uptime."""
    line = (
        f"status: {status.sessions} session(s), {status.agents} agent(s), "
        f"{status.active_background} active background response(s)"
    )
    if status.cluster is not None:
        node = status.cluster
        line += f"; node {node.node_id} (token {node.token}{'' if node.leased else ', fenced'})"
    if uptime is not None:
        minutes, seconds = divmod(int(uptime), 60)
        line += f"; up {minutes}m{seconds:02d}s" if minutes else f"; up {seconds}s"
    return line


async def serve_daemon(
    config: Config,
    status_interval: float = 30.0,
    *,
    out: TextIO | None = None,
    gateway_token: str | None = None,
) -> int:
    """Run the daemon (and its gateway, per ``[gateway]``) until SIGINT or SIGTERM; say where it
    sends requests and where the gateway listens, print a status line
    every ``status_interval`` seconds (0: never), and say when it has stopped. Returns 0.

    The gateway requires ``[gateway] token``, else ``gateway_token``, else a new random token;
    a token it did not read from the configuration is printed once, in the page's URL.

    Raises what `open_daemon` raises (``StartChildError``, ``OSError`` for an unusable
    ``[mockapi]`` address, ...). Must run in the main thread (it installs signal handlers).
    """
    from .daemon import open_daemon
    from .gateway import new_token, serve_gateway

    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_daemon(config) as daemon, AsyncExitStack() as stack:
            section = config.gateway
            gateway = None
            if section.enabled:
                gateway = await stack.enter_async_context(
                    serve_gateway(
                        daemon,
                        section.host,
                        section.port,
                        token=section.token or gateway_token or new_token(),
                        token_file=section.token_file,
                        keepalive=section.keepalive,
                        max_upload_bytes=section.max_upload_bytes,
                        allowed_hosts=_gateway_hosts(section),
                    )
                )
            say(_banner(daemon, gateway, section))
            # The status reporter's nursery nests inside the gateway's (the exit stack's).
            async with trio.open_nursery() as nursery:
                if status_interval > 0:
                    nursery.start_soon(_report_status, daemon, status_interval, say)
                async for signum in signals:
                    say(f"received {signal.Signals(signum).name}, shutting down")
                    break
                nursery.cancel_scope.cancel()
    say("streamvisor daemon stopped")
    return 0


def _banner(daemon: Daemon, gateway: Gateway | None, section: GatewaySection) -> str:
    """The one announcement of a running daemon: the page to open, how an OpenAI SDK reaches
    the gateway, and where requests go (the embedded server said to be such). A generated
    gateway token is shown (this once, in the page's URL); a configured one never is."""
    lines = ["streamvisor daemon running; Ctrl-C or SIGTERM to stop"]
    if gateway is None:
        lines.append("  gateway:     off ([gateway] enabled = false)")
    else:
        page = (
            gateway.page_url if section.token is None else f"{gateway.url}/?token=<[gateway] token>"
        )
        lines.append(f"  live page:   {page}")
        lines.append(
            f"  OpenAI SDKs: OPENAI_BASE_URL={gateway.url}/v1 "
            f"OPENAI_API_KEY=$(cat {section.token_file})"
        )
    if daemon.mockapi is not None:
        lines.append(
            f"  model API:   no OPENAI_API_KEY, so the embedded OpenAI-compatible server at "
            f"{daemon.mockapi.url} (canned replies, not a model)"
        )
    else:
        lines.append(f"  model API:   {daemon.client.settings.base_url}")
    return "\n".join(lines)


def _gateway_hosts(section: GatewaySection) -> set[str] | None:
    """``[gateway] allowed_hosts`` are *extra* names: the loopback names always work. None lets
    the gateway choose (loopback names on a loopback bind, any name elsewhere)."""
    if not section.allowed_hosts:
        return None
    return {*section.allowed_hosts, "localhost", "127.0.0.1", "::1", section.host}


async def _report_status(daemon: Daemon, interval: float, say: Callable[[str], None]) -> None:
    started = trio.current_time()
    while True:
        await trio.sleep(interval)
        try:
            status = await daemon.status()
        except Exception as exc:
            # A child may be restarting just then; the status is for display only and must
            # never take the daemon down.
            say(f"status: unavailable ({type(exc).__name__}: {exc})")
        else:
            say(status_line(status, trio.current_time() - started))


async def serve_mockapi(
    config: Config,
    host: str,
    port: int,
    token_delay: float | None = None,
    queue_delay: float = 0.0,
    *,
    out: TextIO | None = None,
) -> int:
    """Serve the embedded OpenAI-compatible server until SIGINT or SIGTERM; print its base URL
    and an example client command first. Returns 0. Raises ``OSError`` if it cannot bind."""
    from .mockapi import MockAPIConfig, serve

    stream = out if out is not None else sys.stdout
    mock = MockAPIConfig(
        host=host,
        port=port,
        token_delay=config.mockapi.token_delay if token_delay is None else token_delay,
        queue_delay=queue_delay,
        keepalive_interval=config.mockapi.keepalive_interval,
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with serve(mock) as server:
            print(_MOCKAPI_BANNER.format(url=server.url), file=stream, flush=True)
            print("try: " + _EXAMPLE.format(url=server.url), file=stream, flush=True)
            async for signum in signals:
                print(f"received {signal.Signals(signum).name}, stopping", file=stream, flush=True)
                break
    print("embedded OpenAI-compatible server stopped", file=stream, flush=True)
    return 0
