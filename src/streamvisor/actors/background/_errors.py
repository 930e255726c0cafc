"""The errors of the background poller and its registry store.

The whole tree of the actors layer is drawn in ``streamvisor/actors/_errors.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from .._errors import ActorsLayerError, shown

__all__ = [
    "BackgroundError",
    "CorruptStore",
    "DuplicateResponse",
    "IllegalTransition",
    "InvalidBackgroundRequest",
    "InvalidResponseId",
    "NotRegistered",
    "ResponseGone",
    "StoreClosed",
    "StoreError",
    "UnknownResponse",
    "UnsupportedSchema",
]


# ------------------------------------------------------------------------------------------------
# background (BackgroundPoller, actors/_background.py)::
#
#     ActorsLayerError
#     └── BackgroundError                     anything the background poller rejects or fails at
#         ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
#         ├── InvalidResponseId (ValueError)  not an API response id; .field, .value
#         ├── ResponseGone (LookupError)      the server no longer knows the id (404: unknown, or
#         │                                   deleted after its retention window); .response_id
#         └── NotRegistered                   created server-side, but the registry write failed:
#                                             .response_id, .response (cancel it, or track it)
#
# The registry store's own errors (``UnknownResponse(KeyError)``, ``StoreError``, ...) and the
# wire layer's (``OutcomeUnknownError``, ``CancelRejected``, ...) pass through unchanged.


class BackgroundError(ActorsLayerError):
    """Root of the errors raised by the background poller itself."""


class InvalidBackgroundRequest(BackgroundError, ValueError):
    """A background create or track rejected before any I/O; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidResponseId(BackgroundError, ValueError):
    """A response id that the API cannot have issued: not a str matching the wire's
    ``API_ID_PATTERN`` in full. ``field`` is ``"response_id"``, ``value`` what was given."""

    def __init__(self, response_id: object) -> None:
        super().__init__(f"invalid response_id {shown(response_id)}: not a response id")
        self.field = "response_id"
        self.value = response_id


class ResponseGone(BackgroundError, LookupError):
    """The server answered 404 for this response: an unknown id, or one deleted after its
    retention window. A tracked response is marked ``failed`` (``last_error`` starts with
    ``response_gone:``) when this is seen."""

    def __init__(self, response_id: str, detail: str | None = None) -> None:
        message = f"response {response_id!r} is gone from the server (404)"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.response_id = response_id
        self.detail = detail


class NotRegistered(BackgroundError):
    """The server created the response, but recording it in the registry failed.

    The response runs server-side untracked: ``response`` is what the server answered, so the
    caller can cancel it (or retry the tracking). ``__cause__`` is the store's error.
    """

    def __init__(self, response_id: str, response: Mapping[str, Any]) -> None:
        super().__init__(
            f"response {response_id!r} was created but could not be recorded in the registry; "
            "it is not being polled"
        )
        self.response_id = response_id
        self.response = response


# ---------------------------------------------------------------------------------------------
# The registry store (``_store.py``)


class StoreError(BackgroundError):
    """Root of every error raised by the registry store."""


class UnknownResponse(StoreError, KeyError):
    """No record with this response id is tracked."""

    def __init__(self, response_id: str) -> None:
        super().__init__(response_id)
        self.response_id = response_id

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return f"response {self.response_id!r} is not tracked by the registry"


class DuplicateResponse(StoreError, ValueError):
    """``add()`` of a response id that is already tracked."""

    def __init__(self, response_id: str) -> None:
        super().__init__(f"response {response_id!r} is already tracked by the registry")
        self.response_id = response_id


class IllegalTransition(StoreError, ValueError):
    """A terminal status cannot become a different status."""

    def __init__(self, response_id: str, current: str, requested: str) -> None:
        super().__init__(
            f"response {response_id!r} is already {current!r} (terminal); "
            f"it cannot become {requested!r}"
        )
        self.response_id = response_id
        self.current = current
        self.requested = requested


class CorruptStore(StoreError):
    """The file is not a registry database, is damaged, or holds a row that fails validation."""


class UnsupportedSchema(CorruptStore):
    """The database was written by a newer streamvisor: its schema version is too high."""


class StoreClosed(StoreError, trio.ClosedResourceError):
    """The store was used after its ``async with`` block ended (you closed it)."""
