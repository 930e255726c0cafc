"""Actor handles: ``ActorRef`` (call/cast/send/stop/kill/monitor), ``Caller``, ``Monitor``.

The message path has no extra hop: ``cast`` is one ``send_nowait``; ``call`` is one ``send`` plus
a one-shot wake-up of the calling task (``Caller``), so a reply after the caller gave up is simply
dropped (OTP GS-03) and the callee's death wakes every pending caller with ``ActorExited`` (GS-02).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import outcome
import structlog
import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule, wait_task_rescheduled

from ._errors import ActorExited, CallingSelf, CallTimeout, InvalidTimeout
from ._reason import KILLED, NOPROC, NORMAL, SHUTDOWN, Down, Exit, ExitReason

if TYPE_CHECKING:
    from ._actor import Actor
    from ._registry import Registry

__all__ = [
    "ActorRef",
    "Caller",
    "MailboxStatistics",
    "Monitor",
    "NoReply",
    "StopActor",
]

log = structlog.get_logger("streamvisor.supervisor")

R = TypeVar("R", bound="ActorRef")

# Mailbox items are (tag, payload, extra) triples: one tuple unpack per message.
_CALL = 0
_CAST = 1
_INFO = 2
_DOWN = 3  # (DOWN, Down, Monitor): dropped if demonitored meanwhile
_EXIT = 4  # (EXIT, Exit, None): a trapped link exit
_Item = tuple[int, Any, Any]

_serial = itertools.count(1)


class _NoReplyType:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NoReply"


#: Returned by ``handle_call`` to reply later with ``caller.reply(value)`` (OTP ``{noreply, S}``).
NoReply: Any = _NoReplyType()
_UNSET: Any = object()


def _valid_timeout(timeout: object) -> bool:
    """A number of seconds >= 0 (``math.inf`` included); not NaN, not a bool, not a str."""
    return isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0


class StopActor(Exception):
    """Raise from a callback to stop the actor with ``reason`` after replying ``reply`` (if given)
    to the current caller. ``terminate(reason)`` runs."""

    def __init__(self, reason: ExitReason = NORMAL, reply: object = _UNSET) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reply = reply


class _Watcher(Protocol):
    def _on_exit(self, ref: ActorRef, reason: ExitReason) -> None: ...


class Caller:
    """Where a call's reply goes. ``reply`` or ``fail`` may be called from any task, at most once;
    a reply after the caller timed out, or a second reply, is silently dropped.

    ``fail(error)`` is OTP's ``{reply, {error, Reason}, State}``: the call raises ``error`` in the
    caller and the actor carries on. It is how an actor refuses a request (bad input, a rule
    broken, a resource gone); an exception *raised* from ``handle_call`` crashes the actor instead
    (let it crash), which is for bugs only.
    """

    __slots__ = ("_outcome", "_ref", "_state", "_task")

    # _state: 0 = request sent, caller not yet asleep; 1 = caller asleep; 2 = done.
    def __init__(self, task: Task, ref: ActorRef) -> None:
        self._task = task
        self._ref = ref
        self._state = 0
        self._outcome: outcome.Outcome[Any] | None = None

    @property
    def replied(self) -> bool:
        """True once a reply (or the callee's death, or the caller's timeout) settled the call."""
        return self._state == 2

    def reply(self, value: object) -> None:
        """Send ``value`` to the caller. Never raises; dropped if the caller is gone."""
        self._settle(outcome.Value(value))

    def fail(self, error: Exception) -> Any:
        """Make the call raise ``error`` in the caller. Never raises; dropped if the caller is
        gone. Returns ``NoReply``, so ``handle_call`` can end with ``return caller.fail(exc)``.

        Raises ``TypeError`` (at once, in the actor) if ``error`` is not an ``Exception``:
        a caller must never be handed ``Cancelled`` or ``KeyboardInterrupt``.
        """
        if not isinstance(error, Exception):
            raise TypeError(f"Caller.fail takes an Exception instance, got {error!r}")
        self._settle(outcome.Error(error))
        return NoReply

    def _fail(self, error: BaseException) -> None:
        self._settle(outcome.Error(error))

    def _settle(self, result: outcome.Outcome[Any]) -> None:
        state = self._state
        if state == 2:
            return
        self._state = 2
        if state == 1:
            reschedule(self._task, result)
        else:
            self._outcome = result

    def _abort(self, _: RaiseCancelT) -> Abort:
        self._state = 2
        return Abort.SUCCEEDED


@attrs.frozen(slots=True)
class MailboxStatistics:
    """A snapshot of an actor's mailbox."""

    #: Messages waiting in the mailbox.
    used: int
    #: The mailbox's capacity.
    size: float
    #: The most messages ever waiting at once.
    peak: int
    #: Casts and sends dropped because the mailbox was full.
    dropped: int
    #: Callers blocked waiting for space (backpressure).
    waiting_senders: int


class Monitor:
    """A one-way watch on an actor (OTP ``monitor``). Fires once, when the actor exits; a monitor
    of an already-dead actor fires at once with ``noproc``."""

    __slots__ = ("_down", "_event", "_target", "_watcher")

    _down: Down | None
    _event: trio.Event | None
    _watcher: ActorRef | None

    def __init__(self, target: ActorRef, watcher: ActorRef | None) -> None:
        self._target = target
        self._watcher = watcher
        self._down: Down | None = None
        self._event = None

    @property
    def ref(self) -> ActorRef:
        return self._target

    @property
    def down(self) -> Down | None:
        """The ``Down`` once the target exited, else None."""
        return self._down

    async def wait(self) -> Down:
        """Wait until the target exits; return its ``Down``."""
        if self._down is None:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        assert self._down is not None
        return self._down

    def demonitor(self) -> None:
        """Stop watching. A ``Down`` already queued for an actor's ``handle_info`` is flushed."""
        self._target._remove_watcher(self)
        self._watcher = None
        if self._down is None:
            self._down = Down(self._target, NOPROC)  # inert: never delivered

    def _on_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        if self._down is not None:
            return
        down = self._down = Down(ref, reason)
        if self._watcher is not None:
            self._watcher._deliver_system((_DOWN, down, self))
        if self._event is not None:
            self._event.set()


class _Link:
    __slots__ = ("peer",)

    def __init__(self, peer: ActorRef) -> None:
        self.peer = peer

    def _on_exit(self, ref: ActorRef, reason: ExitReason) -> None:
        peer = self.peer
        if peer._reason is not None:
            return
        peer._remove_link_to(ref)
        if peer._actor.trap_exits:
            peer._deliver_system((_EXIT, Exit(ref, reason), None))
        elif reason.kind != "normal":
            peer._exit_signal(reason)


class ActorRef:
    """The handle of a running (or exited) actor; comes only from starting one.

    ``cast``/``send`` never raise; ``call`` never hangs on a dead actor.
    """

    __slots__ = (
        "__weakref__",
        "_actor",
        "_calls",
        "_crash",
        "_dropped",
        "_event",
        "_kill_reason",
        "_label",
        "_nursery",
        "_pending",
        "_reason",
        "_registry",
        "_scope",
        "_send",
        "_serve_scope",
        "_stop_reason",
        "_system",
        "_task",
        "_watchers",
        "name",
    )

    name: str | None
    _send: trio.MemorySendChannel[_Item]
    _actor: Actor
    _label: str
    _registry: Registry | None
    _reason: ExitReason | None
    _event: trio.Event | None
    _calls: set[Caller] | None
    _watchers: list[_Watcher] | None
    _scope: trio.CancelScope | None
    _serve_scope: trio.CancelScope | None
    _task: Task | None
    _dropped: int
    _kill_reason: ExitReason | None
    _stop_reason: ExitReason | None
    _crash: ExitReason | None
    _nursery: trio.Nursery | None
    _pending: list[tuple[Callable[..., Awaitable[object]], tuple[object, ...]]] | None
    _system: deque[_Item] | None

    def __init__(self) -> None:
        raise TypeError("an ActorRef comes only from starting an actor")

    @classmethod
    def _new(
        cls: type[R], actor: Actor, name: str | None, registry: Registry | None, label: str | None
    ) -> tuple[R, trio.MemoryReceiveChannel[_Item]]:
        size = actor.mailbox_size
        if not (size == math.inf or (isinstance(size, int) and size >= 1)):
            raise ValueError(f"mailbox_size must be an int >= 1 or math.inf, got {size!r}")
        self = object.__new__(cls)
        send, receive = trio.open_memory_channel[_Item](size)
        self._send = send
        self._actor = actor
        self.name = name
        self._label = label or name or f"{type(actor).__name__}-{next(_serial)}"
        self._registry = registry
        self._reason = None
        self._event = None
        self._calls = None
        self._watchers = None
        self._scope = None
        self._serve_scope = None
        self._task = None
        self._dropped = 0
        self._kill_reason = None
        self._stop_reason = None
        self._crash = None
        self._nursery = None
        self._pending = None
        self._system = None
        actor._ref = self
        return self, receive

    def __repr__(self) -> str:
        state = "alive" if self._reason is None else f"exited {self._reason}"
        return f"<{type(self).__name__} {self._label} {state}>"

    # -- state ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True until the actor has exited."""
        return self._reason is None

    @property
    def reason(self) -> ExitReason | None:
        """The exit reason once exited, else None."""
        return self._reason

    @property
    def registry(self) -> Registry | None:
        """The registry the actor was started with (a supervisor's children inherit it)."""
        return self._registry

    @property
    def label(self) -> str:
        """The name used in logs: the registered name, the child id, or class-serial."""
        return self._label

    async def wait(self) -> ExitReason:
        """Wait for the actor to exit; return its reason."""
        if self._reason is None:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        assert self._reason is not None
        return self._reason

    def _live_actor(self) -> Actor:
        """The actor object, for a ref subclass's synchronous reads of its own actor's state.
        Raises ``ActorExited`` once the actor has exited."""
        if self._reason is not None:
            raise ActorExited(self, self._reason)
        return self._actor

    def statistics(self) -> MailboxStatistics:
        """The mailbox's current numbers."""
        stats = self._send.statistics()
        return MailboxStatistics(
            used=stats.current_buffer_used,
            size=stats.max_buffer_size,
            peak=getattr(stats, "peak_buffer_used", stats.current_buffer_used),
            dropped=self._dropped,
            waiting_senders=stats.tasks_waiting_send,
        )

    # -- messages ------------------------------------------------------------------------------

    async def call(self, request: object, timeout: float | None = 5.0) -> Any:  # noqa: ASYNC109
        """Send ``request`` to ``handle_call`` and wait for the reply.

        Waits for mailbox space (backpressure) within the same ``timeout`` (None: forever).

        Raises:
            CallTimeout: no reply within ``timeout``; a later reply is dropped, the actor is
                unaffected.
            ActorExited: the actor exited (or was stopping) before or during the call; ``.reason``
                is its exit reason. Also whatever ``handle_call`` raised never reaches the caller:
                it crashes the actor, and the caller gets ``ActorExited(crashed(exc))``.
            CallingSelf: the actor called itself.
            InvalidTimeout: ``timeout`` is NaN or negative (a ``ValueError``).
        """
        if timeout is not None and not _valid_timeout(timeout):
            raise InvalidTimeout(timeout)
        if self._reason is not None:
            raise ActorExited(self, self._reason)
        task = current_task()
        if task is self._task:
            raise CallingSelf(f"{self!r} called itself")
        caller = Caller(task, self)
        calls = self._calls
        if calls is None:
            calls = self._calls = set()
        calls.add(caller)
        try:
            if timeout is None:
                return await self._call(caller, request)
            with trio.move_on_after(timeout):
                return await self._call(caller, request)
            raise CallTimeout(self, timeout)
        finally:
            calls.discard(caller)

    async def _call(self, caller: Caller, request: object) -> Any:
        try:
            await self._send.send((_CALL, request, caller))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ActorExited(self, self._reason or self._stop_reason or NOPROC) from None
        if caller._state == 2:
            assert caller._outcome is not None
            return caller._outcome.unwrap()
        caller._state = 1
        return await wait_task_rescheduled(caller._abort)

    def cast(self, message: object) -> None:
        """Queue ``message`` for ``handle_cast``. Never raises: a message to a dead actor is
        dropped silently; one to a full mailbox is dropped, counted in ``statistics().dropped``
        and logged (a warning on the 1st, 2nd, 4th, 8th… drop)."""
        try:
            self._send.send_nowait((_CAST, message, None))
        except trio.WouldBlock:
            self._overflow()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def send(self, message: object) -> None:
        """Queue ``message`` for ``handle_info`` (OTP ``Pid ! Msg``). Never raises; overflow as
        for ``cast``."""
        try:
            self._send.send_nowait((_INFO, message, None))
        except trio.WouldBlock:
            self._overflow()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    def _overflow(self) -> None:
        self._dropped = dropped = self._dropped + 1
        if dropped & (dropped - 1) == 0:
            log.warning("mailbox_overflow", actor=self._label, dropped=dropped)

    def _deliver_system(self, item: _Item) -> None:
        # Down/Exit notices are never dropped for lack of space: they wait beside the mailbox.
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            if self._system is None:
                self._system = deque()
            self._system.append(item)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # -- monitors, stop, kill ------------------------------------------------------------------

    def monitor(self) -> Monitor:
        """Watch this actor from a plain task: ``await ref.monitor().wait()`` → ``Down``.

        Each call is an independent monitor (N monitors → N downs). An already-dead actor gives
        an immediate ``Down(ref, noproc)``."""
        return self._add_monitor(Monitor(self, None))

    def _add_monitor(self, mon: Monitor) -> Monitor:
        if self._reason is not None:
            mon._on_exit(self, NOPROC)
        else:
            self._add_watcher(mon)
        return mon

    def _add_watcher(self, watcher: _Watcher) -> None:
        if self._watchers is None:
            self._watchers = []
        self._watchers.append(watcher)

    def _remove_watcher(self, watcher: _Watcher) -> None:
        if self._watchers is not None:
            with contextlib.suppress(ValueError):
                self._watchers.remove(watcher)

    def _remove_link_to(self, peer: ActorRef) -> None:
        if self._watchers is not None:
            for w in self._watchers:
                if isinstance(w, _Link) and w.peer is peer:
                    self._watchers.remove(w)
                    return

    async def stop(
        self,
        reason: ExitReason = SHUTDOWN,
        timeout: float | None = 5.0,  # noqa: ASYNC109 - the contract's OTP-style argument
    ) -> ExitReason:
        """Ask the actor to stop (OTP ``gen_server:stop``): it handles the messages already
        queued, runs ``terminate(reason)`` and exits. Returns the reason it exited with.

        Raises:
            ActorExited: it had already exited (OTP ``noproc``).
            CallTimeout: it did not exit within ``timeout``; it is not killed.
        """
        if self._reason is not None:
            raise ActorExited(self, self._reason)
        self._request_stop(reason)
        with trio.move_on_after(math.inf if timeout is None else timeout):
            return await self.wait()
        raise CallTimeout(self, math.inf if timeout is None else timeout)

    def kill(self, reason: ExitReason = KILLED) -> None:
        """Cancel the actor now (OTP ``exit(Pid, kill)``): it exits with ``reason`` without
        running ``terminate``. Never raises; no-op once it exited.

        trio cancellation is cooperative: code inside a ``shield=True`` scope or a synchronous
        busy loop cannot be killed until it reaches a checkpoint outside the shield."""
        self._exit_signal(reason)

    def _request_stop(self, reason: ExitReason) -> None:
        # Closing the only send handle: the actor drains its mailbox, then sees EndOfChannel.
        if self._stop_reason is None and self._reason is None:
            self._stop_reason = reason
            self._send.close()

    def _exit_signal(self, reason: ExitReason) -> None:
        """Kill: cancel the actor's task; it exits with ``reason`` without running terminate."""
        if self._reason is None and self._kill_reason is None:
            self._kill_reason = reason
            if self._scope is not None:
                self._scope.cancel()

    def _finish(self, reason: ExitReason) -> None:
        self._reason = reason
        if self._registry is not None and self.name is not None:
            self._registry._unregister(self.name, self)
        if self._calls:
            for caller in list(self._calls):
                caller._fail(ActorExited(self, reason))
        if self._event is not None:
            self._event.set()
        watchers = self._watchers
        if watchers:
            self._watchers = None
            for watcher in watchers:
                watcher._on_exit(self, reason)
