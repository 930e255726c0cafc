"""A load server for the wire and daemon benchmarks: pre-encoded SSE bodies on plain sockets.

A benchmark's load server must never be the bottleneck, so this one does almost nothing per
request: every body (Chat Completions framing or Responses framing, with realistic event shapes
taken from the recordings in `fixtures/recorded/`) is generated and HTTP-chunk-encoded once, and a
request is answered by handing slices of those bytes to `socket.send`. It is a single-threaded
`selectors` loop (HTTP/1.1, keep-alive), meant to run in its own process pinned to the other core
(`LoadServer` does that through `bench._common.start_pinned`), and it reports its own CPU time so
a bench can print it beside the client's.

Requests (any method; the request body is read and discarded):

* a path containing ``chat/completions`` → a Chat Completions stream (`data: {chunk}` frames:
  role chunk, content chunks, finish chunk, usage chunk, then `data: [DONE]`);
* a path containing ``/responses`` → a Responses stream (`event:` + `data:` frames with
  `sequence_number`: created, in_progress, output_item.added, content_part.added, output_text
  deltas, the `.done` events, response.completed);
* ``/_stats`` → JSON: CPU seconds, requests served, connections accepted (this request's own
  included), streams in flight, late ticks;
* a path ending in ``/models`` → an empty model list (``{"object": "list", "data": []}``): a
  client opens its connections with it before a measured run (`bench.cluster`).

Spread (``spread=k``): paced streams are dealt into k groups by arrival, and each tick writes to
one group, so a stream gets an event every k ticks and the load is even over time, as independent
real streams are, instead of one burst per tick.

Response ids (``unique_ids=True``): every Responses stream gets an id of its own, written over the
shared one (same width) in a copy of just the sends that hold it.

Every stream holds exactly `events` JSON events (header ``x-bench-events`` overrides the server's
default). Pacing: with ``pace_ms > 0`` every stream gets ``pace_events`` events per tick of
``pace_ms`` (header ``x-bench-pace-events``, 0 = as fast as possible). One tick writes to every
due socket in a single pass over the streams in flight, so 1,000 concurrent paced streams cost one
`send` each per tick and nothing else.

Send stamps (``stamp=True``, or header ``x-bench-stamp: 1``): every text delta carries the
`time.monotonic()` reading of the moment the server queued it for `send`, appended to the token as
``|`` + a fixed-width number (`STAMP_WIDTH` characters), so a client on the same machine can
measure delivery latency per event (`read_stamp`); the Linux monotonic clock is system-wide. The
bytes are patched in place of a placeholder of the same width, so a stamped body costs one copy of
the send and one clock reading per send, and every chunk keeps its length.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Final

import attrs

from bench._common import cpu_seconds, start_pinned

__all__ = [
    "STAMP_WIDTH",
    "LoadServer",
    "ServerOptions",
    "chat_events",
    "encode_stream",
    "main",
    "open_load_server",
    "read_stamp",
    "responses_events",
    "serve",
    "stream_text",
]

#: Token texts cycled through the deltas (from recordings 02 and 13, plus escapes and non-ASCII
#: text so JSON decoding is not all-ASCII fast paths).
_TOKENS = (
    "I'm",
    " unable",
    " to",
    " provide",
    " real",
    "-time",
    " weather",
    " updates",
    ".",
    " The",
    " capital",
    " of",
    " France",
    " is",
    " Paris",
    ",",
    ' "quoted"',
    "\n\n",
    " café",
    " naïve",
    " 東京",
    " 😊",
    " tab\there",
    " 42",
)

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#: Characters of a send stamp (`time.monotonic()` as ``%0{STAMP_WIDTH}.6f``).
STAMP_WIDTH = 17
#: What a stamped body holds where the stamp goes (no token contains ``~``).
_PLACEHOLDER = "~" * STAMP_WIDTH
_STAMP_FORMAT = b"%0" + str(STAMP_WIDTH).encode() + b".6f"


def read_stamp(text: str) -> float | None:
    """The server's send time (`time.monotonic()`) stamped on a text delta, or None if unstamped."""
    if len(text) <= STAMP_WIDTH or text[-STAMP_WIDTH - 1] != "|":
        return None
    return float(text[-STAMP_WIDTH:])


@attrs.frozen
class ServerOptions:
    """How the load server answers (all streams share the tick; counts may vary per request)."""

    host: str = "127.0.0.1"
    port: int = 0
    #: JSON events per stream unless a request's ``x-bench-events`` header says otherwise.
    events: int = attrs.field(default=100_000, validator=attrs.validators.ge(3))
    #: Events per HTTP chunk: 1 is what the real API does (it flushes every event).
    events_per_chunk: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    #: Tick length for paced streams, in milliseconds (0: no pacing at all).
    pace_ms: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    #: Events written per stream per tick (0: unpaced unless a request asks for pacing).
    pace_events: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: Stamp every text delta with its send time unless a request's ``x-bench-stamp`` says not.
    stamp: bool = False
    #: Give every Responses stream a response id of its own (durable streams key the daemon's
    #: registry by it); otherwise they all share one.
    unique_ids: bool = False
    #: Paced streams are dealt into this many groups, one group written per tick: a stream
    #: sends every ``spread``-th tick, and the streams' events are not all sent at one instant
    #: (1: every stream on every tick).
    spread: int = attrs.field(default=1, validator=attrs.validators.ge(1))


# ---------------------------------------------------------------------------------------------
# Bodies


def _obfuscation(rng: random.Random) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(2, 12)))


def _token(i: int, stamp: bool = False) -> str:
    return f"{_TOKENS[i % len(_TOKENS)]}|{_PLACEHOLDER}" if stamp else _TOKENS[i % len(_TOKENS)]


def stream_text(deltas: int) -> str:
    """The text that `deltas` text deltas of these (unstamped) streams add up to."""
    return "".join(_token(i) for i in range(deltas))


def chat_events(n: int, *, seed: int = 0, stamp: bool = False) -> list[dict[str, Any]]:
    """`n` Chat Completions chunks shaped like the 2026 recordings (usage null, obfuscation)."""
    rng = random.Random(seed)
    head = {
        "id": "chatcmpl-Dx0Xq5Xx9rHB2ehcHZCRDsnuymUXc",
        "object": "chat.completion.chunk",
        "created": 1782955818,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_d0469e1700",
    }

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> dict[str, Any]:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        return {**head, "choices": choices, "usage": None, **extra}

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [
        chunk({"content": _token(i, stamp)}, None, obfuscation=_obfuscation(rng))
        for i in range(n - 3)
    ]
    events.append(chunk({}, "stop", obfuscation=_obfuscation(rng)))
    usage = {
        "prompt_tokens": 14,
        "completion_tokens": n - 3,
        "total_tokens": n + 11,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    events.append({**head, "choices": [], "usage": usage, "obfuscation": _obfuscation(rng)})
    return events


#: The response id of every Responses body (unless ``unique_ids``: then patched per stream).
_RESPONSE_ID = "resp_0850765c843cca5300699cc47d93c0819089a181f5feeff8eb"


def _response(status: str, output: list[dict[str, Any]], usage: Any) -> dict[str, Any]:
    return {
        "id": _RESPONSE_ID,
        "object": "response",
        "created_at": 1771881597,
        "status": status,
        "background": False,
        "completed_at": 1771881600 if status == "completed" else None,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4o-2024-08-06",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def responses_events(n: int, *, seed: int = 0, stamp: bool = False) -> list[dict[str, Any]]:
    """`n` Responses events shaped like recording 10: a message whose text arrives in deltas.

    With `stamp`, the deltas carry stamp placeholders; the `.done` events' text does not."""
    rng = random.Random(seed)
    item_id = "msg_0850765c843cca5300699cc48053e88190bf5bbc9d0c8decd5"
    deltas = n - 8
    text = stream_text(deltas)
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    done_part = {**part, "text": text}
    item = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress"}
    done_item = {**item, "status": "completed", "content": [done_part]}
    usage = {
        "input_tokens": 15,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": deltas,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": deltas + 15,
    }
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress", [], None)},
        {"type": "response.in_progress", "response": _response("in_progress", [], None)},
        {"type": "response.output_item.added", "output_index": 0, "item": {**item, "content": []}},
        {"type": "response.content_part.added", **where, "part": part},
    ]
    events += [
        {
            "type": "response.output_text.delta",
            **where,
            "delta": _token(i, stamp),
            "logprobs": [],
            "obfuscation": _obfuscation(rng),
        }
        for i in range(deltas)
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": done_part},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": _response("completed", [done_item], usage)},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _frame(framing: str, event: dict[str, Any] | None) -> bytes:
    if event is None:
        return b"data: [DONE]\n\n"
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    if framing == "responses":
        return f"event: {event['type']}\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()


def _chunked(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def encode_stream(
    framing: str, events: int, *, events_per_chunk: int = 1, stamp: bool = False
) -> list[bytes]:
    """The body of one stream, HTTP-chunk-encoded, as one `bytes` per event group.

    Each element holds `events_per_chunk` SSE frames in one HTTP chunk; the last element also
    holds the terminating zero-length chunk (and, for Chat, the `[DONE]` frame). With `stamp`,
    text deltas hold placeholders the server overwrites with the send time.
    """
    if framing == "chat":
        frames = [_frame("chat", e) for e in chat_events(events, stamp=stamp)]
        frames[-1] += _frame("chat", None)
    elif framing == "responses":
        frames = [_frame("responses", e) for e in responses_events(events, stamp=stamp)]
    else:
        raise ValueError(f"unknown framing {framing!r}")
    groups = [
        _chunked(b"".join(frames[i : i + events_per_chunk]))
        for i in range(0, len(frames), events_per_chunk)
    ]
    groups[-1] += b"0\r\n\r\n"
    return groups


# ---------------------------------------------------------------------------------------------
# The server


_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\n"
    b"cache-control: no-cache\r\n"
    b"x-request-id: req_bench\r\n"
    b"openai-processing-ms: 1\r\n"
)


_MODELS: Final = b'{"object":"list","data":[]}'


def _plain(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Bodies:
    """Encoded bodies by (framing, events, events per send, stamped), generated once each."""

    def __init__(self, events_per_chunk: int) -> None:
        self._events_per_chunk = events_per_chunk
        self._groups: dict[tuple[str, int, bool], list[bytes]] = {}
        self._sends: dict[tuple[str, int, int, bool], list[memoryview]] = {}
        self._stamps: dict[tuple[str, int, int], list[tuple[int, ...]]] = {}
        self._ids: dict[tuple[str, int, int, bool], list[tuple[int, ...]]] = {}

    def sends(
        self, framing: str, events: int, per_send: int, stamp: bool = False
    ) -> list[memoryview]:
        """The body cut into sends of `per_send` event groups (0: one send for everything)."""
        key = (framing, events, per_send, stamp)
        if key not in self._sends:
            groups = self._groups.get((framing, events, stamp))
            if groups is None:
                groups = encode_stream(
                    framing, events, events_per_chunk=self._events_per_chunk, stamp=stamp
                )
                self._groups[(framing, events, stamp)] = groups
            step = per_send or len(groups)
            self._sends[key] = [
                memoryview(b"".join(groups[i : i + step])) for i in range(0, len(groups), step)
            ]
        return self._sends[key]

    def id_offsets(
        self, framing: str, events: int, per_send: int, stamp: bool
    ) -> list[tuple[int, ...]]:
        """Where the response id is in each send of a body."""
        key = (framing, events, per_send, stamp)
        if key not in self._ids:
            needle = _RESPONSE_ID.encode()
            found: list[tuple[int, ...]] = []
            for send in self.sends(framing, events, per_send, stamp):
                data, offsets, at = send.tobytes(), [], 0
                while (at := data.find(needle, at)) >= 0:
                    offsets.append(at)
                    at += len(needle)
                found.append(tuple(offsets))
            self._ids[key] = found
        return self._ids[key]

    def stamps(self, framing: str, events: int, per_send: int) -> list[tuple[int, ...]]:
        """Where the stamp placeholders are in each send of a stamped body."""
        key = (framing, events, per_send)
        if key not in self._stamps:
            placeholder = _PLACEHOLDER.encode()
            found: list[tuple[int, ...]] = []
            for send in self.sends(framing, events, per_send, True):
                data, offsets, at = send.tobytes(), [], 0
                while (at := data.find(placeholder, at)) >= 0:
                    offsets.append(at)
                    at += STAMP_WIDTH
                found.append(tuple(offsets))
            self._stamps[key] = found
        return self._stamps[key]


def _stamped(send: memoryview, offsets: tuple[int, ...]) -> memoryview:
    """A copy of `send` with the current `time.monotonic()` written at every offset."""
    if not offsets:
        return send
    data = bytearray(send)
    stamp = _STAMP_FORMAT % time.monotonic()
    for at in offsets:
        data[at : at + STAMP_WIDTH] = stamp
    return memoryview(data)


def _with_id(
    sends: list[memoryview], offsets: list[tuple[int, ...]], response_id: bytes
) -> list[memoryview]:
    """`sends` with `response_id` written at every offset (copies of the sends that hold it)."""
    out = []
    for send, at_each in zip(sends, offsets, strict=True):
        if at_each:
            data = bytearray(send)
            for at in at_each:
                data[at : at + len(response_id)] = response_id
            send = memoryview(data)
        out.append(send)
    return out


class _Conn:
    __slots__ = (
        "close_after",
        "group",
        "inbuf",
        "next_send",
        "out",
        "paced",
        "sock",
        "stamps",
        "want_write",
    )

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.out: deque[memoryview] = deque()
        #: The sends of a paced stream, and how many of them are queued already.
        self.paced: list[memoryview] | None = None
        self.next_send = 0
        #: Where the stamp placeholders are in each send of a stamped paced stream.
        self.stamps: list[tuple[int, ...]] | None = None
        self.close_after = False
        self.want_write = False
        #: Which of the `spread` groups of paced streams it belongs to.
        self.group = 0


class _Server:
    def __init__(self, options: ServerOptions, listener: socket.socket) -> None:
        self.options = options
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.bodies = _Bodies(options.events_per_chunk)
        self.paced: set[_Conn] = set()
        self.requests = 0
        self.connections = 0
        self.streams = 0
        self.ticks = 0
        self.late_ticks = 0
        self.running = True

    # -- bookkeeping ----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "requests": self.requests,
            "connections": self.connections,
            "paced_in_flight": len(self.paced),
            "late_ticks": self.late_ticks,
        }

    def _interest(self, conn: _Conn) -> None:
        want_write = bool(conn.out)
        if want_write != conn.want_write:
            conn.want_write = want_write
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
            self.selector.modify(conn.sock, events, conn)

    def _close(self, conn: _Conn) -> None:
        self.paced.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()

    # -- I/O ------------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            self.connections += 1
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock)
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _flush(self, conn: _Conn) -> None:
        out = conn.out
        try:
            while out:
                sent = conn.sock.send(out[0])
                if sent == len(out[0]):
                    out.popleft()
                else:
                    out[0] = out[0][sent:]
                    break
        except BlockingIOError:
            pass
        except OSError:
            self._close(conn)
            return
        if not out and conn.paced is None:
            if conn.close_after:
                self._close(conn)
                return
            self._handle_requests(conn)
            if conn.sock.fileno() < 0:
                return
        self._interest(conn)

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        if not conn.out and conn.paced is None:
            self._handle_requests(conn)
            if conn.sock.fileno() >= 0:
                self._interest(conn)

    # -- HTTP -----------------------------------------------------------------------------

    def _handle_requests(self, conn: _Conn) -> None:
        """Answer the next complete request in `conn.inbuf`, if there is one (one at a time)."""
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(conn.inbuf[:end]).decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(conn.inbuf) < end + 4 + length:
            return
        del conn.inbuf[: end + 4 + length]
        self.requests += 1
        parts = lines[0].split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        conn.close_after = headers.get("connection", "").lower() == "close"
        if path.startswith("/_stats"):
            conn.out.append(memoryview(_plain("200 OK", json.dumps(self.stats()).encode())))
        elif path.rstrip("/").endswith("/models"):
            conn.out.append(memoryview(_plain("200 OK", _MODELS)))
        elif "chat/completions" in path or "/responses" in path:
            framing = "chat" if "chat/completions" in path else "responses"
            events = int(headers.get("x-bench-events", self.options.events))
            per_tick = int(headers.get("x-bench-pace-events", self.options.pace_events))
            paced = per_tick > 0 and self.options.pace_ms > 0
            stamp = headers.get("x-bench-stamp", "1" if self.options.stamp else "0") == "1"
            head = _HEAD + (b"connection: close\r\n\r\n" if conn.close_after else b"\r\n")
            conn.out.append(memoryview(head))
            per_send = per_tick if paced else 0
            sends = self.bodies.sends(framing, events, per_send, stamp)
            stamps = self.bodies.stamps(framing, events, per_send) if stamp else None
            self.streams += 1
            if framing == "responses" and self.options.unique_ids:
                offsets = self.bodies.id_offsets(framing, events, per_send, stamp)
                unique = f"resp_bench{self.streams:0{len(_RESPONSE_ID) - 10}d}".encode()
                sends = _with_id(sends, offsets, unique)
            if paced:
                conn.paced, conn.next_send, conn.stamps = sends, 0, stamps
                conn.group = self.streams % self.options.spread
                self.paced.add(conn)
            elif stamps is not None:
                conn.out.extend(map(_stamped, sends, stamps))
            else:
                conn.out.extend(sends)
        else:
            conn.out.append(memoryview(_plain("404 Not Found", b'{"error":"not found"}')))
        self._flush(conn)

    def _tick(self) -> None:
        """Queue the next send of every paced stream (of this tick's group) and write to each
        socket once."""
        group = self.ticks % self.options.spread
        self.ticks += 1
        for conn in list(self.paced):
            sends = conn.paced
            if sends is None or conn.sock.fileno() < 0 or conn.group != group:
                continue
            if conn.stamps is None:
                conn.out.append(sends[conn.next_send])
            else:
                conn.out.append(_stamped(sends[conn.next_send], conn.stamps[conn.next_send]))
            conn.next_send += 1
            if conn.next_send == len(sends):
                conn.paced = None
                self.paced.discard(conn)
            self._flush(conn)

    # -- loop -----------------------------------------------------------------------------

    def run(self, wakeup: socket.socket) -> None:
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.selector.register(wakeup, selectors.EVENT_READ, "wakeup")
        tick = self.options.pace_ms / 1000
        next_tick = time.monotonic() + tick
        while self.running:
            timeout = None
            if self.paced:
                timeout = max(0.0, next_tick - time.monotonic())
            for key, mask in self.selector.select(timeout):
                if key.data is None:
                    self._accept()
                elif key.data == "wakeup":
                    self.running = False
                else:
                    conn: _Conn = key.data
                    if mask & selectors.EVENT_WRITE:
                        self._flush(conn)
                    if mask & selectors.EVENT_READ and conn.sock.fileno() >= 0:
                        self._readable(conn)
            now = time.monotonic()
            if not self.paced:
                next_tick = now + tick
            elif now >= next_tick:
                self._tick()
                next_tick += tick
                if next_tick < now:
                    self.late_ticks += 1
                    next_tick = now + tick


def serve(options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the load server until SIGTERM/SIGINT; return (and print) its final statistics.

    Prints ``loadserver listening on http://HOST:PORT`` once it accepts connections, and
    ``loadserver cpu_seconds=X requests=N`` when it stops. Every body for the default event count
    is generated before the first of those lines.
    """
    opts = ServerOptions(**(options or {}))
    listener = socket.create_server((opts.host, opts.port), backlog=4096)
    listener.setblocking(False)
    server = _Server(opts, listener)
    for framing in ("chat", "responses"):
        server.bodies.sends(framing, opts.events, 0)
        if opts.pace_ms > 0 and opts.pace_events > 0:
            server.bodies.sends(framing, opts.events, opts.pace_events)
        if opts.stamp:
            server.bodies.stamps(framing, opts.events, opts.pace_events if opts.pace_ms else 0)
    wake_r, wake_w = socket.socketpair()
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    previous = signal.set_wakeup_fd(wake_w.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    host, port = listener.getsockname()[:2]
    print(f"loadserver listening on http://{host}:{port}", flush=True)
    try:
        server.run(wake_r)
    finally:
        signal.set_wakeup_fd(previous)
        listener.close()
    stats = server.stats()
    print(f"loadserver cpu_seconds={stats['cpu_seconds']:.3f} requests={stats['requests']}")
    return stats


# ---------------------------------------------------------------------------------------------
# The client side: start it pinned, read its CPU


@attrs.frozen
class LoadServer:
    """A running load server process: its base URL and its CPU time so far."""

    url: str
    pid: int

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL (``…/v1``)."""
        return f"{self.url}/v1"

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        return cpu_seconds(self.pid)

    def stats(self) -> dict[str, Any]:
        """The server's ``/_stats`` (fetched on a connection of its own, which it counts)."""
        import httpx

        return dict(httpx.get(f"{self.url}/_stats", timeout=10).json())


@contextlib.contextmanager
def open_load_server(core: int | None = 1, **options: Any) -> Iterator[LoadServer]:
    """Start the load server in its own process (pinned to `core` with `taskset` when
    available) for the block. `options` are `ServerOptions` fields. Raises `RuntimeError` if it
    does not come up within 60 s."""
    with start_pinned(
        "bench._loadserver:serve",
        options,
        core=core,
        ready_prefix="loadserver listening on ",
        ready_timeout=60.0,
    ) as background:
        assert background.ready is not None
        url = background.ready.removeprefix("loadserver listening on ")
        yield LoadServer(url=url, pid=background.proc.pid)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench._loadserver [--port P] [--events N] [--pace-ms T --pace-events N]``."""
    parser = argparse.ArgumentParser(prog="python -m bench._loadserver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--events-per-chunk", type=int, default=1)
    parser.add_argument("--pace-ms", type=float, default=0.0)
    parser.add_argument("--pace-events", type=int, default=0)
    parser.add_argument("--stamp", action="store_true", help="stamp text deltas with send times")
    args = parser.parse_args(argv)
    serve(dict(vars(args)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
