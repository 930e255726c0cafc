"""The daemon's Prometheus metrics move when their cause happens, end to end over loopback.

Each test makes one thing happen to a daemon on its embedded server (a stream, a 429, a slow
subscriber, a background response, a commit) and reads ``daemon.metrics`` the way Prometheus
does: the text exposition, parsed by ``prometheus_client``'s own parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from streamvisor.daemon import Daemon
from streamvisor.mockapi import Fault, MockServer
from streamvisor.supervisor import Missed
from streamvisor.testing import EventRecorder, running_daemon

from .conftest import FAST

HELLO = [{"role": "user", "content": "Hello there"}]


def scrape(daemon: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (sample name, sorted labels)."""
    text = daemon.metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(daemon: Daemon, name: str, **labels: str) -> float:
    """One sample's value in a scrape now (0 if the series is not there yet)."""
    return scrape(daemon).get((name, tuple(sorted(labels.items()))), 0.0)


def server_of(daemon: Daemon) -> MockServer:
    assert daemon.mockapi is not None
    return daemon.mockapi


class TestStreams:
    @pytest.mark.parametrize("api", ["chat", "responses"])
    async def test_a_stream_counts_every_event_it_delivered_and_its_outcome(
        self, daemon: Daemon, api: str
    ) -> None:
        """A completed stream adds each event subscribers saw to ``events_total{api}``, one
        ``streams_total{api, outcome="completed"}``, and one delivery latency per event."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.s1") as recorder:
                session = await daemon.open_session("s1")
                if api == "chat":
                    ticket = await session.chat("gpt-4o", HELLO)
                else:
                    ticket = await session.respond("gpt-4o", "Hello there")
                outcome = await session.wait(ticket.stream_id)
                await recorder.wait_terminal()
        assert outcome.status == "completed"
        seen = len(recorder.events())
        assert seen > 3
        assert value(daemon, "streamvisor_events_total", api=api) == seen
        assert value(daemon, "streamvisor_streams_total", api=api, outcome="completed") == 1
        assert value(daemon, "streamvisor_streams_open", api=api) == 0
        assert value(daemon, "streamvisor_delivery_latency_seconds_count") == seen
        assert 0 < value(daemon, "streamvisor_delivery_latency_seconds_sum") < seen * 5.0

    async def test_a_stream_stopped_midway_is_counted_as_stopped_and_open_until_then(
        self, daemon: Daemon
    ) -> None:
        """A stream is ``streams_open`` while it runs; stopped before its end it is
        ``outcome="stopped"``."""
        slow = {"mock_scenario": "long:40", "mock_token_delay_ms": "50"}
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "session.s1") as recorder:
                session = await daemon.open_session("s1")
                ticket = await session.respond("gpt-4o", "Hi", durable=False, metadata=slow)
                await recorder.wait_for(lambda items: len(items) >= 2)
                assert value(daemon, "streamvisor_streams_open", api="responses") == 1
                await session.stop(ticket.stream_id)
        assert value(daemon, "streamvisor_streams_open", api="responses") == 0
        assert value(daemon, "streamvisor_streams_total", api="responses", outcome="stopped") == 1
        assert value(daemon, "streamvisor_streams_total", api="responses", outcome="completed") == 0


class TestRetriesAndRateLimits:
    async def test_a_429_then_success_is_one_retry_with_status_429(self, daemon: Daemon) -> None:
        """The client retried a 429 once, then streamed: ``retries_total{status="429"}`` is 1."""
        server_of(daemon).inject(Fault.status(429, retry_after=0.01), method="POST", times=1)
        with trio.fail_after(10):
            session = await daemon.open_session("s1")
            ticket = await session.chat("gpt-4o", HELLO)
            outcome = await session.wait(ticket.stream_id)
        assert outcome.status == "completed"
        assert value(daemon, "streamvisor_retries_total", status="429") == 1
        assert value(daemon, "streamvisor_retries_total", status="503") == 0

    async def test_the_rate_limit_headroom_is_the_last_seen_per_model(self, daemon: Daemon) -> None:
        """After requests for two models, each model's gauges hold the headers of its own last
        answer: the server's limit, and a remaining count that went down with each request."""
        with trio.fail_after(10):
            session = await daemon.open_session("s1")
            for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o"):
                ticket = await session.chat(model, HELLO)
                await session.wait(ticket.stream_id)
        limit = FAST.ratelimit_requests
        for model in ("gpt-4o", "gpt-4o-mini"):
            labels = {"model": model, "resource": "requests"}
            assert value(daemon, "streamvisor_ratelimit_limit", **labels) == limit
        first = value(
            daemon, "streamvisor_ratelimit_remaining", model="gpt-4o-mini", resource="requests"
        )
        last = value(daemon, "streamvisor_ratelimit_remaining", model="gpt-4o", resource="requests")
        assert 0 < last < first < limit
        assert (
            value(daemon, "streamvisor_ratelimit_remaining", model="gpt-4o", resource="tokens") > 0
        )


class TestBus:
    async def test_a_slow_subscriber_with_a_tiny_buffer_shows_drops_then_its_missed_notice(
        self, daemon: Daemon
    ) -> None:
        """A subscriber of buffer 1 that reads nothing while a stream runs: the bus counts the
        items it dropped; reading then gets one `Missed` notice, counted; the totals stay after
        the subscription ends, and the open subscriptions go back to what they were."""
        before = value(daemon, "streamvisor_bus_subscriptions")
        with trio.fail_after(10):
            async with daemon.subscribe("session.s1", buffer=1) as slow:
                assert value(daemon, "streamvisor_bus_subscriptions") == before + 1
                session = await daemon.open_session("s1")
                ticket = await session.chat("gpt-4o", HELLO)
                await session.wait(ticket.stream_id)
                dropped = value(daemon, "streamvisor_bus_dropped_total")
                assert dropped > 0
                assert value(daemon, "streamvisor_bus_missed_total") == 0
                notice = await slow.receive()
                assert isinstance(notice, Missed)
                assert notice.count == dropped
                assert value(daemon, "streamvisor_bus_missed_total") == 1
                await slow.receive()  # the one item its buffer kept
        assert value(daemon, "streamvisor_bus_subscriptions") == before
        assert value(daemon, "streamvisor_bus_dropped_total") == dropped
        assert value(daemon, "streamvisor_bus_missed_total") == 1
        assert value(daemon, "streamvisor_bus_delivered_total") >= 1


class TestRegistry:
    async def test_a_background_response_shows_in_its_status_until_it_ends(
        self, daemon: Daemon
    ) -> None:
        """A background response held ``queued`` by the server is
        ``background_responses{status="queued"}`` 1; cancelled, it leaves the gauge and is
        counted in ``background_finished_total{status="cancelled"}``."""
        with trio.fail_after(10):
            record = await daemon.background.create(
                "hi", "gpt-4o", metadata={"mock_queue_ms": "60000"}
            )
            assert record.status == "queued"
            assert value(daemon, "streamvisor_background_responses", status="queued") == 1
            await daemon.background.cancel(record.response_id)
            while value(daemon, "streamvisor_background_responses", status="queued"):
                await trio.sleep(0.01)  # the poller records the cancel in its own turn
        assert (
            scrape(daemon).get(("streamvisor_background_responses", (("status", "queued"),)))
            is None
        )
        assert value(daemon, "streamvisor_background_finished_total", status="cancelled") == 1
        assert value(daemon, "streamvisor_background_finished_total", status="completed") == 0

    async def test_a_background_response_that_completes_is_counted_finished(
        self, daemon: Daemon
    ) -> None:
        """Polled to its end: ``background_finished_total{status="completed"}`` 1, and no longer
        in the gauge."""
        with trio.fail_after(10):
            async with EventRecorder.open(daemon, "background.*") as recorder:
                record = await daemon.background.create("hi", "gpt-4o")
                await recorder.wait_status(record.response_id, "completed")
            while not value(daemon, "streamvisor_background_finished_total", status="completed"):
                await trio.sleep(0.01)  # the registry's commit is delivered in its own turn
        assert value(daemon, "streamvisor_background_finished_total", status="completed") == 1
        assert value(daemon, "streamvisor_background_responses", status="in_progress") == 0

    async def test_every_group_commit_of_the_registry_is_timed(self, daemon: Daemon) -> None:
        """Registering a background response commits: the commit histogram counts it, with a
        positive duration."""
        before = value(daemon, "streamvisor_registry_commit_seconds_count")
        with trio.fail_after(10):
            await daemon.background.create("hi", "gpt-4o", metadata={"mock_queue_ms": "60000"})
        after = value(daemon, "streamvisor_registry_commit_seconds_count")
        assert after > before
        assert value(daemon, "streamvisor_registry_commit_seconds_sum") > 0
        assert value(daemon, "streamvisor_registry_commit_seconds_bucket", le="+Inf") == after


class TestRestarts:
    async def test_a_killed_session_worker_is_a_restart_by_its_supervisor_and_reason(
        self, daemon: Daemon
    ) -> None:
        """``kill()`` on a session worker: the sessions supervisor restarts it, counted as
        ``restarts_total{supervisor="sessions", reason="killed"}``; the count stays after the
        session is closed."""
        assert (
            value(daemon, "streamvisor_restarts_total", supervisor="sessions", reason="killed") == 0
        )
        with trio.fail_after(10):
            session = await daemon.open_session("crashy")
            old = session.ref
            old.kill()
            while daemon.registry.whereis("session.crashy") in (None, old):
                await trio.sleep(0.01)  # until the supervisor has restarted it
        labels = {"supervisor": "sessions", "reason": "killed"}
        assert value(daemon, "streamvisor_restarts_total", **labels) == 1
        assert await daemon.close_session("crashy")
        assert value(daemon, "streamvisor_restarts_total", **labels) == 1
        assert value(daemon, "streamvisor_restarts_total", supervisor="root", reason="killed") == 0


class TestIsolation:
    async def test_two_daemons_in_one_process_share_no_counter(self, tmp_path: Path) -> None:
        """Each daemon has a registry of its own, and neither touches the global one: a stream
        on one is not counted by the other."""
        with trio.fail_after(20):
            async with (
                running_daemon(tmp_path / "a") as first,
                running_daemon(tmp_path / "b") as second,
            ):
                session = await first.open_session("s1")
                ticket = await session.chat("gpt-4o", HELLO)
                await session.wait(ticket.stream_id)
                assert value(first, "streamvisor_events_total", api="chat") > 0
                assert value(second, "streamvisor_events_total", api="chat") == 0
                assert first.metrics.registry is not second.metrics.registry
        global_names: list[Any] = [m.name for m in REGISTRY.collect()]
        assert not [name for name in global_names if name.startswith("streamvisor_")]
