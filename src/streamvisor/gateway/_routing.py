"""Routing tables of the gateway: a route is a method, a path template of segments and a
handler; both front doors (the gateway's own API and ``/v1``) match requests against theirs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Generic, TypeVar

import attrs

from ._errors import MethodNotAllowed, NotFound

__all__ = ["FORM", "JSON", "Route", "match_route"]

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
