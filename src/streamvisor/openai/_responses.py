"""`ResponseAccumulator`: the Responses API's final Response, assembled from stream events.

It follows the reference's §3.4: `response.created` (or a seed snapshot on resume) starts the
snapshot, items and parts are appended by index, deltas are appended to lists and joined only when
the snapshot is read, `*.done` events overwrite (they are authoritative), and a terminal event's
`response` replaces the snapshot. Events after the terminal one (`response.rate_limits.updated`,
...) advance the cursor but never overwrite the final response.

Ordering: `sequence_number` must rise by one. A number at or below the cursor is a duplicate (a
resume overlap): dropped silently and counted in `.duplicates`. A jump is a gap: `feed` raises
`SequenceError` and leaves the state untouched, so the caller can resume from `.cursor`. An
out-of-order event therefore always shows up as a gap first (the later number arrives early):
reported, never silently reordered.

Events are read, not changed, with one exception that changes no value: a long string that a
`*.done` or terminal event repeats is replaced by the equal one the accumulator already holds
(`_share`), so that a long answer is held once, not once per repeat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ._errors import SequenceError
from ._events import StreamEvent

__all__ = ["Pieces", "ResponseAccumulator", "in_sequence", "normalize_error"]

_TERMINAL_RESPONSE = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "response.cancelled"}
)

#: Pieces a growing string keeps before they are joined into one block (`Pieces.append`).
FOLD = 8


class Pieces:
    """A string arriving in pieces (text deltas), kept as a list and joined when read.

    Every 8 pieces are joined into one block as they come: a str object costs 50-80 bytes
    besides its characters, so a stream's pieces cost two to three times its text until the
    text is read; in blocks they cost about the text. Each piece is a small object allocated
    among its event's (decoded together), so every piece kept pins a slot the event's freed
    objects leave around it: the fewer kept, the less of that memory stays in use. At 1,000
    paced streams (bench/daemon's RSS rows, five interleaved pairs, 2026-12-04) folding every
    8 pieces held 83-86 KiB per Chat stream and 96-102 per Responses stream, every 64 pieces
    92-93 and 102-111 (every 2, 4 or 16: in between). (Blocks are joined once each: the
    pieces after the last block are joined, never the blocks again, so appending stays
    linear in the text.)
    """

    __slots__ = ("blocks", "parts")

    def __init__(self, first: str | None = None) -> None:
        self.parts = [] if first is None else [first]
        #: How many leading entries of `parts` are blocks.
        self.blocks = 0

    def append(self, piece: str) -> None:
        parts = self.parts
        parts.append(piece)
        if len(parts) - self.blocks >= FOLD:
            self.fold()

    def fold(self) -> None:
        """Join the pieces after the last block into a new block."""
        blocks = self.blocks
        self.parts[blocks:] = ["".join(self.parts[blocks:])]
        self.blocks = blocks + 1

    def __len__(self) -> int:
        return len(self.parts)

    def text(self) -> str:
        """The whole string, kept as one block from then on."""
        parts = self.parts
        if len(parts) <= 1:
            return parts[0] if parts else ""
        text = "".join(parts)
        self.parts = [text]
        self.blocks = 1
        return text


# A pending string: the dict that owns it, its key, and its pieces (the first is the value the
# owner held when the first delta came).
_Pending = tuple[dict[str, Any], str, Pieces]
_Key = tuple[Any, str, Any]


def normalize_error(data: Mapping[str, Any]) -> dict[str, Any]:
    """The flat `{code, message, param, type}` of an `error` frame, flat or nested form."""
    inner = data.get("error")
    src: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
    etype = src.get("type")
    return {
        "code": src.get("code"),
        "message": src.get("message") or "stream error",
        "param": src.get("param"),
        "type": None if etype == "error" else etype,
    }


class _Identified(Protocol):
    @property
    def response_id(self) -> str | None: ...


def in_sequence(cursor: int | None, seq: int, source: _Identified) -> bool:
    """Whether an event numbered ``seq`` comes next after ``cursor`` (None: nothing yet); False
    for a duplicate (at or below the cursor). ``source.response_id`` is read only for the error.

    Raises:
        SequenceError: ``seq`` skips ahead of ``cursor + 1``.
    """
    if cursor is not None:
        if seq <= cursor:
            return False
        if seq != cursor + 1:
            raise SequenceError(expected=cursor + 1, got=seq, response_id=source.response_id)
    return True


def _copy_part(part: Mapping[str, Any]) -> dict[str, Any]:
    new = dict(part)
    anns = new.get("annotations")
    if isinstance(anns, list):
        new["annotations"] = list(anns)
    return new


def _copy_item(item: Mapping[str, Any]) -> dict[str, Any]:
    new = dict(item)
    for key in ("content", "summary"):
        seq = new.get(key)
        if isinstance(seq, list):
            new[key] = [_copy_part(p) if isinstance(p, Mapping) else p for p in seq]
    return new


def _copy_response(resp: Mapping[str, Any]) -> dict[str, Any]:
    new = dict(resp)
    out = new.get("output")
    new["output"] = [_copy_item(i) for i in out] if isinstance(out, list) else []
    return new


#: Strings shorter than this are not worth comparing (`_share`).
_SHARED_MIN = 64
#: How deep `_share` looks: a response's output text is at depth 5 (response, output, item,
#: content, part).
_SHARED_DEPTH = 6


def _share(new: Any, old: Any, depth: int = _SHARED_DEPTH) -> None:
    """Make `new`, a JSON value just decoded, hold `old`'s string objects wherever the two hold
    equal long strings at the same place (in place; every value stays equal, so a subscriber
    that already holds `new` reads the same).

    A stream's `*.done` events and its terminal event each repeat the whole text (the output
    text four times over: text done, part done, item done, completed), and each was decoded
    into a string of its own: a long answer was held four times while those events waited for
    their subscribers. Sharing keeps one copy, the one the accumulator already holds.
    """
    if type(new) is dict:
        if type(old) is not dict:
            return
        for key, value in new.items():
            prior = old.get(key)
            if type(value) is str:
                if (
                    type(prior) is str
                    and value is not prior
                    and len(value) >= _SHARED_MIN
                    and len(value) == len(prior)
                    and value == prior
                ):
                    new[key] = prior
            elif depth > 1 and prior is not None:
                _share(value, prior, depth - 1)
    elif type(new) is list and type(old) is list and depth > 1:
        for value, prior in zip(new, old, strict=False):
            _share(value, prior, depth - 1)


class ResponseAccumulator:
    """Assembles one Response from its events; keeps the resume cursor.

    Args:
        snapshot: A Response object to start from when `response.created` will not come (a
            resume with `starting_after`): e.g. the accumulator's own earlier snapshot, or a GET.
            It is copied, never mutated.
        cursor: The last `sequence_number` already reflected in `snapshot`.
    """

    __slots__ = (
        "_cursor",
        "_dirty",
        "_final",
        "_pending",
        "_snap",
        "anomalies",
        "duplicates",
        "error",
        "events",
    )

    def __init__(
        self, snapshot: Mapping[str, Any] | None = None, *, cursor: int | None = None
    ) -> None:
        self._snap: dict[str, Any] | None = None if snapshot is None else _copy_response(snapshot)
        self._cursor = cursor
        self._final: dict[str, Any] | None = None
        self._pending: dict[_Key, _Pending] = {}
        self._dirty = False
        #: Events accepted so far (duplicates excluded).
        self.events = 0
        #: Events dropped because their sequence number was at or below the cursor.
        self.duplicates = 0
        #: Events that referred to an item or part that does not exist (ignored).
        self.anomalies = 0
        #: The normalised `error` frame (`code`, `message`, `param`, `type`), if one arrived.
        self.error: dict[str, Any] | None = None
        if self._snap is not None and self._snap.get("status") in _TERMINAL_STATUSES:
            self._final = self._snap

    # -- reading ---------------------------------------------------------------------------

    @property
    def cursor(self) -> int | None:
        """The last accepted `sequence_number` (resume with `starting_after=cursor`)."""
        return self._cursor

    @property
    def snapshot(self) -> dict[str, Any] | None:
        """The Response as known so far (read-only), or None before any lifecycle event."""
        if self._dirty:
            self._materialize()
        return self._snap

    @property
    def result(self) -> dict[str, Any] | None:
        """The final Response of a terminal event (completed, failed, incomplete), else None."""
        return self._final

    @property
    def done(self) -> bool:
        """True once a terminal Response arrived."""
        return self._final is not None

    @property
    def status(self) -> str | None:
        snap = self._final or self._snap
        return None if snap is None else snap.get("status")

    @property
    def response_id(self) -> str | None:
        snap = self._final or self._snap
        return None if snap is None else snap.get("id")

    @property
    def output_text(self) -> str:
        """All `output_text` parts of message items, joined (the SDK's `output_text`)."""
        snap = self.snapshot
        if snap is None:
            return ""
        texts = [
            part.get("text") or ""
            for item in snap.get("output") or ()
            if isinstance(item, Mapping) and item.get("type") == "message"
            for part in item.get("content") or ()
            if isinstance(part, Mapping) and part.get("type") == "output_text"
        ]
        return "".join(texts)

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, event: StreamEvent) -> bool:
        """Apply one event. Returns False for a duplicate (dropped and counted).

        Raises:
            SequenceError: the event's number skips ahead of `cursor + 1`; nothing was applied.
        """
        seq = event.sequence_number
        cursor = self._cursor
        # The hot path is the next number: only anything else needs the full check.
        if (cursor is None or seq != cursor + 1) and not in_sequence(cursor, seq, self):
            self.duplicates += 1
            return False
        self._cursor = seq
        self.events += 1  # `apply`, inlined: this is the per-event hot path
        handler = _HANDLERS.get(event.type)
        if handler is not None and self._final is None:
            handler(self, event.data)
        return True

    def apply(self, event: StreamEvent) -> None:
        """Apply one event without any ordering check and without moving the cursor (for a
        frame that carries no sequence number in a numbered stream, e.g. a bare keepalive)."""
        self.events += 1
        handler = _HANDLERS.get(event.type)
        if handler is not None and self._final is None:
            handler(self, event.data)

    # -- internals -------------------------------------------------------------------------

    def _materialize(self) -> None:
        # Every pending string, however few parts it has: one part may be a fold of everything
        # since the last read (`Pieces` starts with the part's old value).
        for owner, field, pieces in self._pending.values():
            owner[field] = pieces.text()
        self._dirty = False

    def _ensure_snapshot(self) -> dict[str, Any]:
        snap = self._snap
        if snap is None:
            snap = self._snap = {"object": "response", "status": "in_progress", "output": []}
        return snap

    def _item(self, oi: Any) -> dict[str, Any] | None:
        out = self._ensure_snapshot()["output"]
        if isinstance(oi, int) and 0 <= oi < len(out):
            item = out[oi]
            if isinstance(item, dict):
                return item
        self.anomalies += 1
        return None

    def _part(self, oi: Any, list_key: str, idx: Any) -> dict[str, Any] | None:
        item = self._item(oi)
        if item is None:
            return None
        seq = item.get(list_key)
        if isinstance(seq, list) and isinstance(idx, int) and 0 <= idx < len(seq):
            part = seq[idx]
            if isinstance(part, dict):
                return part
        self.anomalies += 1
        return None

    def _append(self, key: _Key, data: Mapping[str, Any]) -> None:
        pending = self._pending.get(key)
        if pending is None:
            oi, kind, idx = key
            owner: dict[str, Any] | None
            if not isinstance(idx, int):
                self.anomalies += 1
                return
            if kind == "summary":
                owner, field = self._part(oi, "summary", idx), "text"
            elif idx >= 0:
                owner, field = self._part(oi, "content", idx), kind
            else:
                owner, field = self._item(oi), kind
            if owner is None:
                return
            prior = owner.get(field)
            pending = (owner, field, Pieces(prior if isinstance(prior, str) else ""))
            self._pending[key] = pending
        pending[2].append(data.get("delta") or "")
        self._dirty = True

    def _set(self, owner: dict[str, Any] | None, key: _Key, field: str, value: Any) -> None:
        self._pending.pop(key, None)
        if owner is not None:
            owner[field] = value

    def _drop_pending(self, oi: int, kinds: tuple[str, ...] | None = None, idx: int = -2) -> None:
        for key in [
            k
            for k in self._pending
            if k[0] == oi and (kinds is None or (k[1] in kinds and k[2] == idx))
        ]:
            del self._pending[key]

    # lifecycle

    def _on_created(self, data: Mapping[str, Any]) -> None:
        resp = data.get("response")
        if isinstance(resp, Mapping):
            self._snap = _copy_response(resp)
            self._pending.clear()
            self._dirty = False

    def _on_status(self, data: Mapping[str, Any]) -> None:
        resp = data.get("response")
        if not isinstance(resp, Mapping):
            return
        if self._snap is None:
            self._snap = _copy_response(resp)
        else:
            _share(resp, self._snap)
            status = resp.get("status")
            if status is not None:
                self._snap["status"] = status

    def _on_terminal(self, data: Mapping[str, Any]) -> None:
        resp = data.get("response")
        if isinstance(resp, dict):
            _share(resp, self._snap)
            self._final = self._snap = resp
            self._pending.clear()
            self._dirty = False

    def _on_error(self, data: Mapping[str, Any]) -> None:
        self.error = normalize_error(data)

    # items and parts

    def _on_item_added(self, data: Mapping[str, Any]) -> None:
        item, oi = data.get("item"), data.get("output_index")
        if not isinstance(item, Mapping):
            self.anomalies += 1
            return
        out = self._ensure_snapshot()["output"]
        new = _copy_item(item)
        if isinstance(oi, int) and 0 <= oi < len(out):
            self._drop_pending(oi)
            out[oi] = new
        else:
            if oi != len(out):
                self.anomalies += 1
            out.append(new)

    def _on_item_done(self, data: Mapping[str, Any]) -> None:
        item, oi = data.get("item"), data.get("output_index")
        if not isinstance(item, Mapping) or not isinstance(oi, int):
            self.anomalies += 1
            return
        out = self._ensure_snapshot()["output"]
        self._drop_pending(oi)
        if 0 <= oi < len(out):
            _share(item, out[oi])
            out[oi] = _copy_item(item)
        else:
            self.anomalies += 1
            out.append(_copy_item(item))

    def _add_part(self, data: Mapping[str, Any], list_key: str, idx_key: str) -> None:
        item = self._item(data.get("output_index"))
        part, idx = data.get("part"), data.get(idx_key)
        if item is None or not isinstance(part, Mapping):
            return
        seq = item.get(list_key)
        if not isinstance(seq, list):
            seq = item[list_key] = []
        if isinstance(idx, int) and 0 <= idx < len(seq):
            seq[idx] = _copy_part(part)
        else:
            seq.append(_copy_part(part))

    def _done_part(self, data: Mapping[str, Any], list_key: str, idx_key: str) -> None:
        oi, idx, part = data.get("output_index"), data.get(idx_key), data.get("part")
        if not isinstance(part, Mapping) or self._part(oi, list_key, idx) is None:
            return
        assert isinstance(oi, int)
        assert isinstance(idx, int)
        kinds = ("summary",) if list_key == "summary" else ("text", "refusal")
        self._drop_pending(oi, kinds, idx)
        parts = self._ensure_snapshot()["output"][oi][list_key]
        _share(part, parts[idx])
        parts[idx] = _copy_part(part)

    def _on_content_part_added(self, data: Mapping[str, Any]) -> None:
        self._add_part(data, "content", "content_index")

    def _on_content_part_done(self, data: Mapping[str, Any]) -> None:
        self._done_part(data, "content", "content_index")

    def _on_summary_part_added(self, data: Mapping[str, Any]) -> None:
        self._add_part(data, "summary", "summary_index")

    def _on_summary_part_done(self, data: Mapping[str, Any]) -> None:
        self._done_part(data, "summary", "summary_index")

    # deltas and their authoritative ends

    def _on_annotation(self, data: Mapping[str, Any]) -> None:
        part = self._part(data.get("output_index"), "content", data.get("content_index"))
        if part is None:
            return
        anns = part.get("annotations")
        if not isinstance(anns, list):
            anns = part["annotations"] = []
        idx, ann = data.get("annotation_index"), data.get("annotation")
        if isinstance(idx, int) and 0 <= idx < len(anns):
            anns[idx] = ann
        else:
            anns.append(ann)


def _content_delta(field: str) -> Callable[[ResponseAccumulator, Mapping[str, Any]], None]:
    def handler(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
        key = (data.get("output_index"), field, data.get("content_index"))
        pending = acc._pending.get(key)
        if pending is None:  # the first delta of this part
            acc._append(key, data)
            return
        pending[2].append(data.get("delta") or "")  # the hot path: `_append`, inlined
        acc._dirty = True

    return handler


def _content_done(
    field: str, value_key: str
) -> Callable[[ResponseAccumulator, Mapping[str, Any]], None]:
    def handler(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
        oi, ci = data.get("output_index"), data.get("content_index")
        part = acc._part(oi, "content", ci)
        if isinstance(oi, int) and isinstance(ci, int):
            acc._set(part, (oi, field, ci), field, data.get(value_key))

    return handler


def _item_delta(field: str) -> Callable[[ResponseAccumulator, Mapping[str, Any]], None]:
    def handler(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
        acc._append((data.get("output_index"), field, -1), data)

    return handler


def _item_done(
    field: str, value_key: str
) -> Callable[[ResponseAccumulator, Mapping[str, Any]], None]:
    def handler(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
        oi = data.get("output_index")
        item = acc._item(oi)
        if isinstance(oi, int):
            acc._set(item, (oi, field, -1), field, data.get(value_key))
            name = data.get("name")
            if item is not None and name and value_key == "arguments":
                item["name"] = name

    return handler


def _summary_delta(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
    acc._append((data.get("output_index"), "summary", data.get("summary_index")), data)


def _summary_done(acc: ResponseAccumulator, data: Mapping[str, Any]) -> None:
    oi, si = data.get("output_index"), data.get("summary_index")
    part = acc._part(oi, "summary", si)
    if isinstance(oi, int) and isinstance(si, int):
        acc._set(part, (oi, "summary", si), "text", data.get("text"))


_TERMINAL_STATUSES = frozenset({"completed", "failed", "incomplete", "cancelled"})

_HANDLERS: dict[str, Callable[[ResponseAccumulator, Mapping[str, Any]], None]] = {
    "response.created": ResponseAccumulator._on_created,
    "response.queued": ResponseAccumulator._on_status,
    "response.in_progress": ResponseAccumulator._on_status,
    "response.completed": ResponseAccumulator._on_terminal,
    "response.failed": ResponseAccumulator._on_terminal,
    "response.incomplete": ResponseAccumulator._on_terminal,
    "response.cancelled": ResponseAccumulator._on_terminal,
    "error": ResponseAccumulator._on_error,
    "response.output_item.added": ResponseAccumulator._on_item_added,
    "response.output_item.done": ResponseAccumulator._on_item_done,
    "response.content_part.added": ResponseAccumulator._on_content_part_added,
    "response.content_part.done": ResponseAccumulator._on_content_part_done,
    "response.reasoning_summary_part.added": ResponseAccumulator._on_summary_part_added,
    "response.reasoning_summary_part.done": ResponseAccumulator._on_summary_part_done,
    "response.output_text.annotation.added": ResponseAccumulator._on_annotation,
    "response.output_text.delta": _content_delta("text"),
    "response.output_text.done": _content_done("text", "text"),
    "response.refusal.delta": _content_delta("refusal"),
    "response.refusal.done": _content_done("refusal", "refusal"),
    "response.reasoning_text.delta": _content_delta("text"),
    "response.reasoning_text.done": _content_done("text", "text"),
    "response.reasoning_summary_text.delta": _summary_delta,
    "response.reasoning_summary_text.done": _summary_done,
    "response.function_call_arguments.delta": _item_delta("arguments"),
    "response.function_call_arguments.done": _item_done("arguments", "arguments"),
    "response.mcp_call_arguments.delta": _item_delta("arguments"),
    "response.mcp_call_arguments.done": _item_done("arguments", "arguments"),
    "response.custom_tool_call_input.delta": _item_delta("input"),
    "response.custom_tool_call_input.done": _item_done("input", "input"),
    "response.code_interpreter_call_code.delta": _item_delta("code"),
    "response.code_interpreter_call_code.done": _item_done("code", "code"),
}
