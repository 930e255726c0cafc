"""auto_shutdown and significant children (AS-01..04)."""

from __future__ import annotations

from typing import cast

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    AutoShutdown,
    ChildSpec,
    DynamicSupervisor,
    DynamicSupervisorRef,
    ExitReason,
    InvalidChildSpec,
    Restart,
    Strategy,
    Supervisor,
    SupervisorRef,
    start_actor,
    start_supervisor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Trace

from .test_strategies import ref_of, workers


def significant(trace: Trace, id: str, restart: Restart = Restart.TRANSIENT) -> ChildSpec:
    return ChildSpec.worker(id, lambda: Crashable(id, trace), restart=restart, significant=True)


class TestAS01Validation:
    def test_AS01_a_significant_permanent_child_is_rejected(self) -> None:
        with pytest.raises(InvalidChildSpec, match="permanent"):
            ChildSpec.worker("w", Supervisor, significant=True)

    def test_AS01_a_significant_child_under_auto_shutdown_never_is_rejected(
        self, trace: Trace
    ) -> None:
        with pytest.raises(InvalidChildSpec, match="auto_shutdown"):
            Supervisor([significant(trace, "s")])

    async def test_AS01_start_child_rejects_a_significant_child_under_never(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        sup = await start_supervisor(nursery, [])
        with pytest.raises(InvalidChildSpec):
            await sup.start_child(significant(trace, "s"))


class TestAS02AnySignificant:
    @pytest.mark.parametrize(
        ("restart", "command"),
        [
            (Restart.TRANSIENT, ExitWith(ExitReason.normal())),
            (Restart.TRANSIENT, ExitWith(ExitReason.shutdown("done"))),
            (Restart.TEMPORARY, ExitWith(ExitReason.normal())),
            (Restart.TEMPORARY, Crash()),
        ],
    )
    async def test_AS02_a_significant_child_gone_for_good_shuts_the_supervisor_down(
        self,
        restart: Restart,
        command: object,
        nursery: trio.Nursery,
        autojump_clock: trio.testing.MockClock,
        trace: Trace,
    ) -> None:
        sup = await start_supervisor(
            nursery,
            [*workers(trace, ["other"]), significant(trace, "s", restart)],
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )
        (await ref_of(sup, "s")).cast(command)
        assert await sup.wait() == ExitReason.shutdown()
        assert ("terminate", "other", ExitReason.shutdown()) in trace.events

    async def test_AS02_a_significant_transient_child_that_crashes_is_restarted_instead(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(
            nursery, [significant(trace, "s")], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT
        )
        (await ref_of(sup, "s")).cast(Crash())
        await trace.wait_count("init", "s", 2)
        assert sup.alive


class TestAS03AllSignificant:
    async def test_AS03_the_supervisor_stays_until_the_last_significant_child_is_gone(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(
            nursery,
            [significant(trace, "s1"), significant(trace, "s2")],
            auto_shutdown=AutoShutdown.ALL_SIGNIFICANT,
        )
        s1, s2 = await ref_of(sup, "s1"), await ref_of(sup, "s2")
        s1.cast(ExitWith(ExitReason.normal()))
        await s1.wait()
        await trio.sleep(1)
        assert sup.alive
        s2.cast(ExitWith(ExitReason.normal()))
        assert await sup.wait() == ExitReason.shutdown()


class TestAS04OnlySelfExits:
    async def test_AS04_terminate_child_of_a_significant_child_does_not_shut_down(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(
            nursery, [significant(trace, "s")], auto_shutdown=AutoShutdown.ANY_SIGNIFICANT
        )
        await sup.terminate_child("s")
        await trio.sleep(1)
        assert sup.alive

    async def test_AS04_a_significant_sibling_stopped_for_a_restart_does_not_shut_down(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        sup = await start_supervisor(
            nursery,
            [*workers(trace, ["a"]), significant(trace, "s")],
            strategy=Strategy.ONE_FOR_ALL,
            auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
        )
        (await ref_of(sup, "a")).cast(Crash())
        await trace.wait_count("init", "s", 2)
        assert sup.alive


class TestSessionSubtreeUseCase:
    async def test_AS02_a_session_subtree_vanishes_when_its_significant_worker_finishes(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """A transient session supervisor under a DynamicSupervisor goes away for good when its
        significant worker exits normally; siblings sessions are untouched."""

        def session(id: str) -> Supervisor:
            return Supervisor(
                [
                    significant(trace, f"{id}.worker"),
                    *workers(trace, [f"{id}.helper"]),
                ],
                auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            )

        sessions = cast(
            DynamicSupervisorRef,
            await start_actor(nursery, DynamicSupervisor(session, restart=Restart.TRANSIENT)),
        )
        s1 = await sessions.start_child("s1")
        s2 = await sessions.start_child("s2")
        assert isinstance(s1, SupervisorRef)
        (await ref_of(s1, "s1.worker")).cast(ExitWith(ExitReason.normal()))
        assert await s1.wait() == ExitReason.shutdown()
        await trio.sleep(1)
        assert [i.ref for i in await sessions.which_children()] == [s2]
        assert ("terminate", "s1.helper", ExitReason.shutdown()) in trace.events
