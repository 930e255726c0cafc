"""`python run.py demo FEATURE`: every demo runs to its end on the embedded server and shows
what it promises. In-process, over real loopback HTTP (no mock clock), with fast pacing."""

from __future__ import annotations

import io
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from streamvisor import _demos
from streamvisor._cli import DEMOS
from streamvisor._demos import (
    FEATURES,
    TITLES,
    Console,
    Pacing,
    animated_gif_bytes,
    calculator,
    pdf_bytes,
    png_bytes,
    run_demo,
)
from streamvisor.actors import FileRules, SniffResult
from streamvisor.actors.files._rules import check_content
from streamvisor.actors.files._sniff import count_gif_frames, sniff
from streamvisor.config import Config

RUN_PY = Path(__file__).resolve().parents[1] / "run.py"

#: Fast, but slow enough that a background response is still running when the demo cancels it.
FAST = Pacing(token_delay=0.005, queue_delay=0.2, poll_after_ms=40, poll_interval=0.05)


def embedded_config() -> Config:
    """No API key (the embedded server), JSON logs, nothing read from the environment."""
    return Config.load(environ={"STREAMVISOR_LOG_FORMAT": "json"})


async def demo_output(
    feature: str, config: Config | None = None, *, tty: bool = False
) -> tuple[int, str]:
    """Run a demo in-process (on the embedded server unless `config` says otherwise) and return
    its exit code and everything it printed."""
    out = io.StringIO()
    with trio.fail_after(30):
        code = await run_demo(
            feature, embedded_config() if config is None else config, pacing=FAST, out=out, tty=tty
        )
    return code, out.getvalue()


async def run(feature: str) -> str:
    """A demo that must succeed: its output, checked to have ended with its closing line."""
    code, text = await demo_output(feature)
    assert code == 0, text
    assert f"demo {feature!r} done in" in text
    return text


def run_py(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python run.py *args`` in a child process, in `cwd`, with a bare environment (no API key:
    the embedded server) and JSON logs; its output captured."""
    return subprocess.run(
        [sys.executable, str(RUN_PY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "STREAMVISOR_LOG_FORMAT": "json"},
    )


class TestStream:
    async def test_it_streams_a_tool_call_its_result_the_answer_and_a_plain_text(self) -> None:
        """The tool call's arguments, the tool's result fed back, and both answers' tokens."""
        text = await run("stream")
        assert '→ tool call get_weather: {"city":"Paris"}' in text
        assert '← get_weather returned {"city": "Paris", "temperature_c": 18' in text
        assert "made up" not in text.split("\n", 2)[2]  # Paris came from the question
        assert "assistant (canned): Here is what the tools returned: get_weather returned" in text
        assert (
            "assistant (canned): You said: Write a haiku about a supervisor restarting a crashed "
            "worker." in text
        )
        assert "[completion_finished]" in text
        assert text.count("completed:") == 3
        assert "summary: 3 chat streams, 1 tool call(s) run and answered" in text
        assert "with gaps" not in text

    async def test_a_stream_without_text_times_its_first_tool_call_delta(self) -> None:
        """The tool-call stream has no text token: its summary says when the call began."""
        text = await run("stream")
        assert "after -" not in text
        assert re.search(r"0 text deltas, first tool-call delta after \d+\.\d\ds,", text)


class TestResponses:
    async def test_it_shows_the_reasoning_summary_the_answer_and_the_semantic_events(
        self,
    ) -> None:
        """A durable stream: queued, in progress, reasoning summary, text, completed."""
        text = await run("responses")
        assert "(durable=True)" in text
        assert "assistant (canned): You said: In two sentences:" in text
        for shown in ("[queued]", "[in_progress]", "[reasoning_done]", "[completion_finished]"):
            assert shown in text
        assert re.search(r"event types: stream_started 1, .*reasoning_delta \d+", text)
        assert "[part_started] output_text #0 of output 1" in text
        assert "summary: completed; reasoning summary" in text
        assert "sequence numbers gapless" in text
        # The reasoning summary streams before the text: both are timed.
        assert re.search(r"first text token after \d+\.\d\ds \(reasoning from \d+\.\d\ds\)", text)

    async def test_the_reasoning_summary_reads_as_text_not_markdown(self) -> None:
        """The summary's **headings** lose their asterisks; its paragraphs stay under the label."""
        text = await run("responses")
        assert "**" not in text
        assert (
            "  reasoning (canned): Reading the request\n"
            "                      The user wrote 13 words; I should answer them directly.\n"
        ) in text

    async def test_the_response_id_is_on_the_streams_first_line_only(self) -> None:
        """Later lifecycle lines say what changed, not the 50-character id again."""
        text = await run("responses")
        (response_id,) = set(re.findall(r"#0 +\[stream_started\] (resp_\w+) queued\n", text))
        assert "  #1   [queued]\n  #2   [in_progress]\n" in text
        assert re.search(r"#\d+ +\[completion_finished\] completed\n", text)
        assert text.count(response_id) == 3  # the ticket, its first status, stream_started

    async def test_every_event_label_is_a_short_name(self) -> None:
        """One labelling: no raw `response.*` type in brackets beside the short names."""
        text = await run("responses")
        labels = re.findall(r"#\d+ +\[([^\]]+)\]", text)
        assert "reasoning_part_started" in labels
        assert [label for label in labels if not re.fullmatch(r"[a-z_]+", label)] == []


class TestBackground:
    async def test_it_shows_transitions_a_cancel_and_active_shrinking(self) -> None:
        """Both are tracked, B is cancelled while running, A completes, active() reaches 0."""
        text = await run("background")
        actives = [int(n) for n in re.findall(r"active\(\): (\d+)", text)]
        assert actives[0] == 2
        assert actives[-1] == 0
        assert actives == sorted(actives, reverse=True)
        assert "cancel(B) → cancelled" in text
        assert "A: queued → in_progress" in text
        assert "A: in_progress → completed" in text
        assert "poll(A) → completed: lorem ipsum" in text
        assert "summary: A completed, B cancelled;" in text
        assert "active() 2 → 1 → 0" in text

    async def test_its_progress_line_is_rewritten_in_place_on_a_terminal(self) -> None:
        """On a TTY the status line is redrawn with a carriage return, not a new line."""
        code, text = await demo_output("background", tty=True)
        assert code == 0, text
        assert "\r  [A: queued  B: queued]\x1b[K" in text
        assert "\r  [A: completed  B: cancelled]\x1b[K\n" in text


class TestFiles:
    async def test_it_sniffs_types_builds_parts_lists_rejects_the_gif_and_deletes(self) -> None:
        """MIME types from content, the parts, list(), the typed GIF error, delete()."""
        text = await run("files")
        assert "photo.jpg: detected image/png (from its bytes)" in text
        assert "report.pdf: detected application/pdf" in text
        assert re.search(r"upload\(photo\.jpg\) → file-\w+ \(\d+ bytes, purpose=vision\)", text)
        assert re.search(
            r'image_input → \{"type": "input_image", "file_id": "file-\w+", "detail": "auto"\} '
            r"\(the same file",
            text,
        )
        assert re.search(r'file_input  → \{"type": "input_file", "file_id": "file-\w+"', text)
        assert "validate_inputs: ok (1 image(s), 0 bytes inline)" in text
        assert "list(): 2 file(s), 2 of them the demo's:" in text
        assert "spinner.gif: rejected before upload: AnimatedGifNotAllowed:" in text
        assert text.count("deleted=True") == 2
        assert "list(): 0 of the demo's files left" in text
        assert "summary: 2 uploaded, 2 listed, rejected spinner.gif (AnimatedGifNotAllowed)" in text


class TestAgent:
    async def test_the_agent_calls_both_tools_and_answers_with_their_results(self) -> None:
        """Tool calls and results are shown as they happen, then the streamed answer."""
        text = await run("agent")
        assert "tool calculator(a, op, b)" in text
        assert '→ tool call calculator({"a":12.5,"op":"multiply","b":4})' in text
        assert "made up by the embedded server" not in text
        assert "← calculator returned 50.0" in text
        assert "→ tool call clock({})" in text
        assert re.search(r"← clock returned \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", text)
        assert (
            "assistant (canned): Here is what the tools returned: calculator returned 50.0" in text
        )
        assert "summary: completed: 2 tool call(s) over 2 model request(s)" in text
        assert "answer:" not in text  # the streamed answer is not printed twice

    async def test_arguments_the_embedded_server_made_up_are_flagged(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A question that names no numbers: the calculator's arguments are made up, and the
        demo says so under the call."""
        monkeypatch.setattr(_demos, "AGENT_QUESTION", "What is this times that, and the time?")
        text = await run("agent")
        assert '→ tool call calculator({"a":1.5,"op":"multiply","b":1.5})' in text
        assert "(made up by the embedded server, not from the question: a, b)" in text

    async def test_the_demo_says_the_replies_are_canned(self) -> None:
        """Without an API key the first lines say no model answers, and so does each reply."""
        text = await run("agent")
        assert "  assistant (canned): Here is what the tools returned:" in text
        first, second = text.splitlines()[:2]
        assert "embedded OpenAI-compatible server" in first
        assert second.startswith("note: no OPENAI_API_KEY, so the replies are canned by the")


class TestCombined:
    async def test_an_image_input_streams_live_in_the_background_and_polls_completed(
        self,
    ) -> None:
        """The image part, the durable stream's events as they come, then the poll."""
        text = await run("combined")
        assert re.search(r'"type": "input_image", "file_id": "file-\w+", "detail": "low"', text)
        assert "[queued]" in text
        assert "assistant (canned): You said: Describe this image in one sentence." in text
        assert "background.poll → completed: You said: Describe this image" in text
        assert "registry: completed, active(): 0" in text
        assert "summary: an input_image answered by a durable background stream (" in text
        # The stream's line, not again in the summary.
        assert text.count("first text token after") == 1


class TestAll:
    async def test_all_runs_every_demo_in_turn_on_one_daemon(self) -> None:
        """Each demo's heading and summary appear, in order, after one daemon start."""
        text = await run("all")
        assert text.count("streamvisor demo 'all' against") == 1
        headings = re.findall(r"━━ demo (\w+):", text)
        assert headings == list(FEATURES)
        assert text.count("\nsummary: ") == len(FEATURES)


class TestFailures:
    async def test_an_unreachable_api_ends_the_demo_with_a_message_and_exit_code_1(self) -> None:
        """With a key and a base URL nobody listens on, the demo says why it failed."""
        with socket.socket() as probe:  # a port that was free a moment ago
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = Config.load(
            environ={
                "OPENAI_API_KEY": "sk-test-not-a-real-key",
                "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                "STREAMVISOR_OPENAI_MAX_RETRIES": "0",
                "STREAMVISOR_LOG_FORMAT": "json",
            }
        )
        code, text = await demo_output("agent", config)
        assert code == 1
        assert f"against http://127.0.0.1:{port}/v1" in text
        assert "demo 'agent' failed: APIConnectionError" in text
        assert "canned" not in text
        assert "sk-test-not-a-real-key" not in text


class TestTheCommandLine:
    def test_run_py_demo_files_runs_as_a_subprocess(self, tmp_path: Path) -> None:
        """The CLI wiring: exit code 0 and the demo's output on stdout."""
        done = run_py(tmp_path, "demo", "files")
        assert done.returncode == 0, done.stderr
        assert "against the embedded OpenAI-compatible server at http://127.0.0.1:" in done.stdout
        assert "AnimatedGifNotAllowed" in done.stdout

    def test_the_models_can_be_chosen_on_the_command_line(self, tmp_path: Path) -> None:
        """--reasoning-model reaches the request (the embedded server answers to any name)."""
        done = run_py(tmp_path, "demo", "responses", "--reasoning-model", "o3-mini")
        assert done.returncode == 0, done.stderr
        assert "a durable Responses stream from o3-mini" in done.stdout
        assert "summary: completed" in done.stdout


class TestConsole:
    def test_every_write_is_flushed_at_once(self) -> None:
        """A token reaches the terminal as soon as it is printed (one flush per write)."""

        class Recorder(io.StringIO):
            def __init__(self) -> None:
                super().__init__()
                self.flushed: list[str] = []

            def flush(self) -> None:
                self.flushed.append(self.getvalue())

        out = Recorder()
        console = Console(out, tty=False)
        for piece in ("a", "b", "c"):
            console.token("assistant", piece)
        assert out.flushed[-3:] == ["  assistant: a", "  assistant: ab", "  assistant: abc"]

    def test_tokens_are_written_as_they_come_under_one_label(self) -> None:
        """Each token is written (and flushed) at once; a new label starts a new line."""
        out = io.StringIO()
        console = Console(out, tty=False)
        console.token("assistant", "Hel")
        assert out.getvalue() == "  assistant: Hel"
        console.token("assistant", "lo")
        console.line("done")
        assert out.getvalue() == "  assistant: Hello\ndone\n"

    def test_progress_is_rewritten_in_place_on_a_terminal(self) -> None:
        """On a TTY, progress updates start with a carriage return and stay on one line."""
        out = io.StringIO()
        console = Console(out, tty=True)
        console.progress("A: queued")
        console.progress("A: completed")
        console.line("end")
        assert out.getvalue() == "\rA: queued\x1b[K\rA: completed\x1b[K\nend\n"

    def test_progress_is_one_line_per_update_otherwise(self) -> None:
        """Piped output gets plain lines."""
        out = io.StringIO()
        console = Console(out, tty=False)
        console.progress("A: queued")
        console.progress("A: completed")
        assert out.getvalue() == "A: queued\nA: completed\n"


class TestSampleFiles:
    def test_the_samples_are_what_they_claim_to_be(self) -> None:
        """PNG and PDF pass the file rules; the GIF is animated."""
        rules = FileRules()
        assert sniff(png_bytes()).mime_type == "image/png"
        assert sniff(pdf_bytes()).mime_type == "application/pdf"
        check_content(png_bytes(), "vision", rules=rules)
        check_content(pdf_bytes(), "user_data", rules=rules)
        assert count_gif_frames(animated_gif_bytes()) == 3
        assert isinstance(sniff(animated_gif_bytes()), SniffResult)

    @pytest.mark.parametrize(
        ("a", "op", "b", "result"),
        [(12.5, "multiply", 4, 50.0), (1, "add", 2, 3), (9, "subtract", 4, 5), (9, "divide", 3, 3)],
    )
    def test_the_calculator_tool(self, a: float, op: str, b: float, result: float) -> None:
        assert calculator(a, op, b) == result  # type: ignore[arg-type]


def test_every_feature_has_a_test() -> None:
    """Keep this file in step with the demos."""
    assert set(FEATURES) == {"stream", "responses", "background", "files", "agent", "combined"}
    assert set(TITLES) == set(FEATURES)
    assert tuple(FEATURES) == DEMOS
