"""Live demos of each feature, for ``python run.py demo FEATURE``: the original's two demo scripts
(``test_streaming_demo.erl``, ``test_advanced_streaming.erl``), better.

Each demo runs a whole daemon (the embedded server when no API key is set, paced so that
streaming is visible; the real API otherwise) and prints what happens as it happens: tokens as
they arrive (flushed one by one), tool calls and their results, background status changes (one
progress line updated in place on a terminal, plain lines otherwise) and a summary.

    FEATURES["stream"]      a chat stream with a tool call, then a plain text stream
    FEATURES["responses"]   a durable Responses stream with a reasoning summary
    FEATURES["background"]  two background responses: status transitions, a cancel, active()
    FEATURES["files"]       PNG and PDF uploads, input parts, list, a rejected GIF, delete
    FEATURES["agent"]       an agent with a calculator and a clock
    FEATURES["combined"]    a durable background stream with an image input, then a poll
"""

from __future__ import annotations

import datetime
import json
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TextIO

import attrs
import trio

from . import _samples
from ._console import Console, TerminalMarkdown
from ._demo_printing import StreamStats, describe, output_text, stream_printer
from ._handlers import handle_stream_events
from .actors import (
    ActorsLayerError,
    AgentReply,
    BackgroundStatus,
    PollingStopped,
    ToolCall,
    ToolResult,
)
from .config import Config
from .daemon import Daemon, open_daemon
from .mockapi import MockAPIConfig
from .openai import BadRequestError, OpenAIError, StreamEvent
from .supervisor import Missed

__all__ = [
    "AGENT_QUESTION",
    "FEATURES",
    "TITLES",
    "Console",
    "DemoContext",
    "Models",
    "Pacing",
    "animated_gif_bytes",
    "pdf_bytes",
    "png_bytes",
    "run_demo",
]


# -- configuration -------------------------------------------------------------------------------


@attrs.frozen
class Models:
    """The models the demos ask for (the embedded server answers to any name)."""

    #: Chat, background, files and agent demos.
    chat: str = "gpt-4o-mini"
    #: The reasoning-summary demo.
    reasoning: str = "o4-mini"


@attrs.frozen
class Pacing:
    """How the embedded server paces its answers, so that streaming can be watched."""

    #: Seconds between streamed tokens.
    token_delay: float = 0.03
    #: Seconds a background response stays queued.
    queue_delay: float = 1.0
    #: The server's ``openai-poll-after-ms`` hint (how often the poller looks).
    poll_after_ms: int = 250
    #: The poller's interval before the first hint (``[background] poll_interval``).
    poll_interval: float = 0.25

    def mockapi(self, config: Config) -> MockAPIConfig:
        return MockAPIConfig(
            # Always a free port: a daemon of the same configuration may be running.
            host=config.mockapi.host,
            port=0,
            token_delay=self.token_delay,
            queue_delay=self.queue_delay,
            poll_after_ms=self.poll_after_ms,
            keepalive_interval=config.mockapi.keepalive_interval,
        )


@attrs.frozen
class DemoContext:
    """What a demo works with."""

    daemon: Daemon
    console: Console
    models: Models
    #: A fresh directory for the demo's files (the file actor's only readable root).
    workdir: Path
    pacing: Pacing

    @property
    def embedded(self) -> bool:
        return self.daemon.mockapi is not None

    def scenario(self, name: str, **extra: int) -> dict[str, Any]:
        """Request parameters choosing the embedded server's scenario (nothing on the real API)."""
        if not self.embedded:
            return {}
        metadata = {"mock_scenario": name, **{k: str(v) for k, v in extra.items()}}
        return {"metadata": metadata}

    def made_up(self, call_id: str) -> str:
        """A note for a tool call whose arguments the embedded server made up (no words of the
        question gave them), else ``""`` (and always on the real API)."""
        if self.daemon.mockapi is None:
            return ""
        names = self.daemon.mockapi.state.made_up_arguments.get(call_id)
        if not names:
            return ""
        return f"  (made up by the embedded server, not from the question: {', '.join(names)})"


_TERMINAL: Final = frozenset({"completed", "failed", "cancelled", "incomplete"})


# -- sample files --------------------------------------------------------------------------------


def png_bytes(size: int = 64) -> bytes:
    """A ``size``x``size`` RGB PNG: a blue-to-orange gradient with a white diagonal."""
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter: none
        for x in range(size):
            if abs(x - y) <= 1:
                row += b"\xff\xff\xff"
            else:
                t = (x + y) * 255 // (2 * size - 2)
                row += bytes((t, 96, 255 - t))
        rows.append(bytes(row))
    return _samples.png_image(size, size, 2, b"".join(rows))


def pdf_bytes(text: str = "streamvisor demo") -> bytes:
    """A one-page PDF 1.4 showing ``text``, with a correct cross-reference table."""
    return _samples.pdf(text, font_size=18, at=(20, 50), page=(300, 100))


def animated_gif_bytes(frames: int = 3) -> bytes:
    """A looping 1x1 GIF89a with ``frames`` frames (the API refuses animated GIFs)."""
    return _samples.animated_gif(frames)


# -- the demos -----------------------------------------------------------------------------------

WEATHER_TOOL: Final = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "London", "Tokyo"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}

_WEATHER: Final = {"Paris": (18, "light rain"), "London": (14, "overcast"), "Tokyo": (24, "sunny")}


def get_weather(city: str) -> str:
    """The demo's weather service: a fixed report per city."""
    degrees, sky = _WEATHER.get(city, (20, "clear"))
    return json.dumps({"city": city, "temperature_c": degrees, "conditions": sky})


async def _chat_stream(
    ctx: DemoContext, messages: list[dict[str, Any]], **params: Any
) -> tuple[StreamStats, dict[str, Any] | None]:
    """Run one chat stream on session ``demo``, printing it; return its stats and completion."""
    stats = StreamStats()
    async with ctx.daemon.subscribe("session.demo") as events:
        session = await ctx.daemon.open_session("demo")
        ticket = await session.chat(ctx.models.chat, messages, **params)
        await handle_stream_events(
            events, stream_printer(ctx.console, stats, canned=ctx.embedded), timeout=60
        )
    outcome = await session.wait(ticket.stream_id, timeout=10)
    return stats, dict(outcome.response) if outcome.response is not None else None


async def demo_stream(ctx: DemoContext) -> None:
    """A chat stream that calls a tool (run here, its result sent back and answered, streamed),
    then a plain text stream — `handle_stream_events` with `format_stream_event`."""
    console = ctx.console
    console.heading("1. a chat stream with a tool call")
    question = "What is the weather like in Paris right now?"
    console.line(f"  user: {question}")
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    stats, completion = await _chat_stream(ctx, messages, tools=[WEATHER_TOOL])
    console.line(f"  → {stats.summary()}")
    streams, deltas = 1, len(stats.text)
    message = dict((completion or {}).get("choices", [{}])[0].get("message") or {})
    calls = message.get("tool_calls") or []
    if calls:
        messages.append({k: v for k, v in message.items() if v is not None})
        for call in calls:
            arguments = json.loads(call["function"]["arguments"] or "{}")
            if note := ctx.made_up(call["id"]):
                console.line(note)
            result = get_weather(str(arguments.get("city", "")))
            console.line(f"  ← {call['function']['name']} returned {result}")
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
        console.line("  (sending the tool result back)")
        stats, _ = await _chat_stream(ctx, messages, tools=[WEATHER_TOOL])
        console.line(f"  → {stats.summary()}")
        streams, deltas = streams + 1, deltas + len(stats.text)
    else:
        console.line("  (the model answered without calling the tool)")

    console.heading("2. a plain text stream")
    prompt = "Write a haiku about a supervisor restarting a crashed worker."
    console.line(f"  user: {prompt}")
    stats, _ = await _chat_stream(ctx, [{"role": "user", "content": prompt}])
    console.line(f"  → {stats.summary()}")
    streams, deltas = streams + 1, deltas + len(stats.text)
    console.line()
    console.line(
        f"summary: {streams} chat streams, {len(calls)} tool call(s) run and answered, "
        f"{deltas} text deltas printed as they arrived"
    )


async def demo_responses(ctx: DemoContext) -> None:
    """A durable Responses stream (background + stream + store: it survives drops) from a
    reasoning model, with its reasoning summary and every semantic event."""
    console = ctx.console
    console.heading(f"a durable Responses stream from {ctx.models.reasoning}, reasoning summary")
    prompt = "In two sentences: why should a poller that never gives up be supervised?"
    console.line(f"  user: {prompt}")
    stats = StreamStats()
    async with ctx.daemon.subscribe("session.reasoner") as events:
        session = await ctx.daemon.open_session("reasoner")
        reasoning = {"effort": "low", "summary": "auto"}
        scenario = ctx.scenario("reasoning", mock_queue_ms=300)
        try:
            ticket = await session.respond(
                ctx.models.reasoning, prompt, durable=True, reasoning=reasoning, **scenario
            )
        except BadRequestError as exc:
            # Reasoning summaries need a verified organization on the real API; the stream is
            # still worth showing without one. (A 400 at create publishes nothing.)
            if "summar" not in str(exc).lower():
                raise
            console.line(f"  (no reasoning summary: {exc}; asking without one)")
            ticket = await session.respond(
                ctx.models.reasoning, prompt, durable=True, reasoning={"effort": "low"}
            )
        console.line(f"  response {ticket.response_id} (durable={ticket.durable})")
        printer = stream_printer(console, stats, verbose=True, canned=ctx.embedded)
        await handle_stream_events(events, printer, timeout=120)
    outcome = await session.wait(ticket.stream_id, timeout=10)
    usage = (outcome.response or {}).get("usage") or {}
    reasoning_tokens = (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
    console.line(f"  → {stats.summary()}")
    kinds = ", ".join(f"{kind} {n}" for kind, n in stats.events.items())
    console.line(f"  event types: {kinds}")
    console.line()
    console.line(
        f"summary: {outcome.status}; reasoning summary {len(''.join(stats.reasoning))} chars; "
        f"usage {usage.get('input_tokens')} in / {usage.get('output_tokens')} out "
        f"({reasoning_tokens} reasoning)"
    )


async def demo_background(ctx: DemoContext) -> None:
    """Two background responses: their status transitions as the poller sees them, a cancel,
    and `active()` shrinking to nothing."""
    console = ctx.console
    background = ctx.daemon.background
    console.heading("two background responses, polled by the supervised poller")
    statuses: dict[str, str] = {}
    names: dict[str, str] = {}
    transitions: list[str] = []
    async with ctx.daemon.subscribe("background.*") as events:
        first = await background.create(
            "Write a short paragraph about Erlang's supervision trees.",
            ctx.models.chat,
            max_output_tokens=300,
            **ctx.scenario("long:80"),
        )
        second = await background.create(
            "Write a long essay about trio's nurseries and structured concurrency.",
            ctx.models.chat,
            max_output_tokens=2000,
            **ctx.scenario("long:400"),
        )
        for label, record in (("A", first), ("B", second)):
            names[record.response_id] = label
            statuses[record.response_id] = record.status
            console.line(f"  created {label} = {record.response_id} ({record.status})")
        actives = [len(await background.active())]
        console.line(f"  active(): {actives[-1]}")

        shown = ""

        def show() -> None:
            nonlocal shown
            state = "  ".join(f"{names[r]}: {s}" for r, s in statuses.items())
            if state != shown:
                shown = state
                console.progress(f"  [{state}]")

        cancelled = False
        show()
        with trio.fail_after(120):
            async for item in events:
                if isinstance(item, BackgroundStatus) and item.response_id in names:
                    statuses[item.response_id] = item.status
                    transitions.append(
                        f"{names[item.response_id]}: {item.previous or 'new'} → {item.status}"
                    )
                    show()
                elif isinstance(item, PollingStopped):
                    console.line(f"  polling stopped for {item.response_id}: {item.error}")
                    break
                elif isinstance(item, Missed):
                    console.line(f"  ({item.count} status events missed)")
                status_b = statuses[second.response_id]
                if not cancelled and status_b in _TERMINAL:
                    cancelled = True
                    console.line(f"  B finished ({status_b}) before it could be cancelled")
                elif not cancelled and status_b != "queued":
                    cancelled = True
                    final = await background.cancel(second.response_id)
                    statuses[second.response_id] = final["status"]
                    console.line(f"  cancel(B) → {final['status']}")
                    actives.append(len(await background.active()))
                    console.line(f"  active(): {actives[-1]}")
                    show()
                if all(s in _TERMINAL for s in statuses.values()):
                    break
    actives.append(len(await background.active()))
    console.line(f"  active(): {actives[-1]}")
    console.line("  transitions seen: " + "; ".join(transitions))
    polled = await background.poll(first.response_id)
    text = output_text(polled)
    console.line(f"  poll(A) → {polled['status']}: {text[:100]}{'…' if len(text) > 100 else ''}")
    console.line()
    console.line(
        f"summary: A {statuses[first.response_id]}, B {statuses[second.response_id]}; "
        f"{len(transitions)} status changes seen; active() {' → '.join(map(str, actives))}"
    )


async def demo_files(ctx: DemoContext) -> None:
    """Uploads whose type is sniffed from the content (not the name), `input_image` /
    `input_file` parts, `list()`, an animated GIF refused before any upload, `delete()`."""
    console = ctx.console
    files = ctx.daemon.files
    console.heading(f"files under {ctx.workdir}")
    png = trio.Path(ctx.workdir / "photo.jpg")  # a PNG under a misleading name
    pdf = trio.Path(ctx.workdir / "report.pdf")
    gif = trio.Path(ctx.workdir / "spinner.gif")
    await png.write_bytes(png_bytes())
    await pdf.write_bytes(pdf_bytes())
    await gif.write_bytes(animated_gif_bytes())

    inline = await files.image_input(Path(png), via="data_url")
    console.line(f"  {png.name}: detected {inline['image_url'].split(';')[0][5:]} (from its bytes)")
    inline_pdf = await files.file_input(Path(pdf), via="data")
    console.line(f"  {pdf.name}: detected {inline_pdf['file_data'].split(';')[0][5:]}")

    uploaded = await files.upload(Path(png), purpose="vision")
    console.line(
        f"  upload({png.name}) → {uploaded['id']} ({uploaded.get('bytes')} bytes, "
        f"purpose={uploaded.get('purpose')})"
    )
    image = await files.image_input(Path(png))
    same = " (the same file: identical bytes are not uploaded twice)"
    console.line(
        f"  image_input → {json.dumps(image)}{same if image['file_id'] == uploaded['id'] else ''}"
    )
    document = await files.file_input(Path(pdf))
    console.line(f"  file_input  → {json.dumps(document)}")
    totals = files.validate_inputs(
        [{"role": "user", "content": [{"type": "input_text", "text": "Compare."}, image, document]}]
    )
    console.line(
        f"  validate_inputs: ok ({totals.images} image(s), {totals.image_bytes} bytes inline)"
    )

    # Only the demo's own files are shown and deleted: with a real key the account may hold
    # many others.
    ours = {uploaded["id"], image["file_id"], document["file_id"]}
    listed = await files.list()
    mine = [file for file in listed if file.get("id") in ours]
    console.line(f"  list(): {len(listed)} file(s), {len(mine)} of them the demo's:")
    for file in mine:
        console.line(
            f"    {file['id']}  {file.get('filename')!s:<12} {file.get('bytes')!s:>6} bytes  "
            f"purpose={file.get('purpose')}"
        )

    rejected = "nothing"
    try:
        await files.image_input(Path(gif))
    except ActorsLayerError as exc:
        rejected = f"{gif.name} ({type(exc).__name__})"
        console.line(f"  {gif.name}: rejected before upload: {type(exc).__name__}: {exc}")
    else:
        console.line(f"  {gif.name}: unexpectedly accepted")

    for file_id in sorted(ours):
        result = await files.delete(file_id)
        console.line(f"  delete({file_id}) → deleted={result.get('deleted')}")
    left = [file for file in await files.list() if file.get("id") in ours]
    console.line(f"  list(): {len(left)} of the demo's files left")
    console.line()
    console.line(
        f"summary: {len(ours)} uploaded, {len(mine)} listed, rejected {rejected}, "
        f"{len(ours) - len(left)} deleted"
    )


def calculator(a: float, op: Literal["add", "subtract", "multiply", "divide"], b: float) -> float:
    """Arithmetic on two numbers: add, subtract, multiply or divide."""
    if op == "add":
        return a + b
    if op == "subtract":
        return a - b
    if op == "multiply":
        return a * b
    return a / b


def clock() -> str:
    """The current date and time in UTC (ISO 8601)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


#: What the agent demo asks.
AGENT_QUESTION = "What is 12.5 multiplied by 4, and what time is it now (UTC)?"


async def demo_agent(ctx: DemoContext) -> None:
    """An agent with two Python tools (a calculator and a clock) answering one question; its
    tool calls, their results and its answer's tokens are shown as they happen."""
    console = ctx.console
    console.heading("an agent with a calculator and a clock")
    agent = await ctx.daemon.open_agent(
        "helper",
        model=ctx.models.chat,
        instructions="Use the tools for arithmetic and for the time. Answer briefly.",
        tools=[calculator, clock],
        options=ctx.scenario("tools"),
    )
    for tool in await agent.tools():
        console.line(f"  tool {tool.name}({', '.join(tool.parameters.get('properties', {}))})")
    question = AGENT_QUESTION
    console.line(f"  user: {question}")
    reply: AgentReply | None = None
    finished: set[str] = set()  # responses whose terminal event was shown
    markdown = TerminalMarkdown(bold=console.tty)
    speaker = "assistant (canned)" if ctx.embedded else "assistant"
    streamed = False

    def answered() -> bool:
        # The agent publishes a response's events before it replies, so the turn's events have
        # all been shown once the reply is in and its last response's terminal event was seen.
        return reply is not None and (not reply.response_ids or reply.response_ids[-1] in finished)

    async with ctx.daemon.subscribe(agent.topic) as events, trio.open_nursery() as nursery:

        async def ask() -> None:
            nonlocal reply
            reply = await agent.ask(question, timeout=120)
            if answered():
                nursery.cancel_scope.cancel()

        nursery.start_soon(ask)
        async for event in events:
            if isinstance(event, ToolCall):
                console.line(f"  → tool call {event.name}({event.arguments})  [{event.call_id}]")
                if note := ctx.made_up(event.call_id):
                    console.line(note)
            elif isinstance(event, ToolResult):
                flag = " (error)" if event.is_error else ""
                console.line(f"  ← {event.name} returned {event.output}{flag}")
            elif isinstance(event, StreamEvent):
                delta = event.data.get("delta")
                if event.type == "response.output_text.delta" and isinstance(delta, str):
                    streamed = True
                    console.token(speaker, markdown.feed(delta))
                    continue
                if rest := markdown.finish():
                    console.token(speaker, rest)
                if event.type == "response.created" or event.terminal:
                    console.line(f"  #{event.sequence_number:<3} {describe(event)}")
                if event.terminal and event.response_id is not None:
                    finished.add(event.response_id)
                    if answered():
                        nursery.cancel_scope.cancel()
    assert reply is not None
    if not streamed:  # the answer's tokens were not shown as they came
        console.line(f"  answer: {reply.text}")
    console.line()
    console.line(
        f"summary: {reply.status}: {len(reply.tool_calls)} tool call(s) over "
        f"{reply.usage.requests} model request(s), {reply.usage.total_tokens} tokens"
    )


async def demo_combined(ctx: DemoContext) -> None:
    """An image input in a durable background response, streamed live (background + stream +
    store), then fetched again with `background.poll`."""
    console = ctx.console
    console.heading("a background response with an image input, streamed live")
    path = ctx.workdir / "gradient.png"
    await trio.Path(path).write_bytes(png_bytes())
    image = await ctx.daemon.files.image_input(path, detail="low")
    console.line(f"  image_input → {json.dumps(image)}")
    content = [{"type": "input_text", "text": "Describe this image in one sentence."}, image]
    console.line(f"  user: {content[0]['text']} [+ {path.name}]")
    stats = StreamStats()
    async with ctx.daemon.subscribe("session.vision") as events:
        session = await ctx.daemon.open_session("vision")
        ticket = await session.respond(
            ctx.models.chat,
            [{"role": "user", "content": content}],
            durable=True,
            **ctx.scenario("echo", mock_queue_ms=int(ctx.pacing.queue_delay * 1000)),
        )
        console.line(f"  response {ticket.response_id} (durable={ticket.durable})")
        await handle_stream_events(
            events, stream_printer(console, stats, canned=ctx.embedded), timeout=120
        )
    console.line(f"  → {stats.summary()}")
    polled = await ctx.daemon.background.poll(ticket.response_id or "")
    console.line(f"  background.poll → {polled['status']}: {output_text(polled)}")
    record = await ctx.daemon.background.get(ticket.response_id or "")
    active = len(await ctx.daemon.background.active())
    console.line(f"  registry: {record.status}, active(): {active}")
    console.line()
    console.line(
        f"summary: an input_image answered by a durable background stream "
        f"({len(stats.text)} text deltas, sequence numbers "
        f"{'gapless' if stats.gapless else 'with gaps'}), polled {polled['status']}"
    )


#: One line per demo, for headings.
TITLES: Final[Mapping[str, str]] = {
    "stream": "a chat stream that calls a weather tool, then a plain text stream",
    "responses": "a durable Responses stream with a reasoning summary and its semantic events",
    "background": "two background responses: status transitions, a cancel, active() shrinking",
    "files": "uploads sniffed by content, input parts, list(), a rejected GIF, delete()",
    "agent": "an agent with a calculator and a clock answering one question",
    "combined": "a durable background stream with an image input, then background.poll",
}

FEATURES: Final[Mapping[str, Callable[[DemoContext], Awaitable[None]]]] = {
    "stream": demo_stream,
    "responses": demo_responses,
    "background": demo_background,
    "files": demo_files,
    "agent": demo_agent,
    "combined": demo_combined,
}


#: What a demo may run into that is not a bug: the API's or the files' fault, or time.
_EXPECTED: Final = (OpenAIError, ActorsLayerError, TimeoutError, trio.TooSlowError)


def _expected_failure(exc: BaseException) -> BaseException | None:
    """The error to report if ``exc`` (or every error in a group of them) is an expected one."""
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_expected_failure(inner) for inner in exc.exceptions]
        return leaves[0] if leaves and all(leaf is not None for leaf in leaves) else None
    return exc if isinstance(exc, _EXPECTED) else None


_CANNED: Final = (
    "note: no OPENAI_API_KEY, so the replies are canned by the embedded server, not a model's:\n"
    "      it echoes prompts, and takes tool-call arguments from the question's words where it\n"
    "      can (arguments it makes up are flagged)"
)


def _demo_config(config: Config, workdir: Path, pacing: Pacing) -> Config:
    # The demo's files live in its own directory; its background responses are its own business
    # (an in-memory registry: nothing is resumed by the next daemon run). The poller looks often
    # enough for the status transitions to be seen.
    section = config.background
    interval = pacing.poll_interval if config.use_embedded_server else 1.0
    interval = min(section.poll_interval, interval)
    return attrs.evolve(
        config,
        files=attrs.evolve(config.files, roots=(str(workdir),)),
        background=attrs.evolve(section, registry_path=":memory:", poll_interval=interval),
    )


async def run_demo(
    feature: str,
    config: Config,
    *,
    models: Models | None = None,
    pacing: Pacing | None = None,
    out: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    """Run one demo (``"all"``: each in turn) on a daemon of its own; return the exit code
    (0: it ran to the end).

    ``config`` decides the API (the embedded server without an API key, paced by ``pacing``);
    the files root is replaced by a fresh temporary directory. An API or file error ends the
    demo with a message and exit code 1. Raises ``KeyError`` for an unknown feature.
    """
    names = list(FEATURES) if feature == "all" else [feature]
    demos = [FEATURES[name] for name in names]
    console = Console(out if out is not None else sys.stdout, tty=tty)
    pacing = pacing if pacing is not None else Pacing()
    started = trio.current_time()
    with tempfile.TemporaryDirectory(prefix="streamvisor-demo-") as tmp:
        workdir = Path(await trio.Path(tmp).resolve())
        config = _demo_config(config, workdir, pacing)
        mock = pacing.mockapi(config) if config.use_embedded_server else None
        async with open_daemon(config, mockapi=mock) as daemon:
            if daemon.mockapi is not None:
                where = f"the embedded OpenAI-compatible server at {daemon.mockapi.url}"
            else:
                where = daemon.client.settings.base_url
            console.line(f"streamvisor demo {feature!r} against {where}")
            if daemon.mockapi is not None:
                console.line(_CANNED)
            context = DemoContext(daemon, console, models or Models(), workdir, pacing)
            for name, demo in zip(names, demos, strict=True):
                if len(names) > 1:
                    console.line()
                    console.line(f"━━ demo {name}: {TITLES[name]}")
                try:
                    await demo(context)
                except Exception as exc:
                    failure = _expected_failure(exc)
                    if failure is None:
                        raise
                    console.line(f"demo {name!r} failed: {type(failure).__name__}: {failure}")
                    return 1
    console.line()
    console.line(f"demo {feature!r} done in {trio.current_time() - started:.1f}s")
    return 0
