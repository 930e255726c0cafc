"""The embedded OpenAI-compatible server (hypercorn on trio) with fault injection.

async with serve(MockAPIConfig(token_delay=0.001)) as server:
    client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-test")
    server.inject(Fault.status(429, retry_after=0.05), path="/v1/responses", times=2)
"""

from __future__ import annotations

from ._app import MockApp, create_app
from ._config import MockAPIConfig
from ._errors import InvalidFault, InvalidScenario, MockAPIError, ServerNotRunning
from ._faults import Fault, parse_fault_header
from ._scripts import SCENARIOS, parse_scenario, schema_example
from ._server import MockServer, run_forever, serve
from ._state import MockState, RecordedRequest, StoredResponse

__all__ = [
    "SCENARIOS",
    "Fault",
    "InvalidFault",
    "InvalidScenario",
    "MockAPIConfig",
    "MockAPIError",
    "MockApp",
    "MockServer",
    "MockState",
    "RecordedRequest",
    "ServerNotRunning",
    "StoredResponse",
    "create_app",
    "parse_fault_header",
    "parse_scenario",
    "run_forever",
    "schema_example",
    "serve",
]
