"""Clustered mode: several daemons as one system (``[cluster]``; README: "Running several
daemons").

PostgreSQL is the system of record (`ClusterStore`: background responses and durable streams
with their cursors, the session directory, node leases with fencing tokens); NATS JetStream
carries every event to every node and routes session commands to their owner (`NatsBridge`,
nats-py on its own asyncio thread). `ClusterBus` is the in-process bus with the other nodes'
events; `ClusterNode` keeps the lease, takes dead nodes over and serves commands. `PostgresServer`
and `NatsServer` start throwaway engines from their PyPI wheels; `LocalCluster` runs daemon
processes on this machine (``python run.py cluster``, the failover tests).

Importing this package imports psycopg and nats-py (the ``cluster`` extra); ``import
streamvisor`` does not import it.
"""

from __future__ import annotations

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
from ._bus import ClusterBus, OpenStream
from ._codec import UndecodableItem
from ._commands import CommandServer, OwnerUnreachable, RemoteCommandFailed, RemoteSession
from ._errors import (
    ClusterError,
    ClusterStoreError,
    EngineUnavailable,
    Fenced,
    LeaseLost,
    NotOwner,
)
from ._local import LocalCluster, NodeProcess
from ._nats_server import NatsServer, NatsServerError
from ._node import ClusterNode, Hooks, NodeStatus, default_node_id
from ._pgschema import MIGRATIONS, SCHEMA_VERSION, Migration
from ._pgstore import ClusterStore
from ._postgres_server import PostgresServer, PostgresServerError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BridgeClosed",
    "BridgeError",
    "BridgeStatistics",
    "ClusterBus",
    "ClusterError",
    "ClusterNode",
    "ClusterStore",
    "ClusterStoreError",
    "CommandServer",
    "EngineUnavailable",
    "Fenced",
    "HandlerFailed",
    "Hooks",
    "InvalidSubject",
    "LeaseLost",
    "LocalCluster",
    "Message",
    "Migration",
    "NatsBridge",
    "NatsServer",
    "NatsServerError",
    "NatsUnavailable",
    "NoResponders",
    "NodeProcess",
    "NodeStatus",
    "NotOwner",
    "OpenStream",
    "OwnerUnreachable",
    "PayloadTooLarge",
    "PostgresServer",
    "PostgresServerError",
    "PublishBacklogFull",
    "RemoteCommandFailed",
    "RemoteSession",
    "RequestTimeout",
    "StreamRefused",
    "UndecodableItem",
    "default_node_id",
]
