"""What an SDK user observes, and how two observations are compared.

Each scenario runs the same calls with `openai.OpenAI` and with `openai.AsyncOpenAI` (under
asyncio, as most users run it), and returns the SDK's own view as plain JSON (``to_dict()``: the
fields the wire carried, nothing the SDK filled in). `normalise` then blanks what legitimately
differs from run to run: ids (numbered by first appearance, so that "the same id again" is kept),
timestamps, per-run random strings and the obfuscation padding.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs
import openai

Flavour = Literal["sync", "asyncio"]
FLAVOURS: Final[tuple[Flavour, ...]] = ("sync", "asyncio")

#: Any key does for the embedded server; the gateway wants its own token.
DIRECT_KEY: Final = "sk-direct-0123456789"

_ID: Final = re.compile(
    r"\b(resp|msg|fc|fco|call|rs|item|chatcmpl|file|upload|part)[-_][A-Za-z0-9]{16,}\b"
)
_TIMESTAMPS: Final = frozenset({"created", "created_at", "completed_at", "expires_at"})
#: Random per request by design: the embedded server's fingerprints.
_PER_RUN: Final = frozenset({"system_fingerprint"})
#: Random padding that hides the deltas' lengths on the wire; the SDK ignores it. Dropped here so
#: that it does not hide other differences: ``TestObfuscation`` holds its presence on its own.
_PADDING: Final = "obfuscation"


def normalise(value: Any) -> Any:
    """``value`` (JSON) with ids numbered by first appearance (``<resp_1>``), timestamps
    ``<time>``, per-run random strings ``<per-run>`` and no obfuscation padding; everything else
    untouched."""
    ids: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        if match[0] not in ids:
            same_kind = sum(1 for name in ids.values() if name.startswith(f"<{match[1]}_"))
            ids[match[0]] = f"<{match[1]}_{same_kind + 1}>"
        return ids[match[0]]

    def walk(item: Any, key: str | None = None) -> Any:
        if isinstance(item, Mapping):
            return {k: walk(v, k) for k, v in item.items() if k != _PADDING}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        if key in _TIMESTAMPS and isinstance(item, int | float) and not isinstance(item, bool):
            return "<time>"
        if key in _PER_RUN and isinstance(item, str):
            return "<per-run>"
        if isinstance(item, str):
            return _ID.sub(rename, item)
        return item

    return walk(value)


def wire(model: Any) -> Any:
    """An SDK object as the JSON the wire carried (lists of them element-wise)."""
    if isinstance(model, list):
        return [wire(m) for m in model]
    return model.to_dict(warnings=False)  # the helpers' Parsed* models warn on their own dump


@attrs.frozen
class Observed:
    """A stream as an SDK user saw it: every event, and what the helper built from them."""

    events: list[dict[str, Any]]
    final: dict[str, Any] | None = None
    text: str | None = None

    @property
    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    @property
    def sequence_numbers(self) -> list[int]:
        return [e["sequence_number"] for e in self.events]

    def deltas(self, type: str = "response.output_text.delta") -> str:
        return "".join(e["delta"] for e in self.events if e["type"] == type)

    @property
    def response_id(self) -> str:
        """The id of the response the stream is about (from its first event)."""
        return str(self.events[0]["response"]["id"])

    def normalised(self) -> Observed:
        return Observed(normalise(self.events), normalise(self.final), self.text)


# --------------------------------------------------------------------------------- scenarios
# Each is a pair: ``sync(client, **kwargs)`` and ``asyncio(client, **kwargs)``, the same calls.


class ResponsesRaw:
    """``responses.create(stream=True)``: the raw events."""

    @staticmethod
    def sync(client: openai.OpenAI, **kwargs: Any) -> Observed:
        with client.responses.create(stream=True, **kwargs) as stream:
            return Observed([wire(e) for e in stream])

    @staticmethod
    async def asyncio(client: openai.AsyncOpenAI, **kwargs: Any) -> Observed:
        async with await client.responses.create(stream=True, **kwargs) as stream:
            return Observed([wire(e) async for e in stream])


class ResponsesHelper:
    """``responses.stream(...)``: its events, ``get_final_response()`` and ``output_text``."""

    @staticmethod
    def sync(client: openai.OpenAI, **kwargs: Any) -> Observed:
        with client.responses.stream(**kwargs) as stream:
            events = [wire(e) for e in stream]
            final = stream.get_final_response()
        return Observed(events, wire(final), final.output_text)

    @staticmethod
    async def asyncio(client: openai.AsyncOpenAI, **kwargs: Any) -> Observed:
        async with client.responses.stream(**kwargs) as stream:
            events = [wire(e) async for e in stream]
            final = await stream.get_final_response()
        return Observed(events, wire(final), final.output_text)


class ResponsesReplay:
    """``responses.retrieve(id, stream=True, starting_after=N)``: the raw events after N."""

    @staticmethod
    def sync(client: openai.OpenAI, response_id: str, **kwargs: Any) -> Observed:
        with client.responses.retrieve(response_id, stream=True, **kwargs) as stream:
            return Observed([wire(e) for e in stream])

    @staticmethod
    async def asyncio(client: openai.AsyncOpenAI, response_id: str, **kwargs: Any) -> Observed:
        async with await client.responses.retrieve(response_id, stream=True, **kwargs) as stream:
            return Observed([wire(e) async for e in stream])


class ChatRaw:
    """``chat.completions.create(stream=True)``: the raw chunks."""

    @staticmethod
    def sync(client: openai.OpenAI, **kwargs: Any) -> Observed:
        with client.chat.completions.create(stream=True, **kwargs) as stream:
            return Observed([wire(c) for c in stream])

    @staticmethod
    async def asyncio(client: openai.AsyncOpenAI, **kwargs: Any) -> Observed:
        async with await client.chat.completions.create(stream=True, **kwargs) as stream:
            return Observed([wire(c) async for c in stream])


class ChatHelper:
    """``chat.completions.stream(...)``: its events and ``get_final_completion()``."""

    @staticmethod
    def sync(client: openai.OpenAI, **kwargs: Any) -> Observed:
        with client.chat.completions.stream(**kwargs) as stream:
            events = [wire(e) for e in stream]
            final = stream.get_final_completion()
        return Observed(events, wire(final), final.choices[0].message.content)

    @staticmethod
    async def asyncio(client: openai.AsyncOpenAI, **kwargs: Any) -> Observed:
        async with client.chat.completions.stream(**kwargs) as stream:
            events = [wire(e) async for e in stream]
            final = await stream.get_final_completion()
        return Observed(events, wire(final), final.choices[0].message.content)


def observe(
    flavour: Flavour,
    base_url: str,
    api_key: str,
    scenario: Any,
    *args: Any,
    default_headers: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Observed:
    """Run ``scenario`` with a fresh client of ``flavour`` (closed after) and return what it saw.

    The client never retries: what it sees is what the server (or the daemon) answered."""
    options: dict[str, Any] = {
        "base_url": base_url,
        "api_key": api_key,
        "max_retries": 0,
        "default_headers": default_headers,
    }
    if flavour == "sync":
        with openai.OpenAI(**options) as client:
            observed: Observed = scenario.sync(client, *args, **kwargs)
            return observed

    async def main() -> Observed:
        async with openai.AsyncOpenAI(**options) as client:
            seen: Observed = await scenario.asyncio(client, *args, **kwargs)
            return seen

    return asyncio.run(main())


def wait_until(
    probe: Callable[[], Any], what: str, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Call ``probe`` until it returns something truthy, and return that. Raises
    ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(interval)


def scenario(name: str, **extra: Any) -> dict[str, Any]:
    """``metadata`` choosing the embedded server's scenario (``long:120``, ``tools``, ...)."""
    return {"metadata": {"mock_scenario": name, **extra}}


def differences(
    through: Any, direct: Any, labels: tuple[str, str] = ("through the gateway", "directly")
) -> list[str]:
    """Where two JSON values differ, one line per place (the first eight), worded with the two
    sides' ``labels``."""
    found: list[str] = []
    ours, theirs = labels

    def walk(a: Any, b: Any, at: str) -> None:
        if len(found) >= 8 or a == b:
            return
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in [*a, *(k for k in b if k not in a)]:
                if key not in a:
                    found.append(f"{at}.{key}: missing {ours} ({theirs}: {b[key]!r})")
                elif key not in b:
                    found.append(f"{at}.{key}: {a[key]!r} {ours}, absent {theirs}")
                else:
                    walk(a[key], b[key], f"{at}.{key}")
        elif isinstance(a, list) and isinstance(b, list):
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                walk(x, y, f"{at}[{i}]")
            if len(a) != len(b) and len(found) < 8:
                found.append(f"{at}: {len(a)} items {ours}, {len(b)} {theirs}")
        else:
            found.append(f"{at}: {a!r} {ours}, {b!r} {theirs}")

    walk(through, direct, "")
    return found


def assert_same(
    through: Any, direct: Any, labels: tuple[str, str] = ("through the gateway", "directly")
) -> None:
    """Assert two normalised observations are equal, naming where they differ if not."""
    if isinstance(through, Observed):
        through, direct = attrs.asdict(through), attrs.asdict(direct)
    assert through == direct, "\n".join(differences(through, direct, labels))
