"""NATS fixtures: one throwaway nats-server per test session, a fresh stream per test.

Set ``STREAMVISOR_TEST_NATS_URL`` to use a server you run yourself (it needs JetStream); the
tests then create their streams there and delete them afterwards. Isolation comes from names:
each test gets its own stream and subject prefix, so tests never see each other's events.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import attrs
import nats
import nats.js.api
import nats.js.errors
import pytest
import trio

from streamvisor.cluster import NatsBridge, NatsServer

__all__ = ["NatsNames", "delete_stream", "nats_names", "nats_url", "open_node"]

_counter = itertools.count(1)


@attrs.frozen
class NatsNames:
    """The stream and subject prefix one test owns."""

    url: str
    stream: str
    prefix: str


#: A stream kept for the whole session. Creating a stream right after the account's last one was
#: deleted sometimes fails in nats-server ("error creating store for stream"; its log: mkdir of
#: the account's streams directory, "no such file or directory"): about once in 400 creates
#: right after a delete, here, and once in a `make test` run. With one stream always there, it
#: never did (0 in 1,200).
_ANCHOR = "SESSION_ANCHOR"


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a JetStream-enabled server for the whole session (with `_ANCHOR` on it)."""
    given = os.environ.get("STREAMVISOR_TEST_NATS_URL")
    if given:
        asyncio.run(_anchor(given))
        try:
            yield given
        finally:
            asyncio.run(_delete(given, _ANCHOR))
        return
    with NatsServer(tmp_path_factory.mktemp("nats")) as server:
        asyncio.run(_anchor(server.url))
        yield server.url


async def _anchor(url: str) -> None:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        config = nats.js.api.StreamConfig(
            name=_ANCHOR, subjects=["sv-test-anchor.never"], storage=nats.js.api.StorageType.FILE
        )
        await nc.jetstream().add_stream(config)
    finally:
        await nc.close()


@pytest.fixture
async def nats_names(nats_url: str) -> AsyncIterator[NatsNames]:
    """A stream name and subject prefix no other test uses; the stream is deleted after."""
    number = next(_counter)
    names = NatsNames(nats_url, f"T{os.getpid()}_{number}", f"t{os.getpid()}.n{number}")
    yield names
    await delete_stream(nats_url, names.stream)


async def delete_stream(url: str, stream: str) -> None:
    """Delete ``stream`` if it exists (tidying a shared server). nats-py is asyncio-only, so
    this runs it in a worker thread."""

    await trio.to_thread.run_sync(lambda: asyncio.run(_delete(url, stream)))


async def _delete(url: str, stream: str) -> None:
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        await nc.jetstream().delete_stream(stream)
    except nats.js.errors.NotFoundError:
        pass
    finally:
        await nc.close()


@asynccontextmanager
async def open_node(
    names: NatsNames, node_id: str, **options: float | int
) -> AsyncIterator[NatsBridge]:
    """One node's bridge on the test's own stream and prefix."""
    async with NatsBridge.open(
        names.url,
        node_id=node_id,
        stream=names.stream,
        subject_prefix=names.prefix,
        **options,  # type: ignore[arg-type]
    ) as bridge:
        yield bridge
