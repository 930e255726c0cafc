"""The chat chunks ``/v1`` rebuilds from a session's events, checked against real recordings:
what an SDK assembles from them is what it assembles from the API's own chunks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from streamvisor.gateway._v1_wire import ChatChunks, client_view, sse_event
from streamvisor.openai import ChatAccumulator
from tests._json_values import strict_json
from tests._recorded import RECORDED

CHAT_RECORDINGS = sorted(p.name for p in RECORDED.glob("*_chat_*.sse"))


def recorded_chunks(name: str) -> list[dict[str, Any]]:
    lines = (RECORDED / name).read_text().splitlines()
    return [
        json.loads(line[len("data: ") :])
        for line in lines
        if line.startswith("data: ") and line != "data: [DONE]"
    ]


def relayed(chunks: list[dict[str, Any]], *, include_usage: bool) -> tuple[list[str], Any]:
    """The frames `ChatChunks` sends for the events the session publishes for ``chunks``."""
    acc = ChatAccumulator(session_id="s")
    encoder = ChatChunks(include_usage=include_usage, obfuscate=False)
    frames: list[str] = []
    for chunk in chunks:
        for event in acc.feed_chunk(chunk, now=0.0):
            frames.extend(encoder.frames(event))
    frames.extend(encoder.frames(acc.finish()))
    return frames, acc.result


def sdk_final(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    state: ChatCompletionStreamState[Any] = ChatCompletionStreamState()
    for chunk in chunks:
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
    final = state.current_completion_snapshot.model_dump(exclude_none=True)
    final.pop("usage", None)
    return dict(final)


@pytest.mark.parametrize("name", CHAT_RECORDINGS)
def test_the_sdk_assembles_the_same_completion_from_the_relayed_chunks(name: str) -> None:
    original = recorded_chunks(name)
    frames, _ = relayed(original, include_usage=False)
    assert frames[-1] == "data: [DONE]\n\n"
    rebuilt = [json.loads(f[len("data: ") :]) for f in frames[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in rebuilt)
    assert sdk_final(rebuilt) == sdk_final(original)


@pytest.mark.parametrize("name", CHAT_RECORDINGS)
def test_usage_is_the_last_chunk_only_when_asked(name: str) -> None:
    original = recorded_chunks(name)
    frames, result = relayed(original, include_usage=True)
    last = json.loads(frames[-2][len("data: ") :])
    assert last["choices"] == []
    assert last["usage"] == result["usage"]
    without, _ = relayed(original, include_usage=False)
    assert all('"usage"' not in f for f in without)


def test_each_chunk_is_padded_unless_the_client_said_no() -> None:
    original = recorded_chunks("02_chat_text_usage.sse")
    acc = ChatAccumulator()
    padded = ChatChunks(include_usage=False)
    frames = [f for c in original for e in acc.feed_chunk(c, now=0.0) for f in padded.frames(e)]
    pads = [json.loads(f[len("data: ") :])["obfuscation"] for f in frames]
    assert all(1 <= len(p) <= 15 and p.isalnum() for p in pads)
    assert len(set(pads)) > 1


def test_the_chunks_are_the_apis_own_ones() -> None:
    """One chunk per API chunk: the opening chunk, each piece, the finish (no usage asked)."""
    original = recorded_chunks("02_chat_text_usage.sse")
    frames, _ = relayed(original, include_usage=False)
    rebuilt = [json.loads(f[len("data: ") :]) for f in frames[:-1]]
    assert [c["choices"] for c in rebuilt] == [c["choices"] for c in original if c["choices"]]


def test_an_error_frame_is_the_apis_error_body() -> None:
    acc = ChatAccumulator()
    encoder = ChatChunks(include_usage=False, obfuscate=False)
    events = acc.feed_chunk({"error": {"message": "boom", "type": "server_error"}}, now=0.0)
    (frame,) = encoder.frames(events[0])
    assert json.loads(frame[len("data: ") :]) == {
        "error": {"message": "boom", "type": "server_error"}
    }


def test_a_lone_surrogate_is_relayed_as_the_escape_it_came_as() -> None:
    """Half an emoji ("\\ud83d" in the server's JSON) reaches a /v1 client as that escape,
    valid UTF-8 on the wire, not as an encode error that ends the relay."""
    data = json.loads('{"type": "response.output_text.delta", "delta": "a\\ud83d"}')
    frame = sse_event("response.output_text.delta", data)
    assert "\\ud83d" in frame
    assert json.loads(frame.split("data: ", 1)[1]) == data
    frame.encode()  # strict UTF-8
    plain = sse_event("response.output_text.delta", {"delta": "é🙂"})
    assert "é🙂" in plain  # UTF-8 as is otherwise


def test_a_number_json_has_no_word_for_is_relayed_as_null() -> None:
    """``NaN`` / ``Infinity`` in a server's frame (Python's json reads them; no JSON parser
    of another language does) reach a /v1 client as ``null``, as ``JSON.stringify`` writes
    them, so that the Node SDK can parse the frame; finite numbers are untouched."""
    data = json.loads(
        '{"type": "response.output_text.delta", "delta": "a", "logprob": NaN,'
        ' "top": [{"p": Infinity}, -Infinity, 1.5e300, 2], "n": {"k": [NaN]}}'
    )
    frame = sse_event("response.output_text.delta", data)
    assert strict_json(frame.split("data: ", 1)[1]) == {
        "type": "response.output_text.delta",
        "delta": "a",
        "logprob": None,
        "top": [{"p": None}, None, 1.5e300, 2],
        "n": {"k": [None]},
    }


class TestClientView:
    def test_a_background_client_gets_the_frames_as_sent(self) -> None:
        data = {"type": "response.queued", "response": {"background": True}}
        assert client_view("response.queued", data, background=True) is data

    def test_a_plain_client_gets_no_background_only_events(self) -> None:
        assert client_view("response.queued", {}, background=False) is None
        assert client_view("keepalive", {}, background=False) is None

    def test_a_plain_client_sees_its_own_background_value(self) -> None:
        data = {"response": {"background": True, "status": "queued"}, "sequence_number": 0}
        view = client_view("response.created", data, background=False)
        assert view is not None
        assert view["response"] == {"background": False, "status": "in_progress"}
        assert data["response"]["background"] is True  # the logged frame is not changed
