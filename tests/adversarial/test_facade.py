"""Every method of the Python facade, fed generated bad input, refuses it with a typed error.

The allowed answers (judged by `expect_refused`, which also requires that streamvisor's own code
raised it -- not ``json.dumps`` or the ``re`` module deep inside):

* a **malformed** id, parameter, pattern or option: ``ValueError`` or ``TypeError`` (a wrong
  Python type), never a ``LookupError`` (a malformed id is not "unknown"); a file *path* may
  also be refused with the file-access errors (``OSError``: outside the roots, missing, ...);
  and nothing is sent to the upstream API;
* a **well-formed id that names nothing**: ``LookupError`` (``ResponseGone``, ``UnknownStream``,
  ``NotFoundError``, ...).

Every probe also asserts that no actor crashed or restarted (`RunningDaemon.watch`); after each
test the daemon must answer ``/health`` and complete a chat stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from . import _inputs as bad
from ._inputs import Bad
from .conftest import (
    ADVERSARIAL,
    ALLOWED_FOR_PATHS,
    ALLOWED_FOR_UNKNOWN,
    HELLO,
    MODEL,
    RunningDaemon,
    facade_refuses,
)

#: The parameters a bad value is put in (create parameters the API takes).
CHAT_PARAMS = ("temperature", "top_p", "max_completion_tokens", "metadata", "tools", "stop")
RESPONSES_PARAMS = ("temperature", "top_p", "max_output_tokens", "metadata", "tools", "text")
#: Where a bad value goes in a request: the model, the messages/input, an API parameter, or
#: deep inside a message.
SLOTS = st.sampled_from(("model", "payload", "param", "content"))


def _slot_call(
    slot: str, value: Any, param: str, payload: Any
) -> tuple[str, Any, Any, dict[str, Any]]:
    """(what, model, payload, params) with ``value`` in ``slot``."""
    if slot == "model":
        return "model", value, payload, {}
    if slot == "payload":
        return "messages/input", MODEL, value, {}
    if slot == "content":
        return "content", MODEL, [{"role": "user", "content": value}], {}
    return param, MODEL, payload, {param: value}


def _slot_values(slot: str) -> st.SearchStrategy[Bad]:
    if slot == "model":
        return st.one_of(st.sampled_from(bad.WRONG_TYPES[:-3]), st.sampled_from(bad.HUGE))
    return bad.json_params()


class TestSessions:
    def test_open_session_refuses_a_malformed_id(self, daemon_under_test: RunningDaemon) -> None:
        """``open_session(id)``: control characters, traversal, dots, a trailing newline..."""
        running = daemon_under_test

        @ADVERSARIAL
        @given(bad.malformed_ids("s"))
        def example(session_id: Bad) -> None:
            value = session_id.make()
            facade_refuses(
                running,
                f"open_session({session_id!r})",
                lambda: running.daemon.open_session(value),
            )

        example()

    def test_session_lookup_and_close_refuse_a_malformed_id(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        """``session(id)`` and ``close_session(id)`` validate the id like ``open_session``."""
        running = daemon_under_test

        async def lookup(value: Any) -> Any:
            return running.daemon.session(value)

        @ADVERSARIAL
        @given(bad.malformed_ids("s"), st.booleans())
        def example(session_id: Bad, close: bool) -> None:
            value = session_id.make()
            if close:
                call: Callable[[], Any] = lambda: running.daemon.close_session(value)  # noqa: E731
            else:
                call = lambda: lookup(value)  # noqa: E731
            name = "close_session" if close else "session"
            facade_refuses(running, f"{name}({session_id!r})", call)

        example()

    def test_chat_refuses_a_bad_model_message_or_parameter(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        """``session.chat``: NaN, 1e999, deep nesting, huge text, objects with no JSON form."""
        running = daemon_under_test
        session = running.run(running.daemon.open_session, "adv-chat")

        @ADVERSARIAL
        @given(st.data(), SLOTS, st.sampled_from(CHAT_PARAMS))
        def example(data: st.DataObject, slot: str, param: str) -> None:
            value = data.draw(_slot_values(slot), label="value")
            where, model, messages, params = _slot_call(slot, value.make(), param, HELLO)
            facade_refuses(
                running,
                f"chat with {where} = {value!r}",
                lambda: session.chat(model, messages, **params),
            )

        example()

    def test_respond_refuses_a_bad_model_input_or_parameter(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        """``session.respond`` (durable and not): the same bad values, plus a bad ``durable``."""
        running = daemon_under_test
        session = running.run(running.daemon.open_session, "adv-respond")

        @ADVERSARIAL
        @given(st.data(), SLOTS, st.sampled_from(RESPONSES_PARAMS), st.sampled_from([None, False]))
        def example(data: st.DataObject, slot: str, param: str, durable: bool | None) -> None:
            value = data.draw(_slot_values(slot), label="value")
            where, model, input_, params = _slot_call(slot, value.make(), param, "Hello")
            facade_refuses(
                running,
                f"respond(durable={durable}) with {where} = {value!r}",
                lambda: session.respond(model, input_, durable=durable, **params),
            )

        example()

    def test_respond_refuses_a_durable_flag_that_is_not_a_bool(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        session = running.run(running.daemon.open_session, "adv-durable")
        not_bools = [b for b in bad.WRONG_TYPES[1:] if b.label != "True"]

        @ADVERSARIAL
        @given(st.sampled_from([*not_bools, *bad.NON_FINITE]))
        def example(durable: Bad) -> None:
            value = durable.make()
            facade_refuses(
                running,
                f"respond(durable={durable!r})",
                lambda: session.respond(MODEL, "Hello", durable=value),
            )

        example()

    def test_stop_and_wait_refuse_a_malformed_stream_id_or_timeout(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        session = running.run(running.daemon.open_session, "adv-stop")
        bad_timeouts = st.sampled_from(
            [Bad(repr(t), lambda t=t: t) for t in (math.nan, -1.0, "1", b"1", [1])]
        )

        @ADVERSARIAL
        @given(
            st.one_of(
                st.tuples(st.just("stop"), bad.malformed_ids("stream-")),
                st.tuples(st.just("wait"), bad.malformed_ids("stream-")),
                st.tuples(st.just("wait timeout"), bad_timeouts),
            )
        )
        def example(case: tuple[str, Bad]) -> None:
            method, value = case
            made = value.make()
            if method == "stop":
                call: Callable[[], Any] = lambda: session.stop(made)  # noqa: E731
            elif method == "wait":
                call = lambda: session.wait(made, timeout=1)  # noqa: E731
            else:
                call = lambda: session.wait("stream-000000000000", timeout=made)  # noqa: E731
            facade_refuses(running, f"{method}({value!r})", call)

        example()

    def test_stop_and_wait_answer_an_unknown_stream_with_a_lookup_error(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        session = running.run(running.daemon.open_session, "adv-unknown")

        @ADVERSARIAL
        @given(bad.unknown_ids("stream"), st.booleans())
        def example(stream_id: str, stop: bool) -> None:
            call = (lambda: session.stop(stream_id)) if stop else (lambda: session.wait(stream_id))
            what = f"{'stop' if stop else 'wait'}({stream_id!r})"
            facade_refuses(running, what, call, ALLOWED_FOR_UNKNOWN)

        example()


class TestBackground:
    def test_create_refuses_a_bad_input_model_owner_or_parameter(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        background = running.daemon.background

        @ADVERSARIAL
        @given(st.data(), st.sampled_from(("model", "payload", "param", "content", "owner")))
        def example(data: st.DataObject, slot: str) -> None:
            if slot == "owner":
                owner = data.draw(bad.malformed_ids("s"), label="owner")
                made = owner.make()
                facade_refuses(
                    running,
                    f"background.create(owner={owner!r})",
                    lambda: background.create("Hello", MODEL, owner=made),
                )
                return
            value = data.draw(_slot_values(slot), label="value")
            param = data.draw(st.sampled_from(RESPONSES_PARAMS), label="param")
            where, model, input_, params = _slot_call(slot, value.make(), param, "Hello")
            facade_refuses(
                running,
                f"background.create with {where} = {value!r}",
                lambda: background.create(input_, model, **params),
            )

        example()

    def test_poll_cancel_and_get_refuse_a_malformed_id(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        """``poll``/``cancel``/``get``: ``../files``, ``resp_1\\n``, ``\\x00``, ``%01``, ..."""
        running = daemon_under_test
        background = running.daemon.background

        @ADVERSARIAL
        @given(st.sampled_from(("poll", "cancel", "get")), bad.malformed_ids("resp_"))
        def example(method: str, response_id: Bad) -> None:
            value = response_id.make()
            call = getattr(background, method)
            facade_refuses(running, f"background.{method}({response_id!r})", lambda: call(value))

        example()

    def test_poll_cancel_and_get_answer_an_unknown_id_with_a_lookup_error(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        background = running.daemon.background

        @ADVERSARIAL
        @given(st.sampled_from(("poll", "cancel", "get")), bad.unknown_ids("response"))
        def example(method: str, response_id: str) -> None:
            call = getattr(background, method)
            facade_refuses(
                running,
                f"background.{method}({response_id!r})",
                lambda: call(response_id),
                ALLOWED_FOR_UNKNOWN,
                upstream=True,
            )

        example()

    def test_stream_refuses_a_malformed_id_or_cursor(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        background = running.daemon.background
        cursors = st.sampled_from(
            [Bad(repr(c), lambda c=c: c) for c in (-1, math.nan, "1", 2**70, True, 1.5)]
        )

        async def open_stream(response_id: Any, starting_after: Any) -> None:
            async with background.stream(response_id, starting_after):
                pass

        @ADVERSARIAL
        @given(
            st.one_of(
                st.tuples(bad.malformed_ids("resp_"), st.just(Bad("None", lambda: None))),
                st.tuples(st.just(Bad("'resp_' + '0' * 48", lambda: "resp_" + "0" * 48)), cursors),
            )
        )
        def example(case: tuple[Bad, Bad]) -> None:
            response_id, cursor = case
            rid, after = response_id.make(), cursor.make()
            facade_refuses(
                running,
                f"background.stream({response_id!r}, starting_after={cursor!r})",
                lambda: open_stream(rid, after),
            )

        example()


class TestFiles:
    def test_retrieve_content_and_delete_refuse_a_malformed_id(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        files = running.daemon.files

        @ADVERSARIAL
        @given(st.sampled_from(("retrieve", "content", "delete")), bad.malformed_ids("file-"))
        def example(method: str, file_id: Bad) -> None:
            value = file_id.make()
            call = getattr(files, method)
            facade_refuses(running, f"files.{method}({file_id!r})", lambda: call(value))

        example()

    def test_retrieve_content_and_delete_answer_an_unknown_id_with_a_lookup_error(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        files = running.daemon.files

        @ADVERSARIAL
        @given(st.sampled_from(("retrieve", "content", "delete")), bad.unknown_ids("file"))
        def example(method: str, file_id: str) -> None:
            call = getattr(files, method)
            facade_refuses(
                running,
                f"files.{method}({file_id!r})",
                lambda: call(file_id),
                ALLOWED_FOR_UNKNOWN,
                upstream=True,
            )

        example()

    def test_list_refuses_a_malformed_purpose(self, daemon_under_test: RunningDaemon) -> None:
        running = daemon_under_test
        files = running.daemon.files

        @ADVERSARIAL
        @given(bad.malformed_ids("user_data").filter(lambda b: b.label != "None"))
        def example(purpose: Bad) -> None:
            value = purpose.make()
            facade_refuses(
                running, f"files.list(purpose={purpose!r})", lambda: files.list(purpose=value)
            )

        example()

    def test_upload_refuses_a_bad_source_purpose_or_name(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        """Paths outside the roots (traversal), NUL in a path, directories, wrong types; a bad
        purpose; a filename with a control character, NUL or a slash."""
        running = daemon_under_test
        files = running.daemon.files
        root = running.root
        paths = st.sampled_from(
            [
                Bad(repr(p), lambda p=p: p)
                for p in (
                    "../../../etc/passwd",
                    "/etc/passwd",
                    str(root / ".." / ".." / "etc" / "passwd"),
                    str(root / "a\x00b.txt"),
                    str(root),
                    str(root / "missing.txt"),
                    "",
                )
            ]
        )
        wrong_sources = st.sampled_from([b for b in bad.WRONG_TYPES if b.label != "b'abc'"])

        @ADVERSARIAL
        @given(
            st.one_of(
                st.tuples(st.just("path"), paths),
                st.tuples(st.just("source"), wrong_sources),
                st.tuples(st.just("purpose"), bad.malformed_ids("user_data")),
                st.tuples(st.just("filename"), bad.malformed_filenames()),
            )
        )
        def example(case: tuple[str, Bad]) -> None:
            slot, value = case
            made = value.make()
            if slot in ("path", "source"):
                call = lambda: files.upload(made)  # noqa: E731
            elif slot == "purpose":
                call = lambda: files.upload(b"hello", purpose=made)  # noqa: E731
            else:
                call = lambda: files.upload(b"hello", filename=made)  # noqa: E731
            allowed = ALLOWED_FOR_PATHS if slot == "path" else (ValueError, TypeError)
            facade_refuses(running, f"files.upload with {slot} = {value!r}", call, allowed)

        example()

    def test_image_and_file_inputs_refuse_bad_options(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        files = running.daemon.files
        options = st.sampled_from([Bad(repr(o), lambda o=o: o) for o in ("", "HIGH", "\x00", 1)])

        @ADVERSARIAL
        @given(st.sampled_from(("image detail", "image via", "file via")), options)
        def example(slot: str, option: Bad) -> None:
            made = option.make()
            if slot == "image detail":
                call = lambda: files.image_input(b"\x89PNG", detail=made)  # noqa: E731
            elif slot == "image via":
                call = lambda: files.image_input(b"\x89PNG", via=made)  # noqa: E731
            else:
                call = lambda: files.file_input(b"hello", via=made)  # noqa: E731
            facade_refuses(running, f"{slot} = {option!r}", call)

        example()

    def test_validate_input_refuses_a_bad_part(self, daemon_under_test: RunningDaemon) -> None:
        running = daemon_under_test
        files = running.daemon.files

        async def validate(part: Any, many: bool) -> Any:
            if many:
                return files.validate_inputs([{"role": "user", "content": [part]}])
            return files.validate_input(part)

        @ADVERSARIAL
        @given(
            st.one_of(
                bad.json_params(),
                bad.json_params().map(
                    lambda b: Bad(
                        f"{{'type': 'input_image', 'image_url': {b!r}}}",
                        lambda: {"type": "input_image", "image_url": b.make()},
                    )
                ),
            ),
            st.booleans(),
        )
        def example(part: Bad, many: bool) -> None:
            made = part.make()
            name = "validate_inputs" if many else "validate_input"
            facade_refuses(running, f"files.{name}({part!r})", lambda: validate(made, many))

        example()


class TestAgents:
    def test_open_agent_refuses_a_bad_id_or_definition(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test
        daemon = running.daemon
        slots = st.sampled_from(("id", "model", "api", "instructions", "options", "option"))

        @ADVERSARIAL
        @given(st.data(), slots)
        def example(data: st.DataObject, slot: str) -> None:
            kwargs: dict[str, Any] = {"model": MODEL}
            agent_id: Any = "adv-agent"
            if slot == "id":
                value = data.draw(bad.malformed_ids("a"), label="agent_id")
                agent_id = value.make()
            elif slot in ("model", "api", "instructions", "options"):
                wrong = [b for b in bad.WRONG_TYPES[1:] if not b.label.startswith("{")]
                value = data.draw(st.sampled_from([*wrong, *bad.HUGE]), label=slot)
                kwargs[slot] = value.make()
            else:
                value = data.draw(bad.json_params(), label="option")
                kwargs["options"] = {"temperature": value.make()}
            facade_refuses(
                running,
                f"open_agent with {slot} = {value!r}",
                lambda: daemon.open_agent(agent_id, **kwargs),
            )

        example()

    def test_agent_lookup_and_close_refuse_a_malformed_id(
        self, daemon_under_test: RunningDaemon
    ) -> None:
        running = daemon_under_test

        async def lookup(value: Any) -> Any:
            return running.daemon.agent(value)

        @ADVERSARIAL
        @given(bad.malformed_ids("a"), st.booleans())
        def example(agent_id: Bad, close: bool) -> None:
            value = agent_id.make()
            if close:
                call: Callable[[], Any] = lambda: running.daemon.close_agent(value)  # noqa: E731
            else:
                call = lambda: lookup(value)  # noqa: E731
            name = "close_agent" if close else "agent"
            facade_refuses(running, f"{name}({agent_id!r})", call)

        example()

    def test_ask_refuses_bad_text_or_timeout(self, daemon_under_test: RunningDaemon) -> None:
        running = daemon_under_test
        agent = running.run(lambda: running.daemon.open_agent("adv-ask", model=MODEL))
        texts = st.sampled_from([*bad.WRONG_TYPES, *bad.HUGE, *bad.NOT_JSON[-2:-1]])
        timeouts = st.sampled_from([Bad(repr(t), lambda t=t: t) for t in (math.nan, -1, "1")])

        @ADVERSARIAL
        @given(
            st.one_of(st.tuples(st.just("text"), texts), st.tuples(st.just("timeout"), timeouts))
        )
        def example(case: tuple[str, Bad]) -> None:
            slot, value = case
            made = value.make()
            if slot == "text":
                call = lambda: agent.ask(made)  # noqa: E731
            else:
                call = lambda: agent.ask("Hello", timeout=made)  # noqa: E731
            facade_refuses(running, f"ask with {slot} = {value!r}", call)

        example()


class TestSubscribe:
    def test_subscribe_refuses_a_malformed_pattern(self, daemon_under_test: RunningDaemon) -> None:
        """NUL, spaces, newlines, empty segments, misplaced wildcards."""
        running = daemon_under_test

        async def subscribe(pattern: Any) -> None:
            async with running.daemon.subscribe(pattern):
                pass

        @ADVERSARIAL
        @given(
            st.one_of(
                bad.bad_topics().map(lambda t: Bad(repr(t), lambda: t)),
                st.sampled_from(bad.WRONG_TYPES),
            )
        )
        def example(pattern: Bad) -> None:
            made = pattern.make()
            facade_refuses(running, f"subscribe({pattern!r})", lambda: subscribe(made))

        example()
