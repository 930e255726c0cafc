"""Local names (NM-01).

NM-02 (``{via, Mod, Name}``) does not apply: OTP needs ``via`` because the name table is global
per node, so alternative registries must plug into every ``gen`` call. Here the ``Registry`` is an
explicit object passed to ``start_actor``/supervisors and inherited by children, so a different
naming scheme is simply a different ``Registry`` instance — there is no global table to route
around.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing

from streamvisor.supervisor import (
    Actor,
    ActorExited,
    ActorRef,
    Caller,
    ChildSpec,
    InvalidTimeout,
    NoSuchActor,
    Registry,
    Supervisor,
    open_supervisor,
    start_actor,
)
from streamvisor.testing import Crash, Crashable, Recorder, Stall, Trace

from .test_strategies import workers


class TestNM01Names:
    async def test_NM01_a_name_is_freed_when_its_actor_exits(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        ref = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        assert registry.names() == ["a"]
        await ref.stop()
        assert registry.whereis("a") is None
        assert registry.names() == []

    async def test_NM01_a_freed_name_can_be_taken_again(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        first = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        await first.stop()
        second = await start_actor(nursery, Crashable("a", trace), name="a", registry=registry)
        assert registry.whereis("a") is second

    async def test_NM01_call_to_an_unregistered_name_raises_NoSuchActor(self) -> None:
        with pytest.raises(LookupError) as info:
            await Registry().call("ghost", "hello")
        assert isinstance(info.value, NoSuchActor)
        assert info.value.name == "ghost"

    def test_NM01_cast_and_send_to_an_unregistered_name_are_silently_dropped(self) -> None:
        registry = Registry()
        registry.cast("ghost", "hello")
        registry.send("ghost", "hello")

    async def test_NM01_registry_call_and_cast_reach_the_named_actor(
        self, nursery: trio.Nursery, trace: Trace
    ) -> None:
        registry = Registry()
        await start_actor(nursery, Recorder(trace, "r", reply="ok"), name="r", registry=registry)
        registry.cast("r", 1)
        registry.send("r", 2)
        assert await registry.call("r", 3) == "ok"
        assert trace.events == [("cast", "r", 1), ("info", "r", 2), ("call", "r", 3)]

    async def test_NM01_wait_for_wakes_when_the_name_is_registered(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()

        async def start_later() -> None:
            await trio.sleep(3)
            await start_actor(nursery, Crashable("late", trace), name="late", registry=registry)

        nursery.start_soon(start_later)
        start = trio.current_time()
        ref = await registry.wait_for("late", timeout=10)
        assert trio.current_time() - start == pytest.approx(3)
        assert ref.name == "late"

    async def test_NM01_wait_for_times_out_with_TooSlowError(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        with pytest.raises(trio.TooSlowError):
            await Registry().wait_for("never", timeout=2)

    async def test_NM01_children_of_nested_supervisors_inherit_the_registry(
        self, trace: Trace
    ) -> None:
        registry = Registry()
        inner = ChildSpec.supervisor(
            "inner", lambda: Supervisor(workers(trace, ["leaf"])), name="inner"
        )
        async with open_supervisor([inner], registry=registry, name="top") as top:
            assert registry.names() == ["inner", "leaf", "top"]
            assert registry.whereis("top") is top
            assert await registry.call("leaf", "ping") == "pong"
        assert registry.names() == []


class TestCallByName:
    """``Registry.ref(name)``: a handle that finds whoever holds the name at each call."""

    async def test_a_named_ref_follows_its_actor_across_a_restart(self, trace: Trace) -> None:
        registry = Registry()
        async with open_supervisor(workers(trace, ["w"]), registry=registry):
            named = registry.ref("w", restart_wait=5)
            first = named.whereis()
            assert await named.call("ping") == "pong"
            with pytest.raises(ActorExited):
                await named.call(Crash(RuntimeError("boom")))
            assert await named.call("ping") == "pong"
            assert named.whereis() is not first

    async def test_a_named_ref_waits_for_a_restart_within_restart_wait(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        registry = Registry()
        named = registry.ref("late", restart_wait=2)

        async def start_later() -> None:
            await trio.sleep(1)
            await start_actor(nursery, Crashable("late", trace), name="late", registry=registry)

        nursery.start_soon(start_later)
        assert await named.call("ping", timeout=10) == "pong"
        assert trio.current_time() == pytest.approx(1)

    async def test_nobody_holding_the_name_is_NoSuchActor_at_once_or_after_restart_wait(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        registry = Registry()
        with pytest.raises(NoSuchActor):
            await registry.ref("ghost").call("ping")
        assert trio.current_time() == 0
        with pytest.raises(NoSuchActor):
            await registry.ref("ghost", restart_wait=3).call("ping", timeout=10)
        assert trio.current_time() == pytest.approx(3)

    async def test_retry_on_exit_repeats_a_safe_request_to_the_restarted_actor(
        self, trace: Trace
    ) -> None:
        registry = Registry()
        async with open_supervisor(workers(trace, ["w"]), registry=registry):
            named = registry.ref("w", restart_wait=5)
            crashing = named.whereis()
            assert crashing is not None

            async def crash_soon() -> None:
                await trio.testing.wait_all_tasks_blocked()
                crashing.cast(Crash(RuntimeError("boom")))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(crash_soon)
                reply = await named.call(Stall(0.5), timeout=5, retry_on_exit=True)
            assert reply == "stalled"
            assert named.whereis() is not crashing

    def test_a_named_ref_needs_a_name(self) -> None:
        with pytest.raises(TypeError):
            Registry().ref("")


class _Refuser(Actor):
    """Refuses odd numbers with ``Caller.fail``; a string crashes it (a bug)."""

    async def handle_call(self, request: Any, caller: Caller) -> Any:
        if isinstance(request, str):
            raise RuntimeError("a bug")
        if request % 2:
            return caller.fail(ValueError(f"{request} is odd"))
        return request * 10


class TestCallerFail:
    """``Caller.fail(exc)``: OTP's ``{reply, {error, Reason}, State}``."""

    async def test_fail_raises_in_the_caller_and_the_actor_carries_on(
        self, nursery: trio.Nursery
    ) -> None:
        ref = await start_actor(nursery, _Refuser())
        with pytest.raises(ValueError, match="3 is odd"):
            await ref.call(3)
        assert await ref.call(4) == 40
        assert ref.alive

    async def test_an_exception_raised_in_handle_call_still_crashes_the_actor(
        self, nursery: trio.Nursery
    ) -> None:
        ref = await start_actor(nursery, _Refuser())
        with pytest.raises(ActorExited):
            await ref.call("x")
        assert not ref.alive

    async def test_fail_refuses_anything_but_an_Exception(self, nursery: trio.Nursery) -> None:
        class Bad(Actor):
            async def handle_call(self, request: Any, caller: Caller) -> Any:
                try:
                    caller.fail(request)
                except TypeError as exc:
                    return str(exc)
                return "accepted"

        ref = await start_actor(nursery, Bad())
        assert "Exception instance" in await ref.call(KeyboardInterrupt())


class TestCallTimeouts:
    """A call's timeout is seconds >= 0 or None; anything else is the caller's error."""

    @pytest.mark.parametrize("seconds", [math.nan, -1.0, -math.inf])
    async def test_a_nan_or_negative_timeout_is_InvalidTimeout_and_nothing_is_sent(
        self, nursery: trio.Nursery, trace: Trace, seconds: float
    ) -> None:
        registry = Registry()
        ref = await start_actor(
            nursery, Recorder(trace, "r", reply="ok"), name="r", registry=registry
        )
        with pytest.raises(InvalidTimeout) as info:
            await ref.call("x", timeout=seconds)
        assert isinstance(info.value, ValueError)
        with pytest.raises(InvalidTimeout):
            await registry.ref("r").call("x", timeout=seconds)
        assert trace.events == []
        assert await ref.call("y", timeout=0.5) == "ok"


class TestRetryOnAStoppingActor:
    async def test_retry_on_exit_waits_for_a_stopping_actor_instead_of_spinning(
        self, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, trace: Trace
    ) -> None:
        """An actor that is stopping refuses calls but holds its name until ``terminate`` ends:
        the retry waits for that, then finds nobody (no restart) instead of calling again and
        again."""
        registry = Registry()
        ref = await start_actor(
            nursery, Crashable("slow", trace, stall_terminate=3), name="slow", registry=registry
        )
        attempts = 0
        call = ActorRef.call

        async def counted(self: ActorRef, request: object, timeout: float | None = 5.0) -> Any:  # noqa: ASYNC109
            nonlocal attempts
            attempts += 1
            return await call(self, request, timeout)

        nursery.start_soon(ref.stop)
        await trio.testing.wait_all_tasks_blocked()
        ActorRef.call = counted  # type: ignore[method-assign]
        try:
            with pytest.raises(NoSuchActor):
                await registry.ref("slow").call("ping", timeout=10, retry_on_exit=True)
        finally:
            ActorRef.call = call  # type: ignore[method-assign]
        assert attempts == 1
        assert trio.current_time() == pytest.approx(3)
