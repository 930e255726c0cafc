"""Every error the cluster layer raises: one root, `ClusterError`, drawn here once.

Each family also descends from the tree its callers already catch: the store's errors are the
registry's ``StoreError`` (so the background poller handles them as the store errors they are),
a session command's owner that does not answer is a ``NoSuchActor`` (the gateway answers 503),
and every leaf subclasses the builtin it specialises::

    ClusterError                           root of the cluster layer (``streamvisor.cluster``)
    ├── ClusterStoreError (StoreError)     the PostgreSQL store's own failures; .node_id
    │   ├── EngineUnavailable (ConnectionError)  PostgreSQL cannot be reached (or broke the
    │   │                                  connection mid-operation); the store recovers by
    │   │                                  itself once it is back: retry later
    │   ├── LeaseLost                      `renew` found the lease expired or taken (.token):
    │   │                                  stop the owned children, then `rejoin`
    │   ├── Fenced                         a write with a fencing token that no longer holds
    │   │                                  the lease (.token): nothing was written
    │   └── NotOwner (PermissionError)     a write to a response another node owns (.owner)
    ├── BridgeError                        the NATS bridge (``_bridge_errors.py`` draws its leaves:
    │                                      InvalidSubject, PayloadTooLarge, PublishBacklogFull,
    │                                      NatsUnavailable, StreamRefused, NoResponders,
    │                                      RequestTimeout, HandlerFailed, BridgeClosed)
    ├── UndecodableItem (ValueError)       a payload from another node this version cannot read
    ├── RemoteCommandFailed (RuntimeError) a session's owner ran a command and it failed with an
    │                                      error that does not cross nodes as itself
    ├── OwnerUnreachable (NoSuchActor)     a session's owner did not answer a command
    ├── PostgresServerError (RuntimeError) the throwaway PostgreSQL server would not start/stop
    └── NatsServerError (RuntimeError)     the throwaway nats-server would not start/stop

A message never holds the DSN's password: `EngineUnavailable` keeps psycopg's own explanation
(which names host and port, never the password) with any ``password=...`` masked.
"""

from __future__ import annotations

import re

from streamvisor.actors.background._errors import StoreError

__all__ = [
    "ClusterError",
    "ClusterStoreError",
    "EngineUnavailable",
    "Fenced",
    "LeaseLost",
    "NotOwner",
]

_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)|(://[^:/@\s]*:)([^@\s]*)(@)")


def mask_password(text: str) -> str:
    """*text* with the password of any DSN or ``password=`` setting in it replaced by ``***``."""

    def hide(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return f"{match.group(1)}***"
        return f"{match.group(3)}***{match.group(5)}"

    return _PASSWORD.sub(hide, text)


class ClusterError(Exception):
    """Root of every error the cluster layer raises (see the module docstring)."""


class ClusterStoreError(ClusterError, StoreError):
    """Root of the cluster store's own errors; ``node_id`` is the node that raised it."""

    def __init__(self, message: str, *, node_id: str) -> None:
        super().__init__(message)
        self.node_id = node_id


class EngineUnavailable(ClusterStoreError, ConnectionError):
    """PostgreSQL could not be reached within the store's connect timeout, or the connection
    broke during the operation. Whether a write that broke mid-commit was committed is unknown
    (as for any database); the store reconnects by itself: a later call may succeed."""

    def __init__(self, what: str, reason: str, *, node_id: str) -> None:
        super().__init__(
            f"{what}: the PostgreSQL engine is unavailable ({mask_password(reason)})",
            node_id=node_id,
        )
        self.what = what


class LeaseLost(ClusterStoreError):
    """The node's lease with fencing token ``token`` is gone: it expired (on the database's
    clock) before a renewal, or another node took the node's work over. The node must stop the
    children it owns, then `rejoin` for a new token."""

    def __init__(self, node_id: str, token: int, reason: str) -> None:
        super().__init__(
            f"node {node_id!r} lost its lease (token {token}): {reason}", node_id=node_id
        )
        self.token = token
        self.reason = reason


class Fenced(ClusterStoreError):
    """A write by node ``node_id`` with fencing token ``token`` was refused: that token no
    longer holds a live lease (it expired, or a survivor took the node over and bumped its
    token). Nothing was written; a paused node that wakes up past its lease can never write
    with its old token again."""

    def __init__(self, node_id: str, token: int, what: str) -> None:
        super().__init__(
            f"{what}: node {node_id!r} is fenced, its token {token} no longer holds a live lease",
            node_id=node_id,
        )
        self.token = token
        self.what = what


class NotOwner(ClusterStoreError, PermissionError):
    """A write to response ``response_id``, which node ``owner`` owns, not this node."""

    def __init__(self, response_id: str, owner: str, *, node_id: str) -> None:
        super().__init__(
            f"response {response_id!r} is owned by node {owner!r}, not by {node_id!r}",
            node_id=node_id,
        )
        self.response_id = response_id
        self.owner = owner
