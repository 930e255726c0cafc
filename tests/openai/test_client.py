"""OpenAIClient: settings, headers, typed errors, the retry policy and the JSON endpoints."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from streamvisor.openai import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CancelRejected,
    ClientSettings,
    InsufficientQuotaError,
    InternalServerError,
    InvalidRequestError,
    NotFoundError,
    OpenAIClient,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    UnprocessableEntityError,
)
from streamvisor.openai._pool import SHARD_SIZE, ShardedTransport

from .conftest import client_for, json_response, sse_response

SECRET = "sk-test-SECRET-0123456789"
RESP = {"id": "resp_1", "object": "response", "status": "queued", "output": []}


def error_body(
    message: str = "bad",
    code: str | None = None,
    param: str | None = None,
    type: str = "invalid_request_error",
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class Script:
    """A MockTransport handler that plays answers in order and records requests and times."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        await request.aread()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @property
    def gaps(self) -> list[float]:
        return [round(b - a, 6) for a, b in zip(self.times, self.times[1:], strict=False)]

    def body(self, i: int = -1) -> Any:
        return json.loads(self.requests[i].content)


class TestSettings:
    def test_from_env_reads_the_sdk_variable_names(self) -> None:
        s = ClientSettings.from_env(
            {
                "OPENAI_API_KEY": "k",
                "OPENAI_BASE_URL": "http://h/v1/",
                "OPENAI_ORG_ID": "org",
                "OPENAI_PROJECT_ID": "proj",
            }
        )
        assert (s.api_key, s.base_url, s.organization, s.project) == (
            "k",
            "http://h/v1",
            "org",
            "proj",
        )

    def test_empty_variables_count_as_unset_and_overrides_win(self) -> None:
        s = ClientSettings.from_env(
            {"OPENAI_API_KEY": "", "OPENAI_ORG_ID": "o"}, organization="mine"
        )
        assert s.api_key is None
        assert s.organization == "mine"
        assert s.base_url == "https://api.openai.com/v1"

    def test_defaults_suit_many_long_streams(self) -> None:
        s = ClientSettings()
        assert (s.connect_timeout, s.read_timeout) == (5.0, 120.0)
        assert (s.max_connections, s.max_keepalive_connections) == (1000, 100)
        assert s.retry.max_retries == 2

    @pytest.mark.parametrize(
        "bad",
        [
            {"read_timeout": 0},
            {"base_url": "ftp://x"},
            {"max_connections": 0},
            {"connect_timeout": -1},
        ],
    )
    def test_bad_values_are_rejected_at_construction(self, bad: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            ClientSettings(**bad)

    def test_the_key_is_not_in_the_repr(self) -> None:
        assert SECRET not in repr(ClientSettings(api_key=SECRET))

    async def test_the_pool_and_timeouts_are_configured(self) -> None:
        async with OpenAIClient.open(ClientSettings(read_timeout=90)) as client:
            http = client._http
            assert http.timeout == httpx.Timeout(connect=5.0, read=90.0, write=60.0, pool=30.0)
            transport = http._transport
            assert isinstance(transport, ShardedTransport)
            pools = [shard._pool for shard in transport._shards]
            # 1,000 connections in pools of at most SHARD_SIZE; the totals are the settings'.
            assert len(pools) == 1000 // SHARD_SIZE
            assert sum(p._max_connections for p in pools) == 1000
            assert sum(p._max_keepalive_connections for p in pools) == 100


class TestHeaders:
    async def test_auth_org_and_project_headers_are_sent_when_set(self) -> None:
        script = Script(json_response(200, RESP))
        async with client_for(script, organization="org-1", project="proj-1") as client:
            await client.create_response({"model": "gpt-4o", "input": "x"})
        headers = script.requests[0].headers
        assert headers["authorization"] == f"Bearer {SECRET}"
        assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-1")

    async def test_no_auth_header_without_a_key(self) -> None:
        script = Script(json_response(200, RESP))
        async with client_for(script, api_key=None) as client:
            await client.create_response({"model": "gpt-4o", "input": "x"})
        assert "authorization" not in script.requests[0].headers
        assert "openai-organization" not in script.requests[0].headers

    async def test_requests_go_under_the_base_url(self) -> None:
        script = Script(json_response(200, RESP))
        async with client_for(script, base_url="http://127.0.0.1:9/v1/") as client:
            await client.retrieve_response("resp_1")
        assert str(script.requests[0].url) == "http://127.0.0.1:9/v1/responses/resp_1"


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "cls"),
        [
            (400, BadRequestError),
            (401, AuthenticationError),
            (403, PermissionDeniedError),
            (404, NotFoundError),
            (422, UnprocessableEntityError),
            (418, APIStatusError),
        ],
    )
    async def test_each_status_has_its_error_class_with_every_field(
        self, status: int, cls: type[APIStatusError]
    ) -> None:
        body = error_body("Invalid 'temperature'", "decimal_below_min_value", "temperature")
        script = Script(json_response(status, body, **{"x-request-id": "req_42"}))
        async with client_for(script) as client:
            with pytest.raises(cls) as info:
                await client.create_response({"model": "gpt-4o", "input": "x"})
        err = info.value
        assert type(err) is cls
        assert (err.status_code, err.request_id, err.code, err.param, err.type) == (
            status,
            "req_42",
            "decimal_below_min_value",
            "temperature",
            "invalid_request_error",
        )
        assert err.message == "Invalid 'temperature'"
        assert "req_42" in str(err)
        assert len(script.requests) == 1

    async def test_the_recorded_400_body_is_understood(self, recorded_dir: Path) -> None:
        transcript = json.loads(
            (recorded_dir / "16_responses_http_error_transcript.json").read_text()
        )
        answer = transcript[0]["response"]
        script = Script(json_response(answer["status"], answer["body"]))
        async with client_for(script) as client:
            with pytest.raises(BadRequestError) as info:
                await client.create_response(transcript[0]["request"]["body"])
        assert (info.value.code, info.value.param) == ("decimal_below_min_value", "temperature")

    async def test_insufficient_quota_is_permanent_and_never_retried(self) -> None:
        body = error_body(
            "You exceeded your current quota", "insufficient_quota", type="insufficient_quota"
        )
        script = Script(json_response(429, body), json_response(200, RESP))
        async with client_for(script) as client:
            with pytest.raises(InsufficientQuotaError) as info:
                await client.create_response({"model": "gpt-4o", "input": "x"})
        assert isinstance(info.value, RateLimitError)
        assert len(script.requests) == 1

    async def test_a_non_json_error_body_becomes_the_message(self) -> None:
        script = Script(httpx.Response(401, text="Unauthorized"))
        async with client_for(script) as client:
            with pytest.raises(AuthenticationError, match="Unauthorized"):
                await client.retrieve_response("resp_1")

    def test_builtin_bases_let_generic_handlers_work(self) -> None:
        assert issubclass(NotFoundError, LookupError)
        assert issubclass(APITimeoutError, TimeoutError)
        assert issubclass(APITimeoutError, APIConnectionError)


class TestRetries:
    async def test_5xx_is_retried_with_exponential_backoff(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(
            json_response(500, error_body()),
            json_response(503, error_body()),
            json_response(200, RESP),
        )
        async with client_for(script) as client:
            assert await client.retrieve_response("resp_1")
        assert script.gaps == [0.5, 1.0]
        assert [r.headers.get("x-stainless-retry-count") for r in script.requests] == [
            None,
            "1",
            "2",
        ]

    async def test_jitter_takes_up_to_a_quarter_off(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(json_response(502, error_body()), json_response(200, RESP))
        async with client_for(script, retry=RetryPolicy(random=lambda: 1.0)) as client:
            await client.retrieve_response("resp_1")
        assert script.gaps == [0.375]

    async def test_retries_stop_after_max_retries(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(*[json_response(500, error_body()) for _ in range(3)])
        async with client_for(script) as client:
            with pytest.raises(InternalServerError):
                await client.retrieve_response("resp_1")
        assert len(script.requests) == 3

    @pytest.mark.parametrize("status", [408, 409, 429])
    async def test_timeouts_conflicts_and_rate_limits_are_retried(
        self, autojump_clock: trio.testing.MockClock, status: int
    ) -> None:
        script = Script(json_response(status, error_body()), json_response(200, RESP))
        async with client_for(script) as client:
            await client.retrieve_response("resp_1")
        assert len(script.requests) == 2

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
    async def test_client_errors_are_not_retried(self, status: int) -> None:
        script = Script(json_response(status, error_body()), json_response(200, RESP))
        async with client_for(script) as client:
            with pytest.raises(APIStatusError):
                await client.retrieve_response("resp_1")
        assert len(script.requests) == 1

    @pytest.mark.parametrize(
        ("headers", "gap"),
        [
            ({"retry-after-ms": "1500"}, 1.5),
            ({"retry-after": "3"}, 3.0),
            ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
            ({"retry-after": "soon"}, 0.5),
        ],
    )
    async def test_the_servers_retry_hint_is_honoured(
        self, autojump_clock: trio.testing.MockClock, headers: dict[str, str], gap: float
    ) -> None:
        script = Script(
            json_response(429, error_body(code="rate_limit_exceeded"), **headers),
            json_response(200, RESP),
        )
        async with client_for(script) as client:
            await client.retrieve_response("resp_1")
        assert script.gaps == [gap]

    async def test_an_http_date_retry_after_is_relative_to_the_wall_clock(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
        later = format_datetime(datetime(2026, 1, 1, 12, 0, 7, tzinfo=UTC), usegmt=True)
        policy = RetryPolicy(random=lambda: 0.0, wall_clock=lambda: now.timestamp())
        script = Script(
            json_response(503, error_body(), **{"retry-after": later}), json_response(200, RESP)
        )
        async with client_for(script, retry=policy) as client:
            await client.retrieve_response("resp_1")
        assert script.gaps == [7.0]

    async def test_a_hint_beyond_the_cap_is_not_waited_for_but_reported(self) -> None:
        script = Script(json_response(429, error_body(), **{"retry-after": "600"}))
        async with client_for(script) as client:
            with pytest.raises(RateLimitError) as info:
                await client.retrieve_response("resp_1")
        assert info.value.retry_after == 600.0
        assert len(script.requests) == 1

    async def test_x_should_retry_overrides_the_status(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(json_response(500, error_body(), **{"x-should-retry": "false"}))
        async with client_for(script) as client:
            with pytest.raises(InternalServerError):
                await client.retrieve_response("resp_1")
        assert len(script.requests) == 1
        script = Script(
            json_response(400, error_body(), **{"x-should-retry": "true"}), json_response(200, RESP)
        )
        async with client_for(script) as client:
            await client.retrieve_response("resp_1")
        assert len(script.requests) == 2

    async def test_connection_errors_and_timeouts_are_retried(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(
            httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), json_response(200, RESP)
        )
        async with client_for(script) as client:
            await client.retrieve_response("resp_1")
        assert script.gaps == [0.5, 1.0]

    async def test_exhausted_connection_retries_raise_typed_errors(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(*[httpx.ReadTimeout("slow")] * 3)
        async with client_for(script) as client:
            with pytest.raises(APITimeoutError):
                await client.retrieve_response("resp_1")
        script = Script(*[httpx.ConnectError("refused")] * 3)
        async with client_for(script) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.retrieve_response("resp_1")
        assert not isinstance(info.value, APITimeoutError)

    async def test_a_stream_is_retried_before_its_headers(
        self, autojump_clock: trio.testing.MockClock, recorded_dir: Path
    ) -> None:
        body = (recorded_dir / "02_chat_text_usage.sse").read_bytes()
        script = Script(
            json_response(503, error_body()), httpx.ConnectError("x"), sse_response(body)
        )
        async with (
            client_for(script) as client,
            client.stream_chat({"model": "gpt-4o", "messages": []}) as stream,
        ):
            events = [e async for e in stream]
        assert events[-1].type == "response.completed"
        assert len(script.requests) == 3


class TestBackgroundCreateIsNeverDuplicated:
    BODY = {"model": "o3-pro", "input": "x", "background": True}

    @pytest.mark.parametrize(
        "failure",
        [httpx.ReadTimeout("lost"), httpx.WriteError("reset"), httpx.RemoteProtocolError("closed")],
    )
    async def test_a_failure_after_sending_raises_outcome_unknown(self, failure: Exception) -> None:
        script = Script(failure, json_response(200, RESP))
        async with client_for(script) as client:
            with pytest.raises(OutcomeUnknownError) as info:
                await client.create_response(self.BODY)
        assert len(script.requests) == 1
        assert info.value.method == "POST"
        assert info.value.url.endswith("/responses")
        assert "may" in info.value.message

    async def test_a_5xx_raises_outcome_unknown(self) -> None:
        script = Script(json_response(502, error_body()), json_response(200, RESP))
        async with client_for(script) as client:
            with pytest.raises(OutcomeUnknownError) as info:
                await client.create_response(self.BODY)
        assert isinstance(info.value.__cause__, InternalServerError)
        assert len(script.requests) == 1

    async def test_a_streamed_background_create_is_protected_too(self) -> None:
        script = Script(httpx.ReadTimeout("lost"))
        async with client_for(script) as client:
            with pytest.raises(OutcomeUnknownError):
                async with client.stream_response({**self.BODY, "stream": True}):
                    pass

    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ConnectError("refused"),
            httpx.ConnectTimeout("slow"),
            json_response(429, error_body(code="rate_limit_exceeded")),
            json_response(503, error_body(), **{"x-should-retry": "true"}),
        ],
    )
    async def test_failures_that_prove_nothing_was_created_are_retried(
        self, autojump_clock: trio.testing.MockClock, failure: Any
    ) -> None:
        script = Script(failure, json_response(200, RESP))
        async with client_for(script) as client:
            assert (await client.create_response(self.BODY))["id"] == "resp_1"
        assert len(script.requests) == 2

    async def test_a_foreground_create_is_retried_as_usual(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(httpx.ReadTimeout("lost"), json_response(200, RESP))
        async with client_for(script) as client:
            await client.create_response({"model": "gpt-4o", "input": "x"})
        assert len(script.requests) == 2


class TestUnsupportedParameters:
    async def test_an_unsupported_parameter_is_dropped_once_and_logged(self) -> None:
        script = Script(
            json_response(
                400, error_body("Unsupported parameter: 'top_p'", "unsupported_parameter", "top_p")
            ),
            json_response(200, RESP),
        )
        async with client_for(script) as client:
            with capture_logs() as logs:
                await client.create_response({"model": "gpt-4.1", "input": "x", "top_p": 0.5})
        assert "top_p" in script.body(0)
        assert "top_p" not in script.body(1)
        assert any(e["event"] == "openai.param_unsupported" and e["param"] == "top_p" for e in logs)

    async def test_a_nested_parameter_path_is_dropped(self) -> None:
        script = Script(
            json_response(400, error_body(code="unsupported_value", param="reasoning.summary")),
            json_response(200, RESP),
        )
        async with client_for(script) as client:
            await client.create_response(
                {"model": "x", "input": "x", "reasoning": {"effort": "low", "summary": "auto"}}
            )
        assert script.body(1)["reasoning"] == {"effort": "low"}

    async def test_only_one_retry_is_made(self) -> None:
        script = Script(
            json_response(400, error_body(code="unsupported_parameter", param="top_p")),
            json_response(400, error_body(code="unsupported_parameter", param="temperature")),
        )
        async with client_for(script) as client:
            with pytest.raises(BadRequestError) as info:
                await client.create_response(
                    {"model": "m", "input": "x", "top_p": 1, "temperature": 1}
                )
        assert info.value.param == "temperature"
        assert len(script.requests) == 2

    @pytest.mark.parametrize("param", ["model", "messages[0].role", "not_in_body"])
    async def test_required_unknown_or_indexed_params_are_not_dropped(self, param: str) -> None:
        script = Script(json_response(400, error_body(code="unsupported_value", param=param)))
        async with client_for(script) as client:
            with pytest.raises(BadRequestError):
                await client.create_chat_completion({"model": "m", "messages": []})
        assert len(script.requests) == 1

    async def test_the_stream_path_retries_without_the_param_too(self, recorded_dir: Path) -> None:
        body = (recorded_dir / "02_chat_text_usage.sse").read_bytes()
        script = Script(
            json_response(400, error_body(code="unsupported_parameter", param="logit_bias")),
            sse_response(body),
        )
        async with (
            client_for(script) as client,
            client.stream_chat({"model": "m", "messages": [], "logit_bias": {"1": 2}}) as stream,
        ):
            assert [e async for e in stream][-1].type == "response.completed"
        assert "logit_bias" not in script.body(1)
        assert script.body(1)["stream"] is True

    async def test_model_rules_are_applied_before_sending(self) -> None:
        script = Script(json_response(200, {"id": "c"}))
        async with client_for(script) as client:
            await client.create_chat_completion(
                {"model": "o3-mini", "messages": [], "temperature": 0.2, "max_tokens": 9}
            )
        assert script.body() == {"model": "o3-mini", "messages": [], "max_completion_tokens": 9}


class TestLocalValidation:
    @pytest.mark.parametrize(
        ("api", "body"),
        [
            ("responses", {"input": "x"}),
            ("responses", {"model": "", "input": "x"}),
            ("responses", {"model": "m", "previous_response_id": "r", "conversation": "c"}),
            ("chat", {"model": "m"}),
            ("chat", {"model": "m", "messages": "hi"}),
        ],
    )
    async def test_bad_bodies_fail_before_any_request(self, api: str, body: Any) -> None:
        script = Script()
        async with client_for(script) as client:
            create = client.create_chat_completion if api == "chat" else client.create_response
            stream = client.stream_chat if api == "chat" else client.stream_response
            with pytest.raises(InvalidRequestError):
                await create(body)
            with pytest.raises(ValueError):
                await stream(body).__aenter__()
        assert script.requests == []


class TestChatStreamBody:
    async def test_usage_is_requested_unless_the_caller_chose_stream_options(
        self, recorded_dir: Path
    ) -> None:
        body = (recorded_dir / "13_chat_text_after_tool_result_include_usage_2026.sse").read_bytes()
        script = Script(sse_response(body), sse_response(body))
        async with client_for(script) as client:
            for options in ({}, {"stream_options": {"include_obfuscation": False}}):
                async with client.stream_chat({"model": "gpt-4o", "messages": [], **options}) as s:
                    events = [e async for e in s]
        assert script.body(0)["stream_options"] == {"include_usage": True}
        assert script.body(1)["stream_options"] == {"include_obfuscation": False}
        assert events[-1].data["response"]["usage"]["total_tokens"] > 0


class TestResponsesEndpoints:
    async def test_create_posts_the_body_and_returns_the_response(self) -> None:
        script = Script(json_response(200, RESP))
        async with client_for(script) as client:
            got = await client.create_response(
                {"model": "gpt-4o", "input": "x", "stream": True, "background": True, "store": True}
            )
        assert got == RESP
        assert script.requests[0].url.path == "/v1/responses"
        assert script.body() == {"model": "gpt-4o", "input": "x", "background": True, "store": True}

    async def test_retrieve_returns_the_polling_hint_and_headers(self) -> None:
        script = Script(
            json_response(
                200,
                RESP,
                **{
                    "openai-poll-after-ms": "1500",
                    "x-request-id": "req_9",
                    "x-ratelimit-remaining-requests": "99",
                    "x-ratelimit-reset-tokens": "1m26.4s",
                },
            )
        )
        async with client_for(script) as client:
            polled = await client.retrieve_response("resp_1", include=["a.b"])
        assert polled.response == RESP
        assert polled.status == "queued"
        assert (polled.poll_after, polled.request_id) == (1.5, "req_9")
        assert polled.rate_limits is not None
        assert polled.rate_limits.remaining_requests == 99
        assert polled.rate_limits.reset_tokens == pytest.approx(86.4)
        assert client.rate_limits == polled.rate_limits
        assert script.requests[0].url.params.get_list("include[]") == ["a.b"]

    async def test_cancel_returns_the_cancelled_response(self) -> None:
        script = Script(json_response(200, {**RESP, "status": "cancelled"}))
        async with client_for(script) as client:
            got = await client.cancel_response("resp_1")
        assert got["status"] == "cancelled"
        assert (script.requests[0].method, script.requests[0].url.path) == (
            "POST",
            "/v1/responses/resp_1/cancel",
        )

    @pytest.mark.parametrize(
        ("message", "status"),
        [
            ("Cannot cancel a completed response.", "completed"),
            ("Cannot cancel a failed response.", "failed"),
            ("Cannot cancel an incomplete response.", "incomplete"),
            ("Only responses created with background can be cancelled.", None),
        ],
    )
    async def test_cancel_of_a_finished_response_is_distinguishable(
        self, message: str, status: str | None
    ) -> None:
        script = Script(json_response(400, error_body(message)))
        async with client_for(script) as client:
            with pytest.raises(CancelRejected) as info:
                await client.cancel_response("resp_1")
        assert info.value.status == status
        assert info.value.already_terminal is (status is not None)
        assert isinstance(info.value, BadRequestError)

    async def test_delete_accepts_any_body(self) -> None:
        script = Script(httpx.Response(200, content=b""))
        async with client_for(script) as client:
            assert await client.delete_response("resp_1") is None
        assert script.requests[0].method == "DELETE"
        assert script.requests[0].headers["accept"] == "*/*"

    async def test_a_missing_response_is_not_found(self) -> None:
        script = Script(
            json_response(404, error_body("No response found", type="invalid_request_error"))
        )
        async with client_for(script) as client:
            with pytest.raises(NotFoundError):
                await client.retrieve_response("resp_gone")

    async def test_chat_completion_is_posted_without_stream_fields(self) -> None:
        script = Script(json_response(200, {"id": "chatcmpl-1"}))
        async with client_for(script) as client:
            got = await client.create_chat_completion(
                {
                    "model": "gpt-4o",
                    "messages": [],
                    "stream": True,
                    "stream_options": {"include_usage": 1},
                }
            )
        assert got == {"id": "chatcmpl-1"}
        assert script.body() == {"model": "gpt-4o", "messages": []}
        assert script.requests[0].url.path == "/v1/chat/completions"


class TestTheKeyNeverLeaks:
    async def test_not_in_logs_errors_or_reprs(
        self, autojump_clock: trio.testing.MockClock
    ) -> None:
        script = Script(
            json_response(500, error_body()),
            httpx.ConnectError("refused"),
            json_response(401, error_body("Incorrect API key provided")),
        )
        async with client_for(script) as client:
            with capture_logs() as logs, pytest.raises(AuthenticationError) as info:
                await client.create_response({"model": "gpt-4o", "input": "x"})
            seen = [
                repr(logs),
                str(info.value),
                repr(info.value),
                repr(info.value.headers),
                repr(info.value.body),
                repr(client),
                repr(client.settings),
            ]
        assert logs, "the retries were logged"
        assert script.requests[0].headers["authorization"].endswith(SECRET)
        for text in seen:
            assert SECRET not in text
