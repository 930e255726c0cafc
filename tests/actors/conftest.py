"""Fixtures shared by the actors' tests."""

from __future__ import annotations

# The session tests' `server` (an embedded OpenAI-compatible server) and `env` (a session worker
# under a real DynamicSupervisor against it); re-exported here so pytest finds them.
from ._session_support import env_fixture, server_fixture

__all__ = ["env_fixture", "server_fixture"]
