"""``GET /metrics``: the daemon's Prometheus metrics, behind the gateway's token as every route."""

from __future__ import annotations

from typing import Final

import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

from streamvisor.daemon import Daemon
from streamvisor.gateway import Gateway

#: Every family a scrape must hold, whatever has happened yet (README "Metrics").
FAMILIES: Final = {
    "streamvisor_events": "counter",
    "streamvisor_streams": "counter",
    "streamvisor_streams_open": "gauge",
    "streamvisor_delivery_latency_seconds": "histogram",
    "streamvisor_restarts": "counter",
    "streamvisor_bus_subscriptions": "gauge",
    "streamvisor_bus_delivered": "counter",
    "streamvisor_bus_dropped": "counter",
    "streamvisor_bus_missed": "counter",
    "streamvisor_bus_disconnected": "counter",
    "streamvisor_retries": "counter",
    "streamvisor_registry_commit_seconds": "histogram",
    "streamvisor_background_responses": "gauge",
    "streamvisor_background_finished": "counter",
    "streamvisor_ratelimit_remaining": "gauge",
    "streamvisor_ratelimit_limit": "gauge",
    "streamvisor_ratelimit_reset_seconds": "gauge",
}


class TestMetricsRoute:
    async def test_a_scrape_with_the_token_holds_every_metric(
        self, daemon: Daemon, client: httpx.AsyncClient
    ) -> None:
        """With the token: 200, Prometheus's text format, every documented family with its
        type, and the samples of what happened (a chat stream)."""
        with trio.fail_after(10):
            session = await daemon.open_session("s1")
            ticket = await session.chat("gpt-4o", [{"role": "user", "content": "Hi"}])
            await session.wait(ticket.stream_id)
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert {name: families[name].type for name in FAMILIES if name in families} == FAMILIES
        events = {s.labels["api"]: s.value for s in families["streamvisor_events"].samples}
        assert events["chat"] > 0
        remaining = families["streamvisor_ratelimit_remaining"].samples
        assert {s.labels["model"] for s in remaining} == {"gpt-4o"}

    async def test_a_scrape_without_the_token_is_refused(
        self, anonymous: httpx.AsyncClient
    ) -> None:
        """Without the token: 401, the gateway's error body, no metric."""
        response = await anonymous.get("/metrics")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
        assert "streamvisor_" not in response.text

    async def test_a_scrape_with_a_wrong_token_is_refused(self, gateway: Gateway) -> None:
        """A wrong bearer token is refused as no token is."""
        async with httpx.AsyncClient(base_url=gateway.url) as http:
            response = await http.get(
                "/metrics", headers={"Authorization": "Bearer not-the-token-0123456789"}
            )
        assert response.status_code == 401
