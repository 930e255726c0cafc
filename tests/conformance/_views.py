"""Comparable views of accumulated results: streamvisor's dicts and the official SDK's models."""

from __future__ import annotations

from typing import Any

__all__ = ["our_chat", "sdk_chat"]


def our_chat(completion: dict[str, Any]) -> dict[str, Any]:
    """What a chat completion says: per choice content, refusal, tool calls and finish reason;
    usage; identity."""
    return {
        "id": completion["id"],
        "model": completion["model"],
        "usage": completion.get("usage"),
        "choices": [
            {
                "index": choice["index"],
                "content": choice["message"].get("content"),
                "refusal": choice["message"].get("refusal"),
                "tool_calls": [
                    (c["id"], c["type"], c["function"]["name"], c["function"]["arguments"])
                    for c in choice["message"].get("tool_calls") or []
                ],
                "finish_reason": choice["finish_reason"],
            }
            for choice in completion["choices"]
        ],
    }


def sdk_chat(completion: Any) -> dict[str, Any]:
    """The same view of the SDK's accumulated `ChatCompletion` (usage as the server sent it)."""
    usage = completion.usage
    return {
        "id": completion.id,
        "model": completion.model,
        "usage": None if usage is None else usage.model_dump(mode="json", exclude_unset=True),
        "choices": [
            {
                "index": choice.index,
                "content": choice.message.content,
                "refusal": choice.message.refusal,
                "tool_calls": [
                    (c.id, c.type, c.function.name, c.function.arguments)
                    for c in choice.message.tool_calls or []
                ],
                "finish_reason": choice.finish_reason,
            }
            for choice in completion.choices
        ],
    }
