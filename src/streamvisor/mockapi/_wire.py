"""Wire-level values: JSON encoding, error bodies, ids, tokens, Go-style durations.

Everything here is a pure function of its arguments except the ids: an `IdFactory` hands out
random ids like the real API's, or, given a seed (tests only), ids that are a function of the seed
and the request sequence, so that two seeded servers send the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SERVER_ERROR",
    "ApiProblem",
    "IdFactory",
    "api_error",
    "dumps",
    "format_go_duration",
    "missing_parameter",
    "query_limit",
    "split_tokens",
]

#: The message of the real API's 500s and `server_error` failures.
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


def dumps(value: Any) -> str:
    """Compact JSON, as the real API writes it (`{"a":1,"b":[]}`)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def api_error(
    message: str,
    type_: str = "invalid_request_error",
    *,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The error body shape of every non-2xx response (reference §6.1)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ApiProblem(Exception):
    """Raised inside a handler to answer with an HTTP error: status, body and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = api_error(message, type_, param=param, code=code)
        self.headers = dict(headers or {})


def missing_parameter(param: str) -> ApiProblem:
    """The API's 400 for a required parameter that is absent (or empty)."""
    return ApiProblem(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def query_limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    """The ``limit`` query parameter of a list endpoint (``default`` when absent).

    Raises `ApiProblem` (400) unless it is an integer from 1 to ``maximum``.
    """
    try:
        limit = int(query.get("limit", str(default)))
    except ValueError:
        limit = 0
    if not 1 <= limit <= maximum:
        raise ApiProblem(
            400,
            f"Invalid 'limit': expected an integer between 1 and {maximum}.",
            param="limit",
            code="invalid_value",
        )
    return limit


def split_tokens(text: str) -> list[str]:
    """Split text into word tokens with their leading whitespace: "The", " capital", "."."""
    return _TOKEN.findall(text)


def format_go_duration(seconds: float) -> str:
    """Format like Go's `time.Duration.String()`: `17ms`, `7.66s`, `1m26.4s`, `6m0s`."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{_trim(ms)}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    rest = round(rest, 3)
    if hours:
        return f"{hours}h{minutes}m{_trim(rest)}s"
    if minutes:
        return f"{minutes}m{_trim(rest)}s"
    return f"{_trim(rest)}s"


def _trim(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"


class IdFactory:
    """Unique ids shaped like OpenAI's (`resp_<hex>`, `file-<alnum>`, ...).

    Unseeded (the server's default) every id and obfuscation string is random, like the real
    API's: a restarted server never hands out an id it gave before, so records that outlive it
    (the daemon's background registry under ``var/``) never collide with new ones. With a seed,
    ids are derived from the seed and a counter: deterministic, for tests that compare servers.
    """

    def __init__(self, seed: str | None = None) -> None:
        self._seed = seed
        self._counter = itertools.count()

    def _digest(self, kind: str) -> bytes:
        if self._seed is None:
            return secrets.token_bytes(32)
        n = next(self._counter)
        return hashlib.sha256(f"{self._seed}:{kind}:{n}".encode()).digest()

    def hex(self, prefix: str, length: int = 48) -> str:
        return prefix + (self._digest(prefix).hex() * 2)[:length]

    def alnum(self, prefix: str, length: int = 24) -> str:
        digest = self._digest(prefix)
        number = int.from_bytes(digest * 2, "big")
        chars = []
        for _ in range(length):
            number, index = divmod(number, len(_ALNUM))
            chars.append(_ALNUM[index])
        return prefix + "".join(chars)

    def obfuscation(self, key: str) -> str:
        """A padding string of 1..15 characters, as the real API adds to stream deltas."""
        if self._seed is None:
            digest = secrets.token_bytes(16)
        else:
            digest = hashlib.sha256(f"{self._seed}:obf:{key}".encode()).digest()
        length = 1 + digest[0] % 15
        return "".join(_ALNUM[b % len(_ALNUM)] for b in digest[1 : 1 + length])
