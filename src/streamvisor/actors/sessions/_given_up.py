"""A session given up by the ``sessions`` supervisor (over its restart budget): its subscribers
are told, on ``session.<id>``, in the session's own event vocabulary."""

from __future__ import annotations

import functools

import structlog

from streamvisor.supervisor import GivenUp

from .._given_up import given_up_event
from ._requests import session_topic
from ._session import StreamingSession
from ._values import SessionDeps, SessionState

__all__ = ["report_session_given_up"]

log = structlog.get_logger("streamvisor.actors")


def report_session_given_up(given: GivenUp) -> None:
    """The ``sessions`` supervisor's ``on_give_up``: publish a terminal ``error`` event (code
    ``restart_budget_exhausted``, see `given_up_event`) for every stream the session had in
    flight -- numbered after its last event, so each subscriber's stream ends -- then one for the
    session itself (no ``response_id``): it is gone until opened again.

    The child's argument is its `session_factory` partial, which holds the session's id, deps
    and `SessionState`. A durable stream's response keeps running server-side: it is handed over
    to polling (`DurableTracker.stream_abandoned`; its event says ``handed_over_to_polling``),
    so ``background.<response_id>`` reports how it ends.
    """
    factory = given.args[0] if given.args else None
    if not (isinstance(factory, functools.partial) and factory.func is StreamingSession):
        log.warning("session.given_up_unknown_child", child=given.name, args=repr(given.args))
        return
    session_id, deps, state = factory.args
    assert isinstance(deps, SessionDeps)
    assert isinstance(state, SessionState)
    topic = session_topic(session_id)
    for record in list(state.streams.values()):
        if record.ended is not None:
            continue  # it already got its terminal event
        handed_over = record.durable and record.response_id is not None and not record.terminal
        if handed_over and deps.tracker is not None and record.response_id is not None:
            # Even one whose first event was never published: tracked (committed) before it,
            # its response runs server-side and must be followed by someone.
            deps.tracker.stream_abandoned(record.response_id)
        if record.cursor is None:
            continue  # no subscriber saw it start: no event to end
        event = given_up_event(
            given,
            sequence_number=record.cursor + 1,
            response_id=record.response_id,
            session_id=session_id,
            api=record.api,
            extra={"handed_over_to_polling": True} if handed_over else None,
        )
        deps.bus.publish(topic, event)
        record.ended = event.type
    deps.bus.publish(topic, given_up_event(given, session_id=session_id))
    log.error(
        "session.given_up",
        session=session_id,
        in_flight=len(state.streams),
        reason=str(given.reason),
    )
