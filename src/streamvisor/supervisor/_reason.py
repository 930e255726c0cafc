"""Why an actor exited, and the messages monitors and links deliver about it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:
    from ._ref import ActorRef
    from ._spec import RestartBudget

__all__ = ["Down", "Exit", "ExitKind", "ExitReason", "GivenUp"]

ExitKind = Literal["normal", "shutdown", "killed", "crashed", "noproc"]
_KINDS = ("normal", "shutdown", "killed", "crashed", "noproc")


@attrs.frozen(slots=True, repr=False)
class ExitReason:
    """An actor's exit reason, as OTP's exit terms.

    * ``normal`` — it finished its work;
    * ``shutdown`` — it was asked to stop (``detail`` set: OTP's ``{shutdown, Term}``);
    * ``killed`` — it was cancelled without running ``terminate`` (brutal kill, shutdown timeout,
      cancellation from outside);
    * ``crashed`` — a callback raised ``exception``;
    * ``noproc`` — what a monitor of an already-dead actor reports.

    Build them with the class methods (``ExitReason.crashed(exc)``); compare with ``==``.
    """

    kind: ExitKind = attrs.field(validator=attrs.validators.in_(_KINDS))
    #: The OTP ``Term`` of ``{shutdown, Term}``, for ``shutdown`` only.
    detail: object = None
    #: The exception, for ``crashed`` only.
    exception: BaseException | None = attrs.field(default=None, eq=False)

    @classmethod
    def normal(cls) -> ExitReason:
        return NORMAL

    @classmethod
    def shutdown(cls, detail: object = None) -> ExitReason:
        return SHUTDOWN if detail is None else cls("shutdown", detail)

    @classmethod
    def killed(cls) -> ExitReason:
        return KILLED

    @classmethod
    def noproc(cls) -> ExitReason:
        return NOPROC

    @classmethod
    def crashed(cls, exception: BaseException) -> ExitReason:
        return cls("crashed", None, exception)

    @property
    def is_normal(self) -> bool:
        """True for ``normal``, ``shutdown`` and ``shutdown(detail)`` (OTP CH-03): not restarted
        under ``transient``, not reported as an error."""
        return self.kind == "normal" or self.kind == "shutdown"

    def __repr__(self) -> str:
        if self.kind == "crashed":
            return f"crashed({self.exception!r})"
        if self.kind == "shutdown" and self.detail is not None:
            return f"shutdown({self.detail!r})"
        return self.kind

    __str__ = __repr__


NORMAL = ExitReason("normal")
SHUTDOWN = ExitReason("shutdown")
KILLED = ExitReason("killed")
NOPROC = ExitReason("noproc")


@attrs.frozen(slots=True)
class Down:
    """A monitored actor exited (OTP ``{'DOWN', Ref, process, Pid, Reason}``)."""

    ref: ActorRef
    reason: ExitReason


@attrs.frozen(slots=True)
class Exit:
    """A linked actor exited; delivered to receivers that trap exits (OTP ``{'EXIT', Pid, R}``)."""

    ref: ActorRef
    reason: ExitReason


@attrs.frozen(slots=True)
class GivenUp:
    """A supervisor gave up on a child that exceeded its own `RestartBudget`: the child was not
    restarted and is no longer its child. What ``on_give_up`` observers receive.

    ``reason`` is the child's last exit reason (or, when its restart kept failing, the last
    start error as ``crashed``). ``name`` and ``args`` (``id`` for a static child) are what it
    was started with, so the owner can tell subscribers and may start it again (a new child,
    with a fresh budget).
    """

    #: The supervisor that gave up on it.
    supervisor: ActorRef
    #: The registered name it was started under, if any.
    name: str | None
    #: The ``start_child`` arguments (the factory's arguments).
    args: tuple[object, ...]
    reason: ExitReason
    budget: RestartBudget
    #: Its child id under a static `Supervisor` (None under a `DynamicSupervisor`).
    id: str | None = None
