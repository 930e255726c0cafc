"""The official `openai` npm SDK on Node, through the gateway's /v1 (issue 8, item 2).

`sdk_check.mjs` runs one scenario with the SDK and prints what it got back, normalised. Pointed at
the gateway it must print what it prints pointed at the embedded server itself; with upstream
faults injected (a dropped Responses stream, a 429 storm) it must print what the undisturbed
gateway run printed. The SDK comes from `package-lock.json` by `npm ci` (once per session, when
`node_modules` is missing or was installed from another lock); without node or npm the module
is skipped, saying so.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamvisor.mockapi import Fault
from streamvisor.testing import GatewayThread, gateway_thread

HERE = Path(__file__).parent
LOCK = HERE / "package-lock.json"
MODULES = HERE / "node_modules"
#: Written after a successful `npm ci`: the digest of the lock it installed.
STAMP = MODULES / ".streamvisor-lock.sha256"
NODE = shutil.which("node")
NPM = shutil.which("npm")

NPM_TIMEOUT = 300.0
SCRIPT_TIMEOUT = 60.0

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are not on PATH: the Node SDK checks (tests/node) need both",
)

#: What the embedded server's `long:60` scenario says: its twelve words, five times round.
_TWELVE_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor"
LONG_TEXT = " ".join([_TWELVE_WORDS] * 5)


#: How `first_difference` names the two runs of a fault test.
UNDISTURBED = ("with the fault", "undisturbed")


def _sequence_numbers(events: list[dict[str, Any]]) -> list[int]:
    return [e["sequence_number"] for e in events]


#: The scenarios compared through the gateway and directly, each with what its result must show
#: (so that two equally broken runs cannot pass): a view of the result and its expected value.
COMPARED: dict[str, tuple[Callable[[Any], Any], Any]] = {
    "chat_text": (
        lambda r: (r["final"]["choices"][0]["message"]["content"], bool(r["chunks"][-1]["usage"])),
        ("You said: Hello from Node", True),
    ),
    "chat_tools": (
        lambda r: [(c["name"], c["arguments"]) for c in r["tool_calls"]],
        [("get_weather", {"city": "Paris"})],
    ),
    "chat_refusal": (
        lambda r: r["refusal"],
        "I'm sorry, I can't assist with that request.",
    ),
    "responses_stream": (
        lambda r: (r["output_text"], _sequence_numbers(r["events"])),
        ("You said: Hello from Node", list(range(14))),
    ),
    "responses_long": (
        lambda r: (r["output_text"], r["text"], r["final"]["status"]),
        (LONG_TEXT, LONG_TEXT, "completed"),
    ),
    "responses_tools": (
        lambda r: r["function_calls"],
        [["get_weather", {"city": "Paris"}]],
    ),
    "background": (
        lambda r: (r["created"]["status"], r["final"]["status"], r["output_text"], r["same_id"]),
        ("queued", "completed", "You said: Hello in the background", True),
    ),
    "cancel": (
        lambda r: (r["cancelled"]["status"], r["final"]["status"], r["same_id"]),
        ("cancelled", "cancelled", True),
    ),
    "resume": (
        lambda r: (
            _sequence_numbers(r["before"]),
            r["contiguous"],
            r["final_status"],
            r["final_text"],
        ),
        ([0, 1, 2, 3, 4], True, "completed", " ".join(LONG_TEXT.split()[:30])),
    ),
    "files": (
        lambda r: (
            len(r["listed"]),
            r["retrieved_equals_created"],
            r["content_equals_upload"],
            r["deleted"]["deleted"],
            r["after_delete"],
        ),
        (1, True, True, True, {"class": "NotFoundError", "status": 404}),
    ),
}


def _lock_digest() -> str:
    return hashlib.sha256(LOCK.read_bytes()).hexdigest()


def _explain(what: str, done: subprocess.CompletedProcess[str]) -> str:
    return (
        f"{what} exited {done.returncode}\n"
        f"--- stderr ---\n{done.stderr}\n--- stdout ---\n{done.stdout}"
    )


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """`tests/node/node_modules` installed from the lock (`npm ci` only when it is stale)."""
    digest = _lock_digest()
    if not (STAMP.is_file() and STAMP.read_text().strip() == digest):
        assert NPM is not None
        # npm's cache lives in the repository too (git-ignored), not in the user's home.
        env = {**os.environ, "npm_config_cache": str(HERE / ".npm-cache")}
        done = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"],
            cwd=HERE,
            env=env,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, _explain("npm ci", done)
        STAMP.write_text(digest + "\n")
    return HERE / "sdk_check.mjs"


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    with gateway_thread(tmp_path_factory.mktemp("node-sdk")) as gateway:
        yield gateway


def sdk_check(script: Path, base_url: str, api_key: str, scenario: str) -> Any:
    """Run `scenario` with the Node SDK against `base_url`; return its normalised result.
    Fails the test, showing node's stderr, if node exits non-zero or prints no JSON."""
    assert NODE is not None
    # Only what the script reads: no OPENAI_ORG_ID & co. leaking in from the caller's shell.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": api_key,
    }
    done = subprocess.run(
        [NODE, str(script), scenario],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, _explain(f"node sdk_check.mjs {scenario} ({base_url})", done)
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(_explain(f"node sdk_check.mjs {scenario} printed no JSON;", done))
    assert document["scenario"] == scenario
    return document["result"]


def through_gateway(script: Path, running: GatewayThread, scenario: str) -> Any:
    return sdk_check(script, running.v1_url, running.token, scenario)


def first_difference(
    got: Any, expected: Any, names: tuple[str, str] = ("gateway", "direct"), path: str = "$"
) -> str | None:
    """Where `got` first differs from `expected` (a JSON path and both values), or None;
    `names` say which run each came from."""
    if isinstance(got, dict) and isinstance(expected, dict):
        for key in sorted(set(got) | set(expected)):
            if key not in got or key not in expected:
                return f"{path}.{key}: only in the {names[0 if key in got else 1]} result"
            found = first_difference(got[key], expected[key], names, f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(got, list) and isinstance(expected, list):
        for i, (a, b) in enumerate(zip(got, expected, strict=False)):
            found = first_difference(a, b, names, f"{path}[{i}]")
            if found:
                return found
        if len(got) != len(expected):
            return f"{path}: {len(got)} items {names[0]}, {len(expected)} {names[1]}"
        return None
    if got != expected:
        return f"{path}: {names[0]} {json.dumps(got)} != {names[1]} {json.dumps(expected)}"
    return None


def posts_to(running: GatewayThread, path: str) -> list[Any]:
    """The POSTs to ``path`` the embedded server has seen so far."""
    return [
        r
        for r in running.run_sync(lambda: list(running.mockapi.requests))
        if (r.method, r.path) == ("POST", path)
    ]


def resumed_gets(running: GatewayThread) -> list[Any]:
    return [
        r
        for r in running.run_sync(lambda: list(running.mockapi.requests))
        if r.method == "GET"
        and r.path.startswith("/v1/responses/")
        and r.query.get("stream") == "true"
        and "starting_after" in r.query
    ]


class TestTheNodeSdkSeesTheGatewayAsTheServerItself:
    @pytest.mark.parametrize("scenario", COMPARED)
    def test_the_result_through_the_gateway_equals_the_result_from_the_embedded_server(
        self, node_sdk: Path, running: GatewayThread, scenario: str
    ) -> None:
        """One SDK scenario prints the same normalised result via /v1 as against upstream."""
        view, expected = COMPARED[scenario]
        direct = sdk_check(node_sdk, running.upstream_url, "sk-direct", scenario)
        assert view(direct) == expected, "the scenario did not do what it is for, even directly"
        via_gateway = through_gateway(node_sdk, running, scenario)
        assert via_gateway == direct, first_difference(via_gateway, direct)


class TestTheNodeSdkRaisesItsTypedErrors:
    def test_a_malformed_png_is_a_bad_request_error_naming_the_rule(
        self, node_sdk: Path, running: GatewayThread
    ) -> None:
        """A PNG cut short is refused by the file actor: `BadRequestError`, 400, "malformed"."""
        error = through_gateway(node_sdk, running, "bad_file")
        assert (error.get("class"), error.get("status")) == ("BadRequestError", 400), error
        assert (error["type"], error["param"]) == ("invalid_request_error", "file"), error
        assert "malformed" in error["message"].lower(), error

    def test_a_wrong_api_key_is_an_authentication_error(
        self, node_sdk: Path, running: GatewayThread
    ) -> None:
        """A key that is not the gateway's token: `AuthenticationError`, 401."""
        error = through_gateway(node_sdk, running, "wrong_key")
        assert (error.get("class"), error.get("status")) == ("AuthenticationError", 401), error
        assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key"), error
        assert error["message"], error


class TestUpstreamFaultsLeaveNoTraceInTheSdksStream:
    def test_a_responses_stream_dropped_upstream_is_resumed_without_a_gap_or_a_duplicate(
        self, node_sdk: Path, running: GatewayThread
    ) -> None:
        """Upstream cuts the stream mid-way; the SDK's events and final Response are unchanged."""
        undisturbed = through_gateway(node_sdk, running, "responses_long")
        resumes = len(resumed_gets(running))
        running.run_sync(
            functools.partial(
                running.mockapi.inject,
                Fault.drop_after(6000),
                method="POST",
                path="/v1/responses",
                times=1,
            )
        )
        disturbed = through_gateway(node_sdk, running, "responses_long")
        assert len(resumed_gets(running)) > resumes, "the daemon never resumed: was it cut?"
        assert disturbed == undisturbed, first_difference(disturbed, undisturbed, UNDISTURBED)

    @pytest.mark.parametrize(
        ("scenario", "path"),
        [("responses_long", "/v1/responses"), ("chat_text", "/v1/chat/completions")],
    )
    def test_a_429_storm_before_the_stream_is_retried_by_the_daemon_unseen(
        self, node_sdk: Path, running: GatewayThread, scenario: str, path: str
    ) -> None:
        """Two 429s (the daemon's default retry budget) then the stream: the SDK sees only it."""
        undisturbed = through_gateway(node_sdk, running, scenario)
        posts = len(posts_to(running, path))
        running.run_sync(
            functools.partial(
                running.mockapi.inject,
                Fault.status(429, retry_after=0.01),
                method="POST",
                path=path,
                times=2,
            )
        )
        disturbed = through_gateway(node_sdk, running, scenario)
        assert len(posts_to(running, path)) - posts == 3, "expected two 429s and one success"
        assert disturbed == undisturbed, first_difference(disturbed, undisturbed, UNDISTURBED)
