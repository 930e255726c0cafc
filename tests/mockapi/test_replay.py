"""Replay mode: every recording is served byte for byte (the conformance fixtures' source)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from streamvisor.mockapi import Fault, MockServer
from tests.conftest import RECORDED

from .conftest import API_KEY

RECORDINGS = sorted(p.stem for p in RECORDED.glob("*.sse"))


@pytest.fixture
async def http(server: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as client:
        yield client


def endpoint(stem: str) -> str:
    return "/chat/completions" if "_chat_" in stem else "/responses"


async def test_there_is_a_recording_to_replay() -> None:
    assert len(RECORDINGS) == 13


@pytest.mark.parametrize("stem", RECORDINGS)
async def test_a_recording_is_served_byte_for_byte(
    http: httpx.AsyncClient, recorded_dir: Path, stem: str
) -> None:
    response = await http.post(
        endpoint(stem),
        json={"model": "gpt-4o", "input": "x", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-mock-scenario": f"replay:{stem}"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == (recorded_dir / f"{stem}.sse").read_bytes()


@pytest.mark.parametrize("sizes", ["1", "7,13", "4096"])
async def test_rechunking_keeps_the_bytes(
    http: httpx.AsyncClient, recorded_dir: Path, sizes: str
) -> None:
    stem = "03_chat_finish_length"
    async with http.stream(
        "POST",
        "/chat/completions",
        json={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "x"}],
            "metadata": {"mock_scenario": f"replay:{stem}", "mock_chunk_sizes": sizes},
        },
    ) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    assert body == (recorded_dir / f"{stem}.sse").read_bytes()


async def test_a_replay_can_be_cut_by_a_drop_fault(
    server: MockServer, http: httpx.AsyncClient
) -> None:
    server.inject(Fault.drop_after(1000))
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(
            "/chat/completions",
            json={"model": "gpt-4o", "messages": []},
            headers={"x-mock-scenario": "replay:02_chat_text_usage"},
        )


async def test_an_unknown_recording_is_a_bad_request(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/responses",
        json={"model": "gpt-4o", "input": "x"},
        headers={"x-mock-scenario": "replay:99_missing"},
    )
    assert response.status_code == 400
    assert "99_missing" in response.json()["error"]["message"]
