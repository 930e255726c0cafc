"""The routes the observer page reads: ``/tree``, ``/sessions``, ``/agents`` and
``/background?all=true`` -- over real HTTP on loopback, against the embedded server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from streamvisor.daemon import Daemon
from streamvisor.supervisor import ExitReason

#: What every tree node carries (the page and the OpenAPI document rely on exactly these).
NODE_KEYS = {
    "id",
    "name",
    "label",
    "kind",
    "actor",
    "alive",
    "restarting",
    "restarts",
    "restart_reasons",
    "last_exit",
    "last_exit_at",
    "mailbox",
    "children",
    "omitted",
    "child_restarts",
}

SLOW = {"mock_scenario": "long:400", "mock_token_delay_ms": "10"}


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [node]
    for child in node["children"]:
        nodes.extend(_walk(child))
    return nodes


def _named(tree: dict[str, Any], name: str) -> dict[str, Any]:
    [node] = [n for n in _walk(tree["root"]) if n["name"] == name]
    return node


async def _tree(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    response = await client.get("/tree", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _crash_files(client: httpx.AsyncClient, daemon: Daemon, message: str) -> dict[str, Any]:
    """Crash the file actor with ``RuntimeError(message)``; its node once it runs again."""
    ref = daemon.registry.whereis("files")
    assert ref is not None
    ref.kill(ExitReason.crashed(RuntimeError(message)))
    with trio.fail_after(5):
        while (
            not (files := _named(await _tree(client), "files"))["restarts"] or not (files["alive"])
        ):
            await trio.sleep(0.01)
    return files


class TestTree:
    async def test_every_actor_of_the_daemon_is_a_node_with_its_mailbox(
        self, client: httpx.AsyncClient
    ) -> None:
        tree = await _tree(client)
        assert tree["object"] == "tree"
        nodes = _walk(tree["root"])
        assert all(set(node) == NODE_KEYS for node in nodes)
        assert tree["root"]["kind"] == "supervisor"
        names = {node["name"] for node in nodes}
        assert {"files", "background", "sessions", "agents"} <= names
        files = _named(tree, "files")
        assert (files["kind"], files["alive"], files["restarts"]) == ("worker", True, 0)
        assert files["mailbox"]["used"] == 0
        assert isinstance(files["mailbox"]["size"], int)
        assert _named(tree, "sessions")["mailbox"]["size"] is None  # supervisors: unbounded

    async def test_a_crashed_actor_shows_its_restart_and_why(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        files = await _crash_files(client, daemon, "crashed on purpose")
        assert files["restart_reasons"] == {"crashed:RuntimeError": 1}
        assert (await _tree(client))["root"]["child_restarts"] == {"crashed:RuntimeError": 1}
        assert files["last_exit"] == "crashed(RuntimeError('crashed on purpose'))"
        assert isinstance(files["last_exit_at"], float)

    async def test_the_api_key_never_shows_in_a_last_exit(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        files = await _crash_files(client, daemon, "key sk-proj-abcdefghijklmnopqrstuvwx1234")
        assert "abcdefghijklmnop" not in files["last_exit"]

    async def test_the_background_pollers_supervisor_and_its_pollers_are_shown(
        self, client: httpx.AsyncClient
    ) -> None:
        slow = {"mock_scenario": "long:400", "mock_token_delay_ms": "50"}
        created = await client.post(
            "/background", json={"model": "gpt-4o", "input": "hi", "metadata": slow}
        )
        assert created.status_code == 200, created.text
        background = _named(await _tree(client), "background")
        [pollers] = background["children"]
        assert (pollers["id"], pollers["kind"]) == ("pollers", "supervisor")
        assert len(pollers["children"]) == 1
        await client.post(f"/background/{created.json()['id']}/cancel")

    async def test_sessions_are_bounded_by_max_children(
        self, client: httpx.AsyncClient, daemon: Daemon
    ) -> None:
        """The bound holds for every supervisor; the root's few children stay under it."""
        for n in range(12):
            await daemon.open_session(f"s{n}")
        tree = await _tree(client, max_children="10")
        sessions = _named(tree, "sessions")
        assert [n["name"] for n in sessions["children"]] == [f"session.s{n}" for n in range(10)]
        assert (sessions["omitted"], tree["root"]["omitted"]) == (2, 0)

    @pytest.mark.parametrize("bad", ["-1", "x", "10001", " 2", "1e3"])
    async def test_a_bad_bound_is_a_typed_400(self, client: httpx.AsyncClient, bad: str) -> None:
        response = await client.get("/tree", params={"max_children": bad})
        assert response.status_code == 400
        assert response.json()["error"]["field"] == "max_children"

    async def test_without_the_token_it_is_401(self, anonymous: httpx.AsyncClient) -> None:
        for path in ("/tree", "/sessions", "/agents", "/background?all=true"):
            assert (await anonymous.get(path)).status_code == 401, path


class TestSessions:
    async def test_a_running_stream_is_listed_with_its_cursor_moving(
        self, client: httpx.AsyncClient
    ) -> None:
        assert (await client.get("/sessions")).json() == {
            "object": "list",
            "data": [],
            "omitted": 0,
        }
        body = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "metadata": SLOW,
        }
        started = await client.post("/sessions/web/chat", json=body)
        assert started.status_code == 200, started.text
        stream_id = started.json()["stream_id"]
        cursors: list[int] = []
        with trio.fail_after(10):
            while len(set(cursors)) < 2:
                [session] = (await client.get("/sessions")).json()["data"]
                [stream] = session["streams"]
                cursors.append(stream["cursor"])
                await trio.sleep(0.05)
        assert session["id"] == "web"
        assert (stream["stream_id"], stream["api"], stream["state"]) == (
            stream_id,
            "chat",
            "streaming",
        )
        assert cursors == sorted(cursors)
        await client.post("/sessions/web/stop", json={})

    async def test_limit_bounds_the_list(self, client: httpx.AsyncClient, daemon: Daemon) -> None:
        for sid in ("a", "b", "c"):
            await daemon.open_session(sid)
        listed = (await client.get("/sessions", params={"limit": "2"})).json()
        assert [s["id"] for s in listed["data"]] == ["a", "b"]
        assert listed["omitted"] == 1


class TestAgents:
    async def test_open_agents_are_listed_in_start_order(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/agents")).json() == {"object": "list", "data": []}
        for agent in ("a2", "a1"):
            assert (await client.post(f"/agents/{agent}", json={"model": "gpt-4o"})).is_success
        listed = (await client.get("/agents")).json()
        assert listed["data"] == [{"id": "a2"}, {"id": "a1"}]


class TestBackgroundAll:
    async def test_finished_responses_stay_listed_newest_first(
        self, client: httpx.AsyncClient
    ) -> None:
        ids = []
        for text in ("first", "second"):
            created = await client.post("/background", json={"model": "gpt-4o", "input": text})
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
        with trio.fail_after(10):
            while (await client.get("/background")).json()["data"]:
                await trio.sleep(0.02)
        listed = (await client.get("/background", params={"all": "true"})).json()
        assert [b["id"] for b in listed["data"]] == ids[::-1]
        assert {b["status"] for b in listed["data"]} == {"completed"}
        one = (await client.get("/background", params={"all": "1", "limit": "1"})).json()
        assert [b["id"] for b in one["data"]] == [ids[1]]

    @pytest.mark.parametrize(("params"), [{"all": "yes"}, {"all": "true", "limit": "-3"}])
    async def test_bad_flags_are_typed_400s(
        self, client: httpx.AsyncClient, params: dict[str, str]
    ) -> None:
        response = await client.get("/background", params=params)
        assert response.status_code == 400
        assert response.json()["error"]["field"] in params
