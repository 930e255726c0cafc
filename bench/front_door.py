"""Front-door benchmark: the official SDK through the gateway's ``/v1`` against the same SDK
straight at the load server, and the daemon's CPU per relayed event against its CPU per event
when embedded.

Where each process runs (as bench/daemon arranges them, one more process on the client's core):

* **core 0**: the daemon + gateway process (``open_daemon`` on the load server's URL with the
  repository's configuration, as bench/daemon's `_config`, and ``serve_gateway(daemon,
  token=...)``; a fresh one per row, the event log in a temporary file), or, for the embedded
  reference, bench/daemon's own ``run_daemon`` child (the daemon's facade, sessions and
  subscribers in one program);
* **core 1**: the load server (`bench._loadserver`, as bench/daemon puts it) and the SDK client
  (``openai.AsyncOpenAI`` under trio, a fresh process per row), reading every stream either at
  ``<gateway>/v1`` with the gateway token as its API key, or at the load server directly.

The rows, for Chat and for Responses (through ``/v1`` durable upstream by default, ``[gateway]
v1_durable``; the embedded reference then streams ``respond(durable=True)``, the configuration's
default; a ``v1_durable=false`` row against ``respond(durable=False)`` follows):

1. **Paced load**: N streams, every text delta stamped by the load server at send. N = 100 for
   the targets, 200 events each as in bench/daemon (60 in the first runs: a stream's start,
   durable tracking and connection assignment, then weighed on too few events), one event per
   stream every 100 ms (the server ticks every 20 ms
   and writes to a fifth of the streams per tick, ``spread``, as independent streams arrive);
   N = 1,000 for information, 20 events each, one per stream per second. Both offer 1,000
   events/s. Not bench/daemon's pace (one event per stream every 20 ms, all streams on every
   tick): at 100 streams that is 5,000 events/s, and the SDK alone needs more than its core for
   it (4.2 s of CPU for 4 s of load, ~210 µs per chunk; p50 latency 785 ms *direct*), so both
   runs would measure the SDK's backlog, not the gateway. Printed: added delivery latency per
   text delta, p50 and p99, = (the SDK's reading on arrival - the server's send stamp) through
   the gateway minus the same direct. These are differences of percentiles of two runs, not
   percentiles of per-event differences (an event cannot be in both runs). Target: p99 added
   <= 5 ms at 100 streams.
2. **One stream of 100,000 events** (as bench/wire, unpaced): events/s through the gateway vs
   direct.
3. **The daemon's CPU per relayed event** (the daemon + gateway process's CPU seconds from the
   first request until every stream ended, / the events the load server sent through it) against
   the embedded daemon's CPU per event on the same load. Target: at most 2x.

Before each measured SDK run the same streams are opened once with a few unpaced events (the
gateway rows with the same ``x-streamvisor-session`` names): sessions, connection pools and the
daemon's code paths are warm, as bench/daemon's embedded rows open their sessions before the
clock starts.

What the first runs showed (four runs of three, 2 cores shared with other test suites): Chat's
CPU per relayed event at 100 streams was 1.2-1.9x embedded, durable Responses' 2.6-4.0x and
``v1_durable=false`` Responses' 2.8-4.0x; p99 added latency 6-34 ms for Chat, 18-146 ms for
Responses on the runs least disturbed by other work (the long stream: durable 1.5-2.5x,
``v1_durable=false`` 1.2-2.8x; Chat lost events in every run, below). A
py-spy profile (``--gil``) of the daemon + gateway under the durable Responses target load: 31%
reading upstream (what the embedded daemon does too), 17% the relay's writes (``Responder.write``
-> hypercorn ``app_send`` -> h11 -> ``send``: one ASGI message and one ``send`` per event, as a
stream gets one event at a time), 11% ``_receive`` (a ``move_on_after`` deadline per batch, and a
batch is one event), 5% re-encoding each event's JSON (``sse_event``), ~7% handing batches to the
event log's thread, whose own CPU was another ~10% of the process's; embedded, keeping the events
(``respond(keep_events=True)``) cost +20-30% CPU per event. At 1,000 streams the gateway's
listener (hypercorn's default backlog, 100) overflowed (``ListenOverflows`` in /proc/net/netstat)
and in one run 645 of 1,000 durable streams failed with "Connection reset by peer"; one
unpaced 100,000-event Chat stream through /v1 ended after ~20,000 events with "the relay fell
behind the stream" (its bus buffer, 65,536 events, overflowed: a Chat relay cannot resume), and
the next such stream in the same session (the first one's upstream still streaming on the same
topic) ended after 4,554 (another time 26,725) chunks with ``finish_reason: "stop"`` and no
error: a silently truncated answer. 100
concurrent Responses streams through /v1 got their headers 1.6-2.9 s after the requests (Chat
0.3 s, the SDK direct 0.2 s; embedded, every stream ran on time); during that start 23% of the
daemon's samples were in httpcore's ``AsyncConnectionPool._assign_requests_to_connections``
(its ``is_idle`` scan, see bench/daemon's pool rows), with the warm-up's connections idle in the
pool.

Every row runs three times (the 1,000-stream rows once), interleaved; each keeps its
least-disturbed run (least time its daemon process spent runnable but waiting for a CPU: the
machine's two cores are shared with other work), and every run's ratio is printed under it.

Smoke size (``--smoke``): Chat only for 10 streams x 20 events, durable Responses only for a
600-event stream, one run each.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import attrs
import trio

from bench._common import Row, Table, at_most, call_in_subprocess, cpu_seconds, start_pinned
from bench._loadserver import LoadServer, open_load_server
from bench.daemon import _config, _consume, _Phases, _run_delay

__all__ = ["main"]

_MODEL = "gpt-4o-mini"
_MESSAGES = [{"role": "user", "content": "Hello"}]
_SESSION_HEADER = "x-streamvisor-session"
#: The daemon + gateway, and the embedded reference, run here; the SDK and the load server on 1.
_DAEMON_CORE = 0
_CLIENT_CORE = 1
#: Events per warm-up stream (unpaced): enough for a whole Responses stream.
_WARM_EVENTS = 12
#: Seconds left to the gateway after the SDK saw the last event, before its CPU is read: the
#: sessions still record their streams' ends (the embedded row waits for them too).
_SETTLE = 0.3
_ADDED_P99_BOUND_MS = 5.0


@attrs.frozen
class Load:
    """Paced streams: `streams` x `events`, the server ticking every `pace_ms` and writing to
    one of `spread` groups of streams per tick (each stream gets an event every `spread`
    ticks)."""

    streams: int
    events: int
    pace_ms: float
    spread: int
    #: Its rows carry the targets (else they are for information).
    target: bool
    variants: tuple[str, ...]
    repeats: int

    @property
    def per_stream_ms(self) -> float:
        return self.pace_ms * self.spread

    def describe(self) -> str:
        return (
            f"{self.streams:,} streams x {self.events} events, one per stream every "
            f"{self.per_stream_ms:g} ms ({1000 * self.streams / self.per_stream_ms:,.0f} events/s)"
        )


@attrs.frozen
class Sizes:
    paced: tuple[Load, ...]
    #: Events of the one long stream, its variants and runs.
    wire_events: int
    wire: tuple[str, ...]
    wire_repeats: int
    timeout: float

    @classmethod
    def full(cls, repeats: int = 3) -> Sizes:
        return cls(
            paced=(
                Load(100, 200, 20.0, 5, True, ("chat", "durable", "foreground"), repeats),
                Load(1000, 20, 20.0, 50, False, ("chat", "durable"), 1),
            ),
            wire_events=100_000,
            wire=("chat", "durable", "foreground"),
            wire_repeats=repeats,
            timeout=300.0,
        )

    @classmethod
    def smoke(cls) -> Sizes:
        return cls(
            paced=(Load(10, 20, 5.0, 2, True, ("chat",), 1),),
            wire_events=600,
            wire=("durable",),
            wire_repeats=1,
            timeout=60.0,
        )


@attrs.frozen
class Variant:
    """One API as ``/v1`` serves it, and what the embedded reference runs for it."""

    label: str
    #: "chat" or "responses": what the SDK calls.
    api: str
    #: ``[gateway] v1_durable`` of the gateway process.
    v1_durable: bool
    #: bench/daemon ``run_daemon``'s api for the embedded reference.
    embedded: str


_CHAT = Variant("Chat", "chat", True, "chat")
_DURABLE = Variant("Responses (durable)", "responses", True, "durable")
_FOREGROUND = Variant("Responses (v1_durable=false)", "responses", False, "responses")
_VARIANTS = {"chat": _CHAT, "durable": _DURABLE, "foreground": _FOREGROUND}


# ---------------------------------------------------------------------------------------------
# The daemon + gateway process


async def _serve(base_url: str, token: str, settings: dict[str, str]) -> None:
    from streamvisor.daemon import open_daemon
    from streamvisor.gateway import serve_gateway

    async with (
        open_daemon(_config(base_url, **settings)) as daemon,
        serve_gateway(daemon, token=token) as gateway,
    ):
        print(f"gateway listening on {gateway.url}", flush=True)
        await trio.sleep_forever()


def serve_front_door(base_url: str, token: str, settings: dict[str, str]) -> None:
    """Child entry point: the daemon on `base_url` and its gateway, until terminated."""
    trio.run(_serve, base_url, token, settings)


@attrs.frozen
class FrontDoor:
    """A running daemon + gateway process."""

    v1_url: str
    token: str
    pid: int


@contextlib.contextmanager
def _front_door(server: LoadServer, v1_durable: bool) -> Iterator[FrontDoor]:
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-front-door-") as tmp:
        settings = {
            "EVENTLOG_PATH": os.path.join(tmp, "events.sqlite3"),
            "GATEWAY_V1_DURABLE": "true" if v1_durable else "false",
        }
        with start_pinned(
            "bench.front_door:serve_front_door",
            server.base_url,
            token,
            settings,
            core=_DAEMON_CORE,
            ready_prefix="gateway listening on ",
            ready_timeout=60.0,
        ) as background:
            assert background.ready is not None
            url = background.ready.removeprefix("gateway listening on ")
            yield FrontDoor(f"{url}/v1", token, background.proc.pid)


# ---------------------------------------------------------------------------------------------
# The SDK process


async def _sdk_streams(
    client: Any, phases: _Phases, api: str, streams: int, headers: list[dict[str, str]]
) -> list[float]:
    """Read `streams` streams at once; return when each one's response headers came (seconds
    after the clock started, sorted)."""
    probe = phases.probe
    firsts: list[float] = []

    def first() -> None:
        firsts.append(time.monotonic() - phases.started)

    async def one(i: int) -> None:
        try:
            if api == "chat":
                chat = await client.chat.completions.create(
                    model=_MODEL, messages=_MESSAGES, stream=True, extra_headers=headers[i]
                )
                first()  # the response's headers: the stream has started
                async with chat:
                    async for chunk in chat:
                        probe.event(chunk.choices[0].delta.content if chunk.choices else None)
            else:
                stream = await client.responses.create(
                    model=_MODEL, input="Hello", stream=True, extra_headers=headers[i]
                )
                first()
                async with stream:
                    async for event in stream:
                        text = event.delta if event.type == "response.output_text.delta" else None
                        probe.event(text)
                        if event.type in ("response.failed", "response.incomplete", "error"):
                            phases.errors.append(f"terminal {event.type}")
        except Exception as exc:
            phases.failed(exc)
            if exc.__cause__ is not None:  # APIConnectionError says only "Connection error."
                phases.errors[-1] += f" <- {exc.__cause__!r}"

    await _consume(phases, one, range(streams))
    return sorted(firsts)


async def _sdk_run(
    base_url: str, api_key: str, api: str, streams: int, events: int, gateway_pid: int | None
) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120.0)
    named = [{_SESSION_HEADER: f"bench-{i}"} if gateway_pid else {} for i in range(streams)]
    warm = [{**h, "x-bench-events": str(_WARM_EVENTS), "x-bench-pace-events": "0"} for h in named]
    warm_up = _Phases()
    warm_up.start()
    await _sdk_streams(client, warm_up, api, streams, warm)
    await trio.sleep(_SETTLE)

    phases = _Phases()
    gateway_cpu = gateway_waited = 0.0
    if gateway_pid:
        gateway_cpu, gateway_waited = cpu_seconds(gateway_pid), _run_delay(gateway_pid)
    phases.start()
    started = await _sdk_streams(client, phases, api, streams, named)
    result = phases.result(streams, events)
    result["started_p50"] = started[len(started) // 2] if started else math.nan
    result["started_max"] = started[-1] if started else math.nan
    result["warm_errors"] = warm_up.errors[:5]
    result["warm_error_count"] = len(warm_up.errors)
    if gateway_pid:
        await trio.sleep(_SETTLE)
        result["gateway_cpu"] = cpu_seconds(gateway_pid) - gateway_cpu
        result["gateway_waited"] = _run_delay(gateway_pid) - gateway_waited
    await client.close()
    return result


def run_sdk(
    base_url: str, api_key: str, api: str, streams: int, events: int, gateway_pid: int | None
) -> dict[str, Any]:
    """Child entry point: the SDK reading `streams` streams at `base_url` (the gateway's /v1
    when `gateway_pid` is given: its CPU over the run is in the result as ``gateway_cpu``)."""
    return trio.run(_sdk_run, base_url, api_key, api, streams, events, gateway_pid)


# ---------------------------------------------------------------------------------------------
# In the parent: runs and rows


def _sdk(
    url: str, key: str, variant: Variant, n: int, events: int, pid: int | None, timeout: float
) -> dict[str, Any]:
    result = call_in_subprocess(
        "bench.front_door:run_sdk",
        url,
        key,
        variant.api,
        n,
        events,
        pid,
        core=_CLIENT_CORE,
        timeout=timeout,
    )
    return dict(result)


def _measure_variant(
    server: LoadServer, variant: Variant, n: int, events: int, repeats: int, timeout: float
) -> dict[str, Any]:
    """The three runs of one variant at one load: through the gateway, direct, embedded; each
    `repeats` times, keeping the least-disturbed run (least time waiting for a CPU)."""
    runs: dict[str, list[dict[str, Any]]] = {"gateway": [], "direct": [], "embedded": []}
    for _ in range(repeats):
        with _front_door(server, variant.v1_durable) as door:
            runs["gateway"].append(
                _sdk(door.v1_url, door.token, variant, n, events, door.pid, timeout)
            )
        runs["direct"].append(_sdk(server.base_url, "sk-bench", variant, n, events, None, timeout))
        with tempfile.TemporaryDirectory(prefix="bench-front-door-") as tmp:
            settings = {"EVENTLOG_PATH": os.path.join(tmp, "events.sqlite3")}
            result = call_in_subprocess(
                "bench.daemon:run_daemon",
                server.base_url,
                n,
                events,
                variant.embedded,
                False,
                settings,
                core=_DAEMON_CORE,
                timeout=timeout,
            )
        runs["embedded"].append(dict(result))
    return {
        "gateway": min(runs["gateway"], key=lambda r: (_broken(r), float(r["gateway_waited"]))),
        "direct": min(runs["direct"], key=lambda r: (_broken(r), float(r["waited"]))),
        "embedded": min(runs["embedded"], key=lambda r: (_broken(r), float(r["waited"]))),
        "all": runs,
    }


def _broken(r: dict[str, Any]) -> bool:
    """A run that lost events or met errors: kept for a row only if every run did."""
    # Chat through /v1 sees a few events fewer than the wire holds (see `_notes`).
    short = r["events"] < r["wire_events"] - 4 * r["streams"]
    return bool(r["error_count"] or r["missed"] or short)


def _us(cpu: float, events: int) -> float:
    return 1e6 * cpu / events


def _check_complete(table: Table, name: str, r: dict[str, Any], expected_min: int) -> None:
    if r.get("warm_error_count"):
        table.note(f"WARNING: {name}: {r['warm_error_count']} warm-up errors: {r['warm_errors']}")
    if r["error_count"] or r["missed"] or r["events"] < expected_min:
        table.note(
            f"WARNING: {name} saw {r['events']:,} events ({r['missed']} missed, "
            f"{r['error_count']} errors): {r['errors']}"
        )


def _paced_rows(table: Table, variant: Variant, n: int, r: dict[str, Any], target: bool) -> None:
    gw, direct, emb = r["gateway"], r["direct"], r["embedded"]
    label = f"{variant.label} @{n}"
    for name, run in (("via /v1", gw), ("direct", direct)):
        _check_complete(table, f"{label} SDK {name}", run, run["wire_events"] - 4 * n)
        table.note(
            f"{label} SDK {name}: {run['events']:,} events ({run['stamped']:,} stamped) in "
            f"{run['wall']:.2f} s; latency p50 {1000 * run['p50']:.2f} / p99 "
            f"{1000 * run['p99']:.2f} / max {1000 * run['max']:.1f} ms; streams started (headers) "
            f"p50 {1000 * run['started_p50']:.0f} / last {1000 * run['started_max']:.0f} ms; "
            f"SDK CPU {run['cpu']:.2f} s, waiting for a CPU {run['waited']:.2f} s"
        )
    _check_complete(table, f"{label} embedded", emb, emb["wire_events"])
    table.note(
        f"{label} embedded ({variant.embedded}): latency p50 {1000 * emb['p50']:.2f} / p99 "
        f"{1000 * emb['p99']:.2f} ms; CPU {emb['cpu']:.2f} s, waiting for a CPU "
        f"{emb['waited']:.2f} s; daemon+gateway CPU {gw['gateway_cpu']:.2f} s, waiting for a "
        f"CPU {gw['gateway_waited']:.2f} s"
    )
    target = target and not _lost(table, gw)
    added_p50 = 1000 * (gw["p50"] - direct["p50"])
    added_p99 = 1000 * (gw["p99"] - direct["p99"])
    table.add(Row(f"{label}: p50 added latency (via /v1 - direct)", added_p50, "ms",
                  1000 * direct["p50"], "SDK direct p50"))  # fmt: skip
    table.add(Row(f"{label}: p99 added latency (via /v1 - direct)", added_p99, "ms",
                  _ADDED_P99_BOUND_MS, "the 5 ms bound",
                  at_most(1.0) if target else None))  # fmt: skip
    relayed = _us(gw["gateway_cpu"], gw["wire_events"])
    table.add(Row(f"{label}: daemon CPU per relayed event", relayed, "µs",
                  _us(emb["cpu"], emb["wire_events"]), f"embedded ({variant.embedded})",
                  at_most(2.0) if target else None))  # fmt: skip


def _lost(table: Table, r: dict[str, Any]) -> bool:
    """Every run through /v1 lost events: its rows measure a stream that was cut short, and get
    no target (the warnings above say what happened)."""
    if _broken(r):
        table.note("every run through /v1 lost events or failed: the next rows have no target")
        return True
    return False


def _wire_rows(table: Table, variant: Variant, r: dict[str, Any]) -> None:
    gw, direct, emb = r["gateway"], r["direct"], r["embedded"]
    label = f"{variant.label} 1 x {gw['wire_events']:,}"
    for name, run in (("via /v1", gw), ("direct", direct)):
        _check_complete(table, f"{label} SDK {name}", run, run["wire_events"] - 4)
    rate_gw = gw["events"] / max(gw["consumed"], 1e-9)
    rate_direct = direct["events"] / max(direct["consumed"], 1e-9)
    table.add(Row(f"{label}: SDK via /v1", rate_gw, "events/s", rate_direct,
                  "SDK direct"))  # fmt: skip
    table.note(
        f"SDK via /v1 {gw['consumed']:.2f} s (SDK CPU {gw['cpu']:.2f} s, daemon+gateway CPU "
        f"{gw['gateway_cpu']:.2f} s), direct {direct['consumed']:.2f} s (SDK CPU "
        f"{direct['cpu']:.2f} s), embedded {emb['settled']:.2f} s (CPU {emb['cpu']:.2f} s)"
    )
    relayed = _us(gw["gateway_cpu"], gw["wire_events"])
    table.add(Row(f"{label}: daemon CPU per relayed event", relayed, "µs",
                  _us(emb["cpu"], emb["wire_events"]), f"embedded ({variant.embedded})",
                  None if _lost(table, gw) else at_most(2.0)))  # fmt: skip


def _stability(table: Table, label: str, r: dict[str, Any]) -> None:
    """Every run's ratio when there were several (each row keeps one)."""
    runs = r["all"]
    if len(runs["gateway"]) < 2:
        return
    ratios = [
        (g["gateway_cpu"] / g["wire_events"]) / (e["cpu"] / e["wire_events"])
        for g, e in zip(runs["gateway"], runs["embedded"], strict=True)
    ]
    line = f"{label} all runs: CPU ratio {', '.join(f'{x:.2f}' for x in ratios)}"
    if runs["gateway"][0]["stamped"]:
        added = [
            1000 * (g["p99"] - d["p99"])
            for g, d in zip(runs["gateway"], runs["direct"], strict=True)
        ]
        line += f"; p99 added {', '.join(f'{x:.1f}' for x in added)} ms"
    table.note(line)


def main(*, smoke: bool = False) -> Table:
    """Run every front-door row and return the table (printed as it goes)."""
    sizes = Sizes.smoke() if smoke else Sizes.full()
    table = Table.for_run("front_door", smoke=smoke)
    table.note(
        f"daemon + gateway (or the embedded daemon) on core {_DAEMON_CORE}, the SDK and the load "
        f"server on core {_CLIENT_CORE}; each row keeps the least-disturbed of its runs"
    )
    for load in sizes.paced:
        table.note(f"paced: {load.describe()}, {load.repeats} run(s) per row")
        with open_load_server(
            core=_CLIENT_CORE,
            events=load.events,
            pace_ms=load.pace_ms,
            pace_events=1,
            spread=load.spread,
            stamp=True,
            unique_ids=True,
        ) as server:
            for variant in [_VARIANTS[name] for name in load.variants]:
                r = _measure_variant(
                    server, variant, load.streams, load.events, load.repeats, sizes.timeout
                )
                _paced_rows(table, variant, load.streams, r, target=load.target)
                _stability(table, f"{variant.label} @{load.streams}", r)
    table.note(f"one unpaced stream of {sizes.wire_events:,} events, {sizes.wire_repeats} run(s)")
    with open_load_server(core=_CLIENT_CORE, events=sizes.wire_events, unique_ids=True) as server:
        for variant in [_VARIANTS[name] for name in sizes.wire]:
            r = _measure_variant(server, variant, 1, sizes.wire_events, sizes.wire_repeats,
                                 sizes.timeout)  # fmt: skip
            _wire_rows(table, variant, r)
            _stability(table, f"{variant.label} 1 x {sizes.wire_events:,}", r)
    _notes(table)
    return table


def _notes(table: Table) -> None:
    for line in (
        "How to read it:",
        "- added latency: per text delta, the SDK's time.monotonic() on arrival minus the load "
        "server's stamp at send, through /v1 minus direct (a difference of percentiles of two "
        "runs). The SDK shares core 1 with the load server in both runs.",
        "- CPU per relayed event: the daemon + gateway process's CPU from the first measured "
        "request until 0.3 s after the SDK saw the last event, / the events the load server "
        "sent (Chat: the usage chunk is not relayed to a client that did not ask for it); the "
        "reference is bench/daemon's embedded row on the same load and core.",
    ):
        table.note(line)
