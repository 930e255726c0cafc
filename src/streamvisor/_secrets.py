"""What counts as a secret: one definition for the log redactor and the registry store.

Neither the API key nor any other credential may reach a log line or the durable registry. Both
places recognise secrets the same way: by the *name* of a field (at any depth) and by the *shape*
of a string (OpenAI keys and bearer tokens).
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["REDACTED", "SECRET_FIELDS", "SECRET_TEXT", "is_secret_field", "redact_text"]

REDACTED: Final = "[REDACTED]"

#: Field names (lower case, ``-`` read as ``_``) that carry credentials.
SECRET_FIELDS: Final = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "api_key",
        "apikey",
        "x_api_key",
        "openai_api_key",
        "client_secret",
        "secret_key",
        "password",
        "access_token",
        "refresh_token",
        "cookie",
        "set_cookie",
    }
)

#: OpenAI keys (``sk-``, ``sk-proj-``, ``sk-svcacct-``, masked ``sk-ab***yz``) and bearer tokens.
#: ``sk-`` must not follow a letter or digit, so that words like ``task-1234abcd`` are kept.
SECRET_TEXT: Final = re.compile(
    r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-*]{8,}"  # OpenAI keys, masked ones too
    r"|(?i:\bbearer\s+)[^\s\"',;]+"  # bearer tokens
)


def is_secret_field(key: Any) -> bool:
    """True for a mapping key that names a credential (``Authorization``, ``api-key``, ...)."""
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_FIELDS


def redact_text(text: str) -> str:
    """*text* with every ``sk-...`` key and bearer token replaced by ``[REDACTED]``."""
    return SECRET_TEXT.sub(REDACTED, text)
