"""The demos' terminal output: streamed Markdown made readable, and multi-line token runs."""

from __future__ import annotations

import io
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamvisor._console import Console, TerminalMarkdown


def render(deltas: Iterable[str], *, bold: bool = False) -> str:
    markdown = TerminalMarkdown(bold=bold)
    return "".join(markdown.feed(delta) for delta in deltas) + markdown.finish()


class TestTerminalMarkdown:
    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("**Reading the request**\n\nThe user wrote", "Reading the request\n\nThe user wrote"),
            ("# Plan\nfirst", "Plan\nfirst"),
            ("### Step 2\nthen **this** and **that**.", "Step 2\nthen this and that."),
            ("(**note**)", "(note)"),
        ],
    )
    def test_bold_and_headers_lose_their_markers(self, text: str, shown: str) -> None:
        """What a model writes for a renderer reads as plain text on a terminal."""
        assert render([text]) == shown

    @pytest.mark.parametrize(
        "text",
        [
            "2 * 3 = 6",
            "2 ** 10 = 1024",
            "a**b and 2**3",
            "call f(*args, **kwargs)\nthen",
            "#5 is not a header",
            "** not bold**",
            "****",
            "*emphasis* stays",
            "x = 1  # a comment",
            "```python\n# a comment, not a header\nprint(2 ** 3, **{'sep': ''})\n```",
        ],
    )
    def test_asterisks_and_hashes_that_are_not_markup_are_left_alone(self, text: str) -> None:
        """Arithmetic, Python and unclosed spans print exactly as written."""
        assert render([text]) == text

    def test_markers_split_across_deltas_are_still_recognised(self) -> None:
        """The API splits text anywhere: `*` + `*Bold*` + `*`, `#` + `# Title`."""
        assert render(["*", "*Bol", "d*", "* then 2 *", " 3\n#", "# Ti", "tle\nend"]) == (
            "Bold then 2 * 3\nTitle\nend"
        )
        assert render(["`", "``\n# x\n``", "`\n# **y**"]) == "```\n# x\n```\ny"

    def test_on_a_terminal_bold_is_bold(self) -> None:
        """With `bold`, the span and the header are wrapped in the terminal's bold codes."""
        assert render(["**Answering**\n", "# Done\n"], bold=True) == (
            "\x1b[1mAnswering\x1b[22m\n\x1b[1mDone\x1b[22m\n"
        )

    def test_plain_text_streams_at_once(self) -> None:
        """Only a marker is ever held back: ordinary deltas come out as they go in."""
        markdown = TerminalMarkdown()
        assert [markdown.feed(d) for d in ("The", " user", " wrote")] == ["The", " user", " wrote"]

    @given(st.text(alphabet=st.sampled_from("ab 2*#`\n()"), max_size=30), st.data())
    def test_how_the_text_is_split_never_changes_what_is_shown(
        self, text: str, data: st.DataObject
    ) -> None:
        """Any split of the same text renders the same, and without markers nothing is lost."""
        cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=6)))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert render(pieces) == render([text])
        if not {"*", "#"} & set(text):
            assert render([text]) == text


class TestConsoleTokens:
    def test_newlines_continue_under_the_labels_text_and_blank_lines_go(self) -> None:
        """A multi-line token run stays one block under its label."""
        out = io.StringIO()
        console = Console(out, tty=False)
        console.token("reasoning", "Heading\n")
        console.token("reasoning", "\nBody line one.\nline two")
        console.line("#9 done")
        assert out.getvalue() == (
            "  reasoning: Heading\n             Body line one.\n             line two\n#9 done\n"
        )

    def test_a_continuation_line_keeps_its_own_indentation(self) -> None:
        """Code in an answer stays indented under the label's text."""
        out = io.StringIO()
        console = Console(out, tty=False)
        console.token("assistant", " def f():\n    return 1")
        assert out.getvalue() == "  assistant: def f():\n                 return 1"
