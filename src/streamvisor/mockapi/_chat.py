"""`POST /v1/chat/completions`: chunks shaped as in the reference §2.2 and recordings 12/13."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import trio

from ._http import Request, Responder, SSEWriter, StopStream
from ._scripts import (
    Scenario,
    Script,
    count_tokens,
    is_reasoning_model,
    json_arguments_tokens,
    reply_script,
    text_of,
    tool_result_text,
)
from ._state import MockState
from ._wire import SERVER_ERROR, ApiProblem, missing_parameter

__all__ = ["REASONING_REJECTED", "check_reasoning_params", "handle_chat"]

#: Sampling parameters a reasoning model rejects with 400 `unsupported_parameter`.
REASONING_REJECTED = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
)


def unsupported_parameter(param: str) -> ApiProblem:
    message = f"Unsupported parameter: '{param}' is not supported with this model."
    if param == "max_tokens":
        message += " Use 'max_completion_tokens' instead."
    return ApiProblem(400, message, param=param, code="unsupported_parameter")


def check_reasoning_params(body: Mapping[str, Any], model: str, effort: object) -> None:
    """Raise the 400 a reasoning model gives for sampling parameters (and `max_tokens`)."""
    if not is_reasoning_model(model, effort):
        return
    for param in (*REASONING_REJECTED, "max_tokens"):
        if body.get(param) is not None:
            raise unsupported_parameter(param)


def _tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = []
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping) and tool.get("type") == "function":
            fn = tool.get("function") or {}
            if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
                tools.append(fn)
    return tools


def build_script(state: MockState, body: Mapping[str, Any], scenario: Scenario) -> Script:
    messages = body["messages"]
    last = messages[-1] if messages else {}
    if isinstance(last, Mapping) and last.get("role") == "tool":
        names: dict[str, str] = {}
        for message in messages:
            for call in (message.get("tool_calls") or []) if isinstance(message, Mapping) else []:
                names[call.get("id", "")] = (call.get("function") or {}).get("name", "")
        outputs = []
        for message in reversed(messages):
            if not isinstance(message, Mapping) or message.get("role") != "tool":
                break
            name = names.get(message.get("tool_call_id", ""), "")
            outputs.append((name, text_of(message.get("content"))))
        return Script("text", tool_result_text(list(reversed(outputs))))
    script = reply_script(
        messages,
        scenario,
        _tools(body),
        body.get("tool_choice"),
        body.get("parallel_tool_calls", True),
        state.ids,
    )
    state.note_made_up((c.call_id, c.made_up) for c in script.tool_calls)
    return script


def _validate(body: Mapping[str, Any]) -> tuple[str, list[Any]]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiProblem(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise missing_parameter("messages")
    if body.get("stream_options") is not None and not body.get("stream"):
        raise ApiProblem(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    n = body.get("n", 1)
    if not isinstance(n, int) or n < 1 or n > 128:
        raise ApiProblem(400, f"{n!r} is not valid for 'n'.", param="n", code="invalid_value")
    return model, messages


async def handle_chat(
    state: MockState,
    request: Request,
    responder: Responder,
    body: dict[str, Any],
    scenario: Scenario,
    token_delay: float,
) -> None:
    """Answer one Chat Completions request, streamed or not. Raises `ApiProblem` for a 400."""
    model, _messages = _validate(body)
    check_reasoning_params(body, model, body.get("reasoning_effort"))
    script = build_script(state, body, scenario)
    n = int(body.get("n", 1))
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    tokens = script.tokens
    finish = "tool_calls" if script.kind == "tools" else "stop"
    if scenario.name == "incomplete":
        tokens = tokens[: max(1, len(tokens) // 2)]
        finish = "length"
    if isinstance(limit, int) and script.kind != "tools" and len(tokens) > limit:
        tokens = tokens[:limit]
        finish = "length"
    completion_tokens = n * (
        len(tokens)
        if script.kind != "tools"
        else sum(len(json_arguments_tokens(c.arguments)) + 3 for c in script.tool_calls)
    )
    reasoning_tokens = 16 if is_reasoning_model(model, body.get("reasoning_effort")) else 0
    prompt_tokens = count_tokens(body["messages"]) + 3
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens + reasoning_tokens,
        "total_tokens": prompt_tokens + completion_tokens + reasoning_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    completion_id = state.ids.alnum("chatcmpl-", 29)
    created = int(time.time())
    fingerprint = "fp_" + state.ids.hex("", 10)
    if not body.get("stream"):
        if script.kind == "failed":
            raise ApiProblem(
                500,
                SERVER_ERROR,
                "server_error",
            )
        await trio.sleep(token_delay * len(tokens))
        text = "".join(tokens)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if script.kind == "text" else None,
            "refusal": text if script.kind == "refusal" else None,
            "annotations": [],
        }
        if script.kind == "tools":
            message["tool_calls"] = [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in script.tool_calls
            ]
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }
        await responder.json(200, completion)
        return

    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage"))
    obfuscate = options.get("include_obfuscation", True) is not False
    writer = SSEWriter(responder, "chat")
    counter = 0

    async def chunk(choices: list[dict[str, Any]], usage_value: Any = None) -> None:
        nonlocal counter
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
            "choices": choices,
        }
        if include_usage:
            payload["usage"] = usage_value
        if obfuscate:
            payload["obfuscation"] = state.ids.obfuscation(f"{completion_id}:{counter}")
        counter += 1
        await writer.send(payload)

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> Any:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

    await writer.open()
    if script.kind == "tools":
        for call_index, call in enumerate(script.tool_calls):
            head = {
                "index": call_index,
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            for i in range(n):
                delta: dict[str, Any] = {"tool_calls": [head]}
                if call_index == 0:
                    delta = {"role": "assistant", "content": None, **delta, "refusal": None}
                await chunk([choice(i, delta)])
            for piece in json_arguments_tokens(call.arguments):
                await trio.sleep(token_delay)
                for i in range(n):
                    args = {"index": call_index, "function": {"arguments": piece}}
                    await chunk([choice(i, {"tool_calls": [args]})])
    else:
        field = "refusal" if script.kind == "refusal" else "content"
        for i in range(n):
            first = (
                {"role": "assistant", "content": None, "refusal": ""}
                if field == "refusal"
                else {"role": "assistant", "content": "", "refusal": None}
            )
            await chunk([choice(i, first)])
        for position, token in enumerate(tokens):
            if script.kind == "failed" and position == max(1, len(tokens) // 2):
                await writer.send_error()
                raise StopStream
            await trio.sleep(token_delay)
            for i in range(n):
                await chunk([choice(i, {field: token})])
        if script.kind == "failed":
            await writer.send_error()
            raise StopStream
    for i in range(n):
        await chunk([choice(i, {}, finish)])
    if include_usage:
        await chunk([], usage)
    await writer.done()
    await responder.finish()
