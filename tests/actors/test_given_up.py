"""What subscribers get when a session or an agent is given up over its restart budget
(`report_session_given_up`, `agent_given_up_reporter`); no network, no clock."""

from __future__ import annotations

from typing import Any, cast

from streamvisor.actors import (
    GIVEN_UP_CODE,
    SessionDeps,
    SessionState,
    agent_given_up_reporter,
    report_session_given_up,
    session_factory,
)
from streamvisor.actors.sessions._values import _Record
from streamvisor.openai import StreamEvent
from streamvisor.supervisor import ActorRef, EventBus, ExitReason, GivenUp, RestartBudget

from ._session_support import FakeTracker

BUDGET = RestartBudget(3, 5.0)
LAST = ExitReason.crashed(RuntimeError("worker bug"))


def given_up(*args: object, name: str | None = None) -> GivenUp:
    return GivenUp(cast(ActorRef, None), name, args, LAST, BUDGET)


async def drained(bus: EventBus[Any], topic: str, publish: Any) -> list[StreamEvent]:
    async with bus.subscribe(topic) as subscription:
        publish()
        return list(subscription.drain())


class TestSessionGivenUp:
    async def test_each_stream_in_flight_ends_with_an_error_then_the_session_gets_one(self) -> None:
        bus: EventBus[Any] = EventBus()
        tracker = FakeTracker()
        deps = SessionDeps(client=cast(Any, None), bus=bus, tracker=tracker)
        state = SessionState("s1")
        durable = _Record("stream-1", "responses", "gpt-4o", {}, True, "resp_1", cursor=7)
        chat = _Record("stream-2", "chat", "gpt-4o", {}, False, "chatcmpl_2", cursor=3)
        unseen = _Record("stream-3", "responses", "gpt-4o", {}, True, None, cursor=None)
        ended = _Record("stream-4", "responses", "gpt-4o", {}, True, "resp_4", 5, "error")
        # Tracked (committed), its first event not yet published when the worker died.
        tracked = _Record("stream-5", "responses", "gpt-4o", {}, True, "resp_5", cursor=None)
        for record in (durable, chat, unseen, ended, tracked):
            state.streams[record.stream_id] = record
        notice = given_up(session_factory("s1", deps, state), name="session.s1")

        events = await drained(bus, "session.s1", lambda: report_session_given_up(notice))

        assert [(e.response_id, e.sequence_number, e.api) for e in events] == [
            ("resp_1", 8, "responses"),
            ("chatcmpl_2", 4, "chat"),
            (None, 0, "responses"),
        ]
        for event in events:
            assert event.type == "error"
            assert event.terminal
            assert event.session_id == "s1"
            assert event.data["code"] == GIVEN_UP_CODE
            assert event.data["origin"] == "supervisor"
            assert event.data["error_type"] == "RuntimeError"
            assert event.data["exit_reason"] == str(LAST)
            assert event.data["restart_budget"] == {"intensity": 3, "period": 5.0}
            assert event.data["message"] == (
                "restart budget exhausted (3 restarts in 5 s); "
                "last exit: crashed(RuntimeError('worker bug'))"
            )
        assert events[0].data["handed_over_to_polling"] is True
        assert "handed_over_to_polling" not in events[1].data
        # The durable responses still running are handed over to polling, even one no subscriber
        # saw start; nothing else is.
        assert tracker.finished == [("resp_1", "abandoned", None), ("resp_5", "abandoned", None)]
        assert (durable.ended, chat.ended) == ("error", "error")

    async def test_a_child_that_is_not_a_session_is_only_logged(self) -> None:
        bus: EventBus[Any] = EventBus()
        events = await drained(bus, "**", lambda: report_session_given_up(given_up("x")))
        assert events == []


class TestAgentGivenUp:
    async def test_the_agents_topic_gets_one_terminal_error(self) -> None:
        bus: EventBus[Any] = EventBus()
        report = agent_given_up_reporter(bus)
        notice = given_up("a1", {"model": "gpt-4o", "api": "chat"}, name="agent.a1")
        [event] = await drained(bus, "agent.a1", lambda: report(notice))
        assert (event.type, event.terminal, event.api, event.session_id) == (
            "error",
            True,
            "chat",
            "a1",
        )
        assert event.data["code"] == GIVEN_UP_CODE
