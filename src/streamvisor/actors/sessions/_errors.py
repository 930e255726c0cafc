"""The errors of streaming sessions.

The whole tree of the actors layer is drawn in ``streamvisor/actors/_errors.py``.
"""

from __future__ import annotations

from streamvisor.openai import InvalidRequestError

from .._errors import ActorsLayerError, shown

__all__ = [
    "InvalidSessionId",
    "InvalidSessionRequest",
    "InvalidStreamId",
    "SessionError",
    "StreamLost",
    "StreamStopped",
    "TooManyStreams",
    "TrackingFailed",
    "UnknownStream",
]


# ---------------------------------------------------------------------------------------------
# Streaming sessions (``_session.py``, ``_session_requests.py``)


class SessionError(ActorsLayerError):
    """A streaming session refused a request or lost a stream. ``session_id`` names it."""

    def __init__(self, session_id: str | None, message: str) -> None:
        super().__init__(message if session_id is None else f"session {session_id}: {message}")
        self.session_id = session_id
        self.message = message


class InvalidSessionRequest(SessionError, InvalidRequestError):
    """A chat/respond request rejected before any network I/O; ``field`` names the culprit."""

    def __init__(self, session_id: str | None, field: str, message: str) -> None:
        super().__init__(session_id, f"{field}: {message}")
        self.field = field


class InvalidSessionId(SessionError, ValueError):
    """A session id that cannot be a topic segment (``session.<id>``) or a registered name.
    ``field`` is ``"session_id"``, ``value`` what was given."""

    def __init__(self, session_id: object, reason: str) -> None:
        super().__init__(None, f"invalid session_id {shown(session_id)}: {reason}")
        self.reason = reason
        self.field = "session_id"
        self.value = session_id


class InvalidStreamId(SessionError, ValueError):
    """A stream id that the session cannot have handed out (they look like ``stream-7``).
    ``field`` is ``"stream_id"``, ``value`` what was given."""

    def __init__(self, session_id: str | None, stream_id: object) -> None:
        super().__init__(session_id, f"invalid stream_id {shown(stream_id)}: not stream-<n>")
        self.field = "stream_id"
        self.value = stream_id


class TooManyStreams(SessionError, RuntimeError):
    """The session already runs ``limit`` streams; stop or wait for one first."""

    def __init__(self, session_id: str, limit: int) -> None:
        super().__init__(session_id, f"already running {limit} streams (the limit)")
        self.limit = limit


class UnknownStream(SessionError, LookupError):
    """No running or remembered stream has this ``stream_id``."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(session_id, f"no stream {stream_id!r}")
        self.stream_id = stream_id


class StreamStopped(SessionError):
    """The stream was stopped (by a caller or the session's shutdown) before its first event."""

    def __init__(self, session_id: str, stream_id: str, why: str) -> None:
        super().__init__(session_id, f"stream {stream_id} was stopped before it started ({why})")
        self.stream_id = stream_id
        self.why = why


class StreamLost(SessionError):
    """A foreground stream ended with its worker (a crash); only durable streams survive that."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(
            session_id,
            f"stream {stream_id} was lost when the session worker restarted "
            "(only durable Responses streams are resumed)",
        )
        self.stream_id = stream_id


class TrackingFailed(SessionError):
    """A durable stream's response could not be recorded in the registry (the tracker failed or
    timed out), so the stream was not started: the response was cancelled server-side (best
    effort) and no event was published. ``__cause__`` is the tracker's error."""

    def __init__(self, session_id: str, stream_id: str, response_id: str) -> None:
        super().__init__(
            session_id,
            f"stream {stream_id}: response {response_id!r} could not be recorded in the "
            "registry, so it cannot be durable: not started, cancelled server-side",
        )
        self.stream_id = stream_id
        self.response_id = response_id
