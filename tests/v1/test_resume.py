"""A client that disconnected comes back for the rest: ``responses.retrieve(id, stream=True,
starting_after=k)`` through the gateway replays the stream from the daemon's own event log,
exactly the events after k up to the terminal one, even when the upstream would refuse."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from streamvisor.mockapi import Fault
from streamvisor.testing import GatewayThread

from ._daemon import inject, mark, seen_since
from ._sdk import (
    FLAVOURS,
    Flavour,
    Observed,
    ResponsesHelper,
    ResponsesRaw,
    ResponsesReplay,
    assert_same,
    observe,
    scenario,
    wait_until,
    wire,
)

LABELS = ("replayed", "read whole")
LONG: dict[str, Any] = {"model": "gpt-4o", "input": "go on", **scenario("long:60")}
#: Paced (10 ms a token, 0.6 s in all) so that a client can come back while it still runs.
PACED: dict[str, Any] = {
    "model": "gpt-4o",
    "input": "go on",
    **scenario("long:60", mock_token_delay_ms="10"),
}


def leave_early(client: openai.OpenAI, count: int, **kwargs: Any) -> list[dict[str, Any]]:
    """Start a stream, read ``count`` events and disconnect; return what was read."""
    with client.responses.create(stream=True, **kwargs) as stream:
        seen = []
        for event in stream:
            seen.append(wire(event))
            if len(seen) == count:
                break
    assert len(seen) == count
    return seen


def completed(client: openai.OpenAI, response_id: str) -> None:
    """Wait until the response is no longer running, and check that it completed."""
    status = wait_until(
        lambda: (
            (s := client.responses.retrieve(response_id).status) not in ("queued", "in_progress")
            and s
        ),
        f"{response_id} finishes",
    )
    assert status == "completed"


def replay(
    running: GatewayThread, response_id: str, flavour: Flavour = "sync", **kwargs: Any
) -> Observed:
    return observe(flavour, running.v1_url, running.token, ResponsesReplay, response_id, **kwargs)


@pytest.fixture
def reference(running: GatewayThread) -> Observed:
    """The long stream through the gateway, read whole by a client that stayed."""
    return observe("sync", running.v1_url, running.token, ResponsesRaw, **LONG).normalised()


class TestReplayAfterTheClientLeft:
    @pytest.mark.parametrize("flavour", FLAVOURS)
    @pytest.mark.parametrize("read", [1, 4, 9])
    def test_the_events_after_k_are_exactly_the_rest_of_the_stream(
        self,
        running: GatewayThread,
        gateway: openai.OpenAI,
        reference: Observed,
        flavour: Flavour,
        read: int,
    ) -> None:
        """After reading ``read`` events and leaving, a client gets every later event once."""
        seen = leave_early(gateway, read, **LONG)
        response_id = seen[0]["response"]["id"]
        k = seen[-1]["sequence_number"]
        completed(gateway, response_id)
        rest = replay(running, response_id, flavour, starting_after=k)
        assert rest.sequence_numbers == [n for n in reference.sequence_numbers if n > k]
        assert rest.types[-1] == "response.completed"
        assert_same(Observed(seen + rest.events).normalised(), reference, LABELS)

    def test_without_starting_after_the_whole_stream_is_replayed(
        self, running: GatewayThread, gateway: openai.OpenAI, reference: Observed
    ) -> None:
        """``starting_after`` omitted, the replay starts from ``response.created``."""
        seen = leave_early(gateway, 3, **LONG)
        response_id = seen[0]["response"]["id"]
        completed(gateway, response_id)
        whole = replay(running, response_id)
        assert whole.types[0] == "response.created"
        assert whole.events[:3] == seen
        assert_same(whole.normalised(), reference, LABELS)

    def test_the_replay_comes_from_the_daemon_not_from_upstream(
        self, running: GatewayThread, gateway: openai.OpenAI, reference: Observed
    ) -> None:
        """With the upstream refusing every resume, the replay is whole and never asked it."""
        seen = leave_early(gateway, 5, **LONG)
        response_id = seen[0]["response"]["id"]
        completed(gateway, response_id)
        inject(running, Fault.status(400), "GET", f"/v1/responses/{response_id}", times=10)
        before = mark(running)
        rest = replay(running, response_id, starting_after=seen[-1]["sequence_number"])
        whole = replay(running, response_id)
        assert_same(whole.normalised(), reference, LABELS)
        assert_same(Observed(seen + rest.events).normalised(), reference, LABELS)
        asked = [r for r in seen_since(running, before) if response_id in r.path]
        assert asked == []

    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_the_stream_helper_resumes_a_stream_the_client_left(
        self, running: GatewayThread, gateway: openai.OpenAI, reference: Observed, flavour: Flavour
    ) -> None:
        """``responses.stream(response_id=id)`` builds the whole response of a stream left early."""
        seen = leave_early(gateway, 2, **LONG)
        response_id = seen[0]["response"]["id"]
        completed(gateway, response_id)
        resumed = observe(
            flavour, running.v1_url, running.token, ResponsesHelper, response_id=response_id
        )
        assert resumed.types == reference.types
        assert resumed.text == reference.deltas()
        assert resumed.final is not None
        assert resumed.final["status"] == "completed"


class TestForgetting:
    def test_a_deleted_response_is_not_replayed(
        self, running: GatewayThread, gateway: openai.OpenAI
    ) -> None:
        """After ``responses.delete`` the daemon's log forgets it too: a replay is a 404."""
        seen = leave_early(gateway, 3, **LONG)
        response_id = seen[0]["response"]["id"]
        completed(gateway, response_id)
        gateway.responses.delete(response_id)
        with pytest.raises(openai.NotFoundError):
            replay(running, response_id, starting_after=0)
        with pytest.raises(openai.NotFoundError):
            gateway.responses.retrieve(response_id)


class TestComingBackWhileItRuns:
    def test_a_client_that_comes_back_early_gets_the_rest_live(
        self, running: GatewayThread, gateway: openai.OpenAI, reference: Observed
    ) -> None:
        """Back before the end, the client gets the logged events then the live ones, gapless."""
        seen = leave_early(gateway, 6, **PACED)
        response_id = seen[0]["response"]["id"]
        status = gateway.responses.retrieve(response_id).status
        rest = replay(running, response_id, starting_after=seen[-1]["sequence_number"])
        full = Observed(seen + rest.events)
        assert status == "in_progress"
        assert full.sequence_numbers == reference.sequence_numbers
        assert full.types == reference.types
        assert full.deltas() == reference.deltas()
