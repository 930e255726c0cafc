"""The cases issue 7 (part 8) names, as plain regression tests.

Each runs on the module's daemon (`daemon_under_test`): after each, no actor may have crashed
or restarted, ``/health`` must answer 200 and a chat stream must complete ("the daemon still
runs").
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from streamvisor.gateway._errors import scrub

from ._inputs import body_with, deep_text
from .conftest import (
    HELLO,
    MODEL,
    RunningDaemon,
    events_answer,
    expect_http_refusal,
    facade_refuses,
    route_refuses,
    topic_refused_alike,
    ws_refuses,
)

JSON = {"content-type": "application/json"}
CHAT = {"model": MODEL, "messages": HELLO}


@pytest.fixture(autouse=True)
def _adv_running(daemon_under_test: RunningDaemon) -> None:
    running = daemon_under_test
    running.run(running.daemon.open_session, "adv")


def test_four_gets_of_background_percent_01_are_typed_400s(
    daemon_under_test: RunningDaemon,
) -> None:
    """``GET /background/%01`` four times (it used to crash the poller until the root gave up)."""
    for attempt in range(4):
        route_refuses(
            daemon_under_test,
            f"GET /background/%01 #{attempt + 1}",
            "GET",
            "/background/%01",
            statuses=frozenset({400}),
        )


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_files_percent_01_is_a_typed_400(daemon_under_test: RunningDaemon, method: str) -> None:
    route_refuses(
        daemon_under_test, f"{method} /files/%01", method, "/files/%01", statuses=frozenset({400})
    )


def test_a_websocket_cancel_of_nul_is_a_typed_error_and_the_socket_stays_open(
    daemon_under_test: RunningDaemon,
) -> None:
    ws_refuses(
        daemon_under_test,
        "cancel '\\u0000'",
        json.dumps({"op": "cancel", "ref": 1, "response_id": "\u0000"}),
        1,
        statuses=frozenset({400}),
    )


@pytest.mark.parametrize("field", ["owner", "model"])
def test_a_100000_character_value_is_refused_as_fast_as_a_short_one(
    daemon_under_test: RunningDaemon, field: str
) -> None:
    """A long run of key characters in an error message once cost the credential scrubber
    quadratic time (a minute per message): it is answered within the probe's bound like any
    other refusal, and the message does not echo it whole."""
    command = {"op": "background", "ref": 2, "model": MODEL, "input": "hi"}
    command[field] = "x" + "a" * 100_000
    ws_refuses(
        daemon_under_test,
        f"background with a 100,001-character {field}",
        json.dumps(command),
        2,
        statuses=frozenset({400}),
    )


def test_the_scrubber_still_masks_after_a_long_run(daemon_under_test: RunningDaemon) -> None:
    text = "a" * 100_000 + " key abc******wxyz quoted"
    scrubbed = scrub(text)
    assert "wxyz" not in scrubbed
    assert scrubbed.startswith("a" * 100_000 + " key ")


@pytest.mark.parametrize("number", ["NaN", "1e999"])
def test_a_non_finite_temperature_twelve_times_is_twelve_typed_400s(
    daemon_under_test: RunningDaemon, number: str
) -> None:
    """``"temperature": NaN`` (or ``1e999``) in a chat body, twelve times in a row."""
    for attempt in range(12):
        route_refuses(
            daemon_under_test,
            f"temperature {number} #{attempt + 1}",
            "POST",
            "/sessions/adv/chat",
            content=body_with(CHAT, "temperature", number),
            headers=JSON,
            statuses=frozenset({400}),
        )


def _trailing_newline_calls(running: RunningDaemon) -> dict[str, Callable[[], Awaitable[Any]]]:
    daemon = running.daemon
    return {
        "open_session": lambda: daemon.open_session("s1\n"),
        "background.poll": lambda: daemon.background.poll("resp_1\n"),
        "background.cancel": lambda: daemon.background.cancel("resp_1\n"),
        "files.retrieve": lambda: daemon.files.retrieve("file-1\n"),
        "open_agent": lambda: daemon.open_agent("a1\n", model=MODEL),
    }


@pytest.mark.parametrize(
    "call", ["open_session", "background.poll", "background.cancel", "files.retrieve", "open_agent"]
)
def test_a_facade_id_with_a_trailing_newline_is_refused(
    daemon_under_test: RunningDaemon, call: str
) -> None:
    facade_refuses(
        daemon_under_test,
        f"{call} with a trailing newline",
        _trailing_newline_calls(daemon_under_test)[call],
    )


@pytest.mark.parametrize(
    ("method", "target", "body"),
    [
        ("POST", "/sessions/s1%0A/chat", CHAT),
        ("GET", "/sessions/adv%0A/streams", None),
        ("GET", "/background/resp_1%0A", None),
        ("GET", "/files/file-1%0A", None),
        ("POST", "/agents/a1%0A", {"model": MODEL}),
    ],
)
def test_a_path_id_with_a_trailing_newline_is_a_typed_400(
    daemon_under_test: RunningDaemon, method: str, target: str, body: Any
) -> None:
    route_refuses(
        daemon_under_test,
        f"{method} {target}",
        method,
        target,
        content=None if body is None else json.dumps(body).encode(),
        headers=None if body is None else JSON,
        statuses=frozenset({400}),
    )


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(body_with(CHAT, "messages", deep_text(100_000, "list")), id="deep-messages"),
        pytest.param(body_with(CHAT, "metadata", deep_text(100_000, "object")), id="deep-metadata"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deep-body"),
        pytest.param(b"[" * 100_000, id="unclosed-body"),
    ],
)
def test_json_100000_deep_is_a_typed_400(daemon_under_test: RunningDaemon, content: bytes) -> None:
    route_refuses(
        daemon_under_test,
        "100,000-deep JSON",
        "POST",
        "/sessions/adv/chat",
        content=content,
        headers=JSON,
        statuses=frozenset({400}),
    )


BAD_PATTERNS = ["session.\x00", "\x00", "session s1", "session. s1", " ", "session.s1\n"]


@pytest.mark.parametrize("pattern", BAD_PATTERNS)
def test_a_subscription_pattern_with_nul_or_spaces_is_refused(
    daemon_under_test: RunningDaemon, pattern: str
) -> None:
    """By the facade (a ValueError) and by ``/events`` (a typed 400)."""
    running = daemon_under_test

    async def subscribe() -> None:
        async with running.daemon.subscribe(pattern):
            pass

    facade_refuses(running, f"subscribe({pattern!r})", subscribe)
    with running.watch(f"/events?topic={pattern!r}"):
        expect_http_refusal(
            running.run(events_answer, running, pattern),
            f"/events?topic={pattern!r}",
            frozenset({400}),
        )


@pytest.mark.parametrize("pattern", ["session.\x00", "session s1", "a..b"])
def test_a_bad_websocket_topic_gets_the_same_typed_error_as_events(
    daemon_under_test: RunningDaemon, pattern: str
) -> None:
    topic_refused_alike(daemon_under_test, pattern)
