"""The gateway over real loopback HTTP: a daemon on the embedded server, hypercorn in front."""

from __future__ import annotations

import json
import types
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

import streamvisor.gateway
from streamvisor import _samples as samples
from streamvisor.daemon import Daemon, open_daemon
from streamvisor.gateway import Gateway, serve_gateway
from streamvisor.mockapi import MockAPIConfig, serve
from streamvisor.openai import StreamEvent
from streamvisor.testing import daemon_config

from .._json_values import strict_json
from . import _ws_client as ws

#: httpx chains its body iterators (aiter_lines -> aiter_text -> aiter_bytes -> aiter_raw -> the
#: transport's streams) without closing the inner ones when the outer one is closed early, and
#: under trio their finalizer warns.
#: That is httpx's doing, not the gateway's (an event stream is infinite: tests always leave it
#: early): silence only those generators.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object"
    r" (Response\.aiter_(lines|text|bytes|raw)|\w*Stream\.__aiter__"
    r"|AsyncHTTP11Connection\._receive_response_body)"
    ":pytest.PytestUnraisableExceptionWarning"
)

HELLO = [{"role": "user", "content": "Hello there"}]


async def _until_terminal(source: EventSource) -> list[ServerSentEvent]:
    """The events of ``source`` up to the first terminal stream event."""
    seen: list[ServerSentEvent] = []
    async with aclosing(source.aiter_sse()) as events:
        async for sse in events:
            seen.append(sse)
            if sse.event in ("background.status", "missed"):
                continue
            if sse.json().get("terminal"):
                return seen
    raise AssertionError(f"the stream ended without a terminal event: {seen}")


async def _until(predicate: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


class TestHealth:
    async def test_health_reports_the_daemon_status(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """GET /health: the tree's children, counts, where the API is, whether it is embedded."""
        response = await client.get("/health")
        assert response.status_code == 200
        health = response.json()
        assert [c["id"] for c in health["children"]] == [
            "files",
            "background",
            "sessions",
            "agents",
        ]
        assert all(c["alive"] for c in health["children"])
        assert health["embedded"] is True
        assert health["base_url"] == daemon.mockapi.url if daemon.mockapi else False
        assert (health["sessions"], health["agents"], health["active_background"]) == (0, 0, 0)


class TestSessions:
    async def test_a_chat_posted_over_http_streams_its_tokens_in_order_over_sse(
        self, client: httpx.AsyncClient
    ) -> None:
        """POST /sessions/s1/chat returns the ticket; /events delivers every event in order."""
        with trio.fail_after(10):
            async with aconnect_sse(
                client, "GET", "/events", params={"topic": "session.s1"}
            ) as source:
                response = await client.post(
                    "/sessions/s1/chat", json={"model": "gpt-4o", "messages": HELLO}
                )
                assert response.status_code == 200
                ticket = response.json()
                seen = await _until_terminal(source)
        assert ticket["session_id"] == "s1"
        assert ticket["api"] == "chat"
        assert ticket["stream_id"].startswith("stream-")
        data = [sse.json() for sse in seen]
        assert [sse.event for sse in seen] == [d["type"] for d in data]
        assert seen[0].event == "response.created"
        assert seen[-1].event == "response.completed"
        assert [d["sequence_number"] for d in data] == list(range(len(data)))
        assert {d["session_id"] for d in data} == {"s1"}
        assert {d["response_id"] for d in data} == {ticket["response_id"]}
        tokens = [d["data"]["delta"] for d in data if d["type"] == "response.output_text.delta"]
        assert "".join(tokens) == "You said: Hello there"
        assert all(isinstance(d["received_at"], float) for d in data)

    async def test_a_response_stream_then_wait_returns_its_outcome(
        self, client: httpx.AsyncClient
    ) -> None:
        """POST /sessions/s2/responses gives a ticket; POST .../wait/{stream} the outcome."""
        with trio.fail_after(10):
            response = await client.post(
                "/sessions/s2/responses",
                json={"model": "gpt-4o", "input": "Hi", "durable": False},
            )
            assert response.status_code == 200
            ticket = response.json()
            assert (ticket["api"], ticket["durable"]) == ("responses", False)
            waited = await client.post(
                f"/sessions/s2/wait/{ticket['stream_id']}", json={"timeout": 5}
            )
        assert waited.status_code == 200
        outcome = waited.json()
        assert outcome["status"] == "completed"
        assert outcome["ok"] is True
        assert outcome["response"]["id"] == ticket["response_id"]
        assert outcome["error"] is None

    async def test_stop_cancels_a_running_stream_and_streams_lists_it_until_then(
        self, client: httpx.AsyncClient
    ) -> None:
        """A slow stream shows in /streams; /stop ends it as cancelled."""
        slow = {"mock_scenario": "long:200", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            ticket = (
                await client.post(
                    "/sessions/s3/chat",
                    json={"model": "gpt-4o", "messages": HELLO, "metadata": slow},
                )
            ).json()
            streams = (await client.get("/sessions/s3/streams")).json()["streams"]
            assert [s["stream_id"] for s in streams] == [ticket["stream_id"]]
            stopped = await client.post(
                "/sessions/s3/stop", json={"stream_id": ticket["stream_id"]}
            )
            assert stopped.status_code == 200
            assert [o["status"] for o in stopped.json()["outcomes"]] == ["cancelled"]
            assert (await client.get("/sessions/s3/streams")).json()["streams"] == []

    async def test_a_wait_whose_timeout_runs_out_is_a_409_and_the_stream_runs_on(
        self, client: httpx.AsyncClient
    ) -> None:
        """The caller's own ``timeout`` running out is TimeoutElapsed (409), not a gateway
        failure (504: found by the contract test); the stream is unaffected."""
        slow = {"mock_scenario": "long:200", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            ticket = (
                await client.post(
                    "/sessions/s5/chat",
                    json={"model": "gpt-4o", "messages": HELLO, "metadata": slow},
                )
            ).json()
            waited = await client.post(
                f"/sessions/s5/wait/{ticket['stream_id']}", json={"timeout": 0}
            )
            streams = (await client.get("/sessions/s5/streams")).json()["streams"]
            await client.post("/sessions/s5/stop", json={})
        assert waited.status_code == 409
        error = waited.json()["error"]
        assert (error["type"], error["code"]) == ("TimeoutElapsed", "timeout_elapsed")
        assert [s["stream_id"] for s in streams] == [ticket["stream_id"]]

    async def test_a_session_that_is_not_running_is_404_for_stop_streams_and_wait(
        self, client: httpx.AsyncClient
    ) -> None:
        """Only chat/responses start a session; the others name an unknown one."""
        for response in (
            await client.post("/sessions/nobody/stop", json={}),
            await client.get("/sessions/nobody/streams"),
            await client.post("/sessions/nobody/wait/stream-1"),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "NotFound"

    async def test_an_unknown_stream_of_a_running_session_is_404(
        self, client: httpx.AsyncClient
    ) -> None:
        """UnknownStream (a LookupError) maps to 404 with its own name."""
        await client.post("/sessions/s4/chat", json={"model": "gpt-4o", "messages": HELLO})
        response = await client.post("/sessions/s4/wait/stream-99")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "UnknownStream"


class TestBackground:
    async def test_create_then_status_events_over_sse_then_get_shows_completed(
        self, client: httpx.AsyncClient
    ) -> None:
        """POST /background → background.status events on /events → GET says completed."""
        with trio.fail_after(10):
            async with aconnect_sse(
                client, "GET", "/events", params={"topic": "background.*"}
            ) as source:
                created = await client.post(
                    "/background", json={"model": "gpt-4o", "input": "What is 2 + 2?"}
                )
                assert created.status_code == 200
                record = created.json()
                rid = record["id"]
                statuses: list[dict[str, Any]] = []
                async with aclosing(source.aiter_sse()) as events:
                    async for sse in events:
                        assert sse.event == "background.status"
                        status = sse.json()
                        if status["response_id"] == rid:
                            statuses.append(status)
                            if status["terminal"]:
                                break
            polled = await client.get(f"/background/{rid}")
        assert record["object"] == "background"
        assert (record["model"], record["tracked"], record["mode"]) == ("gpt-4o", True, "poll")
        assert record["response"] is None
        assert statuses[0]["previous"] is None
        assert statuses[-1]["status"] == "completed"
        assert [s["previous"] for s in statuses[1:]] == [s["status"] for s in statuses[:-1]]
        assert polled.status_code == 200
        background = polled.json()
        assert (background["object"], background["id"], background["tracked"]) == (
            "background",
            rid,
            True,
        )
        assert background["status"] == background["response"]["status"] == "completed"
        assert background["terminal_at"] is not None
        assert (await client.get("/background")).json() == {"object": "list", "data": []}

    async def test_an_active_response_is_listed_then_cancelled(
        self, client: httpx.AsyncClient
    ) -> None:
        """GET /background lists what is active; POST .../cancel answers cancelled."""
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "50"}
        with trio.fail_after(10):
            rid = (
                await client.post(
                    "/background", json={"model": "gpt-4o", "input": "x", "metadata": slow}
                )
            ).json()["id"]
            listed = (await client.get("/background")).json()
            assert listed["object"] == "list"
            assert [b["id"] for b in listed["data"]] == [rid]
            assert {b["object"] for b in listed["data"]} == {"background"}
            cancelled = await client.post(f"/background/{rid}/cancel")
        assert cancelled.status_code == 200
        background = cancelled.json()
        assert (background["object"], background["id"]) == ("background", rid)
        assert background["status"] == background["response"]["status"] == "cancelled"

    async def test_a_background_response_stream_resumes_after_a_cursor(
        self, client: httpx.AsyncClient
    ) -> None:
        """GET /background/{id}/events?starting_after=N: the events after N, to the terminal."""
        slow = {"mock_scenario": "long:30", "mock_token_delay_ms": "5"}
        with trio.fail_after(10):
            rid = (
                await client.post(
                    "/background", json={"model": "gpt-4o", "input": "x", "metadata": slow}
                )
            ).json()["id"]
            async with aconnect_sse(
                client, "GET", f"/background/{rid}/events", params={"starting_after": 3}
            ) as source:
                events = await _until_terminal(source)
        numbers = [e.json()["sequence_number"] for e in events]
        assert numbers == list(range(4, 4 + len(numbers)))
        assert events[-1].event == "response.completed"
        assert {e.json()["response_id"] for e in events} == {rid}

    async def test_polling_an_untracked_response_answers_it_without_registry_fields(
        self, client: httpx.AsyncClient
    ) -> None:
        """A session's (stored, not durable) response polled by id: ``tracked`` false."""
        with trio.fail_after(10):
            ticket = (
                await client.post(
                    "/sessions/u1/responses",
                    json={"model": "gpt-4o", "input": "x", "durable": False, "store": True},
                )
            ).json()
            await client.post(f"/sessions/u1/wait/{ticket['stream_id']}", json={})
            polled = await client.get(f"/background/{ticket['response_id']}")
        assert polled.status_code == 200
        background = polled.json()
        assert (background["object"], background["tracked"]) == ("background", False)
        assert background["id"] == background["response"]["id"] == ticket["response_id"]
        assert background["status"] == "completed"
        assert "mode" not in background

    async def test_resuming_an_unknown_response_is_404_before_any_stream(
        self, client: httpx.AsyncClient
    ) -> None:
        """ResponseGone on entry: a plain JSON 404, not an event stream."""
        response = await client.get("/background/resp_nope/events")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "ResponseGone"

    async def test_an_unknown_background_id_is_404(self, client: httpx.AsyncClient) -> None:
        """Polling an id the API does not know: 404 ResponseGone."""
        response = await client.get("/background/resp_doesnotexist")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "ResponseGone"


class TestFiles:
    async def test_upload_list_then_delete(self, client: httpx.AsyncClient) -> None:
        """A multipart upload goes through daemon.files; it is listed, then deleted."""
        png = samples.png(3, 3)
        uploaded = await client.post(
            "/files",
            files={"file": ("diagram.png", png, "application/octet-stream")},
            data={"purpose": "vision"},
        )
        assert uploaded.status_code == 200
        file = uploaded.json()
        assert file["id"].startswith("file-")
        assert (file["filename"], file["purpose"], file["bytes"]) == (
            "diagram.png",
            "vision",
            len(png),
        )
        listed = (await client.get("/files")).json()["data"]
        assert [f["id"] for f in listed] == [file["id"]]
        deleted = await client.delete(f"/files/{file['id']}")
        assert deleted.status_code == 200
        assert deleted.json()["deleted"] is True
        assert (await client.get("/files")).json()["data"] == []

    async def test_a_file_that_breaks_a_rule_is_400_with_its_typed_name(
        self, client: httpx.AsyncClient
    ) -> None:
        """An empty file: the file actor's EmptyFile, before any upload."""
        response = await client.post("/files", files={"file": ("empty.txt", b"", "text/plain")})
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "EmptyFile"

    async def test_an_upload_without_a_file_field_is_400(self, client: httpx.AsyncClient) -> None:
        """The form must carry `file`."""
        response = await client.post("/files", files={"other": ("a.txt", b"abc", "text/plain")})
        assert response.status_code == 400
        assert response.json()["error"] == {
            "type": "BadRequest",
            "message": "the form has no 'file' field",
            "code": "bad_request",
            "field": "file",
        }

    async def test_an_upload_over_the_limit_is_413(self, daemon: Daemon) -> None:
        """`max_upload_bytes` bounds the multipart body: PayloadTooLarge, nothing uploaded."""
        async with (
            serve_gateway(daemon, max_upload_bytes=1024) as gateway,
            httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
        ):
            response = await http.post(
                "/files", files={"file": ("big.txt", b"x" * 4096, "text/plain")}
            )
            assert response.status_code == 413
            assert response.json()["error"]["type"] == "PayloadTooLarge"
            assert (await http.get("/files")).json()["data"] == []

    async def test_deleting_an_unknown_file_is_404(self, client: httpx.AsyncClient) -> None:
        """The API's 404 keeps its status and its typed name."""
        response = await client.delete("/files/file-doesnotexist")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "NotFoundError"


class TestErrors:
    async def test_a_body_that_is_not_json_is_400_bad_request(
        self, client: httpx.AsyncClient
    ) -> None:
        """The gateway's own BadRequest."""
        response = await client.post(
            "/sessions/s1/chat", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "InvalidJSON"

    async def test_a_request_the_session_rejects_is_400_with_the_typed_name(
        self, client: httpx.AsyncClient
    ) -> None:
        """InvalidSessionRequest (a ValueError) from the session's validation: 400."""
        response = await client.post(
            "/sessions/s1/chat", json={"model": "gpt-4o", "messages": "not a list"}
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "InvalidSessionRequest"
        assert "Traceback" not in error["message"]

    async def test_a_missing_field_is_400_naming_it(self, client: httpx.AsyncClient) -> None:
        """`model` is required."""
        response = await client.post("/background", json={"input": "hi"})
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "model"

    async def test_an_unknown_route_is_404_and_a_wrong_method_405(
        self, client: httpx.AsyncClient
    ) -> None:
        """Routing errors are typed too; 405 lists what is allowed."""
        missing = await client.get("/nowhere")
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "NotFound"
        wrong = await client.put("/background")
        assert wrong.status_code == 405
        assert wrong.json()["error"]["type"] == "MethodNotAllowed"
        assert wrong.headers["allow"] == "GET, POST"

    async def test_an_invalid_topic_pattern_is_400(self, client: httpx.AsyncClient) -> None:
        """The bus's InvalidPattern, before any event stream starts."""
        response = await client.get("/events", params={"topic": "a..b"})
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "InvalidPattern"


class TestCrossOrigin:
    async def test_a_post_from_another_origin_is_refused(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """A page elsewhere cannot drive the daemon through a browser: 403, nothing created."""
        response = await client.post(
            "/background",
            json={"model": "gpt-4o", "input": "x"},
            headers={"origin": "http://evil.example"},
        )
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "CrossOriginRefused"
        assert await daemon.background.active() == []

    async def test_the_page_own_origin_and_clients_without_origin_are_served(
        self, client: httpx.AsyncClient, gateway: Gateway
    ) -> None:
        """Same origin (the page) and no Origin (curl, SDKs) both pass."""
        body = {"model": "gpt-4o", "messages": HELLO}
        same = await client.post("/sessions/o1/chat", json=body, headers={"origin": gateway.url})
        bare = await client.post("/sessions/o1/chat", json=body)
        assert (same.status_code, bare.status_code) == (200, 200)

    async def test_a_websocket_from_another_origin_is_refused(self, gateway: Gateway) -> None:
        """Browsers apply no same-origin rule to WebSockets; the handshake is answered 403."""
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(
                gateway.host,
                gateway.port,
                token=gateway.token,
                target="/ws",
                origin="http://evil.example",
            ):
                pass
        assert refused.value.status_code == 403

    async def test_a_rebound_host_name_is_refused_even_for_a_get(
        self, client: httpx.AsyncClient
    ) -> None:
        """On loopback, only loopback names are answered: a rebinding page reads nothing."""
        response = await client.get("/events", headers={"host": "evil.example"})
        assert response.status_code == 403
        assert response.json()["error"]["type"] == "HostNotAllowed"
        assert (await client.get("/health", headers={"host": "localhost:1"})).status_code == 200

    async def test_an_explicit_host_list_is_what_is_answered(self, daemon: Daemon) -> None:
        """`allowed_hosts` replaces the loopback default: its names only."""
        async with (
            serve_gateway(daemon, allowed_hosts=["gw.internal"]) as gateway,
            httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
        ):
            named = await http.get("/health", headers={"host": "gw.internal:80"})
            other = await http.get("/health")
        assert (named.status_code, other.status_code) == (200, 403)


class TestEvents:
    async def test_a_client_leaving_releases_its_bus_subscription(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """Disconnecting from /events ends the request and unsubscribes it."""
        topic = "session.leaving"
        with trio.fail_after(10):
            async with aconnect_sse(client, "GET", "/events", params={"topic": topic}) as source:
                assert source.response.headers["content-type"].startswith("text/event-stream")
                assert daemon.bus.subscriber_count(topic) == 1
            await _until(lambda: daemon.bus.subscriber_count(topic) == 0)

    async def test_leaving_in_the_middle_of_a_busy_stream_is_clean(
        self, client: httpx.AsyncClient, daemon: Daemon, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that leaves while tokens flow: unsubscribed, and hypercorn logs no error."""
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "2"}
        with trio.fail_after(10):
            async with aconnect_sse(client, "GET", "/events", params={"topic": "session.b1"}) as s:
                await client.post(
                    "/sessions/b1/chat",
                    json={"model": "gpt-4o", "messages": HELLO, "metadata": slow},
                )
                async with aclosing(s.aiter_sse()) as events:
                    async for sse in events:
                        if sse.event == "response.output_text.delta":
                            break
            await _until(lambda: daemon.bus.subscriber_count("session.b1") == 0)
            await client.post("/sessions/b1/stop", json={})
        errors = [r for r in caplog.records if r.levelname == "ERROR"]
        assert errors == []

    async def test_a_quiet_stream_gets_keepalive_comments(self, gateway: Gateway) -> None:
        """Every `keepalive` seconds of silence, a comment line keeps proxies from closing it."""
        with trio.fail_after(10):
            async with (
                httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
                http.stream("GET", "/events", params={"topic": "session.quiet"}) as response,
            ):
                lines: list[str] = []
                async with aclosing(response.aiter_lines()) as stream:
                    async for line in stream:
                        lines.append(line)
                        if line == ": keepalive":
                            break
        assert lines[0] == ': subscribed "session.quiet"'

    async def test_the_stream_ends_cleanly_when_the_gateway_stops(self, daemon: Daemon) -> None:
        """Closing the app (as leaving serve_gateway does) ends every open event stream cleanly."""
        with trio.fail_after(10):
            async with (
                serve_gateway(daemon) as gateway,
                httpx.AsyncClient(headers=gateway.auth_headers) as http,
                trio.open_nursery() as nursery,
                http.stream("GET", f"{gateway.url}/events") as response,
            ):
                assert response.status_code == 200
                done = trio.Event()

                async def drain() -> None:
                    async for _ in response.aiter_lines():
                        pass
                    done.set()

                nursery.start_soon(drain)
                gateway.app.close()
                await done.wait()
            assert daemon.bus.subscriber_count("session.any") == 0

    async def test_the_stream_ends_with_a_shutdown_event_when_the_bus_closes(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """The daemon stopping closes its bus: `event: shutdown`, then the body completes."""
        with trio.fail_after(10):
            async with aconnect_sse(client, "GET", "/events") as source:
                daemon.bus.close()
                events = [sse async for sse in source.aiter_sse()]
        assert [(e.event, e.json()) for e in events] == [
            ("shutdown", {"reason": "daemon stopping"})
        ]

    async def test_subscribing_after_the_bus_closed_is_503(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """A daemon on its way down: BusClosed, service unavailable."""
        daemon.bus.close()
        response = await client.get("/events")
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "BusClosed"


class TestWebSocket:
    async def test_a_chat_command_answers_the_ticket_and_events_follow(
        self, gateway: Gateway
    ) -> None:
        """{"op": "chat"} over /ws: a reply with the ticket, then the stream's events."""
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=session.w1"
            ) as sock:
                assert await sock.receive_json() == {"kind": "subscribed", "topic": "session.w1"}
                await sock.send_json(
                    {
                        "op": "chat",
                        "ref": 7,
                        "session": "w1",
                        "model": "gpt-4o",
                        "messages": HELLO,
                    }
                )
                reply: dict[str, Any] | None = None
                events: list[dict[str, Any]] = []
                while reply is None or not (events and events[-1]["data"]["terminal"]):
                    message = await sock.receive_json()
                    if message["kind"] == "reply":
                        reply = message
                    else:
                        assert message["kind"] == "event"
                        events.append(message)
                await sock.close()
        assert (reply["op"], reply["ref"]) == ("chat", 7)
        assert reply["result"]["session_id"] == "w1"
        assert [e["data"]["sequence_number"] for e in events] == list(range(len(events)))
        text = "".join(
            e["data"]["data"]["delta"] for e in events if e["event"] == "response.output_text.delta"
        )
        assert text == "You said: Hello there"

    async def test_a_bad_command_gets_a_typed_error_and_the_socket_stays_open(
        self, gateway: Gateway
    ) -> None:
        """Unknown op, then a rejected request, then ping: each answered in turn."""
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=session.w2"
            ) as sock:
                await sock.receive_json()
                await sock.send_json({"op": "fly", "ref": "a"})
                unknown = await sock.receive_json()
                await sock.send_json(
                    {"op": "chat", "ref": "b", "session": "w2", "model": "gpt-4o", "messages": 3}
                )
                rejected = await sock.receive_json()
                await sock.send_json({"op": "ping", "ref": "c"})
                pong = await sock.receive_json()
        assert (unknown["kind"], unknown["ref"], unknown["status"]) == ("error", "a", 400)
        assert unknown["error"]["type"] == "BadRequest"
        assert (rejected["kind"], rejected["ref"]) == ("error", "b")
        assert rejected["error"]["type"] == "InvalidSessionRequest"
        assert pong == {"kind": "reply", "op": "ping", "ref": "c", "result": "pong"}

    async def test_stop_over_the_socket_cancels_a_stream(self, gateway: Gateway) -> None:
        """{"op": "stop"} answers the outcomes; the cancelled event arrives as an event."""
        slow = {"mock_scenario": "long:200", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=session.w4"
            ) as sock:
                await sock.receive_json()
                chat = {"op": "chat", "session": "w4", "model": "gpt-4o", "messages": HELLO}
                await sock.send_json({**chat, "ref": 1, "metadata": slow})
                replies: dict[int, Any] = {}
                types: list[str] = []
                while 2 not in replies or "response.cancelled" not in types:
                    message = await sock.receive_json()
                    if message["kind"] == "reply":
                        replies[message["ref"]] = message["result"]
                        if message["ref"] == 1:
                            await sock.send_json({"op": "stop", "ref": 2, "session": "w4"})
                    else:
                        types.append(message["event"])
        assert [o["status"] for o in replies[2]["outcomes"]] == ["cancelled"]
        assert types[0] == "response.created"

    async def test_background_and_cancel_over_the_socket_answer_background_objects(
        self, gateway: Gateway
    ) -> None:
        """{"op": "background"} and {"op": "cancel"} reply with the routes' background object."""
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "50"}
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=none"
            ) as sock:
                await sock.receive_json()
                create = {"op": "background", "ref": 1, "model": "gpt-4o", "input": "x"}
                await sock.send_json({**create, "metadata": slow})
                created = (await sock.receive_json())["result"]
                await sock.send_json({"op": "cancel", "ref": 2, "response_id": created["id"]})
                cancelled = (await sock.receive_json())["result"]
        assert (created["object"], created["tracked"], created["response"]) == (
            "background",
            True,
            None,
        )
        assert (cancelled["object"], cancelled["id"]) == ("background", created["id"])
        assert cancelled["status"] == cancelled["response"]["status"] == "cancelled"

    async def test_the_socket_is_told_and_closed_when_the_bus_closes(
        self, gateway: Gateway, daemon: Daemon
    ) -> None:
        """`{"kind": "shutdown"}`, then a close with 1001 (going away)."""
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws"
            ) as sock:
                await sock.receive_json()
                daemon.bus.close()
                assert await sock.receive_json() == {
                    "kind": "shutdown",
                    "reason": "daemon stopping",
                }
                with pytest.raises(ws.Closed) as closed:
                    await sock.receive_json()
        assert closed.value.code == 1001

    async def test_the_socket_is_closed_going_away_when_the_gateway_stops(
        self, gateway: Gateway
    ) -> None:
        """Closing the app (as leaving serve_gateway does) says `shutdown`, then closes every
        socket with 1001."""
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws"
            ) as sock:
                await sock.receive_json()
                gateway.app.close()
                assert await sock.receive_json() == {
                    "kind": "shutdown",
                    "reason": "gateway stopping",
                }
                with pytest.raises(ws.Closed) as closed:
                    await sock.receive_json()
        assert (closed.value.code, closed.value.reason) == (1001, "gateway stopping")

    async def test_a_socket_after_the_bus_closed_is_refused(
        self, gateway: Gateway, daemon: Daemon
    ) -> None:
        """A daemon on its way down refuses the handshake: 503 BusClosed, as /events says."""
        daemon.bus.close()
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(gateway.host, gateway.port, token=gateway.token, target="/ws"):
                pass
        assert refused.value.status_code == 503
        assert refused.value.body["error"]["type"] == "BusClosed"

    async def test_an_invalid_topic_is_refused_at_the_handshake(self, gateway: Gateway) -> None:
        """The handshake is answered 400 InvalidPattern, as /events: nothing is subscribed."""
        with trio.fail_after(10), pytest.raises(ws.Rejected) as refused:
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=a..b"
            ):
                pass
        assert refused.value.status_code == 400
        assert refused.value.body["error"]["type"] == "InvalidPattern"

    async def test_closing_the_socket_releases_its_subscription(
        self, gateway: Gateway, daemon: Daemon
    ) -> None:
        """The client's close ends the connection and unsubscribes it."""
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=session.w3"
            ) as sock:
                await sock.receive_json()
                assert daemon.bus.subscriber_count("session.w3") == 1
                await sock.close()
            await _until(lambda: daemon.bus.subscriber_count("session.w3") == 0)


class TestAgents:
    async def test_an_agent_opened_over_http_answers_an_ask(
        self, client: httpx.AsyncClient
    ) -> None:
        """POST /agents/a1 then POST /agents/a1/ask: the reply's text."""
        with trio.fail_after(10):
            opened = await client.post(
                "/agents/a1", json={"model": "gpt-4o", "instructions": "Be brief."}
            )
            assert opened.status_code == 200
            assert opened.json()["topic"] == "agent.a1"
            again = await client.post("/agents/a1", json={"model": "gpt-4o"})
            asked = await client.post("/agents/a1/ask", json={"text": "Hello there"})
            closed = await client.delete("/agents/a1")
        assert again.status_code == 409
        assert again.json()["error"]["type"] == "AlreadyStarted"
        assert asked.status_code == 200
        assert asked.json()["text"] == "You said: Hello there"
        assert closed.status_code == 200

    async def test_tools_cannot_come_over_http(self, client: httpx.AsyncClient) -> None:
        """An agent with tools must be opened from Python: 400 NotOverHTTP says so."""
        response = await client.post("/agents/a2", json={"model": "gpt-4o", "tools": []})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["type"] == "NotOverHTTP"
        assert "cannot be defined over HTTP" in error["message"]

    async def test_an_ask_whose_timeout_runs_out_is_a_409(self, client: httpx.AsyncClient) -> None:
        """The caller's own ``timeout`` running out is TimeoutElapsed (409), not a 504; the
        agent answers the next ask."""
        slow = {"mock_scenario": "long:200", "mock_token_delay_ms": "20"}
        with trio.fail_after(10):
            opened = await client.post(
                "/agents/a9", json={"model": "gpt-4o", "options": {"metadata": slow}}
            )
            assert opened.status_code == 200, opened.text
            asked = await client.post("/agents/a9/ask", json={"text": "hi", "timeout": 0.05})
        assert asked.status_code == 409, asked.text
        assert asked.json()["error"]["code"] == "timeout_elapsed"

    async def test_asking_an_agent_that_is_not_running_is_404(
        self, client: httpx.AsyncClient
    ) -> None:
        """No agent of that id: NotFound."""
        response = await client.post("/agents/ghost/ask", json={"text": "hi"})
        assert response.status_code == 404


class TestPage:
    async def test_the_page_is_html_and_uses_the_endpoints(self, client: httpx.AsyncClient) -> None:
        """GET / serves one self-contained HTML page wired to the gateway's routes."""
        response = await client.get("/")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        page = response.text
        assert page.startswith("<!doctype html>")
        for endpoint in ("/events?topic=", "/sessions/", "/chat", "/responses", "/stop"):
            assert endpoint in page
        for endpoint in ("/background", "/cancel", "/health", "background.*"):
            assert endpoint in page
        # No external assets.
        assert "http://" not in page
        assert "https://" not in page


class TestSecrets:
    async def test_the_api_key_never_appears_in_any_response(self, tmp_path: Path) -> None:
        """With a real key (a keyed server), no body or header the gateway sends carries it."""
        key = "sk-test-gateway-secret-0123456789"
        with trio.fail_after(20):
            async with serve(MockAPIConfig(token_delay=0.0, api_key=key)) as api:
                config = daemon_config(tmp_path, openai_api_key=key, openai_base_url=api.url)
                async with (
                    open_daemon(config) as daemon,
                    serve_gateway(daemon) as gateway,
                    httpx.AsyncClient(base_url=gateway.url, headers=gateway.auth_headers) as http,
                ):
                    assert daemon.mockapi is None
                    seen: list[str] = []
                    async with aconnect_sse(http, "GET", "/events") as source:
                        for response in (
                            await http.get("/health"),
                            await http.post(
                                "/sessions/k1/chat", json={"model": "gpt-4o", "messages": HELLO}
                            ),
                            await http.post("/background", json={"model": "gpt-4o", "input": "x"}),
                            await http.get("/background/resp_unknown"),
                            await http.post("/sessions/k1/chat", json={"model": ""}),
                            await http.get("/files"),
                            await http.get("/"),
                        ):
                            seen.append(response.text)
                            seen.append(json.dumps(dict(response.headers)))
                        events = await _until_terminal(source)
                        seen.extend(sse.data for sse in events)
        assert len(seen) > 14
        assert all(key not in text for text in seen)


def test_all_lists_exactly_the_public_names() -> None:
    """`streamvisor.gateway.__all__` is its public face, no more, no less."""
    module = streamvisor.gateway
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(value, types.ModuleType)
    }
    assert set(module.__all__) == public


#: What `json.loads` makes of a frame from an OpenAI-compatible server that escapes half an emoji
#: (a lone surrogate) and writes a NaN: the wire layer hands both on unchanged.
ODD = json.loads('{"type": "response.output_text.delta", "delta": "x\\ud83dy", "logprob": NaN}')


def _odd_event(seq: int) -> StreamEvent:
    return StreamEvent("response.output_text.delta", seq, ODD, "resp_odd", "odd", "responses", 1.0)


class TestWhateverTheServerSent:
    """An event whose text no UTF-8 encoder takes (a lone surrogate) and whose number is NaN
    reaches every subscriber, and the next event follows: it used to fail the encode and end
    the subscriber's connection. The surrogate reads back as itself (written as its
    ``\\ud83d`` escape); the NaN, which strict JSON has no word for (a browser's
    ``JSON.parse`` refuses the ``NaN`` token), is written as ``null``, as JavaScript's
    ``JSON.stringify`` writes it."""

    async def test_over_sse(self, daemon: Daemon, client: httpx.AsyncClient) -> None:
        with trio.fail_after(10):
            async with aconnect_sse(
                client, "GET", "/events", params={"topic": "session.odd"}
            ) as source:
                daemon.bus.publish("session.odd", _odd_event(1))
                daemon.bus.publish("session.odd", _odd_event(2))
                seen = []
                async with aclosing(source.aiter_sse()) as events:
                    async for sse in events:
                        seen.append(strict_json(sse.data))
                        if len(seen) == 2:
                            break
        assert [s["sequence_number"] for s in seen] == [1, 2]
        assert seen[0]["data"]["delta"] == "x\ud83dy"
        assert seen[0]["data"]["logprob"] is None

    async def test_over_the_websocket(self, daemon: Daemon, gateway: Gateway) -> None:
        with trio.fail_after(10):
            async with ws.connect(
                gateway.host, gateway.port, token=gateway.token, target="/ws?topic=session.odd"
            ) as sock:
                assert await sock.receive_json() == {"kind": "subscribed", "topic": "session.odd"}
                daemon.bus.publish("session.odd", _odd_event(1))
                daemon.bus.publish("session.odd", _odd_event(2))
                first, second = await sock.receive_json(), await sock.receive_json()
                await sock.close()
        assert first["data"]["data"]["delta"] == "x\ud83dy"
        assert first["data"]["data"]["logprob"] is None
        assert second["data"]["sequence_number"] == 2
