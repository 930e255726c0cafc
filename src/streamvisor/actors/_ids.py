"""The shape of the names the actors layer hands out or takes as ids (session, agent, owner)."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NAME_PATTERN", "is_name"]

#: A session, agent or owner id: 1-128 letters, digits or ``_-:@+=``. One bus topic segment (no
#: dot, no ``*``) and part of a registered name (``session.<id>``). Matched in full.
NAME_PATTERN: Final = r"[A-Za-z0-9_\-:@+=]{1,128}"
_NAME: Final = re.compile(NAME_PATTERN)


def is_name(value: object) -> bool:
    """True if ``value`` is a str matching `NAME_PATTERN` in full (no trailing newline)."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None
