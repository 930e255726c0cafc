"""`ClientSettings`: where the API is, who we are, and how patient to be."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from ._retry import RetryPolicy

__all__ = ["DEFAULT_BASE_URL", "ClientSettings"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attr.name} must be > 0, got {value!r}")


def _base_url(_inst: object, attr: attrs.Attribute[str], value: str) -> None:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, got {value!r}")


def _strip_slash(value: str) -> str:
    return value.rstrip("/")


def _optional_str(value: str | None) -> str | None:
    return value or None


@attrs.frozen
class ClientSettings:
    """Configuration of one `OpenAIClient` (frozen, validated at construction).

    The API key is never shown: it is excluded from `repr` and from every log line and error.

    Attributes:
        api_key: Sent as `Authorization: Bearer …` only when set (a local server needs none).
        base_url: The API root, e.g. `https://api.openai.com/v1` or the embedded server's URL.
        organization / project: Sent as `OpenAI-Organization` / `OpenAI-Project` when set.
        connect_timeout: Seconds to establish a connection (5 s, as the SDK).
        read_timeout: Seconds without a byte before a read fails: for a stream, the idle timeout.
            120 s leaves room for ~30 s keepalive gaps and long reasoning silences.
        write_timeout / pool_timeout: Seconds to send a request / to wait for a free connection.
        max_connections: Each open stream holds one connection for its whole life, so this is
            the bound on concurrent streams plus calls (1000, as the SDK).
        max_keepalive_connections / keepalive_expiry: The idle pool kept for reuse.
        retry: The retry policy of every call.
        model_rules: Apply `apply_model_rules` to create bodies before sending.
        default_headers: Extra headers on every request.
    """

    api_key: str | None = attrs.field(default=None, repr=False, converter=_optional_str)
    base_url: str = attrs.field(
        default=DEFAULT_BASE_URL, converter=_strip_slash, validator=_base_url
    )
    organization: str | None = attrs.field(default=None, converter=_optional_str)
    project: str | None = attrs.field(default=None, converter=_optional_str)
    connect_timeout: float = attrs.field(default=5.0, validator=_positive)
    read_timeout: float = attrs.field(default=120.0, validator=_positive)
    write_timeout: float = attrs.field(default=60.0, validator=_positive)
    pool_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_connections: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    max_keepalive_connections: int = attrs.field(default=100, validator=attrs.validators.ge(0))
    keepalive_expiry: float = attrs.field(default=30.0, validator=_positive)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    model_rules: bool = True
    default_headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=dict, repr=False, hash=False
    )

    @property
    def has_api_key(self) -> bool:
        return self.api_key is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ClientSettings:
        """Settings from the official SDK's variables, then `overrides`.

        Reads `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID`
        (empty values count as unset).

        Raises:
            ValueError / TypeError: a value (from the environment or an override) is invalid.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "api_key": env.get("OPENAI_API_KEY") or None,
            "organization": env.get("OPENAI_ORG_ID") or None,
            "project": env.get("OPENAI_PROJECT_ID") or None,
        }
        base = env.get("OPENAI_BASE_URL")
        if base:
            values["base_url"] = base
        values.update(overrides)
        return cls(**values)
