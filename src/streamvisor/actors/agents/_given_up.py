"""An agent given up by the ``agents`` supervisor (over its restart budget): its subscribers are
told on ``agent.<id>``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from streamvisor.supervisor import EventBus, GivenUp

from .._given_up import given_up_event

__all__ = ["agent_given_up_reporter"]

log = structlog.get_logger("streamvisor.actors")


def agent_given_up_reporter(bus: EventBus[Any]) -> Callable[[GivenUp], None]:
    """An ``on_give_up`` for a dynamic supervisor whose children are started with
    ``start_child(agent_id, kwargs)``: it publishes a terminal ``error`` event (code
    ``restart_budget_exhausted``, see `given_up_event`) on ``agent.<id>``. The agent's history
    is gone with it; ``open_agent`` with the same id starts a fresh one."""

    def report(given: GivenUp) -> None:
        agent_id = given.args[0] if given.args else None
        if not isinstance(agent_id, str):
            log.warning("agent.given_up_unknown_child", child=given.name, args=repr(given.args))
            return
        kwargs = given.args[1] if len(given.args) > 1 else {}
        api = kwargs.get("api") if isinstance(kwargs, Mapping) else None
        event = given_up_event(
            given, session_id=agent_id, api="chat" if api == "chat" else "responses"
        )
        bus.publish(f"agent.{agent_id}", event)
        log.error("agent.given_up", agent=agent_id, reason=str(given.reason))

    return report
