"""How errors become HTTP answers, and how bus items are named: pure functions, no I/O."""

from __future__ import annotations

import pytest

import streamvisor.gateway
from streamvisor.actors import (
    EmptyFile,
    FileUploadFailed,
    InvalidSessionRequest,
    TooManyStreams,
    UnknownStream,
)
from streamvisor.gateway import (
    BadRequest,
    CrossOriginRefused,
    GatewayError,
    InvalidId,
    InvalidJSON,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    TimeoutElapsed,
    TooManyCommands,
    UnsupportedMediaType,
    status_for,
)
from streamvisor.gateway._access import hostname as _hostname
from streamvisor.gateway._checks import (
    MAX_DEPTH,
    check_id,
    check_media_type,
    check_name,
    parse_json,
)
from streamvisor.gateway._encode import bus_item
from streamvisor.gateway._errors import Redactor, problem, scrub
from streamvisor.openai import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)
from streamvisor.supervisor import CallTimeout, Missed, NoSuchActor


def _status_error(cls: type, status: int, **kw: object) -> Exception:
    return cls("upstream says no", status_code=status, request_id="req_1", **kw)  # type: ignore[no-any-return]


class TestStatuses:
    @pytest.mark.parametrize(
        ("error", "status"),
        [
            (BadRequest("bad"), 400),
            (InvalidSessionRequest("s1", "messages", "must be a list"), 400),
            (EmptyFile("a.txt"), 400),
            (NotFound("nothing"), 404),
            (UnknownStream("s1", "stream-9"), 404),
            (TooManyStreams("s1", 8), 409),
            (PayloadTooLarge(10), 413),
            (InvalidId("id", "\x01", "bad"), 400),
            (InvalidJSON("deep"), 400),
            (UnsupportedMediaType("text/plain", "application/json"), 415),
            (NotAuthenticated(), 401),
            (CrossOriginRefused("http://evil.example"), 403),
            (TooManyCommands(32), 429),
            (TimeoutElapsed("stream-1 did not end", 0.5), 409),
            (NoSuchActor("sessions"), 503),
            (APIConnectionError("refused"), 502),
            (APITimeoutError("slow"), 504),
            (CallTimeout("session.s1", 5.0), 504),
        ],
    )
    def test_each_family_has_its_status(self, error: Exception, status: int) -> None:
        """The typed family decides the status (see the _errors module docstring)."""
        assert status_for(error) == status

    def test_an_upstream_429_is_503_with_retry_after(self) -> None:
        """The API's rate limit is the gateway's unavailability, with the hint passed on."""
        status, body, headers = problem(_status_error(RateLimitError, 429, retry_after=2.4))
        assert status == 503
        assert headers == {"retry-after": "2"}
        assert body["error"]["type"] == "RateLimitError"
        assert body["error"]["upstream_status"] == 429

    def test_upstream_server_and_credential_failures_are_502(self) -> None:
        """Not the caller's fault: bad gateway."""
        assert status_for(_status_error(InternalServerError, 500)) == 502
        assert status_for(_status_error(AuthenticationError, 401)) == 502

    def test_an_upstream_400_keeps_its_status(self) -> None:
        """The caller's parameters, judged by the API."""
        assert status_for(_status_error(BadRequestError, 400)) == 400

    def test_a_failed_upload_is_answered_by_its_cause(self) -> None:
        """FileUploadFailed wraps the wire error: its status decides."""
        cause = _status_error(InternalServerError, 500)
        failed = FileUploadFailed("a.png", "vision", cause)
        failed.__cause__ = cause
        assert status_for(failed) == 502

    def test_a_single_error_in_a_group_is_answered_as_itself(self) -> None:
        """Nurseries wrap errors in groups; the one inside decides."""
        group = ExceptionGroup("x", [ExceptionGroup("y", [NotFound("gone")])])
        assert status_for(group) == 404

    def test_an_unexpected_error_is_a_bare_500(self) -> None:
        """No type, message or trace of an internal failure reaches the client."""
        status, body, _ = problem(ZeroDivisionError("secret internals"))
        assert status == 500
        assert body == {"error": {"type": "InternalError", "message": "internal error"}}


class TestCodes:
    def test_every_gateway_error_carries_a_distinct_snake_case_code(self) -> None:
        """`code` is stable and machine-readable, one per class."""
        classes = [cls for cls in vars(streamvisor.gateway).values() if _is_gateway_error(cls)]
        codes = [cls.code for cls in classes if cls is not GatewayError]
        assert len(codes) == len(set(codes))
        assert all(code.replace("_", "").isalpha() and code.islower() for code in codes)

    def test_the_code_is_in_the_body_beside_the_type(self) -> None:
        """`{"error": {"type", "message", "code"}}`."""
        _, body, _ = problem(CrossOriginRefused("null"))
        assert (body["error"]["type"], body["error"]["code"]) == (
            "CrossOriginRefused",
            "origin_not_allowed",
        )

    def test_a_401_challenges_with_bearer(self) -> None:
        """The answer names the scheme, never the token."""
        status, _body, headers = problem(NotAuthenticated())
        assert (status, headers["www-authenticate"]) == (401, 'Bearer realm="streamvisor"')


def _is_gateway_error(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, GatewayError)


class TestChecks:
    def test_json_exactly_at_the_depth_limit_passes_and_one_deeper_fails(self) -> None:
        """MAX_DEPTH levels of arrays and objects, no more."""
        assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
        with pytest.raises(InvalidJSON, match="nested deeper"):
            parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
        with pytest.raises(InvalidJSON, match="nested deeper"):
            parse_json('{"a": ' * 70 + "1" + "}" * 70)

    def test_brackets_inside_strings_do_not_count(self) -> None:
        """Only structure is measured."""
        assert parse_json(b'{"text": "' + b"[" * 1000 + b'"}') == {"text": "[" * 1000}

    @pytest.mark.parametrize("value", ["1" * 5000, "[" + "9" * 5000 + "]", "1e999"])
    def test_a_number_python_will_not_hold_is_invalid_json(self, value: str) -> None:
        """Past 4,300 digits ``json.loads`` raises a plain ValueError; 1e999 would be inf."""
        with pytest.raises(InvalidJSON):
            parse_json(value)

    @pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
    def test_non_finite_numbers_are_refused(self, value: str) -> None:
        """JSON has no NaN or Infinity: Python's json would take them."""
        with pytest.raises(InvalidJSON):
            parse_json(value)

    @pytest.mark.parametrize("value", ["\x00", "a/b", "..", "a b", "", "x" * 257, "a\n", 5])
    def test_an_id_must_fully_match(self, value: object) -> None:
        """A trailing newline too (`$` would have let it through)."""
        with pytest.raises(InvalidId):
            check_id(value, "id")

    def test_session_names_may_use_the_facade_punctuation(self) -> None:
        """`:@+=` as the session actor allows; `@`, `+`, `=` not in response or file ids."""
        assert check_name("user:1@x+y=z", "session") == "user:1@x+y=z"
        with pytest.raises(InvalidId):
            check_id("user@1", "id")

    @pytest.mark.parametrize(
        ("content_type", "body", "ok"),
        [
            ("application/json", b"{}", True),
            ("Application/JSON; charset=utf-8", b"{}", True),
            (None, b"", True),
            (None, b"{}", False),
            ("text/plain", b"", False),
            ("application/x-www-form-urlencoded", b"a=1", False),
            ("application/jsonx", b"{}", False),
        ],
    )
    def test_media_types(self, content_type: str | None, body: bytes, ok: bool) -> None:
        """JSON (any parameters), or no body and no type; anything else is 415."""
        if ok:
            check_media_type(content_type, body, "application/json")
        else:
            with pytest.raises(UnsupportedMediaType):
                check_media_type(content_type, body, "application/json")


class TestRedaction:
    def test_the_key_is_replaced_wherever_it_appears(self) -> None:
        """Every occurrence, in any text."""
        redact = Redactor(["sk-abcdefghijkl"])
        assert redact("a sk-abcdefghijkl b sk-abcdefghijkl") == "a [redacted] b [redacted]"

    def test_an_error_loses_keys_masked_or_whole_and_bearer_tokens(self) -> None:
        """What an upstream error quotes back is scrubbed by shape from the error body."""
        text = (
            "Incorrect API key provided: sk-te***********6789. Also abc******wxyz, "
            "sk-proj-abcdefghijklmnop and Authorization: Bearer tok-123."
        )
        scrubbed = scrub(text)
        for part in ("6789", "wxyz", "sk-", "abcdefghijklmnop", "tok-123", "***"):
            assert part not in scrubbed
        assert scrubbed.startswith("Incorrect API key provided: ")
        _, body, _ = problem(AuthenticationError(text, status_code=401, request_id="req_1"))
        assert "6789" not in body["error"]["message"]

    def test_no_key_or_a_tiny_one_changes_nothing(self) -> None:
        """None (embedded server) and implausibly short values are ignored."""
        assert Redactor([None, "", "abc"])("abc def") == "abc def"


class TestHostNames:
    @pytest.mark.parametrize(
        ("host", "name"),
        [
            ("127.0.0.1:8080", "127.0.0.1"),
            ("LocalHost", "localhost"),
            ("[::1]:9000", "::1"),
            ("::1", "::1"),
            ("evil.example:80", "evil.example"),
        ],
    )
    def test_the_port_is_dropped_and_the_name_lowercased(self, host: str, name: str) -> None:
        """What `allowed_hosts` is compared with."""
        assert _hostname(host) == name


class TestBusItems:
    def test_a_missed_notice_is_named_missed(self) -> None:
        """`Missed(n)` becomes `event: missed` with its count and topic."""
        assert bus_item(Missed(3, topic="session.s1")) == (
            "missed",
            {"count": 3, "topic": "session.s1"},
        )
