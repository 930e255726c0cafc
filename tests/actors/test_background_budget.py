"""A background poller crash-looping beyond its own restart budget is given up alone
(``poller_budget``): its response's subscribers get a `PollingStopped` saying why, the other
pollers and the background actor run on, and ``poll()`` resumes it."""

from __future__ import annotations

import trio
import trio.testing

from streamvisor.actors import GIVEN_UP_CODE
from streamvisor.actors.background._status import PollingStopped
from streamvisor.supervisor import RestartBudget

from .test_background_logic import (
    Clock,
    Crash,
    FakeAPI,
    Ok,
    inline_sqlite,  # noqa: F401 - the autouse fixture: SQLite inline under the autojump clock
    rig,
    settle,
    statuses,
    take,
)


class TestPollerBudget:
    async def test_a_crash_looping_poller_is_given_up_with_a_notice_and_the_rest_keep_polling(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Crash()])
        budget = RestartBudget(2, 60.0)
        async with rig(api, poller_intensity=2, poller_budget=budget) as r:
            async with (
                r.bus.subscribe("background.*") as background,
                r.bus.subscribe("session.s1") as session,
            ):
                bad = await r.handle.create("hi", "gpt-4o", owner="s1")
                api.next_script = [Ok("in_progress"), Ok("in_progress"), Ok("completed")]
                good = await r.handle.create("hi", "gpt-4o")
                stopped: PollingStopped | None = None
                with trio.fail_after(600):
                    while stopped is None:
                        [item] = await take(background, 1)
                        if isinstance(item, PollingStopped):
                            stopped = item
                await settle(100)
                assert stopped in session.drain()  # the owner's session is told too
            assert stopped.response_id == bad.response_id
            assert stopped.code == GIVEN_UP_CODE
            assert "restart budget exhausted" in stopped.error
            assert "transport bug" in stopped.error
            assert stopped.owner == "s1"
            assert not stopped.terminal
            # The first run and two restarts; the third crash is not restarted.
            assert len(api.get_times(bad.response_id)) == 3
            # Within the budgets the two restarts were counted, yet intensity 2 was not
            # exceeded: the background actor and the other poller ran on.
            assert (await r.handle.get(good.response_id)).status == "completed"
            assert [a.response_id for a in await r.handle.active()] == [bad.response_id]
            # poll() answers from its own GET and starts a poller again, which sees it finish.
            api.scripts[bad.response_id] = [Ok("in_progress"), Ok("completed")]
            polled = await r.handle.poll(bad.response_id)
            assert polled["status"] == "in_progress"
            await settle(100)
            assert len(api.get_times(bad.response_id)) == 5
            assert (await r.handle.get(bad.response_id)).status == "completed"

    async def test_without_a_budget_the_pollers_intensity_alone_decides(
        self, autojump_clock: Clock
    ) -> None:
        api = FakeAPI(next_script=[Ok("in_progress"), Crash(), Ok("completed")])
        async with rig(api, poller_budget=None) as r:
            record = await r.handle.create("hi", "gpt-4o")
            async with r.bus.subscribe(f"background.{record.response_id}") as sub:
                notes = await take(sub, 2)
        assert statuses(notes) == [("queued", "in_progress"), ("in_progress", "completed")]
