"""Child specs and supervisor flags, validated at construction (OTP ``check_childspecs``)."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ._errors import DuplicateChildId, InvalidChildSpec, InvalidSupervisorFlags

if TYPE_CHECKING:
    from ._actor import Actor

__all__ = [
    "AutoShutdown",
    "ChildSpec",
    "ChildType",
    "Restart",
    "RestartBudget",
    "Shutdown",
    "Strategy",
    "check_childspecs",
    "check_flags",
    "check_observer",
]


class Restart(enum.Enum):
    """When a child is restarted (CH-02..04)."""

    #: Always restarted, whatever the exit reason.
    PERMANENT = "permanent"
    #: Restarted only after an abnormal exit (not ``normal``/``shutdown``/``shutdown(detail)``).
    TRANSIENT = "transient"
    #: Never restarted; its spec is deleted when it exits.
    TEMPORARY = "temporary"


class ChildType(enum.Enum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"


class Strategy(enum.Enum):
    """What else is restarted when a child is (SUP-04..06)."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class AutoShutdown(enum.Enum):
    """When significant children take the supervisor down with them (AS-01..04)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


#: Seconds to wait after the graceful stop request before killing, or one of the two OTP atoms.
Shutdown = float | Literal["brutal_kill", "infinity"]


def _check_shutdown(_: Any, __: Any, value: Any) -> None:
    if value in ("brutal_kill", "infinity"):
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidChildSpec(f"shutdown must be seconds, 'brutal_kill' or 'infinity': {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise InvalidChildSpec(f"shutdown must be finite seconds >= 0: {value!r}")


def _check_id(_: Any, __: Any, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidChildSpec(f"a child id must be a non-empty str: {value!r}")


def _check_name(_: Any, __: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidChildSpec(f"a registered name must be a non-empty str or None: {value!r}")


def _check_factory(_: Any, __: Any, value: Any) -> None:
    if not callable(value):
        raise InvalidChildSpec(f"a child factory must be callable: {value!r}")


def _check_budget(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, RestartBudget):
        raise InvalidChildSpec(f"restart_budget must be a RestartBudget or None: {value!r}")


def _enum_validator(kind: type[enum.Enum]) -> Any:
    def check(_: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, kind):
            raise InvalidChildSpec(f"{attribute.name} must be a {kind.__name__}: {value!r}")

    return check


def _check_budget_intensity(_: Any, __: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidChildSpec(f"a restart budget's intensity must be an int >= 0: {value!r}")


def _check_budget_period(_: Any, __: Any, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value > 0 and math.isfinite(value))
    ):
        raise InvalidChildSpec(f"a restart budget's period must be seconds > 0: {value!r}")


@attrs.frozen(slots=True)
class RestartBudget:
    """A child's own restart allowance: at most ``intensity`` restarts within ``period`` seconds
    (OTP's MaxR/MaxT, counted for one child instead of the whole supervisor).

    A child that would exceed it is *given up*: not restarted, its spec removed, its owner told
    (``on_give_up``) -- the supervisor itself keeps running. Its restarts within the budget still
    count toward the supervisor's own intensity (INT-01), so a storm of many failing children
    still escalates. Raises ``InvalidChildSpec`` for a bad field.
    """

    intensity: int = attrs.field(validator=_check_budget_intensity)
    period: float = attrs.field(validator=_check_budget_period)


@attrs.frozen(slots=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (CH-01).

    Build with ``ChildSpec.worker(...)`` or ``ChildSpec.supervisor(...)``. ``factory()`` returns a
    fresh ``Actor`` on every (re)start. ``restart_budget`` gives the child a restart allowance of
    its own: over it, the child alone is given up (BUD-01..05, ``_dynamic.py``). Raises
    ``InvalidChildSpec`` for a bad field, including ``significant=True`` with
    ``restart=PERMANENT`` (AS-01).
    """

    id: str = attrs.field(validator=_check_id)
    factory: Callable[[], Actor] = attrs.field(validator=_check_factory)
    restart: Restart = attrs.field(default=Restart.PERMANENT, validator=_enum_validator(Restart))
    #: Seconds, ``"brutal_kill"`` or ``"infinity"`` (SD-02..04).
    shutdown: Shutdown = attrs.field(default=5.0, validator=_check_shutdown)
    type: ChildType = attrs.field(default=ChildType.WORKER, validator=_enum_validator(ChildType))
    #: The name to register the child under in the supervisor's registry.
    name: str | None = attrs.field(default=None, validator=_check_name)
    significant: bool = attrs.field(default=False)
    #: The child's own restart allowance (None: only the supervisor's intensity applies).
    restart_budget: RestartBudget | None = attrs.field(default=None, validator=_check_budget)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.significant, bool):
            raise InvalidChildSpec(f"significant must be a bool: {self.significant!r}")
        if self.significant and self.restart is Restart.PERMANENT:
            raise InvalidChildSpec(f"child {self.id!r}: a significant child cannot be permanent")

    @classmethod
    def worker(
        cls,
        id: str,
        factory: Callable[[], Actor],
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: Shutdown = 5.0,
        name: str | None = None,
        significant: bool = False,
        restart_budget: RestartBudget | None = None,
    ) -> ChildSpec:
        """A worker child; ``shutdown`` defaults to 5 s."""
        return cls(
            id, factory, restart, shutdown, ChildType.WORKER, name, significant, restart_budget
        )

    @classmethod
    def supervisor(
        cls,
        id: str,
        factory: Callable[[], Actor],
        *,
        restart: Restart = Restart.PERMANENT,
        shutdown: Shutdown = "infinity",
        name: str | None = None,
        significant: bool = False,
        restart_budget: RestartBudget | None = None,
    ) -> ChildSpec:
        """A supervisor child (``factory()`` returns a ``Supervisor``/``DynamicSupervisor``);
        ``shutdown`` defaults to ``"infinity"`` so grandchildren are never leaked (SD-04)."""
        return cls(
            id, factory, restart, shutdown, ChildType.SUPERVISOR, name, significant, restart_budget
        )


def check_childspecs(
    specs: Iterable[ChildSpec], auto_shutdown: AutoShutdown = AutoShutdown.NEVER
) -> tuple[ChildSpec, ...]:
    """Validate a supervisor's child list (DYN-07) and return it as a tuple.

    Raises ``InvalidChildSpec`` for a non-spec or a significant child under
    ``AutoShutdown.NEVER`` (AS-01), ``DuplicateChildId`` for a repeated id (CH-01).
    """
    result = tuple(specs)
    seen: set[str] = set()
    for spec in result:
        if not isinstance(spec, ChildSpec):
            raise InvalidChildSpec(f"not a ChildSpec: {spec!r}")
        if spec.id in seen:
            raise DuplicateChildId(f"duplicate child id {spec.id!r}")
        seen.add(spec.id)
        check_significance(spec, auto_shutdown)
    return result


def check_significance(spec: ChildSpec, auto_shutdown: AutoShutdown) -> None:
    """Raise ``InvalidChildSpec`` for a significant child under ``AutoShutdown.NEVER`` (AS-01)."""
    if spec.significant and auto_shutdown is AutoShutdown.NEVER:
        raise InvalidChildSpec(
            f"child {spec.id!r}: significant children need auto_shutdown other than NEVER"
        )


def check_flags(strategy: object, intensity: object, period: object, auto_shutdown: object) -> None:
    """Raise ``InvalidSupervisorFlags`` unless the flags are valid (SUP-01): a ``Strategy``, an
    int intensity >= 0, a period > 0 seconds, an ``AutoShutdown``."""
    if not isinstance(strategy, Strategy):
        raise InvalidSupervisorFlags(f"strategy must be a Strategy: {strategy!r}")
    if isinstance(intensity, bool) or not isinstance(intensity, int) or intensity < 0:
        raise InvalidSupervisorFlags(f"intensity must be an int >= 0: {intensity!r}")
    if (
        isinstance(period, bool)
        or not isinstance(period, int | float)
        or not (period > 0 and math.isfinite(period))
    ):
        raise InvalidSupervisorFlags(f"period must be seconds > 0: {period!r}")
    if not isinstance(auto_shutdown, AutoShutdown):
        raise InvalidSupervisorFlags(f"auto_shutdown must be an AutoShutdown: {auto_shutdown!r}")


def check_observer(on_give_up: object) -> None:
    """Raise ``InvalidSupervisorFlags`` unless ``on_give_up`` is callable or None."""
    if on_give_up is not None and not callable(on_give_up):
        raise InvalidSupervisorFlags(f"on_give_up must be callable or None: {on_give_up!r}")
