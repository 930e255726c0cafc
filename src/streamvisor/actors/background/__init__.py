"""The background poller: the durable registry of background responses (``RegistryStore``), one
supervised poller per response, cancellation and resumable streams (``BackgroundHandle``).
"""

from __future__ import annotations

from ._errors import (
    BackgroundError,
    InvalidBackgroundRequest,
    InvalidResponseId,
    NotRegistered,
    ResponseGone,
    StoreError,
    UnknownResponse,
)
from ._poller import (
    BackgroundHandle,
    BackgroundPoller,
    BackgroundStatus,
    BackgroundStream,
    PollingStopped,
    open_background_poller,
)
from ._records import TrackedResponse
from ._store import (
    EMBEDDED_NAMESPACE,
    RegistryStore,
    RegistryView,
    ResponseStore,
    registry_namespace,
)
from ._tracker import DurableTracker

__all__ = [
    "EMBEDDED_NAMESPACE",
    "BackgroundError",
    "BackgroundHandle",
    "BackgroundPoller",
    "BackgroundStatus",
    "BackgroundStream",
    "DurableTracker",
    "InvalidBackgroundRequest",
    "InvalidResponseId",
    "NotRegistered",
    "PollingStopped",
    "RegistryStore",
    "RegistryView",
    "ResponseGone",
    "ResponseStore",
    "StoreError",
    "TrackedResponse",
    "UnknownResponse",
    "open_background_poller",
    "registry_namespace",
]
