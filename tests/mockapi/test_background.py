"""Background mode: queued → in_progress → terminal, poll, cancel, resume with starting_after."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trio

from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from tests._sdk import SDK_GENERATOR_LEAK

from .conftest import API_KEY, consume

pytestmark = SDK_GENERATOR_LEAK

#: Long enough that a test acts while the response is still queued; cancel/exit cut it short.
PARKED = {"mock_queue_ms": "60000"}


def sse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for frame in text.strip().split("\n\n"):
        lines = frame.split("\n")
        assert lines[0].startswith("event: ")
        payload = json.loads(lines[1].removeprefix("data: "))
        assert payload["type"] == lines[0].removeprefix("event: ")
        events.append(payload)
    return events


@pytest.fixture
async def http(server: MockServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"authorization": f"Bearer {API_KEY}"}
    ) as client:
        yield client


async def finished(server: MockServer, response_id: str) -> None:
    await server.state.responses[response_id].wait_done()


class TestCreateAndPoll:
    async def test_a_background_create_answers_queued_then_polls_to_completed(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
        assert created.status == "queued"
        assert created.background is True
        assert created.store is False  # store omitted → echoed false (recordings 10/14)
        await finished(server, created.id)
        polled = await client.responses.retrieve(created.id)
        assert polled.status == "completed"
        assert polled.output_text == "You said: hi"

    async def test_the_queued_response_has_the_keys_of_recording_14(
        self, http: httpx.AsyncClient, recorded_dir: Path
    ) -> None:
        (create, *_polls) = json.loads(
            (recorded_dir / "14_responses_background_poll_transcript.json").read_text()
        )
        response = await http.post("/responses", json=create["request"]["body"])
        served, recorded = response.json(), create["response"]["body"]
        assert set(served) == set(recorded)
        for key in ("status", "background", "store", "output", "usage", "error", "reasoning"):
            assert served[key] == recorded[key], key

    async def test_store_is_echoed_as_sent(self, client: openai.AsyncOpenAI) -> None:
        created = await client.responses.create(
            model="gpt-4o", input="hi", background=True, store=True
        )
        assert created.store is True

    async def test_a_poll_carries_the_poll_after_header(
        self, server: MockServer, client: openai.AsyncOpenAI, http: httpx.AsyncClient
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o", input="hi", background=True, metadata=PARKED
        )
        response = await http.get(f"/responses/{created.id}")
        assert response.headers["openai-poll-after-ms"] == "1000"
        assert response.json()["status"] == "queued"

    async def test_an_unknown_response_is_not_found(self, client: openai.AsyncOpenAI) -> None:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("resp_nope")

    async def test_delete_forgets_the_response(self, client: openai.AsyncOpenAI) -> None:
        created = await client.responses.create(model="gpt-4o", input="hi", store=True)
        await client.responses.delete(created.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(created.id)


class TestStreaming:
    async def test_create_with_stream_begins_created_queued_in_progress(
        self, client: openai.AsyncOpenAI
    ) -> None:
        stream = await client.responses.create(
            model="gpt-4o", input="2 + 2?", background=True, stream=True
        )
        async with stream:
            events = [event async for event in stream]
        assert [e.type for e in events[:3]] == [
            "response.created",
            "response.queued",
            "response.in_progress",
        ]
        assert events[0].response.status == "queued"
        assert events[-1].type == "response.completed"
        assert [e.sequence_number for e in events] == list(range(len(events)))

    async def test_resume_starting_after_n_replays_only_later_events(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(model="gpt-4o", input="2 + 2?", background=True)
        await finished(server, created.id)
        stream = await client.responses.retrieve(created.id, stream=True, starting_after=0)
        async with stream:
            events = [event async for event in stream]
        assert events[0].type == "response.queued"
        assert events[0].sequence_number == 1
        assert events[-1].type == "response.completed"
        sent = server.requests[-1]
        assert dict(sent.query) == {"stream": "true", "starting_after": "0"}

    async def test_resume_follows_a_live_response_to_its_end(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o",
            input="one two three",
            background=True,
            metadata={"mock_queue_ms": "20", "mock_token_delay_ms": "2"},
        )
        stream = await client.responses.retrieve(created.id, stream=True, starting_after=1)
        async with stream:
            events = [event async for event in stream]
        assert events[0].sequence_number == 2
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == "You said: one two three"

    async def test_the_sdk_stream_helper_resumes_by_response_id(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        """The helper fetches the whole log and filters locally (reference §4, SDK nuance)."""
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
        async with client.responses.stream(response_id=created.id, starting_after=3) as stream:
            numbers = [e.sequence_number async for e in stream]
            final = await stream.get_final_response()
        assert numbers[0] == 4
        assert final.output_text == "You said: hi"

    async def test_a_foreground_response_cannot_be_streamed_again(
        self, http: httpx.AsyncClient, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(model="gpt-4o", input="hi")
        response = await http.get(f"/responses/{created.id}", params={"stream": "true"})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == (
            "This response cannot be streamed because it was not created with background=true."
        )

    async def test_background_streams_carry_no_obfuscation(self, http: httpx.AsyncClient) -> None:
        response = await http.post(
            "/responses",
            json={"model": "gpt-4o", "input": "hi", "background": True, "stream": True},
        )
        assert "obfuscation" not in response.text


class TestResumeAfterFailure:
    async def test_every_cursor_resumes_exactly_the_rest_of_the_log(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        created = (
            await http.post(
                "/responses", json={"model": "gpt-4o", "input": "a b c", "background": True}
            )
        ).json()
        await finished(server, created["id"])
        log = server.state.responses[created["id"]].events
        for cursor in range(-1, len(log)):
            response = await http.get(
                f"/responses/{created['id']}",
                params={"stream": "true", "starting_after": str(cursor)},
            )
            events = sse_events(response.text) if response.text.strip() else []
            assert events == log[cursor + 1 :], cursor

    async def test_a_dropped_stream_resumed_from_its_cursor_loses_and_repeats_nothing(
        self, server: MockServer, http: httpx.AsyncClient
    ) -> None:
        body = {"model": "gpt-4o", "input": "one two three", "background": True, "stream": True}
        received = bytearray()
        with pytest.raises(httpx.RemoteProtocolError):
            await consume(
                http,
                received,
                "POST",
                "/responses",
                json=body,
                headers={"x-mock-fault": "drop_after_bytes=5000"},
            )
        complete_frames = bytes(received).rsplit(b"\n\n", 1)[0].decode()
        before = sse_events(complete_frames)
        cursor = before[-1]["sequence_number"]
        response_id = before[0]["response"]["id"]
        rest = sse_events(
            (
                await http.get(
                    f"/responses/{response_id}",
                    params={"stream": "true", "starting_after": str(cursor)},
                )
            ).text
        )
        numbers = [e["sequence_number"] for e in before + rest]
        assert numbers == list(range(len(numbers)))
        assert rest[-1]["type"] == "response.completed"
        assert before + rest == server.state.responses[response_id].events


class TestKeepalive:
    async def test_keepalives_consume_sequence_numbers_while_queued(self) -> None:
        async with (
            serve(MockAPIConfig(keepalive_interval=0.01)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            body = {
                "model": "gpt-4o",
                "input": "hi",
                "background": True,
                "stream": True,
                "metadata": {"mock_queue_ms": "35"},
            }
            events = sse_events((await http.post("/responses", json=body)).text)
        types = [e["type"] for e in events]
        parked = types[2 : types.index("response.in_progress")]
        assert types[:2] == ["response.created", "response.queued"]
        assert 1 <= len(parked) <= 3  # one per full interval (sleeps may overshoot)
        assert set(parked) == {"keepalive"}
        assert events[2] == {"type": "keepalive", "sequence_number": 2}
        assert [e["sequence_number"] for e in events] == list(range(len(events)))

    async def test_keepalives_are_logged_while_a_running_response_stalls(self) -> None:
        async with (
            serve(MockAPIConfig(keepalive_interval=0.01)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            body = {
                "model": "gpt-4o",
                "input": "hi",
                "background": True,
                "stream": True,
                "metadata": {"mock_stall_ms": "25"},
            }
            types = [e["type"] for e in sse_events((await http.post("/responses", json=body)).text)]
        assert types[:4] == [
            "response.created",
            "response.queued",
            "response.in_progress",
            "keepalive",
        ]
        assert types[-1] == "response.completed"


class TestCancel:
    async def test_cancelling_a_queued_response_stops_it(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o", input="hi", background=True, metadata=PARKED
        )
        cancelled = await client.responses.cancel(created.id)
        assert cancelled.status == "cancelled"
        await finished(server, created.id)
        assert (await client.responses.retrieve(created.id)).status == "cancelled"
        assert server.state.responses[created.id].events[-1]["type"] == "response.queued"

    async def test_cancelling_twice_is_idempotent(self, client: openai.AsyncOpenAI) -> None:
        created = await client.responses.create(
            model="gpt-4o", input="hi", background=True, metadata=PARKED
        )
        first = await client.responses.cancel(created.id)
        second = await client.responses.cancel(created.id)
        assert first.model_dump() == second.model_dump()

    async def test_cancelling_ends_a_following_stream(
        self, server: MockServer, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o", input="hi", background=True, metadata=PARKED
        )
        stream = await client.responses.retrieve(created.id, stream=True, starting_after=-1)
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(client.responses.cancel, created.id)
            types = [event.type async for event in stream]
        assert types == ["response.created", "response.queued"]

    @pytest.mark.parametrize(
        ("scenario", "message"),
        [
            ("echo", "Cannot cancel a completed response."),
            ("failed", "Cannot cancel a failed response."),
            ("incomplete", "Cannot cancel an incomplete response."),
        ],
    )
    async def test_a_finished_response_cannot_be_cancelled(
        self, server: MockServer, client: openai.AsyncOpenAI, scenario: str, message: str
    ) -> None:
        created = await client.responses.create(
            model="gpt-4o",
            input="one two three four",
            background=True,
            metadata={"mock_scenario": scenario},
        )
        await finished(server, created.id)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.cancel(created.id)
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["message"] == message

    async def test_a_foreground_response_cannot_be_cancelled(
        self, client: openai.AsyncOpenAI
    ) -> None:
        created = await client.responses.create(model="gpt-4o", input="hi")
        with pytest.raises(openai.BadRequestError, match="background"):
            await client.responses.cancel(created.id)


class TestRetention:
    async def test_an_unstored_background_response_is_gone_after_the_retention_window(
        self,
    ) -> None:
        async with (
            # Long enough that two POSTs and a GET fit in it on a loaded machine.
            serve(MockAPIConfig(retention=0.5)) as server,
            httpx.AsyncClient(base_url=server.url) as http,
        ):
            body = {"model": "gpt-4o", "input": "hi", "background": True}
            unstored = (await http.post("/responses", json=body)).json()["id"]
            stored = (await http.post("/responses", json={**body, "store": True})).json()["id"]
            assert (await http.get(f"/responses/{unstored}")).status_code == 200
            await trio.sleep_until(server.state.responses[unstored].created_at + 0.5)
            assert (await http.get(f"/responses/{unstored}")).status_code == 404
            assert (await http.get(f"/responses/{stored}")).status_code == 200
