"""One small supervised actor per polled background response, and the bookkeeping they share.

Each `ResponsePoller` is a child of the background poller's ``DynamicSupervisor`` (restart
``transient``): it exits ``normal`` when its response is terminal, gone, or no longer polled, and
a crash (anything but the API's own errors) restarts it with the same arguments. It keeps no state
of its own: every iteration starts from the registry, so a restarted poller carries on where the
crashed one stopped, its error backoff included (``error_count`` is persisted).

The Erlang original spawned unlinked pollers that leaked, polled ``incomplete`` forever, slept a
fixed 2 s / 4 s and had no retry bound; here the interval follows ``openai-poll-after-ms``, errors
back off exponentially with jitter, and every terminal status ends the poller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
import structlog
import trio

from streamvisor.config import BackgroundSection
from streamvisor.openai import (
    APIStatusError,
    AuthenticationError,
    InsufficientQuotaError,
    NotFoundError,
    OpenAIClient,
    OpenAIError,
    PermissionDeniedError,
)
from streamvisor.supervisor import Actor, ExitReason, StopActor
from streamvisor.supervisor._bus import EventBus

from ._errors import IllegalTransition
from ._records import RESPONSE_STATUSES, TERMINAL_STATUSES, TrackedResponse
from ._status import BackgroundStatus, PollingStopped, error_backoff, poll_delay
from ._store import ResponseStore

__all__ = ["GONE_PREFIX", "ResponsePoller", "Shared", "describe_error", "publish"]

log = structlog.get_logger("streamvisor.background")

#: ``last_error`` of a response the server no longer knows starts with this.
GONE_PREFIX: Final = "response_gone"
#: Errors that no amount of waiting fixes: polling stops with a `PollingStopped` notice.
_PERMANENT: Final = (InsufficientQuotaError, AuthenticationError, PermissionDeniedError)


@attrs.define(eq=False)
class Shared:
    """What the background poller and its children share (one per running poller)."""

    client: OpenAIClient
    bus: EventBus[Any]
    store: ResponseStore
    section: BackgroundSection
    #: Wall-clock seconds for persisted timestamps (``time.time`` unless a test injects one).
    wall_clock: Callable[[], float]
    #: Random numbers in [0, 1) for the backoff jitter.
    random: Callable[[], float]
    #: The live poller of each response being polled.
    pollers: dict[str, ResponsePoller] = attrs.field(factory=dict)

    def polling(self, response_id: str) -> bool:
        """Whether a live poller follows ``response_id``."""
        poller = self.pollers.get(response_id)
        return poller is not None and poller.ref.alive


def publish(bus: EventBus[Any], note: BackgroundStatus | PollingStopped) -> None:
    """Publish on ``background.<id>`` and, with an owner, on ``session.<owner>``."""
    bus.publish(f"background.{note.response_id}", note)
    if note.owner is not None:
        bus.publish(f"session.{note.owner}", note)


def describe_error(err: OpenAIError) -> str:
    """``code: message`` for an API error (what goes in ``last_error``)."""
    code = getattr(err, "code", None)
    status = getattr(err, "status_code", None)
    label = code or (f"http_{status}" if status else type(err).__name__)
    return f"{label}: {err}"


def _response_error(response: Mapping[str, Any]) -> str | None:
    error = response.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('code') or 'error'}: {error.get('message') or ''}".rstrip()
    details = response.get("incomplete_details")
    if isinstance(details, Mapping) and details.get("reason"):
        return f"incomplete: {details['reason']}"
    return None


async def observe(
    shared: Shared, response_id: str, response: Mapping[str, Any] | None, status: str
) -> TrackedResponse | None:
    """Record ``status`` seen for a tracked response; publish a `BackgroundStatus` if it changed.

    Returns the stored record, or None when the response is not tracked. A status outside the
    API's six, or a terminal status contradicting the recorded one, is logged and ignored.
    Raises the store's errors.
    """
    if status not in RESPONSE_STATUSES:
        log.warning("background.unknown_status", response_id=response_id, status=status)
        return await shared.store.find(response_id)
    error = _response_error(response) if response is not None else None
    at = shared.wall_clock()
    try:
        change = await shared.store.record_status(
            response_id, status, at=at, error=error if status in TERMINAL_STATUSES else None
        )
    except IllegalTransition as exc:
        log.warning("background.conflicting_status", response_id=response_id, error=str(exc))
        return await shared.store.find(response_id)
    except KeyError:  # UnknownResponse: not (or no longer) tracked
        return None
    if change.changed:
        record = change.record
        publish(
            shared.bus,
            BackgroundStatus(
                response_id,
                record.status,
                change.previous,
                response,
                at,
                record.owner,
                error=record.last_error if record.is_terminal else None,
            ),
        )
        log.info(
            "background.status",
            response_id=response_id,
            status=record.status,
            previous=change.previous,
        )
    return change.record


async def mark_gone(shared: Shared, response_id: str, err: NotFoundError) -> None:
    """The server answered 404: a tracked, active response becomes ``failed`` (gone)."""
    record = await shared.store.find(response_id)
    if record is None or record.is_terminal:
        return
    at = shared.wall_clock()
    error = f"{GONE_PREFIX}: {err}"
    change = await shared.store.record_status(response_id, "failed", at=at, error=error)
    await shared.store.update(response_id, metadata={**record.metadata, "gone": True})
    if change.changed:
        publish(
            shared.bus,
            BackgroundStatus(
                response_id, "failed", change.previous, None, at, record.owner, error, gone=True
            ),
        )
    log.warning("background.gone", response_id=response_id, request_id=err.request_id)


async def stop_polling(shared: Shared, record: TrackedResponse, err: APIStatusError) -> None:
    """A permanent error: note it in the registry and tell the subscribers; polling ends."""
    at = shared.wall_clock()
    text = describe_error(err)
    await shared.store.record_poll(record.response_id, at=at, error=text)
    publish(
        shared.bus,
        PollingStopped(record.response_id, record.status, text, err.code, at, record.owner),
    )
    log.error(
        "background.polling_stopped",
        response_id=record.response_id,
        code=err.code,
        status_code=err.status_code,
        request_id=err.request_id,
    )


@attrs.frozen
class _Finished:
    """The poll loop ended: stop the actor normally (so ``transient`` does not restart it)."""


class ResponsePoller(Actor):
    """Polls one background response until it is terminal (child of the pollers' supervisor).

    ``first_delay`` is the wait before the first poll when the registry shows no error streak
    (0 for an adopted response: learn its state at once). Exits ``normal`` when done; anything
    other than an ``OpenAIError`` from a poll (a bug, a store failure) crashes it, and its
    supervisor restarts it from the registry.
    """

    mailbox_size = 8

    def __init__(self, shared: Shared, response_id: str, first_delay: float) -> None:
        self._shared = shared
        self.response_id = response_id
        self._first_delay = first_delay
        self._wakeup = trio.Event()

    async def init(self) -> None:
        self._shared.pollers[self.response_id] = self
        self.spawn(self._run)

    def wake(self) -> None:
        """Cut the current wait short: re-read the registry and poll now (if still needed)."""
        self._wakeup.set()

    async def handle_info(self, message: Any) -> None:
        if isinstance(message, _Finished):
            raise StopActor()
        await super().handle_info(message)

    async def terminate(self, reason: ExitReason) -> None:
        if self._shared.pollers.get(self.response_id) is self:
            del self._shared.pollers[self.response_id]

    async def _sleep(self, delay: float) -> None:
        with trio.move_on_after(delay):
            await self._wakeup.wait()
        self._wakeup = trio.Event()

    async def _run(self) -> None:
        await self._loop()
        self.ref.send(_Finished())

    async def _loop(self) -> None:
        shared, rid = self._shared, self.response_id
        store, section = shared.store, shared.section
        record = await store.find(rid)
        if record is None or record.is_terminal:
            return
        if record.error_count:
            delay = error_backoff(record.error_count, section, shared.random)
        else:
            delay = self._first_delay
        while True:
            # Nothing of the last poll is kept while the poller waits for the next (the
            # response as the server sent it, the record with its request): a poller lives as
            # long as its response runs, hours for a long one.
            record = polled = observed = None
            body: Any = None
            await self._sleep(delay)
            record = await store.find(rid)
            if record is None or record.is_terminal or record.mode != "poll":
                return
            try:
                polled = await shared.client.retrieve_response(rid)
            except NotFoundError as err:
                await mark_gone(shared, rid, err)
                return
            except _PERMANENT as err:
                await stop_polling(shared, record, err)
                return
            except OpenAIError as err:
                text = describe_error(err)
                record = await store.record_poll(rid, at=shared.wall_clock(), error=text)
                delay = error_backoff(
                    record.error_count, section, shared.random, getattr(err, "retry_after", None)
                )
                log.warning(
                    "background.poll_failed",
                    response_id=rid,
                    error=text,
                    errors=record.error_count,
                    retry_in=round(delay, 3),
                )
                continue
            body = polled.response  # typed dict, but it is whatever the server sent
            if not isinstance(body, dict):  # a proxy's HTML page, say
                text = f"malformed_response: not a JSON object: {str(body)[:200]!r}"
                record = await store.record_poll(rid, at=shared.wall_clock(), error=text)
                delay = error_backoff(record.error_count, section, shared.random)
                log.warning("background.poll_failed", response_id=rid, error=text)
                continue
            await store.record_poll(rid, at=shared.wall_clock())
            status = polled.status or ""
            observed = await observe(shared, rid, polled.response, status)
            if observed is None or observed.is_terminal:
                return
            delay = poll_delay(polled.poll_after, section)
