"""Every ``/v1`` route, fed generated bad input, answers a typed 4xx in OpenAI's error shape and
leaves the tree as it was; nothing malformed reaches the upstream API.

A refusal here is `expect_http_refusal` (a 4xx with ``{"error": {"type", "message"}}``) plus
OpenAI's own keys (``param``, ``code``), so an SDK raises its typed exception for it.
"""

from __future__ import annotations

import json
from typing import Any, Final

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamvisor.gateway import _v1

from . import _inputs as bad
from .conftest import ADVERSARIAL, HELLO, MODEL, RunningDaemon, route_refuses
from .test_gateway import TOO_LARGE, escape
from .test_gateway import Route as GatewayRoute

JSON: Final = {"content-type": "application/json"}


@attrs.frozen
class Route(GatewayRoute):
    """One ``/v1`` route and a request it would accept (``body`` None: no JSON body); its
    template is relative to ``/v1``."""

    def target(self, **values: str) -> str:
        path = self.template
        for name in self.params:
            default = "gpt-4o" if name == "model" else "resp_" + "0" * 48
            path = path.replace("{" + name + "}", escape(values.get(name, default)))
        return "/v1/" + path

    def __repr__(self) -> str:
        return f"{self.method} /v1/{self.template}"


ROUTES: Final = (
    Route(
        "POST",
        "chat/completions",
        {"model": MODEL, "messages": HELLO},
        {
            "model": (1, None, [], {}),
            "messages": ("x", 1, None, {}, []),
            "stream": ("yes", 1, []),
            "temperature": ("x", []),
            "stream_options": ("x", 1, []),
        },
    ),
    Route(
        "POST",
        "responses",
        {"model": MODEL, "input": "Hello"},
        {
            "model": (1, None, []),
            "input": (1, None, {}, []),
            "stream": ("yes", 1),
            "background": ("yes", 1, []),
            "max_output_tokens": ("x", -1),
        },
    ),
    Route("GET", "responses/{response_id}"),
    Route("DELETE", "responses/{response_id}"),
    Route("POST", "responses/{response_id}/cancel"),
    Route("POST", "files"),
    Route("GET", "files"),
    Route("GET", "files/{file_id}"),
    Route("DELETE", "files/{file_id}"),
    Route("GET", "files/{file_id}/content"),
    Route(
        "POST",
        "uploads",
        {"filename": "a.txt", "purpose": "user_data", "bytes": 1, "mime_type": "text/plain"},
        {"filename": (1, None, ""), "bytes": ("x", 0, -1, True), "mime_type": (1, [])},
    ),
    Route("POST", "uploads/{upload_id}/parts"),
    Route(
        "POST",
        "uploads/{upload_id}/complete",
        {"part_ids": []},
        {"part_ids": ("x", 1, [1], None), "md5": (1, [])},
    ),
    Route("POST", "uploads/{upload_id}/cancel"),
    Route("GET", "models"),
    Route("GET", "models/{model}"),
)
WITH_IDS: Final = [r for r in ROUTES if r.params and r.params != ["model"]]
WITH_JSON: Final = [r for r in ROUTES if r.body is not None]


def test_the_table_covers_every_v1_route() -> None:
    """A new ``/v1`` route must join this suite (read from the gateway's own table)."""
    theirs = {(route.method, "/".join(route.segments)) for route in _v1.ROUTES}
    assert {(r.method, r.template) for r in ROUTES} == theirs


def _openai_refusal(
    running: RunningDaemon,
    what: str,
    method: str,
    target: str,
    statuses: frozenset[int],
    **kwargs: Any,
) -> None:
    error = route_refuses(running, what, method, target, statuses=statuses, **kwargs)
    assert {"message", "type", "param", "code"} <= set(error), f"{what}: not OpenAI's body"


@pytest.mark.parametrize("route", WITH_IDS, ids=repr)
def test_a_malformed_path_id_is_a_typed_400(daemon_under_test: RunningDaemon, route: Route) -> None:
    @ADVERSARIAL
    @given(st.sampled_from(route.params), bad.malformed_id_texts("x", long=8_000))
    def example(param: str, value: str) -> None:
        _openai_refusal(
            daemon_under_test,
            f"{route!r} with {param} = {bad.shown(value)}",
            route.method,
            route.target(**{param: value}),
            frozenset({400, 404}) if value == "" or "/" in value else frozenset({400}),
        )

    example()


def test_a_malformed_model_name_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    route = next(r for r in ROUTES if r.params == ["model"])
    for value in ("..", ".", "a b", "\x00", "x" * 300, "\n"):
        _openai_refusal(
            daemon_under_test,
            f"model {value!r}",
            "GET",
            route.target(model=value),
            frozenset({400}),
        )


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_field_no_json_may_hold_is_a_typed_400(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    assert route.body is not None
    fields = sorted({*route.body, *route.wrong, "metadata"})

    @ADVERSARIAL
    @given(st.sampled_from(fields), bad.bad_field_texts())
    def example(field: str, text: tuple[str, Any]) -> None:
        label, make = text
        assert route.body is not None
        _openai_refusal(
            daemon_under_test,
            f"{route!r} with {field} = {label}",
            route.method,
            route.target(),
            frozenset({400, 413}),
            content=bad.body_with(route.body, field, make()),
            headers=JSON,
        )

    example()


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_field_of_the_wrong_type_is_a_typed_400(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    cases = [(f, v) for f, values in route.wrong.items() for v in values]

    @ADVERSARIAL
    @given(st.sampled_from(cases))
    def example(case: tuple[str, Any]) -> None:
        field, value = case
        assert route.body is not None
        _openai_refusal(
            daemon_under_test,
            f"{route!r} with {field} = {value!r}",
            route.method,
            route.target(),
            frozenset({400}),
            content=json.dumps({**route.body, field: value}).encode(),
            headers=JSON,
        )

    example()


@pytest.mark.parametrize("route", WITH_JSON, ids=repr)
def test_a_body_that_is_not_a_usable_json_object_is_a_typed_4xx(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    @ADVERSARIAL
    @given(st.sampled_from([*bad.NOT_AN_OBJECT, TOO_LARGE]))
    def example(body: bad.Body) -> None:
        _openai_refusal(
            daemon_under_test,
            f"{route!r} with body {body!r}",
            route.method,
            route.target(),
            frozenset({400, 413}),
            content=body.make(),
            headers=JSON,
        )

    example()


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method != "GET"], ids=repr)
def test_a_body_of_another_content_type_is_refused(
    daemon_under_test: RunningDaemon, route: Route
) -> None:
    """What a page of another origin could send without a preflight changes nothing."""
    content = json.dumps(route.body if route.body is not None else {}).encode()
    form = route.template in ("files", "uploads/{upload_id}/parts")
    types = ["text/plain", "application/x-www-form-urlencoded"]
    types.append("application/json" if form else "multipart/form-data; boundary=x")
    for content_type in types:
        _openai_refusal(
            daemon_under_test,
            f"{route!r} as {content_type!r}",
            route.method,
            route.target(),
            frozenset({400, 415}),
            content=content,
            headers={"content-type": content_type},
        )


CURSORS: Final = ("-1", "NaN", "1e999", "1.5", "\x00", " 1", "1\n", "9" * 30)


def test_a_bad_cursor_stream_flag_or_session_header_is_a_typed_400(
    daemon_under_test: RunningDaemon,
) -> None:
    """Before any stream starts: an accepted event stream would be a failure, not a hang."""
    target = "/v1/responses/resp_" + "0" * 48
    for cursor in CURSORS:
        _openai_refusal(
            daemon_under_test,
            f"starting_after={cursor!r}",
            "GET",
            f"{target}?stream=true&starting_after={escape(cursor)}",
            frozenset({400}),
        )
    for flag in ("yes", "", "2", "TRUE%00"):
        _openai_refusal(
            daemon_under_test,
            f"stream={flag!r}",
            "GET",
            f"{target}?stream={flag}",
            frozenset({400}),
        )

    @ADVERSARIAL
    @given(bad.malformed_id_texts("s", long=1_000))
    def example(value: str) -> None:
        if any(ord(c) < 32 or ord(c) > 126 for c in value) or value.strip() != value:
            return  # not sendable as a header value at all
        _openai_refusal(
            daemon_under_test,
            f"x-streamvisor-session = {bad.shown(value)}",
            "POST",
            "/v1/responses",
            frozenset({400}),
            content=json.dumps({"model": MODEL, "input": "x", "stream": True}).encode(),
            headers={**JSON, "x-streamvisor-session": value},
        )

    example()
