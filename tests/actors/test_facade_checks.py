"""The handles check every id and body in the caller's task, before any hop to an actor.

Each handle here addresses a name nobody holds: a check that ran after the hop would raise
``NoSuchActor``; the typed ``ValueError`` proves it ran first.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.actors import (
    NAME_PATTERN,
    ActorsLayerError,
    AgentHandle,
    BackgroundHandle,
    FilesHandle,
    InvalidAgentId,
    InvalidBackgroundRequest,
    InvalidFileId,
    InvalidResponseId,
    InvalidSessionId,
    InvalidStreamId,
    SessionHandle,
    check_session_id,
)
from streamvisor.openai import InvalidParameter
from streamvisor.supervisor import NoSuchActor, Registry

BAD_API_IDS = ["../files", "resp_1\n", "%01", "\x00", "a/b", "", " x", "x" * 257, None, 7]
BAD_NAMES = ["s1\n", "a.b", "a*", "", "x" * 129, "s 1", "s/1", "\x00", None]
MESSAGES = [{"role": "user", "content": "hi"}]


def nowhere() -> Registry:
    return Registry()


class TestIds:
    @pytest.mark.parametrize(
        "error",
        [InvalidAgentId, InvalidFileId, InvalidResponseId, InvalidSessionId, InvalidStreamId],
    )
    def test_every_id_error_is_a_ValueError_under_the_layer_root(self, error: type) -> None:
        assert issubclass(error, ActorsLayerError)
        assert issubclass(error, ValueError)

    @pytest.mark.parametrize("bad", BAD_API_IDS)
    async def test_a_response_id_is_checked_before_the_poller_is_looked_up(
        self, bad: Any, autojump_clock: trio.testing.MockClock
    ) -> None:
        handle = BackgroundHandle.from_registry(nowhere(), "background")
        for call in (handle.poll, handle.cancel, handle.get):
            with pytest.raises(InvalidResponseId) as caught:
                await call(bad)
            assert (caught.value.field, caught.value.value) == ("response_id", bad)
        with pytest.raises(NoSuchActor):
            await handle.poll("resp_1")

    @pytest.mark.parametrize("bad", BAD_API_IDS)
    async def test_a_file_id_is_checked_before_the_file_actor_is_looked_up(self, bad: Any) -> None:
        handle = FilesHandle.registered(nowhere(), "files")
        for call in (handle.retrieve, handle.content, handle.delete):
            with pytest.raises(InvalidFileId) as caught:
                await call(bad)
            assert (caught.value.field, caught.value.value) == ("file_id", bad)

    @pytest.mark.parametrize("bad", BAD_NAMES)
    def test_session_and_agent_ids_are_matched_in_full(self, bad: Any) -> None:
        with pytest.raises(InvalidSessionId) as session:
            check_session_id(bad)
        assert (session.value.field, session.value.value) == ("session_id", bad)
        with pytest.raises(InvalidAgentId) as agent:
            AgentHandle(nowhere().ref("agent.x"), bad)
        assert (agent.value.field, agent.value.value) == ("agent_id", bad)

    def test_the_name_pattern_is_the_one_documented(self) -> None:
        assert NAME_PATTERN == r"[A-Za-z0-9_\-:@+=]{1,128}"
        assert check_session_id("a-b_c:d@e+f=g") == "a-b_c:d@e+f=g"

    @pytest.mark.parametrize("bad", ["stream-1\n", "stream-0", "stream-", "../x", "1", 7])
    async def test_a_stream_id_is_checked_before_the_worker_is_looked_up(self, bad: Any) -> None:
        handle = SessionHandle(nowhere().ref("session.s1"), "s1")
        with pytest.raises(InvalidStreamId):
            await handle.wait(bad)
        with pytest.raises(InvalidStreamId):
            await handle.stop(bad)
        with pytest.raises(NoSuchActor):
            await handle.wait("stream-1")

    async def test_a_background_owner_is_a_session_id(self) -> None:
        handle = BackgroundHandle.from_registry(nowhere(), "background")
        for owner in ("s1\n", "a.b", ""):
            with pytest.raises(InvalidBackgroundRequest):
                await handle.create("hi", "gpt-4o", owner=owner)


NOT_JSON: list[tuple[dict[str, Any], str]] = [
    ({"temperature": float("nan")}, "temperature"),
    ({"temperature": json.loads("1e999")}, "temperature"),
    ({"metadata": {"k": object()}}, "metadata.k"),
    ({"metadata": {"k": {1, 2}}}, "metadata.k"),
]


class TestBodies:
    @pytest.mark.parametrize(("params", "field"), NOT_JSON)
    async def test_session_bodies_are_plain_json(self, params: dict[str, Any], field: str) -> None:
        handle = SessionHandle(nowhere().ref("session.s1"), "s1")
        with pytest.raises(InvalidParameter) as caught:
            await handle.chat("gpt-4o", MESSAGES, **params)
        assert caught.value.field == field
        with pytest.raises(InvalidParameter) as caught:
            await handle.respond("gpt-4o", "hi", **params)
        assert caught.value.field == field

    async def test_a_message_that_is_not_json_is_named_by_its_path(self) -> None:
        handle = SessionHandle(nowhere().ref("session.s1"), "s1")
        messages = [*MESSAGES, {"role": "user", "content": [{"type": "text", "x": float("inf")}]}]
        with pytest.raises(InvalidParameter) as caught:
            await handle.chat("gpt-4o", messages)
        assert caught.value.field == "messages[1].content[0].x"

    @pytest.mark.parametrize(("params", "field"), NOT_JSON)
    async def test_background_bodies_are_plain_json(
        self, params: dict[str, Any], field: str
    ) -> None:
        handle = BackgroundHandle.from_registry(nowhere(), "background")
        with pytest.raises(InvalidParameter) as caught:
            await handle.create("hi", "gpt-4o", **params)
        assert caught.value.field == field
        with pytest.raises(InvalidParameter) as caught:
            await handle.create([{"role": "user", "content": params}], "gpt-4o")
        assert caught.value.field.startswith("input[0].content.")

    async def test_a_files_list_purpose_is_a_str(self) -> None:
        handle = FilesHandle.registered(nowhere(), "files")
        with pytest.raises(TypeError):
            await handle.list(purpose={"x": 1})  # type: ignore[arg-type]
