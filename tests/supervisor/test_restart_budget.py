"""Per-child restart budgets (BUD-01..05, `_dynamic.py`) and supervisor children that are not
supervisors."""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    AutoShutdown,
    ChildSpec,
    ChildType,
    DynamicSupervisor,
    DynamicSupervisorRef,
    ExitReason,
    GivenUp,
    InvalidChildSpec,
    InvalidSupervisorFlags,
    Registry,
    Restart,
    RestartBudget,
    StartChildError,
    Strategy,
    Supervisor,
    open_supervisor,
    start_actor,
    start_supervisor,
)
from streamvisor.testing import Crash, Crashable, Trace

TWO_IN_FIVE = RestartBudget(2, 5.0)


async def start_budgeted(
    nursery: trio.Nursery,
    trace: Trace,
    given_up: list[GivenUp],
    *,
    budget: RestartBudget | None = TWO_IN_FIVE,
    intensity: int = 10,
    period: float = 5.0,
    failing_inits: set[str] | None = None,
    registry: Registry | None = None,
) -> DynamicSupervisorRef:
    failing = failing_inits if failing_inits is not None else set()

    def factory(tag: str) -> Crashable:
        error = OSError(f"cannot start {tag}") if tag in failing else None
        return Crashable(tag, trace, init_error=error)

    dsup = DynamicSupervisor(
        factory,
        restart=Restart.TRANSIENT,
        intensity=intensity,
        period=period,
        restart_budget=budget,
        on_give_up=given_up.append,
    )
    ref = await start_actor(nursery, dsup, registry=registry or Registry())
    return cast(DynamicSupervisorRef, ref)


async def crash(registry: Registry, name: str, error: Exception | None = None) -> None:
    """Crash the child registered as ``name`` and wait until that incarnation is gone."""
    ref = registry.whereis(name)
    assert ref is not None
    ref.cast(Crash(error or RuntimeError(f"boom {name}")))
    await ref.wait()


class TestBUD01GivingUpOneChild:
    async def test_BUD01_a_child_over_its_budget_is_given_up_and_its_siblings_keep_running(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Budget 2 in 5 s: the third crash within 5 s is not restarted; the others run on."""
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(nursery, trace, given_up, registry=registry)
        bystanders = [await dsup.start_child(t, name=t) for t in ("a", "b", "c")]
        await dsup.start_child("bad", name="bad")
        for attempt in range(3):
            await crash(registry, "bad")
            if attempt < 2:
                await registry.wait_for("bad", timeout=1)
        await trio.testing.wait_all_tasks_blocked()
        assert registry.whereis("bad") is None
        assert trace.count("init", "bad") == 3  # the first start and two restarts
        assert dsup.alive
        assert all(ref.alive for ref in bystanders)
        rows = await dsup.which_children()
        assert [row.ref for row in rows] == bystanders  # the offender is forgotten
        assert [await ref.call("ping") for ref in bystanders] == ["pong"] * 3

    async def test_BUD01_restarts_older_than_the_budget_period_are_forgotten(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """A child crashing every 3 s never has more than 2 restarts within 5 s: never given up."""
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(nursery, trace, given_up, registry=registry, intensity=100)
        await dsup.start_child("slow", name="slow")
        for _ in range(10):
            await trio.sleep(3)
            await crash(registry, "slow")
            await registry.wait_for("slow", timeout=1)
        assert given_up == []
        assert trace.count("init", "slow") == 11

    async def test_BUD01_the_give_up_is_logged_with_the_last_exit_reason(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        from structlog.testing import capture_logs

        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, budget=RestartBudget(0, 5.0)
        )
        await dsup.start_child("bad", name="bad")
        with capture_logs() as logs:
            await crash(registry, "bad", KeyError("last words"))
            await trio.testing.wait_all_tasks_blocked()
        [entry] = [e for e in logs if e["event"] == "child_given_up"]
        assert entry["log_level"] == "error"
        assert entry["child"] == "bad"
        assert "last words" in str(entry["reason"])
        assert (entry["intensity"], entry["period"]) == (0, 5.0)


class TestBUD02TheOwnerIsTold:
    async def test_BUD02_on_give_up_gets_the_name_args_last_reason_and_budget(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        budget = RestartBudget(1, 5.0)
        dsup = await start_budgeted(nursery, trace, given_up, registry=registry, budget=budget)
        await dsup.start_child("bad", name="bad.name")
        await crash(registry, "bad.name")
        await registry.wait_for("bad.name", timeout=1)
        error = ValueError("again")
        await crash(registry, "bad.name", error)
        await trio.testing.wait_all_tasks_blocked()
        [notice] = given_up
        assert notice.supervisor is dsup
        assert (notice.name, notice.args, notice.budget) == ("bad.name", ("bad",), budget)
        assert notice.reason == ExitReason.crashed(error)
        assert notice.reason.exception is error

    async def test_BUD02_an_observer_that_raises_is_logged_and_the_supervisor_goes_on(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        from structlog.testing import capture_logs

        def broken(_: GivenUp) -> None:
            raise RuntimeError("observer bug")

        registry = Registry()
        dsup = cast(
            DynamicSupervisorRef,
            await start_actor(
                nursery,
                DynamicSupervisor(
                    lambda tag: Crashable(tag, trace),
                    restart_budget=RestartBudget(0, 1.0),
                    on_give_up=broken,
                ),
                registry=registry,
            ),
        )
        await dsup.start_child("bad", name="bad")
        with capture_logs() as logs:
            await crash(registry, "bad")
            await trio.testing.wait_all_tasks_blocked()
        assert "give_up_observer_failed" in [e["event"] for e in logs]
        assert dsup.alive
        assert await (await dsup.start_child("ok", name="ok")).call("ping") == "pong"


class TestBUD03SupervisorIntensity:
    async def test_BUD03_a_budget_within_the_intensity_never_stops_the_supervisor_alone(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """The issue-7 scenario: intensity 3 in 5 s, one child crash-looping, budget 3 in 5 s.
        Without a budget the 4th crash stops every child; with one, only the offender goes."""
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, budget=RestartBudget(3, 5.0), intensity=3
        )
        bystanders = [await dsup.start_child(f"s{i}", name=f"s{i}") for i in range(16)]
        await dsup.start_child("bad", name="bad")
        while registry.whereis("bad") is not None:
            await crash(registry, "bad")
            await trio.testing.wait_all_tasks_blocked()
        assert len(given_up) == 1
        assert dsup.alive
        assert all(ref.alive for ref in bystanders)

    async def test_BUD03_restarts_within_budgets_still_count_toward_the_intensity(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """INT-01 holds: three children crashing once each (all within their budgets) exceed
        intensity 2 together, and the supervisor gives up (INT-02)."""
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(nursery, trace, given_up, registry=registry, intensity=2)
        refs = [await dsup.start_child(t, name=t) for t in ("a", "b", "c")]
        for name in ("a", "b", "c"):
            await crash(registry, name)
        assert await dsup.wait() == ExitReason.shutdown()
        assert given_up == []
        assert not any(ref.alive for ref in refs)

    async def test_BUD03_the_attempt_that_exceeds_a_budget_is_not_counted(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """Budget 1, intensity 1: the offender's one restart uses the intensity up; its
        given-up second crash does not add to it, so the supervisor survives."""
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, budget=RestartBudget(1, 5.0), intensity=1
        )
        await dsup.start_child("bad", name="bad")
        await crash(registry, "bad")
        await registry.wait_for("bad", timeout=1)
        await crash(registry, "bad")
        await trio.testing.wait_all_tasks_blocked()
        assert len(given_up) == 1
        assert dsup.alive

    async def test_BUD03_without_a_budget_intensity_alone_decides_as_before(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, budget=None, intensity=3
        )
        bystander = await dsup.start_child("ok", name="ok")
        await dsup.start_child("bad", name="bad")
        for _ in range(3):
            await crash(registry, "bad")
            await registry.wait_for("bad", timeout=1)
        await crash(registry, "bad")
        assert await dsup.wait() == ExitReason.shutdown()
        assert bystander.reason == ExitReason.shutdown()
        assert given_up == []


class TestBUD04FailedRestarts:
    async def test_BUD04_a_child_whose_restart_keeps_failing_is_given_up_with_the_start_error(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        failing: set[str] = set()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, failing_inits=failing, intensity=100
        )
        bystander = await dsup.start_child("ok", name="ok")
        await dsup.start_child("bad", name="bad")
        failing.add("bad")
        await crash(registry, "bad")
        await trace.wait_count("init", "bad", 3)  # the first start, then two failed restarts
        await trio.testing.wait_all_tasks_blocked()
        [notice] = given_up
        assert notice.reason.kind == "crashed"
        assert isinstance(notice.reason.exception, OSError)
        assert trace.count("init", "bad") == 3
        assert [row.ref for row in await dsup.which_children()] == [bystander]


class TestBUD05GivenUpIsNotBlacklisted:
    async def test_BUD05_a_given_up_child_can_be_started_again_with_a_fresh_budget(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        dsup = await start_budgeted(
            nursery, trace, given_up, registry=registry, budget=RestartBudget(0, 5.0)
        )
        await dsup.start_child("bad", name="bad")
        await crash(registry, "bad")
        await trio.testing.wait_all_tasks_blocked()
        assert len(given_up) == 1
        again = await dsup.start_child("bad", name="bad")
        assert registry.whereis("bad") is again
        assert await again.call("ping") == "pong"


def budgeted(
    trace: Trace,
    id: str,
    budget: RestartBudget,
    *,
    restart: Restart = Restart.PERMANENT,
    significant: bool = False,
    failing_restarts: bool = False,
) -> ChildSpec:
    """A static child with a budget; with ``failing_restarts`` every start after the first
    fails."""

    def factory() -> Crashable:
        fails = failing_restarts and trace.count("init", id) >= 1
        return Crashable(id, trace, init_error=OSError(f"cannot start {id}") if fails else None)

    return ChildSpec.worker(
        id, factory, restart=restart, name=id, significant=significant, restart_budget=budget
    )


def plain(trace: Trace, id: str) -> ChildSpec:
    return ChildSpec.worker(id, lambda: Crashable(id, trace), name=id)


class TestBUDStaticSupervisor:
    async def test_BUD01_a_static_child_over_its_budget_is_given_up_and_its_spec_removed(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        specs = [plain(trace, "a"), budgeted(trace, "bad", RestartBudget(1, 5.0))]
        async with open_supervisor(
            specs, intensity=10, registry=registry, on_give_up=given_up.append
        ) as sup:
            await crash(registry, "bad")
            await registry.wait_for("bad", timeout=1)
            await crash(registry, "bad", KeyError("again"))
            await trio.testing.wait_all_tasks_blocked()
            assert [row.id for row in await sup.which_children()] == ["a"]
            [notice] = given_up
            assert (notice.id, notice.name, notice.args) == ("bad", "bad", ())
            assert notice.reason.kind == "crashed"
            assert isinstance(notice.reason.exception, KeyError)
            # BUD-05: the spec is gone, so the same spec can be started again.
            again = await sup.start_child(specs[1])
            assert await again.call("ping") == "pong"
            assert sup.alive

    async def test_BUD01_under_one_for_all_the_group_is_not_restarted_for_a_given_up_child(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        specs = [
            plain(trace, "a"),
            budgeted(trace, "bad", RestartBudget(0, 5.0)),
            plain(trace, "b"),
        ]
        async with open_supervisor(
            specs, strategy=Strategy.ONE_FOR_ALL, registry=registry, on_give_up=given_up.append
        ) as sup:
            a, b = registry.whereis("a"), registry.whereis("b")
            await crash(registry, "bad")
            await trio.testing.wait_all_tasks_blocked()
            assert len(given_up) == 1
            assert [row.ref for row in await sup.which_children()] == [a, b]
            assert (trace.count("init", "a"), trace.count("init", "b")) == (1, 1)

    async def test_BUD01_a_significant_child_given_up_triggers_auto_shutdown(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """AS-02: a significant child that terminates and is not restarted."""
        registry = Registry()
        specs = [
            plain(trace, "a"),
            budgeted(
                trace, "main", RestartBudget(0, 5.0), restart=Restart.TRANSIENT, significant=True
            ),
        ]
        sup = await start_supervisor(
            nursery, specs, auto_shutdown=AutoShutdown.ANY_SIGNIFICANT, registry=registry
        )
        await crash(registry, "main")
        assert await sup.wait() == ExitReason.shutdown()
        assert trace.count("init", "main") == 1

    async def test_BUD04_a_static_child_whose_restarts_keep_failing_is_given_up(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry, given_up = Registry(), list[GivenUp]()
        specs = [
            plain(trace, "a"),
            budgeted(trace, "bad", RestartBudget(2, 5.0), failing_restarts=True),
        ]
        async with open_supervisor(
            specs, intensity=100, registry=registry, on_give_up=given_up.append
        ) as sup:
            await crash(registry, "bad")
            await trace.wait_count("init", "bad", 3)
            await trio.testing.wait_all_tasks_blocked()
            [notice] = given_up
            assert isinstance(notice.reason.exception, OSError)
            assert trace.count("init", "bad") == 3  # the first start, then two failed restarts
            assert [row.id for row in await sup.which_children()] == ["a"]


class TestRestartBudgetValidation:
    @pytest.mark.parametrize(
        ("intensity", "period"),
        [(-1, 5.0), (1.5, 5.0), (True, 5.0), (1, 0), (1, -1.0), (1, float("inf")), (1, "5")],
    )
    def test_a_bad_budget_is_refused_at_construction(
        self, intensity: object, period: object
    ) -> None:
        with pytest.raises(InvalidChildSpec):
            RestartBudget(intensity, period)  # type: ignore[arg-type]

    def test_a_budget_of_the_wrong_type_or_an_uncallable_observer_is_refused(self) -> None:
        with pytest.raises(InvalidChildSpec):
            DynamicSupervisor(Crashable, restart_budget=(3, 5.0))  # type: ignore[arg-type]
        with pytest.raises(InvalidChildSpec):
            ChildSpec.worker("w", Crashable, restart_budget=3)  # type: ignore[arg-type]
        with pytest.raises(InvalidSupervisorFlags):
            DynamicSupervisor(Crashable, on_give_up="log")  # type: ignore[arg-type]
        with pytest.raises(InvalidSupervisorFlags):
            Supervisor([], on_give_up="log")  # type: ignore[arg-type]


class TestCH01SupervisorChildren:
    async def test_CH01_a_supervisor_spec_whose_factory_returns_a_worker_fails_to_start(
        self, trace: Trace
    ) -> None:
        """``ChildSpec.supervisor`` promises a supervisor (its shutdown is ``infinity``): a
        factory returning a worker is refused with ``InvalidChildSpec`` as the start error."""
        spec = ChildSpec.supervisor("sup", lambda: Crashable("w", trace))
        with pytest.raises(StartChildError) as info:
            async with open_supervisor([spec]):
                pass  # pragma: no cover
        assert isinstance(info.value.__cause__, InvalidChildSpec)
        assert trace.count("init", "w") == 0

    async def test_CH01_start_child_refuses_it_too_and_keeps_no_spec(self, trace: Trace) -> None:
        async with open_supervisor([]) as sup:
            with pytest.raises(StartChildError) as info:
                await sup.start_child(ChildSpec.supervisor("s", lambda: Crashable("w", trace)))
            assert isinstance(info.value.__cause__, InvalidChildSpec)
            assert await sup.which_children() == []
            ref = await sup.start_child(ChildSpec.supervisor("s", Supervisor))
            assert ref.alive

    async def test_CH01_a_dynamic_supervisor_of_supervisors_refuses_a_worker(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        dsup = cast(
            DynamicSupervisorRef,
            await start_actor(
                nursery,
                DynamicSupervisor(lambda: Crashable("w", trace), type=ChildType.SUPERVISOR),
            ),
        )
        with pytest.raises(StartChildError) as info:
            await dsup.start_child()
        assert isinstance(info.value.__cause__, InvalidChildSpec)

    async def test_CH01_a_factory_that_returns_no_actor_fails_to_start(self) -> None:
        spec = ChildSpec.worker("w", lambda: "not an actor")  # type: ignore[arg-type,return-value]
        with pytest.raises(StartChildError) as info:
            async with open_supervisor([spec]):
                pass  # pragma: no cover
        assert isinstance(info.value.__cause__, InvalidChildSpec)
