"""`MockAPIConfig`: how the embedded server behaves (frozen, validated at construction)."""

from __future__ import annotations

from pathlib import Path

import attrs

__all__ = ["MockAPIConfig"]

_MB = 1024 * 1024


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _to_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


@attrs.frozen(kw_only=True)
class MockAPIConfig:
    """Configuration of the embedded OpenAI-compatible server.

    Every duration is in seconds of `trio.current_time()`.
    """

    #: When set, every request must carry `Authorization: Bearer <api_key>` (else 401).
    api_key: str | None = None
    #: Address and port `serve()` binds (port 0: the OS picks a free port).
    host: str = "127.0.0.1"
    port: int = attrs.field(
        default=0,
        validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65535)),
    )
    #: Pause before each streamed token (per request: `metadata["mock_token_delay_ms"]`).
    token_delay: float = attrs.field(default=0.0, validator=_non_negative)
    #: How long a background response stays `queued` (per request: `metadata["mock_queue_ms"]`).
    queue_delay: float = attrs.field(default=0.0, validator=_non_negative)
    #: A `keepalive` frame is logged this often while a background response is queued/stalled.
    keepalive_interval: float = attrs.field(default=30.0, validator=_positive)
    #: Background responses without `store: true` are forgotten this long after creation.
    retention: float = attrs.field(default=600.0, validator=_positive)
    #: Value of the `openai-poll-after-ms` header on `GET /v1/responses/{id}`.
    poll_after_ms: int = attrs.field(default=1000, validator=attrs.validators.ge(0))
    #: Largest file accepted by `POST /v1/files` (the real limit is 512 MB).
    max_file_bytes: int = attrs.field(default=512 * _MB, validator=attrs.validators.gt(0))
    #: Largest part accepted by `POST /v1/uploads/{id}/parts` (the real limit is 64 MB).
    max_part_bytes: int = attrs.field(default=64 * _MB, validator=attrs.validators.gt(0))
    #: Largest Upload (the real limit is 8 GB).
    max_upload_bytes: int = attrs.field(default=8 * 1024 * _MB, validator=attrs.validators.gt(0))
    #: An Upload expires (status `expired`) this long after creation (the real API: 1 hour).
    upload_ttl: float = attrs.field(default=3600.0, validator=_positive)
    #: Where `replay:<stem>` scenarios find `<stem>.sse` recordings.
    recordings_dir: Path | None = attrs.field(default=None, converter=_to_path)
    #: Limits reported in the `x-ratelimit-*` headers (per minute).
    ratelimit_requests: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    ratelimit_tokens: int = attrs.field(default=30_000_000, validator=attrs.validators.gt(0))
    #: None (the default): ids and obfuscation strings are random, like the real API's, and never
    #: repeat across runs. A string (tests only) seeds them: two servers with one seed and one
    #: request sequence hand out the same ids (only `created`/`created_at` timestamps differ).
    seed: str | None = None
    #: Requests (and tool calls' made-up argument notes) kept for inspection: the newest ones, so
    #: that a long-running embedded server holds bounded memory.
    recorded: int = attrs.field(default=10_000, validator=attrs.validators.gt(0))
    #: How long hypercorn waits for open connections when the server shuts down.
    graceful_timeout: float = attrs.field(default=1.0, validator=_non_negative)
