"""Errors raised by the NATS bridge (`NatsBridge`), one tree under `BridgeError`.

Errors raised by the bridge::

    BridgeError(ClusterError)          root of every error the NATS bridge raises
    ├── InvalidSubject(ValueError)     a topic, pattern, subject, prefix, stream name or node id
    │                                  NATS cannot carry as given (.subject, .reason)
    ├── PayloadTooLarge(ValueError)    a payload above the server's max_payload (.size, .limit)
    ├── PublishBacklogFull(BufferError)
    │                                  publish found max_backlog events not yet handed to
    │                                  JetStream (.backlog): the server has been away too long
    ├── NatsUnavailable(ConnectionError)
    │                                  the server cannot be reached (at open), or did not ack
    │                                  within flush's bounded wait (.url, .reason)
    ├── StreamRefused(RuntimeError)    JetStream refused to create or update the stream, e.g. its
    │                                  subjects overlap another stream's (.stream, .reason)
    ├── NoResponders(LookupError)      a request found nobody serving its subject (.subject)
    ├── RequestTimeout(TimeoutError)   a request got no reply in time (.subject, .timeout)
    ├── HandlerFailed(RuntimeError)    the remote handler raised; its error is in .remote
    └── BridgeClosed(trio.ClosedResourceError)
                                       you used a bridge after its `open` block ended

As attrs' errors do, each leaf also subclasses the builtin it specialises, so ``except
TimeoutError`` catches a `RequestTimeout`.
"""

from __future__ import annotations

import trio

from ._errors import ClusterError

__all__ = [
    "BridgeClosed",
    "BridgeError",
    "HandlerFailed",
    "InvalidSubject",
    "NatsUnavailable",
    "NoResponders",
    "PayloadTooLarge",
    "PublishBacklogFull",
    "RequestTimeout",
    "StreamRefused",
]


class BridgeError(ClusterError):
    """Root of every error raised by the NATS bridge."""


class InvalidSubject(BridgeError, ValueError):
    """A name NATS cannot carry as given; raised before anything is sent, never mis-routed."""

    def __init__(self, subject: object, reason: str) -> None:
        super().__init__(f"invalid subject {subject!r}: {reason}")
        self.subject = subject
        self.reason = reason


class PayloadTooLarge(BridgeError, ValueError):
    """A payload larger than the connected server accepts (its ``max_payload``)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the server's max_payload of {limit}")
        self.size = size
        self.limit = limit


class PublishBacklogFull(BridgeError, BufferError):
    """`NatsBridge.publish` found its backlog full: events are arriving faster than JetStream
    acks them, or the server has been unreachable for that long. The event was not taken."""

    def __init__(self, backlog: int) -> None:
        super().__init__(f"{backlog} events are waiting for JetStream: the publish was refused")
        self.backlog = backlog


class NatsUnavailable(BridgeError, ConnectionError):
    """The NATS server cannot be reached, or did not ack in the bounded wait."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"NATS at {url} unavailable: {reason}")
        self.url = url
        self.reason = reason


class StreamRefused(BridgeError, RuntimeError):
    """JetStream refused the stream's configuration (the server's description is the reason)."""

    def __init__(self, stream: str, reason: str) -> None:
        super().__init__(f"JetStream refused stream {stream!r}: {reason}")
        self.stream = stream
        self.reason = reason


class NoResponders(BridgeError, LookupError):
    """Nobody serves the requested subject (the server says so at once)."""

    def __init__(self, subject: str) -> None:
        super().__init__(f"no responders for {subject!r}")
        self.subject = subject


class RequestTimeout(BridgeError, TimeoutError):
    """A responder exists (or the server was away) but no reply came within the timeout."""

    def __init__(self, subject: str, timeout: float) -> None:
        super().__init__(f"no reply on {subject!r} within {timeout} s")
        self.subject = subject
        self.timeout = timeout


class HandlerFailed(BridgeError, RuntimeError):
    """The serving node's handler raised; ``.remote`` is its ``"Type: message"`` line."""

    def __init__(self, subject: str, remote: str) -> None:
        super().__init__(f"the handler serving {subject!r} failed: {remote}")
        self.subject = subject
        self.remote = remote


class BridgeClosed(BridgeError, trio.ClosedResourceError):
    """The bridge was used after its `NatsBridge.open` block ended (you closed it)."""
