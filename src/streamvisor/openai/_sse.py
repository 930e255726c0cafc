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
"""

from __future__ import annotations

import codecs

from httpx_sse import ServerSentEvent
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

__all__ = ["SSEParser"]

_utf8_decode = codecs.utf_8_decode  # (data, errors, final) -> (text, bytes used), in C
_BOM = b"\xef\xbb\xbf"


class SSEParser:
    """Feed body chunks with `feed(chunk)`; get back the events each one completed, in order.

    Events are httpx-sse's `ServerSentEvent`s, as `aiter_sse` would yield them (including the
    empty `message` events it dispatches for `id`/`retry`-only frames).
    """

    __slots__ = ("_fields", "_lines", "_pending", "_started", "invalid")

    def __init__(self) -> None:
        # An incremental UTF-8 decoder by hand (the codec's own is a Python class, called once
        # per network chunk): `_pending` holds the first bytes of a character split across
        # chunks; `_started` is set once the leading BOM question is settled.
        self._pending = b""
        self._started = False
        self._lines = SSELineDecoder()
        self._fields = SSEDecoder().decode
        #: Set when the body held invalid UTF-8: the events before it were returned, nothing
        #: after it will be (every later `feed` returns no events).
        self.invalid: UnicodeDecodeError | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one body chunk; return the events it completed."""
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
        return [sse for sse in map(self._fields, self._lines.decode(text)) if sse is not None]

    def close(self) -> list[ServerSentEvent]:
        """End of the body: the events a final line completes (a CR held back at the end of
        the last chunk). Bytes of an unfinished character or event are discarded."""
        if self.invalid is not None:
            return []
        return [sse for sse in map(self._fields, self._lines.flush()) if sse is not None]
