"""Logging setup and secret redaction (`streamvisor._logging`)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from streamvisor._logging import REDACTED, SecretRedactor, configure_logging, reset_logging
from streamvisor.config import LogSection

KEY = "sk-proj-TopSecret0123456789abcdefABCDEF"
OTHER = "my-custom-gateway-token-42"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def json_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


class TestRedactor:
    def test_credential_fields_are_replaced_at_any_depth(self) -> None:
        """authorization / api_key fields lose their values, wherever they are."""
        redact = SecretRedactor()
        event = redact(
            None,
            "info",
            {
                "event": "request",
                "api_key": "anything",
                "headers": {"Authorization": "whatever", "X-Api-Key": "k", "accept": "*/*"},
            },
        )
        assert event == {
            "event": "request",
            "api_key": REDACTED,
            "headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "accept": "*/*"},
        }

    def test_configured_secrets_are_removed_from_any_string(self) -> None:
        """A configured secret that does not look like a key is still removed."""
        redact = SecretRedactor((OTHER, None, "short"))  # type: ignore[arg-type]
        assert redact.text(f"token={OTHER}!") == f"token={REDACTED}!"
        assert redact.text("short words stay") == "short words stay"

    def test_key_shaped_strings_and_bearer_tokens_are_removed(self) -> None:
        """sk-… keys, masked keys and bearer tokens are removed without configuration."""
        redact = SecretRedactor()
        text = redact.text(f"key {KEY}; masked sk-proj-ab****wxyz; Bearer abc.def")
        assert "sk-proj" not in text
        assert "abc.def" not in text

    def test_the_redactor_repr_hides_its_secrets(self) -> None:
        """Even the processor's repr does not leak."""
        assert OTHER not in repr(SecretRedactor((OTHER,)))


class TestConfigureLogging:
    def test_json_lines_never_contain_the_api_key(self) -> None:
        """The key in the message, a field, a nested value or a header is redacted."""
        out = io.StringIO()
        configure_logging(LogSection(format="json"), secrets=[KEY, None], stream=out)
        log = structlog.get_logger("t")
        log.info(f"using {KEY}", key=KEY, nested={"list": [KEY]}, authorization=f"Bearer {KEY}")
        assert KEY not in out.getvalue()
        (line,) = json_lines(out)
        assert line["event"] == f"using {REDACTED}"
        assert line["nested"] == {"list": [REDACTED]}
        assert line["authorization"] == REDACTED
        assert line["level"] == "info"
        assert "timestamp" in line

    def test_a_non_key_shaped_secret_is_redacted_when_configured(self) -> None:
        """Any configured secret value is removed, sk- or not."""
        out = io.StringIO()
        configure_logging(LogSection(format="json"), secrets=[OTHER], stream=out)
        structlog.get_logger().warning("auth", header=f"token {OTHER}")
        assert OTHER not in out.getvalue()

    def test_pretty_exceptions_are_redacted(self) -> None:
        """A traceback rendered by the console renderer does not show the key."""
        out = io.StringIO()
        configure_logging(LogSection(format="pretty"), secrets=[OTHER], stream=out)
        try:
            raise RuntimeError(f"401 for key {OTHER} and {KEY}")
        except RuntimeError:
            structlog.get_logger().exception("request failed")
        text = out.getvalue()
        assert "request failed" in text
        assert "RuntimeError" in text
        assert OTHER not in text
        assert KEY not in text

    def test_standard_library_loggers_are_redacted_too(self) -> None:
        """httpx-style stdlib log records go through the same redactor."""
        out = io.StringIO()
        configure_logging(LogSection(format="json"), secrets=[KEY], stream=out)
        logging.getLogger("httpx").info("sending Authorization: Bearer %s", KEY)
        (line,) = json_lines(out)
        assert KEY not in out.getvalue()
        assert line["logger"] == "httpx"

    def test_level_filters_lower_events(self) -> None:
        """At level warning, info events are dropped."""
        out = io.StringIO()
        configure_logging(LogSection(level="warning", format="json"), stream=out)
        log = structlog.get_logger()
        log.info("quiet")
        log.warning("loud")
        assert [line["event"] for line in json_lines(out)] == ["loud"]

    def test_auto_format_is_json_when_not_a_terminal(self) -> None:
        """A pipe or file gets JSON lines."""
        out = io.StringIO()
        configure_logging(LogSection(format="auto"), stream=out)
        structlog.get_logger().info("hello", n=1)
        assert json_lines(out) == [
            {
                "event": "hello",
                "n": 1,
                "level": "info",
                "timestamp": json_lines(out)[0]["timestamp"],
            }
        ]

    def test_reconfiguring_replaces_the_stdlib_handler(self) -> None:
        """Calling configure_logging twice does not duplicate stdlib output."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging(LogSection(format="json"), stream=first)
        configure_logging(LogSection(format="json"), stream=second)
        logging.getLogger("x").warning("once")
        assert first.getvalue() == ""
        assert len(json_lines(second)) == 1
