"""The gateway's API contract: docs/openapi.json, and schemathesis holding a running gateway to it.

* The document is valid OpenAPI 3.1 (`openapi-spec-validator`), describes every route of the
  gateway (and no other), is what ``GET /openapi.json`` serves, and equals the checked-in
  ``docs/openapi.json`` (regenerate it with ``python -m streamvisor.gateway._openapi >
  docs/openapi.json``).
* **The contract test**: schemathesis generates requests (valid and invalid) for every operation
  of the gateway's own routes -- not ``/v1`` (OpenAI's shapes), ``/events`` and ``/ws`` (streams
  that never end by themselves), nor the page -- and sends them over real HTTP to a running
  gateway (a daemon on its embedded server, in a thread: schemathesis' pytest integration is
  synchronous). Every answer must be no 5xx, of a documented status and content type, and
  conform to its schema.
* **The links**: generated requests only name ids that do not exist, so every link of the
  document (create -> poll/cancel/resume, start a stream -> wait/stop/list, upload ->
  retrieve/delete, open an agent -> ask/close) is also followed with the real ids, each answer
  held to the document. (Schemathesis' own stateful runner is not used: against one long-lived
  gateway its replays draw differently, which Hypothesis reports as a flaky strategy.)
* docs/gateway.md names every WebSocket command of ``_ws.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import tests
from streamvisor.actors import (
    BackgroundStatus,
    PollingStopped,
    ToolCall,
    ToolResult,
    TrackedResponse,
)
from streamvisor.actors.files._rules import LISTED_PURPOSES
from streamvisor.actors.sessions._requests import _STREAM_ID, CHAT_ROLES, INPUT_ROLES
from streamvisor.gateway import Gateway, _openapi_schemas
from streamvisor.gateway import _v1 as v1_routes
from streamvisor.gateway._app import _ROUTES
from streamvisor.gateway._encode import bus_item
from streamvisor.gateway._openapi import openapi_document
from streamvisor.gateway._ops import background_json
from streamvisor.gateway._ws import _OPS
from streamvisor.supervisor import Missed
from streamvisor.testing import gateway_thread

#: The repository: the folder that holds the ``tests`` package.
ROOT: Final = Path(tests.__file__).resolve().parent.parent
CHECKED_IN: Final = ROOT / "docs" / "openapi.json"
GATEWAY_DOC: Final = ROOT / "docs" / "gateway.md"
TOKEN: Final = "openapi-contract-token-0123456789abcdef"

#: What the contract test does not fuzz: OpenAI's routes (described by reference), the bus's
#: streams (they never end by themselves), the page (HTML).
NOT_FUZZED: Final = r"^/(v1/.*|events|ws)?$"


def _route_template(segments: tuple[str, ...]) -> str:
    return "/" + "/".join(segments)


# -------------------------------------------------------------------------------- the document


class TestTheDocument:
    """docs/openapi.json: valid, complete, current, served."""

    def test_the_document_is_valid_openapi_3_1(self) -> None:
        """openapi-spec-validator accepts it (OpenAPI 3.1, JSON Schema 2020-12, every $ref)."""
        document = openapi_document()
        assert document["openapi"] == "3.1.0"
        validate(document)

    def test_the_checked_in_document_is_the_generated_one(self) -> None:
        """docs/openapi.json is the document as built; if not, regenerate it:
        ``python -m streamvisor.gateway._openapi > docs/openapi.json``."""
        expected = json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"
        assert CHECKED_IN.read_text(encoding="utf-8") == expected, (
            "docs/openapi.json is stale: python -m streamvisor.gateway._openapi > docs/openapi.json"
        )

    def test_every_route_is_documented_and_every_documented_route_exists(self) -> None:
        """The gateway's own paths (everything but ``/v1``) are exactly ``_ROUTES`` (+ ``/ws``)."""
        routes = {(r.method.lower(), _route_template(r.segments)) for r in _ROUTES}
        routes.add(("get", "/ws"))  # the WebSocket endpoint (served by _ws, not routed)
        documented = {
            (method, path)
            for path, item in openapi_document()["paths"].items()
            if not path.startswith("/v1/")
            for method in item
            if method != "parameters"
        }
        assert documented == routes

    def test_the_v1_routes_are_described_by_reference_to_openai(self) -> None:
        """Every ``/v1`` operation links OpenAI's reference and answers OpenAI's error body."""
        paths = openapi_document()["paths"]
        operations = [
            (f"{method.upper()} {path}", operation)
            for path, item in paths.items()
            if path.startswith("/v1/")
            for method, operation in item.items()
            if method != "parameters"
        ]
        served = {f"{r.method} /v1/{'/'.join(r.segments)}" for r in v1_routes.ROUTES}
        assert {name for name, _ in operations} == served  # the gateway's own /v1 table
        for name, operation in operations:
            assert operation["externalDocs"]["url"].startswith(
                "https://platform.openai.com/docs/api-reference"
            ), name
            error = operation["responses"]["default"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/OpenAIError"}, name

    @pytest.mark.parametrize("tracked", [True, False])
    def test_a_background_object_conforms_tracked_or_not(self, tracked: bool) -> None:
        """`_ops.background_json` of a registry record (all its fields) and of a Response alone
        (none of them) are both the document's ``Background``; a mix of the two is not."""
        record = TrackedResponse(
            response_id="resp_1", status="queued", model="gpt-4o", created_at=1.0, owner="s1"
        )
        response = {"id": "resp_1", "object": "response", "status": "queued", "model": "gpt-4o"}
        value = background_json("resp_1", record if tracked else None, response)
        schema = {"$ref": "#/components/schemas/Background", **openapi_document()}
        validator = jsonschema.Draft202012Validator(schema)
        validator.validate(value)
        broken = {**value, "tracked": not tracked}
        assert not validator.is_valid(broken)

    def test_the_documented_enumerations_are_the_codes_own(self) -> None:
        """Roles, purposes and the stream id rule restated in the document are the code's."""
        assert set(_openapi_schemas.CHAT_ROLES) == CHAT_ROLES
        assert set(_openapi_schemas.INPUT_ROLES) == INPUT_ROLES
        assert set(_openapi_schemas.LISTED_PURPOSES) == LISTED_PURPOSES
        assert _STREAM_ID.pattern == _openapi_schemas.STREAM_ID_PATTERN

    async def test_the_gateway_serves_the_document_with_the_token(
        self, client: httpx.AsyncClient, anonymous: httpx.AsyncClient
    ) -> None:
        """``GET /openapi.json`` is the document; without the token it is a 401 like every route."""
        served = await client.get("/openapi.json")
        assert served.status_code == 200
        assert served.headers["content-type"] == "application/json"
        assert served.json() == openapi_document()
        assert (await anonymous.get("/openapi.json")).status_code == 401


class TestGatewayMd:
    """docs/gateway.md: every WebSocket command and event name of the code."""

    def test_the_websocket_commands_are_documented(self) -> None:
        """docs/gateway.md names every op ``_ws.py`` answers (as ``"op": "<name>"``)."""
        text = GATEWAY_DOC.read_text(encoding="utf-8")
        missing = [op for op in _OPS if f'"op": "{op}"' not in text]
        assert not missing, f"docs/gateway.md does not document the WebSocket ops {missing}"

    def test_the_event_names_are_documented(self) -> None:
        """docs/gateway.md names the event of every kind of bus item (as `_encode.bus_item`
        names it), every end-of-stream frame and every kind of WebSocket message."""
        text = GATEWAY_DOC.read_text(encoding="utf-8")
        items = [
            BackgroundStatus("resp_1", "queued", None, None, 0.0),
            PollingStopped("resp_1", "queued", "quota", None, 0.0),
            Missed(1),
            ToolCall("a1", "call_1", "add", "{}", 1),
            ToolResult("a1", "call_1", "add", "3", False, 0.0),
        ]
        names = [bus_item(item)[0] for item in items] + ["event: shutdown", "event: end"]
        assert [name for name in names if name not in text] == []
        kinds = set(re.findall(r'"kind": "([a-z]+)"', text))
        assert {"event", "reply", "error", "shutdown", "end", "subscribed"} <= kinds


# ------------------------------------------------------------------------- the contract test


@pytest.fixture(scope="module")
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A daemon on its embedded server and its gateway, on a thread of their own (schemathesis
    calls synchronously), for the whole module."""
    with gateway_thread(tmp_path_factory.mktemp("openapi"), token=TOKEN) as running:
        yield running.gateway
    assert running.error is None, f"the daemon failed: {running.error!r}"


def _schema() -> Any:
    schema = schemathesis.openapi.from_dict(openapi_document())
    return schema.exclude(path_regex=NOT_FUZZED)


SCHEMA: Final = _schema()

CHECKS: Final = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)
def test_the_gateway_keeps_its_contract(case: Any, running_gateway: Gateway) -> None:
    """Valid and invalid requests alike: never a 5xx; every answer documented and conforming."""
    case.call_and_validate(
        base_url=running_gateway.url,
        headers={"authorization": f"Bearer {TOKEN}"},
        checks=CHECKS,
        timeout=10,
    )


def _call(gateway: Gateway, method: str, path: str, values: dict[str, str], **parts: Any) -> Any:
    """Call ``method path`` (``values``: the link's parameters) as a case of the document, hold
    its answer to the document (`CHECKS`), and return the answer."""
    case = SCHEMA[path][method].Case(path_parameters=values, **parts)
    response = case.call(
        base_url=gateway.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    case.validate_response(response, checks=CHECKS)
    return response


def test_the_documents_links_lead_to_conforming_answers(running_gateway: Gateway) -> None:
    """Every link of the document, followed with the real ids its answer carries (generated
    requests only ever name ids that do not exist): each answer is a documented 2xx."""
    gateway, document = running_gateway, openapi_document()
    operations = {
        operation["operationId"]: (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    starts: dict[str, dict[str, Any]] = {
        "sessionChat": {
            "path_parameters": {"session": "linked-1"},
            "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello"}]},
        },
        "sessionRespond": {
            "path_parameters": {"session": "linked-2"},
            "body": {"model": "gpt-4o", "input": "Hello", "durable": True},
        },
        "backgroundCreate": {"body": {"model": "gpt-4o", "input": "Hello"}},
        "filesUpload": {
            "body": {"file": b'{"a": 1}\n', "purpose": "user_data"},
            "media_type": "multipart/form-data",
        },
        "agentOpen": {"path_parameters": {"agent": "linked-3"}, "body": {"model": "gpt-4o"}},
    }
    followed: list[str] = []
    for start, parts in starts.items():
        method, path = operations[start]
        values = parts.pop("path_parameters", {})
        started = _call(gateway, method, path, values, **parts)
        assert started.status_code == 200, (start, started.text)
        links = document["paths"][path][method.lower()]["responses"]["200"]["links"]
        for name, link in links.items():
            target_method, target_path = operations[link["operationId"]]
            target_values = {
                key: started.json()[source.removeprefix("$response.body#/")]
                if source.startswith("$response.body#/")
                else values[source.removeprefix("$request.path.")]
                for key, source in link["parameters"].items()
            }
            body = {"body": link["requestBody"]} if "requestBody" in link else {}
            answer = _call(gateway, target_method, target_path, target_values, **body)
            assert answer.status_code == 200, (start, name, answer.text)
            followed.append(name)
    assert len(followed) == sum(
        len(response.get("links", {}))
        for item in document["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
        for response in operation["responses"].values()
    )
