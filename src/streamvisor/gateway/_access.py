"""Who may call the gateway: the Host it answers to, the Origin it serves, the token it requires.

Every request and WebSocket handshake passes `Access.check` before anything else happens:

* ``Host`` must be one of ``allowed_hosts`` (when given): a web page whose domain was re-pointed
  at 127.0.0.1 (DNS rebinding) is refused (`HostNotAllowed`).
* ``Origin``, when present, must be the gateway's own (scheme ``http``/``https``, and the same
  host and port as ``Host``), whatever the method: a page of another origin can neither act nor
  read (`CrossOriginRefused`). Clients that are not browsers send no ``Origin`` and pass.
* The token (Jupyter's model): ``Authorization: Bearer <token>``, or the page's cookie, which
  ``GET /?token=<token>`` sets (``HttpOnly; SameSite=Strict``: no script reads it, no other
  site's request carries it). Anything else is `NotAuthenticated` (401). Compared in constant
  time; never echoed.

The token is generated at start (`new_token`) unless one is configured; `write_token_file`
stores it for local scripts, readable by its owner only.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from .._asgi import Scope, parse_query
from ._errors import CrossOriginRefused, HostNotAllowed, NotAuthenticated

__all__ = [
    "Access",
    "cookie_name",
    "hostname",
    "new_token",
    "remove_token_file",
    "write_token_file",
]

#: Bytes of randomness in a generated token (43 URL-safe characters).
_TOKEN_BYTES: Final = 32


def new_token() -> str:
    """A fresh random token, URL-safe (it goes into the page's URL)."""
    return secrets.token_urlsafe(_TOKEN_BYTES)


def hostname(host: str) -> str:
    """``host[:port]`` (``[v6]:port`` too) without the port, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def cookie_name(host: str) -> str:
    """The page's token cookie for a gateway addressed as ``host`` (``Host`` header). Cookies
    ignore ports, so the port is in the name: two gateways on one machine keep their own."""
    _name, sep, port = host.rpartition(":")
    return f"streamvisor-gateway-{port if sep and port.isdigit() else 'default'}"


def _cookie(header: str, name: str) -> str | None:
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


class Access:
    """The gateway's door policy (see the module docstring); `check` raises or passes."""

    __slots__ = ("_token", "allowed_hosts")

    def __init__(self, token: str, allowed_hosts: Iterable[str] | None) -> None:
        self._token = token.encode()
        #: The host names requests may address (None: any).
        self.allowed_hosts = (
            None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
        )

    def __repr__(self) -> str:
        return f"Access(token=<redacted>, allowed_hosts={self.allowed_hosts!r})"

    def matches(self, candidate: str | None) -> bool:
        """True if ``candidate`` is the token (constant time)."""
        if not candidate:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self._token)

    def check(self, headers: Mapping[str, str], *, authenticate: bool = True) -> None:
        """Refuse a caller the gateway must not serve (``headers``: `request_headers`).

        Raises `HostNotAllowed`, `CrossOriginRefused` (any method, the WebSocket handshake
        included) and, when ``authenticate``, `NotAuthenticated`.
        """
        host = headers.get("host")
        if self.allowed_hosts is not None and (
            host is None or hostname(host) not in self.allowed_hosts
        ):
            raise HostNotAllowed(host or "")
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            raise CrossOriginRefused(origin)
        if authenticate and not self.authenticated(headers):
            raise NotAuthenticated()

    def authenticated(self, headers: Mapping[str, str]) -> bool:
        """True if the request carries the token: a bearer header, or the page's cookie."""
        scheme, _, credential = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and self.matches(credential.strip()):
            return True
        cookies = headers.get("cookie")
        host = headers.get("host", "")
        return cookies is not None and self.matches(_cookie(cookies, cookie_name(host)))

    def page_token(self, scope: Scope) -> bool:
        """True if the page was opened with the right ``?token=`` (it then sets the cookie)."""
        return self.matches(parse_query(scope).get("token"))

    def set_cookie(self, host: str) -> str:
        """The ``set-cookie`` value that lets the page (and its fetches, event streams and
        WebSocket, same-origin only) in without showing the token to any script."""
        return f"{cookie_name(host)}={self._token.decode()}; Path=/; HttpOnly; SameSite=Strict"


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names lowercased, read once per request for every check and the
    handler alike. The first of a repeated header wins: a proxy in front appends, a client
    cannot override."""
    found: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(bytes(name).decode("latin-1").lower(), bytes(value).decode("latin-1"))
    return found


def _same_origin(origin: str, host: str | None) -> bool:
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


# ------------------------------------------------------------------------------- the token file


def write_token_file(path: Path, token: str) -> None:
    """Store ``token`` at ``path`` (parents created), readable and writable by the owner only
    (0600 from the start: written to a new file, then renamed over any old one). Blocking: run
    it in a thread. Raises ``OSError``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: a new, unpredictable name, created 0600 (a name from the pid would collide with
    # one a crashed earlier run left behind: in a container every start is pid 1).
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(token + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_token_file(path: Path, token: str) -> None:
    """Remove ``path`` if it still holds ``token`` (another gateway may have replaced it).
    Blocking. Never raises for a file that is gone or unreadable."""
    try:
        if path.read_text(encoding="ascii").strip() == token:
            path.unlink()
    except (OSError, UnicodeDecodeError):
        pass
