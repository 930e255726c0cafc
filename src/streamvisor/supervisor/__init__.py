"""The generic OTP runtime on trio: actors, supervisors, monitors, links, a name registry.

Knows nothing of OpenAI. It follows the OTP semantics of ``reference/otp-and-trio.md`` §1; the
tests in ``tests/supervisor`` are named after its checklist IDs. Where trio forces a choice:

* **pid → ``ActorRef``**: an actor is one trio task reading a bounded memory channel. A restart
  makes a new actor with a new ref and a fresh mailbox (queued messages are lost, as in OTP);
  callers that must survive restarts address it by name: ``Registry.ref(name)`` is a `NamedRef`
  that finds whoever holds the name at each call (OTP's ``gen_server:call(Name, …)``).
* **Mailbox overflow**: ``call`` waits for space within its timeout (backpressure); ``cast`` and
  ``send`` to a full mailbox drop the message, count it (``statistics().dropped``) and log
  ``mailbox_overflow`` on the 1st, 2nd, 4th, 8th… drop. ``Down``/``Exit`` notices are never
  dropped. ``Supervisor``/``DynamicSupervisor`` mailboxes are unbounded.
* **Calls**: a reply wakes the caller directly (no reply channel); a reply after the caller's
  timeout is dropped (GS-03); the callee's death fails every pending call with ``ActorExited``.
  An actor refuses a request with ``return caller.fail(exc)`` (OTP's ``{reply, {error, R}, S}``):
  the call raises ``exc``; an exception *raised* from a callback crashes the actor (bugs only).
* **Graceful stop** closes the mailbox's send side: the actor handles what is queued, runs
  ``terminate`` and exits. **Kill** is ``CancelScope.cancel()``: cooperative — code inside a
  ``shield=True`` scope or a synchronous loop cannot be killed until it reaches a checkpoint.
  ``terminate`` never runs after a kill.
* **Child exits** reach the supervisor as messages from a monitor, never as exceptions in its
  nursery, so siblings are untouched and restarts never catch ``BaseException``/``Cancelled``.
* ``which_children`` lists children in **start order** (OTP 25 lists newest first).
* **Per-child restart budgets** (an extension, BUD-01..05 in ``_dynamic.py``): with a
  ``RestartBudget`` (``DynamicSupervisor(restart_budget=)``, ``ChildSpec(restart_budget=)``) a
  supervisor gives up on one child that restarts too often -- not restarted, forgotten,
  ``on_give_up(GivenUp)`` told -- instead of letting it exhaust the intensity that stops all its
  siblings.
* A ``ChildSpec.supervisor`` whose factory returns a worker fails to start with
  ``StartChildError`` caused by ``InvalidChildSpec`` (its ``infinity`` shutdown assumes a
  supervisor).
* **NM-02 (``via``)** does not apply: the ``Registry`` is an explicit object passed down the tree,
  not a node-global table, so another naming scheme is simply another ``Registry``.
* **Event bus**: ``EventBus.publish`` is synchronous and never blocks; each subscriber has its own
  bounded buffer with an overflow policy (drop-oldest with an in-band ``Missed(n)`` notice, or
  disconnect with ``SubscriberOverflow``).
* Not implemented: ``ignore`` from ``init`` (OTP's ``{ok, undefined}``) and the gen_server
  ``timeout``/``hibernate``/``continue`` return variants.
"""

from __future__ import annotations

from ._actor import Actor, start_actor
from ._bus import (
    BusClosed,
    BusError,
    BusStatistics,
    EventBus,
    InvalidPattern,
    InvalidTopic,
    Missed,
    Overflow,
    SubscriberOverflow,
    Subscription,
    SubscriptionStatistics,
    pattern_matches,
)
from ._dynamic import DynamicSupervisor, DynamicSupervisorRef
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
    InvalidTimeout,
    MaxChildren,
    NoSuchActor,
    StartChildError,
    SupervisorError,
)
from ._observe import TreeNode, observe_tree
from ._reason import Down, Exit, ExitReason, GivenUp
from ._ref import ActorRef, Caller, MailboxStatistics, Monitor, NoReply, StopActor
from ._registry import NamedRef, Registry
from ._spec import (
    AutoShutdown,
    ChildSpec,
    ChildType,
    Restart,
    RestartBudget,
    Shutdown,
    Strategy,
    check_childspecs,
)
from ._supervisor import (
    ChildCounts,
    ChildInfo,
    ExitLog,
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
    "BusClosed",
    "BusError",
    "BusStatistics",
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
    "DynamicSupervisor",
    "DynamicSupervisorRef",
    "EventBus",
    "Exit",
    "ExitLog",
    "ExitReason",
    "GivenUp",
    "InvalidChildSpec",
    "InvalidPattern",
    "InvalidSupervisorFlags",
    "InvalidTimeout",
    "InvalidTopic",
    "MailboxStatistics",
    "MaxChildren",
    "Missed",
    "Monitor",
    "NamedRef",
    "NoReply",
    "NoSuchActor",
    "Overflow",
    "Registry",
    "Restart",
    "RestartBudget",
    "Shutdown",
    "StartChildError",
    "StopActor",
    "Strategy",
    "SubscriberOverflow",
    "Subscription",
    "SubscriptionStatistics",
    "Supervisor",
    "SupervisorError",
    "SupervisorRef",
    "TreeNode",
    "check_childspecs",
    "observe_tree",
    "open_supervisor",
    "pattern_matches",
    "start_actor",
    "start_supervisor",
]
