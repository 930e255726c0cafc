"""What the background poller publishes, and when it polls next.

Records published on ``background.<response_id>`` (and on ``session.<owner>`` when the response
has an owner):

* `BackgroundStatus` -- on every status change seen by polling, cancelling or streaming, exactly
  once per change (the registry's transactional ``record_status`` decides what is a change), and
  once when a response starts being tracked (``previous`` None).
* `PollingStopped` -- polling gave up on a response that is still active server-side (a
  permanent error such as ``insufficient_quota``). The response stays in the registry as it was,
  and is polled again by ``poll()`` or after a restart.

Scheduling is pure arithmetic on trio's clock: `poll_delay` (the server's ``openai-poll-after-ms``
hint, else the configured interval, capped) and `error_backoff` (exponential with jitter, capped).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from streamvisor.config import BackgroundSection

from ._records import RESPONSE_STATUSES, TERMINAL_STATUSES

__all__ = [
    "BACKOFF_JITTER",
    "MIN_POLL_DELAY",
    "BackgroundStatus",
    "PollingStopped",
    "error_backoff",
    "poll_delay",
]

#: Fraction of an error backoff removed at random (0.25: each delay is 75 to 100 % of its step),
#: so that pollers that failed together do not retry together.
BACKOFF_JITTER: Final = 0.25
#: The shortest wait between two polls, whatever the server hints (a hint of 0 must not spin).
MIN_POLL_DELAY: Final = 0.01


def _non_empty(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _finite(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")


@attrs.frozen
class BackgroundStatus:
    """A background response changed status (or started being tracked: ``previous`` None).

    ``response`` is the Response object the change was seen in (a poll, a cancel, a stream's
    terminal event), or None when none was at hand (e.g. a stream handed over without one);
    treat it as read-only. ``at`` is wall-clock time (``time.time()``), for display and logs.
    A response the server no longer knows (404) is reported as ``failed`` with ``gone`` true and
    ``error`` starting with ``response_gone:``. Construction raises ``ValueError`` for an unknown
    status or a bad field.
    """

    #: The server's response id (``resp_...``).
    response_id: str = attrs.field(validator=_non_empty)
    #: The new status: queued, in_progress, completed, failed, cancelled or incomplete.
    status: str = attrs.field(validator=attrs.validators.in_(RESPONSE_STATUSES))
    #: The status before the change; None when the response was just registered.
    previous: str | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.in_(RESPONSE_STATUSES))
    )
    #: The Response object the change was seen in, if any.
    response: Mapping[str, Any] | None = attrs.field(eq=False, repr=False)
    #: Wall-clock time of the change.
    at: float = attrs.field(validator=_finite)
    #: The session that owns the response (its ``session.<owner>`` topic got this too), if any.
    owner: str | None = attrs.field(default=None)
    #: Why a response failed or is incomplete (the server's error, or ``response_gone: ...``).
    error: str | None = attrs.field(default=None)
    #: True when the server answered 404: the response expired or was deleted.
    gone: bool = attrs.field(default=False)

    @property
    def terminal(self) -> bool:
        """True for completed, failed, cancelled and incomplete (as ``StreamEvent.terminal``)."""
        return self.status in TERMINAL_STATUSES


@attrs.frozen
class PollingStopped:
    """Polling of an active response stopped on a permanent error (quota, credentials).

    The response keeps its last known ``status`` in the registry; ``poll()`` or a restart of the
    poller picks it up again. ``error`` is the error's text; ``code`` its API code (e.g.
    ``insufficient_quota``) when there is one.
    """

    response_id: str = attrs.field(validator=_non_empty)
    status: str = attrs.field(validator=attrs.validators.in_(RESPONSE_STATUSES))
    error: str
    code: str | None
    at: float = attrs.field(validator=_finite)
    owner: str | None = None

    @property
    def terminal(self) -> bool:
        """Always False: the response itself did not finish."""
        return False


def poll_delay(hint: float | None, section: BackgroundSection) -> float:
    """Seconds until the next poll: the server's hint when present, else ``poll_interval``;
    never more than ``max_poll_interval`` nor less than `MIN_POLL_DELAY`."""
    base = section.poll_interval if hint is None else hint
    return max(min(base, section.max_poll_interval), MIN_POLL_DELAY)


def error_backoff(
    errors: int,
    section: BackgroundSection,
    random: Callable[[], float],
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after the ``errors``-th consecutive failed poll (``errors`` >= 1).

    ``error_backoff_initial * 2**(errors-1)`` capped at ``error_backoff_max``, minus up to
    `BACKOFF_JITTER` of it at random (``random()`` in [0, 1)); a server ``retry_after`` longer
    than that is honoured, still capped at ``error_backoff_max``.
    """
    step = section.error_backoff_initial * 2.0 ** min(max(errors, 1) - 1, 64)
    delay = min(step, section.error_backoff_max) * (1.0 - BACKOFF_JITTER * random())
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, section.error_backoff_max)
    return max(delay, MIN_POLL_DELAY)
