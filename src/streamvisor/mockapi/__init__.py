"""The embedded OpenAI-compatible server (hypercorn on trio) with fault injection.

    async with serve(MockAPIConfig(token_delay=0.001)) as server:
        client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-test")
        server.inject(Fault.status(429, retry_after=0.05), path="/v1/responses", times=2)

It serves Chat Completions, Responses (foreground and background: poll, cancel, delete, resume with
`starting_after`), Files and Uploads. Replies are scripted from the request:

* scenario: `metadata["mock_scenario"]`, else header `x-mock-scenario` — `echo` (default: "You
  said: <last user message>"), `tools`, `refusal`, `reasoning`, `long:N`, `incomplete`, `failed`,
  `replay:<recording stem>` (with `mock_chunk_sizes` / `x-mock-chunk-sizes`, e.g. "7,13");
* pacing: `metadata["mock_token_delay_ms"]`, `metadata["mock_queue_ms"]` (background queued
  time), `metadata["mock_stall_ms"]` (a pause after `in_progress`; keepalives in background);
* faults: `MockServer.inject(...)` or header `x-mock-fault` (grammar in `_faults`).
"""

from __future__ import annotations

from ._app import MockApp, create_app
from ._arguments import DerivedArguments, arguments_from_text, schema_example
from ._config import MockAPIConfig
from ._errors import InvalidFault, InvalidScenario, MockAPIError, ServerNotRunning
from ._faults import Fault, parse_fault_header
from ._scripts import SCENARIOS, parse_scenario
from ._server import MockServer, run_forever, serve
from ._state import MockState, RecordedRequest, StoredResponse

__all__ = [
    "SCENARIOS",
    "DerivedArguments",
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
    "arguments_from_text",
    "create_app",
    "parse_fault_header",
    "parse_scenario",
    "run_forever",
    "schema_example",
    "serve",
]
