"""What the subscribers of an actor that was given up receive.

A session, agent or background poller that crash-loops beyond its own restart budget
(`RestartBudget`, ``[supervisor] <level>_child_*``) is given up by its dynamic supervisor: not
restarted, forgotten; its siblings keep running. The supervisor's ``on_give_up`` observer tells
the actor's subscribers, in the vocabulary of its topic:

* ``session.<id>`` / ``agent.<id>``: a terminal `StreamEvent` of type ``error`` whose ``data`` has
  the shape of the session's own error events (``type``, ``sequence_number``, ``code``,
  ``message``, ``param``, ``error_type``, ``status``, ``request_id``, ``origin``) with ``code``
  `GIVEN_UP_CODE`, ``origin`` ``"supervisor"``, and ``exit_reason`` / ``restart_budget``;
* ``background.<id>``: a `PollingStopped` notice with that code (the response is still active
  server-side and in the registry; ``poll()`` resumes polling it).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from streamvisor.openai import StreamEvent
from streamvisor.supervisor import GivenUp

if TYPE_CHECKING:
    from .sessions._requests import Api

__all__ = ["GIVEN_UP_CODE", "given_up_event", "given_up_message"]

#: The ``code`` of what subscribers get when their actor was given up.
GIVEN_UP_CODE: Final = "restart_budget_exhausted"


def given_up_message(given: GivenUp) -> str:
    """``restart budget exhausted (3 restarts in 5 s); last exit: crashed(...)``."""
    budget = given.budget
    return (
        f"restart budget exhausted ({budget.intensity} restarts in {budget.period:g} s); "
        f"last exit: {given.reason}"
    )


def given_up_event(
    given: GivenUp,
    *,
    sequence_number: int = 0,
    response_id: str | None = None,
    session_id: str | None = None,
    api: Api = "responses",
    extra: Mapping[str, Any] | None = None,
) -> StreamEvent:
    """The terminal ``error`` event telling a topic's subscribers that its actor was given up
    (for the stream ``response_id`` when given, numbered after its last event); ``extra`` is
    added to its ``data``."""
    exception = given.reason.exception
    data: dict[str, Any] = {
        "type": "error",
        "sequence_number": sequence_number,
        "code": GIVEN_UP_CODE,
        "message": given_up_message(given),
        "param": None,
        "error_type": type(exception).__name__ if exception is not None else None,
        "status": None,
        "request_id": None,
        "origin": "supervisor",
        "exit_reason": str(given.reason),
        "restart_budget": {"intensity": given.budget.intensity, "period": given.budget.period},
        **(extra or {}),
    }
    return StreamEvent("error", sequence_number, data, response_id, session_id, api, time.time())
