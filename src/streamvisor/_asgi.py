"""ASGI and hypercorn plumbing shared by the two HTTP servers (the gateway and the mock API).

A leaf module: it imports only the standard library, trio and hypercorn, so `mockapi` (the other
side of the wire) and `gateway` (the daemon's front door) can both use it without depending on
each other or on the layers between them. What differs between the servers — their `Request`
records, their responders, their errors — stays in each server's own ``_http.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any, cast
from urllib.parse import parse_qsl

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

__all__ = [
    "BodyTooLarge",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "encode_headers",
    "header_map",
    "hypercorn_config",
    "parse_bind",
    "parse_query",
    "read_body",
    "serve_hypercorn",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body is larger than the route allows (the argument: its size in bytes)."""


def parse_query(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the last value of a repeated name wins). A name given
    with an empty value is kept as ``""``: ``?topic=`` is an empty topic, not a missing one."""
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    return dict(parse_qsl(query, keep_blank_values=True))


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers, names lowercased (the last value of a repeated name wins)."""
    return {
        bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
        for k, v in scope.get("headers", [])
    }


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Response headers as ASGI wants them: latin-1 bytes, names lowercased."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body.

    Raises `BodyTooLarge` past ``limit`` bytes (the rest is read and discarded, so the
    connection stays usable for the answer) and ``trio.BrokenResourceError`` if the client
    disconnects first.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise trio.BrokenResourceError("the client disconnected while sending the body")
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        else:
            chunks.clear()
        if not message.get("more_body", False):
            if size > limit:
                raise BodyTooLarge(size)
            return b"".join(chunks)


# ------------------------------------------------------------------------------ hypercorn on trio


def _not_a_banner(record: logging.LogRecord) -> bool:
    """A logging filter: drop hypercorn's "Running on http://... (CTRL + C to quit)" line. Each
    server says where it listens itself, saying what it is (a bare second URL confused users
    of ``run.py`` about which one to open)."""
    return not str(record.msg).startswith("Running on ")


def hypercorn_config(
    host: str, port: int, *, errorlog: logging.Logger, graceful_timeout: float
) -> HypercornConfig:
    """A hypercorn configuration binding ``host:port`` (IPv6 hosts bracketed), with no access
    log, no "Running on" banner in ``errorlog`` (the caller announces its own URL) and no
    ``server`` header."""
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    errorlog.addFilter(_not_a_banner)  # once per logger: addFilter ignores a repeat
    config.errorlog = errorlog
    config.graceful_timeout = graceful_timeout
    config.include_server_header = False
    return config


def parse_bind(binds: Sequence[str]) -> tuple[str, int]:
    """The host and port of the first address hypercorn reports (``http://127.0.0.1:54321``)."""
    address = binds[0].removeprefix("http://")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


async def serve_hypercorn(
    app: object,
    config: HypercornConfig,
    shutdown: trio.Event,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` until ``shutdown`` is set; for ``nursery.start``, which returns the bound
    addresses (see `parse_bind`)."""
    await hypercorn_serve(
        cast(Any, app), config, shutdown_trigger=shutdown.wait, task_status=task_status
    )
