"""A stream through ``/v1`` is observable on the daemon's bus: with ``x-streamvisor-session:
sdk-1`` a subscriber to ``session.sdk-1`` sees the very events the SDK client received."""

from __future__ import annotations

from typing import Any

import pytest

from streamvisor.testing import GatewayThread

from ._daemon import listening, watching
from ._sdk import FLAVOURS, Flavour, ResponsesHelper, ResponsesRaw, observe, scenario

SESSION = {"x-streamvisor-session": "sdk-1"}
#: What the daemon receives from upstream but a client that did not ask ``background`` is not sent.
NOT_RELAYED = frozenset({"response.queued", "keepalive"})


@pytest.mark.parametrize("flavour", FLAVOURS)
class TestObservedOnTheBus:
    @pytest.mark.parametrize(
        ("scenario_", "header"),
        [
            pytest.param(ResponsesRaw, {"extra_headers": SESSION}, id="raw-extra-headers"),
            pytest.param(
                ResponsesHelper, {"default_headers": SESSION}, id="helper-default-headers"
            ),
        ],
    )
    def test_a_subscriber_to_the_session_sees_the_clients_events(
        self, running: GatewayThread, flavour: Flavour, scenario_: Any, header: dict[str, Any]
    ) -> None:
        """The bus carries the stream's events in order: the same events, the same text."""
        with watching(running, "session.sdk-1") as bus:
            observed = observe(
                flavour,
                running.v1_url,
                running.token,
                scenario_,
                model="gpt-4o",
                input="hello",
                **header,
                **scenario("long:30"),
            )
            published = bus.events(observed.response_id)
        relayed = [e for e in published if e.type not in NOT_RELAYED]
        assert [e.type for e in relayed] == observed.types
        assert [e.data.get("delta") for e in relayed] == [e.get("delta") for e in observed.events]
        # The bus numbers the daemon's whole stream (``response.queued`` too): gapless.
        assert [e.sequence_number for e in published] == list(range(len(published)))
        text = "".join(e.data["delta"] for e in relayed if e.type == "response.output_text.delta")
        assert text == observed.deltas()
        assert len(text.split()) == 30
        assert {e.session_id for e in published} == {"sdk-1"}

    def test_another_session_sees_nothing_of_it(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """Only the named session's topic carries the stream."""
        with (
            watching(running, "session.sdk-1") as ours,
            watching(running, "session.sdk-2") as theirs,
        ):
            observed = observe(
                flavour,
                running.v1_url,
                running.token,
                ResponsesRaw,
                model="gpt-4o",
                input="hello",
                extra_headers=SESSION,
            )
            assert ours.events(observed.response_id)
            assert theirs.all() == []


class TestObservedThroughTheGatewaysEventStream:
    def test_events_of_the_session_topic_carry_the_clients_stream(
        self, running: GatewayThread
    ) -> None:
        """``GET /events?topic=session.sdk-1`` sends the stream's events as they happen."""
        with listening(running, "session.sdk-1") as received:
            observed = observe(
                "sync",
                running.v1_url,
                running.token,
                ResponsesRaw,
                model="gpt-4o",
                input="hello",
                extra_headers=SESSION,
                **scenario("long:20"),
            )
        ours = [e for e in received if "type" in e and e.get("response_id") == observed.response_id]
        relayed = [e for e in ours if e["type"] not in NOT_RELAYED]
        assert [e["type"] for e in relayed] == observed.types
        assert [e["data"].get("delta") for e in relayed] == [
            e.get("delta") for e in observed.events
        ]
        assert {e["session_id"] for e in ours} == {"sdk-1"}
