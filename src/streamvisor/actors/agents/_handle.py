"""`AgentHandle`: the typed face of a running `Agent` (``ask``, ``history``, ``reset``,
``register``, ``tools``), and `start_agent`, which starts one and returns its handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import outcome
import trio

from streamvisor.supervisor import ActorRef, CallTimeout, Registry, start_actor

from ._agent import (
    Agent,
    AgentReply,
    _Abandon,
    _Ask,
    _check_id,
    _History,
    _Register,
    _Reset,
    _Tools,
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

    Raises as `start_actor` does (``AlreadyStarted`` for a taken ``name``, ...).
    """
    ref = await start_actor(nursery, agent, name=name, registry=registry)
    return AgentHandle(ref, agent.agent_id)


class AgentHandle:
    """The typed face of a running `Agent`: ``ask``, ``history``, ``reset``, ``register``.

    Build it from the started agent's ref and id: ``AgentHandle(ref, agent_id)`` (or use
    `start_agent`). Every method is a ``call`` on the agent's mailbox.
    """

    __slots__ = ("agent_id", "ref", "topic")

    def __init__(self, ref: ActorRef, agent_id: str) -> None:
        self.ref = ref
        self.agent_id = _check_id(agent_id)
        #: Where the agent publishes: ``agent.<id>``.
        self.topic = f"agent.{agent_id}"

    def __repr__(self) -> str:
        return f"<AgentHandle {self.agent_id!r}>"

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
            result: outcome.Outcome[AgentReply] = await self.ref.call(ask, timeout=timeout)
        except CallTimeout:
            self.ref.cast(_Abandon(ask.token))
            raise
        return result.unwrap()

    async def history(self, *, timeout: float | None = 5.0) -> tuple[dict[str, Any], ...]:  # noqa: ASYNC109
        """The committed conversation (a copy): Responses input items, or Chat messages.

        Raises: ``CallTimeout``, ``ActorExited``.
        """
        items: tuple[dict[str, Any], ...] = await self.ref.call(_History(), timeout=timeout)
        return items

    async def reset(self, *, timeout: float | None = 5.0) -> None:  # noqa: ASYNC109
        """Forget the conversation (tools stay registered).

        Raises: `AgentBusy` while a turn runs or asks wait; ``CallTimeout``, ``ActorExited``.
        """
        result: outcome.Outcome[None] = await self.ref.call(_Reset(), timeout=timeout)
        result.unwrap()

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
        result: outcome.Outcome[Tool] = await self.ref.call(_Register(tool), timeout=timeout)
        return result.unwrap()

    async def tools(self, *, timeout: float | None = 5.0) -> tuple[Tool, ...]:  # noqa: ASYNC109
        """The registered tools, in registration order. Raises: ``CallTimeout``, ``ActorExited``."""
        tools: tuple[Tool, ...] = await self.ref.call(_Tools(), timeout=timeout)
        return tools
