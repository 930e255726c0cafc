"""`/v1/responses`: create (foreground or background, streamed or not), poll, cancel, delete,
and resume with `GET ?stream=true&starting_after=N` (generation itself is in `_generation`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping
from typing import Any

import trio

from ._chat import REASONING_REJECTED, unsupported_parameter
from ._generation import Pause, Plan, drive, follow, run_background, steps
from ._http import ConnectionDropped, Request, Responder, SSEWriter
from ._scripts import (
    Scenario,
    Script,
    count_tokens,
    is_reasoning_model,
    reply_script,
    text_of,
    tool_result_text,
)
from ._state import MockState, StoredResponse
from ._wire import ApiProblem, missing_parameter, query_limit

__all__ = [
    "handle_cancel",
    "handle_create",
    "handle_delete",
    "handle_input_items",
    "handle_retrieve",
]

NOT_BACKGROUND_STREAM = (
    "This response cannot be streamed because it was not created with background=true."
)


def _function_tools(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        t
        for t in body.get("tools") or []
        if isinstance(t, Mapping) and t.get("type") == "function" and isinstance(t.get("name"), str)
    ]


def _validate(state: MockState, body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise missing_parameter("model")
    if "max_tokens" in body:
        raise ApiProblem(
            400, "Unknown parameter: 'max_tokens'.", param="max_tokens", code="unknown_parameter"
        )
    limit = body.get("max_output_tokens")
    if limit is not None and (not isinstance(limit, int) or limit < 16):
        raise ApiProblem(
            400,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16,"
            f" but got {limit} instead.",
            param="max_output_tokens",
            code="integer_below_min_value",
        )
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 2:
        below = temperature < 0
        raise ApiProblem(
            400,
            f"Invalid 'temperature': decimal {'below minimum' if below else 'above maximum'}"
            f" value. Expected a value {'>= 0' if below else '<= 2'}, but got {temperature}"
            " instead.",
            param="temperature",
            code="decimal_below_min_value" if below else "decimal_above_max_value",
        )
    reasoning = body.get("reasoning") or {}
    if is_reasoning_model(
        model, reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    ):
        for param in REASONING_REJECTED:
            if body.get(param) is not None:
                raise unsupported_parameter(param)
    previous = body.get("previous_response_id")
    if previous is not None and state.live_response(str(previous)) is None:
        raise ApiProblem(
            400,
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return model


def _build_script(state: MockState, body: Mapping[str, Any], scenario: Scenario) -> Script:
    items = body.get("input")
    if isinstance(items, str) or items is None:
        items = [{"role": "user", "content": items or ""}]
    if not isinstance(items, list):
        raise ApiProblem(400, "Invalid type for 'input'.", param="input", code="invalid_type")
    names: dict[str, str] = {}
    previous = body.get("previous_response_id")
    if previous is not None:
        stored = state.responses.get(str(previous))
        for item in stored.response.get("output", []) if stored else []:
            if item.get("type") == "function_call":
                names[item.get("call_id", "")] = item.get("name", "")
    for item in items:
        if isinstance(item, Mapping) and item.get("type") == "function_call":
            names[str(item.get("call_id", ""))] = str(item.get("name", ""))
    trailing: list[tuple[str, str]] = []
    for item in reversed(items):
        if not isinstance(item, Mapping) or item.get("type") in ("reasoning", "function_call"):
            continue
        if item.get("type") != "function_call_output":
            break
        output = item.get("output")
        trailing.append(
            (
                names.get(str(item.get("call_id", "")), ""),
                output if isinstance(output, str) else text_of(output),
            )
        )
    if trailing:
        return Script("text", tool_result_text(list(reversed(trailing))))
    script = reply_script(
        items,
        scenario,
        _function_tools(body),
        body.get("tool_choice"),
        body.get("parallel_tool_calls", True) is not False,
        state.ids,
        reasoning=True,
    )
    state.note_made_up((c.call_id, c.made_up) for c in script.tool_calls)
    return script


def _metadata_ms(body: Mapping[str, Any], key: str) -> float | None:
    metadata = body.get("metadata") or {}
    value = metadata.get(key) if isinstance(metadata, Mapping) else None
    if value is None:
        return None
    try:
        return float(value) / 1000.0
    except (TypeError, ValueError):
        raise ApiProblem(400, f"metadata[{key!r}] must be a number of milliseconds") from None


def _plan(
    state: MockState, body: Mapping[str, Any], model: str, scenario: Scenario, token_delay: float
) -> Plan:
    script = _build_script(state, body, scenario)
    reasoning_param = body.get("reasoning") or {}
    effort = reasoning_param.get("effort") if isinstance(reasoning_param, Mapping) else None
    summary = reasoning_param.get("summary") if isinstance(reasoning_param, Mapping) else None
    reasons = scenario.name == "reasoning" or is_reasoning_model(model, effort)
    wants_summary = scenario.name == "reasoning" or summary is not None
    wanted = script.kind == "text" and reasons and wants_summary
    parts = script.reasoning if wanted else ()
    budget: float = body.get("max_output_tokens") or math.inf
    if scenario.name == "incomplete":
        budget = max(1, len(script.tokens) // 2)
    queue = _metadata_ms(body, "mock_queue_ms")
    stall = _metadata_ms(body, "mock_stall_ms")
    options = body.get("stream_options") or {}
    instructions = body.get("instructions")
    return Plan(
        script=script,
        reasoning=reasons,
        reasoning_summary=parts,
        encrypted="reasoning.encrypted_content" in (body.get("include") or []),
        budget=budget,
        token_delay=token_delay,
        queue_delay=state.config.queue_delay if queue is None else queue,
        stall=stall or 0.0,
        obfuscate=not body.get("background")
        and isinstance(options, Mapping)
        and options.get("include_obfuscation", True) is not False,
        input_tokens=count_tokens(body.get("input")) + count_tokens(instructions) + 7,
    )


def _response_object(
    rid: str, body: Mapping[str, Any], model: str, background: bool, store: bool, reasons: bool
) -> dict[str, Any]:
    reasoning = body.get("reasoning") or {}
    tools = []
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            echoed = dict(tool)
            if echoed.get("type") == "function":
                echoed.setdefault("description", None)
                echoed.setdefault("strict", True)
            tools.append(echoed)
    text = body.get("text") or {}
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "queued" if background else "in_progress",
        "background": background,
        "completed_at": None,
        "error": None,
        "frequency_penalty": 0.0,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "presence_penalty": 0.0,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "prompt_cache_retention": None,
        "reasoning": {
            "effort": reasoning.get("effort", "medium" if reasons else None),
            "summary": reasoning.get("summary"),
        },
        "safety_identifier": body.get("safety_identifier"),
        "service_tier": body.get("service_tier") or "auto",
        "store": store,
        "temperature": 1.0 if reasons else float(body.get("temperature", 1.0)),
        "text": {
            "format": text.get("format", {"type": "text"}),
            "verbosity": text.get("verbosity", "medium"),
        },
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": tools,
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if reasons else float(body.get("top_p", 1.0)),
        "truncation": body.get("truncation", "disabled"),
        "usage": None,
        "user": body.get("user"),
        "metadata": dict(body.get("metadata") or {}),
    }


async def handle_create(
    state: MockState,
    request: Request,
    responder: Responder,
    body: dict[str, Any],
    scenario: Scenario,
    token_delay: float,
) -> None:
    """`POST /v1/responses`. Raises `ApiProblem` for a 4xx."""
    model = _validate(state, body)
    plan = _plan(state, body, model, scenario, token_delay)
    background = bool(body.get("background"))
    store = body.get("store")
    stored_flag = (store is True) if background else (store is not False)
    rid = state.ids.hex("resp_")
    stored = StoredResponse(
        id=rid,
        response=_response_object(rid, body, model, background, stored_flag, plan.reasoning),
        background=background,
        store=stored_flag,
        created_at=trio.current_time(),
    )
    stored.input_items = _input_items(state, body)
    state.responses[rid] = stored
    events = steps(state, stored, plan)
    if background:
        if state.nursery is None:
            raise ApiProblem(500, "background mode needs the server's nursery", "server_error")
        # `created` and `queued` are logged before the reply, as the API does.
        for step in (next(events), next(events)):
            assert not isinstance(step, Pause)
            stored.append(step)
        stored.cancel_scope = trio.CancelScope()
        state.nursery.start_soon(run_background, state, stored, events)
        if body.get("stream"):
            writer = SSEWriter(responder, "responses")
            await writer.open()
            await follow(stored, -1, writer)
            await responder.finish()
        else:
            await responder.json(200, copy.deepcopy(stored.response))
        return
    if body.get("stream"):
        writer = SSEWriter(responder, "responses")
        await writer.open()
        broken: list[BaseException] = []

        async def emit(event: dict[str, Any]) -> None:
            if broken:
                return
            try:
                await writer.send(event)
            except ConnectionDropped as exc:
                broken.append(exc)

        await drive(state, stored, events, emit)
        if broken:
            raise broken[0]
        await responder.finish()
        return
    await drive(state, stored, events, None)
    await responder.json(200, copy.deepcopy(stored.response))


def _input_items(state: MockState, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's input as the API stores it: every item typed, with an id and a status."""
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else list(raw or [])
    stored: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            stored.append(
                {
                    "id": item.get("id") or state.ids.hex("msg_"),
                    "type": "message",
                    "role": item.get("role", "user"),
                    "status": "completed",
                    "content": content,
                }
            )
        elif kind == "function_call_output":
            stored.append(
                {"id": item.get("id") or state.ids.hex("fco_"), "status": "completed", **item}
            )
        else:
            stored.append({"id": item.get("id") or state.ids.hex("item_"), **item})
    return stored


def _lookup(state: MockState, response_id: str) -> StoredResponse:
    stored = state.live_response(response_id)
    if stored is None:
        raise ApiProblem(404, f"Response with id '{response_id}' not found.", param=None)
    return stored


async def handle_retrieve(
    state: MockState, request: Request, responder: Responder, response_id: str
) -> None:
    """`GET /v1/responses/{id}` (JSON, or `?stream=true&starting_after=N`)."""
    stored = _lookup(state, response_id)
    if request.query.get("stream", "false").lower() == "true":
        if not stored.background:
            raise ApiProblem(400, NOT_BACKGROUND_STREAM)
        raw = request.query.get("starting_after")
        try:
            after = -1 if raw is None else int(raw)
        except ValueError:
            raise ApiProblem(
                400,
                f"Invalid 'starting_after': expected an integer, but got '{raw}' instead.",
                param="starting_after",
                code="invalid_type",
            ) from None
        writer = SSEWriter(responder, "responses")
        await writer.open()
        await follow(stored, after, writer)
        await responder.finish()
        return
    await responder.json(
        200,
        copy.deepcopy(stored.response),
        {"openai-poll-after-ms": str(state.config.poll_after_ms)},
    )


async def handle_input_items(
    state: MockState, request: Request, responder: Responder, response_id: str
) -> None:
    """`GET /v1/responses/{id}/input_items?after=&limit=&order=` (cursor pagination)."""
    stored = _lookup(state, response_id)
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiProblem(400, f"Invalid value for 'order': '{order}'.", param="order")
    limit = query_limit(query, 20, 100)
    items = list(stored.input_items)
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ApiProblem(400, f"Item with id '{after}' not found.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    await responder.json(
        200,
        {
            "object": "list",
            "data": copy.deepcopy(page),
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        },
    )


async def handle_delete(
    state: MockState, request: Request, responder: Responder, response_id: str
) -> None:
    """`DELETE /v1/responses/{id}`: stops a running background response and forgets it."""
    stored = _lookup(state, response_id)
    if stored.cancel_scope is not None:
        stored.cancel_scope.cancel()
    del state.responses[response_id]
    await responder.json(200, {"id": response_id, "object": "response", "deleted": True})


async def handle_cancel(
    state: MockState, request: Request, responder: Responder, response_id: str
) -> None:
    """`POST /v1/responses/{id}/cancel` with the real status matrix (reference §4)."""
    stored = _lookup(state, response_id)
    if not stored.background:
        raise ApiProblem(400, "Only responses created with background=true can be cancelled.")
    status = stored.status
    if status in ("queued", "in_progress"):
        stored.response["status"] = "cancelled"
        if stored.cancel_scope is not None:
            stored.cancel_scope.cancel()
        stored.finish()
    elif status != "cancelled":
        article = "an" if status == "incomplete" else "a"
        raise ApiProblem(400, f"Cannot cancel {article} {status} response.")
    await responder.json(200, copy.deepcopy(stored.response))
