"""Every WebSocket command, fed generated bad arguments, gets a typed error and the socket stays
open; a bad topic is refused with the same typed error as on ``/events``.

A refusal (judged by `expect_ws_refusal`) is ``{"kind": "error", "ref": <the command's ref>,
"status": 4xx, "error": {"type", "message"}}``; a frame that cannot be parsed at all may answer
``ref: null``. After it the same socket must answer a ``ping``, nothing may have crashed or
restarted, and nothing may have reached the upstream API.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamvisor.gateway import _ws as gateway_ws

from . import _inputs as bad
from .conftest import (
    ADVERSARIAL,
    HELLO,
    MODEL,
    RunningDaemon,
    topic_refused_alike,
    ws_refuses,
)

#: A command of each op that the gateway would run.
COMMANDS: Final[dict[str, dict[str, Any]]] = {
    "chat": {"session": "adv", "model": MODEL, "messages": HELLO},
    "respond": {"session": "adv", "model": MODEL, "input": "Hello", "durable": False},
    "stop": {"session": "adv"},
    "streams": {"session": "adv"},
    "wait": {"session": "adv", "stream_id": "stream-000000000000", "timeout": 1},
    "background": {"model": MODEL, "input": "Hello"},
    "cancel": {"response_id": "resp_" + "0" * 48},
    "ping": {},
}
#: The id fields of each op.
ID_FIELDS: Final = [
    ("chat", "session"),
    ("respond", "session"),
    ("stop", "session"),
    ("stop", "stream_id"),
    ("streams", "session"),
    ("wait", "session"),
    ("wait", "stream_id"),
    ("cancel", "response_id"),
    ("background", "owner"),
]
#: Values of the wrong type, per (op, field).
WRONG: Final = [
    ("chat", "model", 1),
    ("chat", "messages", "x"),
    ("chat", "temperature", []),
    ("respond", "durable", "yes"),
    ("respond", "model", None),
    ("stop", "stream_id", 1),
    ("wait", "timeout", "x"),
    ("wait", "timeout", -1),
    ("background", "model", []),
    ("background", "owner", 1),
    ("cancel", "response_id", 1),
    ("cancel", "response_id", None),
    ("streams", "session", ["adv"]),
]


def command(op: str, ref: Any, **changes: Any) -> dict[str, Any]:
    return {"op": op, "ref": ref, **COMMANDS[op], **changes}


@pytest.fixture(autouse=True)
def _adv_running(daemon_under_test: RunningDaemon) -> None:
    """Session ``adv`` runs, so a command that names it is refused for what is wrong with it."""
    running = daemon_under_test
    running.run(running.daemon.open_session, "adv")


def test_the_table_covers_every_op_of_the_gateway() -> None:
    """A new op must join this suite."""
    assert set(COMMANDS) == set(gateway_ws._OPS)


def _command_id_refused(running: RunningDaemon, op: str, field: str, value: str) -> None:
    """``value`` as ``op``'s ``field`` is a typed 400 echoing the command's ref."""
    ws_refuses(
        running,
        f"{op} with {field} = {bad.shown(value)}",
        json.dumps(command(op, 7, **{field: value})),
        7,
        statuses=frozenset({400}),
    )


def test_a_malformed_id_in_a_command_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    """``session``, ``stream_id``, ``response_id``, ``owner``: NUL, newlines, traversal..."""
    running = daemon_under_test

    @ADVERSARIAL
    @given(st.sampled_from(ID_FIELDS), bad.malformed_id_texts("x"))
    def example(where: tuple[str, str], value: str) -> None:
        _command_id_refused(running, *where, value)

    example()


def test_every_named_bad_id_in_a_command_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    """Each of `NAMED_BAD_IDS` in each id field: what the generated cases may not draw."""
    running = daemon_under_test
    for op, field in ID_FIELDS:
        for value in bad.NAMED_BAD_IDS:
            _command_id_refused(running, op, field, value)


def test_a_value_no_json_may_hold_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    """NaN, Infinity, 1e999, lone surrogates, deep nesting, in any field of any op."""
    running = daemon_under_test
    fields = [(op, f) for op, body in COMMANDS.items() for f in [*body, "metadata"]]

    @ADVERSARIAL
    @given(st.sampled_from(fields), bad.bad_field_texts())
    def example(where: tuple[str, str], text: tuple[str, Any]) -> None:
        (op, field), (label, make) = where, text
        frame = bad.body_with(command(op, 8), field, make()).decode("utf-8", "surrogatepass")
        ws_refuses(
            running,
            f"{op} with {field} = {label}",
            frame,
            8,
            statuses=frozenset({400, 413, 422}),
            ref_unreadable=label.startswith("deep_text"),
        )

    example()


def test_a_field_of_the_wrong_type_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    running = daemon_under_test

    @ADVERSARIAL
    @given(st.sampled_from(WRONG))
    def example(case: tuple[str, str, Any]) -> None:
        op, field, value = case
        ws_refuses(
            running,
            f"{op} with {field} = {value!r}",
            json.dumps(command(op, 9, **{field: value})),
            9,
            statuses=frozenset({400, 422}),
        )

    example()


UNPARSEABLE: Final = (
    *(bad.Bad(repr(t), lambda t=t: t) for t in ("{", "[]", '"chat"', "null", "NaN", '{"op": 1')),
    bad.Bad("'[' * 100000", lambda: "[" * 100_000),
    bad.Bad("'{\"op\":' * 100000", lambda: '{"op":' * 100_000),
)


def test_a_frame_that_is_not_a_command_is_a_typed_400(daemon_under_test: RunningDaemon) -> None:
    """Not JSON, not an object, 100,000 open brackets, an unknown or missing op, bytes that are
    not UTF-8: a typed error, and the socket stays open."""
    running = daemon_under_test

    def framed(value: Any, ref: Any) -> tuple[bad.Bad, Any]:
        return bad.Bad(repr(value), lambda: value), ref

    frames = st.one_of(
        st.sampled_from(UNPARSEABLE).map(lambda b: (b, None)),
        st.sampled_from(["fly", "chat\x00", "", "PING", 1, None, ["chat"]]).map(
            lambda op: framed(json.dumps({"op": op, "ref": 10}), 10)
        ),
        st.just(framed(json.dumps({"ref": 10}), 10)),
        st.sampled_from([b"\xff\xfe", b'{"op": "ping", "ref": 10}\xff']).map(
            lambda b: framed(b, None)
        ),
    )

    @ADVERSARIAL
    @given(frames)
    def example(case: tuple[bad.Bad, Any]) -> None:
        frame, ref = case
        ws_refuses(
            running,
            f"frame {frame!r}",
            frame.make(),
            ref,
            statuses=frozenset({400, 413}),
            ref_unreadable=ref is None,
        )

    example()


def test_a_bad_topic_gets_the_same_typed_error_as_on_events(
    daemon_under_test: RunningDaemon,
) -> None:
    """``/ws?topic=`` and ``/events?topic=`` answer one bad pattern alike: the SSE route with a
    typed 400, the WebSocket either by refusing the handshake with that status and body, or by
    accepting it only to send that error (``kind: error``) and close."""
    running = daemon_under_test

    @ADVERSARIAL
    @given(bad.bad_topics())
    def example(topic: str) -> None:
        topic_refused_alike(running, topic)

    example()
