"""The generic OTP runtime on trio: actors, supervisors, monitors, a name registry.

Knows nothing of OpenAI. The OTP semantics it follows, by checklist ID, are in the project's
``reference/otp-and-trio.md``; ``tests/supervisor`` is named after those IDs.
"""

from __future__ import annotations

from ._actor import (
    Actor,
    ActorRef,
    Caller,
    MailboxStatistics,
    Monitor,
    NoReply,
    StopActor,
    start_actor,
)
from ._errors import (
    ActorError,
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    CallingSelf,
    CallTimeout,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    DuplicateChildId,
    InvalidChildSpec,
    InvalidSupervisorFlags,
    MaxChildren,
    NoSuchActor,
    StartChildError,
    SupervisorError,
)
from ._reason import Down, Exit, ExitReason
from ._registry import Registry
from ._spec import AutoShutdown, ChildSpec, ChildType, Restart, Shutdown, Strategy, check_childspecs
from ._supervisor import (
    ChildCounts,
    ChildInfo,
    Supervisor,
    SupervisorRef,
    open_supervisor,
    start_supervisor,
)

__all__ = [
    "Actor",
    "ActorError",
    "ActorExited",
    "ActorRef",
    "AlreadyPresent",
    "AlreadyStarted",
    "AutoShutdown",
    "CallTimeout",
    "Caller",
    "CallingSelf",
    "ChildCounts",
    "ChildInfo",
    "ChildNotFound",
    "ChildRestarting",
    "ChildRunning",
    "ChildSpec",
    "ChildType",
    "Down",
    "DuplicateChildId",
    "Exit",
    "ExitReason",
    "InvalidChildSpec",
    "InvalidSupervisorFlags",
    "MailboxStatistics",
    "MaxChildren",
    "Monitor",
    "NoReply",
    "NoSuchActor",
    "Registry",
    "Restart",
    "Shutdown",
    "StartChildError",
    "StopActor",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorRef",
    "check_childspecs",
    "open_supervisor",
    "start_actor",
    "start_supervisor",
]
