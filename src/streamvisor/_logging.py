"""Logging: structlog as JSON lines (daemon) or pretty (terminal), with secrets redacted.

``configure_logging(config.log, secrets=[config.openai.api_key])`` configures structlog and routes
the standard library's ``logging`` (httpx, hypercorn, ...) through the same processors, so every
line -- ours or a library's -- passes the redactor:

* a field named like a credential (``authorization``, ``api_key``, ``x-api-key``, ...) at any depth
  is replaced by ``[REDACTED]``;
* any occurrence of a configured secret (the API key) in any string is replaced;
* ``sk-...`` keys and ``Bearer ...`` tokens are replaced wherever they appear;
* the rendered line is scrubbed once more, which also covers exceptions rendered by the pretty
  console renderer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final, TextIO

import attrs
import structlog

from streamvisor._secrets import REDACTED, is_secret_field, redact_text
from streamvisor.config import LogSection

__all__ = ["REDACTED", "SecretRedactor", "configure_logging", "reset_logging"]

#: Secrets shorter than this are not searched for in text (they would redact ordinary words).
_MIN_SECRET_LEN: Final = 8


def _usable_secrets(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(v for v in values if v and len(v) >= _MIN_SECRET_LEN)


@attrs.frozen
class SecretRedactor:
    """A structlog processor (and rendered-line filter) that removes secrets from log events."""

    #: Exact secret values to remove from any string (e.g. the configured API key).
    secrets: tuple[str, ...] = attrs.field(
        default=(),
        converter=_usable_secrets,
        repr=lambda values: f"<{len(values)} secrets>",
    )

    def text(self, value: str) -> str:
        """*value* with every configured secret, ``sk-`` key and bearer token replaced."""
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        return redact_text(value)

    def value(self, value: Any) -> Any:
        """A redacted copy of *value* (mappings, sequences and strings; others as they are)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                key: REDACTED if is_secret_field(key) else self.value(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(item) for item in value)
        if isinstance(value, bytes | bytearray):
            return self.value(value.decode("utf-8", "replace"))
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: Any) -> Any:
        """Processor: redact an event dict, or a rendered line when placed after a renderer."""
        if isinstance(event_dict, str):
            return self.text(event_dict)
        return {
            key: REDACTED if is_secret_field(key) else self.value(item)
            for key, item in event_dict.items()
        }


# ------------------------------------------------------------------ global state department
# structlog's and the standard library's configuration are process-global; this is the only
# place in streamvisor that changes them. ``configure_logging`` replaces both wholesale.

#: The handler configure_logging installed on the stdlib root logger (replaced on reconfigure).
_stdlib_handler: logging.Handler | None = None
#: The stdlib root logger's level before configure_logging first changed it (restored on reset).
_root_level_before: int | None = None


def configure_logging(
    settings: LogSection,
    *,
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
) -> SecretRedactor:
    """Configure structlog and stdlib logging from ``[log]``; returns the redactor in use.

    *secrets* are exact values never to log (pass ``config.openai.api_key``; None is ignored).
    *stream* defaults to ``sys.stderr``; ``format="auto"`` is pretty when it is a terminal and
    JSON lines otherwise. Calling it again replaces the previous configuration. Raises nothing.
    """
    global _stdlib_handler, _root_level_before
    out = sys.stderr if stream is None else stream
    redactor = SecretRedactor(tuple(s for s in secrets if s))
    pretty = settings.format == "pretty" or (settings.format == "auto" and _isatty(out))
    level = logging.getLevelNamesMapping()[settings.level.upper()]

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Any
    if pretty:
        # Plain tracebacks: rich's would show local variables (secrets) and wrap long strings,
        # which the rendered-line pass could then no longer match.
        renderer = structlog.dev.ConsoleRenderer(
            colors=_isatty(out), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()

    structlog.configure(
        processors=[*shared, redactor, renderer, redactor],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                redactor,
                renderer,
                redactor,
            ],
        )
    )
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    else:
        _root_level_before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    _stdlib_handler = handler
    return redactor


def reset_logging() -> None:
    """Undo ``configure_logging``: structlog's defaults, our stdlib handler removed."""
    global _stdlib_handler, _root_level_before
    structlog.reset_defaults()
    if _stdlib_handler is not None:
        root = logging.getLogger()
        root.removeHandler(_stdlib_handler)
        if _root_level_before is not None:
            root.setLevel(_root_level_before)
        _stdlib_handler = _root_level_before = None


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
