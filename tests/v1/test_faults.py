"""Upstream faults are invisible through the gateway: a Responses stream dropped mid-way, or
refused with 429s and 5xx before it starts or when it is resumed, reaches the SDK exactly as an
undisturbed one does (event types, sequence numbers, deltas, final text), while the embedded
server shows that the fault really happened and how the daemon got past it."""

from __future__ import annotations

import random
from typing import Any

import openai
import pytest

from streamvisor.mockapi import Fault
from streamvisor.testing import GatewayThread

from ._daemon import creates, inject, mark, resumes_of, seen_since
from ._sdk import (
    FLAVOURS,
    ChatRaw,
    Flavour,
    Observed,
    ResponsesHelper,
    ResponsesRaw,
    assert_same,
    observe,
    scenario,
)

#: About 36 KB upstream; its first three events end near bytes 870, 1740 and 2620.
LONG: dict[str, Any] = {"model": "gpt-4o", "input": "go on", **scenario("long:120")}
#: Byte offsets of the upstream body where the connection is cut: just after the first event
#: (inside ``response.queued``, which the client never sees), early, middle, late; and a few
#: more drawn from a seeded generator, so that a failure can be replayed.
DROPS = (
    1_000,
    3_000,
    9_000,
    18_000,
    30_000,
    *sorted(random.Random(82).sample(range(2_700, 34_000), 4)),
)
STORM = 3
LABELS = ("disturbed", "undisturbed")
RETRY_FAST = 0.01


def through(
    running: GatewayThread, scenario_: Any = ResponsesRaw, flavour: Flavour = "sync", **kwargs: Any
) -> Observed:
    return observe(flavour, running.v1_url, running.token, scenario_, **kwargs)


@pytest.fixture(scope="module")
def undisturbed(running: GatewayThread) -> Observed:
    """The long stream through the gateway with nothing going wrong."""
    observed = through(running, **LONG)
    assert observed.types[-1] == "response.completed"
    assert len(observed.deltas().split()) == 120
    return observed.normalised()


def assert_identical(observed: Observed, undisturbed: Observed) -> None:
    assert observed.types == undisturbed.types
    assert observed.sequence_numbers == undisturbed.sequence_numbers
    assert observed.deltas() == undisturbed.deltas()
    assert_same(observed.normalised(), undisturbed, LABELS)


class TestDroppedConnections:
    @pytest.mark.parametrize("offset", DROPS)
    def test_a_stream_cut_at_any_byte_reaches_the_client_whole(
        self, running: GatewayThread, undisturbed: Observed, offset: int
    ) -> None:
        """Cut after ``offset`` bytes, the stream is resumed without a gap or a duplicate."""
        before = mark(running)
        inject(running, Fault.drop_after(offset), "POST", "/v1/responses")
        observed = through(running, **LONG)
        assert_identical(observed, undisturbed)
        resumed = resumes_of(seen_since(running, before), observed.response_id)
        assert len(resumed) == 1
        assert 0 <= resumed[0] < undisturbed.sequence_numbers[-1]

    def test_a_stream_cut_on_the_create_and_again_on_the_resume_reaches_the_client_whole(
        self, running: GatewayThread, undisturbed: Observed
    ) -> None:
        """A second drop, on the resume itself, is resumed again from further on."""
        before = mark(running)
        inject(running, Fault.drop_after(9_000), "POST", "/v1/responses")
        inject(running, Fault.drop_after(6_000), "GET", "/v1/responses/*")
        observed = through(running, **LONG)
        assert_identical(observed, undisturbed)
        resumed = resumes_of(seen_since(running, before), observed.response_id)
        assert len(resumed) == 2
        assert resumed[0] < resumed[1]

    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_the_stream_helper_builds_the_undisturbed_final_response(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """``responses.stream`` over a cut stream builds the same events, response and text."""
        calm = through(running, ResponsesHelper, flavour, **LONG)
        before = mark(running)
        inject(running, Fault.drop_after(12_000), "POST", "/v1/responses")
        cut = through(running, ResponsesHelper, flavour, **LONG)
        assert_same(cut.normalised(), calm.normalised(), LABELS)
        assert cut.text == calm.text
        assert len(resumes_of(seen_since(running, before), cut.response_id)) == 1


class TestRefusedRequests:
    @pytest.mark.parametrize(
        "fault",
        [
            pytest.param(Fault.status(429, retry_after=RETRY_FAST), id="429"),
        ],
    )
    def test_a_storm_before_the_stream_is_retried_by_the_daemon(
        self, running: GatewayThread, undisturbed: Observed, fault: Fault
    ) -> None:
        """Refused ``STORM`` times before the first byte with a 429 (nothing was started), the
        create is retried until it streams."""
        before = mark(running)
        inject(running, fault, "POST", "/v1/responses", times=STORM)
        observed = through(running, **LONG)
        assert_identical(observed, undisturbed)
        assert creates(seen_since(running, before)) == STORM + 1

    @pytest.mark.parametrize("code", [500, 503])
    def test_a_5xx_before_the_stream_is_the_clients_to_retry(
        self, running: GatewayThread, code: int
    ) -> None:
        """The daemon streams the request in background mode: after a 5xx the job may exist
        upstream (nothing says a 503 was not forwarded), and creating it again could run it
        twice. The client gets a 502 naming the status (the SDKs retry a 502 by default); the
        daemon sent the create once."""
        before = mark(running)
        inject(running, Fault.status(code), "POST", "/v1/responses", times=1)
        with pytest.raises(openai.InternalServerError) as raised:
            through(running, **LONG)
        assert raised.value.status_code == 502
        assert isinstance(raised.value.body, dict)
        assert raised.value.body["code"] == "outcome_unknown"
        assert str(code) in raised.value.message
        assert creates(seen_since(running, before)) == 1

    @pytest.mark.parametrize("code", [500, 503, 429])
    def test_a_storm_on_the_resume_is_retried_by_the_daemon(
        self, running: GatewayThread, undisturbed: Observed, code: int
    ) -> None:
        """A cut stream whose resume is refused ``STORM`` times still reaches the client whole."""
        before = mark(running)
        inject(running, Fault.drop_after(9_000), "POST", "/v1/responses")
        inject(running, Fault.status(code, retry_after=RETRY_FAST), "GET", "/v1/responses/*", STORM)
        observed = through(running, **LONG)
        assert_identical(observed, undisturbed)
        resumed = resumes_of(seen_since(running, before), observed.response_id)
        assert len(resumed) == STORM + 1
        assert len(set(resumed)) == 1


class TestChatStreams:
    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_a_chat_stream_after_a_429_storm_is_the_undisturbed_one(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """429s before the first byte are the daemon's to retry: the chunks are unchanged."""
        kwargs: dict[str, Any] = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello"}],
            "stream_options": {"include_usage": True},
            **scenario("long:40"),
        }
        calm = through(running, ChatRaw, flavour, **kwargs)
        before = mark(running)
        fault = Fault.status(429, retry_after=RETRY_FAST)
        inject(running, fault, "POST", "/v1/chat/completions", times=STORM)
        stormy = through(running, ChatRaw, flavour, **kwargs)
        assert_same(stormy.normalised(), calm.normalised(), LABELS)
        assert creates(seen_since(running, before), "/v1/chat/completions") == STORM + 1
        assert len(calm.events) > 40

    def test_a_chat_stream_cut_mid_way_ends_in_an_error(
        self, running: GatewayThread, gateway: openai.OpenAI
    ) -> None:
        """A chat stream cannot be resumed: after the chunks it had, the client gets an error
        frame (``APIError``), not a silent end and not a broken connection."""
        kwargs: dict[str, Any] = {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello"}],
            **scenario("long:40"),
        }
        calm = through(running, ChatRaw, **kwargs).normalised()
        inject(running, Fault.drop_after(2_000), "POST", "/v1/chat/completions")
        received: list[dict[str, Any]] = []
        with (
            pytest.raises(openai.APIError) as caught,
            gateway.chat.completions.create(stream=True, **kwargs) as stream,
        ):
            received.extend(chunk.to_dict() for chunk in stream)
        assert not isinstance(caught.value, openai.APIConnectionError)
        assert received
        assert_same(Observed(received).normalised().events, calm.events[: len(received)], LABELS)
