"""Through the gateway's ``/v1`` every SDK helper returns what the embedded server itself returns
(ids, timestamps and per-run padding aside): the daemon in between is invisible."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from streamvisor import _samples
from streamvisor.testing import GatewayThread

from ._sdk import (
    DIRECT_KEY,
    FLAVOURS,
    ChatHelper,
    ChatRaw,
    Flavour,
    Observed,
    ResponsesHelper,
    ResponsesRaw,
    ResponsesReplay,
    assert_same,
    normalise,
    observe,
    scenario,
    wait_until,
    wire,
)

MODEL = "gpt-4o"
HELLO = [{"role": "user", "content": "hello there"}]
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_capital",
        "parameters": {
            "type": "object",
            "properties": {"country": {"type": "string"}},
            "required": ["country"],
        },
    },
}
RESPONSES_TOOL = {"type": "function", "name": "get_capital", **CHAT_TOOL["function"]}  # type: ignore[dict-item]
TERMINAL = ("completed", "failed", "incomplete", "cancelled")
#: A background request that asks to be stored: the daemon stores every background response
#: (``TestStore`` holds what a client that did not ask should see).
BACKGROUND: dict[str, Any] = {"background": True, "store": True}


def both(
    running: GatewayThread, flavour: Flavour, scenario_: Any, *args: Any, **kwargs: Any
) -> tuple[Observed, Observed]:
    """The same scenario against the embedded server, then through the gateway."""
    direct = observe(flavour, running.upstream_url, DIRECT_KEY, scenario_, *args, **kwargs)
    through = observe(flavour, running.v1_url, running.token, scenario_, *args, **kwargs)
    return direct, through


def settled(client: openai.OpenAI, response_id: str) -> Any:
    """Poll ``responses.retrieve`` until the response is terminal; return it."""

    def terminal() -> Any:
        response = client.responses.retrieve(response_id)
        return response if response.status in TERMINAL else None

    return wait_until(terminal, f"{response_id} reaches a terminal status")


def raised(call: Any) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("flavour", FLAVOURS)
class TestChatCompletionStreams:
    def test_a_stream_with_include_usage_ends_with_the_servers_usage_chunk(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """Asked for usage, the stream's chunks (usage chunk last) are the server's own."""
        direct, through = both(
            running,
            flavour,
            ChatRaw,
            model=MODEL,
            messages=HELLO,
            stream_options={"include_usage": True},
        )
        assert_same(through.normalised(), direct.normalised())
        assert through.events[-1]["choices"] == []
        assert through.events[-1]["usage"]["completion_tokens"] > 0
        assert "".join(
            c["choices"][0]["delta"].get("content") or "" for c in through.events[:-1]
        ) == ("You said: hello there")

    def test_a_stream_without_include_usage_has_no_usage_chunk(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """Not asked for usage, no chunk carries it, as from the server itself."""
        direct, through = both(running, flavour, ChatRaw, model=MODEL, messages=HELLO)
        assert_same(through.normalised(), direct.normalised())
        assert all(chunk.get("usage") is None for chunk in through.events)
        assert all(chunk["choices"] for chunk in through.events)

    def test_streamed_tool_calls_carry_their_arguments(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """A streamed tool call arrives in the same fragments, its arguments whole JSON."""
        direct, through = both(
            running,
            flavour,
            ChatRaw,
            model=MODEL,
            messages=HELLO,
            tools=[CHAT_TOOL],
            **scenario("tools"),
        )
        assert_same(through.normalised(), direct.normalised())
        fragments = [
            call["function"].get("arguments") or ""
            for chunk in through.events
            for choice in chunk["choices"]
            for call in choice["delta"].get("tool_calls") or []
        ]
        assert json.loads("".join(fragments)) == {"country": "sample country"}
        assert through.events[-1]["choices"][0]["finish_reason"] == "tool_calls"

    def test_a_streamed_refusal_arrives_as_refusal_deltas(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """A refusal streams as ``delta.refusal`` fragments, never as content."""
        direct, through = both(
            running, flavour, ChatRaw, model=MODEL, messages=HELLO, **scenario("refusal")
        )
        assert_same(through.normalised(), direct.normalised())
        deltas = [c["choices"][0]["delta"] for c in through.events if c["choices"]]
        assert "".join(d.get("refusal") or "" for d in deltas).startswith("I'm sorry")
        assert not "".join(d.get("content") or "" for d in deltas)

    def test_the_stream_helper_builds_the_same_final_completion(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """``chat.completions.stream`` yields the same events and final completion."""
        direct, through = both(running, flavour, ChatHelper, model=MODEL, messages=HELLO)
        assert_same(through.normalised(), direct.normalised())
        assert through.text == "You said: hello there"
        assert through.final is not None
        assert through.final["choices"][0]["finish_reason"] == "stop"


class TestObfuscation:
    @pytest.mark.parametrize(
        ("scenario_", "kwargs"),
        [
            pytest.param(ChatRaw, {"messages": HELLO}, id="chat"),
            pytest.param(ResponsesRaw, {"input": "hello there"}, id="responses"),
        ],
    )
    def test_deltas_keep_their_padding_unless_the_client_opts_out(
        self, running: GatewayThread, scenario_: Any, kwargs: dict[str, Any]
    ) -> None:
        """Content deltas carry ``obfuscation`` padding through the gateway as they do directly."""
        direct, through = both(running, "sync", scenario_, model=MODEL, **kwargs)
        padded = [i for i, e in enumerate(direct.events) if "obfuscation" in e]
        assert padded
        kept = [i for i, e in enumerate(through.events) if "obfuscation" in e]
        assert kept == padded, f"padded events: {kept} through the gateway, {padded} directly"


class TestChatCompletions:
    def test_a_completion_is_the_servers_own(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``stream: false`` answers the server's chat.completion, usage included."""
        direct = upstream.chat.completions.create(model=MODEL, messages=HELLO)
        through = gateway.chat.completions.create(model=MODEL, messages=HELLO)
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        assert through.choices[0].message.content == "You said: hello there"
        assert through.usage is not None
        assert through.usage.total_tokens > 0

    def test_tool_calls_come_with_their_arguments(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """A tools scenario answers tool_calls whose arguments are the server's JSON."""
        kwargs: dict[str, Any] = {"model": MODEL, "messages": HELLO, "tools": [CHAT_TOOL]}
        direct = upstream.chat.completions.create(**kwargs, **scenario("tools"))
        through = gateway.chat.completions.create(**kwargs, **scenario("tools"))
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        calls = through.choices[0].message.tool_calls
        assert calls is not None
        assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
            ("get_capital", {"country": "sample country"})
        ]

    def test_a_refusal_is_relayed_as_a_refusal(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """A refusal arrives in ``message.refusal`` with no content, as the server sent it."""
        direct = upstream.chat.completions.create(
            model=MODEL, messages=HELLO, **scenario("refusal")
        )
        through = gateway.chat.completions.create(
            model=MODEL, messages=HELLO, **scenario("refusal")
        )
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        assert through.choices[0].message.content is None
        assert through.choices[0].message.refusal


@pytest.mark.parametrize("flavour", FLAVOURS)
class TestResponseStreams:
    @pytest.mark.parametrize("name", ["echo", "long:40", "tools", "reasoning", "refusal"])
    def test_raw_events_are_the_servers_own(
        self, running: GatewayThread, flavour: Flavour, name: str
    ) -> None:
        """``responses.create(stream=True)`` yields the server's events: the same types, the same
        sequence numbers, the same deltas."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hello there", **scenario(name)}
        if name == "tools":
            kwargs["tools"] = [RESPONSES_TOOL]
        if name == "reasoning":
            kwargs["model"] = "o4-mini"
        direct, through = both(running, flavour, ResponsesRaw, **kwargs)
        assert through.types == direct.types
        assert through.sequence_numbers == list(range(len(direct.events)))
        assert through.deltas() == direct.deltas()
        assert_same(through.normalised(), direct.normalised())
        assert through.types[-1] == "response.completed"

    def test_the_stream_helper_builds_the_same_final_response(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """``responses.stream`` yields the same events, final response and ``output_text``."""
        direct, through = both(
            running, flavour, ResponsesHelper, model=MODEL, input="hi", **scenario("long:30")
        )
        assert_same(through.normalised(), direct.normalised())
        assert through.text == direct.text
        assert through.text is not None
        assert len(through.text.split()) == 30
        assert through.final is not None
        assert through.final["status"] == "completed"


class TestResponses:
    @pytest.mark.parametrize("name", ["echo", "tools", "refusal"])
    def test_a_response_is_the_servers_own(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI, name: str
    ) -> None:
        """``stream: false`` answers the server's Response, ``output_text`` and usage included."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hello there", **scenario(name)}
        if name == "tools":
            kwargs["tools"] = [RESPONSES_TOOL]
        direct = upstream.responses.create(**kwargs)
        through = gateway.responses.create(**kwargs)
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        assert through.status == "completed"
        assert through.output
        assert through.usage is not None


class TestStore:
    def test_a_background_response_not_asked_to_be_stored_says_what_the_server_says(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``background=True`` without ``store`` answers the server's own ``store`` value."""
        direct = upstream.responses.create(model=MODEL, input="hi", background=True)
        through = gateway.responses.create(model=MODEL, input="hi", background=True)
        assert (through.background, through.store) == (True, direct.store)
        assert_same(normalise(wire(through)), normalise(wire(direct)))


class TestBackgroundResponses:
    @pytest.mark.parametrize("flavour", FLAVOURS)
    def test_a_background_stream_is_sent_as_the_api_sends_it(
        self, running: GatewayThread, flavour: Flavour
    ) -> None:
        """Asked ``background`` and ``stream``, the client gets the API's stream, queued and all."""
        direct, through = both(
            running,
            flavour,
            ResponsesRaw,
            model=MODEL,
            input="hi",
            **BACKGROUND,
            **scenario("long:10"),
        )
        assert_same(through.normalised(), direct.normalised())
        assert through.types[:3] == ["response.created", "response.queued", "response.in_progress"]
        assert through.events[0]["response"]["background"] is True

    def test_a_background_response_is_polled_to_the_same_end(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``background=True`` answers a queued Response; polling it ends as the server's does."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hi", **BACKGROUND}
        direct = upstream.responses.create(**kwargs, **scenario("long:20"))
        through = gateway.responses.create(**kwargs, **scenario("long:20"))
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        assert through.status == "queued"
        assert through.background is True
        direct_end, through_end = settled(upstream, direct.id), settled(gateway, through.id)
        assert_same(normalise(wire(through_end)), normalise(wire(direct_end)))
        assert through_end.status == "completed"
        assert len(through_end.output_text.split()) == 20

    def test_cancel_stops_a_running_response_as_the_server_does(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``responses.cancel`` of a running response answers it cancelled."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hi", **BACKGROUND}
        stalled = scenario("long:20", mock_stall_ms="10000")
        direct = upstream.responses.create(**kwargs, **stalled)
        through = gateway.responses.create(**kwargs, **stalled)
        direct_cancelled = upstream.responses.cancel(direct.id)
        through_cancelled = gateway.responses.cancel(through.id)
        assert_same(normalise(wire(through_cancelled)), normalise(wire(direct_cancelled)))
        assert through_cancelled.status == "cancelled"
        assert upstream.responses.retrieve(through.id).status == "cancelled"

    def test_delete_removes_the_response(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``responses.delete`` removes it upstream: retrieving it is then a NotFoundError."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hi", **BACKGROUND}
        direct = settled(upstream, upstream.responses.create(**kwargs).id)
        through = settled(gateway, gateway.responses.create(**kwargs).id)
        assert upstream.responses.delete(direct.id) is None
        assert gateway.responses.delete(through.id) is None
        direct_gone = raised(lambda: upstream.responses.retrieve(direct.id))
        through_gone = raised(lambda: gateway.responses.retrieve(through.id))
        assert isinstance(through_gone, openai.NotFoundError)
        assert_same(normalise(through_gone.body), normalise(direct_gone.body))
        assert isinstance(
            raised(lambda: upstream.responses.retrieve(through.id)), openai.NotFoundError
        )


@pytest.mark.parametrize("flavour", FLAVOURS)
class TestResumingAStoredResponse:
    @pytest.fixture
    def finished(self, gateway: openai.OpenAI, upstream: openai.OpenAI) -> tuple[str, str]:
        """A finished background ``long:25`` response on each side: (direct id, gateway id)."""
        kwargs: dict[str, Any] = {"model": MODEL, "input": "hi", **BACKGROUND}
        direct = upstream.responses.create(**kwargs, **scenario("long:25"))
        through = gateway.responses.create(**kwargs, **scenario("long:25"))
        return settled(upstream, direct.id).id, settled(gateway, through.id).id

    @pytest.mark.parametrize("after", [0, 5, 17])
    def test_retrieve_stream_yields_only_the_events_after_n(
        self, running: GatewayThread, flavour: Flavour, finished: tuple[str, str], after: int
    ) -> None:
        """``retrieve(id, stream=True, starting_after=N)`` yields the server's events after N."""
        direct_id, through_id = finished
        direct = observe(
            flavour,
            running.upstream_url,
            DIRECT_KEY,
            ResponsesReplay,
            direct_id,
            starting_after=after,
        )
        through = observe(
            flavour,
            running.v1_url,
            running.token,
            ResponsesReplay,
            through_id,
            starting_after=after,
        )
        assert_same(through.normalised(), direct.normalised())
        assert through.sequence_numbers[0] == after + 1
        assert through.sequence_numbers == list(range(after + 1, after + 1 + len(through.events)))
        assert through.types[-1] == "response.completed"

    def test_the_stream_helper_resumes_by_response_id(
        self, running: GatewayThread, flavour: Flavour, finished: tuple[str, str]
    ) -> None:
        """``responses.stream(response_id=id)`` builds the same final response and text."""
        direct_id, through_id = finished
        direct = observe(
            flavour, running.upstream_url, DIRECT_KEY, ResponsesHelper, response_id=direct_id
        )
        through = observe(
            flavour, running.v1_url, running.token, ResponsesHelper, response_id=through_id
        )
        assert_same(through.normalised(), direct.normalised())
        assert through.types[0] == "response.created"
        assert through.text is not None
        assert len(through.text.split()) == 25


class TestFiles:
    def test_an_uploaded_png_is_listed_retrieved_read_and_deleted(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """A PNG uploaded through the gateway is the server's file in every files call."""
        png = _samples.png(8, 8)
        created = gateway.files.create(file=("pixel.png", png, "image/png"), purpose="vision")
        assert created.filename == "pixel.png"
        assert created.bytes == len(png)
        assert created.purpose == "vision"
        assert wire(upstream.files.retrieve(created.id)) == wire(created)
        assert wire(gateway.files.retrieve(created.id)) == wire(created)
        assert wire(gateway.files.list().data) == wire(upstream.files.list().data)
        assert created.id in [f.id for f in gateway.files.list(purpose="vision")]
        assert gateway.files.content(created.id).content == png
        deleted = gateway.files.delete(created.id)
        assert (deleted.id, deleted.deleted) == (created.id, True)
        assert isinstance(raised(lambda: upstream.files.retrieve(created.id)), openai.NotFoundError)
        assert isinstance(raised(lambda: gateway.files.retrieve(created.id)), openai.NotFoundError)

    def test_the_same_upload_directly_and_through_the_gateway_is_the_same_file(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """Uploading the same PNG either way gives the same FileObject (ids aside)."""
        png = _samples.png(3, 5)
        direct = upstream.files.create(file=("pic.png", png, "image/png"), purpose="vision")
        through = gateway.files.create(file=("pic.png", png, "image/png"), purpose="vision")
        assert_same(normalise(wire(through)), normalise(wire(direct)))

    def test_a_file_that_is_not_what_its_name_says_is_a_bad_request_naming_the_rule(
        self, running: GatewayThread, gateway: openai.OpenAI
    ) -> None:
        """Bytes named ``.png`` that are text are refused (400, the rule named) and never sent."""
        before = len(running.mockapi.requests)
        with pytest.raises(openai.BadRequestError) as caught:
            gateway.files.create(
                file=("not-really.png", b"plain text, not a PNG", "image/png"), purpose="vision"
            )
        assert caught.value.status_code == 400
        assert "allowed_types" in json.dumps(caught.value.body)
        assert "text/plain" in caught.value.message
        assert not [r for r in running.mockapi.requests[before:] if r.path == "/v1/files"]


class TestUploads:
    def test_a_png_uploaded_in_parts_is_the_servers_upload(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``uploads.create``, two ``parts.create`` and ``complete`` give the server's Upload."""
        png = _samples.png(40, 40)

        def upload(client: openai.OpenAI) -> Any:
            started = client.uploads.create(
                bytes=len(png), filename="big.png", mime_type="image/png", purpose="vision"
            )
            parts = [client.uploads.parts.create(started.id, data=png[:500])]
            parts.append(client.uploads.parts.create(started.id, data=png[500:]))
            return client.uploads.complete(started.id, part_ids=[p.id for p in parts])

        direct, through = upload(upstream), upload(gateway)
        assert_same(normalise(wire(through)), normalise(wire(direct)))
        assert through.status == "completed"
        assert through.file is not None
        assert upstream.files.content(through.file.id).content == png


class TestModels:
    def test_models_list_is_passed_through(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``models.list()`` through the gateway lists exactly the server's models."""
        through = wire(gateway.models.list().data)
        assert through == wire(upstream.models.list().data)
        assert MODEL in [m["id"] for m in through]

    def test_models_retrieve_is_passed_through(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """``models.retrieve`` answers the server's model, and its ``NotFoundError`` for none."""
        through = gateway.models.retrieve(MODEL)
        assert wire(through) == wire(upstream.models.retrieve(MODEL))
        assert through.id == MODEL
        direct_missing = raised(lambda: upstream.models.retrieve("no-such-model"))
        through_missing = raised(lambda: gateway.models.retrieve("no-such-model"))
        assert isinstance(through_missing, openai.NotFoundError)
        assert through_missing.body == direct_missing.body


class TestErrors:
    def test_a_wrong_api_key_is_an_authentication_error(self, running: GatewayThread) -> None:
        """A key other than the gateway's token is refused with 401: ``AuthenticationError``."""
        with (
            openai.OpenAI(base_url=running.v1_url, api_key="sk-wrong", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError) as caught,
        ):
            client.responses.create(model=MODEL, input="hi")
        assert caught.value.status_code == 401

    def test_an_unknown_response_id_is_not_found(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI
    ) -> None:
        """Retrieving an unknown response is the server's ``NotFoundError``, body and all."""
        missing = "resp_0123456789abcdef0123456789abcdef"
        direct = raised(lambda: upstream.responses.retrieve(missing))
        through = raised(lambda: gateway.responses.retrieve(missing))
        assert isinstance(through, openai.NotFoundError)
        assert through.body == direct.body

    @pytest.mark.parametrize(
        "call",
        [
            pytest.param(
                lambda c: c.responses.create(model=MODEL, input="hi", temperature=7),
                id="responses-temperature",
            ),
            pytest.param(
                lambda c: c.responses.create(
                    model=MODEL, input="hi", stream=True, max_output_tokens=-1
                ),
                id="responses-stream-max-output-tokens",
            ),
            pytest.param(
                lambda c: c.chat.completions.create(model=MODEL, messages=[]),
                id="chat-no-messages",
            ),
        ],
    )
    def test_bad_parameters_are_a_bad_request_naming_the_parameter(
        self, gateway: openai.OpenAI, upstream: openai.OpenAI, call: Any
    ) -> None:
        """A parameter the server rejects is a ``BadRequestError`` of the same type naming the same
        parameter (the daemon may refuse it first, in its own words: contract §5.1)."""
        direct = raised(lambda: call(upstream))
        through = raised(lambda: call(gateway))
        assert isinstance(through, openai.BadRequestError)
        assert isinstance(through.body, dict)
        assert isinstance(direct.body, dict)
        assert (through.body["type"], through.body["param"]) == (
            direct.body["type"],
            direct.body["param"],
        )
        assert direct.body["param"] in through.message
