"""An incremental Server-Sent Events decoder over bytes, for both OpenAI framings.

Why not `httpx_sse.EventSource.aiter_sse` on the hot path (it remains the reference: the tests
check this decoder against httpx-sse's on random inputs): it decodes line by line through two
nested async generators, and on an early exit it closes its line generator without closing the
`Response.aiter_text()` generator inside it, which trio reports as a ResourceWarning (an error
under `filterwarnings = error`). This decoder is plain synchronous code fed one network chunk at
a time; it frames whole events with `bytes.split`, never decodes text it does not need (the JSON
parser takes bytes), and so costs less per event than the line decoder alone.

Semantics (the WHATWG event-stream rules, as httpx-sse applies them):

* lines end with CRLF, LF or CR (a CR at the end of a chunk waits for the next one);
* a blank line ends an event; `:` lines are comments; `field: value` strips one leading space;
  a line without a colon is a field with an empty value;
* `data` lines are joined with `\\n`; `event` sets the name (default "message"); `id` and
  `retry` are kept; unknown fields are ignored; a leading UTF-8 BOM is dropped;
* an event is dispatched when it has data or an event name (httpx-sse also dispatches empty
  `id`/`retry`-only events; nothing here needs them);
* an event cut off by EOF before its blank line is discarded (`close()` sets `truncated`).
"""

from __future__ import annotations

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Feed bytes with `feed(chunk)`; get back the complete `(event, data)` pairs it finished.

    `data` stays bytes (UTF-8 on the wire; `json.loads` accepts it as is).
    """

    __slots__ = ("_buf", "_names", "_started", "last_event_id", "retry", "truncated")

    def __init__(self) -> None:
        self._buf = b""
        self._started = False
        self._names: dict[bytes, str] = {}
        #: The last `id:` field seen (kept across events, as the spec says).
        self.last_event_id = ""
        #: The last valid `retry:` field seen, in milliseconds.
        self.retry: int | None = None
        #: Set by `close()`: an unfinished event was discarded at the end of the stream.
        self.truncated = False

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        """Decode one chunk; return the events it completed, in order."""
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        if b"\r" in buf:
            # Keep a trailing CR: it may be the first half of a CRLF split across chunks.
            tail = b"\r" if buf.endswith(b"\r") else b""
            body = buf[:-1] if tail else buf
            buf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n") + tail
        return self._frame(buf)

    def _frame(self, buf: bytes) -> list[tuple[str, bytes]]:
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop()
        if not blocks:
            return []
        out: list[tuple[str, bytes]] = []
        for block in blocks:
            # The fast paths: `data: …` alone (Chat), `event: …` + `data: …` (Responses).
            if block.startswith(b"data: ") and b"\n" not in block:
                out.append(("message", block[6:]))
                continue
            if block.startswith(b"event: "):
                nl = block.find(b"\n")
                if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
                    out.append((self._name(block[7:nl]), block[nl + 7 :]))
                    continue
            event = self._slow(block)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> list[tuple[str, bytes]]:
        """End of stream: return the events a final held-back CR completes. Sets `truncated`
        if an unfinished event (anything but comments after the last blank line) was dropped."""
        rest, self._buf = self._buf, b""
        events: list[tuple[str, bytes]] = []
        if rest.endswith(b"\r"):
            events = self._frame(rest.replace(b"\r", b"\n"))
            rest, self._buf = self._buf, b""
        self.truncated = any(
            line and not line.startswith(b":")
            for line in rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        )
        return events

    def _name(self, raw: bytes) -> str:
        name = self._names.get(raw)
        if name is None:
            name = raw.decode("utf-8", "replace") or "message"
            if len(self._names) < 256:
                self._names[raw] = name
        return name

    def _slow(self, block: bytes) -> tuple[str, bytes] | None:
        event = b""
        data: list[bytes] = []
        has_event = False
        for line in block.split(b"\n"):
            if not line or line[0] == 0x3A:  # blank (leading) or ":" comment
                continue
            field, colon, value = line.partition(b":")
            if colon and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                event, has_event = value, True
            elif field == b"id":
                if b"\0" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif field == b"retry" and value.isdigit():
                self.retry = int(value)
        if not data and not (has_event and event):
            return None
        return self._name(event), b"\n".join(data)
