"""What the wire refuses before any I/O: ids that are not API ids, bodies that are not plain JSON;
and how ids reach the URL: percent-encoded, one path segment each, whatever they hold."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from streamvisor.openai import (
    MAX_JSON_DEPTH,
    MAX_REQUEST_BYTES,
    InvalidId,
    InvalidParameter,
    InvalidRequestError,
    OpenAIClient,
    OpenAIError,
    check_id,
    check_json,
    check_request,
    encode_json,
    id_segment,
)

from .conftest import client_for, json_response

RESP = {"id": "resp_1", "object": "response", "status": "queued", "output": []}
FILE = {"id": "file-1", "object": "file", "deleted": True}

BAD_IDS = [
    "../files",
    "..",
    "resp_1\n",
    "resp_1/cancel",
    "%01",
    "\x00",
    "resp 1",
    "resp_1?x=1",
    "resp_1#x",
    "",
    "_leading",
    "x" * 257,
    None,
    42,
]


class Seen:
    """A MockTransport handler that records every request and answers ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return json_response(200, self.answer)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


class TestIds:
    """`check_id`: an id the API issues, matched in full."""

    @pytest.mark.parametrize("good", ["resp_1", "file-U6Ke78qu8nkANsrCrjoYBr", "upload_abc", "a"])
    def test_api_ids_pass_unchanged(self, good: str) -> None:
        assert check_id(good, "response_id") == good
        assert id_segment(good, "response_id") == good

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_anything_else_is_InvalidId_naming_the_field_and_value(self, bad: object) -> None:
        with pytest.raises(InvalidId) as caught:
            check_id(bad, "file_id")
        err = caught.value
        assert isinstance(err, ValueError)
        assert isinstance(err, InvalidRequestError)
        assert err.field == "file_id"
        assert err.value == bad
        assert "file_id" in str(err)

    def test_a_trailing_newline_is_refused_a_full_match_not_a_dollar(self) -> None:
        with pytest.raises(InvalidId):
            check_id("resp_1\n", "response_id")

    def test_the_message_truncates_a_huge_value(self) -> None:
        with pytest.raises(InvalidId) as caught:
            check_id("/" * 100_000, "response_id")
        assert len(str(caught.value)) < 300


class TestJson:
    """`check_json` / `encode_json`: plain JSON only, named by its path."""

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"temperature": float("nan")}, "temperature"),
            ({"temperature": float("inf")}, "temperature"),
            ({"temperature": -float("inf")}, "temperature"),
            ({"temperature": json.loads("1e999")}, "temperature"),
            ({"input": [{}, {}, {"content": float("nan")}]}, "input[2].content"),
            ({"metadata": {"when": object()}}, "metadata.when"),
            ({"metadata": {1: "x"}}, "metadata[1]"),
            ({"tools": [{"x": {1, 2}}]}, "tools[0].x"),
            ({"input": b"bytes"}, "input"),
            ({"input": [{"content": "caf\udce9"}]}, "input[0].content"),
            ({"metadata": {"k\udce9": "v"}}, "metadata"),
        ],
    )
    def test_a_value_that_is_not_plain_json_is_named_by_its_path(
        self, body: dict[str, Any], field: str
    ) -> None:
        with pytest.raises(InvalidParameter) as caught:
            encode_json(body)
        assert caught.value.field == field
        assert isinstance(caught.value, ValueError)
        assert str(caught.value).startswith(field)

    def test_nesting_is_bounded(self) -> None:
        check_json({"x": nested(MAX_JSON_DEPTH - 1)})
        with pytest.raises(InvalidParameter, match="nested deeper"):
            check_json({"x": nested(MAX_JSON_DEPTH)})

    def test_a_cycle_is_refused_not_a_recursion_error(self) -> None:
        loop: list[Any] = []
        loop.append(loop)
        with pytest.raises(InvalidParameter):
            encode_json({"input": loop})

    def test_the_encoded_size_is_bounded(self) -> None:
        with pytest.raises(InvalidParameter, match="limit"):
            encode_json({"input": "x" * (MAX_REQUEST_BYTES + 1)})

    def test_plain_json_is_encoded_as_httpx_would(self) -> None:
        body = {"model": "m", "input": ["é", 1, 2.5, True, None, ("t",)], "n": {"k": []}}
        expected = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        assert encode_json(body) == expected.encode()


class TestParameterTypes:
    """`check_request`: the well-known top-level parameters have the JSON type the API requires."""

    @pytest.mark.parametrize(
        ("body", "field", "wanted"),
        [
            ({"temperature": []}, "temperature", "a number"),
            ({"temperature": True}, "temperature", "a number"),
            ({"temperature": "0.5"}, "temperature", "a number"),
            ({"max_output_tokens": 1.5}, "max_output_tokens", "an integer"),
            ({"max_tokens": False}, "max_tokens", "an integer"),
            ({"stream": 1}, "stream", "a boolean"),
            ({"metadata": []}, "metadata", "an object"),
            ({"tools": {}}, "tools", "an array"),
            ({"input": 5}, "input", "a string or an array"),
            ({"model": 4}, "model", "a string"),
        ],
    )
    def test_a_well_known_parameter_of_the_wrong_type_is_refused_naming_it(
        self, body: dict[str, Any], field: str, wanted: str
    ) -> None:
        with pytest.raises(InvalidParameter) as info:
            check_request(body)
        assert info.value.field == field
        assert wanted in str(info.value)
        assert isinstance(info.value, ValueError)

    def test_the_field_is_named_below_a_prefix(self) -> None:
        with pytest.raises(InvalidParameter) as info:
            check_request({"top_p": "high"}, "options")
        assert info.value.field == "options.top_p"

    def test_right_types_null_and_unknown_parameters_pass(self) -> None:
        check_request(
            {
                "model": "gpt-4o",
                "temperature": 1,
                "top_p": 0.5,
                "max_output_tokens": 10,
                "stream": True,
                "metadata": {"k": "v"},
                "tools": [],
                "stop": ["x"],
                "tool_choice": "auto",
                "input": "hi",
                "instructions": None,
                "some_future_parameter": [1, {"a": True}],
            }
        )

    def test_it_still_refuses_what_is_not_plain_json(self) -> None:
        with pytest.raises(InvalidParameter) as info:
            check_request({"temperature": float("nan")})
        assert info.value.field == "temperature"


Call = Callable[[OpenAIClient, Any], Awaitable[Any]]


async def _retrieve(c: OpenAIClient, rid: Any) -> Any:
    return await c.retrieve_response(rid)


async def _cancel(c: OpenAIClient, rid: Any) -> Any:
    return await c.cancel_response(rid)


async def _delete(c: OpenAIClient, rid: Any) -> Any:
    return await c.delete_response(rid)


async def _resume(c: OpenAIClient, rid: Any) -> Any:
    async with c.resume_response(rid, starting_after=3):
        pass


async def _file(c: OpenAIClient, fid: Any) -> Any:
    return await c.retrieve_file(fid)


async def _content(c: OpenAIClient, fid: Any) -> Any:
    return await c.file_content(fid)


async def _delete_file(c: OpenAIClient, fid: Any) -> Any:
    return await c.delete_file(fid)


async def _part(c: OpenAIClient, uid: Any) -> Any:
    return await c.add_upload_part(uid, b"x")


async def _complete(c: OpenAIClient, uid: Any) -> Any:
    return await c.complete_upload(uid, ["part_1"])


async def _cancel_upload(c: OpenAIClient, uid: Any) -> Any:
    return await c.cancel_upload(uid)


ID_CALLS: list[Call] = [
    _retrieve,
    _cancel,
    _delete,
    _resume,
    _file,
    _content,
    _delete_file,
    _part,
    _complete,
    _cancel_upload,
]


class TestTheClient:
    """Every client call that takes an id or a JSON body checks it before any I/O."""

    @pytest.mark.parametrize("call", ID_CALLS, ids=lambda c: c.__name__.strip("_"))
    @pytest.mark.parametrize("bad", ["../files", "%01", "resp_1\n", "\x00", "a/b"])
    async def test_a_bad_id_is_InvalidId_and_nothing_is_sent(self, call: Call, bad: str) -> None:
        seen = Seen(RESP)
        async with client_for(seen) as client:
            with pytest.raises(InvalidId):
                await call(client, bad)
        assert seen.requests == []

    async def test_poll_of_dot_dot_files_never_sends_GET_files(self) -> None:
        seen = Seen(RESP)
        async with client_for(seen) as client:
            with pytest.raises(InvalidId):
                await client.retrieve_response("../files")
        assert [r.url.path for r in seen.requests] == []

    async def test_an_id_goes_into_the_path_as_one_encoded_segment(self) -> None:
        seen = Seen(RESP)
        async with client_for(seen) as client:
            await client.retrieve_response("resp_ab:c-1")
            await client.cancel_response("resp_1")
            await client.delete_file("file-1")
        raw = [r.url.raw_path for r in seen.requests]
        assert raw == [
            b"/v1/responses/resp_ab%3Ac-1",
            b"/v1/responses/resp_1/cancel",
            b"/v1/files/file-1",
        ]

    def test_id_segment_percent_encodes_everything_but_unreserved_characters(self) -> None:
        assert id_segment("a:bc_d-e", "response_id") == "a%3Abc_d-e"
        with pytest.raises(InvalidId):
            id_segment("a.b", "response_id")

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"model": "gpt-4o", "input": "hi", "temperature": float("nan")}, "temperature"),
            ({"model": "gpt-4o", "input": "hi", "top_p": json.loads("1e999")}, "top_p"),
            (
                {"model": "gpt-4o", "input": [{"role": "user", "content": object()}]},
                "input[0].content",
            ),
            ({"model": "gpt-4o", "input": "hi", "metadata": {"d": nested(100)}}, "metadata.d"),
        ],
    )
    async def test_a_create_body_that_is_not_json_is_InvalidParameter_and_nothing_is_sent(
        self, body: dict[str, Any], field: str
    ) -> None:
        seen = Seen(RESP)
        async with client_for(seen) as client:
            with pytest.raises(InvalidParameter) as caught:
                await client.create_response(body)
            assert caught.value.field.startswith(field)
            with pytest.raises(InvalidParameter):
                async with client.stream_response(body):
                    pass
            chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
            chat.update({k: v for k, v in body.items() if k not in ("model", "input")})
            if "input" not in field:
                with pytest.raises(InvalidParameter):
                    async with client.stream_chat(chat):
                        pass
        assert seen.requests == []

    async def test_a_good_body_is_sent_as_json(self) -> None:
        seen = Seen(RESP)
        async with client_for(seen) as client:
            await client.create_response({"model": "gpt-4o", "input": "hi", "temperature": 0.5})
        (request,) = seen.requests
        assert request.headers["content-type"] == "application/json"
        assert json.loads(request.content) == {"model": "gpt-4o", "input": "hi", "temperature": 0.5}

    async def test_no_httpx_error_escapes_for_any_id(self) -> None:
        seen = Seen(FILE)
        async with client_for(seen) as client:
            for bad in ["%", "%zz", "\udcff", "\r\nHost: evil", "é"]:
                with pytest.raises(OpenAIError):
                    await client.delete_file(bad)
        assert seen.requests == []

    async def test_a_url_httpx_refuses_is_an_InvalidRequestError_not_InvalidURL(self) -> None:
        """The net under the id checks: even a path built wrongly inside the client."""
        seen = Seen(FILE)
        async with client_for(seen) as client:
            with pytest.raises(InvalidRequestError) as caught:
                await client._send("GET", "/files/\x00")
        assert isinstance(caught.value.__cause__, httpx.InvalidURL)
        assert seen.requests == []
