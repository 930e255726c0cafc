"""Server-Sent Events for both OpenAI framings, parsed by httpx-sse's own decoders.

httpx-sse does the parsing: `SSELineDecoder` splits text into lines (CRLF, LF or CR, a CR at
the end of a chunk waiting for the next one) and `SSEDecoder` turns lines into
`ServerSentEvent`s (the WHATWG rules: `:` comments, one leading space stripped, `data` lines
joined with `\\n`, `event` defaulting to "message", `id`/`retry` kept, unknown fields ignored,
dispatch on a blank line). `SSEParser` only drives them from the stream's own chunk loop.

Why not the public `EventSource.aiter_sse`: it feeds those decoders from two nested async
generators over `Response.aiter_text()`, which costs an async-generator step per line, and on an
early exit it closes its line generator without closing the `aiter_text()` generator inside it,
which trio reports as a ResourceWarning (an error under `filterwarnings = error`). Driving the
same two synchronous classes per network chunk has neither problem: no async generator is added,
so nothing is left suspended, and a chunk's lines are decoded in one C-level `map`.
`httpx_sse._decoders` is private, hence the pinned range in `pyproject.toml` and the test that
fails loudly if those classes change shape.

What the adapter adds (bytes to text, which `aiter_text()` would otherwise do):

* an incremental UTF-8 decoder: a character split across chunks waits for its last byte;
* a leading byte order mark is dropped (the spec says so; `aiter_text()` would keep it);
* invalid UTF-8 is not replaced with U+FFFD (that would silently corrupt text and tool-call
  arguments): the events before the bad byte are returned, then `invalid` is set;
* at EOF, `close()` flushes a final line; an event cut off before its blank line is discarded
  (only a blank line dispatches), never half-parsed.

The one shape OpenAI sends, read with string methods. httpx-sse's decoders cost a Python call
per line (three per Responses event) and a `ServerSentEvent` per event: about 2.3 µs of the
~10 µs an event costs end to end, more than the JSON parse. Every frame OpenAI sends is an
optional `event:` line, one `data:` line and a blank line, without CR. So when the decoders hold
nothing (the last text they took ended with a blank line) and a chunk has no CR, the chunk's
complete frames are split on blank lines and each is read by `_openai_frames` (the WHATWG rules
for exactly those two fields: one space after the colon dropped, an empty `event` meaning
"message"); anything else among them — a comment, an `id`, a multi-line `data`, a field
without a colon — and the whole chunk goes to httpx-sse's decoders instead, from the same clean
state. The bytes after the last complete frame always go to the decoders. A differential
property test holds the two paths equal on arbitrary bodies split anywhere
(`tests/openai/test_sse.py`).

Frames are returned as `(event, data)` pairs (what the stream reads of an event; OpenAI sends no
`id` or `retry`, and the decoders still apply them to their own state).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

__all__ = ["Frame", "SSEParser"]

#: One event: its type (`event`, "message" when unnamed) and its `data` text.
Frame = tuple[str, str]

_utf8_decode = codecs.utf_8_decode  # (data, errors, final) -> (text, bytes used), in C
_BOM = b"\xef\xbb\xbf"


class SSEParser:
    """Feed body chunks with `feed(chunk)`; get back the frames each one completed, in order.

    Frames are `(event, data)` pairs, as `aiter_sse` would yield them as `ServerSentEvent`s
    (including the empty `message` events it dispatches for `id`/`retry`-only frames).
    """

    __slots__ = ("_clean", "_fields", "_lines", "_pending", "_started", "invalid")

    def __init__(self) -> None:
        # An incremental UTF-8 decoder by hand (the codec's own is a Python class, called once
        # per network chunk): `_pending` holds the first bytes of a character split across
        # chunks; `_started` is set once the leading BOM question is settled.
        self._pending = b""
        self._started = False
        self._lines = SSELineDecoder()
        self._fields = SSEDecoder().decode
        # True while httpx-sse's decoders hold no partial line or event (everything they took
        # ended with a blank line): the fast path may read the next frames itself.
        self._clean = True
        #: Set when the body held invalid UTF-8: the events before it were returned, nothing
        #: after it will be (every later `feed` returns no events).
        self.invalid: UnicodeDecodeError | None = None

    def feed(self, chunk: bytes) -> list[Frame]:
        """Decode one body chunk; return the frames it completed."""
        if self.invalid is not None:
            return []
        data = self._pending + chunk if self._pending else chunk
        if not self._started:
            if len(data) < 3 and _BOM.startswith(data):
                self._pending = data  # maybe the start of a BOM: wait for more
                return []
            self._started = True
            if data.startswith(_BOM):
                data = data[3:]
        try:
            text, used = _utf8_decode(data, "strict", False)
        except UnicodeDecodeError as exc:
            self.invalid = exc
            # What precedes the bad byte is valid and starts on a character boundary.
            text, used = data[: exc.start].decode(), len(data)
        self._pending = data[used:] if used < len(data) else b""
        if not text:
            return []
        if self._clean and "\r" not in text:
            end = text.rfind("\n\n") + 2
            if end > 1:
                frames = _openai_frames(text[:end] if end < len(text) else text)
                if frames is not None:
                    if end < len(text):
                        frames += self._decoded(text[end:])
                    return frames
        return self._decoded(text)

    def close(self) -> list[Frame]:
        """End of the body: the frames a final line completes (a CR held back at the end of
        the last chunk). Bytes of an unfinished character or event are discarded."""
        if self.invalid is not None:
            return []
        return _frames(map(self._fields, self._lines.flush()))

    def _decoded(self, text: str) -> list[Frame]:
        """`text` through httpx-sse's decoders."""
        self._clean = text.endswith("\n\n")
        return _frames(map(self._fields, self._lines.decode(text)))


def _frames(events: Iterable[ServerSentEvent | None]) -> list[Frame]:
    return [(sse.event, sse.data) for sse in events if sse is not None]


def _openai_frames(block: str) -> list[Frame] | None:
    """The frames of `block` if every one has OpenAI's shape, else None.

    `block` holds whole frames, ends with a blank line and has no CR, and the decoders are
    clean (at the start of a line, no field pending). OpenAI's shape: an optional `event:`
    line, then one `data:` line; the WHATWG rules for those two fields are one space after the
    colon dropped and an empty event name meaning "message". String methods only (C): a
    regular expression scans each character in its own engine, slower than the decoders.
    """
    frames: list[Frame] = []
    pieces = block.split("\n\n")
    if pieces.pop():  # `block` ends with "\n\n": the last piece is empty
        return None
    for piece in pieces:
        if piece.startswith("data:"):
            event = "message"
            data = piece
        elif piece.startswith("event:"):
            name, _, data = piece.partition("\n")
            if not data.startswith("data:"):
                return None
            event = name[7:] if name.startswith("event: ") else name[6:]
            if not event:
                event = "message"
        else:  # a comment, an id, a blank line, another field: the decoders' work
            return None
        if "\n" in data:  # several data lines (joined by the decoder), or more fields
            return None
        frames.append((event, data[6:] if data.startswith("data: ") else data[5:]))
    return frames
