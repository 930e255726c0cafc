"""What ``/v1`` sends on the wire: OpenAI's error body, SSE frames, and Chat Completions chunks
rebuilt from a session's events.

A session maps chat chunks into the one event vocabulary (`ChatAccumulator`); `ChatChunks` maps
them back, one ``chat.completion.chunk`` per event, in the API's shape: the first chunk carries
``delta.role``, content/refusal/tool-call fragments follow as the API streams them, each choice
ends with an empty delta and its ``finish_reason``, the usage chunk (``choices: []``) comes only
when the client asked for it with ``stream_options.include_usage``, then ``data: [DONE]``. The
SDKs' accumulators (``chat.completions.stream``) rebuild the same completion from it.

Responses events are relayed as the frames they were (`client_view` only hides background mode
from a client that did not ask for it, see `serve_v1`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from streamvisor.openai import StreamEvent

from ._http import json_text

__all__ = [
    "ChatChunks",
    "client_view",
    "openai_error",
    "padding",
    "plain_response",
    "sse_data",
    "sse_event",
]

_DONE: Final = "data: [DONE]\n\n"

#: Events whose ``response`` is the Response object so far.
_RESPONSE_EVENTS: Final = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.completed",
        "response.failed",
        "response.incomplete",
        "response.cancelled",
    }
)


#: Events only a background stream has: a client that did not ask for one never sees them.
_BACKGROUND_ONLY: Final = frozenset({"response.queued", "keepalive"})


_ALNUM: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def padding() -> str:
    """1 to 15 random letters and digits, as the API pads a stream's chunks."""
    digest = os.urandom(16)
    return "".join(_ALNUM[b % 62] for b in digest[1 : 2 + digest[0] % 15])


def _dumps(value: Any) -> str:
    # The API's own framing: compact strict JSON, UTF-8 as is (`json_text`).
    return json_text(value)


def sse_event(type_: str, data: Mapping[str, Any]) -> str:
    """One Responses SSE frame: ``event: <type>`` and its ``data:`` line."""
    return f"event: {type_}\ndata: {_dumps(data)}\n\n"


def sse_data(data: Mapping[str, Any]) -> str:
    """One Chat Completions SSE frame (``data:`` only)."""
    return f"data: {_dumps(data)}\n\n"


def openai_error(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def client_view(type_: str, data: Mapping[str, Any], background: bool) -> Mapping[str, Any] | None:
    """A Responses event as the client should see it. A stream the daemon made durable runs in
    background mode upstream; a client that did not ask for ``background`` gets the frames the
    API sends a plain stream: no ``response.queued`` nor ``keepalive`` (None: skip it), and
    Response objects with ``background: false`` (``queued`` read as ``in_progress``). The relay
    renumbers what it sends to close the gaps they leave."""
    if background:
        return data
    if type_ in _BACKGROUND_ONLY:
        return None
    if type_ in _RESPONSE_EVENTS:
        response = data.get("response")
        if isinstance(response, Mapping) and response.get("background"):
            return {**data, "response": plain_response(response)}
    return data


def plain_response(response: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Response the daemon ran in background mode, as the client that asked for a plain one
    sees it: ``background: false``, ``queued`` read as ``in_progress``."""
    if not response.get("background"):
        return response
    patched = {**response, "background": False}
    if patched.get("status") == "queued":
        patched["status"] = "in_progress"
    return patched


class ChatChunks:
    """Turns a chat stream's session events back into the API's chunk frames (see the module
    docstring). One instance per stream."""

    __slots__ = ("_base", "_include_usage", "_named", "_obfuscate", "_started")

    def __init__(self, *, include_usage: bool, obfuscate: bool = True) -> None:
        self._include_usage = include_usage
        self._obfuscate = obfuscate
        self._base: dict[str, Any] = {}
        self._started: set[int] = set()
        self._named: set[int] = set()

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        if self._include_usage and "usage" not in extra:
            extra["usage"] = None  # with include_usage, every chunk names it (null until the end)
        if self._obfuscate:
            # The API pads every chunk (``stream_options.include_obfuscation``, on by default)
            # so that packet sizes do not tell the tokens' lengths; the upstream's padding was
            # for the upstream's chunks, so each rebuilt chunk gets its own.
            extra["obfuscation"] = padding()
        return sse_data({**self._base, "choices": choices, **extra})

    def _choice(
        self,
        index: int,
        delta: dict[str, Any],
        *,
        logprobs: Any = None,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        return {
            "index": index,
            "delta": delta,
            "logprobs": logprobs or None,
            "finish_reason": finish_reason,
        }

    def _opening(self, index: int, kind: str) -> list[str]:
        """The chunk that opens choice ``index``'s message, as the API sends it before the first
        text or refusal piece (an empty string for that kind, null for the other); nothing for
        a choice already open or one opened by a tool call (its first fragment opens it)."""
        if index in self._started:
            return []
        self._started.add(index)
        delta = {
            "role": "assistant",
            "content": "" if kind == "content" else None,
            "refusal": "" if kind == "refusal" else None,
        }
        return [self._chunk([self._choice(index, delta)])]

    def _delta(self, index: int, delta: dict[str, Any]) -> dict[str, Any]:
        """A tool call's delta; the first of a choice opens its message (the role, content and
        refusal null), as the API's first tool-call chunk does."""
        if index in self._started:
            return delta
        self._started.add(index)
        return {"role": "assistant", "content": None, **delta, "refusal": None}

    def frames(self, event: StreamEvent) -> list[str]:
        """The frames for ``event`` (often one; the terminal event gives the usage chunk, if
        asked, and ``[DONE]``; an ``error`` gives the API's error frame)."""
        data = event.data
        kind = event.type
        if kind == "response.output_text.delta":
            index = data.get("output_index", 0)
            frames = self._opening(index, "content")
            delta = {"content": data["delta"]}
            frames.append(self._chunk([self._choice(index, delta, logprobs=data.get("logprobs"))]))
            return frames
        if kind == "response.created":
            response = data.get("response") or {}
            self._base = {
                "id": response.get("id"),
                "object": "chat.completion.chunk",
                "created": response.get("created"),
                "model": response.get("model"),
            }
            for key in ("service_tier", "system_fingerprint"):
                if response.get(key) is not None:
                    self._base[key] = response[key]
            return []
        if kind == "response.refusal.delta":
            index = data.get("output_index", 0)
            frames = self._opening(index, "refusal")
            delta = {"refusal": data["delta"]}
            frames.append(self._chunk([self._choice(index, delta, logprobs=data.get("logprobs"))]))
            return frames
        if kind == "response.output_item.added":
            item = data.get("item") or {}
            index = data.get("output_index", 0)
            fragment = {
                "index": data.get("tool_index") or 0,
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": ""},
            }
            delta = self._delta(index, {"tool_calls": [fragment]})
            return [self._chunk([self._choice(index, delta)])]
        if kind == "response.function_call_arguments.delta":
            index = data.get("output_index", 0)
            if data.get("tool_index") is None:  # the legacy function_call
                call: dict[str, Any] = {"arguments": data["delta"]}
                if index not in self._named:  # named once: SDKs concatenate every fragment
                    self._named.add(index)
                    call = {"name": data.get("name"), **call}
                delta = {"function_call": call}
            else:
                delta = {
                    "tool_calls": [
                        {"index": data["tool_index"], "function": {"arguments": data["delta"]}}
                    ]
                }
            return [self._chunk([self._choice(index, self._delta(index, delta))])]
        if kind == "response.output_item.done":
            index = data.get("output_index", 0)
            frames = self._opening(index, "content")  # an empty answer still opens its message
            finish = self._choice(index, {}, finish_reason=data.get("finish_reason"))
            frames.append(self._chunk([finish]))
            return frames
        if kind in ("response.completed", "response.incomplete"):
            frames = []
            if self._include_usage:
                frames.append(self._chunk([], usage=(data.get("response") or {}).get("usage")))
            frames.append(_DONE)
            return frames
        if kind == "error":
            error = data.get("error")
            if not isinstance(error, Mapping):
                error = {
                    "message": data.get("message"),
                    "type": data.get("error_type") or "server_error",
                    "param": data.get("param"),
                    "code": data.get("code"),
                }
            return [sse_data({"error": error})]
        if kind == "response.cancelled":  # the daemon stopped the stream
            return [sse_data(openai_error(str(data.get("message")), "server_error"))]
        return []
