"""Supervisor flags, start order, strategies (SUP-01..08) and restart types (CH-01..05)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.supervisor import (
    ActorRef,
    ChildSpec,
    ChildType,
    DuplicateChildId,
    ExitReason,
    InvalidChildSpec,
    InvalidSupervisorFlags,
    Registry,
    Restart,
    StartChildError,
    Strategy,
    Supervisor,
    SupervisorRef,
    open_supervisor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Trace


def workers(
    trace: Trace, ids: Sequence[str], restart: Restart = Restart.PERMANENT
) -> list[ChildSpec]:
    return [
        ChildSpec.worker(i, lambda i=i: Crashable(i, trace), restart=restart, name=i) for i in ids
    ]


async def ref_of(sup: SupervisorRef, id: str) -> ActorRef:
    for info in await sup.which_children():
        if info.id == id:
            assert info.ref is not None
            return info.ref
    raise AssertionError(id)


class TestSUP01Flags:
    def test_SUP01_defaults_are_one_for_one_intensity_1_period_5(self) -> None:
        sup = Supervisor([])
        assert (sup.strategy, sup.intensity, sup.period) == (Strategy.ONE_FOR_ONE, 1, 5)

    @pytest.mark.parametrize(
        ("flags", "match"),
        [
            ({"intensity": -1}, "intensity"),
            ({"intensity": 1.5}, "intensity"),
            ({"intensity": True}, "intensity"),
            ({"period": 0}, "period"),
            ({"period": -3}, "period"),
            ({"strategy": "one_for_one"}, "strategy"),
            ({"auto_shutdown": "never"}, "auto_shutdown"),
        ],
    )
    def test_SUP01_invalid_flags_are_rejected(self, flags: dict[str, object], match: str) -> None:
        with pytest.raises(InvalidSupervisorFlags, match=match):
            Supervisor([], **flags)  # type: ignore[arg-type]

    async def test_SUP01_invalid_flags_make_open_supervisor_fail_before_starting_anything(
        self, trace: Trace
    ) -> None:
        with pytest.raises(ValueError, match="intensity"):
            async with open_supervisor(workers(trace, ["a"]), intensity=-1):
                pass  # pragma: no cover
        assert trace.events == []


class TestSUP02StartOrder:
    async def test_SUP02_children_start_in_spec_order_each_before_the_next(
        self, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a", "b", "c"])) as sup:
            assert trace.of("init") == [("init", "a"), ("init", "b"), ("init", "c")]
            assert [i.id for i in await sup.which_children()] == ["a", "b", "c"]

    async def test_SUP02_children_are_reachable_by_name_when_open_supervisor_returns(
        self, trace: Trace
    ) -> None:
        """triotp bug 9: no start handshake — an immediate call could miss the name."""
        registry = Registry()
        async with open_supervisor(workers(trace, ["kv"]), registry=registry):
            assert await registry.call("kv", "ping") == "pong"


class TestSUP03StartFailure:
    async def test_SUP03_a_failing_child_stops_the_started_ones_in_reverse_and_fails_the_start(
        self, trace: Trace
    ) -> None:
        specs = [
            *workers(trace, ["a", "b"]),
            ChildSpec.worker("c", lambda: Crashable("c", trace, init_error=OSError("no db"))),
            *workers(trace, ["d"]),
        ]
        with pytest.raises(StartChildError) as info:
            async with open_supervisor(specs):
                pass  # pragma: no cover
        assert info.value.child_id == "c"
        assert isinstance(info.value.__cause__, OSError)
        assert trace.of("init") == [("init", "a"), ("init", "b"), ("init", "c")]
        assert [e[1] for e in trace.of("terminate")] == ["b", "a"]


class TestSUP04OneForOne:
    async def test_SUP04_only_the_failed_child_is_restarted(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a", "b", "c"])) as sup:
            b = await ref_of(sup, "b")
            b.cast(Crash())
            await trace.wait_count("init", "b", 2)
            assert [e[1] for e in trace.of("init")] == ["a", "b", "c", "b"]
            assert [e[1] for e in trace.of("terminate")] == ["b"]
            assert (await ref_of(sup, "b")) is not b

    async def test_SUP04_a_restarted_child_is_registered_under_its_name_again(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()
        async with open_supervisor(workers(trace, ["a"]), registry=registry):
            old = registry.whereis("a")
            assert old is not None
            old.cast(Crash())
            await old.wait()
            new = await registry.wait_for("a", timeout=5)
            assert new is not old
            assert await new.call("ping") == "pong"


class TestSUP05OneForAll:
    async def test_SUP05_all_others_stop_in_reverse_then_all_restart_in_order(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(
            workers(trace, ["a", "b", "c"]), strategy=Strategy.ONE_FOR_ALL
        ) as sup:
            (await ref_of(sup, "b")).cast(Crash())
            await trace.wait_count("init", "c", 2)
            after = trace.events[3:]
            assert [(e[0], e[1]) for e in after] == [
                ("terminate", "b"),  # the crash itself
                ("terminate", "c"),
                ("terminate", "a"),
                ("init", "a"),
                ("init", "b"),
                ("init", "c"),
            ]


class TestSUP06RestForOne:
    async def test_SUP06_later_children_stop_in_reverse_then_restart_in_order(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(
            workers(trace, ["a", "b", "c", "d"]), strategy=Strategy.REST_FOR_ONE
        ) as sup:
            (await ref_of(sup, "b")).cast(Crash())
            await trace.wait_count("init", "d", 2)
            after = trace.events[4:]
            assert [(e[0], e[1]) for e in after] == [
                ("terminate", "b"),
                ("terminate", "d"),
                ("terminate", "c"),
                ("init", "b"),
                ("init", "c"),
                ("init", "d"),
            ]


class TestSUP08TemporarySiblings:
    @pytest.mark.parametrize("strategy", [Strategy.ONE_FOR_ALL, Strategy.REST_FOR_ONE])
    async def test_SUP08_a_temporary_sibling_stopped_for_a_restart_is_not_restarted_and_removed(
        self, strategy: Strategy, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        specs = [
            *workers(trace, ["a"]),
            *workers(trace, ["t"], restart=Restart.TEMPORARY),
        ]
        async with open_supervisor(specs, strategy=strategy) as sup:
            (await ref_of(sup, "a")).cast(Crash())
            await trace.wait_count("init", "a", 2)
            assert [i.id for i in await sup.which_children()] == ["a"]
            assert trace.count("init", "t") == 1


class TestCH01Specs:
    def test_CH01_duplicate_ids_are_rejected_with_DuplicateChildId_a_ValueError(
        self, trace: Trace
    ) -> None:
        with pytest.raises(ValueError, match="duplicate") as info:
            Supervisor(workers(trace, ["a", "a"]))
        assert isinstance(info.value, DuplicateChildId)

    def test_CH01_worker_and_supervisor_specs_have_OTP_defaults(self) -> None:
        worker = ChildSpec.worker("w", Supervisor)
        sup = ChildSpec.supervisor("s", Supervisor)
        assert (worker.restart, worker.shutdown, worker.type) == (
            Restart.PERMANENT,
            5.0,
            ChildType.WORKER,
        )
        assert (sup.shutdown, sup.type, sup.significant) == (
            "infinity",
            ChildType.SUPERVISOR,
            False,
        )

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"shutdown": -1},
            {"shutdown": "forever"},
            {"shutdown": float("nan")},
            {"restart": "permanent"},
            {"name": ""},
        ],
    )
    def test_CH01_bad_fields_raise_InvalidChildSpec(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(InvalidChildSpec):
            ChildSpec.worker("w", Supervisor, **kwargs)  # type: ignore[arg-type]

    def test_CH01_an_empty_id_or_a_non_callable_factory_is_rejected(self) -> None:
        with pytest.raises(InvalidChildSpec):
            ChildSpec.worker("", Supervisor)
        with pytest.raises(InvalidChildSpec):
            ChildSpec.worker("w", "not callable")  # type: ignore[arg-type]

    def test_CH01_specs_are_frozen(self) -> None:
        import attrs

        spec = ChildSpec.worker("w", Supervisor)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            spec.id = "x"  # type: ignore[misc]


async def exit_and_see(
    trace: Trace, restart: Restart, command: object
) -> tuple[int, list[dict[str, object]]]:
    """Run one child of ``restart`` type, send it ``command``; return (inits, logs)."""
    with capture_logs() as logs:
        async with open_supervisor(workers(trace, ["w"], restart=restart), intensity=5) as sup:
            (await ref_of(sup, "w")).cast(command)
            await trio.sleep(1)
    return trace.count("init", "w"), [e for e in logs if e["event"] == "child_terminated"]


NORMAL_EXITS = [
    ExitWith(ExitReason.normal()),
    ExitWith(ExitReason.shutdown()),
    ExitWith(ExitReason.shutdown("done")),
]


class TestCH02to05RestartTypes:
    @pytest.mark.parametrize("command", [*NORMAL_EXITS, Crash()])
    async def test_CH02_a_permanent_child_is_restarted_whatever_the_reason(
        self, command: object, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        inits, _ = await exit_and_see(trace, Restart.PERMANENT, command)
        assert inits == 2

    @pytest.mark.parametrize("command", NORMAL_EXITS)
    async def test_CH03_a_transient_child_exiting_normally_is_not_restarted(
        self, command: object, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        inits, _ = await exit_and_see(trace, Restart.TRANSIENT, command)
        assert inits == 1

    async def test_CH03_a_transient_child_that_crashes_is_restarted(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        inits, _ = await exit_and_see(trace, Restart.TRANSIENT, Crash())
        assert inits == 2

    @pytest.mark.parametrize("command", [*NORMAL_EXITS, Crash()])
    async def test_CH04_a_temporary_child_is_never_restarted_and_its_spec_is_deleted(
        self, command: object, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["w"], restart=Restart.TEMPORARY)) as sup:
            (await ref_of(sup, "w")).cast(command)
            await trio.sleep(1)
            assert await sup.which_children() == []
        assert trace.count("init", "w") == 1

    @pytest.mark.parametrize(
        ("restart", "command", "reported"),
        [
            (Restart.PERMANENT, ExitWith(ExitReason.normal()), True),
            (Restart.PERMANENT, Crash(), True),
            (Restart.TRANSIENT, ExitWith(ExitReason.normal()), False),
            (Restart.TRANSIENT, ExitWith(ExitReason.shutdown("x")), False),
            (Restart.TRANSIENT, Crash(), True),
            (Restart.TEMPORARY, ExitWith(ExitReason.normal()), False),
            (Restart.TEMPORARY, Crash(), True),
        ],
    )
    async def test_CH05_child_terminated_is_logged_as_an_error_per_OTP_rules(
        self,
        restart: Restart,
        command: object,
        reported: bool,
        autojump_clock: trio.testing.MockClock,
        trace: Trace,
    ) -> None:
        _, reports = await exit_and_see(trace, restart, command)
        assert bool(reports) is reported
        for report in reports:
            assert report["log_level"] == "error"
            assert report["child"] == "w"
            assert report["supervisor"] == "supervisor"
            assert isinstance(report["reason"], ExitReason)
