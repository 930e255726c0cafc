"""The original's usage examples, end to end through `open_daemon` over real loopback HTTP.

Each test is one example a user would write: streaming chat with a handler, background create and
poll, image input, the combined example (a durable stream of an image question, then polling the
same response), chat with tools, Responses foreground and durable, an agent with a tool, and the
Files API. They run on `streamvisor.testing` (`running_daemon`, `EventRecorder`), as a user's
own tests would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import trio

import streamvisor as sv
from streamvisor import _samples as samples
from streamvisor.daemon import Daemon
from streamvisor.testing import EventRecorder

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def posts(daemon: Daemon, path: str) -> list[dict[str, Any]]:
    """The JSON bodies the embedded server received on POST ``path``."""
    assert daemon.mockapi is not None
    return [r.body for r in daemon.mockapi.requests if r.method == "POST" and r.path == path]


class TestStreamingWithAHandler:
    async def test_the_handler_sees_every_event_and_format_stream_event_renders_them(
        self, daemon: Daemon
    ) -> None:
        """`handle_stream_events` + `format_stream_event`, as the original's first example."""
        lines: list[str] = []
        with trio.fail_after(10):
            async with daemon.subscribe("session.s1") as events:
                session = await daemon.open_session("s1")
                await session.chat("gpt-4o", [{"role": "user", "content": "Hello there"}])

                def on_event(event: sv.StreamEvent) -> sv.Continue:
                    lines.append(sv.format_stream_event(event))
                    return sv.CONTINUE

                seen = await sv.handle_stream_events(events, on_event, timeout=5)
        deltas = [line for line in lines if line.startswith("[text_delta]")]
        assert "".join(line.removeprefix("[text_delta] ") for line in deltas) == (
            "You said: Hello there"
        )
        assert lines[-1].startswith("[completion_finished]")
        assert len(lines) == len(seen)

    async def test_a_handler_that_stops_ends_the_loop_while_the_stream_goes_on(
        self, daemon: Daemon
    ) -> None:
        """`STOP` returns the events so far; the session's stream still completes."""
        with trio.fail_after(10):
            async with (
                EventRecorder.open(daemon, "session.s2") as recorder,
                daemon.subscribe("session.s2") as events,
            ):
                session = await daemon.open_session("s2")
                await session.chat("gpt-4o", [{"role": "user", "content": "stop early"}])
                seen = await sv.handle_stream_events(
                    events,
                    lambda e: sv.STOP if e.type == "response.output_text.delta" else sv.CONTINUE,
                )
                final = await recorder.wait_terminal()
        assert seen[-1].type == "response.output_text.delta"
        assert final.type == "response.completed"
        assert recorder.text() == "You said: stop early"


class TestBackgroundCreateAndPoll:
    async def test_polling_a_created_response_reaches_completed_with_its_text(
        self, daemon: Daemon
    ) -> None:
        """The original's second example: create, then poll until done."""
        with trio.fail_after(10):
            record = await daemon.background.create(
                "What is 2 + 2?", "gpt-4o", metadata={"mock_queue_ms": "50"}
            )
            assert record.status == "queued"
            while (polled := await daemon.background.poll(record.response_id))["status"] not in (
                "completed",
                "failed",
            ):
                await trio.sleep(0.02)
        assert polled["status"] == "completed"
        assert polled["output"][0]["content"][0]["text"] == "You said: What is 2 + 2?"
        assert (await daemon.background.get(record.response_id)).status == "completed"

    async def test_every_status_change_is_notified_in_order(self, daemon: Daemon) -> None:
        """queued → in_progress → completed, each a `BackgroundStatus` on the response's topic."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "background.*") as recorder:
                record = await daemon.background.create(
                    "hi", "gpt-4o", metadata={"mock_queue_ms": "60", "mock_token_delay_ms": "5"}
                )
                await recorder.wait_status(record.response_id)
        changes = [(s.previous, s.status) for s in recorder.statuses(record.response_id)]
        assert changes[0] == (None, "queued")
        assert changes[-1][1] == "completed"
        assert [status for _, status in changes] == sorted(
            (status for _, status in changes),
            key=["queued", "in_progress", "completed"].index,
        )


class TestImageInput:
    async def test_a_question_about_an_uploaded_image_reaches_the_api_with_the_file_id(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """The original's third example: an image file becomes an ``input_image`` part."""
        (tmp_path / "diagram.png").write_bytes(samples.png(8, 8))
        with trio.fail_after(10):
            part = await daemon.files.image_input(tmp_path / "diagram.png", detail="low")
            async with EventRecorder.open(daemon, "session.img") as recorder:
                session = await daemon.open_session("img")
                content = [{"type": "input_text", "text": "Describe it"}, part]
                await session.respond(
                    "gpt-4o", [{"role": "user", "content": content}], durable=False
                )
                final = await recorder.wait_terminal()
        assert final.type == "response.completed"
        sent = posts(daemon, "/v1/responses")[-1]["input"][0]["content"][1]
        assert sent == {"type": "input_image", "file_id": part["file_id"], "detail": "low"}
        uploaded = await daemon.files.retrieve(part["file_id"])
        assert (uploaded["purpose"], uploaded["filename"]) == ("vision", "diagram.png")

    async def test_an_inline_image_is_sent_as_a_data_url(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """``via="data_url"`` inlines the sniffed type; nothing is uploaded."""
        (tmp_path / "photo.jpg").write_bytes(samples.jpeg())
        part = await daemon.files.image_input(tmp_path / "photo.jpg", via="data_url")
        assert part["image_url"].startswith("data:image/jpeg;base64,")
        assert posts(daemon, "/v1/files") == []


class TestTheCombinedExample:
    async def test_a_durable_image_question_streams_to_a_subscriber_then_polls_completed(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """Background + stream + image: `session.respond` (durable) with an ``input_image``,
        the events reach a subscriber gapless, and `background.poll/get` see the same response
        completed."""
        (tmp_path / "chart.png").write_bytes(samples.png(16, 16))
        with trio.fail_after(10):
            image = await daemon.files.image_input(tmp_path / "chart.png")
            question = [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "What does it show?"}, image],
                }
            ]
            async with EventRecorder.open(daemon, "session.combined") as recorder:
                session = await daemon.open_session("combined")
                ticket = await session.respond("gpt-4o", question, durable=True)
                final = await recorder.wait_terminal(ticket.response_id)
                outcome = await session.wait(ticket.stream_id, timeout=5)
            assert ticket.durable
            assert ticket.response_id is not None
            polled = await daemon.background.poll(ticket.response_id)
            tracked = await daemon.background.get(ticket.response_id)
        assert final.type == "response.completed"
        assert outcome.ok
        assert recorder.sequence_numbers(ticket.response_id) == list(
            range(final.sequence_number + 1)
        )
        assert recorder.text(ticket.response_id) == "You said: What does it show?"
        assert polled["status"] == "completed"
        assert polled["background"] is True
        assert (tracked.status, tracked.owner) == ("completed", "combined")
        created = posts(daemon, "/v1/responses")[-1]
        assert (created["background"], created["stream"], created["store"]) == (True, True, True)
        assert created["input"][0]["content"][1]["file_id"] == image["file_id"]


class TestChatWithTools:
    async def test_a_session_streams_the_tool_call_then_the_answer_to_its_result(
        self, daemon: Daemon
    ) -> None:
        """The model calls a tool; the caller runs it and sends the result back in the same
        session; the second stream answers from it."""
        messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.tools") as recorder:
                session = await daemon.open_session("tools")
                first = await session.chat("gpt-4o", messages, tools=[WEATHER_TOOL])
                outcome = await session.wait(first.stream_id, timeout=5)
                assert outcome.response is not None
                call = outcome.response["choices"][0]["message"]["tool_calls"][0]
                arguments = json.loads(call["function"]["arguments"])
                messages += [
                    outcome.response["choices"][0]["message"],
                    {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
                ]
                second = await session.chat("gpt-4o", messages, tools=[WEATHER_TOOL])
                await session.wait(second.stream_id, timeout=5)
        assert call["function"]["name"] == "get_weather"
        assert set(arguments) == {"city"}
        assert outcome.response["choices"][0]["finish_reason"] == "tool_calls"
        assert "sunny, 21C" in recorder.texts()[second.response_id]
        kinds = [sv.display_type(e) for e in recorder.events(response_id=first.response_id)]
        assert "tool_call_delta" in kinds
        assert "text_delta" not in kinds


class TestResponses:
    async def test_a_foreground_response_streams_without_background_or_registry(
        self, daemon: Daemon
    ) -> None:
        """``durable=False``: a plain streaming create; the poller never hears of it."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.fg") as recorder:
                session = await daemon.open_session("fg")
                ticket = await session.respond("gpt-4o", "Hi", durable=False)
                await recorder.wait_terminal()
            active = await daemon.background.active()
        assert not ticket.durable
        assert recorder.text() == "You said: Hi"
        assert "background" not in posts(daemon, "/v1/responses")[-1]
        assert active == []

    async def test_a_durable_response_is_tracked_then_recorded_completed(
        self, daemon: Daemon
    ) -> None:
        """The default: background + stream + store, tracked in the registry with its owner."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.dur") as recorder:
                session = await daemon.open_session("dur")
                ticket = await session.respond("gpt-4o", "Hi")
                await recorder.wait_terminal()
                await session.wait(ticket.stream_id, timeout=5)
                assert ticket.response_id is not None
                tracked = await daemon.background.get(ticket.response_id)
        assert ticket.durable
        assert recorder.text() == "You said: Hi"
        assert (tracked.owner, tracked.status) == ("dur", "completed")


class TestAgent:
    async def test_an_agent_calls_its_python_tool_and_answers_with_the_result(
        self, daemon: Daemon
    ) -> None:
        """`daemon.open_agent` with a plain function as a tool; the turn's tool call and result
        are published on ``agent.<id>``."""
        calls: list[str] = []

        def get_weather(city: str) -> str:
            """Get the current weather for a city."""
            calls.append(city)
            return f"sunny in {city}"

        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "agent.helper") as recorder:
                agent = await daemon.open_agent("helper", model="gpt-4o", tools=[get_weather])
                reply = await agent.ask("What is the weather?")
                status = await daemon.status()
        assert calls == ["sample city"]
        assert reply.text.endswith("get_weather returned sunny in sample city.")
        assert [c.name for c in reply.tool_calls] == ["get_weather"]
        kinds = {type(item).__name__ for item in recorder.items}
        assert {"ToolCall", "ToolResult", "StreamEvent"} <= kinds
        assert status.agents == 1


class TestFilesAPI:
    async def test_uploaded_files_are_listed_then_deleted(
        self, daemon: Daemon, tmp_path: Path
    ) -> None:
        """upload → list → delete → list no longer has it."""
        (tmp_path / "notes.txt").write_text("some notes\n")
        with trio.fail_after(10):
            uploaded = await daemon.files.upload(tmp_path / "notes.txt", purpose="user_data")
            listed = [f["id"] for f in await daemon.files.list()]
            deleted = await daemon.files.delete(uploaded["id"])
            after = [f["id"] for f in await daemon.files.list()]
            content_before_delete_was = uploaded["bytes"]
        assert uploaded["id"] in listed
        assert deleted["deleted"] is True
        assert uploaded["id"] not in after
        assert content_before_delete_was == len("some notes\n")
