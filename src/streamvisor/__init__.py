"""streamvisor: an OTP-style supervised actor daemon on trio for the OpenAI streaming APIs.

    import trio, streamvisor as sv

    async def main():
        async with sv.open_daemon(sv.Config.load()) as daemon:
            async with daemon.subscribe("session.s1") as events:
                session = await daemon.open_session("s1")
                await session.chat("gpt-4o", [{"role": "user", "content": "Hello"}])
                async for event in events:
                    print(sv.format_stream_event(event))
                    if event.terminal:
                        break

    trio.run(main)

The layers are importable on their own: `streamvisor.supervisor` (the OTP runtime),
`streamvisor.openai` (the wire protocol), `streamvisor.actors` (the domain actors),
`streamvisor.mockapi` (the embedded OpenAI-compatible server), `streamvisor.testing`.
"""

from __future__ import annotations

from . import actors, mockapi, openai, supervisor
from ._handlers import (
    CONTINUE,
    STOP,
    Continue,
    HandlerError,
    Stop,
    StreamIdleTimeout,
    display_type,
    format_stream_event,
    handle_stream_events,
)
from .actors import (
    AgentHandle,
    AgentReply,
    BackgroundHandle,
    BackgroundStatus,
    FilesHandle,
    PollingStopped,
    SessionHandle,
    StreamOutcome,
    StreamTicket,
    Tool,
    ToolCall,
    ToolResult,
    TrackedResponse,
)
from .config import Config, ConfigError
from .daemon import Daemon, DaemonStatus, open_daemon
from .openai import StreamEvent
from .supervisor import Missed, Overflow

__version__ = "0.1.0"

__all__ = [
    "CONTINUE",
    "STOP",
    "AgentHandle",
    "AgentReply",
    "BackgroundHandle",
    "BackgroundStatus",
    "Config",
    "ConfigError",
    "Continue",
    "Daemon",
    "DaemonStatus",
    "FilesHandle",
    "HandlerError",
    "Missed",
    "Overflow",
    "PollingStopped",
    "SessionHandle",
    "Stop",
    "StreamEvent",
    "StreamIdleTimeout",
    "StreamOutcome",
    "StreamTicket",
    "Tool",
    "ToolCall",
    "ToolResult",
    "TrackedResponse",
    "__version__",
    "actors",
    "display_type",
    "format_stream_event",
    "handle_stream_events",
    "mockapi",
    "open_daemon",
    "openai",
    "supervisor",
]
