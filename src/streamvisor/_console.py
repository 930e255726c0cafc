"""Terminal output for the demos: `Console` (lines, streamed tokens, a progress line) and
`TerminalMarkdown` (a model's ``**bold**`` and ``# headers`` made readable as they stream)."""

from __future__ import annotations

from typing import Final, TextIO

__all__ = ["Console", "TerminalMarkdown"]

_BOLD: Final = "\x1b[1m"
_NORMAL: Final = "\x1b[22m"


class Console:
    """Where a demo prints: whole lines, tokens flushed one by one, and a progress line.

    On a terminal the progress line is rewritten in place (``\\r``); otherwise each update is a
    line of its own, so logs and pipes read well. A token run that contains newlines goes on
    under its first line's text, keeping its own indentation (blank lines are dropped), so a
    label's text stays one block.
    """

    def __init__(self, out: TextIO, *, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._label: str | None = None  # the label of the token run in progress
        self._indent = ""  # where the token run's continuation lines start
        self._line_empty = True  # nothing written after the label or indent yet
        self._run_empty = True  # nothing written after the label yet
        self._progress = False

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _break(self) -> None:
        if self._label is not None or self._progress:
            self._write("\n")
        self._label = None
        self._progress = False

    def line(self, text: str = "") -> None:
        """Print a whole line (ending any token run or progress line first)."""
        self._break()
        self._write(text + "\n")

    def heading(self, text: str) -> None:
        self.line()
        self.line(f"── {text} " + "─" * max(3, 72 - len(text)))

    def token(self, label: str, text: str) -> None:
        """Print a piece of streamed text at once; a new label starts a new line."""
        if label != self._label:
            self._break()
            self._write(f"  {label}: ")
            self._label = label
            self._indent = " " * (len(label) + 4)
            self._line_empty = self._run_empty = True
        first, *rest = text.split("\n")
        self._text(first)
        for piece in rest:
            if not self._line_empty:
                self._write("\n" + self._indent)
                self._line_empty = True
            self._text(piece)

    def _text(self, piece: str) -> None:
        if self._run_empty:
            piece = piece.lstrip()  # the label's ": " is the space
        if piece:
            self._write(piece)
            self._line_empty = self._run_empty = False

    def progress(self, text: str) -> None:
        """Show the current state of something that changes: in place on a terminal."""
        if self.tty:
            if self._label is not None:
                self._break()
            self._write("\r" + text + "\x1b[K")
            self._progress = True
        else:
            self.line(text)


class TerminalMarkdown:
    """Streamed Markdown made readable on a terminal, delta by delta.

    ``**bold**`` loses its asterisks (and is bold when ``bold``, on a terminal); a ``# header``
    line loses its hashes (and is bold likewise). Asterisks that do not open and close a bold
    span on one line are left as they are: ``2 * 3``, ``2 ** 10``, ``a**b``, ``**kwargs``. A
    bold span is held back until it closes (or its line ends), and a trailing ``*`` or a
    line-opening ``#`` or backtick until the next delta decides; `finish` flushes what is held.
    Inside a fenced code block (```) nothing is markup: ``# a comment`` stays.
    """

    def __init__(self, *, bold: bool = False) -> None:
        self._bold = bold
        self._pending = ""  # received, not yet decided
        self._span: str | None = None  # the text of an open **span**, held back
        self._previous = "\n"  # the last character decided (start of text: a line start)
        self._header = False  # inside a header line
        self._code = False  # inside a ``` fenced block: nothing is markup there

    def feed(self, delta: str) -> str:
        """The text to print now for ``delta``."""
        self._pending += delta
        return self._decide(final=False)

    def finish(self) -> str:
        """The text still held back (an unclosed span as written); the renderer starts over."""
        out = self._decide(final=True) + self._end_line()
        self._previous = "\n"
        self._code = False
        return out

    def _decide(self, *, final: bool) -> str:
        out: list[str] = []
        text = self._pending
        i = 0
        while i < len(text):
            char = text[i]
            if char == "`" and self._previous == "\n":
                fence = text[i : i + 3]
                if len(fence) < 3 and "```".startswith(fence) and not final:
                    break  # a fence? the next delta says
                if fence == "```":
                    self._code = not self._code
            if self._code:
                self._emit(out, char)
                i += 1
                continue
            if char == "#" and self._previous == "\n":
                run = len(text[i:]) - len(text[i:].lstrip("#"))
                if i + run == len(text) and not final:
                    break  # is it a header? the next delta says
                if run <= 6 and text[i + run : i + run + 1] == " ":
                    self._header = True
                    out.append(_BOLD if self._bold else "")
                    self._previous = " "
                    i += run + 1
                    continue
                self._emit(out, text[i : i + run])
                i += run
                continue
            if char == "*":
                run = len(text[i:]) - len(text[i:].lstrip("*"))
                if i + run == len(text) and not final:
                    break  # which way it flanks depends on the next character
                after = text[i + run : i + run + 1]
                if run == 2 and self._span is None and after.strip() and self._opens():
                    self._span = ""
                elif run == 2 and self._span and not self._previous.isspace():
                    span, self._span = self._span, None
                    out.append(f"{_BOLD}{span}{_NORMAL}" if self._bold else span)
                else:
                    self._emit(out, text[i : i + run])
                i += run
                continue
            if char == "\n":
                out.append(self._end_line())
            self._emit(out, char)
            i += 1
        self._pending = text[i:]
        return "".join(out)

    def _opens(self) -> bool:
        # `**` opens a span after a space, the start of a line or punctuation (not inside a word:
        # `2**3` is arithmetic).
        return self._previous.isspace() or not self._previous.isalnum()

    def _emit(self, out: list[str], text: str) -> None:
        if self._span is not None:
            self._span += text
        else:
            out.append(text)
        self._previous = text[-1]

    def _end_line(self) -> str:
        """Close what may not run past a line: an unclosed span (printed as it was written)
        and a header."""
        out = ""
        if self._span is not None:
            out, self._span = "**" + self._span, None
        if self._header:
            self._header = False
            out += _NORMAL if self._bold else ""
        return out
