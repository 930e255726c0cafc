"""The dynamic-children API of static supervisors (DYN-01..07)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    ChildCounts,
    ChildNotFound,
    ChildRestarting,
    ChildRunning,
    ChildSpec,
    ChildType,
    DuplicateChildId,
    ExitReason,
    InvalidChildSpec,
    Registry,
    Restart,
    StartChildError,
    Strategy,
    Supervisor,
    check_childspecs,
    open_supervisor,
)
from streamvisor.testing import Crash, Crashable, Stall, Trace

from .test_dynamic_supervisor import start_dynamic
from .test_intensity import failing_restarts
from .test_strategies import ref_of, workers


class TestDYN01StartChild:
    async def test_DYN01_start_child_starts_it_last_and_returns_its_ref(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            [spec] = workers(trace, ["b"])
            ref = await sup.start_child(spec)
            assert await ref.call("ping") == "pong"
            assert [(i.id, i.ref) for i in await sup.which_children()][-1] == ("b", ref)

    async def test_DYN01_a_running_id_raises_AlreadyStarted_with_its_ref(
        self, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            with pytest.raises(AlreadyStarted) as info:
                await sup.start_child(workers(trace, ["a"])[0])
            assert info.value.ref is await ref_of(sup, "a")

    async def test_DYN01_a_stopped_id_raises_AlreadyPresent(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            await sup.terminate_child("a")
            with pytest.raises(AlreadyPresent):
                await sup.start_child(workers(trace, ["a"])[0])

    async def test_DYN01_a_failing_start_raises_StartChildError_and_keeps_no_spec(
        self, trace: Trace
    ) -> None:
        async with open_supervisor([]) as sup:
            spec = ChildSpec.worker("x", lambda: Crashable("x", trace, init_error=KeyError(1)))
            with pytest.raises(StartChildError) as info:
                await sup.start_child(spec)
            assert isinstance(info.value.__cause__, KeyError)
            assert await sup.which_children() == []

    async def test_DYN01_start_child_is_synchronous_the_name_is_registered_on_return(
        self, trace: Trace
    ) -> None:
        registry = Registry()
        async with open_supervisor([], registry=registry) as sup:
            ref = await sup.start_child(workers(trace, ["named"])[0])
            assert registry.whereis("named") is ref


class TestDYN02TerminateChild:
    async def test_DYN02_terminate_child_stops_it_and_keeps_its_spec(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            ref = await ref_of(sup, "a")
            await sup.terminate_child("a")
            assert ref.reason == ExitReason.shutdown()
            [info] = await sup.which_children()
            assert (info.id, info.ref, info.restarting) == ("a", None, False)

    async def test_DYN02_terminate_child_is_not_a_restart(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a", "b"]), intensity=0) as sup:
            await sup.terminate_child("a")
            await sup.restart_child("a")
            await sup.terminate_child("a")
            await trio.sleep(1)
            assert sup.alive

    async def test_DYN02_a_temporary_child_is_forgotten_once_terminated(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["t"], restart=Restart.TEMPORARY)) as sup:
            await sup.terminate_child("t")
            assert await sup.which_children() == []

    async def test_DYN02_an_unknown_id_raises_ChildNotFound_a_LookupError(
        self, trace: Trace
    ) -> None:
        async with open_supervisor([]) as sup:
            with pytest.raises(LookupError) as info:
                await sup.terminate_child("nope")
            assert isinstance(info.value, ChildNotFound)


class TestDYN03RestartChild:
    async def test_DYN03_restart_child_starts_a_stopped_child_again(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            await sup.terminate_child("a")
            ref = await sup.restart_child("a")
            assert await ref.call("ping") == "pong"
            assert trace.count("init", "a") == 2

    async def test_DYN03_a_running_child_raises_ChildRunning(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            with pytest.raises(ChildRunning):
                await sup.restart_child("a")

    async def test_DYN03_an_unknown_child_raises_ChildNotFound(self, trace: Trace) -> None:
        async with open_supervisor([]) as sup:
            with pytest.raises(ChildNotFound):
                await sup.restart_child("a")

    async def test_DYN03_a_restarting_child_raises_ChildRestarting(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        class Blocker(Crashable):
            pass

        async with open_supervisor(
            [
                failing_restarts(trace, "w", None),
                ChildSpec.worker("blocker", lambda: Blocker("blocker", trace)),
            ],
            intensity=100,
        ) as sup:
            (await ref_of(sup, "w")).cast(Crash())
            await trace.wait_count("init", "w", 2)
            with pytest.raises(ChildRestarting):
                await sup.restart_child("w")
            await sup.terminate_child("w")  # stops the retries
            [w, _] = await sup.which_children()
            assert (w.ref, w.restarting) == (None, False)


class TestDYN04DeleteChild:
    async def test_DYN04_delete_child_forgets_a_stopped_child(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a", "b"])) as sup:
            await sup.terminate_child("a")
            await sup.delete_child("a")
            assert [i.id for i in await sup.which_children()] == ["b"]

    async def test_DYN04_a_running_child_raises_ChildRunning(self, trace: Trace) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            with pytest.raises(ChildRunning):
                await sup.delete_child("a")

    async def test_DYN04_an_unknown_child_raises_ChildNotFound(self, trace: Trace) -> None:
        async with open_supervisor([]) as sup:
            with pytest.raises(ChildNotFound):
                await sup.delete_child("a")


class TestDYN05to07Introspection:
    async def test_DYN05_which_children_lists_in_start_order_with_refs_and_types(
        self, trace: Trace
    ) -> None:
        specs = [
            *workers(trace, ["a"]),
            ChildSpec.supervisor("s", Supervisor),
            *workers(trace, ["b"]),
        ]
        async with open_supervisor(specs) as sup:
            await sup.terminate_child("b")
            rows = await sup.which_children()
        assert [(r.id, r.ref is not None, r.type) for r in rows] == [
            ("a", True, ChildType.WORKER),
            ("s", True, ChildType.SUPERVISOR),
            ("b", False, ChildType.WORKER),
        ]

    async def test_DYN06_count_children_counts_specs_active_and_types(self, trace: Trace) -> None:
        specs = [*workers(trace, ["a", "b"]), ChildSpec.supervisor("s", Supervisor)]
        async with open_supervisor(specs) as sup:
            await sup.terminate_child("a")
            assert await sup.count_children() == ChildCounts(
                specs=3, active=2, supervisors=1, workers=2
            )

    async def test_DYN06_the_nowait_reads_agree_with_the_calls_and_need_a_live_supervisor(
        self, trace: Trace
    ) -> None:
        """``which_children_nowait``/``count_children_nowait`` read the table in the caller's
        task (no message): the same answer as the calls; ``ActorExited`` once it has exited."""
        specs = [*workers(trace, ["a", "b"]), ChildSpec.supervisor("s", Supervisor)]
        async with open_supervisor(specs) as sup:
            await sup.terminate_child("a")
            assert sup.count_children_nowait() == await sup.count_children()
            assert sup.which_children_nowait() == await sup.which_children()
        with pytest.raises(ActorExited):
            sup.count_children_nowait()

    async def test_DYN06_a_dynamic_supervisor_counts_without_a_message_too(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        dyn = await start_dynamic(nursery, trace)
        await dyn.start_child("x")
        assert dyn.count_children_nowait() == await dyn.count_children()
        assert dyn.count_children_nowait().active == 1
        assert dyn.which_children_nowait() == await dyn.which_children()

    async def test_DYN07_get_childspec_returns_the_full_spec(self, trace: Trace) -> None:
        specs = workers(trace, ["a"])
        async with open_supervisor(specs) as sup:
            assert await sup.get_childspec("a") is specs[0]
            with pytest.raises(ChildNotFound):
                await sup.get_childspec("zz")

    def test_DYN07_check_childspecs_validates_a_list(self, trace: Trace) -> None:
        specs = workers(trace, ["a", "b"])
        assert check_childspecs(specs) == tuple(specs)
        with pytest.raises(DuplicateChildId):
            check_childspecs(workers(trace, ["a", "a"]))
        with pytest.raises(InvalidChildSpec):
            check_childspecs(["not a spec"])  # type: ignore[list-item]

    async def test_DYN_requests_are_served_while_a_child_is_busy(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """The supervisor never waits on its children's mailboxes."""
        async with open_supervisor(workers(trace, ["a"])) as sup:
            (await ref_of(sup, "a")).cast(Stall(100))
            with trio.fail_after(1):
                assert (await sup.count_children()).active == 1


class TestDYN02DuringGroupRestart:
    async def test_DYN02_terminating_a_restarting_child_lets_its_group_restart_without_it(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        specs = [failing_restarts(trace, "w", None), *workers(trace, ["after"])]
        async with open_supervisor(specs, strategy=Strategy.REST_FOR_ONE, intensity=100) as sup:
            (await ref_of(sup, "w")).cast(Crash())
            await trace.wait_count("init", "w", 2)
            assert [i.restarting for i in await sup.which_children()] == [True, True]
            await sup.terminate_child("w")
            await trace.wait_count("init", "after", 2)
            rows = await sup.which_children()
            assert [(r.id, r.ref is not None, r.restarting) for r in rows] == [
                ("w", False, False),
                ("after", True, False),
            ]
