"""`Agent`: an actor holding a conversation with a model that calls Python tools.

One ``ask`` is one *turn*: the agent streams a model request through the shared `OpenAIClient`,
publishes every `StreamEvent` on ``agent.<id>`` (one hop: ``bus.publish`` per event), runs the
function calls the model asked for in parallel (a nursery; each bounded by
``AgentSection.tool_timeout``; sync tools in worker threads), publishes a `ToolCall` per call
before running them and a `ToolResult` as each finishes, sends the outputs back and streams again,
until the model answers without calling tools -- or until ``AgentSection.max_turns`` model
requests were made in this turn, which raises `MaxTurnsExceeded`. A tool that raises, times out or
gets bad arguments never crashes the agent: its error text (``"error: ValueError: ..."``) is the
output the model sees.

Design decisions:

* **Responses continuation: the full item history, not ``previous_response_id``.** Every request
  carries the whole conversation (user messages, the model's output items, the
  ``function_call_output`` items), as recording 15 does. The conversation then does not depend on
  the server keeping responses (``store`` defaults to false), survives their expiry, ``reset()``
  is purely local and `history()` is exactly what the model was sent. The cost is re-sending the
  input on each request (prompt caching absorbs most of it). Output items are re-sent without
  their server ``id``/``status`` (items of an unstored response cannot be referenced by id);
  reasoning items are kept only when they carry ``encrypted_content``, which the agent asks for
  on reasoning models (``include: ["reasoning.encrypted_content"]``).
* **Chat:** the assistant message with its ``tool_calls`` is followed by one ``tool`` message per
  call; ``instructions`` go first as a ``system`` message (not part of `history()`).
* **One turn at a time, the mailbox never blocked.** The turn runs in a task linked to the actor
  (``spawn``) and the reply is deferred (``NoReply``); `history`, `register` and friends are
  answered while a turn runs. An ``ask`` that arrives while a turn runs **waits in a FIFO queue**
  (at most ``max_queued``; beyond that it raises `AgentBusy`). An ``ask`` whose timeout expires
  is dropped from the queue, or, if its turn is running, that turn is cancelled.
* **An incomplete response ends the turn** (``AgentReply.status == "incomplete"``): calls it
  may hold are half-written, so they are neither run nor kept in the history.
* **History is committed per turn.** A turn that fails (API error, `MaxTurnsExceeded`,
  `ModelResponseFailed`, cancelled by a timeout) leaves the history as it was before the ``ask``.
  `reset()` while a turn runs or asks wait raises `AgentBusy`.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import structlog
import trio

from streamvisor.config import AgentSection
from streamvisor.openai import (
    InvalidParameter,
    OpenAIClient,
    check_model,
    check_request,
    encode_json,
    is_reasoning_model,
)
from streamvisor.supervisor import Actor, Caller, ExitReason, NoReply
from streamvisor.supervisor._bus import EventBus

from .._ids import is_name
from ._errors import (
    AgentBusy,
    InvalidAgentConfig,
    InvalidAgentId,
    MaxTurnsExceeded,
    ModelResponseFailed,
    ToolDefinitionError,
)
from ._responses import Api, chat_outcome, responses_outcome, responses_replay, status_of
from ._tools import Tool, ToolRegistry

__all__ = [
    "Agent",
    "AgentReply",
    "Tool",
    "ToolCall",
    "ToolRegistry",
    "ToolResult",
    "Usage",
    "check_agent_id",
]

log = structlog.get_logger("streamvisor.actors.agent")

_OK_STATUSES = frozenset({"completed", "incomplete"})


def _str(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen
class ToolCall:
    """A function call the model asked for, published on ``agent.<id>`` before it runs."""

    #: The agent that runs it.
    agent_id: str = attrs.field(validator=_str)
    #: The API's call id (``call_...``): its result is sent back under this id.
    call_id: str = attrs.field(validator=_str)
    #: The tool's name as the model gave it (maybe unknown to the agent).
    name: str = attrs.field(validator=_str)
    #: The raw JSON arguments string from the model.
    arguments: str = attrs.field(validator=_str)
    #: Which model request of the turn asked for it (1-based).
    request: int = attrs.field(validator=attrs.validators.ge(1))


@attrs.frozen
class ToolResult:
    """The outcome of one `ToolCall`, published on ``agent.<id>`` when the tool finishes."""

    agent_id: str = attrs.field(validator=_str)
    call_id: str = attrs.field(validator=_str)
    name: str = attrs.field(validator=_str)
    #: The text sent back to the model (the return value, or ``"error: ..."``).
    output: str = attrs.field(validator=_str)
    #: True for bad arguments, an unknown tool, an exception or a timeout.
    is_error: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    #: Seconds the tool ran (``trio.current_time()``), argument parsing included.
    duration: float = attrs.field(validator=_non_negative)


@attrs.frozen
class Usage:
    """Tokens used by a turn, summed over its model requests (Chat's prompt/completion tokens
    are counted as input/output)."""

    input_tokens: int = attrs.field(default=0, validator=_non_negative)
    output_tokens: int = attrs.field(default=0, validator=_non_negative)
    total_tokens: int = attrs.field(default=0, validator=_non_negative)
    #: Model requests made.
    requests: int = attrs.field(default=0, validator=_non_negative)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
            self.requests + other.requests,
        )

    @classmethod
    def from_api(cls, usage: object) -> Usage:
        """One request's usage from either API's ``usage`` object (None counts as zero)."""
        if not isinstance(usage, Mapping):
            return cls(requests=1)

        def pick(*keys: str) -> int:
            for key in keys:
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    return value
            return 0

        inp = pick("input_tokens", "prompt_tokens")
        out = pick("output_tokens", "completion_tokens")
        return cls(inp, out, pick("total_tokens") or inp + out, 1)


@attrs.frozen
class AgentReply:
    """What one ``ask`` produced."""

    #: The model's final answer (its refusal text if it refused).
    text: str = attrs.field(validator=_str)
    #: Every tool call of the turn, in the order the model made them.
    tool_calls: tuple[ToolCall, ...] = attrs.field(converter=_tuple)
    #: The result of each call, in the same order as `tool_calls`.
    tool_results: tuple[ToolResult, ...] = attrs.field(converter=_tuple)
    usage: Usage = attrs.field(validator=attrs.validators.instance_of(Usage))
    #: The final response's status: ``completed``, or ``incomplete`` (out of tokens, content
    #: filter: `text` is what was produced, and calls in that response were not run).
    status: str = attrs.field(default="completed", validator=_str)
    #: True when the final answer is a refusal.
    refused: bool = False
    #: The id of each model response of the turn.
    response_ids: tuple[str, ...] = attrs.field(default=(), converter=_tuple)


# -- messages (private to the agent and its handle) ------------------------------------------------


@attrs.frozen(eq=False)
class _Ask:
    text: str
    token: object = attrs.field(factory=object)


@attrs.frozen
class _Abandon:
    token: object


@attrs.frozen
class _History:
    pass


@attrs.frozen
class _Reset:
    pass


@attrs.frozen
class _Register:
    tool: Tool


@attrs.frozen
class _Tools:
    pass


class _Pending:
    __slots__ = ("ask", "caller")

    def __init__(self, ask: _Ask, caller: Caller) -> None:
        self.ask = ask
        self.caller = caller


# -- the actor ---------------------------------------------------------------------------------


def check_agent_id(agent_id: object) -> str:
    """``agent_id`` if it can name the topic ``agent.<id>`` (`NAME_PATTERN`, in full)."""
    if not is_name(agent_id):
        raise InvalidAgentId(agent_id)
    assert isinstance(agent_id, str)
    return agent_id


class Agent(Actor):
    """A conversation with a model that may call the registered tools.

    Args:
        agent_id: Names the agent and its topic ``agent.<id>``: 1-128 letters, digits or
            ``_-:@+=`` (`NAME_PATTERN`).
        client: The shared `OpenAIClient`.
        bus: Where stream events, `ToolCall` and `ToolResult` records are published.
        model: The model of every request.
        api: ``"responses"`` (default) or ``"chat"``.
        instructions: The system / developer instructions, sent with every request.
        tools: `Tool` objects or plain functions (see `Tool.from_function`).
        config: ``tool_timeout`` (per tool call) and ``max_turns`` (model requests per ask).
        options: Extra body fields for every request (``temperature``, ``metadata``, ...).
        store: Responses ``store`` (default false: the agent re-sends its history anyway).
        max_queued: Asks that may wait while a turn runs; more raise `AgentBusy`.

    Raises:
        InvalidAgentConfig: a bad id (`InvalidAgentId`), api, model, option (one that is not
            plain JSON names it: ``options.temperature``) or ``max_queued``.
        ToolDefinitionError: a tool that cannot be offered (bad name, duplicate, bad hint).
    """

    def __init__(
        self,
        agent_id: str,
        *,
        client: OpenAIClient,
        bus: EventBus[Any],
        model: str,
        api: Api = "responses",
        instructions: str | None = None,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        config: AgentSection | None = None,
        options: Mapping[str, Any] | None = None,
        store: bool = False,
        max_queued: int = 8,
    ) -> None:
        self.agent_id = check_agent_id(agent_id)
        if api not in ("chat", "responses"):
            raise InvalidAgentConfig(f"api must be 'chat' or 'responses', got {api!r}")
        try:
            check_model(model)
        except InvalidParameter as exc:
            raise InvalidAgentConfig(str(exc)) from None
        if instructions is not None and not isinstance(instructions, str):
            raise InvalidAgentConfig(f"instructions must be a str, got {instructions!r:.80}")
        if not isinstance(max_queued, int) or max_queued < 0:
            raise InvalidAgentConfig(f"max_queued must be an int >= 0, got {max_queued!r}")
        # The agent owns these; previous_response_id / conversation would contradict re-sending
        # the history.
        reserved = {
            "model",
            "input",
            "messages",
            "tools",
            "stream",
            "instructions",
            "previous_response_id",
            "conversation",
        }
        if options is not None and not isinstance(options, Mapping):
            raise InvalidAgentConfig(
                f"options must be a mapping of body fields, not {options!r:.80}"
            )
        clash = reserved.intersection(options or {})
        if clash:
            raise InvalidAgentConfig(f"options may not set {sorted(clash)}: the agent owns them")
        try:
            check_request(dict(options or {}), "options")
            # What every request of the agent carries must leave room for the conversation.
            encode_json({"instructions": instructions, **(options or {})})
        except InvalidParameter as exc:
            raise InvalidAgentConfig(str(exc)) from exc
        self.client = client
        self.bus = bus
        self.model = model
        self.api: Api = api
        self.instructions = instructions
        self.tools = ToolRegistry(tools)
        self.config = config if config is not None else AgentSection()
        self.options = dict(options or {})
        self.store = store
        self.max_queued = max_queued
        self.topic = f"agent.{agent_id}"
        self._history: list[dict[str, Any]] = []
        self._queue: deque[_Pending] = deque()
        self._running: _Pending | None = None
        self._scope: trio.CancelScope | None = None

    # -- callbacks -------------------------------------------------------------------------

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, _Ask):
            if self._running is None:
                self._start(_Pending(request, caller))
            elif len(self._queue) >= self.max_queued:
                return caller.fail(AgentBusy(self.agent_id, len(self._queue)))
            else:
                self._queue.append(_Pending(request, caller))
            return NoReply
        if isinstance(request, _History):
            return copy.deepcopy(tuple(self._history))
        if isinstance(request, _Reset):
            if self._running is not None or self._queue:
                return caller.fail(AgentBusy(self.agent_id, len(self._queue)))
            self._history.clear()
            return None
        if isinstance(request, _Register):
            try:
                return self.tools.add(request.tool)
            except ToolDefinitionError as exc:
                return caller.fail(exc)
        if isinstance(request, _Tools):
            return tuple(self.tools)
        raise TypeError(f"Agent does not understand {request!r}")

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, _Abandon):
            running = self._running
            if running is not None and running.ask.token is message.token:
                if self._scope is not None:
                    self._scope.cancel()
            else:
                self._queue = deque(p for p in self._queue if p.ask.token is not message.token)
            return
        await super().handle_cast(message)

    async def terminate(self, reason: ExitReason) -> None:
        # Waiting asks get ActorExited from the runtime; none is started any more.
        self._queue.clear()
        if self._scope is not None:
            self._scope.cancel()

    # -- turns -----------------------------------------------------------------------------

    def _start(self, pending: _Pending) -> None:
        self._running = pending
        self.spawn(self._turn, pending)

    def _next(self) -> None:
        self._running = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.caller.replied:  # its caller gave up while it waited
                self._start(pending)
                return

    async def _turn(self, pending: _Pending) -> None:
        # Failures of the turn go to the caller, not to the actor (a spawned task that raised
        # would crash it); cancellation is never caught here.
        try:
            with trio.CancelScope() as scope:
                self._scope = scope
                try:
                    reply = await self._run_turn(pending.ask.text)
                except Exception as exc:
                    log.info("agent.turn_failed", agent=self.agent_id, error=repr(exc))
                    pending.caller.fail(exc)
                else:
                    pending.caller.reply(reply)
        finally:
            self._scope = None
            self._next()

    async def _run_turn(self, text: str) -> AgentReply:
        items = copy.deepcopy(self._history)
        items.append({"role": "user", "content": text})
        calls: list[ToolCall] = []
        results: list[ToolResult] = []
        usage = Usage()
        response_ids: list[str] = []
        for request in range(1, self.config.max_turns + 1):
            final = await self._request(items)
            rid = final.get("id")
            if isinstance(rid, str):
                response_ids.append(rid)
            usage = usage + Usage.from_api(final.get("usage"))
            status = status_of(self.api, final)
            # An incomplete response (out of tokens, filtered) may hold half-written calls:
            # they are neither run nor kept (a call without an output would poison the history);
            # the turn ends with what the model produced.
            run_calls = status == "completed"
            if self.api == "responses":
                answer, refused, wanted = responses_outcome(final)
                items.extend(responses_replay(final, keep_calls=run_calls))
            else:
                answer, refused, wanted, message = chat_outcome(final)
                if not run_calls and message.pop("tool_calls", None) is not None:
                    message["content"] = message.get("content") or ""
                items.append(message)
            if not wanted or not run_calls:
                self._history = items
                return AgentReply(
                    answer, calls, results, usage, status, refused, tuple(response_ids)
                )
            round_calls = [
                ToolCall(self.agent_id, call_id, name, arguments, request)
                for call_id, name, arguments in wanted
            ]
            calls.extend(round_calls)
            round_results = await self._execute(round_calls)
            results.extend(round_results)
            for result in round_results:
                if self.api == "responses":
                    items.append(
                        {
                            "type": "function_call_output",
                            "call_id": result.call_id,
                            "output": result.output,
                        }
                    )
                else:
                    items.append(
                        {"role": "tool", "tool_call_id": result.call_id, "content": result.output}
                    )
        raise MaxTurnsExceeded(self.agent_id, self.config.max_turns, calls)

    async def _request(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Stream one model request, publishing each event; return the final response."""
        publish = self.bus.publish
        topic = self.topic
        if self.api == "responses":
            body = self._responses_body(items)
            opened = self.client.stream_response(body, session_id=self.agent_id)
        else:
            body = self._chat_body(items)
            opened = self.client.stream_chat(body, session_id=self.agent_id)
        async with opened as stream:
            async for event in stream:
                publish(topic, event)
            acc = stream.accumulator
            final = acc.result
        if final is None:  # a stream ends only after its terminal event (else it raised)
            raise ModelResponseFailed(self.agent_id, "unknown", response_id=stream.response_id)
        status = status_of(self.api, final)
        if status not in _OK_STATUSES:
            found = final.get("error")
            error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            raise ModelResponseFailed(
                self.agent_id,
                status,
                code=error.get("code"),
                message=error.get("message"),
                response_id=final.get("id"),
            )
        return dict(final)

    def _responses_body(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {**self.options, "model": self.model, "input": list(items)}
        body.setdefault("store", self.store)
        if self.instructions is not None:
            body["instructions"] = self.instructions
        if len(self.tools):
            body["tools"] = self.tools.responses_schemas()
            body.setdefault("tool_choice", "auto")
            body.setdefault("parallel_tool_calls", True)
        if body["store"] is False and is_reasoning_model(self.model):
            include = list(body.get("include") or ())
            if "reasoning.encrypted_content" not in include:
                include.append("reasoning.encrypted_content")
            body["include"] = include
        return body

    def _chat_body(self, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        messages = list(items)
        if self.instructions is not None:
            messages.insert(0, {"role": "system", "content": self.instructions})
        body: dict[str, Any] = {**self.options, "model": self.model, "messages": messages}
        options = dict(body.get("stream_options") or {})
        options.setdefault("include_usage", True)
        body["stream_options"] = options
        if len(self.tools):
            body["tools"] = self.tools.chat_schemas()
            body.setdefault("tool_choice", "auto")
            body.setdefault("parallel_tool_calls", True)
        return body

    async def _execute(self, calls: Sequence[ToolCall]) -> list[ToolResult]:
        """Run every call concurrently; return the results in the calls' order."""
        publish = self.bus.publish
        for call in calls:
            publish(self.topic, call)
        results: list[ToolResult | None] = [None] * len(calls)
        timeout = self.config.tool_timeout

        async def run(index: int, call: ToolCall) -> None:
            started = trio.current_time()
            done = await self.tools.invoke(call.name, call.arguments, timeout=timeout)
            result = ToolResult(
                self.agent_id,
                call.call_id,
                call.name,
                done.output,
                done.is_error,
                trio.current_time() - started,
            )
            if done.is_error:
                log.info(
                    "agent.tool_failed", agent=self.agent_id, tool=call.name, output=done.output
                )
            results[index] = result
            publish(self.topic, result)

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(calls):
                nursery.start_soon(run, index, call)
        return [r for r in results if r is not None]
