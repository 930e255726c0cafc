"""The shape of the names the actors layer hands out or takes as ids (session, agent, owner)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NAME_PATTERN", "TOPIC_PATTERN", "is_name", "is_topic_pattern"]

#: A session, agent or owner id: 1-128 letters, digits or ``_-:@+=``. One bus topic segment (no
#: dot, no ``*``) and part of a registered name (``session.<id>``). Matched in full.
NAME_PATTERN: Final = r"[A-Za-z0-9_\-:@+=]{1,128}"
_NAME: Final = re.compile(NAME_PATTERN)
#: The characters a subscription pattern over the daemon's topics may hold: its names' (every
#: topic is ``<kind>.<name>``), dots between segments, and the ``*``/``**`` wildcards. Matched in
#: full; the bus checks the structure (``**`` last, no empty segment).
TOPIC_PATTERN: Final = r"[A-Za-z0-9_\-:@+=*.]{1,256}"
_TOPIC: Final = re.compile(TOPIC_PATTERN)


def is_name(value: object) -> bool:
    """True if ``value`` is a str matching `NAME_PATTERN` in full (no trailing newline)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def is_topic_pattern(value: object) -> bool:
    """True if ``value`` is a str of `TOPIC_PATTERN`'s characters, in full."""
    return isinstance(value, str) and _TOPIC.fullmatch(value) is not None
