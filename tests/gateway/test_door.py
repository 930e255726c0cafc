"""The gateway is not an open door: token, Origin, media types and every bad input, over real
loopback HTTP. After each bad request the daemon is healthy and no actor was restarted."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import trio
from httpx_sse import aconnect_sse

from streamvisor.daemon import Daemon, open_daemon
from streamvisor.gateway import Gateway, TokenRequired, serve_gateway
from streamvisor.gateway._ws import MAX_IN_FLIGHT, MAX_MESSAGE
from streamvisor.mockapi import MockAPIConfig, serve
from streamvisor.testing import daemon_config

from . import _ws_client as ws

pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object"
    r" (Response\.aiter_(lines|text|bytes|raw)|\w*Stream\.__aiter__"
    r"|AsyncHTTP11Connection\._receive_response_body)"
    ":pytest.PytestUnraisableExceptionWarning"
)

EVIL = "http://evil.example"
HELLO = [{"role": "user", "content": "Hello there"}]
JSON = {"content-type": "application/json"}


async def _children(daemon: Daemon) -> list[tuple[str | None, object]]:
    return [(child.id, child.ref) for child in await daemon.root.which_children()]


@pytest.fixture
async def unchanged(daemon: Daemon, client: httpx.AsyncClient) -> AsyncIterator[None]:
    """After the test: /health answers 200 and every child of the root is the same actor."""
    before = await _children(daemon)
    yield
    await trio.sleep(0.05)  # a crash, had there been one, would be seen by now
    health = await client.get("/health")
    assert health.status_code == 200
    assert all(child["alive"] for child in health.json()["children"])
    assert await _children(daemon) == before


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error: dict[str, Any] = response.json()["error"]
    return error


class TestToken:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/health"),
            ("GET", "/background"),
            ("POST", "/background"),
            ("GET", "/background/resp_1"),
            ("GET", "/files"),
            ("GET", "/events"),
            ("POST", "/sessions/s1/chat"),
            ("DELETE", "/agents/a1"),
            ("GET", "/nowhere"),
        ],
    )
    async def test_every_api_route_wants_the_token(
        self, anonymous: httpx.AsyncClient, method: str, path: str
    ) -> None:
        """No token: 401 NotAuthenticated with a Bearer challenge, before any routing."""
        response = await anonymous.request(method, path, json={} if method == "POST" else None)
        error = _error(response, 401)
        assert (error["type"], error["code"]) == ("NotAuthenticated", "not_authenticated")
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_a_wrong_token_is_401_and_the_answer_never_shows_the_right_one(
        self, gateway: Gateway, anonymous: httpx.AsyncClient
    ) -> None:
        """A wrong bearer token, a near miss, a token in the query: all 401, nothing echoed."""
        near = gateway.token[:-1] + ("A" if gateway.token[-1] != "A" else "B")
        answers = [
            await anonymous.get("/health", headers={"authorization": "Bearer wrong"}),
            await anonymous.get("/health", headers={"authorization": f"Bearer {near}"}),
            await anonymous.get("/health", headers={"authorization": f"Basic {gateway.token}"}),
            await anonymous.get("/health", params={"token": gateway.token}),
        ]
        for response in answers:
            assert _error(response, 401)["type"] == "NotAuthenticated"
            assert gateway.token not in response.text
            assert gateway.token not in json.dumps(dict(response.headers))

    async def test_the_bearer_token_lets_a_client_in(self, client: httpx.AsyncClient) -> None:
        """`Authorization: Bearer <token>` (the `client` fixture) is served."""
        assert (await client.get("/health")).status_code == 200

    async def test_the_token_is_never_in_an_error_body(
        self, gateway: Gateway, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """An id that holds the token is redacted from the error that names it, and an id the
        gateway refuses echoes too little of it to matter."""
        token = gateway.token
        for response in (
            await client.get(f"/background/resp_{token}"),
            await client.post(f"/sessions/s{token}/stop"),
        ):
            assert response.status_code == 404
            assert token not in response.text
        refused = await client.get(f"/background/.{token}")
        assert refused.status_code == 400
        assert not any(token[i : i + 17] in refused.text for i in range(len(token) - 16))

    async def test_the_page_without_the_token_says_where_to_find_it(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        """GET / without a token: a small 401 page pointing at the URL printed at start."""
        for response in (await anonymous.get("/"), await anonymous.get("/?token=nope")):
            assert response.status_code == 401
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "printed" in response.text
            assert "var/gateway-token" in response.text
            assert "set-cookie" not in response.headers
            assert "/events" not in response.text

    async def test_the_page_url_sets_a_strict_http_only_cookie_that_opens_the_api(
        self, gateway: Gateway
    ) -> None:
        """GET /?token= serves the page with the cookie; the cookie alone then opens /health,
        /events and /ws, as the page's fetches and socket carry it."""
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as browser:
            page = await browser.get(gateway.page_url.removeprefix(gateway.url))
            assert page.status_code == 200
            assert page.text.startswith("<!doctype html>")
            cookie = page.headers["set-cookie"]
            assert f"={gateway.token};" in cookie
            for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
                assert attribute in cookie
            assert page.headers["referrer-policy"] == "no-referrer"
            assert (await browser.get("/")).status_code == 200
            assert (await browser.get("/health")).status_code == 200
            async with aconnect_sse(browser, "GET", "/events") as source:
                assert source.response.status_code == 200
            name, _, value = cookie.partition(";")[0].partition("=")
        header = (b"cookie", f"{name}={value}".encode())
        with trio.fail_after(10):
            async with ws.connect(gateway.host, gateway.port, "/ws", headers=[header]) as sock:
                assert (await sock.receive_json())["kind"] == "subscribed"

    async def test_a_repeated_header_is_read_the_same_way_by_every_check(
        self, gateway: Gateway
    ) -> None:
        """The first of a repeated header wins (HTTP/1.1 itself refuses a second Host): a second
        Authorization cannot replace the first."""
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as raw:
            right, wrong = f"Bearer {gateway.token}", "Bearer wrong-token-0123456789"
            first_right = await raw.get(
                "/health", headers=[("authorization", right), ("authorization", wrong)]
            )
            first_wrong = await raw.get(
                "/health", headers=[("authorization", wrong), ("authorization", right)]
            )
        assert (first_right.status_code, first_wrong.status_code) == (200, 401)

    async def test_a_websocket_without_the_token_is_refused_with_a_typed_401(
        self, gateway: Gateway
    ) -> None:
        """The handshake is answered like GET /events would be: 401 NotAuthenticated."""
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(gateway.host, gateway.port, "/ws"):
                pass
        assert refused.value.status_code == 401
        assert refused.value.body["error"]["code"] == "not_authenticated"

    async def test_a_chosen_token_is_the_one_required(self, daemon: Daemon) -> None:
        """`serve_gateway(token=...)`: that token, and no other."""
        token = "a-chosen-token-of-some-length"
        async with (
            serve_gateway(daemon, token=token) as gateway,
            httpx.AsyncClient(base_url=gateway.url) as http,
        ):
            assert gateway.token == token
            ok = await http.get("/health", headers={"authorization": f"Bearer {token}"})
            assert ok.status_code == 200
            assert "token" not in repr(gateway)
            assert token not in repr(gateway.app.access)

    async def test_the_token_file_is_private_and_removed_on_exit(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """`token_file`: mode 0600 from the start, holding the token; gone after the block."""
        path = tmp_path / "var" / "gateway-token"
        async with serve_gateway(daemon, token_file=path) as gateway:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert path.read_text().strip() == gateway.token
        assert not path.exists()

    async def test_a_temporary_file_left_by_a_crashed_start_does_not_stop_the_next(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """Every start in a container may have the same pid: the temporary name is fresh."""
        path = tmp_path / "var" / "gateway-token"
        path.parent.mkdir(parents=True)
        for pid in (1, 7):
            (path.parent / f".{path.name}.{pid}.tmp").write_text("left over\n")
        async with serve_gateway(daemon, token_file=path) as gateway:
            assert path.read_text().strip() == gateway.token

    @pytest.mark.parametrize("token", ["", "short", "a b" * 8, "x;" * 8, "tok\r\nen-123456789"])
    async def test_a_token_that_cannot_travel_in_a_header_or_cookie_is_refused(
        self, daemon: Daemon, token: str
    ) -> None:
        with pytest.raises(ValueError, match="token must match"):
            async with serve_gateway(daemon, token=token):
                pass

    async def test_a_non_loopback_bind_without_a_chosen_token_refuses_to_start(
        self, daemon: Daemon
    ) -> None:
        """A generated token would be printed on one machine and needed on another."""
        with pytest.raises(TokenRequired) as refused:
            async with serve_gateway(daemon, host="0.0.0.0"):
                pass
        assert refused.value.code == "token_required"
        assert isinstance(refused.value, ValueError)

    async def test_the_token_never_reaches_a_log_line(self, daemon: Daemon) -> None:
        """Page loads, wrong and right tokens, a WebSocket: no log event carries the token."""
        with structlog.testing.capture_logs() as logs:
            async with (
                serve_gateway(daemon) as gateway,
                httpx.AsyncClient(base_url=gateway.url) as http,
            ):
                await http.get(gateway.page_url.removeprefix(gateway.url))
                await http.get("/health", headers=gateway.auth_headers)
                await http.get("/health", headers={"authorization": "Bearer nope"})
                await http.get("/", params={"token": "nope"})
                with pytest.raises(ws.Rejected):
                    async with ws.connect(gateway.host, gateway.port, "/ws?topic=a%20b"):
                        pass
                token = gateway.token
        assert logs
        assert [event for event in logs if token in repr(event)] == []


class TestOrigin:
    @pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "DELETE", "OPTIONS"])
    async def test_another_origin_is_refused_whatever_the_method(
        self, client: httpx.AsyncClient, method: str
    ) -> None:
        """A page elsewhere can neither act nor read: 403 origin_not_allowed, even for a GET."""
        response = await client.request(method, "/health", headers={"origin": EVIL})
        assert response.status_code == 403
        if method != "HEAD":
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("CrossOriginRefused", "origin_not_allowed")

    async def test_an_event_stream_is_refused_to_another_origin(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        """Even holding the token, a page of another origin reads no events; `null` neither."""
        for origin in (EVIL, "null", gateway.url.replace("http:", "ftp:")):
            response = await client.get("/events", headers={"origin": origin})
            assert _error(response, 403)["code"] == "origin_not_allowed"

    async def test_the_page_is_not_served_to_another_origin(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        """A cross-origin fetch of the page (with the token in its URL) is refused too."""
        response = await client.get("/", params={"token": gateway.token}, headers={"origin": EVIL})
        assert response.status_code == 403
        assert "set-cookie" not in response.headers

    async def test_the_same_origin_is_served(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        """The page's own origin passes (its fetches carry it)."""
        response = await client.get("/health", headers={"origin": gateway.url})
        assert response.status_code == 200

    async def test_a_websocket_from_another_origin_gets_the_typed_403(
        self, gateway: Gateway
    ) -> None:
        """Even with the token: the same body as over HTTP."""
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(
                gateway.host, gateway.port, "/ws", token=gateway.token, origin=EVIL
            ):
                pass
        assert refused.value.status_code == 403
        assert refused.value.body["error"]["code"] == "origin_not_allowed"


class TestMediaTypes:
    @pytest.mark.parametrize(
        "content_type",
        ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
    )
    async def test_a_json_route_takes_json_only(
        self, client: httpx.AsyncClient, daemon: Daemon, content_type: str, unchanged: None
    ) -> None:
        """What an HTML form can send is refused: 415, nothing created."""
        body = json.dumps({"model": "gpt-4o", "input": "x"})
        response = await client.post(
            "/background", content=body, headers={"content-type": content_type}
        )
        error = _error(response, 415)
        assert (error["type"], error["code"]) == ("UnsupportedMediaType", "unsupported_media_type")
        assert await daemon.background.active() == []

    async def test_a_body_without_a_content_type_is_415(
        self, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """A body must say what it is."""
        response = await client.post("/sessions/s1/stop", content=b"{}")
        assert _error(response, 415)["code"] == "unsupported_media_type"

    async def test_an_upload_takes_multipart_only(
        self, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """POST /files with JSON: 415."""
        response = await client.post("/files", json={"file": "abc"})
        assert _error(response, 415)["code"] == "unsupported_media_type"

    async def test_json_with_parameters_and_empty_bodies_pass(
        self, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """`application/json; charset=utf-8` is JSON; a bodiless POST needs no content type."""
        stop = await client.post(
            "/sessions/nobody/stop",
            content=b"{}",
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert _error(stop, 404)["type"] == "NotFound"
        cancel = await client.post("/background/resp_nope/cancel")
        assert cancel.status_code != 415


class TestBadInput:
    @pytest.mark.parametrize(
        ("method", "path", "field"),
        [
            ("GET", "/background/%01", "id"),
            ("GET", "/files/%01", "id"),
            ("GET", "/background/..%2Ffiles", "id"),
            ("GET", "/background/a%20b", "id"),
            ("POST", "/background/%00/cancel", "id"),
            ("GET", "/background/%0A/events", "id"),
            ("DELETE", "/files/file-1%00", "id"),
            ("POST", "/sessions/%01/chat", "session"),
            ("GET", "/sessions/s%2F1/streams", "session"),
            ("POST", "/sessions/s1/wait/stream%01", "stream"),
            ("POST", "/agents/a%0Ab/ask", "agent"),
            ("GET", "/background/" + "r" * 257, "id"),
        ],
    )
    async def test_a_bad_id_in_the_path_is_400_before_any_actor_work(
        self, client: httpx.AsyncClient, method: str, path: str, field: str, unchanged: None
    ) -> None:
        """Four times each (the issue's crash needed four): 400 InvalidId naming the field."""
        for _ in range(4):
            response = await client.request(method, path, json={} if method == "POST" else None)
            error = _error(response, 400)
            assert (error["type"], error["code"], error["field"]) == (
                "InvalidId",
                "invalid_id",
                field,
            )

    async def test_a_path_that_is_not_utf8_is_400(
        self, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """Percent-encoded bytes that are not UTF-8."""
        assert _error(await client.get("/background/%FF"), 400)["type"] == "BadRequest"

    @pytest.mark.parametrize(
        ("body", "words"),
        [
            (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
            (b"{" + b'"a":{' * 65 + b"}" * 66, "nested deeper"),
            (b'{"model": "gpt-4o", "input": "x", "temperature": NaN}', "NaN"),
            (b'{"model": "gpt-4o", "input": "x", "top_p": Infinity}', "Infinity"),
            (b'{"model": "gpt-4o", "input": -Infinity}', "-Infinity"),
            (b'{"model": "\xff"}', "not UTF-8"),
            (b"{nope", "not valid JSON"),
        ],
    )
    async def test_json_the_gateway_will_not_take_is_400(
        self, client: httpx.AsyncClient, daemon: Daemon, body: bytes, words: str, unchanged: None
    ) -> None:
        """Too deep (100 000 levels too), NaN/Infinity, not UTF-8, malformed: InvalidJSON."""
        response = await client.post("/background", content=body, headers=JSON)
        error = _error(response, 400)
        assert (error["type"], error["code"]) == ("InvalidJSON", "invalid_json")
        assert words in error["message"]
        assert await daemon.background.active() == []

    async def test_an_oversized_json_body_is_413(
        self, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """Past 4 MiB: PayloadTooLarge."""
        body = b'{"model": "' + b"x" * (5 * 1024 * 1024) + b'"}'
        response = await client.post("/background", content=body, headers=JSON)
        assert _error(response, 413)["code"] == "payload_too_large"

    @pytest.mark.parametrize("topic", ["session.\x00", "session. s1", "a b", "a..b", "x" * 300])
    async def test_a_bad_topic_is_the_same_400_over_sse_and_websocket(
        self, client: httpx.AsyncClient, gateway: Gateway, topic: str, unchanged: None
    ) -> None:
        """NUL, spaces, empty segments, oversize: InvalidPattern on both transports."""
        response = await client.get("/events", params={"topic": topic})
        over_http = _error(response, 400)
        assert over_http["type"] == "InvalidPattern"
        target = "/ws?" + httpx.QueryParams({"topic": topic}).__str__()
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(gateway.host, gateway.port, target, token=gateway.token):
                pass
        assert refused.value.status_code == 400
        assert refused.value.body == {"error": over_http}

    @pytest.mark.parametrize("cursor", ["-1", "x", "9" * 5000, "1" * 19])
    async def test_a_bad_resume_cursor_is_400(
        self, client: httpx.AsyncClient, cursor: str, unchanged: None
    ) -> None:
        """`starting_after` is a bounded integer."""
        response = await client.get("/background/resp_1/events", params={"starting_after": cursor})
        assert _error(response, 400)["field"] == "starting_after"

    async def test_a_bad_purpose_is_400(self, client: httpx.AsyncClient, unchanged: None) -> None:
        """`purpose` (listing and uploading) is a plain name."""
        listed = await client.get("/files", params={"purpose": "a\x00b"})
        assert _error(listed, 400)["field"] == "purpose"
        uploaded = await client.post(
            "/files", files={"file": ("a.txt", b"abc", "text/plain")}, data={"purpose": "x y"}
        )
        assert _error(uploaded, 400)["field"] == "purpose"


class TestWebSocketCommands:
    async def test_every_bad_command_gets_a_typed_error_and_the_socket_stays_open(
        self, gateway: Gateway, unchanged: None
    ) -> None:
        """Bad ids, wrong types, missing fields, unknown ops, non-JSON, deep JSON, huge frames:
        each answered with an error message, then a ping still pongs."""
        cases: list[tuple[Any, int, str]] = [
            ({"op": "cancel", "ref": 1, "response_id": "\u0000"}, 400, "InvalidId"),
            ({"op": "cancel", "ref": 2, "response_id": "../files"}, 400, "InvalidId"),
            ({"op": "cancel", "ref": 3, "response_id": 5}, 400, "BadRequest"),
            ({"op": "cancel", "ref": 4}, 400, "BadRequest"),
            ({"op": "wait", "ref": 5, "session": "s1", "stream_id": "a\nb"}, 400, "InvalidId"),
            ({"op": "streams", "ref": 6, "session": "s 1"}, 400, "InvalidId"),
            ({"op": "chat", "ref": 7, "session": ["s1"], "model": "m"}, 400, "BadRequest"),
            ({"op": "fly", "ref": 8}, 400, "BadRequest"),
            ({"op": {"nested": True}, "ref": 9}, 400, "BadRequest"),
            ([1, 2, 3], 400, "BadRequest"),
            ("not json {", 400, "InvalidJSON"),
            ('{"op": "ping", "x": NaN}', 400, "InvalidJSON"),
            ("[" * 100_000 + "]" * 100_000, 400, "InvalidJSON"),
            (b"\xff\xfe binary", 400, "InvalidJSON"),
            ("x" * (MAX_MESSAGE + 1), 413, "PayloadTooLarge"),
        ]
        with trio.fail_after(20):
            async with ws.connect(
                gateway.host, gateway.port, "/ws?topic=session.cmd", token=gateway.token
            ) as sock:
                await sock.receive_json()
                for command, status, kind in cases:
                    if isinstance(command, bytes):
                        await sock.send_bytes(command)
                    elif isinstance(command, str):
                        await sock.send_text(command)
                    else:
                        await sock.send_json(command)
                    answer = await sock.receive_json()
                    assert answer["kind"] == "error", (command, answer)
                    assert (answer["status"], answer["error"]["type"]) == (status, kind), command
                    if isinstance(command, dict):
                        assert answer["ref"] == command["ref"]
                await sock.send_json({"op": "ping", "ref": "last"})
                assert await sock.receive_json() == {
                    "kind": "reply",
                    "op": "ping",
                    "ref": "last",
                    "result": "pong",
                }

    async def test_a_socket_runs_a_bounded_number_of_commands_at_once(
        self, gateway: Gateway, client: httpx.AsyncClient, unchanged: None
    ) -> None:
        """Past MAX_IN_FLIGHT running commands: 429 TooManyCommands at once, then served again
        when they are done."""
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "20"}
        chat = {"op": "chat", "ref": "chat", "session": "busy", "model": "gpt-4o"}
        with trio.fail_after(20):
            async with ws.connect(
                gateway.host, gateway.port, "/ws?topic=none", token=gateway.token
            ) as sock:
                await sock.receive_json()
                await sock.send_json({**chat, "messages": HELLO, "metadata": slow})
                ticket = (await sock.receive_json())["result"]
                wait = {"op": "wait", "session": "busy", "stream_id": ticket["stream_id"]}
                for ref in range(MAX_IN_FLIGHT + 3):
                    await sock.send_json({**wait, "ref": ref, "timeout": 30})
                refused = [await sock.receive_json() for _ in range(3)]
                stopped = await client.post("/sessions/busy/stop")
                answers = [await sock.receive_json() for _ in range(MAX_IN_FLIGHT)]
        assert [(a["ref"], a["status"], a["error"]["code"]) for a in refused] == [
            (ref, 429, "too_many_commands") for ref in range(MAX_IN_FLIGHT, MAX_IN_FLIGHT + 3)
        ]
        assert stopped.status_code == 200
        assert {a["ref"] for a in answers} == set(range(MAX_IN_FLIGHT))
        assert [a for a in answers if a["kind"] != "reply"] == []


async def _serve_until(
    daemon: Daemon,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[Gateway] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with serve_gateway(daemon) as gateway:
        task_status.started(gateway)
        await stop.wait()


class TestShutdown:
    async def test_an_sse_subscriber_gets_a_shutdown_event_when_the_gateway_stops(
        self, daemon: Daemon
    ) -> None:
        """Leaving serve_gateway: `event: shutdown` ({"reason": "gateway stopping"}), then the
        stream ends."""
        stop = trio.Event()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                gateway: Gateway = await nursery.start(_serve_until, daemon, stop)
                async with (
                    httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
                    aconnect_sse(http, "GET", "/events") as source,
                ):
                    stop.set()
                    async with aclosing(source.aiter_sse()) as events:
                        seen = [(sse.event, sse.json()) async for sse in events]
        assert seen == [("shutdown", {"reason": "gateway stopping"})]

    async def test_a_background_stream_gets_a_shutdown_event_when_the_gateway_stops(
        self, daemon: Daemon
    ) -> None:
        """A resumed background stream, cut short by the gateway stopping, says so last."""
        stop = trio.Event()
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "50"}
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                gateway: Gateway = await nursery.start(_serve_until, daemon, stop)
                async with httpx.AsyncClient(
                    base_url=gateway.url, headers=gateway.auth_headers
                ) as http:
                    rid = (
                        await http.post(
                            "/background",
                            json={"model": "gpt-4o", "input": "x", "metadata": slow},
                        )
                    ).json()["id"]
                    async with aconnect_sse(http, "GET", f"/background/{rid}/events") as source:
                        names: list[str] = []
                        async with aclosing(source.aiter_sse()) as events:
                            async for sse in events:
                                names.append(sse.event)
                                if len(names) == 2:
                                    stop.set()
                    await daemon.background.cancel(rid)
        assert names[-1] == "shutdown"

    async def test_a_websocket_subscriber_gets_a_shutdown_message_when_the_gateway_stops(
        self, daemon: Daemon
    ) -> None:
        """`{"kind": "shutdown", "reason": "gateway stopping"}`, then a close with 1001."""
        stop = trio.Event()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                gateway: Gateway = await nursery.start(_serve_until, daemon, stop)
                async with ws.connect(
                    gateway.host, gateway.port, "/ws", token=gateway.token
                ) as sock:
                    await sock.receive_json()
                    stop.set()
                    last = await sock.receive_json()
                    with pytest.raises(ws.Closed) as closed:
                        await sock.receive_json()
        assert last == {"kind": "shutdown", "reason": "gateway stopping"}
        assert closed.value.code == 1001

    async def test_subscribers_get_a_shutdown_event_when_the_daemon_stops(
        self, tmp_path: Path
    ) -> None:
        """The daemon stopping under a running gateway: SSE and WebSocket both say shutdown."""
        with trio.fail_after(15):
            async with (
                open_daemon(daemon_config(tmp_path)) as daemon,
                serve_gateway(daemon) as gateway,
                httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
                aconnect_sse(http, "GET", "/events") as source,
                ws.connect(gateway.host, gateway.port, "/ws", token=gateway.token) as sock,
            ):
                await sock.receive_json()
                daemon.bus.close()  # as open_daemon does on its way out
                message = await sock.receive_json()
                async with aclosing(source.aiter_sse()) as events:
                    seen = [(sse.event, sse.json()) async for sse in events]
        assert message == {"kind": "shutdown", "reason": "daemon stopping"}
        assert seen == [("shutdown", {"reason": "daemon stopping"})]


class TestUpstreamErrors:
    async def test_an_upstream_error_quoting_the_api_key_loses_every_part_of_it(
        self, tmp_path: Path
    ) -> None:
        """The API's 401 quotes the key masked (``sk-te****6789``): the gateway's 502 does not."""
        key = "sk-wrong-key-for-this-server-0123456789"
        with trio.fail_after(20):
            async with serve(MockAPIConfig(token_delay=0.0, api_key="sk-the-right-one")) as api:
                config = daemon_config(tmp_path, openai_api_key=key, openai_base_url=api.url)
                async with (
                    open_daemon(config) as daemon,
                    serve_gateway(daemon) as gateway,
                    httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
                ):
                    response = await http.post(
                        "/background", json={"model": "gpt-4o", "input": "x"}
                    )
        error = _error(response, 502)
        assert error["upstream_status"] == 401
        assert "Incorrect API key provided" in error["message"]
        assert "6789" not in response.text
        assert "sk-" not in response.text
        assert "****" not in response.text
