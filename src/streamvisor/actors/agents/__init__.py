"""Agents: a model plus tools, answering asks turn by turn (``Agent``, ``AgentHandle``,
``start_agent``), and the tool registry.
"""

from __future__ import annotations

from ._agent import Agent, AgentReply, ToolCall, ToolResult, Usage, check_agent_id
from ._errors import (
    AgentBusy,
    AgentError,
    DuplicateToolName,
    InvalidAgentConfig,
    InvalidAgentId,
    InvalidToolName,
    MaxTurnsExceeded,
    ModelResponseFailed,
    ToolArgumentsError,
    ToolDefinitionError,
    UnsupportedToolParameter,
)
from ._given_up import agent_given_up_reporter
from ._handle import AgentHandle, start_agent
from ._tools import Tool, ToolOutcome, ToolRegistry

__all__ = [
    "Agent",
    "AgentBusy",
    "AgentError",
    "AgentHandle",
    "AgentReply",
    "DuplicateToolName",
    "InvalidAgentConfig",
    "InvalidAgentId",
    "InvalidToolName",
    "MaxTurnsExceeded",
    "ModelResponseFailed",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolDefinitionError",
    "ToolOutcome",
    "ToolRegistry",
    "ToolResult",
    "UnsupportedToolParameter",
    "Usage",
    "agent_given_up_reporter",
    "check_agent_id",
    "start_agent",
]
