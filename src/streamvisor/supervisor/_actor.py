"""gen_server on trio: the ``Actor`` callbacks and the task that runs them.

An actor is one trio task reading a bounded mailbox (a memory channel). An idle actor is a single
task: its own nursery is opened lazily, the first time ``spawn`` is used (supervisors open it
before ``init``, to start their children from there).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

import structlog
import trio
from trio.lowlevel import current_task

from ._bus import COOPERATIVE_BUDGET
from ._errors import ActorExited
from ._reason import KILLED, NOPROC, SHUTDOWN, Exit, ExitReason
from ._ref import (
    _CALL,
    _CAST,
    _DOWN,
    _EXIT,
    _INFO,
    _UNSET,
    ActorRef,
    Caller,
    Monitor,
    NoReply,
    StopActor,
    _Item,
    _Link,
)

if TYPE_CHECKING:
    from ._registry import Registry

__all__ = ["Actor", "start_actor"]

log = structlog.get_logger("streamvisor.supervisor")


class Actor:
    """Subclass and override the async callbacks (OTP gen_server).

    * ``init()`` — runs before the start returns; raising makes the start raise that error.
    * ``handle_call(request, caller)`` — return the reply, or ``NoReply`` and reply later with
      ``caller.reply(x)`` from any task; raise ``StopActor(reason, reply=...)`` to stop.
    * ``handle_cast(message)``, ``handle_info(message)`` — ``Down``/``Exit`` arrive in
      ``handle_info``.
    * ``terminate(reason)`` — runs on a graceful stop (bounded by the stopper: a supervisor kills
      the child after its spec's ``shutdown``) and after an exit the actor chose itself (a
      callback crash, ``StopActor``; bounded by ``terminate_timeout``); never after a kill.

    Any exception from a callback crashes the actor with ``ExitReason.crashed(exc)``.
    Class attributes tune it: ``mailbox_size`` (int ≥ 1 or ``math.inf``), ``terminate_timeout``,
    ``trap_exits``.
    """

    __slots__ = ("__weakref__", "_ref")

    mailbox_size: ClassVar[float] = 100
    terminate_timeout: ClassVar[float] = 5.0
    trap_exits: bool = False
    #: Open the actor's nursery before ``init`` (supervisors start children from ``init``).
    _eager_nursery: ClassVar[bool] = False
    _ref_class: ClassVar[type[ActorRef]] = ActorRef
    _ref: ActorRef

    def observed_children(self) -> Mapping[str, ActorRef]:
        """Actors this one runs itself, outside any supervisor's table (an inner supervisor
        started in its own nursery), by the id to show them under: `observe_tree` lists them
        below this actor. Read in the observer's task; none by default."""
        return {}

    async def init(self) -> None:
        """Prepare the actor's state. Raising fails the start."""

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        """Answer a ``call``. The default crashes the actor: a call it does not understand."""
        raise NotImplementedError(f"{type(self).__name__} does not handle calls ({request!r})")

    async def handle_cast(self, message: Any) -> None:
        """Handle a ``cast``. The default logs and ignores it."""
        log.warning("unexpected_cast", actor=self._ref._label, message=repr(message))

    async def handle_info(self, message: Any) -> None:
        """Handle a ``send``, a ``Down`` or an ``Exit``. The default logs and ignores it."""
        log.warning("unexpected_info", actor=self._ref._label, message=repr(message))

    async def terminate(self, reason: ExitReason) -> None:
        """Clean up before exiting (graceful stop or crash; not after a kill)."""

    # -- helpers for subclasses ----------------------------------------------------------------

    @property
    def ref(self) -> ActorRef:
        """This actor's own ref."""
        return self._ref

    @property
    def registry(self) -> Registry | None:
        """The registry this actor was started with (inherited from its supervisor)."""
        return self._ref._registry

    def spawn(self, async_fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``async_fn(*args)`` as a task linked to this actor: it is cancelled when the actor
        stops, and if it raises, the actor crashes with that exception (``terminate`` runs).

        Call it from the actor's callbacks or its spawned tasks. Raises ``RuntimeError`` from
        another task before the actor opened its nursery, or after the actor exited."""
        ref = self._ref
        if ref._reason is not None:
            raise RuntimeError(f"{ref!r} has exited")
        if ref._nursery is not None:
            ref._nursery.start_soon(_spawned, ref, async_fn, args)
            return
        if current_task() is not ref._task:
            raise RuntimeError("spawn must be called from the actor's own task")
        if ref._pending is None:
            ref._pending = []
        ref._pending.append((async_fn, args))

    def monitor(self, ref: ActorRef) -> Monitor:
        """Watch ``ref``: when it exits, ``Down(ref, reason)`` arrives in ``handle_info``
        (at once with ``noproc`` if it is already dead). ``monitor.demonitor()`` cancels it."""
        return ref._add_monitor(Monitor(ref, self._ref))

    def link(self, ref: ActorRef) -> None:
        """Link both ways (OTP ``link``): when either exits with a reason other than ``normal``,
        the other dies with that reason, unless it traps exits and gets ``Exit(ref, reason)`` in
        ``handle_info``. Linking to a dead actor delivers ``Exit(ref, noproc)`` if trapping,
        otherwise raises ``ActorExited`` (OTP ``noproc``)."""
        me = self._ref
        if ref is me:
            return
        if ref._reason is not None:
            if self.trap_exits:
                me._deliver_system((_EXIT, Exit(ref, NOPROC), None))
                return
            raise ActorExited(ref, NOPROC)
        ref._add_watcher(_Link(me))
        me._add_watcher(_Link(ref))

    def unlink(self, ref: ActorRef) -> None:
        """Remove a link in both directions; no-op if there is none."""
        ref._remove_link_to(self._ref)
        self._ref._remove_link_to(ref)


async def _spawned(
    ref: ActorRef, async_fn: Callable[..., Awaitable[object]], args: tuple[object, ...]
) -> None:
    try:
        await async_fn(*args)
    except Exception as exc:
        if ref._crash is None:
            ref._crash = ExitReason.crashed(exc)
            if ref._serve_scope is not None:
                ref._serve_scope.cancel()


_UPGRADE: Any = object()
# Messages an actor handles from its mailbox between two checkpoints of its own (the bus's
# subscribers take the same budget). ``receive`` yields to the scheduler on every call, so without
# a budget a busy actor serves one message per pass of the scheduler: under 1,000 durable streams
# the background poller's mailbox (3 messages per stream) fell seconds behind and ``status()``
# with it (``python -m bench durable``). Its handlers still checkpoint whenever they await.
_MAILBOX_BUDGET = COOPERATIVE_BUDGET


async def _serve(actor: Actor, ref: ActorRef, receive: trio.MemoryReceiveChannel[_Item]) -> Any:
    """The message loop. Returns the exit reason (or _UPGRADE when ``spawn`` needs a nursery)."""
    if ref._pending is not None and ref._nursery is None:
        return _UPGRADE
    recv, recv_nowait = receive.receive, receive.receive_nowait
    # Raises Cancelled at once if the actor was killed (or a spawned task crashed, or its owner is
    # stopping it) and does not yield otherwise: a kill is honoured between two messages of a
    # batch as it is at ``recv``.
    if_cancelled = trio.lowlevel.checkpoint_if_cancelled
    served = 0
    try:
        while True:
            try:
                item = None
                if served < _MAILBOX_BUDGET:
                    await if_cancelled()
                    try:
                        item = recv_nowait()
                        served += 1
                    except trio.WouldBlock:
                        pass
                if item is None:
                    # Awaited outside the `except` block: an idle actor parked in it kept the
                    # WouldBlock, its traceback and frames alive (0.6 KiB per idle session).
                    # Nor does it keep the last message it handled while it waits (a session's
                    # last request body, a caller's reply channel).
                    payload = extra = None
                    item = await recv()
                    served = 0
                tag, payload, extra = item
            except trio.EndOfChannel:
                return ref._stop_reason or SHUTDOWN
            if tag == _CALL:
                try:
                    reply = await actor.handle_call(payload, extra)
                except StopActor as stop:
                    if stop.reply is not _UNSET:
                        extra.reply(stop.reply)
                    return stop.reason
                if reply is not NoReply:
                    extra.reply(reply)
            elif tag == _CAST:
                await actor.handle_cast(payload)
            elif tag == _INFO:
                await actor.handle_info(payload)
            elif tag == _DOWN:
                if extra._watcher is ref:
                    await actor.handle_info(payload)
            else:
                await actor.handle_info(payload)
            system = ref._system
            while system:
                tag, payload, extra = system.popleft()
                if tag != _DOWN or extra._watcher is ref:
                    await actor.handle_info(payload)
            if ref._pending is not None and ref._nursery is None:
                return _UPGRADE
    except StopActor as stop:
        return stop.reason
    except Exception as exc:
        return ExitReason.crashed(exc)


async def _terminate(actor: Actor, ref: ActorRef, reason: ExitReason) -> ExitReason:
    # A stop request is bounded by whoever asked (a supervisor kills after the child's
    # ``shutdown``); an exit the actor chose itself (crash, StopActor) by ``terminate_timeout``.
    bound = math.inf if ref._stop_reason is not None else actor.terminate_timeout
    with trio.move_on_after(bound):
        try:
            await actor.terminate(reason)
        except Exception as exc:
            log.exception("terminate_failed", actor=ref._label, reason=reason)
            return ExitReason.crashed(exc)
    return reason


def _start_pending(ref: ActorRef, nursery: trio.Nursery) -> None:
    """Start the tasks spawned before the actor had a nursery. (A function of its own: the
    loop's variables would otherwise keep the first task's arguments, e.g. a session's first
    stream with all its text, for as long as the actor serves.)"""
    pending, ref._pending = ref._pending, None
    for fn, args in pending or ():
        nursery.start_soon(_spawned, ref, fn, args)


async def _serve_in_nursery(
    actor: Actor, ref: ActorRef, receive: trio.MemoryReceiveChannel[_Item], nursery: trio.Nursery
) -> ExitReason:
    ref._nursery = nursery
    _start_pending(ref, nursery)
    with trio.CancelScope() as serve_scope:
        ref._serve_scope = serve_scope
        if ref._crash is None:
            result = await _serve(actor, ref, receive)
    if serve_scope.cancelled_caught or ref._crash is not None:
        result = ref._crash
    reason = await _terminate(actor, ref, result)
    nursery.cancel_scope.cancel()
    return reason


async def _main(
    actor: Actor,
    ref: ActorRef,
    receive: trio.MemoryReceiveChannel[_Item],
    *,
    task_status: trio.TaskStatus[ActorRef] = trio.TASK_STATUS_IGNORED,
) -> None:
    reason = KILLED
    init_error: Exception | None = None
    try:
        with trio.CancelScope() as scope:
            ref._scope = scope
            ref._task = current_task()
            if ref.name is not None and ref._registry is not None:
                ref._registry._register(ref.name, ref)
            if actor._eager_nursery:
                async with trio.open_nursery() as nursery:
                    ref._nursery = nursery
                    try:
                        await actor.init()
                    except Exception as exc:
                        init_error = exc
                        nursery.cancel_scope.cancel()
                    else:
                        task_status.started(ref)
                        del task_status  # it holds the temporary start nursery alive
                        reason = await _serve_in_nursery(actor, ref, receive, nursery)
            else:
                try:
                    await actor.init()
                except Exception as exc:
                    init_error = exc
                else:
                    task_status.started(ref)
                    del task_status  # it holds the temporary start nursery alive
                    result = await _serve(actor, ref, receive)
                    if result is _UPGRADE:
                        async with trio.open_nursery() as nursery:
                            reason = await _serve_in_nursery(actor, ref, receive, nursery)
                    else:
                        reason = await _terminate(actor, ref, result)
        if scope.cancelled_caught:
            reason = ref._kill_reason or KILLED
        if init_error is not None:
            reason = ExitReason.crashed(init_error)
    finally:
        receive.close()
        ref._finish(reason)
        _log_exit(ref, reason)
    if init_error is not None:
        raise init_error


def _log_exit(ref: ActorRef, reason: ExitReason) -> None:
    if reason.kind == "crashed":
        log.error("actor_crashed", actor=ref._label, reason=reason, exc_info=reason.exception)
    elif reason.is_normal:
        log.debug("actor_exited", actor=ref._label, reason=reason)
    else:
        log.info("actor_exited", actor=ref._label, reason=reason)


def _prepare(
    actor: Actor, name: str | None, registry: Registry | None, label: str | None = None
) -> tuple[ActorRef, trio.MemoryReceiveChannel[_Item]]:
    if not isinstance(actor, Actor):
        raise TypeError(f"expected an Actor, got {actor!r}")
    return actor._ref_class._new(actor, name, registry, label)


async def _start_prepared(
    nursery: trio.Nursery,
    actor: Actor,
    ref: ActorRef,
    receive: trio.MemoryReceiveChannel[_Item],
) -> ActorRef:
    return cast(ActorRef, await nursery.start(_main, actor, ref, receive))


async def start_actor(
    nursery: trio.Nursery,
    actor: Actor,
    *,
    name: str | None = None,
    registry: Registry | None = None,
    label: str | None = None,
) -> ActorRef:
    """Start ``actor`` as a task of ``nursery`` and return its ref once ``init`` succeeded and
    ``name`` is registered (OTP's synchronous start, GS-01). ``label`` is how logs name it
    (default: its name, else its class and a serial).

    Raises whatever ``init`` raised; ``AlreadyStarted`` (with the holder's ``.ref``) if ``name``
    is taken in ``registry``; ``ValueError`` for a ``name`` without a ``registry``.
    """
    if name is not None and registry is None:
        raise ValueError("a name needs a registry")
    ref, receive = _prepare(actor, name, registry, label)
    return await _start_prepared(nursery, actor, ref, receive)
