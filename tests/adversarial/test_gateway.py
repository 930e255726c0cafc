"""Every gateway route, fed generated bad input, answers a typed 4xx and leaves the tree as it was.

A refusal (judged by `expect_http_refusal`) is a 4xx with ``{"error": {"type", "message"}}``,
never a 5xx and never a 2xx; a malformed path id is a 400 (a 404 only where the id cannot match
the route at all: empty, or holding a ``/``); a bad query parameter or body field a 400 (a body
over the limit 413, a wrong content type 415 or 400); nothing reaches the upstream API. Every
request carries the gateway's token (the client is built with it).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import attrs
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamvisor.gateway import _app as gateway_app

from . import _inputs as bad
from .conftest import (
    ADVERSARIAL,
    HELLO,
    MODEL,
    RunningDaemon,
    expect_http_refusal,
    route_refuses,
)

JSON: Final = {"content-type": "application/json"}


@attrs.frozen
class Route:
    """One route of the gateway and a request it would accept (``body``: a JSON object, or
    None for a route that takes no body)."""

    method: str
    template: str
    body: dict[str, Any] | None = None
    #: Field -> values of the wrong type for it.
    wrong: dict[str, tuple[Any, ...]] = attrs.field(factory=dict)

    @property
    def params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.template)

    def target(self, **values: str) -> str:
        """The path with ``values`` (escaped) and a plausible id for every other parameter."""
        # Session and agent "adv" run (see _adv_running); an agent is created under a new id.
        creates_agent = (self.method, self.template) == ("POST", "/agents/{agent}")
        plausible = {
            "session": "adv",
            "stream": "stream-000000000000",
            "agent": "adv-new" if creates_agent else "adv",
        }
        path = self.template
        for name in self.params:
            value = values.get(name, plausible.get(name, "resp_" + "0" * 48))
            path = path.replace("{" + name + "}", escape(value))
        return path

    def __repr__(self) -> str:
        return f"{self.method} {self.template}"


def escape(text: str) -> str:
    """Every byte but ``[A-Za-z0-9_-]`` %-escaped, so the text reaches the gateway's route
    exactly (no client normalises ``..`` or drops a newline on the way)."""
    return "".join(
        chr(b) if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-") else f"%{b:02X}"
        for b in text.encode("utf-8", "surrogatepass")
    )


TYPES: Final = (1, None, [], {}, True, "x")
ROUTES: Final = (
    Route("GET", "/"),
    Route("GET", "/health"),
    Route("GET", "/openapi.json"),
    Route("GET", "/metrics"),
    Route("GET", "/tree"),
    Route("GET", "/sessions"),
    Route("GET", "/agents"),
    Route(
        "POST",
        "/sessions/{session}/chat",
        {"model": MODEL, "messages": HELLO},
        {"model": (1, None, [], {}), "messages": ("x", 1, None, {}), "temperature": ("x", [])},
    ),
    Route(
        "POST",
        "/sessions/{session}/responses",
        {"model": MODEL, "input": "Hello", "durable": False},
        {"model": (1, None, []), "durable": ("yes", 1, []), "max_output_tokens": ("x", -1)},
    ),
    Route("POST", "/sessions/{session}/stop", {}, {"stream_id": (1, [], {}, True)}),
    Route("GET", "/sessions/{session}/streams"),
    Route(
        "POST",
        "/sessions/{session}/wait/{stream}",
        {"timeout": 1},
        {"timeout": ("x", -1, [], True)},
    ),
    Route(
        "POST",
        "/background",
        {"model": MODEL, "input": "Hello"},
        {"model": (1, None, []), "owner": (1, [], "a.b", "a*"), "stream": (True,)},
    ),
    Route("GET", "/background"),
    Route("GET", "/background/{id}"),
    Route("POST", "/background/{id}/cancel"),
    Route("GET", "/background/{id}/events"),
    Route("GET", "/files"),
    Route("POST", "/files"),
    Route("GET", "/files/{id}"),
    Route("DELETE", "/files/{id}"),
    Route(
        "POST",
        "/agents/{agent}",
        {"model": MODEL},
        {"model": (1, None), "api": ("x", 1), "options": ([], "x", 1), "instructions": (1, [])},
    ),
    Route("DELETE", "/agents/{agent}"),
    Route(
        "POST",
        "/agents/{agent}/ask",
        {"text": "Hello"},
        {"text": (1, None, []), "timeout": ("x", -1)},
    ),
    Route("GET", "/events"),
)
WITH_IDS: Final = [r for r in ROUTES if r.params]
WITH_JSON: Final = [r for r in ROUTES if r.body is not None]
#: Routes that change state (a browser must not be able to drive them with a simple request).
ACTING: Final = [r for r in ROUTES if r.method != "GET" and r.template != "/files"]


@pytest.fixture(autouse=True)
def _adv_running(daemon_under_test: RunningDaemon) -> None:
    """Session ``adv`` and agent ``adv`` run, so that a request that names them is refused for
    what is wrong with it, not for naming nothing."""
    running = daemon_under_test

    async def start() -> None:
        await running.daemon.open_session("adv")
        if running.daemon.agent("adv") is None:
            await running.daemon.open_agent("adv", model=MODEL)

    running.run(start)


def test_the_table_covers_every_route_of_the_gateway() -> None:
    """A new route must join this suite (the gateway's own table, read from its module)."""
    theirs = {(route.method, "/" + "/".join(route.segments)) for route in gateway_app._ROUTES}
    ours = {(r.method, r.template) for r in ROUTES}
    assert ours == theirs


def _id_statuses(value: str) -> frozenset[int]:
    """A malformed id is a 400; a 404 only where it cannot match the route at all."""
    return frozenset({400, 404}) if value == "" or "/" in value else frozenset({400})


def _path_id_refused(running: RunningDaemon, route: Route, param: str, value: str) -> None:
    """``value`` as the route's ``param`` (its usual body, if any) is a typed 400."""
    route_refuses(
        running,
        f"{route!r} with {param} = {bad.shown(value)}",
        route.method,
        route.target(**{param: value}),
        content=None if route.body is None else json.dumps(route.body).encode(),
        headers=None if route.body is None else JSON,
        statuses=_id_statuses(value),
    )


@pytest.mark.parametrize("route", WITH_IDS, ids=repr)
def test_a_malformed_path_id_is_a_typed_400(daemon_under_test: RunningDaemon, route: Route) -> None:
    """Control characters, NUL, traversal, ``%``, whitespace, dots, 8,000 characters."""

    @ADVERSARIAL
    @given(st.sampled_from(route.params), bad.malformed_id_texts("x", long=8_000))
    def example(param: str, value: str) -> None:
        _path_id_refused(daemon_under_test, route, param, value)

    example()


@pytest.mark.parametrize("route", WITH_IDS, ids=repr)
def test_every_named_bad_id_in_a_path_is_a_typed_400(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    """Each of `NAMED_BAD_IDS` in each id of the route: what the generated cases may not draw."""
    for param in route.params:
        for value in bad.NAMED_BAD_IDS:
            _path_id_refused(daemon_under_test, route, param, value)


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_field_no_json_may_hold_is_a_typed_400(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    """NaN, Infinity, 1e999, lone surrogates, 1,000- to 100,000-deep values, in any field."""
    running = daemon_under_test
    assert route.body is not None
    fields = sorted({*route.body, *route.wrong, "metadata"})

    @ADVERSARIAL
    @given(st.sampled_from(fields), bad.bad_field_texts())
    def example(field: str, text: tuple[str, Any]) -> None:
        label, make = text
        assert route.body is not None
        route_refuses(
            running,
            f"{route!r} with {field} = {label}",
            route.method,
            route.target(),
            content=bad.body_with(route.body, field, make()),
            headers=JSON,
            statuses=frozenset({400, 413, 422}),
        )

    example()


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_field_of_the_wrong_type_is_a_typed_400(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    running = daemon_under_test
    cases = [(f, v) for f, values in route.wrong.items() for v in values]

    @ADVERSARIAL
    @given(st.sampled_from(cases))
    def example(case: tuple[str, Any]) -> None:
        field, value = case
        assert route.body is not None
        route_refuses(
            running,
            f"{route!r} with {field} = {value!r}",
            route.method,
            route.target(),
            content=json.dumps({**route.body, field: value}).encode(),
            headers=JSON,
            statuses=frozenset({400, 422}),
        )

    example()


#: Over the gateway's 4 MiB limit for a JSON body.
TOO_LARGE: Final = bad.Body(
    "a 5 MiB JSON object", lambda: b'{"model": "' + b"x" * (5 * 1024 * 1024) + b'"}'
)


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_body_that_is_not_a_usable_json_object_is_a_typed_4xx(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    """Truncated, NaN, a list, NUL-terminated, invalid UTF-8, 100,000 open brackets, 5 MiB."""
    running = daemon_under_test

    @ADVERSARIAL
    @given(st.sampled_from([*bad.NOT_AN_OBJECT, TOO_LARGE]))
    def example(body: bad.Body) -> None:
        route_refuses(
            running,
            f"{route!r} with body {body!r}",
            route.method,
            route.target(),
            content=body.make(),
            headers=JSON,
            statuses=frozenset({400, 413, 422}),
        )

    example()


@pytest.mark.parametrize("route", ACTING, ids=repr)
def test_a_state_changing_body_of_another_content_type_is_refused(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    """Only application/json (or multipart for uploads) may change state: a form or text body
    is what a page of another origin can send without a preflight."""
    running = daemon_under_test
    content = json.dumps(route.body if route.body is not None else {}).encode()
    types = st.sampled_from(
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""]
    )

    @ADVERSARIAL
    @given(types)
    def example(content_type: str) -> None:
        route_refuses(
            running,
            f"{route!r} as {content_type or 'no content type'!r}",
            route.method,
            route.target(),
            content=content,
            headers={"content-type": content_type} if content_type else {},
            statuses=frozenset({400, 415}),
        )

    example()


CURSORS: Final = ("-1", "NaN", "1e999", "1.5", "\x00", " 1", "1\n", "99999999999999999999999", "")


def test_a_bad_cursor_or_topic_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    """``/background/{id}/events?starting_after=``, ``/files?purpose=``, ``/events?topic=``:
    a 400 before any stream starts (an accepted event stream is a failure, not a hang)."""
    running = daemon_under_test

    async def first_answer(target: str) -> httpx.Response:
        async with running.http.stream("GET", target) as response:
            if response.status_code == 200:
                return httpx.Response(200, text="(an event stream started)")
            await response.aread()
            return response

    @ADVERSARIAL
    @given(
        st.one_of(
            st.tuples(st.just("starting_after"), st.sampled_from(CURSORS)),
            st.tuples(st.just("purpose"), bad.malformed_id_texts("user_data", long=8_000)),
            st.tuples(st.just("topic"), bad.bad_topics()),
        )
    )
    def example(case: tuple[str, str]) -> None:
        name, value = case
        path = {
            "starting_after": f"/background/resp_{'0' * 48}/events",
            "purpose": "/files",
            "topic": "/events",
        }[name]
        target = f"{path}?{name}={escape(value)}"
        what = f"GET {path}?{name}={bad.shown(value)}"
        with running.watch(what):
            expect_http_refusal(running.run(first_answer, target), what, frozenset({400}))

    example()


def test_the_suite_is_an_authenticated_client(daemon_under_test: RunningDaemon) -> None:
    """Its requests carry the token; a request without it is a typed 401 (so every refusal
    above was judged past the authentication)."""
    running = daemon_under_test

    async def health(headers: dict[str, str] | None) -> httpx.Response:
        if headers is None:
            return await running.http.get("/health")
        async with httpx.AsyncClient(base_url=running.gateway.url, headers=headers) as bare:
            return await bare.get("/health")

    assert running.run(health, None).status_code == 200
    expect_http_refusal(running.run(health, {}), "no token", frozenset({401}))
