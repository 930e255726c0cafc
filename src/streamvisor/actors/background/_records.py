"""The registry's records: a tracked background response, a status change, the statuses.

Secrets: a record never holds an API key. ``request`` and ``metadata`` lose every key that names a
credential (``Authorization``, ``api_key``, ``x-api-key``, ... at any depth), and every string in
them and in ``last_error`` has ``sk-...`` keys and ``Bearer`` tokens replaced by ``[REDACTED]``.
This happens when the record is built, so nothing secret can reach the database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from streamvisor._secrets import is_secret_field, redact_text

__all__ = [
    "ACTIVE_STATUSES",
    "MODES",
    "RESPONSE_STATUSES",
    "TERMINAL_STATUSES",
    "StatusChange",
    "TrackedResponse",
    "scrub_secrets",
]

#: Statuses a background response moves through; the server keeps polling-worthy work in these.
ACTIVE_STATUSES: Final = frozenset({"queued", "in_progress"})
#: Final statuses. ``incomplete`` is one (the Erlang original polled it forever).
TERMINAL_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "incomplete"})
RESPONSE_STATUSES: Final = ACTIVE_STATUSES | TERMINAL_STATUSES
#: How the poller follows a response: by GET polling, or by a resumable stream.
MODES: Final = frozenset({"poll", "stream"})

_MAX_METADATA_BYTES: Final = 16 * 1024
_MAX_ERROR_CHARS: Final = 4000


# ---------------------------------------------------------------------------------- secrets


def scrub_secrets(value: Any) -> Any:
    """Return a plain-JSON copy of *value* without credentials.

    Mapping keys that name a credential are dropped at any depth; strings have ``sk-...`` keys and
    ``Bearer`` tokens replaced by ``[REDACTED]``. Raises ``TypeError`` for a value that is not
    JSON data (mapping keys must be strings).
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if is_secret_field(key):
                continue
            out[key] = scrub_secrets(item)
        return out
    if isinstance(value, list | tuple):
        return [scrub_secrets(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"JSON numbers must be finite, got {value!r}")
        return value
    raise TypeError(f"not JSON data: {type(value).__name__} {value!r}")


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({key: _freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


def _json_field(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """Converter: a scrubbed, deep-frozen copy (MappingProxyType / tuples) of a JSON object."""
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object (mapping), got {type(value).__name__}")
    return _freeze(scrub_secrets(value))  # type: ignore[no-any-return]


def _dumps(value: Any) -> str:
    return json.dumps(_thaw(value), sort_keys=True, separators=(",", ":"), allow_nan=False)


# ----------------------------------------------------------------------------------- record


def _time(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a time must be a float (seconds since the epoch), got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"a time must be finite, got {value!r}")
    return float(value)


def _optional_time(value: float | None) -> float | None:
    return None if value is None else _time(value)


def _non_negative_int(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "cursor":
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _non_empty_str(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value or not _encodable(value):
        raise ValueError(f"{attribute.name} must be a non-empty UTF-8 string, got {value!r}")


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from json.loads('"\\ud800"')
        return False
    return True


def _optional_error(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"last_error must be a string or None, got {value!r}")
    text = value.encode("utf-8", "replace").decode("utf-8")  # storable whatever the server sent
    return redact_text(text)[:_MAX_ERROR_CHARS]


def _small_metadata(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    size = len(_dumps(value).encode())
    if size > _MAX_METADATA_BYTES:
        raise ValueError(f"metadata must encode to <= {_MAX_METADATA_BYTES} bytes, got {size}")


@attrs.frozen(kw_only=True)
class TrackedResponse:
    """One background response the poller follows, as stored in the registry.

    Invariant: ``terminal_at`` is set exactly when ``status`` is terminal. ``request`` and
    ``metadata`` are scrubbed of secrets and deep-frozen (mappings become read-only proxies, lists
    become tuples); ``as_json()`` gives plain JSON back. Construction raises ``ValueError`` or
    ``TypeError`` naming the field for a bad value. Fields are keyword-only.
    """

    #: The server's id (``resp_...``), the primary key.
    response_id: str = attrs.field(validator=_non_empty_str)
    #: queued / in_progress (active) or completed / failed / cancelled / incomplete (terminal).
    status: str = attrs.field(validator=attrs.validators.in_(RESPONSE_STATUSES))
    #: The model the response was created with.
    model: str = attrs.field(validator=_non_empty_str)
    #: Wall-clock time the response was first tracked.
    created_at: float = attrs.field(converter=_time)
    #: Wall-clock time of the last change; defaults to ``created_at``.
    updated_at: float = attrs.field(converter=_time)
    #: The session id that created it, if any (its events go to ``session.<owner>`` too).
    owner: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(_non_empty_str)
    )
    #: ``"poll"`` (GET polling) or ``"stream"`` (a durable stream resumed from ``cursor``).
    mode: str = attrs.field(default="poll", validator=attrs.validators.in_(MODES))
    #: Wall-clock time of the last poll, successful or not.
    last_polled_at: float | None = attrs.field(default=None, converter=_optional_time)
    #: The last sequence number delivered (the ``starting_after`` for a resume); never goes back
    #: through ``record_cursor``.
    cursor: int | None = attrs.field(default=None, validator=_non_negative_int)
    #: Polls made so far.
    poll_attempts: int = attrs.field(default=0, validator=_non_negative_int)
    #: Consecutive failed polls (reset by a successful one): the backoff survives a restart.
    error_count: int = attrs.field(default=0, validator=_non_negative_int)
    #: Wall-clock time the status became terminal; None while active.
    terminal_at: float | None = attrs.field(default=None, converter=_optional_time)
    #: The last error seen while polling or streaming (redacted, truncated).
    last_error: str | None = attrs.field(default=None, converter=_optional_error)
    #: A small JSON object for the poller's and users' own notes (<= 16 KiB encoded).
    metadata: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_json_field, validator=_small_metadata, hash=False
    )
    #: The create body, minus every credential.
    request: Mapping[str, Any] = attrs.field(factory=dict, converter=_json_field, hash=False)

    @updated_at.default
    def _updated_at_default(self) -> float:
        return self.created_at

    @terminal_at.validator
    def _terminal_at_matches_status(self, _attribute: object, value: float | None) -> None:
        if (self.status in TERMINAL_STATUSES) != (value is not None):
            raise ValueError(
                f"terminal_at must be set exactly when the status is terminal "
                f"(status={self.status!r}, terminal_at={value!r})"
            )

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed, cancelled and incomplete."""
        return self.status in TERMINAL_STATUSES

    def as_json(self) -> dict[str, Any]:
        """Every field as plain JSON data (dicts and lists), e.g. for the gateway."""
        return {field.name: _thaw(getattr(self, field.name)) for field in attrs.fields(type(self))}


def with_cursor(record: TrackedResponse, cursor: int, updated_at: float | None) -> TrackedResponse:
    """*record* with ``cursor`` (and ``updated_at``, when given) replaced: `attrs.evolve` without
    running every field's converter and validator again. The two values must be checked by the
    caller (``check_cursor``, ``_time``); no invariant across fields involves them. The hot path
    of every durable stream (a cursor write every 32 events): evolving re-froze the request and
    the metadata each time, 15 µs of the 18 a cursor write's new record cost."""
    new: TrackedResponse = object.__new__(TrackedResponse)
    for name in _FIELD_NAMES:
        object.__setattr__(new, name, getattr(record, name))
    object.__setattr__(new, "cursor", cursor)
    if updated_at is not None:
        object.__setattr__(new, "updated_at", updated_at)
    return new


_FIELD_NAMES: tuple[str, ...] = tuple(field.name for field in attrs.fields(TrackedResponse))


@attrs.frozen
class StatusChange:
    """What ``record_status`` did: the record as stored afterwards, and whether it changed."""

    #: The record as stored after the call (unchanged when ``applied`` is false).
    record: TrackedResponse
    #: The status before the call.
    previous: str
    #: False when the new status was ignored (see ``reason``).
    applied: bool
    #: Why it was ignored, e.g. a stale in_progress seen after completed; None when applied.
    reason: str | None = None

    @property
    def changed(self) -> bool:
        """True when the stored status is different from before."""
        return self.applied and self.previous != self.record.status
