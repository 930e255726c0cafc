"""Generating a Responses API response as an event log, paced with trio.

A response is a plain (synchronous) generator of steps — events and pauses — built by `steps()`
from a `Plan`; `drive()` paces it and appends each event to the response's log, whose index is the
event's `sequence_number`. Foreground streams send each event as it is logged; background
responses are driven by a task in the server's nursery, and readers `follow()` the log.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

from ._http import SSEWriter
from ._scripts import Script, json_arguments_tokens
from ._state import TERMINAL_STATUSES, MockState, StoredResponse
from ._wire import SERVER_ERROR, split_tokens

__all__ = ["Emit", "Pause", "Plan", "Step", "drive", "follow", "run_background", "steps"]


@attrs.frozen
class Pause:
    """A step of generation: wait this long (keepalives are logged in background mode)."""

    seconds: float


Step = dict[str, Any] | Pause


@attrs.frozen
class Plan:
    """Everything generation needs, decided from the request before the first event."""

    script: Script
    reasoning: bool
    reasoning_summary: tuple[str, ...]
    encrypted: bool
    budget: float
    token_delay: float
    queue_delay: float
    stall: float
    obfuscate: bool
    input_tokens: int


def _item_added(out: list[dict[str, Any]], item: dict[str, Any]) -> dict[str, Any]:
    """Append ``item`` to the response's ``output``; its ``response.output_item.added`` event."""
    index = len(out)
    out.append(item)
    return {
        "type": "response.output_item.added",
        "output_index": index,
        "item": copy.deepcopy(item),
    }


def steps(state: MockState, stored: StoredResponse, plan: Plan) -> Iterator[Step]:
    """The response's events and pauses, updating `stored.response` as they are produced."""
    r = stored.response
    ids = state.ids

    def lifecycle(type_: str) -> dict[str, Any]:
        return {"type": type_, "response": copy.deepcopy(r)}

    def obfuscated(event: dict[str, Any]) -> dict[str, Any]:
        if plan.obfuscate:
            event["obfuscation"] = ids.obfuscation(f"{stored.id}:{len(stored.events)}")
        return event

    yield lifecycle("response.created")
    if stored.background:
        yield lifecycle("response.queued")
        if plan.queue_delay:
            yield Pause(plan.queue_delay)
        r["status"] = "in_progress"
    yield lifecycle("response.in_progress")
    if plan.stall:
        yield Pause(plan.stall)
    script = plan.script
    if script.kind == "failed":
        yield Pause(plan.token_delay)
        r["status"] = "failed"
        r["error"] = {"code": "server_error", "message": SERVER_ERROR}
        yield lifecycle("response.failed")
        return
    budget = plan.budget
    used = 0
    reasoning_tokens = 0
    out = r["output"]
    cut = False

    if plan.reasoning:
        rs: dict[str, Any] = {"id": ids.hex("rs_"), "type": "reasoning", "summary": []}
        if plan.encrypted:
            rs["encrypted_content"] = "gAAAAA" + ids.hex("", 64)
        index = len(out)
        yield _item_added(out, rs)
        if not plan.reasoning_summary:
            reasoning_tokens += 16
            used += 16
        for s_index, summary in enumerate(plan.reasoning_summary):
            if used >= budget:
                cut = True
                break
            part: dict[str, Any] = {"type": "summary_text", "text": ""}
            rs["summary"].append(part)
            common = {"item_id": rs["id"], "output_index": index, "summary_index": s_index}
            yield {"type": "response.reasoning_summary_part.added", **common, "part": dict(part)}
            for token in split_tokens(summary):
                if used >= budget:
                    cut = True
                    break
                yield Pause(plan.token_delay)
                part["text"] += token
                used += 1
                reasoning_tokens += 1
                yield obfuscated(
                    {"type": "response.reasoning_summary_text.delta", **common, "delta": token}
                )
            yield {"type": "response.reasoning_summary_text.done", **common, "text": part["text"]}
            yield {"type": "response.reasoning_summary_part.done", **common, "part": dict(part)}
        yield {
            "type": "response.output_item.done",
            "output_index": index,
            "item": copy.deepcopy(rs),
        }

    if script.kind == "tools" and not cut:
        for call in script.tool_calls:
            fc: dict[str, Any] = {
                "id": ids.hex("fc_"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call.call_id,
                "name": call.name,
            }
            index = len(out)
            yield _item_added(out, fc)
            for piece in json_arguments_tokens(call.arguments):
                yield Pause(plan.token_delay)
                fc["arguments"] += piece
                used += 1
                yield obfuscated(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": fc["id"],
                        "output_index": index,
                        "delta": piece,
                    }
                )
            yield {
                "type": "response.function_call_arguments.done",
                "item_id": fc["id"],
                "output_index": index,
                "arguments": fc["arguments"],
                "name": fc["name"],
            }
            fc["status"] = "completed"
            yield {
                "type": "response.output_item.done",
                "output_index": index,
                "item": copy.deepcopy(fc),
            }
    elif not cut:
        refusal = script.kind == "refusal"
        msg: dict[str, Any] = {
            "id": ids.hex("msg_"),
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        }
        index = len(out)
        yield _item_added(out, msg)
        part = (
            {"type": "refusal", "refusal": ""}
            if refusal
            else {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        )
        msg["content"].append(part)
        common = {"item_id": msg["id"], "output_index": index, "content_index": 0}
        yield {"type": "response.content_part.added", **common, "part": copy.deepcopy(part)}
        field = "refusal" if refusal else "text"
        for token in script.tokens:
            if used >= budget:
                cut = True
                break
            yield Pause(plan.token_delay)
            part[field] += token
            used += 1
            if refusal:
                yield obfuscated({"type": "response.refusal.delta", **common, "delta": token})
            else:
                yield obfuscated(
                    {"type": "response.output_text.delta", **common, "delta": token, "logprobs": []}
                )
        if refusal:
            yield {"type": "response.refusal.done", **common, "refusal": part["refusal"]}
        else:
            yield {
                "type": "response.output_text.done",
                **common,
                "text": part["text"],
                "logprobs": [],
            }
        yield {"type": "response.content_part.done", **common, "part": copy.deepcopy(part)}
        msg["status"] = "incomplete" if cut else "completed"
        yield {
            "type": "response.output_item.done",
            "output_index": index,
            "item": copy.deepcopy(msg),
        }

    r["usage"] = {
        "input_tokens": plan.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": used,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": plan.input_tokens + used,
    }
    if r["service_tier"] == "auto":
        r["service_tier"] = "default"
    if cut:
        r["status"] = "incomplete"
        r["incomplete_details"] = {"reason": "max_output_tokens"}
        yield lifecycle("response.incomplete")
    else:
        r["status"] = "completed"
        r["completed_at"] = int(time.time())
        yield lifecycle("response.completed")


Emit = Callable[[dict[str, Any]], Awaitable[None]]


async def drive(
    state: MockState, stored: StoredResponse, steps: Iterator[Step], emit: Emit | None
) -> None:
    """Pace `steps`, logging each event (and sending it with `emit`, for foreground streams).

    If a foreground stream breaks or is cancelled, the rest is generated at once, as the server
    would go on without the client; a background response stops only when cancelled.
    """
    keepalive = state.config.keepalive_interval
    try:
        for step in steps:
            if isinstance(step, Pause):
                await _pause(stored, step.seconds, keepalive)
                continue
            event = stored.append(step)
            if emit is not None:
                await emit(event)
    finally:
        if not stored.background and stored.status not in TERMINAL_STATUSES:
            for step in steps:
                if not isinstance(step, Pause):
                    stored.append(step)
        stored.finish()


async def _pause(stored: StoredResponse, seconds: float, keepalive: float) -> None:
    if not stored.background:
        await trio.sleep(seconds)
        return
    deadline = trio.current_time() + seconds
    while True:
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            return
        if remaining < keepalive:
            await trio.sleep(remaining)
            return
        await trio.sleep(keepalive)
        stored.append({"type": "keepalive"})


async def run_background(state: MockState, stored: StoredResponse, steps: Iterator[Step]) -> None:
    assert stored.cancel_scope is not None
    with stored.cancel_scope:
        await drive(state, stored, steps, None)
    stored.finish()


async def follow(stored: StoredResponse, after: int, writer: SSEWriter) -> None:
    """Send the logged events with `sequence_number > after`, then the live ones until done."""
    index = max(after + 1, 0)
    while True:
        while index < len(stored.events):
            await writer.send(stored.events[index])
            index += 1
        if stored.done:
            return
        await stored.wait_changed()
