"""Starting and stopping the server: `serve()`, the bare ASGI app, `run_forever`."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

import httpx
import openai
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve as hypercorn_serve

from streamvisor.mockapi import Fault, MockAPIConfig, ServerNotRunning, create_app, serve

from .conftest import API_KEY


class TestServe:
    async def test_the_url_points_at_the_v1_root_on_the_bound_port(self) -> None:
        async with serve() as one, serve() as two:
            assert one.url == f"http://127.0.0.1:{one.port}/v1"
            assert one.port != two.port
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{one.url}/files")).json()["object"] == "list"

    async def test_injecting_after_the_server_stopped_raises(self) -> None:
        async with serve() as server:
            pass
        with pytest.raises(ServerNotRunning):
            server.inject(Fault.status(500))

    async def test_the_port_is_free_again_after_exit(self) -> None:
        async with serve() as server:
            port = server.port
        async with serve(MockAPIConfig(port=port)) as again:
            assert again.port == port


async def created_ids(server_config: MockAPIConfig) -> list[str]:
    """The ids one fresh server hands out for a response, a chat completion, a file and an
    upload, in that order."""
    async with serve(server_config) as server, httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/responses", json={"model": "gpt-4o", "input": "hi"})
        chat = await http.post(
            "/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
        file = await http.post(
            "/files", data={"purpose": "assistants"}, files={"file": ("a.txt", b"a")}
        )
        upload = await http.post(
            "/uploads",
            json={"bytes": 1, "filename": "a.txt", "mime_type": "text/plain", "purpose": "batch"},
        )
    bodies = [r.json() for r in (response, chat, file, upload)]
    output_ids = [item["id"] for item in bodies[0]["output"]]
    return [body["id"] for body in bodies] + output_ids


class TestIds:
    async def test_a_restarted_server_never_hands_out_an_id_it_gave_before(self) -> None:
        """Unseeded, ids are random like the real API's (records under var/ outlive a run)."""
        first = await created_ids(MockAPIConfig())
        second = await created_ids(MockAPIConfig())
        assert not set(first) & set(second)
        response_id, chat_id, file_id, upload_id, message_id = first
        assert re.fullmatch(r"resp_[0-9a-f]{48}", response_id)
        assert re.fullmatch(r"chatcmpl-[0-9A-Za-z]{29}", chat_id)
        assert re.fullmatch(r"file-[0-9A-Za-z]{22}", file_id)
        assert re.fullmatch(r"upload_[0-9A-Za-z]{24}", upload_id)
        assert re.fullmatch(r"msg_[0-9a-f]{48}", message_id)

    async def test_two_servers_with_one_seed_hand_out_the_same_ids(self) -> None:
        """A seed (tests only) makes ids a function of the seed and the request sequence."""
        first = await created_ids(MockAPIConfig(seed="same"))
        assert first == await created_ids(MockAPIConfig(seed="same"))
        assert first != await created_ids(MockAPIConfig(seed="other"))


async def test_the_bare_app_runs_background_work_in_its_lifespan_nursery() -> None:
    """Served by plain hypercorn (no `serve()`), background responses still complete."""
    app = create_app(MockAPIConfig())
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: hypercorn_serve(
                app,  # type: ignore[arg-type]
                config,
                shutdown_trigger=stop.wait,
                task_status=task_status,
            )
        )
        async with httpx.AsyncClient(base_url=f"{binds[0]}/v1") as http:
            body = {"model": "gpt-4o", "input": "hi", "background": True, "stream": True}
            response = await http.post("/responses", json=body)
        assert response.text.rstrip().split("\n")[-2] == "event: response.completed"
        stop.set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_run_forever_serves_until_interrupted() -> None:
    port = free_port()
    code = f"from streamvisor.mockapi import run_forever; run_forever(port={port})"
    process = await trio.lowlevel.open_process([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        with trio.fail_after(20):
            line = await process.stdout.receive_some(200)
        assert f"http://127.0.0.1:{port}/v1".encode() in line
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/v1/files")
        assert response.status_code == 200
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


class TestBoundedRecordings:
    async def test_a_long_running_server_keeps_only_the_newest_requests_and_notes(self) -> None:
        """Recorded requests and made-up argument notes stay within twice `recorded`, newest
        kept: an embedded server under `make run` never grows without bound."""
        tool = {"type": "function", "function": {"name": "calc", "parameters": {}}}
        config = MockAPIConfig(api_key=API_KEY, recorded=5)
        async with (
            serve(config) as running,
            openai.AsyncOpenAI(base_url=running.url, api_key=API_KEY, max_retries=0) as sdk,
        ):
            ids = []
            for n in range(23):
                completion = await sdk.chat.completions.create(
                    model="gpt-4o",
                    messages=[{"role": "user", "content": f"call {n}"}],
                    tools=[tool],  # type: ignore[list-item]
                )
                (call,) = completion.choices[0].message.tool_calls or []
                ids.append(call.id)
            requests, notes = running.requests, running.state.made_up_arguments
            assert 5 <= len(requests) <= 10
            assert requests[-1].body is not None
            assert requests[-1].body["messages"][0]["content"] == "call 22"
            assert 5 <= len(notes) <= 10
            assert list(notes)[-1] == ids[-1]
            assert ids[0] not in notes
