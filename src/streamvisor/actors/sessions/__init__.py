"""Streaming sessions: one worker per session id running its Chat and Responses streams, durable
Responses streams that resume after a drop or a restart (``SessionHandle``).
"""

from __future__ import annotations

from ._errors import (
    InvalidSessionId,
    InvalidSessionRequest,
    InvalidStreamId,
    SessionError,
    StreamLost,
    StreamStopped,
    TooManyStreams,
    TrackingFailed,
    UnknownStream,
)
from ._eventlog import EventLog, LoggedResponse, LogRead, open_event_log
from ._given_up import report_session_given_up
from ._handle import SessionHandle, open_session, session_factory, sessions_supervisor
from ._requests import (
    build_chat_body,
    build_responses_body,
    check_session_id,
    session_name,
    session_topic,
)
from ._session import StreamingSession
from ._values import SessionDeps, SessionState, StreamInfo, StreamOutcome, StreamTicket

__all__ = [
    "EventLog",
    "InvalidSessionId",
    "InvalidSessionRequest",
    "InvalidStreamId",
    "LogRead",
    "LoggedResponse",
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
    "build_chat_body",
    "build_responses_body",
    "check_session_id",
    "open_event_log",
    "open_session",
    "report_session_given_up",
    "session_factory",
    "session_name",
    "session_topic",
    "sessions_supervisor",
]
