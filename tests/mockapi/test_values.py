"""Pure values: fault grammar, scenarios, schema examples, durations, configuration."""

from __future__ import annotations

import attrs
import pytest

import streamvisor.mockapi as mockapi
from streamvisor.mockapi import (
    Fault,
    InvalidFault,
    InvalidScenario,
    MockAPIConfig,
    parse_fault_header,
    parse_scenario,
    schema_example,
)
from streamvisor.mockapi._scripts import is_reasoning_model
from streamvisor.mockapi._wire import format_go_duration, split_tokens


def test_all_names_the_public_surface() -> None:
    public = {name for name in dir(mockapi) if not name.startswith("_")}
    assert set(mockapi.__all__) == public - {"annotations"}


class TestFaultGrammar:
    def test_status_with_retry_options_times_and_key(self) -> None:
        (parsed,) = parse_fault_header("status=429;retry_after=0.1;times=2;key=k1")
        assert parsed.fault == Fault.status(429, retry_after=0.1)
        assert (parsed.times, parsed.key) == (2, "k1")

    def test_every_kind_parses(self) -> None:
        faults = parse_fault_header(
            "drop_after_bytes=300, stall=5;after_bytes=10, malformed, error_event_after=3;"
            "nested=true, insufficient_quota, unsupported_parameter=top_p,"
            " status=503;retry_after_ms=20;should_retry=false"
        )
        assert [p.fault for p in faults] == [
            Fault.drop_after(300),
            Fault.stall(5, after_bytes=10),
            Fault.malformed(after_events=1),
            Fault.error_event(after_events=3, nested=True),
            Fault.insufficient_quota(),
            Fault.unsupported_parameter("top_p"),
            Fault.status(503, retry_after_ms=20, should_retry=False),
        ]
        assert all(p.times is None for p in faults)

    def test_the_key_defaults_to_the_spec(self) -> None:
        (parsed,) = parse_fault_header("status=500;times=1")
        assert parsed.key == "status=500;times=1"

    @pytest.mark.parametrize(
        "header",
        [
            "boom",
            "status=200",
            "status=abc",
            "drop_after_bytes=-1",
            "stall=1;bogus=2",
            "status=500;times=0",
            "malformed;after_events",
        ],
    )
    def test_malformed_specs_raise_invalid_fault(self, header: str) -> None:
        with pytest.raises(InvalidFault):
            parse_fault_header(header)

    def test_invalid_fault_is_a_value_error(self) -> None:
        with pytest.raises(ValueError, match="status"):
            Fault.status(302)

    def test_pre_response_faults_are_told_apart(self) -> None:
        assert Fault.status(500).before_response
        assert Fault.stall(1).before_response
        assert not Fault.stall(1, after_bytes=5).before_response
        assert not Fault.drop_after(5).before_response


class TestScenarios:
    @pytest.mark.parametrize(
        ("text", "name", "arg"),
        [
            (None, "echo", None),
            ("tools", "tools", None),
            ("long:12", "long", "12"),
            ("replay:02_chat_text_usage", "replay", "02_chat_text_usage"),
        ],
    )
    def test_known_scenarios_parse(self, text: str | None, name: str, arg: str | None) -> None:
        scenario = parse_scenario(text)
        assert (scenario.name, scenario.arg) == (name, arg)

    @pytest.mark.parametrize("text", ["nope", "long", "long:0", "replay:", "replay:../x", "echo:1"])
    def test_bad_scenarios_raise(self, text: str) -> None:
        with pytest.raises(InvalidScenario):
            parse_scenario(text)


class TestReasoningModels:
    @pytest.mark.parametrize(
        ("model", "effort", "expected"),
        [
            ("o1", None, True),
            ("o3-mini", None, True),
            ("o4-mini", None, True),
            ("gpt-5", None, True),
            ("gpt-5-mini", None, True),
            ("gpt-5-chat-latest", None, False),
            ("gpt-5.1", None, False),
            ("gpt-5.1", "none", False),
            ("gpt-5.1", "low", True),
            ("gpt-4.1", None, False),
            ("gpt-4o", None, False),
        ],
    )
    def test_prefix_table(self, model: str, effort: str | None, expected: bool) -> None:
        assert is_reasoning_model(model, effort) is expected


class TestSchemaExample:
    def test_objects_enums_refs_and_formats(self) -> None:
        schema = {
            "type": "object",
            "properties": {
                "when": {"type": "string", "format": "date"},
                "kind": {"enum": ["a", "b"]},
                "where": {"$ref": "#/$defs/Place"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "maybe": {"anyOf": [{"type": "null"}, {"type": "number"}]},
                "count": {"type": "integer", "minimum": 3},
            },
            "$defs": {"Place": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
        }
        assert schema_example(schema) == {
            "when": "2024-01-01",
            "kind": "a",
            "where": {"ok": True},
            "tags": ["sample tags"],
            "maybe": 1.5,
            "count": 3,
        }


def test_tokens_keep_every_character() -> None:
    text = "The capital of the UK is London.\n  Yes!"
    tokens = split_tokens(text)
    assert "".join(tokens) == text
    assert tokens[:3] == ["The", " capital", " of"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.017, "17ms"),
        (0.126, "126ms"),
        (7.66, "7.66s"),
        (86.4, "1m26.4s"),
        (360, "6m0s"),
        (0, "0s"),
    ],
)
def test_go_style_durations(seconds: float, text: str) -> None:
    assert format_go_duration(seconds) == text


class TestConfig:
    def test_defaults_are_the_real_limits(self) -> None:
        config = MockAPIConfig()
        assert config.max_file_bytes == 512 * 1024 * 1024
        assert config.max_part_bytes == 64 * 1024 * 1024
        assert config.retention == 600.0
        assert config.port == 0

    @pytest.mark.parametrize(
        "changes",
        [{"token_delay": -1}, {"keepalive_interval": 0}, {"port": 70000}, {"max_file_bytes": 0}],
    )
    def test_bad_values_are_rejected_at_construction(self, changes: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            MockAPIConfig(**changes)  # type: ignore[arg-type]

    def test_it_is_frozen(self) -> None:
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            MockAPIConfig().port = 1  # type: ignore[misc]
