"""Bus topics and patterns map onto NATS subjects exactly, or are refused by name."""

from __future__ import annotations

import re

import pytest

from streamvisor.cluster import InvalidSubject
from streamvisor.cluster._consumer import parse_ack_reply
from streamvisor.cluster._subjects import (
    check_name,
    check_subject,
    hello_subject,
    origin_filter,
    pattern_filters,
    topic_subject,
)


class TestTopics:
    def test_a_topic_is_the_subject_after_the_prefix_and_the_origin(self) -> None:
        """Segments map one to one, after the publishing node's id."""
        assert topic_subject("sv.ev", "n1", "session.s1.delta") == "sv.ev.n1.session.s1.delta"

    def test_a_nodes_events_have_one_filter_no_hello_matches(self) -> None:
        assert origin_filter("sv.ev", "n1") == "sv.ev.n1.>"
        assert hello_subject("sv.ev") == "sv.ev.~"
        for pattern in ("**", "*", "a.**"):
            for subject_filter in pattern_filters("sv.ev", pattern):
                assert not _matches(subject_filter, hello_subject("sv.ev"))
        assert _matches(pattern_filters("sv.ev", "**")[0], "sv.ev.n1.session.s1")
        assert not _matches(origin_filter("sv.ev", "n1"), "sv.ev.n2.session.s1")

    def test_the_whole_bus_alphabet_is_carried_as_is(self) -> None:
        """A-Za-z0-9_-:@+= are all legal in NATS tokens: nothing is escaped."""
        topic = "Az09_-:@+=.user@example.com+tag=1"
        assert topic_subject("p", "n", topic) == f"p.n.{topic}"

    @pytest.mark.parametrize(
        ("topic", "reason"),
        [
            ("", "empty"),
            ("a..b", "empty segment"),
            (".a", "empty segment"),
            ("a.", "empty segment"),
            ("a.*", "wildcard '*'"),
            ("a.>", "wildcard '>'"),
            ("a.**", "wildcard '**'"),
            ("a>b", "reads as a wildcard"),
            ("a*b", "reads as a wildcard"),
            ("a b", "printable ASCII"),
            ("a\tb", "printable ASCII"),
            ("caf\u00e9", "printable ASCII"),
        ],
    )
    def test_a_topic_nats_would_read_differently_is_refused(self, topic: str, reason: str) -> None:
        with pytest.raises(InvalidSubject, match=re.escape(reason)) as caught:
            topic_subject("sv.ev", "n1", topic)
        assert caught.value.subject == topic
        assert isinstance(caught.value, ValueError)

    def test_a_non_str_topic_is_refused(self) -> None:
        with pytest.raises(InvalidSubject, match="is a str"):
            topic_subject("sv.ev", "n1", b"a")  # type: ignore[arg-type]


def _matches(subject_filter: str, subject: str) -> bool:
    """NATS's matching of a literal subject against a filter ('*' one token, '>' the rest)."""
    want, have = subject_filter.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


class TestPatterns:
    @pytest.mark.parametrize(
        ("pattern", "filters"),
        [
            ("a.b", ("sv.ev.*.a.b",)),
            ("a.*.b", ("sv.ev.*.a.*.b",)),
            ("*", ("sv.ev.*.*",)),
            ("a.**", ("sv.ev.*.a", "sv.ev.*.a.>")),
            ("a.*.**", ("sv.ev.*.a.*", "sv.ev.*.a.*.>")),
            ("**", ("sv.ev.*.>",)),
        ],
    )
    def test_a_pattern_becomes_the_filters_that_match_the_same_topics(
        self, pattern: str, filters: tuple[str, ...]
    ) -> None:
        """Any origin; '**' (zero or more) is the bare prefix plus '>' (one or more)."""
        assert pattern_filters("sv.ev", pattern) == filters

    @pytest.mark.parametrize(
        ("pattern", "reason"),
        [
            ("", "non-empty"),
            ("a.**.b", "only allowed as the last"),
            ("a*", "reads as a wildcard"),
            ("a.>", "wildcard '>'"),
            ("a..b", "empty segment"),
            ("a. b", "printable ASCII"),
        ],
    )
    def test_a_malformed_pattern_is_refused(self, pattern: str, reason: str) -> None:
        with pytest.raises(InvalidSubject, match=re.escape(reason)):
            pattern_filters("sv.ev", pattern)


class TestCommandSubjects:
    def test_a_request_subject_is_literal(self) -> None:
        assert check_subject("sv.cmd.node-1", wildcards=False) == "sv.cmd.node-1"
        with pytest.raises(InvalidSubject, match="wildcard"):
            check_subject("sv.cmd.*", wildcards=False)

    def test_a_served_subject_may_hold_wildcards(self) -> None:
        assert check_subject("sv.cmd.*.>", wildcards=True) == "sv.cmd.*.>"
        with pytest.raises(InvalidSubject, match="only allowed as the last"):
            check_subject("sv.cmd.>.x", wildcards=True)
        with pytest.raises(InvalidSubject, match="reads as a wildcard"):
            check_subject("sv.cmd.a*", wildcards=True)

    def test_a_stream_name_cannot_hold_subject_syntax(self) -> None:
        assert check_name("STREAMVISOR_2", "stream name") == "STREAMVISOR_2"
        for bad in ("", "a.b", "a*", "a>", "a b", "a/b"):
            with pytest.raises(InvalidSubject):
                check_name(bad, "stream name")


class TestDeliveryMetadata:
    @pytest.mark.parametrize(
        "reply",
        [
            b"$JS.ACK.STREAMVISOR.c1.1.42.7.1733260000000000000.0",
            b"$JS.ACK.hub.ACCHASH.STREAMVISOR.c1.1.42.7.1733260000000000000.0.rnd",
        ],
        ids=["v1", "v2-with-domain"],
    )
    def test_the_stream_and_consumer_sequences_come_from_either_reply_form(
        self, reply: bytes
    ) -> None:
        assert parse_ack_reply(reply) == (42, 7)
