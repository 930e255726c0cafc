"""The errors of agents and their tools.

The whole tree of the actors layer is drawn in ``streamvisor/actors/_errors.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from .._errors import ActorsLayerError, shown

__all__ = [
    "AgentBusy",
    "AgentError",
    "DuplicateToolName",
    "InvalidAgentConfig",
    "InvalidAgentId",
    "InvalidToolName",
    "MaxTurnsExceeded",
    "ModelResponseFailed",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "UnsupportedToolParameter",
]


# ---------------------------------------------------------------------------------------------
# Agents and tools (``_agent.py``, ``_agent_handle.py``, ``_tools.py``)


class AgentError(ActorsLayerError):
    """Root of the errors of agents and their tools."""


class ToolDefinitionError(AgentError, ValueError):
    """A tool that cannot be offered to the model. ``function`` names the Python function (or the
    tool), ``parameter`` the offending parameter (None when the tool as a whole is wrong)."""

    def __init__(self, function: str, message: str, parameter: str | None = None) -> None:
        self.function = function
        self.parameter = parameter
        where = f"parameter {parameter!r} of " if parameter is not None else ""
        super().__init__(f"{where}tool function {function!r}: {message}")


class InvalidToolName(ToolDefinitionError):
    """The tool's name is not 1-64 characters of letters, digits, ``_`` and ``-``."""

    def __init__(self, function: str, name: object) -> None:
        self.name = name
        super().__init__(
            function, f"tool name {name!r} must be [A-Za-z0-9_-]{{1,64}} in full (the API's rule)"
        )


class DuplicateToolName(ToolDefinitionError):
    """A registry already holds a tool of that name."""

    def __init__(self, function: str, name: str) -> None:
        self.name = name
        super().__init__(function, f"a tool named {name!r} is already registered")


class UnsupportedToolParameter(ToolDefinitionError, TypeError):
    """A parameter whose kind or type hint has no JSON-schema equivalent (or has no hint)."""

    def __init__(self, function: str, parameter: str, hint: object, why: str) -> None:
        self.hint = hint
        super().__init__(function, why, parameter)


class ToolArgumentsError(AgentError, ValueError):
    """The model's arguments for ``tool`` do not fit its parameters; ``problems`` lists each."""

    def __init__(self, tool: str, problems: Iterable[str]) -> None:
        self.tool = tool
        self.problems = tuple(problems)
        super().__init__(f"invalid arguments for {tool}: " + "; ".join(self.problems))


class InvalidAgentConfig(AgentError, ValueError):
    """An agent constructed with a bad id, api, model or option."""


class InvalidAgentId(InvalidAgentConfig):
    """An agent id that cannot name the topic ``agent.<id>`` and the registered name: not 1-128
    letters, digits or ``_-:@+=``. ``field`` is ``"agent_id"``, ``value`` what was given."""

    def __init__(self, agent_id: object) -> None:
        super().__init__(
            f"invalid agent_id {shown(agent_id)}: use 1-128 letters, digits or _-:@+= "
            "(it names the topic agent.<id>)"
        )
        self.field = "agent_id"
        self.value = agent_id


class AgentBusy(AgentError, RuntimeError):
    """The agent already runs a turn and its queue of waiting asks is full."""

    def __init__(self, agent_id: str, queued: int) -> None:
        self.agent_id = agent_id
        self.queued = queued
        super().__init__(f"agent {agent_id!r} is busy: a turn runs and {queued} asks wait")


class MaxTurnsExceeded(AgentError, RuntimeError):
    """The model still asked for tools after ``max_turns`` requests in one ``ask``.

    ``tool_calls`` holds every call the turn made; the agent's history is left as it was.
    """

    def __init__(self, agent_id: str, max_turns: int, tool_calls: Iterable[object] = ()) -> None:
        self.agent_id = agent_id
        self.max_turns = max_turns
        self.tool_calls = tuple(tool_calls)
        super().__init__(
            f"agent {agent_id!r} got no final answer within max_turns={max_turns} model "
            f"requests ({len(self.tool_calls)} tool calls made)"
        )


class ModelResponseFailed(AgentError, RuntimeError):
    """The model's response ended ``failed`` or ``cancelled`` instead of answering."""

    def __init__(
        self,
        agent_id: str,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        response_id: str | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.status = status
        self.code = code
        self.response_id = response_id
        detail = f": {code or 'error'}: {message}" if message else ""
        super().__init__(f"agent {agent_id!r}: response {response_id} ended {status}{detail}")
