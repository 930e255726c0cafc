"""`AgentHandle`: the typed face of a running `Agent` (``ask``, ``history``, ``reset``,
``register``, ``tools``), and `start_agent`, which starts one and returns its handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from streamvisor.supervisor import ActorRef, CallTimeout, Registry, start_actor

from .._target import Target, call, current
from ._agent import (
    Agent,
    AgentReply,
    _Abandon,
    _Ask,
    _History,
    _Register,
    _Reset,
    _Tools,
    check_agent_id,
)
from ._tools import Tool

__all__ = ["AgentHandle", "start_agent"]


async def start_agent(
    nursery: trio.Nursery,
    agent: Agent,
    *,
    name: str | None = None,
    registry: Registry | None = None,
) -> AgentHandle:
    """Start ``agent`` in ``nursery`` (synchronous start) and return its handle.

    With a ``name`` and a ``registry`` the handle addresses the agent by that name (it follows a
    restarted agent); otherwise it holds the ref. Raises as `start_actor` does
    (``AlreadyStarted`` for a taken ``name``, ...).
    """
    ref = await start_actor(nursery, agent, name=name, registry=registry)
    if name is not None and registry is not None:
        return AgentHandle(registry.ref(name), agent.agent_id)
    return AgentHandle(ref, agent.agent_id)


class AgentHandle:
    """The typed face of a running `Agent`: ``ask``, ``history``, ``reset``, ``register``.

    Build it over the agent's registered name and its id: ``AgentHandle(registry.ref(name),
    agent_id)`` (it follows the agent across restarts; what the daemon does), or over a started
    agent's ref (or use `start_agent`). Every method is a ``call`` on the agent's mailbox; a
    handle by name also raises ``NoSuchActor`` when no agent holds the name (closed, or not
    restarted within the name's ``restart_wait``).

    Raises ``InvalidAgentId`` (a ValueError) at construction for an id that cannot name one.
    """

    __slots__ = ("_target", "agent_id", "topic")

    def __init__(self, target: Target, agent_id: str) -> None:
        self._target = target
        self.agent_id = check_agent_id(agent_id)
        #: Where the agent publishes: ``agent.<id>``.
        self.topic = f"agent.{agent_id}"

    def __repr__(self) -> str:
        return f"<AgentHandle {self.agent_id!r}>"

    @property
    def ref(self) -> ActorRef:
        """The agent's current ref. Raises ``NoSuchActor`` (a handle by name, none running)."""
        return current(self._target)

    async def ask(self, text: str, *, timeout: float | None = None) -> AgentReply:  # noqa: ASYNC109
        """Run one turn: send ``text``, let the model call tools, return its final answer.

        Waits (FIFO) while another turn of this agent runs; ``timeout`` covers the wait and the
        turn. On timeout a waiting ask is dropped and a running turn is cancelled (the history
        stays as it was).

        Raises:
            CallTimeout: no answer within ``timeout``.
            AgentBusy: a turn runs and ``max_queued`` asks already wait.
            MaxTurnsExceeded: the model still called tools after ``max_turns`` requests.
            ModelResponseFailed: a response ended ``failed`` or ``cancelled``.
            OpenAIError: the request or stream failed (``APIStatusError``, ``StreamError``,
                ``StreamInterrupted``, ``APIConnectionError``, ...) after the client's retries,
                or ``InvalidRequestError`` for a body the client refuses before sending.
            ActorExited: the agent exited before or during the call.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {text!r}")
        ask = _Ask(text)
        try:
            reply: AgentReply = await call(self._target, ask, timeout)
        except CallTimeout:
            self._target.cast(_Abandon(ask.token))
            raise
        return reply

    async def history(self, *, timeout: float | None = 5.0) -> tuple[dict[str, Any], ...]:  # noqa: ASYNC109
        """The committed conversation (a copy): Responses input items, or Chat messages.

        Raises: ``CallTimeout``, ``ActorExited``.
        """
        items: tuple[dict[str, Any], ...] = await call(
            self._target, _History(), timeout, retry_on_exit=True
        )
        return items

    async def reset(self, *, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109
        """Forget the conversation (tools stay registered).

        Raises: `AgentBusy` while a turn runs or asks wait; ``CallTimeout``, ``ActorExited``.
        """
        await call(self._target, _Reset(), timeout)

    async def register(
        self,
        tool: Tool | Callable[..., Any],
        *,
        timeout: float | None = 5.0,  # noqa: ASYNC109
    ) -> Tool:
        """Add a tool (a `Tool` or a plain function); used from the next model request on.

        Raises: ``ToolDefinitionError`` (e.g. `DuplicateToolName`, `UnsupportedToolParameter`)
        before anything is sent to the agent for a function, or from the agent for a duplicate;
        ``CallTimeout``, ``ActorExited``.
        """
        if not isinstance(tool, Tool):
            tool = Tool.from_function(tool)
        registered: Tool = await call(self._target, _Register(tool), timeout)
        return registered

    async def tools(self, *, timeout: float | None = 5.0) -> tuple[Tool, ...]:  # noqa: ASYNC109
        """The registered tools, in registration order. Raises: ``CallTimeout``, ``ActorExited``."""
        tools: tuple[Tool, ...] = await call(self._target, _Tools(), timeout, retry_on_exit=True)
        return tools
