"""The official SDK (a test dependency) assembles the same chat completions from the recordings."""

from __future__ import annotations

from typing import Any

import pytest
from openai.lib.streaming.chat._completions import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from streamvisor.openai import ChatAccumulator
from tests._recorded import RECORDED

from .conftest import frames

CHAT = sorted(p.name for p in RECORDED.glob("*_chat_*.sse"))


def essentials(completion: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": completion["id"],
        "model": completion["model"],
        "created": completion["created"],
        "system_fingerprint": completion.get("system_fingerprint"),
        "usage": completion.get("usage"),
        "choices": [
            {
                "index": c["index"],
                "finish_reason": c["finish_reason"],
                "content": c["message"].get("content"),
                "refusal": c["message"].get("refusal"),
                "tool_calls": [
                    (t["id"], t["type"], t["function"]["name"], t["function"]["arguments"])
                    for t in c["message"].get("tool_calls") or []
                ],
            }
            for c in completion["choices"]
        ],
    }


@pytest.mark.parametrize("name", CHAT)
def test_our_chat_completion_matches_the_sdks(name: str) -> None:
    chunks = frames((RECORDED / name).read_bytes())
    sdk = ChatCompletionStreamState()
    ours = ChatAccumulator()
    for chunk in chunks:
        sdk.handle_chunk(ChatCompletionChunk.model_validate(chunk))
        ours.feed_chunk(chunk)
    ours.finish()
    # (get_final_completion() raises on finish_reason "length"; the snapshot does not.)
    theirs = sdk.current_completion_snapshot.model_dump(exclude_unset=True)
    assert ours.result is not None
    want = essentials(theirs)
    got = essentials(ours.result)
    if want["usage"] is not None:
        # The SDK's model fills defaults; compare what the wire carried.
        got_usage = got.pop("usage")
        want.pop("usage")
        assert got_usage == chunks[-1]["usage"]
    assert got == want
