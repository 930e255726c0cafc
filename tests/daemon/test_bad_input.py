"""A caller's bad input is a typed error, never a crash (issue 7).

Bad ids of every kind and request parameters the API cannot take as JSON are refused at the
facade with a ``ValueError`` naming the field and the value, before any actor or network work:
the server sees no request, no actor restarts, and the daemon serves the next request normally.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from streamvisor import actors
from streamvisor.daemon import Daemon
from streamvisor.mockapi import MockServer
from streamvisor.openai import InvalidParameter
from streamvisor.supervisor import ActorRef

from .test_faults import assert_tree_serves

BAD_IDS = ["../files", "resp_1\n", "%01", "\x00", "a/b", "", "x?y", " resp_1"]


def server_of(daemon: Daemon) -> MockServer:
    assert daemon.mockapi is not None
    return daemon.mockapi


def live(daemon: Daemon, name: str) -> ActorRef:
    ref = daemon.registry.whereis(name)
    assert ref is not None, name
    return ref


async def _maybe(value: object) -> object:
    """Await ``value`` if it is awaitable (a lookup may be sync or async)."""
    if isinstance(value, Awaitable):
        return await value
    return value


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


async def refused(
    daemon: Daemon, call: Callable[[], Awaitable[object]], error: type[Exception]
) -> Exception:
    """``call()`` raises ``error`` (a ValueError) and the server saw no request."""
    before = len(server_of(daemon).requests)
    with pytest.raises(error) as caught:
        await call()
    assert isinstance(caught.value, ValueError)
    assert len(server_of(daemon).requests) == before
    return caught.value


class TestBadIds:
    """Ids of every kind are matched in full against a strict pattern, at the facade."""

    @pytest.mark.parametrize("bad", BAD_IDS)
    async def test_a_bad_response_id_is_refused_and_the_poller_is_untouched(
        self, daemon: Daemon, bad: str
    ) -> None:
        poller = live(daemon, "background")
        background = daemon.background
        with trio.fail_after(10):
            for call in (background.poll, background.cancel, background.get):
                err = await refused(daemon, partial(call, bad), actors.InvalidResponseId)
                assert err.field == "response_id"
                assert err.value == bad
                assert repr(bad)[:20] in str(err)
            with pytest.raises(actors.InvalidResponseId):
                async with background.stream(bad, starting_after=1):
                    pass
        assert live(daemon, "background") is poller

    async def test_many_bad_polls_never_stop_the_daemon(self, daemon: Daemon) -> None:
        """Four `poll("%01")` used to crash the poller four times and stop the whole daemon."""
        refs = {name: live(daemon, name) for name in ("files", "background", "sessions")}
        with trio.fail_after(20):
            for _ in range(6):
                for bad in ("%01", "../files"):
                    with pytest.raises(ValueError):
                        await daemon.background.poll(bad)
                    with pytest.raises(ValueError):
                        await daemon.files.delete(bad)
            assert {name: live(daemon, name) for name in refs} == refs
            await assert_tree_serves(daemon)

    async def test_poll_of_dot_dot_files_never_lists_the_files(self, daemon: Daemon) -> None:
        with pytest.raises(ValueError):
            await daemon.background.poll("../files")
        assert not [r for r in server_of(daemon).requests if r.path.startswith("/v1/files")]

    @pytest.mark.parametrize("bad", BAD_IDS)
    async def test_a_bad_file_id_is_refused_and_the_file_actor_is_untouched(
        self, daemon: Daemon, bad: str
    ) -> None:
        files_actor = live(daemon, "files")
        with trio.fail_after(10):
            for call in (daemon.files.retrieve, daemon.files.content, daemon.files.delete):
                err = await refused(daemon, partial(call, bad), actors.InvalidFileId)
                assert err.field == "file_id"
                assert err.value == bad
        assert live(daemon, "files") is files_actor

    @pytest.mark.parametrize("bad", ["s1\n", "a.b", "*", "", "x" * 129, "s 1", "s/1"])
    async def test_a_bad_session_id_is_refused_before_any_worker_starts(
        self, daemon: Daemon, bad: str
    ) -> None:
        with pytest.raises(actors.InvalidSessionId) as caught:
            await daemon.open_session(bad)
        assert caught.value.field == "session_id"
        assert caught.value.value == bad
        for lookup in (daemon.session, daemon.close_session):
            with pytest.raises(actors.InvalidSessionId):
                await _maybe(lookup(bad))
        assert (await daemon.status()).sessions == 0

    @pytest.mark.parametrize("bad", ["stream-1\n", "../x", "\x00", ""])
    async def test_a_bad_stream_id_is_refused_at_the_handle(self, daemon: Daemon, bad: str) -> None:
        session = await daemon.open_session("ids")
        worker = live(daemon, "session.ids")
        for call in (session.wait, session.stop):
            with pytest.raises(actors.InvalidStreamId) as caught:
                await call(bad)
            assert caught.value.field == "stream_id"
            assert isinstance(caught.value, ValueError)
        assert live(daemon, "session.ids") is worker

    @pytest.mark.parametrize("bad", ["a1\n", "a.b", "", "a 1", "x" * 129])
    async def test_a_bad_agent_id_is_refused_before_anything_starts(
        self, daemon: Daemon, bad: str
    ) -> None:
        with pytest.raises(actors.InvalidAgentId) as caught:
            await daemon.open_agent(bad, model="gpt-4o")
        assert isinstance(caught.value, actors.InvalidAgentConfig)
        assert caught.value.field == "agent_id"
        for lookup in (daemon.agent, daemon.close_agent):
            with pytest.raises(actors.InvalidAgentId):
                await _maybe(lookup(bad))
        assert (await daemon.status()).agents == 0


NOT_JSON: list[tuple[dict[str, Any], str]] = [
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": json.loads("1e999")}, "temperature"),
    ({"top_p": -float("inf")}, "top_p"),
    ({"metadata": {"when": object()}}, "metadata.when"),
    ({"metadata": nested(200)}, "metadata"),
    ({"metadata": {1: "x"}}, "metadata"),
]


class TestParamsThatAreNotJson:
    """NaN, ±Infinity, non-JSON objects and deep nesting: refused naming the field; nothing
    restarts; the next request is served."""

    @pytest.mark.parametrize(("params", "field"), NOT_JSON)
    async def test_a_chat_with_a_param_that_is_not_json_leaves_the_worker_running(
        self, daemon: Daemon, params: dict[str, Any], field: str
    ) -> None:
        session = await daemon.open_session("nan")
        worker = live(daemon, "session.nan")
        messages = [{"role": "user", "content": "hi"}]
        with trio.fail_after(10):
            err = await refused(
                daemon, partial(session.chat, "gpt-4o", messages, **params), ValueError
            )
            assert getattr(err, "field", "").startswith(field), err
            err = await refused(
                daemon, partial(session.respond, "gpt-4o", "hi", **params), ValueError
            )
            assert getattr(err, "field", "").startswith(field), err
            async with daemon.subscribe("session.nan") as events:
                ticket = await session.chat("gpt-4o", messages)
                async for event in events:
                    if event.terminal:
                        break
        assert event.type == "response.completed"
        assert ticket.session_id == "nan"
        assert live(daemon, "session.nan") is worker

    async def test_a_responses_input_that_is_not_json_is_named_by_its_path(
        self, daemon: Daemon
    ) -> None:
        session = await daemon.open_session("input")
        items = [{"role": "user", "content": "a"}, {"role": "user", "content": float("nan")}]
        err = await refused(daemon, partial(session.respond, "gpt-4o", items), ValueError)
        assert getattr(err, "field", None) == "input[1].content"

    @pytest.mark.parametrize(("params", "field"), NOT_JSON)
    async def test_a_background_create_with_a_param_that_is_not_json_leaves_the_poller_running(
        self, daemon: Daemon, params: dict[str, Any], field: str
    ) -> None:
        poller = live(daemon, "background")
        with trio.fail_after(10):
            err = await refused(
                daemon, partial(daemon.background.create, "hi", "gpt-4o", **params), ValueError
            )
            assert getattr(err, "field", "").startswith(field), err
            record = await daemon.background.create("hi", "gpt-4o")
        assert record.response_id.startswith("resp_")
        assert live(daemon, "background") is poller

    async def test_a_background_input_that_is_not_json_is_refused(self, daemon: Daemon) -> None:
        err = await refused(
            daemon, partial(daemon.background.create, [{"x": float("inf")}], "gpt-4o"), ValueError
        )
        assert getattr(err, "field", None) == "input[0].x"

    async def test_agent_options_that_are_not_json_are_refused_before_it_starts(
        self, daemon: Daemon
    ) -> None:
        with pytest.raises(ValueError) as caught:
            await daemon.open_agent("nan", model="gpt-4o", options={"temperature": float("nan")})
        assert "temperature" in str(caught.value)
        assert (await daemon.status()).agents == 0

    async def test_the_wire_error_is_an_InvalidParameter(self, daemon: Daemon) -> None:
        """The facades raise the wire layer's own error, so one ``except`` covers them all."""
        session = await daemon.open_session("wire")
        with pytest.raises(InvalidParameter):
            await session.chat(
                "gpt-4o", [{"role": "user", "content": "x"}], temperature=float("nan")
            )
        with pytest.raises(InvalidParameter):
            await daemon.background.create("hi", "gpt-4o", temperature=float("nan"))
