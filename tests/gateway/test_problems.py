"""How errors become HTTP answers, and how bus items are named: pure functions, no I/O."""

from __future__ import annotations

import pytest

from streamvisor.actors import (
    EmptyFile,
    FileUploadFailed,
    InvalidSessionRequest,
    TooManyStreams,
    UnknownStream,
)
from streamvisor.gateway import BadRequest, NotFound, PayloadTooLarge, status_for
from streamvisor.gateway._access import hostname as _hostname
from streamvisor.gateway._encode import bus_item
from streamvisor.gateway._errors import Redactor, problem
from streamvisor.openai import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
)
from streamvisor.supervisor import Missed, NoSuchActor


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
            (NoSuchActor("sessions"), 503),
            (APIConnectionError("refused"), 502),
            (APITimeoutError("slow"), 504),
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


class TestRedaction:
    def test_the_key_is_replaced_wherever_it_appears(self) -> None:
        """Every occurrence, in any text."""
        redact = Redactor(["sk-abcdefghijkl"])
        assert redact("a sk-abcdefghijkl b sk-abcdefghijkl") == "a [redacted] b [redacted]"

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
