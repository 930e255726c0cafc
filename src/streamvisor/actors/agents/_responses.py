"""How an `Agent` reads the two APIs' final responses: the status, the answer (or refusal), the
function calls asked for, and the items or message to replay in the next request.

Responses output items are replayed without their server ``id``/``status``; reasoning items only
when they carry ``encrypted_content`` (see the design decisions in ``_agent.py``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["Api", "chat_outcome", "responses_outcome", "responses_replay", "status_of"]

Api = Literal["chat", "responses"]


def status_of(api: Api, final: Mapping[str, Any]) -> str:
    """The final response's status: the Response's own, or for Chat ``incomplete`` when a choice
    stopped on ``length`` or ``content_filter`` (``completed`` otherwise)."""
    if api == "responses":
        status = final.get("status")
        return status if isinstance(status, str) else "unknown"
    choices = final.get("choices") or []
    reasons = {c.get("finish_reason") for c in choices if isinstance(c, Mapping)}
    return "incomplete" if reasons & {"length", "content_filter"} else "completed"


def responses_outcome(
    final: Mapping[str, Any],
) -> tuple[str, bool, list[tuple[str, str, str]]]:
    """A final Response's answer, whether it is a refusal (only when there is no output text),
    and the function calls asked for as ``(call_id, name, arguments)``."""
    texts: list[str] = []
    refusals: list[str] = []
    calls: list[tuple[str, str, str]] = []
    for item in final.get("output") or ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, Mapping):
                    if part.get("type") == "output_text":
                        texts.append(str(part.get("text") or ""))
                    elif part.get("type") == "refusal":
                        refusals.append(str(part.get("refusal") or ""))
        elif kind == "function_call":
            calls.append(
                (
                    str(item.get("call_id") or ""),
                    str(item.get("name") or ""),
                    str(item.get("arguments") or ""),
                )
            )
    if texts or not refusals:
        return "".join(texts), False, calls
    return "".join(refusals), True, calls


def responses_replay(final: Mapping[str, Any], *, keep_calls: bool) -> list[dict[str, Any]]:
    """The response's output items as input items for the next request (see module doc)."""
    out: list[dict[str, Any]] = []
    for item in final.get("output") or ():
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "function_call":
            if not keep_calls:
                continue
            out.append(
                {
                    "type": "function_call",
                    "call_id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments") or "",
                }
            )
        elif kind == "message":
            content = []
            for part in item.get("content") or ():
                if isinstance(part, Mapping) and part.get("type") == "output_text":
                    content.append({"type": "output_text", "text": part.get("text") or ""})
                elif isinstance(part, Mapping) and part.get("type") == "refusal":
                    content.append({"type": "refusal", "refusal": part.get("refusal") or ""})
            out.append({"type": "message", "role": "assistant", "content": content})
        elif kind == "reasoning":
            if item.get("encrypted_content"):
                out.append(
                    {
                        "type": "reasoning",
                        "id": item.get("id"),
                        "summary": copy.deepcopy(item.get("summary") or []),
                        "encrypted_content": item["encrypted_content"],
                    }
                )
        else:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if k != "status"})
    return out


def chat_outcome(
    final: Mapping[str, Any],
) -> tuple[str, bool, list[tuple[str, str, str]], dict[str, Any]]:
    """A final chat completion's answer, refusal flag and function calls (as in
    `responses_outcome`), and the assistant message to replay in the next request."""
    choices = final.get("choices") or []
    first = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    message = first.get("message") or {}
    content = message.get("content")
    refusal = message.get("refusal")
    calls: list[tuple[str, str, str]] = []
    replay: dict[str, Any] = {"role": "assistant", "content": content}
    tool_calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        call_id = str(call.get("id") or "")
        name = str(fn.get("name") or "")
        arguments = str(fn.get("arguments") or "")
        calls.append((call_id, name, arguments))
        tool_calls.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    if tool_calls:
        replay["tool_calls"] = tool_calls
    if refusal and not content:
        replay["refusal"] = refusal
        return str(refusal), True, calls, replay
    return str(content or ""), False, calls, replay
