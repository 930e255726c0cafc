"""Streaming sessions: one worker per session id running its Chat and Responses streams, durable
Responses streams that resume after a drop or a restart (``SessionHandle``).
"""

from __future__ import annotations

from ._errors import (
    InvalidSessionId,
    InvalidSessionRequest,
    SessionError,
    StreamLost,
    StreamStopped,
    TooManyStreams,
    TrackingFailed,
    UnknownStream,
)
from ._handle import SessionHandle, open_session, session_factory, sessions_supervisor
from ._requests import session_name, session_topic
from ._session import StreamingSession
from ._values import SessionDeps, SessionState, StreamInfo, StreamOutcome, StreamTicket

__all__ = [
    "InvalidSessionId",
    "InvalidSessionRequest",
    "SessionDeps",
    "SessionError",
    "SessionHandle",
    "SessionState",
    "StreamInfo",
    "StreamLost",
    "StreamOutcome",
    "StreamStopped",
    "StreamTicket",
    "StreamingSession",
    "TooManyStreams",
    "TrackingFailed",
    "UnknownStream",
    "open_session",
    "session_factory",
    "session_name",
    "session_topic",
    "sessions_supervisor",
]
