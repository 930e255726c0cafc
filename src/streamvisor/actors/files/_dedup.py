"""Deduplicating uploads: :func:`content_digest` and :class:`DedupIndex` let identical uploads
(same bytes, same purpose) reuse one ``file_id``."""

from __future__ import annotations

import hashlib

import attrs

from ._rules import Purpose, parse_purpose

__all__ = ["DedupIndex", "content_digest"]


def content_digest(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits: the identity used for deduplication."""
    return hashlib.sha256(data).hexdigest()


@attrs.define
class DedupIndex:
    """(content digest, purpose) → the ``file_id`` already holding those bytes for that purpose.

    Pure bookkeeping, owned by one actor (not thread-safe). The same bytes uploaded for two
    purposes are two files, so the purpose is part of the key.
    """

    _by_key: dict[tuple[str, Purpose], str] = attrs.field(factory=dict, init=False)
    _by_file: dict[str, set[tuple[str, Purpose]]] = attrs.field(factory=dict, init=False)

    def get(self, digest: str, purpose: Purpose | str) -> str | None:
        """The file id recorded for these bytes and purpose, or None.

        Raises:
            UnknownPurpose: ``purpose`` is not an upload purpose.
        """
        return self._by_key.get((digest, parse_purpose(purpose)))

    def add(self, digest: str, purpose: Purpose | str, file_id: str) -> None:
        """Record that ``file_id`` holds these bytes for ``purpose`` (replacing an older entry).

        Raises:
            UnknownPurpose: ``purpose`` is not an upload purpose.
        """
        key = (digest, parse_purpose(purpose))
        previous = self._by_key.get(key)
        if previous is not None:
            self._forget(previous, key)
        self._by_key[key] = file_id
        self._by_file.setdefault(file_id, set()).add(key)

    def evict(self, file_id: str) -> bool:
        """Forget every entry pointing at ``file_id`` (it was deleted). True if there were any."""
        keys = self._by_file.pop(file_id, set())
        for key in keys:
            del self._by_key[key]
        return bool(keys)

    def _forget(self, file_id: str, key: tuple[str, Purpose]) -> None:
        keys = self._by_file[file_id]
        keys.discard(key)
        if not keys:
            del self._by_file[file_id]

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._by_file
