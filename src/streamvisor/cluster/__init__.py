"""Clustered mode: several daemons as one system, with PostgreSQL as the system of record.

Each public name is re-exported explicitly (``import X as X``), one per line, so that the
modules of this package can be added independently.
"""

from __future__ import annotations

from ._errors import ClusterStoreError as ClusterStoreError
from ._errors import EngineUnavailable as EngineUnavailable
from ._errors import Fenced as Fenced
from ._errors import LeaseLost as LeaseLost
from ._errors import NotOwner as NotOwner
from ._pgschema import MIGRATIONS as MIGRATIONS
from ._pgschema import SCHEMA_VERSION as SCHEMA_VERSION
from ._pgschema import Migration as Migration
from ._pgstore import ClusterStore as ClusterStore
from ._postgres_server import PostgresServer as PostgresServer
from ._postgres_server import PostgresServerError as PostgresServerError
