"""The runtime's exceptions.

The tree (``ActorError`` is the root of everything the runtime raises; spec, flag and timeout
errors also subclass ``ValueError`` because they are bad arguments, caught at construction)::

    ActorError(Exception)
    ├── CallTimeout(ActorError, TimeoutError)       no reply within the call's timeout
    ├── ActorExited(ActorError)                     died before/during the call (.reason)
    ├── NoSuchActor(ActorError, LookupError)        no actor is registered under that name (.name)
    ├── AlreadyStarted(ActorError)                  name or child id already running (.ref)
    ├── CallingSelf(ActorError, RuntimeError)       an actor called itself (would deadlock)
    ├── InvalidTimeout(ActorError, ValueError)      a call's timeout is NaN or negative
    ├── StartChildError(ActorError)                 a child's init failed (.child_id, __cause__)
    ├── SupervisorError(ActorError)                 a dynamic-children request was refused
    │   ├── ChildNotFound(SupervisorError, LookupError)
    │   ├── ChildRunning(SupervisorError)
    │   ├── ChildRestarting(SupervisorError)
    │   ├── AlreadyPresent(SupervisorError)
    │   └── MaxChildren(SupervisorError)
    ├── InvalidChildSpec(ActorError, ValueError)    a child spec rejected at construction
    │   └── DuplicateChildId(InvalidChildSpec)      two specs share an id
    ├── InvalidSupervisorFlags(ActorError, ValueError)   strategy/intensity/... rejected
    └── BusError (``_bus.py``)                      the event bus: InvalidPattern, InvalidTopic,
                                                    BusClosed, SubscriberOverflow

``StopActor`` is not an error but a callback's way to stop its actor (``_ref.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._reason import ExitReason
    from ._ref import ActorRef

__all__ = [
    "ActorError",
    "ActorExited",
    "AlreadyPresent",
    "AlreadyStarted",
    "CallTimeout",
    "CallingSelf",
    "ChildNotFound",
    "ChildRestarting",
    "ChildRunning",
    "DuplicateChildId",
    "InvalidChildSpec",
    "InvalidSupervisorFlags",
    "InvalidTimeout",
    "MaxChildren",
    "NoSuchActor",
    "StartChildError",
    "SupervisorError",
]


class ActorError(Exception):
    """Root of the errors raised by the actor runtime."""


class CallTimeout(ActorError, TimeoutError):
    """No reply arrived within the call's timeout. The callee is not told and keeps running."""

    def __init__(self, ref: ActorRef, timeout: float) -> None:
        super().__init__(f"call to {ref!r} timed out after {timeout}s")
        self.ref = ref
        self.timeout = timeout


class ActorExited(ActorError):
    """The target actor exited before or during the request; ``.reason`` says how."""

    def __init__(self, ref: ActorRef, reason: ExitReason) -> None:
        super().__init__(f"{ref!r} exited: {reason}")
        self.ref = ref
        self.reason = reason


class NoSuchActor(ActorError, LookupError):
    """No live actor is registered under ``.name``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no actor registered as {name!r}")
        self.name = name


class AlreadyStarted(ActorError):
    """The name (or child id) is already taken by the running actor ``.ref``."""

    def __init__(self, ref: ActorRef, what: str) -> None:
        super().__init__(f"{what} already started as {ref!r}")
        self.ref = ref


class CallingSelf(ActorError, RuntimeError):
    """An actor made a synchronous call to itself, which could never be answered."""


class InvalidTimeout(ActorError, ValueError):
    """A call's ``timeout`` is not a number of seconds >= 0 (or None, for no limit): NaN would
    never expire and a negative one has expired before the call was sent."""

    def __init__(self, timeout: object) -> None:
        super().__init__(f"a call's timeout is seconds >= 0 or None, not {timeout!r}")
        self.timeout = timeout


class StartChildError(ActorError):
    """A child failed to start; the original exception is ``__cause__``."""

    def __init__(self, child_id: object, error: BaseException) -> None:
        super().__init__(f"child {child_id!r} failed to start: {error!r}")
        self.child_id = child_id
        self.error = error


class SupervisorError(ActorError):
    """A supervisor refused a dynamic-children request (OTP's ``{error, Reason}``)."""

    def __init__(self, child_id: object, message: str) -> None:
        super().__init__(f"child {child_id!r}: {message}")
        self.child_id = child_id


class ChildNotFound(SupervisorError, LookupError):
    """No child spec with that id (OTP ``not_found``)."""


class ChildRunning(SupervisorError):
    """The child is running; stop it first (OTP ``running``)."""


class ChildRestarting(SupervisorError):
    """The child is between restart attempts (OTP ``restarting``)."""


class AlreadyPresent(SupervisorError):
    """A stopped child with that id exists; restart or delete it (OTP ``already_present``)."""


class MaxChildren(SupervisorError):
    """The dynamic supervisor already runs ``max_children`` children."""


class InvalidChildSpec(ActorError, ValueError):
    """A child spec was rejected at construction (OTP ``check_childspecs``)."""


class DuplicateChildId(InvalidChildSpec):
    """Two child specs of one supervisor share an id (OTP ``duplicate_child_name``)."""


class InvalidSupervisorFlags(ActorError, ValueError):
    """Supervisor flags were rejected (OTP: the supervisor fails to start)."""
