"""`observe_tree`: restart counts by reason, last exits, mailboxes, nesting and bounds."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    ActorRef,
    ChildSpec,
    ExitReason,
    Restart,
    Strategy,
    Supervisor,
    TreeNode,
    observe_tree,
    open_supervisor,
    start_actor,
)
from streamvisor.testing import Crash, Crashable, ExitWith, Stall, Trace, quiesce

from .test_dynamic_supervisor import start_dynamic
from .test_strategies import ref_of, workers


def _by_id(root: TreeNode) -> dict[str | None, TreeNode]:
    return {node.id: node for node in root.children}


async def _crash(ref: object, error: Exception) -> None:
    ref.cast(Crash(error))  # type: ignore[attr-defined]
    await quiesce()


class TestRestarts:
    async def test_a_crash_is_counted_by_its_exception_class_and_shown_as_the_last_exit(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a", "b"]), intensity=5) as sup:
            before = time.time()
            await _crash(await ref_of(sup, "a"), RuntimeError("boom"))
            await _crash(await ref_of(sup, "a"), KeyError("k"))
            await _crash(await ref_of(sup, "a"), RuntimeError("again"))
            tree = observe_tree(sup)
            a, b = _by_id(tree)["a"], _by_id(tree)["b"]
            assert a.restarts == 3
            assert dict(a.restart_reasons) == {"crashed:RuntimeError": 2, "crashed:KeyError": 1}
            assert a.last_exit == ExitReason.crashed(RuntimeError("again"))
            assert a.last_exit_at is not None
            assert a.last_exit_at >= before
            assert (a.alive, a.actor, a.name, a.label) == (True, "Crashable", "a", "a")
            assert (b.restarts, dict(b.restart_reasons), b.last_exit) == (0, {}, None)

    async def test_reason_keys_never_carry_the_exception_message(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            await _crash(await ref_of(sup, "a"), ValueError("sk-secret-in-a-message"))
            [a] = observe_tree(sup).children
            assert list(a.restart_reasons) == ["crashed:ValueError"]

    async def test_a_kill_is_counted_as_killed(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            (await ref_of(sup, "a")).kill()
            await quiesce()
            [a] = observe_tree(sup).children
            assert (a.restarts, dict(a.restart_reasons)) == (1, {"killed": 1})

    async def test_an_exit_that_is_not_restarted_is_shown_but_not_counted(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["t"], restart=Restart.TRANSIENT)) as sup:
            assert await (await ref_of(sup, "t")).call(ExitWith()) == "ok"
            await quiesce()
            [t] = observe_tree(sup).children
            assert (t.alive, t.actor, t.mailbox) == (False, None, None)
            assert (t.restarts, t.last_exit) == (0, ExitReason.normal())

    async def test_siblings_restarted_with_a_group_are_not_counted_as_restarted_for_it(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        specs = workers(trace, ["a", "b"])
        async with open_supervisor(specs, strategy=Strategy.ONE_FOR_ALL) as sup:
            await _crash(await ref_of(sup, "a"), RuntimeError("boom"))
            nodes = _by_id(observe_tree(sup))
            assert (nodes["a"].restarts, nodes["b"].restarts) == (1, 0)
            assert nodes["b"].alive


class TestShape:
    async def test_the_root_is_the_supervisor_itself_with_its_mailbox(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"]), name="top") as sup:
            root = observe_tree(sup)
            assert (root.kind, root.actor, root.name, root.id) == (
                "supervisor",
                "Supervisor",
                "top",
                None,
            )
            assert root.mailbox is not None
            assert root.mailbox.used == 0
            [a] = root.children
            assert a.kind == "worker"
            assert a.mailbox is not None
            assert a.mailbox.size == Crashable.mailbox_size

    async def test_a_nested_supervisor_and_its_children_are_walked(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        inner = ChildSpec.supervisor("inner", lambda: Supervisor(workers(trace, ["x", "y"])))
        async with open_supervisor([*workers(trace, ["a"]), inner]) as sup:
            root = observe_tree(sup)
            assert [n.id for n in root.walk()] == [None, "a", "inner", "x", "y"]
            assert _by_id(root)["inner"].kind == "supervisor"

    async def test_a_dynamic_supervisor_lists_its_children_by_name_and_counts_their_restarts(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, intensity=10)
        first = await dsup.start_child("one", name="session.one")
        await dsup.start_child("two", name="session.two")
        await _crash(first, RuntimeError("boom"))
        tree = observe_tree(dsup)
        assert tree.actor == "DynamicSupervisor"
        assert [(n.id, n.name, n.restarts) for n in tree.children] == [
            (None, "session.one", 1),
            (None, "session.two", 0),
        ]

    async def test_a_supervisor_totals_its_childrens_restarts_gone_ones_included(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace, intensity=10)
        one = await dsup.start_child("one")
        await _crash(one, RuntimeError("boom"))
        [restarted] = await dsup.which_children()
        assert restarted.ref is not None
        await _crash(restarted.ref, KeyError("k"))
        [again] = await dsup.which_children()
        assert again.ref is not None
        await dsup.terminate_child(again.ref)
        tree = observe_tree(dsup)
        assert tree.children == ()
        assert dict(tree.child_restarts) == {"crashed:RuntimeError": 1, "crashed:KeyError": 1}

    async def test_a_worker_shows_the_supervisor_it_runs_itself(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        inner = await start_dynamic(nursery, trace)
        await inner.start_child("x", name="x")

        class Host(Crashable):
            def observed_children(self) -> dict[str, ActorRef]:
                return {"inner": inner}

        spec = ChildSpec.worker("host", lambda: Host("host", trace))
        async with open_supervisor([spec]) as sup:
            [host] = observe_tree(sup).children
            assert host.kind == "worker"
            [shown] = host.children
            assert (shown.id, shown.kind, shown.actor) == (
                "inner",
                "supervisor",
                "DynamicSupervisor",
            )
            assert [n.name for n in shown.children] == ["x"]

    async def test_max_children_bounds_each_supervisor_and_counts_the_rest(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        dsup = await start_dynamic(nursery, trace)
        for i in range(5):
            await dsup.start_child(f"c{i}")
        tree = observe_tree(dsup, max_children=2)
        assert (len(tree.children), tree.omitted) == (2, 3)
        assert observe_tree(dsup).omitted == 0

    @pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
    async def test_a_bad_bound_is_a_value_error(self, trace: Trace, bad: object) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            with pytest.raises(ValueError, match="max_children"):
                observe_tree(sup, max_children=bad)  # type: ignore[arg-type]

    async def test_a_mailbox_shows_what_waits_in_it(
        self, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        async with open_supervisor(workers(trace, ["a"])) as sup:
            a = await ref_of(sup, "a")
            a.cast(Stall(10))
            a.cast("ping")
            a.cast("ping")
            await trio.sleep(1)
            [node] = observe_tree(sup).children
            assert node.mailbox is not None
            assert node.mailbox.used == 2


async def test_start_actor_takes_the_label_logs_and_observers_name_it_by(
    nursery: trio.Nursery, trace: Trace
) -> None:
    ref = await start_actor(nursery, Crashable("a", trace), label="inner.pollers")
    assert ref.label == "inner.pollers"
    assert observe_tree(ref).label == "inner.pollers"
