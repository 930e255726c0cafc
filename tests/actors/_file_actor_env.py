"""A running FileActor against the embedded server, with the wire traffic recorded as sent."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from streamvisor.actors.files._actor import FileActor
from streamvisor.actors.files._handle import FilesHandle
from streamvisor.config import FilesSection
from streamvisor.mockapi import MockAPIConfig, MockServer, serve
from streamvisor.mockapi._multipart import FormPart, parse_multipart
from streamvisor.openai import ClientSettings, OpenAIClient, RetryPolicy
from streamvisor.supervisor import ActorRef, start_actor

API_KEY = "sk-test-files-0123456789"

#: Retries stay on (the policy is part of the path under test) but take milliseconds.
FAST_RETRIES = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.005)


@attrs.frozen
class Gate:
    """Holds requests: ``arrived`` is set when one waits, ``release`` lets them all through."""

    arrived: trio.Event = attrs.field(factory=trio.Event)
    release: trio.Event = attrs.field(factory=trio.Event)


class WireRecorder(httpx.AsyncBaseTransport):
    """Forwards every request to the real loopback transport, keeping the bytes as sent.

    The embedded server records multipart bodies only by size, so what the Files API received as
    a part's ``Content-Type`` is read here, with the server's own multipart parser. ``hold(glob)``
    delays or gates matching requests; ``peak(glob)`` is the most of them ever in flight at once.
    Set them up before the requests they concern (the actor sends nothing on its own).
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.sent: list[httpx.Request] = []
        self._delays: list[tuple[str, str, float]] = []
        self._gates: list[tuple[str, str, Gate]] = []
        self._active: dict[tuple[str, str], int] = {}
        self._peak: dict[tuple[str, str], int] = {}

    def delay(self, method: str, glob: str, seconds: float) -> None:
        self._delays.append((method, glob, seconds))

    def gate(self, method: str, glob: str) -> Gate:
        """Hold matching requests until ``gate.release`` is set."""
        gate = Gate()
        self._gates.append((method, glob, gate))
        return gate

    def peak(self, method: str, glob: str) -> int:
        return self._peak.get((method, glob), 0)

    def multipart(self, method: str, path: str) -> list[dict[str, FormPart]]:
        """The multipart bodies of the matching requests, parsed as the server parses them."""
        return [
            parse_multipart(r.headers["content-type"], r.content)
            for r in self.sent
            if r.method == method and r.url.path == path
        ]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        method, path = request.method, request.url.path
        watched = [(m, g) for m, g, _ in self._delays + self._gates if _matches(m, g, method, path)]
        for key in watched:
            self._active[key] = self._active.get(key, 0) + 1
            self._peak[key] = max(self._peak.get(key, 0), self._active[key])
        try:
            for m, g, seconds in self._delays:
                if _matches(m, g, method, path):
                    await trio.sleep(seconds)
            for m, g, gate in self._gates:
                if _matches(m, g, method, path):
                    gate.arrived.set()
                    await gate.release.wait()
            return await self._inner.handle_async_request(request)
        finally:
            for key in watched:
                self._active[key] -= 1

    async def aclose(self) -> None:
        await self._inner.aclose()


def _matches(method: str, glob: str, req_method: str, req_path: str) -> bool:
    return method == req_method and fnmatch.fnmatchcase(req_path, glob)


@attrs.define
class FilesEnv:
    server: MockServer
    client: OpenAIClient
    files: FilesHandle
    ref: ActorRef
    root: Path
    outside: Path
    wire: WireRecorder

    def seen(self, method: str, path: str) -> list[Any]:
        """The requests the server received with this method and exact path (or glob)."""
        return [
            r
            for r in self.server.requests
            if r.method == method and fnmatch.fnmatchcase(r.path, path)
        ]

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path


@asynccontextmanager
async def files_env(
    tmp_path: Path,
    *,
    list_page_size: int | None = None,
    max_concurrent_uploads: int = 4,
    wall_clock: Callable[[], float] = time.time,
    **section: Any,
) -> AsyncIterator[FilesEnv]:
    """A FileActor whose only readable root is ``tmp_path/root``; ``tmp_path/outside`` is not."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    config = FilesSection(roots=(str(root),), **section)
    wire = WireRecorder()
    async with serve(MockAPIConfig(api_key=API_KEY)) as server:
        settings = ClientSettings(base_url=server.url, api_key=API_KEY, retry=FAST_RETRIES)
        async with (
            OpenAIClient.open(settings, transport=wire) as client,
            trio.open_nursery() as nursery,
        ):
            actor = FileActor(
                client,
                config,
                max_concurrent_uploads=max_concurrent_uploads,
                list_page_size=list_page_size,
                wall_clock=wall_clock,
            )
            ref = await start_actor(nursery, actor)
            yield FilesEnv(server, client, FilesHandle(ref, config), ref, root, outside, wire)
            if ref.alive:
                await ref.stop()
