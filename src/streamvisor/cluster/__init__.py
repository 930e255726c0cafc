"""Clustered mode: several daemons as one system (issue 10).

The NATS side carries the event channels across nodes (JetStream) and routes commands to the
node that owns them (request/reply), bridged into trio by `NatsBridge`.
"""

from ._bridge import BridgeStatistics, Message, NatsBridge
from ._bridge_errors import (
    BridgeClosed,
    BridgeError,
    HandlerFailed,
    InvalidSubject,
    NatsUnavailable,
    NoResponders,
    PayloadTooLarge,
    PublishBacklogFull,
    RequestTimeout,
    StreamRefused,
)
from ._nats_server import NatsServer, NatsServerError

__all__ = [
    "BridgeClosed",
    "BridgeError",
    "BridgeStatistics",
    "HandlerFailed",
    "InvalidSubject",
    "Message",
    "NatsBridge",
    "NatsServer",
    "NatsServerError",
    "NatsUnavailable",
    "NoResponders",
    "PayloadTooLarge",
    "PublishBacklogFull",
    "RequestTimeout",
    "StreamRefused",
]
