"""One daemon, its embedded server and its gateway per module, and the official SDK pointed at
either door: ``gateway`` (the daemon's ``/v1``) or ``upstream`` (the embedded server itself).

``STREAMVISOR_V1_SELF_CHECK=1`` points the gateway door at the embedded server too: the suite then
checks itself (every equivalence must hold of the server against itself, every scenario must run);
only what is the gateway's alone (its token, its event log, its bus) is expected to fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import openai
import pytest

from streamvisor.testing import GatewayThread, gateway_thread

from ._sdk import DIRECT_KEY


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    # Four retries: the storms below fail three attempts in a row, and the daemon must absorb them.
    with gateway_thread(tmp_path_factory.mktemp("v1"), openai_max_retries=4) as started:
        if os.environ.get("STREAMVISOR_V1_SELF_CHECK") == "1":
            started.v1_url, started.token = started.upstream_url, DIRECT_KEY
        yield started


@pytest.fixture(autouse=True)
def _faults_end_with_their_test(running: GatewayThread) -> Iterator[None]:
    yield
    running.run_sync(running.mockapi.clear_faults)


@pytest.fixture
def gateway(running: GatewayThread) -> Iterator[openai.OpenAI]:
    """The SDK through the daemon's ``/v1`` (no retries of its own: the daemon's must do)."""
    with openai.OpenAI(base_url=running.v1_url, api_key=running.token, max_retries=0) as client:
        yield client


@pytest.fixture
def upstream(running: GatewayThread) -> Iterator[openai.OpenAI]:
    """The SDK against the embedded server directly: the reference every answer is held to."""
    with openai.OpenAI(base_url=running.upstream_url, api_key=DIRECT_KEY, max_retries=0) as client:
        yield client
