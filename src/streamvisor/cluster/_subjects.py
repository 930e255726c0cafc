"""Bus topics and patterns as NATS subjects, checked so that nothing is silently mis-routed.

An event published on node ``origin`` on bus topic ``topic`` is stored on the subject
``f"{prefix}.{origin}.{topic}"``: the publishing node is the subject's first token after the
prefix, so a node can ask JetStream for every other node's events and not for its own (one
filter per other node, `origin_filter`). The bus splits topics on ``.``; NATS splits subjects
on ``.`` too, so the topic maps segment for segment. What differs is the wildcards: the bus's
``*`` is NATS's ``*``, but the bus's trailing ``**`` (zero or more segments) has no NATS
equivalent, as NATS's ``>`` matches one or more. So ``a.**`` becomes two filters,
``prefix.*.a`` and ``prefix.*.a.>``; a lone ``**`` becomes ``prefix.*.>`` (topics are never
empty).

A node announces itself on `hello_subject` (``prefix.~``, its id in the message's origin
header) before its first event: one token after the prefix, so no pattern's filters match it
(they all have at least two), and ``~`` is no node id.

Every character of the bus's recommended topic alphabet (``A-Za-z0-9_-:@+=``) is legal in a
NATS subject token. What NATS would read differently is refused with `InvalidSubject` instead of
being escaped, so a topic names the same thing on every node and in ``nats sub``: a ``>`` or
``*`` inside a token (``>`` alone is a wildcard, and a publish on it would not be stored as
that topic), whitespace and control characters (the protocol's separators), and anything
outside printable ASCII (legal UTF-8 in NATS, but the server's own docs advise against it, and
nothing in streamvisor produces it).
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

from ._bridge_errors import InvalidSubject

__all__ = [
    "check_name",
    "check_subject",
    "hello_subject",
    "is_name",
    "origin_filter",
    "pattern_filters",
    "topic_subject",
]

#: One literal subject token: printable ASCII without ``.``, ``*`` or ``>``.
_TOKEN: Final = r"[\x21-\x29\x2b-\x2d\x2f-\x3d\x3f-\x7e]+"
_LITERAL: Final = re.compile(rf"{_TOKEN}(?:\.{_TOKEN})*")
_TOKEN_RE: Final = re.compile(_TOKEN)
#: A stream or consumer name: NATS forbids ``.``, ``*``, ``>``, whitespace, and path separators
#: (it names a directory in the store).
_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,255}")


def _explain(value: str) -> str:
    """Why `value` is not a literal subject (the slow path, only after a failed match)."""
    if not value:
        return "it is empty"
    for token in value.split("."):
        if not token:
            return "empty segment (two dots, or a leading/trailing dot)"
        if token in ("*", ">", "**"):
            return f"wildcard {token!r} where a literal segment is needed"
        for character in token:
            if character in "*>":
                return f"segment {token!r} holds {character!r}, which NATS reads as a wildcard"
            if not "\x21" <= character <= "\x7e":
                return (
                    f"segment {token!r} holds {character!r}: NATS subjects here are printable "
                    "ASCII without whitespace"
                )
    return "not a subject"  # pragma: no cover - the regex and this walk agree


def _literal(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidSubject(value, f"a {what} is a str")
    if _LITERAL.fullmatch(value) is None:
        raise InvalidSubject(value, f"{_explain(value)} (as a {what})")
    return value


def topic_subject(prefix: str, origin: str, topic: str) -> str:
    """The subject node ``origin`` publishes a bus topic on. Raises `InvalidSubject` naming the
    problem with the topic (``origin`` is a node id, checked by `check_name` once)."""
    return f"{prefix}.{origin}.{_literal(topic, 'topic')}"


def hello_subject(prefix: str) -> str:
    """The subject a node announces itself on (see the module)."""
    return f"{prefix}.~"


def origin_filter(prefix: str, origin: str) -> str:
    """The filter subject of every event node ``origin`` publishes."""
    return f"{prefix}.{origin}.>"


def pattern_filters(prefix: str, pattern: str) -> tuple[str, ...]:
    """The NATS filter subjects that together match exactly what the bus pattern matches, on
    every node.

    Raises `InvalidSubject` if the pattern is malformed in the bus's syntax (``**`` anywhere
    but last, ``*`` mixed into a segment) or holds a character NATS cannot carry.
    """
    if not isinstance(pattern, str) or not pattern:
        raise InvalidSubject(pattern, "a pattern is a non-empty str")
    segments = pattern.split(".")
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "**":
            if index != last:
                raise InvalidSubject(pattern, "'**' is only allowed as the last segment")
        elif not segment:
            raise InvalidSubject(pattern, "empty segment (two dots, or a leading/trailing dot)")
        elif segment != "*" and _TOKEN_RE.fullmatch(segment) is None:
            raise InvalidSubject(pattern, f"{_explain(segment)} (in a pattern)")
    if segments[-1] != "**":
        return (f"{prefix}.*.{pattern}",)
    if len(segments) == 1:
        return (f"{prefix}.*.>",)
    fixed = f"{prefix}.*.{'.'.join(segments[:-1])}"
    return (fixed, f"{fixed}.>")


def check_subject(subject: object, *, wildcards: bool) -> str:
    """A raw NATS subject for requests (``wildcards=False``) or serving (``True``: ``*`` and a
    trailing ``>`` allowed). Raises `InvalidSubject`."""
    if not wildcards:
        return _literal(subject, "subject")
    if not isinstance(subject, str) or not subject:
        raise InvalidSubject(subject, "a subject is a non-empty str")
    tokens = subject.split(".")
    for index, token in enumerate(tokens):
        if token == "*" or (token == ">" and index == len(tokens) - 1):
            continue
        if token == ">":
            raise InvalidSubject(subject, "'>' is only allowed as the last token")
        if _TOKEN_RE.fullmatch(token) is None:
            raise InvalidSubject(subject, f"{_explain(token)} (as a subject to serve)")
    return subject


def is_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a valid stream name or node id (`check_name`)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object, what: str) -> str:
    """A stream name, or a node id carried in a header: ``A-Za-z0-9_-``, 1-255 characters."""
    if not is_name(name):
        raise InvalidSubject(name, f"a {what} is 1-255 characters of A-Za-z0-9_-")
    return name
