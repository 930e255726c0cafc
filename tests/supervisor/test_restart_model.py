"""Property: random exit schedules produce exactly the restarts a small pure model predicts.

The model is OTP's restart logic written as plainly as possible (restart types, per-supervisor
intensity within a sliding period, the three strategies, give-up in reverse order). Each example
runs a real supervisor under ``trio.run`` with a ``MockClock`` and compares the observed
``init``/``terminate`` trace and the supervisor's fate.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from streamvisor.supervisor import ChildSpec, ExitReason, Restart, Strategy, start_supervisor
from streamvisor.testing import Crash, Crashable, ExitWith, Trace

IDS = ["a", "b", "c"]


@attrs.frozen
class Step:
    delay: float
    child: int
    crash: bool


@attrs.define
class Model:
    restarts_of: dict[str, Restart]
    strategy: Strategy
    intensity: int
    period: float
    present: list[str] = attrs.Factory(list)
    running: set[str] = attrs.Factory(set)
    stamps: list[float] = attrs.Factory(list)
    alive: bool = True
    trace: list[tuple[str, str]] = attrs.Factory(list)

    def start_all(self) -> None:
        for id in self.restarts_of:
            self.present.append(id)
            self.running.add(id)
            self.trace.append(("init", id))

    def stop(self, id: str) -> None:
        self.running.discard(id)
        self.trace.append(("terminate", id))

    def exit(self, id: str, crash: bool, now: float) -> None:
        if not self.alive or id not in self.running:
            return
        self.stop(id)
        kind = self.restarts_of[id]
        if kind is Restart.TEMPORARY or (kind is Restart.TRANSIENT and not crash):
            if kind is Restart.TEMPORARY:
                self.present.remove(id)
            return
        self.stamps = [t for t in self.stamps if t >= now - self.period] + [now]
        if len(self.stamps) > self.intensity:
            for other in reversed(self.present):
                if other in self.running:
                    self.stop(other)
            self.alive = False
            return
        if self.strategy is Strategy.ONE_FOR_ONE:
            group = [id]
        else:
            start = 0 if self.strategy is Strategy.ONE_FOR_ALL else self.present.index(id)
            group = self.present[start:]
            for other in reversed(group):
                if other in self.running:
                    self.stop(other)
            for other in group:
                if other != id and self.restarts_of[other] is Restart.TEMPORARY:
                    self.present.remove(other)
            group = [g for g in group if g in self.present]
        for member in group:
            self.running.add(member)
            self.trace.append(("init", member))

    def shutdown(self) -> None:
        if self.alive:
            for other in reversed(self.present):
                if other in self.running:
                    self.stop(other)


async def run_real(
    restarts: Sequence[Restart],
    strategy: Strategy,
    intensity: int,
    period: float,
    steps: Sequence[Step],
) -> tuple[list[tuple[str, str]], bool]:
    trace = Trace()
    specs = [
        ChildSpec.worker(id, lambda id=id: Crashable(id, trace), restart=restart)
        for id, restart in zip(IDS, restarts, strict=False)
    ]
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            sup = await start_supervisor(
                nursery, specs, strategy=strategy, intensity=intensity, period=period
            )
            for step in steps:
                await trio.sleep(step.delay)
                if not sup.alive:
                    continue
                id = IDS[step.child % len(specs)]
                ref = next((i.ref for i in await sup.which_children() if i.id == id), None)
                if ref is None:
                    continue
                ref.cast(Crash() if step.crash else ExitWith(ExitReason.normal()))
                await ref.wait()
                await trio.testing.wait_all_tasks_blocked()
            alive = sup.alive
            if alive:
                await sup.stop(timeout=None)
    return [(e[0], e[1]) for e in trace.events], alive


def run_model(
    restarts: Sequence[Restart],
    strategy: Strategy,
    intensity: int,
    period: float,
    steps: Sequence[Step],
) -> tuple[list[tuple[str, str]], bool]:
    model = Model(dict(zip(IDS, restarts, strict=False)), strategy, intensity, period)
    model.start_all()
    now = 0.0
    for step in steps:
        now += step.delay
        model.exit(IDS[step.child % len(restarts)], step.crash, now)
    alive = model.alive
    model.shutdown()
    return model.trace, alive


steps_strategy = st.lists(
    st.builds(
        Step,
        delay=st.sampled_from([0.0, 0.5, 2.0, 4.0, 6.0]),
        child=st.integers(0, 2),
        crash=st.booleans(),
    ),
    max_size=8,
)


class TestRestartModel:
    @settings(max_examples=150, deadline=None)
    @given(
        restarts=st.lists(st.sampled_from(list(Restart)), min_size=1, max_size=3),
        strategy=st.sampled_from(list(Strategy)),
        intensity=st.integers(0, 3),
        period=st.sampled_from([1, 5]),
        steps=steps_strategy,
    )
    def test_INT01_SUP04to06_CH02to04_observed_restarts_match_the_reference_model(
        self,
        restarts: list[Restart],
        strategy: Strategy,
        intensity: int,
        period: float,
        steps: list[Step],
    ) -> None:
        """Whatever the schedule, the real supervisor restarts exactly as the model says."""
        with capture_logs():
            observed = trio.run(
                run_real,
                restarts,
                strategy,
                intensity,
                period,
                steps,
                clock=trio.testing.MockClock(autojump_threshold=0),
            )
        assert observed == run_model(restarts, strategy, intensity, period, steps)
