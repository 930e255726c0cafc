"""Fault injection, observed by a plain httpx client over loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio

from streamvisor.mockapi import Fault, MockAPIConfig, MockServer, serve

from .conftest import API_KEY, consume

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "one two three four"}]}
RESPONSE = {"model": "gpt-4o", "input": "one two three four"}
AUTH = {"authorization": f"Bearer {API_KEY}"}


def data_lines(text: str) -> list[str]:
    return [line[len("data: ") :] for line in text.split("\n") if line.startswith("data: ")]


@pytest.fixture
async def http(server: MockServer) -> Any:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=5.0) as client:
        yield client


class TestDropAfterBytes:
    async def test_a_stream_cut_mid_body_raises_remote_protocol_error(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        """The connection closes after exactly N body bytes: httpx sees an incomplete body."""
        server.inject(Fault.drop_after(300), method="POST", path="/v1/chat/completions")
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            await consume(
                http, received, "POST", "/chat/completions", json={**CHAT, "stream": True}
            )
        assert len(received) == 300

    async def test_a_json_body_cut_short_raises_remote_protocol_error(
        self, http: httpx.AsyncClient
    ) -> None:
        """A content-length response cut short is an error too (header-driven fault)."""
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post(
                "/responses", json=RESPONSE, headers={"x-mock-fault": "drop_after_bytes=10"}
            )

    async def test_the_fault_is_consumed_and_the_next_request_succeeds(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        server.inject(Fault.drop_after(0), path="/v1/responses", times=1)
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/responses", json=RESPONSE)
        response = await http.post("/responses", json=RESPONSE)
        assert response.status_code == 200

    async def test_a_dropped_foreground_response_still_completes_on_the_server(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        """The server goes on without the client: GET shows the completed response."""
        server.inject(Fault.drop_after(600), path="/v1/responses")
        with pytest.raises(httpx.RemoteProtocolError):
            await consume(
                http, bytearray(), "POST", "/responses", json={**RESPONSE, "stream": True}
            )
        (stored,) = server.state.responses.values()
        await stored.wait_done()
        got = await http.get(f"/responses/{stored.id}")
        assert got.json()["status"] == "completed"


class TestStatusFaults:
    async def test_429_carries_retry_after_headers_and_the_rate_limit_body(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        server.inject(Fault.status(429, retry_after=0.05, retry_after_ms=50), times=1)
        response = await http.post("/chat/completions", json=CHAT)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "0.05"
        assert response.headers["retry-after-ms"] == "50"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
        assert response.headers["x-request-id"].startswith("req_")

    async def test_5xx_with_x_should_retry(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/chat/completions",
            json=CHAT,
            headers={"x-mock-fault": "status=503;should_retry=false"},
        )
        assert response.status_code == 503
        assert response.headers["x-should-retry"] == "false"
        assert response.json()["error"]["type"] == "server_error"

    async def test_insufficient_quota_is_a_429_with_its_own_type_and_code(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/responses", json=RESPONSE, headers={"x-mock-fault": "insufficient_quota"}
        )
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "insufficient_quota"
        assert response.json()["error"]["code"] == "insufficient_quota"

    async def test_header_times_with_a_key_counts_across_retries(
        self, http: httpx.AsyncClient
    ) -> None:
        """`times=2;key=k1`: the first two attempts fail, the third succeeds."""
        header = {"x-mock-fault": "status=500;times=2;key=k1"}
        codes = [
            (await http.post("/chat/completions", json=CHAT, headers=header)).status_code
            for _ in range(3)
        ]
        assert codes == [500, 500, 200]

    async def test_programmatic_faults_match_method_and_path(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        server.inject(Fault.status(502), method="GET", path="/v1/files", times=None)
        assert (await http.post("/chat/completions", json=CHAT)).status_code == 200
        assert (await http.get("/files")).status_code == 502
        assert (await http.get("/files")).status_code == 502

    async def test_a_malformed_fault_header_is_a_400(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/chat/completions", json=CHAT, headers={"x-mock-fault": "explode=1"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "x-mock-fault"


class TestUnsupportedParameter:
    async def test_a_reasoning_model_rejects_temperature(self, http: httpx.AsyncClient) -> None:
        body = {**CHAT, "model": "o3-mini", "temperature": 0.2}
        response = await http.post("/chat/completions", json=body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("unsupported_parameter", "temperature")

    async def test_a_reasoning_model_rejects_max_tokens_naming_the_replacement(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/chat/completions", json={**CHAT, "model": "gpt-5", "max_tokens": 10}
        )
        error = response.json()["error"]
        assert error["param"] == "max_tokens"
        assert "max_completion_tokens" in error["message"]

    async def test_gpt_4_1_is_not_a_reasoning_model(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/chat/completions", json={**CHAT, "model": "gpt-4.1", "temperature": 0.2}
        )
        assert response.status_code == 200

    async def test_the_fault_names_any_parameter(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/responses",
            json=RESPONSE,
            headers={"x-mock-fault": "unsupported_parameter=reasoning_effort"},
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "reasoning_effort"


class TestStalls:
    async def test_a_stall_before_headers_shows_in_openai_processing_ms(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.get("/files", headers={"x-mock-fault": "stall=0.03"})
        assert response.status_code == 200
        assert int(response.headers["openai-processing-ms"]) >= 30

    async def test_a_stall_before_headers_trips_a_client_read_timeout(
        self, http: httpx.AsyncClient
    ) -> None:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(
                "/chat/completions",
                json=CHAT,
                headers={"x-mock-fault": "stall=5"},
                timeout=httpx.Timeout(5.0, read=0.05),
            )

    async def test_a_stall_mid_stream_trips_the_idle_timeout_after_some_bytes(
        self, http: httpx.AsyncClient
    ) -> None:
        received = bytearray()
        with pytest.raises(httpx.ReadTimeout):
            await consume(
                http,
                received,
                "POST",
                "/chat/completions",
                json={**CHAT, "stream": True},
                headers={"x-mock-fault": "stall=5;after_bytes=200"},
                timeout=httpx.Timeout(5.0, read=0.1),
            )
        assert len(received) == 200


class TestFrameFaults:
    async def test_a_malformed_frame_has_a_data_line_that_is_not_json(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-mock-fault": "malformed;after_events=2"},
        )
        lines = data_lines(response.text)
        json.loads(lines[0])
        json.loads(lines[1])
        with pytest.raises(json.JSONDecodeError):
            json.loads(lines[2])
        assert lines[-1] == "[DONE]"

    async def test_chat_error_event_is_a_data_frame_with_an_error_object(
        self, http: httpx.AsyncClient
    ) -> None:
        response = await http.post(
            "/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-mock-fault": "error_event_after=3"},
        )
        lines = data_lines(response.text)
        assert len(lines) == 4
        assert json.loads(lines[-1])["error"]["type"] == "server_error"
        assert "event:" not in response.text

    async def test_responses_error_event_flat_framing(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/responses",
            json={**RESPONSE, "stream": True},
            headers={"x-mock-fault": "error_event_after=2"},
        )
        frames = response.text.strip().split("\n\n")
        assert len(frames) == 3
        assert frames[-1].startswith("event: error\n")
        error = json.loads(data_lines(frames[-1])[0])
        assert error == {
            "type": "error",
            "code": "server_error",
            "message": error["message"],
            "param": None,
            "sequence_number": 2,
        }

    async def test_responses_error_event_nested_framing(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/responses",
            json={**RESPONSE, "stream": True},
            headers={"x-mock-fault": "error_event_after=1;nested=true"},
        )
        error = json.loads(data_lines(response.text)[-1])
        assert error["type"] == "error"
        assert error["error"]["code"] == "server_error"
        assert error["sequence_number"] == 1


class TestAuthAndHeaders:
    async def test_a_missing_key_is_a_401_with_the_real_body(self, server: MockServer) -> None:
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            response = await anonymous.post("/chat/completions", json=CHAT)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith("You didn't provide an API key.")

    async def test_a_wrong_key_is_a_401_invalid_api_key_without_echoing_the_key(
        self, server: MockServer
    ) -> None:
        secret = "sk-wrong-key-abcdefghijkl"
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {secret}"}
        ) as wrong:
            response = await wrong.get("/files")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert secret not in response.text

    async def test_every_response_has_a_request_id_and_go_style_rate_limit_headers(
        self, http: httpx.AsyncClient
    ) -> None:
        first = await http.get("/files")
        second = await http.get("/nowhere")
        assert second.status_code == 404
        assert first.headers["x-request-id"] != second.headers["x-request-id"]
        for response in (first, second):
            assert response.headers["openai-version"] == "2020-10-01"
            assert int(response.headers["openai-processing-ms"]) >= 0
            assert response.headers["x-ratelimit-limit-requests"] == "10000"
            assert response.headers["x-ratelimit-reset-requests"].endswith("ms")
        remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in (first, second)]
        assert remaining[0] - remaining[1] == 1

    async def test_the_server_records_what_it_saw(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        await http.post("/chat/completions?x=1", json=CHAT)
        (seen,) = server.requests
        assert (seen.method, seen.path, dict(seen.query)) == (
            "POST",
            "/v1/chat/completions",
            {"x": "1"},
        )
        assert seen.body == CHAT
        assert seen.headers["authorization"] == f"Bearer {API_KEY}"


async def test_leaving_serve_ends_open_streams_and_background_work_promptly() -> None:
    """A client following a live background stream sees it end cleanly when the server stops
    (an EOF without a terminal event: "still running, resume or poll")."""
    received = bytearray()
    first_bytes, stop = trio.Event(), trio.Event()

    async def run_server(task_status: trio.TaskStatus[MockServer]) -> None:
        async with serve(MockAPIConfig(graceful_timeout=2.0)) as server:
            task_status.started(server)
            await stop.wait()

    async def follow(url: str) -> None:
        body = {
            **RESPONSE,
            "background": True,
            "stream": True,
            "metadata": {"mock_queue_ms": "60000"},
        }
        async with (
            httpx.AsyncClient(base_url=url) as http,
            http.stream("POST", "/responses", json=body) as r,
        ):
            async for chunk in r.aiter_raw():
                received.extend(chunk)
                first_bytes.set()

    with trio.fail_after(3):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(run_server)
            nursery.start_soon(follow, server.url)
            await first_bytes.wait()
            stop.set()
    assert received.startswith(b"event: response.created\n")
    assert received.endswith(b"\n\n")
    assert b"response.in_progress" not in received
