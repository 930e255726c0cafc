"""Routing tables of the gateway: a route is a method, a path template of segments and a
handler; both front doors (the gateway's own API and ``/v1``) match requests against theirs."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Generic, TypeVar

import attrs
import trio

from ._checks import check_media_type
from ._errors import GatewayError, MethodNotAllowed, NotFound, PayloadTooLarge
from ._http import Receive, read_body

__all__ = ["FORM", "JSON", "Route", "match_route", "read_admitted"]

H = TypeVar("H")

JSON: Final = "application/json"
FORM: Final = "multipart/form-data"


@attrs.frozen
class Route(Generic[H]):
    """``method`` on the path of ``segments`` (``{name}`` segments are parameters) goes to
    ``handler``; a state-changing request's body must be of the media type ``body``."""

    method: str
    segments: tuple[str, ...]
    handler: H
    body: str = JSON

    @classmethod
    def of(cls, method: str, template: str, handler: H, body: str = JSON) -> Route[H]:
        """A route from a ``/``-separated ``template`` (``"/"`` or ``""``: the root)."""
        stripped = template.strip("/")
        return cls(method, tuple(stripped.split("/")) if stripped else (), handler, body)

    def match(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        """The path parameters if ``segments`` fit the template (any method), else None."""
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for template, segment in zip(self.segments, segments, strict=True):
            if template.startswith("{"):
                params[template[1:-1]] = segment
            elif template != segment:
                return None
        return params


def match_route(
    routes: Iterable[Route[H]], method: str, segments: tuple[str, ...], path: str, missing: str
) -> tuple[Route[H], dict[str, str]]:
    """The route of ``method`` on ``segments`` and its (unchecked) parameters.

    Raises `NotFound` (``missing``, formatted with ``method`` and ``path``) for a path no route
    has, `MethodNotAllowed` for one that answers other methods."""
    allowed: list[str] = []
    for candidate in routes:
        params = candidate.match(segments)
        if params is None:
            continue
        if candidate.method == method:
            return candidate, params
        allowed.append(candidate.method)
    if allowed:
        raise MethodNotAllowed(method, path, allowed)
    raise NotFound(missing.format(method=method, path=path))


async def read_admitted(
    receive: Receive,
    method: str,
    headers: Mapping[str, str],
    found: tuple[Route[Any], dict[str, str]] | None,
    refused: Exception | None,
    *,
    limit: int,
    check_params: Callable[[Mapping[str, str]], None],
) -> tuple[bytes, Exception | None] | None:
    """Read the request's body -- even a refused request's, so the connection stays usable --
    at most ``limit`` bytes; then check its media type against the route's and the route's
    path parameters (``check_params``). Returns the body and why the request is refused (None:
    it is not), or None if the client went away."""
    try:
        body = await read_body(receive, limit)
    except trio.BrokenResourceError:
        return None
    except PayloadTooLarge as exc:
        return b"", refused or exc
    if refused is None and found is not None:
        try:
            if method not in ("GET", "HEAD"):
                check_media_type(headers.get("content-type"), body, found[0].body)
            check_params(found[1])
        except GatewayError as exc:
            refused = exc
    return body, refused
