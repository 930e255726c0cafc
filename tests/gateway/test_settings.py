"""The `[gateway]` keys of the configuration: the token and where it is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamvisor.config import Config, ConfigError, GatewaySection

TOKEN = "a-chosen-token-0123456789"


class TestGatewayToken:
    def test_unset_by_default_and_stored_under_var(self) -> None:
        """No token: the gateway generates one per start; it is written to var/gateway-token."""
        section = Config.load(environ={}).gateway
        assert (section.token, section.token_file) == (None, "var/gateway-token")

    def test_the_environment_sets_it_and_no_repr_or_error_shows_it(self) -> None:
        """STREAMVISOR_GATEWAY_TOKEN, through the usual mechanism; redacted everywhere."""
        config = Config.load(environ={"STREAMVISOR_GATEWAY_TOKEN": TOKEN})
        assert config.gateway.token == TOKEN
        assert TOKEN not in repr(config)

    def test_a_file_may_set_it(self, tmp_path: Path) -> None:
        """Unlike the API key, a gateway token may live in the TOML file."""
        file = tmp_path / "streamvisor.toml"
        file.write_text(f'[gateway]\ntoken = "{TOKEN}"\n')
        assert Config.load(file, environ={}).gateway.token == TOKEN

    @pytest.mark.parametrize(
        "bad", ["short", "has space in it 0123", "a" * 513, "tok\u00e9n-0123456789"]
    )
    def test_a_weak_or_unsafe_token_is_refused_without_showing_it(self, bad: str) -> None:
        """16-512 URL-safe characters; the error names the key, never the value."""
        with pytest.raises(ConfigError) as refused:
            Config.load(environ={"STREAMVISOR_GATEWAY_TOKEN": bad})
        assert refused.value.key == "gateway.token"
        assert bad not in str(refused.value)

    def test_a_non_loopback_host_needs_a_token(self) -> None:
        """A generated token would be printed on one machine and needed on another."""
        with pytest.raises(ConfigError) as refused:
            Config.load(environ={"STREAMVISOR_GATEWAY_HOST": "0.0.0.0"})
        assert refused.value.key == "gateway.token"
        assert "not a loopback address" in str(refused.value)
        chosen = GatewaySection(host="0.0.0.0", token=TOKEN)
        assert chosen.token == TOKEN
        assert GatewaySection(host="localhost").token is None
        assert GatewaySection(host="0.0.0.0", enabled=False).token is None
