"""The daemon's Prometheus metrics: one collector over its components' own counters.

Nothing here runs per event. The components keep plain counters -- the OpenAI client's streams
count their events, the session streams time each event's delivery into a bucket array, the bus
adds up its subscriptions' counters when asked, the registry's writer times each group commit --
and `MetricsCollector.collect` reads them at scrape time into metric families. Every daemon has
a `prometheus_client.CollectorRegistry` of its own (never the process-global one), so daemons in
one process (tests, several embedded daemons) never share a series.

The metrics (README "Metrics" has the table)::

    streamvisor_events_total{api}                      stream events delivered off the wire
    streamvisor_streams_total{api,outcome}             streams ended, by how
    streamvisor_streams_open{api}                      streams open now
    streamvisor_delivery_latency_seconds               chunk arrival -> published on the bus
    streamvisor_restarts_total{supervisor,reason}      child restarts, by supervisor and reason
    streamvisor_bus_subscriptions                      subscriptions open now
    streamvisor_bus_delivered_total                    items subscribers received
    streamvisor_bus_dropped_total                      items dropped from full buffers
    streamvisor_bus_missed_total                       `Missed` notices subscribers received
    streamvisor_bus_disconnected_total                 DISCONNECT subscribers dropped
    streamvisor_retries_total{status}                  requests retried, by the status retried
    streamvisor_registry_commit_seconds                one group commit of the registry
    streamvisor_background_responses{status}           tracked responses not yet terminal
    streamvisor_background_finished_total{status}      tracked responses that became terminal
    streamvisor_ratelimit_remaining{model,resource}    x-ratelimit-remaining-*, last seen
    streamvisor_ratelimit_limit{model,resource}        x-ratelimit-limit-*, last seen
    streamvisor_ratelimit_reset_seconds{model,resource} x-ratelimit-reset-*, last seen
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .actors import RegistryView
from .actors._histogram import Histogram
from .openai import ClientStatistics, OpenAIClient
from .supervisor import ActorRef, EventBus, TreeNode, observe_tree

__all__ = ["CONTENT_TYPE", "DaemonMetrics", "MetricsCollector", "RestartTotals"]

#: The media type of `DaemonMetrics.exposition` (Prometheus's text format).
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Children listed per supervisor when a scrape reads the tree: every supervisor of the daemon's
#: tree is the root or one of its few children, and a scrape need not list thousands of sessions.
_TREE_BOUND: Final = 64


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


class RestartTotals:
    """Restart counters that only go up, from successive snapshots of a supervision tree.

    A snapshot (`observe_tree`) holds each supervisor's restarts of its children by reason since
    the supervisor started (``child_restarts``, children gone included). A supervisor that is
    itself restarted starts again from zero; kept as they are, the sums would go down. So each
    scrape adds what each supervisor's count grew by since the last (its whole count when it
    went back: a new incarnation). Restarts by an incarnation that came and went between two
    scrapes are not seen.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], int] = {}
        self._totals: dict[tuple[str, str], int] = {}

    def update(self, tree: TreeNode) -> dict[tuple[str, str], int]:
        """Add what `tree` shows since the last call; the totals by (supervisor, reason)."""
        seen: dict[tuple[str, str], int] = {}
        totals = self._totals
        for node in tree.walk():
            supervisor = node.name or node.label
            for reason, count in node.child_restarts.items():
                key = (supervisor, reason)
                last = self._last.get(key, 0)
                grown = count - last if count >= last else count
                if grown:
                    totals[key] = totals.get(key, 0) + grown
                seen[key] = count
        self._last = seen  # a supervisor gone is forgotten: back, it counts as new
        return dict(totals)


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [(_le(bound), float(count)) for bound, count in histogram.cumulative()]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.sum)


class MetricsCollector:
    """A `prometheus_client` collector reading a daemon's components at scrape time.

    ``collect`` never waits and never raises for a component that is restarting (the background
    poller's store between two runs shows no responses rather than failing the scrape). Call it
    (``generate_latest``, `DaemonMetrics.exposition`) in the daemon's trio thread: it reads the
    supervisors' tables as `observe_tree` does.
    """

    def __init__(
        self,
        *,
        client: OpenAIClient,
        bus: EventBus[Any],
        delivery: Histogram,
        registry_view: RegistryView,
        root: ActorRef,
    ) -> None:
        self._client = client
        self._bus = bus
        self._delivery = delivery
        self._view = registry_view
        self._root = root
        self._restarts = RestartTotals()

    def collect(self) -> Iterable[Metric]:
        client = self._client.statistics()
        yield from self._streams(client)
        yield _histogram(
            "streamvisor_delivery_latency_seconds",
            "Seconds from the arrival of the network chunk carrying a session stream's event "
            "to the end of the event's publication on the bus.",
            self._delivery,
        )
        restarts = CounterMetricFamily(
            "streamvisor_restarts",
            "Children restarted by their supervisor, by the supervisor's name and the reason "
            "(crashed:<exception>, killed, ...).",
            labels=["supervisor", "reason"],
        )
        totals = self._restarts.update(observe_tree(self._root, max_children=_TREE_BOUND))
        for (supervisor, reason), count in sorted(totals.items()):
            restarts.add_metric([supervisor, reason], count)
        yield restarts
        yield from self._bus_metrics()
        yield from self._client_metrics(client)
        yield _histogram(
            "streamvisor_registry_commit_seconds",
            "Seconds the registry's writer spent on one group commit (a batch's transaction, "
            "from taking it off the queue to its commit).",
            self._view.counters.commit_seconds,
        )
        background = GaugeMetricFamily(
            "streamvisor_background_responses",
            "Background responses tracked in the registry and not yet terminal, by status.",
            labels=["status"],
        )
        for status, count in sorted((self._view.active_statuses() or {}).items()):
            background.add_metric([status], count)
        yield background
        finished = CounterMetricFamily(
            "streamvisor_background_finished",
            "Background responses this daemon's registry saw become terminal, by status.",
            labels=["status"],
        )
        for status, count in sorted(self._view.counters.finished.items()):
            finished.add_metric([status], count)
        yield finished

    def _streams(self, stats: ClientStatistics) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "streamvisor_events",
            "Stream events delivered off the wire by the OpenAI client's streams, by API.",
            labels=["api"],
        )
        for api, count in sorted(stats.events.items()):
            events.add_metric([api], count)
        yield events
        streams = CounterMetricFamily(
            "streamvisor_streams",
            "Streams ended, by API and outcome (the terminal event's name, or interrupted, "
            "malformed, stopped).",
            labels=["api", "outcome"],
        )
        for (api, outcome), count in sorted(stats.streams.items()):
            streams.add_metric([api, outcome], count)
        yield streams
        open_streams = GaugeMetricFamily(
            "streamvisor_streams_open", "Streams open now, by API.", labels=["api"]
        )
        for api, count in sorted(stats.open_streams.items()):
            open_streams.add_metric([api], count)
        yield open_streams

    def _bus_metrics(self) -> Iterator[Metric]:
        stats = self._bus.statistics()
        yield GaugeMetricFamily(
            "streamvisor_bus_subscriptions",
            "Event bus subscriptions open now.",
            value=stats.subscriptions,
        )
        yield CounterMetricFamily(
            "streamvisor_bus_delivered",
            "Items event bus subscribers received (Missed notices not counted).",
            value=stats.delivered,
        )
        yield CounterMetricFamily(
            "streamvisor_bus_dropped",
            "Items the event bus dropped because a subscriber's buffer was full.",
            value=stats.dropped,
        )
        yield CounterMetricFamily(
            "streamvisor_bus_missed",
            "Missed notices event bus subscribers received (one per gap of dropped items).",
            value=stats.missed_notices,
        )
        yield CounterMetricFamily(
            "streamvisor_bus_disconnected",
            "Subscriptions with the disconnect policy that the event bus ended on overflow.",
            value=stats.disconnected,
        )

    def _client_metrics(self, stats: ClientStatistics) -> Iterator[Metric]:
        retries = CounterMetricFamily(
            "streamvisor_retries",
            "Requests to the OpenAI API retried, by the HTTP status of the answer retried "
            "(connection: no answer).",
            labels=["status"],
        )
        for status, count in sorted(stats.retries.items()):
            retries.add_metric([status], count)
        yield retries
        families = {
            field: GaugeMetricFamily(
                f"streamvisor_ratelimit_{field}",
                f"The x-ratelimit-{field.removesuffix('_seconds')}-* header last seen for a "
                "model, by resource (requests, tokens).",
                labels=["model", "resource"],
            )
            for field in ("remaining", "limit", "reset_seconds")
        }
        for model, limits in sorted(stats.rate_limits.items()):
            for resource in ("requests", "tokens"):
                values = {
                    "remaining": getattr(limits, f"remaining_{resource}"),
                    "limit": getattr(limits, f"limit_{resource}"),
                    "reset_seconds": getattr(limits, f"reset_{resource}"),
                }
                for field, value in values.items():
                    if value is not None:
                        families[field].add_metric([model, resource], value)
        yield from families.values()


class DaemonMetrics:
    """A daemon's metrics (``daemon.metrics``): its `CollectorRegistry` and the text a scrape
    gets. Made by `open_daemon`; ``GET /metrics`` on the gateway serves `exposition`.

    Register further collectors of your own on ``registry``; nothing is ever registered on
    ``prometheus_client``'s global registry. Scrape it in the daemon's trio thread (the gateway
    does): the counters are plain objects the daemon's tasks change without locks, so another
    thread asks with ``trio.from_thread.run_sync(daemon.metrics.exposition)``.
    """

    #: The media type of `exposition` (Prometheus's text format).
    content_type: Final = CONTENT_TYPE

    def __init__(self, collector: MetricsCollector) -> None:
        #: This daemon's registry (scrape it with ``prometheus_client.generate_latest``).
        self.registry = CollectorRegistry()
        self.collector = collector
        self.registry.register(collector)

    def exposition(self) -> bytes:
        """Every metric in Prometheus's text format (`CONTENT_TYPE`), read now."""
        return generate_latest(self.registry)
