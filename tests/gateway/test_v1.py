"""``/v1`` on the gateway, over real HTTP: OpenAI's wire shapes, durable streams the client never
sees break, replay from the daemon's own log, sessions, and OpenAI's error bodies.

(The official SDKs, sync, asyncio and Node, are run against it in ``tests/v1`` and
``tests/node``; these tests pin the daemon-side behaviour each of them relies on.)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
from httpx_sse import aconnect_sse

from streamvisor._samples import png
from streamvisor.daemon import Daemon
from streamvisor.gateway import Gateway
from streamvisor.mockapi import Fault
from streamvisor.openai import StreamEvent

#: httpx leaves its inner body iterators unclosed when a client leaves a stream early (see
#: tests/gateway/test_gateway.py); silence only those generators.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object"
    r" (Response\.aiter_(lines|text|bytes|raw)|\w*Stream\.__aiter__"
    r"|AsyncHTTP11Connection\._receive_response_body)"
    ":pytest.PytestUnraisableExceptionWarning"
)

MODEL = "gpt-4o"
PNG = png()


@pytest.fixture
async def v1(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    """A client of ``/v1`` presenting the gateway's token as its API key."""
    async with httpx.AsyncClient(
        base_url=f"{gateway.url}/v1", headers=gateway.auth_headers, timeout=10.0
    ) as http:
        yield http


async def events(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> list[tuple[str, dict[str, Any]]]:
    """Every SSE frame of one request: ``(event name, data)``; ``[DONE]`` as ``("done", {})``."""
    frames: list[tuple[str, dict[str, Any]]] = []
    async with aconnect_sse(client, method, url, **kwargs) as source:
        source.response.raise_for_status()
        async for sse in source.aiter_sse():
            if sse.data == "[DONE]":
                frames.append(("done", {}))
            else:
                frames.append((sse.event, json.loads(sse.data)))
    return frames


def long_body(words: int = 40, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "input": "Hello",
        "stream": True,
        "metadata": {"mock_scenario": f"long:{words}"},
        **extra,
    }


def shape(frames: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, int, str]]:
    """What a client makes of a Responses stream: types, numbers, deltas (ids left out)."""
    return [(name, d["sequence_number"], str(d.get("delta", ""))) for name, d in frames]


class TestTheDoor:
    async def test_without_the_token_a_request_gets_openais_401_body(
        self, gateway: Gateway
    ) -> None:
        """An SDK with the wrong key raises AuthenticationError: status 401, OpenAI's body."""
        async with httpx.AsyncClient(base_url=f"{gateway.url}/v1") as http:
            response = await http.get("/models", headers={"authorization": "Bearer nope-nope"})
        assert response.status_code == 401
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "invalid_api_key"
        assert gateway.token not in response.text

    async def test_an_unknown_route_is_openais_404(self, v1: httpx.AsyncClient) -> None:
        response = await v1.post("/assistants", json={})
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "invalid_request_error"

    async def test_a_bad_id_or_parameter_is_a_400_naming_it(self, v1: httpx.AsyncClient) -> None:
        bad_id = await v1.get("/responses/..%2Ffiles")
        assert bad_id.status_code == 400
        assert bad_id.json()["error"]["param"] == "response_id"
        bad_flag = await v1.post("/responses", json={"model": MODEL, "input": "x", "stream": "yes"})
        assert bad_flag.status_code == 400
        assert bad_flag.json()["error"]["param"] == "stream"
        bad_body = await v1.post(
            "/chat/completions", json={"model": MODEL, "messages": [], "stream": True}
        )
        assert bad_body.status_code == 400
        assert bad_body.json()["error"]["param"] == "messages"

    async def test_an_upstream_error_keeps_its_status_and_body(self, v1: httpx.AsyncClient) -> None:
        response = await v1.get("/responses/resp_unknown")
        assert response.status_code == 404
        assert "resp_unknown" in response.json()["error"]["message"]

    async def test_models_are_passed_through(self, v1: httpx.AsyncClient) -> None:
        listed = (await v1.get("/models")).json()
        assert listed["object"] == "list"
        assert {"id": "gpt-4o", "object": "model"}.items() <= listed["data"][0].items()
        assert (await v1.get("/models/gpt-4.1")).json()["id"] == "gpt-4.1"
        assert (await v1.get("/models/no-such-model")).status_code == 404


class TestChat:
    async def test_a_streamed_chat_is_chunks_then_done(self, v1: httpx.AsyncClient) -> None:
        frames = await events(
            v1,
            "POST",
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        )
        assert frames[-1] == ("done", {})
        chunks = [d for _, d in frames[:-1]]
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert text == "You said: Hi"
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert all("usage" not in c for c in chunks)  # the client did not ask for it

    async def test_usage_comes_as_the_api_sends_it_when_asked(self, v1: httpx.AsyncClient) -> None:
        frames = await events(
            v1,
            "POST",
            "/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        last = frames[-2][1]
        assert last["choices"] == []
        assert last["usage"]["total_tokens"] > 0
        assert all(d["usage"] is None for _, d in frames[:-2])

    async def test_tool_calls_arrive_as_fragments(self, v1: httpx.AsyncClient) -> None:
        tool = {
            "type": "function",
            "function": {
                "name": "add",
                "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
            },
        }
        frames = await events(
            v1,
            "POST",
            "/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "add"}],
                "tools": [tool],
                "stream": True,
                "metadata": {"mock_scenario": "tools"},
            },
        )
        deltas = [d["choices"][0]["delta"] for _, d in frames[:-1] if d["choices"]]
        calls = [c for delta in deltas for c in delta.get("tool_calls") or ()]
        assert calls[0]["function"]["name"] == "add"
        assert calls[0]["id"]
        arguments = "".join(c["function"].get("arguments") or "" for c in calls)
        assert isinstance(json.loads(arguments), dict)
        assert frames[-2][1]["choices"][0]["finish_reason"] == "tool_calls"

    async def test_a_chat_not_streamed_is_passed_through(self, v1: httpx.AsyncClient) -> None:
        response = await v1.post(
            "/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert response.json()["choices"][0]["message"]["content"] == "You said: Hi"


class TestResponsesStreams:
    async def test_a_stream_looks_like_a_plain_one_to_a_client_that_did_not_ask_background(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """Durable upstream (background mode), yet numbered 0, 1, 2, ... with no queued event
        and ``background: false`` in its Response objects."""
        frames = await events(v1, "POST", "/responses", json=long_body(5))
        numbers = [d["sequence_number"] for _, d in frames]
        assert numbers == list(range(len(frames)))
        assert "response.queued" not in [name for name, _ in frames]
        assert frames[0][1]["response"]["background"] is False
        assert frames[-1][0] == "response.completed"
        assert frames[-1][1]["response"]["background"] is False
        upstream = daemon.mockapi.requests[-1] if daemon.mockapi else None
        assert upstream is not None
        assert upstream.body["background"] is True

    async def test_a_finished_plain_stream_retrieved_later_still_says_background_false(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        frames = await events(v1, "POST", "/responses", json=long_body(3))
        rid = frames[0][1]["response"]["id"]
        await daemon.event_log.flush()  # written: the log's memory of it is gone
        assert daemon.event_log.known(rid) is None
        retrieved = (await v1.get(f"/responses/{rid}")).json()
        assert retrieved["background"] is False
        assert retrieved["status"] == "completed"

    async def test_a_client_that_asked_background_gets_it_as_sent(
        self, v1: httpx.AsyncClient
    ) -> None:
        frames = await events(v1, "POST", "/responses", json=long_body(5, background=True))
        assert [name for name, _ in frames][:2] == ["response.created", "response.queued"]
        assert frames[-1][1]["response"]["background"] is True

    @pytest.mark.parametrize("cut", [900, 1700, 2500])
    async def test_an_upstream_drop_is_invisible_to_the_client(
        self, v1: httpx.AsyncClient, daemon: Daemon, cut: int
    ) -> None:
        undisturbed = await events(v1, "POST", "/responses", json=long_body())
        assert daemon.mockapi is not None
        daemon.mockapi.inject(Fault.drop_after(cut), method="POST", path="/v1/responses", times=1)
        disturbed = await events(v1, "POST", "/responses", json=long_body())
        assert shape(disturbed) == shape(undisturbed)
        resumed = [r for r in daemon.mockapi.requests if r.method == "GET" and "stream" in r.query]
        assert resumed, "the daemon resumed the stream upstream"

    async def test_a_session_that_stops_following_its_stream_does_not_end_the_relay(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """Closing the session mid-stream hands the response to polling: the relay goes on
        from the log and the API, and the client still gets every event once."""
        undisturbed = await events(v1, "POST", "/responses", json=long_body(60))
        got: list[tuple[str, dict[str, Any]]] = []
        headers = {"x-streamvisor-session": "handover"}
        body = long_body(60, metadata={"mock_scenario": "long:60", "mock_token_delay_ms": 5})
        async with aconnect_sse(v1, "POST", "/responses", json=body, headers=headers) as source:
            async for sse in source.aiter_sse():
                got.append((sse.event, json.loads(sse.data)))
                if len(got) == 10:
                    assert await daemon.close_session("handover")
        assert shape(got) == shape(undisturbed)

    async def test_a_drop_before_the_first_event_is_a_502_an_sdk_retries(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """Before the first frame the response's id is unknown: it cannot be resumed, and
        creating it again could run it twice. The client decides (the SDKs retry a 502)."""
        assert daemon.mockapi is not None
        daemon.mockapi.inject(Fault.drop_after(100), method="POST", path="/v1/responses", times=1)
        response = await v1.post("/responses", json=long_body(3))
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "outcome_unknown"


class TestReplayFromTheDaemon:
    async def test_a_client_that_left_replays_after_its_cursor_from_the_daemons_log(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """The replay comes from the daemon, even when the API would refuse it."""
        whole = await events(v1, "POST", "/responses", json=long_body(10))
        rid = whole[0][1]["response"]["id"]
        assert daemon.mockapi is not None
        daemon.mockapi.inject(Fault.status(400), method="GET", times=5)
        tail = await events(v1, "GET", f"/responses/{rid}?stream=true&starting_after=4")
        assert shape(tail) == shape(whole)[5:]
        again = await events(v1, "GET", f"/responses/{rid}?stream=true")
        assert shape(again) == shape(whole)

    async def test_a_client_that_disconnected_mid_stream_resumes_where_it_left(
        self, v1: httpx.AsyncClient
    ) -> None:
        body = long_body(60, metadata={"mock_scenario": "long:60", "mock_token_delay_ms": 5})
        seen: list[tuple[str, dict[str, Any]]] = []
        async with (
            aconnect_sse(v1, "POST", "/responses", json=body) as source,
            contextlib.aclosing(source.aiter_sse()) as frames,
        ):
            async for sse in frames:
                seen.append((sse.event, json.loads(sse.data)))
                if len(seen) == 8:
                    break  # the client goes away; the daemon keeps streaming
        rid = seen[0][1]["response"]["id"]
        cursor = seen[-1][1]["sequence_number"]
        rest = await events(v1, "GET", f"/responses/{rid}?stream=true&starting_after={cursor}")
        numbers = [d["sequence_number"] for _, d in seen + rest]
        assert numbers == list(range(len(numbers)))
        assert rest[-1][0] == "response.completed"

    async def test_a_deleted_response_has_no_log_left(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        whole = await events(v1, "POST", "/responses", json=long_body(3))
        rid = whole[0][1]["response"]["id"]
        assert (await v1.delete(f"/responses/{rid}")).json()["deleted"] is True
        read = await daemon.event_log.read(rid, None)
        assert read.response is None
        assert read.frames == ()


class TestBackgroundAndFiles:
    async def test_background_create_poll_and_cancel(self, v1: httpx.AsyncClient) -> None:
        body = {"model": MODEL, "input": "bg", "background": True}
        created = (await v1.post("/responses", json=body)).json()
        assert created["status"] == "queued"
        assert created["background"] is True
        slow = {**body, "metadata": {"mock_scenario": "long:200", "mock_token_delay_ms": 20}}
        running = (await v1.post("/responses", json=slow)).json()
        cancelled = (await v1.post(f"/responses/{running['id']}/cancel")).json()
        assert cancelled["status"] == "cancelled"
        with trio.fail_after(5):
            while (await v1.get(f"/responses/{created['id']}")).json()["status"] != "completed":
                await trio.sleep(0.02)

    async def test_a_file_that_breaks_a_rule_is_openais_400_naming_it(
        self, v1: httpx.AsyncClient
    ) -> None:
        files = {"file": ("x.png", b"not a png at all", "image/png")}
        response = await v1.post("/files", files=files, data={"purpose": "vision"})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "file"
        assert error["code"] == "allowed_types"

    async def test_a_good_file_round_trips(self, v1: httpx.AsyncClient) -> None:
        files = {"file": ("dot.png", PNG, "image/png")}
        created = (await v1.post("/files", files=files, data={"purpose": "vision"})).json()
        assert created["object"] == "file"
        assert (await v1.get(f"/files/{created['id']}/content")).content == PNG
        listed = (await v1.get("/files", params={"limit": 1})).json()
        assert listed["data"][0]["id"] == created["id"]
        assert (await v1.delete(f"/files/{created['id']}")).json()["deleted"] is True

    async def test_an_upload_whose_bytes_are_not_what_it_declared_is_refused(
        self, v1: httpx.AsyncClient
    ) -> None:
        upload = (
            await v1.post(
                "/uploads",
                json={
                    "filename": "a.pdf",
                    "purpose": "user_data",
                    "bytes": len(PNG),
                    "mime_type": "application/pdf",
                },
            )
        ).json()
        part = await v1.post(f"/uploads/{upload['id']}/parts", files={"data": ("p", PNG)})
        assert part.status_code == 400
        assert part.json()["error"]["code"] == "declared_type"


class TestSessions:
    async def test_a_named_session_carries_the_stream_on_the_bus(
        self, v1: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        async with daemon.subscribe("session.sdk-1") as sub:
            frames = await events(
                v1,
                "POST",
                "/responses",
                json=long_body(3),
                headers={"x-streamvisor-session": "sdk-1"},
            )
            seen: list[StreamEvent] = []
            with trio.fail_after(5):
                while not seen or not seen[-1].terminal:
                    item = await sub.receive()
                    if isinstance(item, StreamEvent):
                        seen.append(item)
        assert seen[-1].response_id == frames[0][1]["response"]["id"]

    async def test_a_bad_session_header_is_a_400(self, v1: httpx.AsyncClient) -> None:
        response = await v1.post(
            "/responses", json=long_body(3), headers={"x-streamvisor-session": "a.b"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "x-streamvisor-session"

    async def test_a_connection_gets_its_own_session_stopped_once_idle(
        self, v1: httpx.AsyncClient, daemon: Daemon, gateway: Gateway
    ) -> None:
        gateway.app.v1_sessions.idle = 0.0
        await events(v1, "POST", "/responses", json=long_body(3))
        implicit = [s for s in gateway.app.v1_sessions._last_used if s.startswith("v1-")]
        assert implicit
        handle = daemon.session(implicit[0])
        assert handle is not None
        with trio.fail_after(5):
            while await handle.streams():  # the stream winds down after its last event
                await trio.sleep(0.01)
        async with httpx.AsyncClient(headers=gateway.auth_headers) as other:
            await other.get(f"{gateway.url}/v1/models")  # another connection's request reaps
        assert daemon.session(implicit[0]) is None
