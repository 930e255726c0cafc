"""The observer page (``GET /``) as a user drives it in Chromium: the live supervision tree,
sessions streaming, background work, files, agents and the event inspector."""

from __future__ import annotations

import functools
import re

import pytest
import trio
from playwright.sync_api import Locator, Route, expect

from streamvisor.supervisor import ExitReason
from streamvisor.testing import GatewayThread

from .conftest import PHONE, WIDE, Observer, wait_until

MODEL = "gpt-4o-mini"

#: Checks every card of the page: the document is no wider than the window, no visible element
#: sticks out of its card (left or right), and no scrolling box inside a card scrolls sideways.
BUTTONS_OUTSIDE = """() => {
  const found = [];
  for (const button of document.querySelectorAll("main section button")) {
    if (!button.getClientRects().length) continue;
    const box = button.getBoundingClientRect();
    const card = button.closest("section").getBoundingClientRect();
    if (box.left < card.left - 0.5 || box.right > card.right + 0.5) {
      found.push(`${button.textContent.trim()} [${box.left}, ${box.right}] outside ` +
                 `[${card.left}, ${card.right}]`);
    }
  }
  return found;
}"""

OVERFLOW = """() => {
  const found = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    found.push(`page ${doc.scrollWidth} > ${window.innerWidth}`);
  }
  const describe = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
    (e.className && typeof e.className === "string" ? "." + e.className.split(" ").join(".") : "");
  for (const card of document.querySelectorAll("header, main > section, main .col > section")) {
    const box = card.getBoundingClientRect();
    for (const e of card.querySelectorAll("*")) {
      if (!e.getClientRects().length) continue;
      let clipped = false;
      for (let p = e.parentElement; p && p !== card; p = p.parentElement) {
        if (getComputedStyle(p).overflowX !== "visible") { clipped = true; break; }
      }
      const style = getComputedStyle(e);
      if (["auto", "scroll"].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1) {
        found.push(`${describe(e)} scrolls sideways (${e.scrollWidth} > ${e.clientWidth})`);
      }
      if (clipped) continue;
      const r = e.getBoundingClientRect();
      if (r.right > box.right + 0.5 || r.left < box.left - 0.5) {
        found.push(`${describe(e)} [${Math.round(r.left)}, ${Math.round(r.right)}] outside ` +
                   `${describe(card)} [${Math.round(box.left)}, ${Math.round(box.right)}]`);
      }
    }
  }
  return found;
}"""


def _prompt(words: int) -> str:
    """A prompt the embedded server echoes back: ``words`` tokens to stream."""
    return " ".join(f"word{i}" for i in range(words))


class TestTheWatch:
    def test_console_errors_and_failed_requests_are_caught(self, observer: Observer) -> None:
        """The check every test ends with can fail: a console error and a 404 are reported."""
        observer.eval("() => { console.error('on purpose'); return fetch('/nowhere'); }")
        for _ in range(100):  # the page's events reach the test while Playwright waits
            if len(observer.problems) >= 2:
                break
            observer.page.wait_for_timeout(50)
        assert "console error: on purpose" in observer.problems
        assert any(p.startswith("HTTP 404: GET ") for p in observer.problems)
        observer.problems.clear()  # caused on purpose

    def test_the_page_asks_for_no_favicon(self, observer: Observer) -> None:
        """Its icon is inline (no request, no 404 in the server's log)."""
        icon = observer.page.locator("link[rel=icon]")
        expect(icon).to_have_attribute("href", "data:,")


class TestTheTree:
    def test_the_page_shows_the_supervision_tree_and_the_daemon_health(
        self, observer: Observer
    ) -> None:
        """Every supervisor and actor of the daemon is on the tree, with its state, restarts and
        mailbox; the header says the daemon is up."""
        page = observer.page
        expect(page).to_have_title("streamvisor observer")
        tree = page.locator("#tree")
        for name in ("files", "background", "sessions", "agents"):
            node = tree.locator(f"li[data-name='{name}']")
            expect(node).to_have_count(1)
            expect(node.locator(":scope > .node-row .pill")).to_have_text("alive")
            expect(node.locator(":scope > .node-row .restarts")).to_contain_text("↻")
        expect(tree.locator("li[data-name='files'] > .node-row .mbox")).to_contain_text("✉")
        expect(page.locator("#tree-summary")).to_contain_text("supervisors")
        expect(page.locator("#health-dot")).to_have_class(re.compile(r"\bup\b"))
        expect(page.locator("#health-text")).to_contain_text("embedded API server")
        observer.assert_clean()

    def test_a_crashed_actor_is_restarted_and_the_tree_flashes_it_with_its_exit_reason(
        self, observer: Observer, running: GatewayThread
    ) -> None:
        """Killing the files actor with a crash: its node's restart count rises by one, it
        flashes, its last exit names the exception, and the restart is logged."""
        page = observer.page
        files = page.locator("#tree li[data-name='files']")
        expect(files).to_have_count(1)
        before = int(files.get_attribute("data-restarts") or "0")
        ref = running.run_sync(running.daemon.registry.whereis, "files")
        assert ref is not None
        running.run_sync(ref.kill, ExitReason.crashed(RuntimeError("observer test")))
        expect(files).to_have_attribute("data-restarts", str(before + 1))
        expect(files.locator(":scope > .node-row")).to_have_class(re.compile(r"\bflash\b"))
        expect(files.locator(":scope > .exit:not(.omitted)")).to_contain_text(
            "RuntimeError('observer test')"
        )
        expect(files.locator(":scope > .node-row .restarts")).to_have_attribute(
            "title", re.compile("RuntimeError")
        )
        expect(page.locator("#restart-log")).to_contain_text("files restarted")
        root = page.locator("#tree > li > .node-row .child-restarts")
        expect(root).to_contain_text(re.compile(r"children ↻ [1-9]"))
        expect(root).to_have_attribute("title", re.compile(r"crashed:RuntimeError \S[1-9]"))
        expect(files.locator(":scope > .node-row .pill")).to_have_text("alive")
        observer.assert_clean()


class TestSessions:
    def test_a_chat_streams_its_tokens_into_the_page_as_they_arrive(
        self, observer: Observer
    ) -> None:
        """A chat started from the form: the output grows token by token, the meter counts
        them, the session shows a live event rate and its current stream, then completed."""
        page = observer.page
        page.fill("#session", "chat1")
        page.select_option("#api", "chat")
        page.fill("#prompt", _prompt(300))
        # How the output grows: one length per change, as the page appends tokens.
        observer.eval(
            """() => { window.lengths = [];
              new MutationObserver(() => window.lengths.push(
                document.getElementById("output").textContent.length))
              .observe(document.getElementById("output"), {childList: true, characterData: true,
                                                           subtree: true}); }"""
        )
        page.click("#send")
        session = page.locator("#sessions [data-session='chat1']")
        expect(session).to_contain_text("chat · gpt-4o-mini")
        expect(session.locator(".rate")).to_have_text(re.compile(r"^[1-9][0-9.]* ev/s$"))
        expect(page.locator("#stream-state")).to_have_text("completed")
        lengths: list[int] = observer.eval("() => window.lengths")
        assert len(set(lengths)) > 10, lengths  # it grew step by step, not at once
        assert "word299" in page.inner_text("#output")
        assert int(page.inner_text("#m-tokens")) > 10
        expect(page.locator("#m-first")).to_have_text(re.compile(r"^\d+ ms$"))
        expect(page.locator("#m-stream")).to_have_text(re.compile(r"^stream-"))
        observer.assert_clean()

    def test_a_stream_is_stopped_from_the_page(self, observer: Observer) -> None:
        """Stop while tokens arrive: the stream ends cancelled and the session has none left."""
        page = observer.page
        page.fill("#session", "stopped")
        page.fill("#prompt", _prompt(400))
        page.click("#send")
        expect(page.locator("#stream-state")).to_have_text("streaming")
        page.click("#stop")
        expect(page.locator("#stream-state")).to_have_text("cancelled")
        expect(page.locator("#sessions [data-session='stopped']")).to_contain_text(
            "no stream running"
        )
        assert "word399" not in page.inner_text("#output")
        observer.assert_clean()

    def test_the_durable_box_is_offered_for_responses_only(self, observer: Observer) -> None:
        """Durable streams are a Responses feature: Chat does not show the box."""
        page = observer.page
        page.select_option("#api", "chat")
        expect(page.locator("#durable")).to_be_hidden()
        page.select_option("#api", "responses")
        expect(page.locator("#durable")).to_be_visible()
        page.check("#durable")
        page.fill("#session", "durable1")
        page.fill("#prompt", "a durable one")
        page.click("#send")
        expect(page.locator("#stream-state")).to_have_text("completed")
        assert "durable" in page.inner_text("#output")
        observer.assert_clean()

    def test_the_send_button_is_reached_with_tab_and_pressed_with_enter(
        self, observer: Observer
    ) -> None:
        """Keyboard only: from the prompt, Tab reaches Send (with a visible focus ring) and
        Enter starts the stream."""
        page = observer.page
        page.fill("#session", "keys")
        page.focus("#prompt")
        page.keyboard.press("Tab")
        assert observer.eval("() => document.activeElement.id") == "send"
        outline = observer.eval("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        page.keyboard.press("Enter")
        expect(page.locator("#stream-state")).to_have_text("completed")
        expect(page.locator("#sessions [data-session='keys']")).to_have_count(1)
        assert page.inner_text("#output")
        observer.assert_clean()

    def test_the_live_lists_keep_the_keyboard_focus_across_polls(self, observer: Observer) -> None:
        """A focused button in the tree or a session row is still focused after the polls that
        refresh them, so Enter acts on it: collapse a supervisor, stop a session's stream."""
        page = observer.page
        page.fill("#session", "focus")
        page.fill("#prompt", _prompt(600))
        page.click("#send")
        worker = page.locator("#tree li[data-name='session.focus']")
        expect(worker).to_be_visible()
        toggle = page.get_by_role("button", name="collapse sessions")
        toggle.focus()
        page.wait_for_timeout(1500)  # at least one poll of /tree
        assert observer.eval("() => document.activeElement.getAttribute('aria-label')") == (
            "collapse sessions"
        )
        page.keyboard.press("Enter")
        expanded = page.get_by_role("button", name="expand sessions")
        expect(expanded).to_have_attribute("aria-expanded", "false")
        expect(worker).to_be_hidden()
        page.keyboard.press("Enter")
        expect(worker).to_be_visible()

        stop = page.get_by_role("button", name="stop the streams of session focus")
        expect(stop).to_be_enabled()
        stop.focus()
        page.wait_for_timeout(1500)  # at least one poll of /sessions
        assert observer.eval("() => document.activeElement.getAttribute('aria-label')") == (
            "stop the streams of session focus"
        )
        page.keyboard.press("Enter")
        expect(page.locator("#stream-state")).to_have_text("cancelled")
        observer.assert_clean()


class TestBackground:
    def _create(self, observer: Observer, text: str) -> tuple[Locator, str]:
        """Create a background response from the form; its row and id (from the answer)."""
        page = observer.page
        page.fill("#bg-input", text)
        with page.expect_response(
            lambda r: r.request.method == "POST" and r.url.endswith("/background")
        ) as created:
            page.click("#bg-create")
        response_id = str(created.value.json()["id"])
        row = page.locator(f"#bg-rows .bg[data-id='{response_id}']")
        expect(row).to_have_count(1)
        return row, response_id

    def test_background_work_is_created_cancelled_shown_and_kept_across_reloads(
        self, observer: Observer
    ) -> None:
        """A response cancelled while queued says so; one left alone completes and shows its
        output and the statuses it went through; a reload keeps both rows (the registry's
        finished records)."""
        page = observer.page
        cancelled, cancelled_id = self._create(observer, "cancel me")
        cancelled.get_by_role("button", name=re.compile("^cancel")).click()
        expect(cancelled.locator(".msg")).to_have_text("Cancelled.")
        expect(cancelled.locator(".pill")).to_have_text("cancelled")
        expect(cancelled.get_by_role("button", name=re.compile("^cancel"))).to_be_disabled()

        completed, completed_id = self._create(observer, "finish me please")
        expect(completed.locator(".pill")).to_have_text("completed")
        expect(completed.locator(".out")).to_contain_text("finish me please")
        expect(completed.locator(".history")).to_contain_text(re.compile("queued.*completed"))

        observer.reload()
        rows = page.locator("#bg-rows .bg")
        expect(rows.first).to_be_visible()
        expect(page.locator(f".bg[data-id='{cancelled_id}'] .pill")).to_have_text("cancelled")
        expect(page.locator(f".bg[data-id='{completed_id}'] .pill")).to_have_text("completed")
        ids = [rows.nth(i).get_attribute("data-id") for i in range(rows.count())]
        assert ids.index(completed_id) < ids.index(cancelled_id)  # newest first
        page.locator(f".bg[data-id='{completed_id}']").get_by_role(
            "button", name=re.compile("^show the output")
        ).click()
        expect(page.locator(f".bg[data-id='{completed_id}'] .out")).to_contain_text("finish me")
        observer.assert_clean()

    def test_a_cancel_that_loses_the_race_says_the_response_had_finished(
        self, observer: Observer, running: GatewayThread
    ) -> None:
        """The cancel reaches the daemon only after the response completed: the page says the
        cancel was too late instead of pretending it worked."""
        page = observer.page
        row, response_id = self._create(observer, "too quick to cancel")

        def finish_first(route: Route) -> None:
            async def status() -> str:
                record = await running.daemon.background.get(response_id)
                return str(record.status)

            wait_until(lambda: running.run(status) == "completed")
            route.continue_()

        page.route("**/background/*/cancel", finish_first)
        row.get_by_role("button", name=re.compile("^cancel")).click()
        expect(row.locator(".msg")).to_contain_text("Too late: it had already completed")
        expect(row.locator(".pill")).to_have_text("completed")
        observer.assert_clean()


class TestFiles:
    def test_files_are_uploaded_by_drag_and_drop_and_by_the_button_then_deleted(
        self, observer: Observer, running: GatewayThread
    ) -> None:
        """A file dropped on the zone and one chosen with the button are uploaded and listed;
        deleting one removes it from the page and from the daemon."""
        page = observer.page
        observer.eval(
            """() => {
              const data = new DataTransfer();
              data.items.add(new File(["dropped on the page\\n"], "dropped.txt",
                                      {type: "text/plain"}));
              const zone = document.getElementById("drop");
              for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                        cancelable: true}));
              }
            }"""
        )
        dropped = page.locator("#files .file", has_text="dropped.txt")
        expect(dropped).to_have_count(1)
        expect(page.locator("#file-msg")).to_contain_text("Uploaded dropped.txt")

        with page.expect_file_chooser() as chooser:
            page.click("#file-pick")
        chooser.value.set_files(
            files=[{"name": "picked.txt", "mimeType": "text/plain", "buffer": b"picked\n"}]
        )
        expect(page.locator("#files .file", has_text="picked.txt")).to_have_count(1)

        dropped.get_by_role("button", name="delete dropped.txt").click()
        expect(dropped).to_have_count(0)
        expect(page.locator("#file-msg")).to_have_text("Deleted dropped.txt.")
        names = [f["filename"] for f in running.run(running.daemon.files.list)]
        assert "picked.txt" in names
        assert "dropped.txt" not in names
        observer.assert_clean()


async def multiply(a: float, b: float) -> float:
    """Multiply two numbers (slowly: the page shows the call running)."""
    await trio.sleep(0.8)
    return a * b


class TestAgents:
    def test_an_agent_is_asked_from_the_page_and_its_tool_calls_show_as_they_run(
        self, observer: Observer, running: GatewayThread
    ) -> None:
        """An agent with a Python tool (opened by the program embedding the daemon) is asked
        from the page: its tool call shows while it runs, then its result and the reply."""
        page = observer.page
        running.run(
            functools.partial(running.daemon.open_agent, "calc", model=MODEL, tools=[multiply])
        )
        expect(page.locator("#agents [data-agent='calc']")).to_have_count(1)
        page.select_option("#agent-select", "calc")
        page.fill("#agent-text", "What is 12.5 multiplied by 4?")
        page.click("#agent-ask")
        turn = page.locator("#turns .turn").first
        expect(turn).to_contain_text("you → calc")
        expect(turn.locator(".tool")).to_contain_text("multiply(")
        expect(turn.locator(".tool")).to_contain_text("running")
        expect(turn.locator(".tool")).to_contain_text(re.compile(r"multiply\(.*\) → .* ms\)"))
        expect(turn.locator(".reply")).to_contain_text("calc:")
        expect(turn.locator(".hint")).to_contain_text("1 tool call")
        observer.assert_clean()

    def test_an_agent_is_opened_asked_and_closed_from_the_page(self, observer: Observer) -> None:
        """Open (no tools over HTTP), ask (the reply shows), close (it leaves the list)."""
        page = observer.page
        page.fill("#agent-id", "webagent")
        page.click("#agent-open")
        agent = page.locator("#agents [data-agent='webagent']")
        expect(agent).to_have_count(1)
        page.select_option("#agent-select", "webagent")
        page.fill("#agent-text", "hello agent")
        page.click("#agent-ask")
        expect(page.locator("#turns .turn").first.locator(".reply")).to_contain_text("hello agent")
        agent.get_by_role("button", name="close agent webagent").click()
        expect(agent).to_have_count(0)
        observer.assert_clean()


class TestEventInspector:
    def test_the_inspector_filters_by_pattern_pauses_and_shows_an_event_as_json(
        self, observer: Observer, running: GatewayThread
    ) -> None:
        """Subscribed to ``background.*``: a background response's statuses are listed; one
        opens as JSON; paused, new events are held (not listed) until resumed."""
        page = observer.page
        page.fill("#events-pattern", "background.*")
        page.click("#events-apply")
        expect(page.locator("#events-summary")).to_contain_text("subscribed to background.*")
        page.click("#events-clear")

        def create(text: str) -> str:
            create = functools.partial(running.daemon.background.create, text, MODEL)
            return str(running.run(create).response_id)

        first = create("for the inspector")
        rows = page.locator("#events li")
        expect(rows.filter(has_text=first)).not_to_have_count(0)
        assert rows.filter(has_text=re.compile("^(?!.*background.status)")).count() == 0
        rows.filter(has_text=first).first.get_by_role("button").click()
        expect(page.locator("#event-json")).to_contain_text("event: background.status")
        expect(page.locator("#event-json")).to_contain_text(f'"response_id": "{first}"')

        page.click("#events-pause")
        expect(page.locator("#events-pause")).to_have_attribute("aria-pressed", "true")
        listed = rows.count()
        second = create("while paused")
        expect(page.locator("#events-summary")).to_contain_text(
            re.compile(r"paused, [1-9]\d* held")
        )
        assert rows.filter(has_text=second).count() == 0
        assert rows.count() == listed
        page.click("#events-pause")
        expect(rows.filter(has_text=second)).not_to_have_count(0)

        page.fill("#events-pattern", "not..a pattern")
        page.click("#events-apply")
        expect(page.locator("#events-error")).to_contain_text("not a topic pattern")
        observer.assert_clean()


class TestLayout:
    @pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1280px", "390px"])
    def test_nothing_overflows_its_card(
        self, observer: Observer, running: GatewayThread, viewport: dict[str, int]
    ) -> None:
        """With everything in use and long ids everywhere (a 124-character session that
        crashed with a long reason, a long file name, background rows, an agent's tool calls,
        events), neither the page nor any card overflows sideways, and every button is inside
        its card. The screenshot of the 1,280 px page is the README's."""
        page = observer.page
        width = viewport["width"]
        page.set_viewport_size(viewport)
        long_session = f"s{width}" + "-long" * 23 + "-end"
        agent = f"helper-{width}"
        open_agent = functools.partial(
            running.daemon.open_agent, agent, model=MODEL, tools=[multiply]
        )
        running.run(open_agent)

        page.fill("#session", long_session)
        page.fill("#prompt", _prompt(60))
        page.click("#send")
        expect(page.locator("#stream-state")).to_have_text("completed")
        worker = running.run_sync(running.daemon.registry.whereis, f"session.{long_session}")
        reason = RuntimeError("a crash with a long reason: " + "very " * 40 + "long")
        running.run_sync(worker.kill, ExitReason.crashed(reason))
        node = page.locator(f"#tree li[data-name='session.{long_session}']")
        expect(node).to_have_attribute("data-restarts", "1")
        expect(page.locator("#restart-log")).to_contain_text("restarted")

        page.fill("#bg-input", "a row with a long id")
        page.click("#bg-create")
        page.set_input_files(
            "#file-input",
            files=[
                {
                    "name": "a-rather-long-file-name-" * 6 + ".txt",
                    "mimeType": "text/plain",
                    "buffer": b"long\n",
                }
            ],
        )
        expect(page.locator("#files .file", has_text="a-rather-long")).not_to_have_count(0)
        expect(page.locator(f"#sessions [data-session='{long_session}']")).to_have_count(1)
        expect(page.locator(f"#agents [data-agent='{agent}']")).to_have_count(1)
        page.select_option("#agent-select", agent)
        page.fill("#agent-text", "What is 12.5 multiplied by 4?")
        page.click("#agent-ask")
        expect(page.locator("#turns .turn").first.locator(".reply")).to_be_visible()
        page.locator("#events li button").first.click()

        assert observer.eval(OVERFLOW) == []
        # Every visible button inside its card, read in one go (the page re-renders its lists
        # as it polls: locators taken one by one would go stale between two reads).
        assert observer.eval(BUTTONS_OUTSIDE) == []

        # Live: a stream running while the picture is taken.
        page.fill("#session", "live")
        page.fill("#prompt", _prompt(300))
        page.click("#send")
        expect(page.locator("#sessions [data-session='live'] .rate")).to_have_text(
            re.compile(r"^[1-9][0-9.]* ev/s$")
        )
        assert observer.eval(OVERFLOW) == []
        observer.screenshot(f"observer-{width}px")
        expect(page.locator("#stream-state")).to_have_text("completed")
        observer.assert_clean()
