"""Configuration: `Config.load()` from TOML and the environment (`streamvisor.config`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs
import pytest

from streamvisor.config import (
    DEFAULT_CONFIG_PATH,
    BusSection,
    Config,
    ConfigError,
    FilesSection,
    OpenAISection,
    SupervisorSection,
)

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "streamvisor.toml"
KEY = "sk-proj-TopSecret0123456789abcdefABCDEF"


@pytest.fixture(autouse=True)
def _no_default_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test in an empty working directory, so config/streamvisor.toml is absent."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "sv.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


class TestDefaults:
    def test_no_file_and_no_environment_gives_the_defaults(self) -> None:
        """Without a file or variables, load() is the built-in defaults."""
        assert Config.load(environ={}) == Config()

    def test_the_shipped_file_documents_exactly_the_defaults(self) -> None:
        """config/streamvisor.toml is the reference: loading it changes nothing."""
        assert Config.load(SHIPPED, environ={}) == Config()

    def test_the_shipped_file_mentions_every_key_in_its_section(self) -> None:
        """Every setting has a line (or a commented example) in the reference file."""
        text = SHIPPED.read_text()
        for section in attrs.fields(Config):
            body = text.split(f"[{section.name}]\n", 1)[1].split("\n[", 1)[0]
            for field in attrs.fields(type(getattr(Config(), section.name))):
                if field.name == "api_key":
                    assert "OPENAI_API_KEY" in body
                    continue
                assert re.search(rf"^#? ?{field.name} = ", body, re.M), field.name

    def test_documented_defaults(self) -> None:
        """A few defaults that other layers rely on."""
        config = Config()
        assert config.openai.base_url == "https://api.openai.com/v1"
        assert (config.openai.connect_timeout, config.openai.read_timeout) == (5.0, 120.0)
        assert config.openai.max_retries == 2
        assert config.bus.overflow == "drop_oldest"
        assert config.background.registry_path == "var/streamvisor-registry.sqlite3"
        assert config.files.upload_threshold == 64 * 1024 * 1024
        assert config.files.max_file_bytes == 512_000_000
        assert config.files.roots == (".",)
        assert (config.supervisor.intensity, config.supervisor.period) == (3, 5.0)

    def test_the_default_file_in_the_working_directory_is_read(self, tmp_path: Path) -> None:
        """config/streamvisor.toml relative to the working directory is picked up."""
        (tmp_path / "config").mkdir()
        write(tmp_path, "[bus]\nsubscriber_buffer = 7\n", str(DEFAULT_CONFIG_PATH))
        assert Config.load(environ={}).bus.subscriber_buffer == 7

    def test_config_is_frozen(self) -> None:
        """Configuration cannot be changed after loading."""
        config = Config()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config.bus = BusSection()  # type: ignore[misc]


class TestFile:
    def test_values_from_the_file_override_defaults(self, tmp_path: Path) -> None:
        """File values are typed: ints become floats for durations, sizes accept units."""
        path = write(
            tmp_path,
            '[background]\npoll_interval = 3\nregistry_path = ":memory:"\n'
            '[files]\npart_size = "8MiB"\nmax_image_bytes = 1000\nroots = ["/data", "."]\n'
            '[log]\nlevel = "DEBUG"\n',
        )
        config = Config.load(path, environ={})
        assert config.background.poll_interval == 3.0
        assert isinstance(config.background.poll_interval, float)
        assert config.background.registry_path == ":memory:"
        assert config.files.part_size == 8 * 1024 * 1024
        assert config.files.max_image_bytes == 1000
        assert config.files.roots == ("/data", ".")
        assert config.log.level == "debug"

    def test_path_from_the_environment_variable(self, tmp_path: Path) -> None:
        """$STREAMVISOR_CONFIG names the file when no argument does."""
        path = write(tmp_path, "[agent]\nmax_turns = 3\n")
        assert Config.load(environ={"STREAMVISOR_CONFIG": str(path)}).agent.max_turns == 3

    def test_the_argument_wins_over_the_environment_variable(self, tmp_path: Path) -> None:
        """An explicit path is used even when $STREAMVISOR_CONFIG is set."""
        arg = write(tmp_path, "[agent]\nmax_turns = 3\n", "a.toml")
        env = write(tmp_path, "[agent]\nmax_turns = 4\n", "b.toml")
        assert Config.load(arg, environ={"STREAMVISOR_CONFIG": str(env)}).agent.max_turns == 3

    def test_a_named_file_that_does_not_exist_is_an_error(self, tmp_path: Path) -> None:
        """Only the implicit default file may be absent."""
        with pytest.raises(ConfigError, match=r"argument path: .*nope\.toml.* does not exist"):
            Config.load(tmp_path / "nope.toml", environ={})
        with pytest.raises(ConfigError, match="environment STREAMVISOR_CONFIG"):
            Config.load(environ={"STREAMVISOR_CONFIG": str(tmp_path / "nope.toml")})

    def test_malformed_toml_names_the_file_and_the_line(self, tmp_path: Path) -> None:
        """A syntax error says where."""
        path = write(tmp_path, "[bus]\noverflow = \n")
        with pytest.raises(ConfigError, match=r"sv\.toml: not valid TOML: .*line 2"):
            Config.load(path, environ={})

    def test_an_unknown_section_is_an_error_with_a_suggestion(self, tmp_path: Path) -> None:
        """A misspelt section is caught, not ignored."""
        path = write(tmp_path, "[backgroud]\npoll_interval = 1\n")
        with pytest.raises(ConfigError, match=r"unknown section \[backgroud\].*'background'"):
            Config.load(path, environ={})

    def test_an_unknown_key_is_an_error_with_a_suggestion(self, tmp_path: Path) -> None:
        """A misspelt key names the file, the section and the likely key."""
        path = write(tmp_path, '[bus]\noverflw = "disconnect"\n')
        with pytest.raises(ConfigError) as info:
            Config.load(path, environ={})
        message = str(info.value)
        assert f"{path} [bus] overflw" in message
        assert "did you mean 'overflow'" in message
        assert info.value.key == "bus.overflw"

    def test_a_bad_value_names_key_value_file_and_expectation(self, tmp_path: Path) -> None:
        """The error says which key, what value, where it came from, what is expected."""
        path = write(tmp_path, '[bus]\noverflow = "block"\n')
        with pytest.raises(ConfigError) as info:
            Config.load(path, environ={})
        error = info.value
        assert isinstance(error, ValueError)
        assert (error.key, error.value, error.source) == (
            "bus.overflow",
            "block",
            f"{path} [bus] overflow",
        )
        assert str(error) == (
            f"{path} [bus] overflow: bus.overflow = 'block': invalid value "
            "(expected one of 'drop_oldest', 'disconnect')"
        )

    @pytest.mark.parametrize(
        ("toml", "key"),
        [
            ("[openai]\nconnect_timeout = 0\n", "openai.connect_timeout"),
            ("[openai]\nmax_retries = -1\n", "openai.max_retries"),
            ('[openai]\nbase_url = "ftp://example.com"\n', "openai.base_url"),
            ("[mockapi]\nport = 70000\n", "mockapi.port"),
            ('[sessions]\ndurable_responses = "yes"\n', "sessions.durable_responses"),
            ("[sessions]\nmailbox_size = true\n", "sessions.mailbox_size"),
            ("[background]\nterminal_ttl = -5\n", "background.terminal_ttl"),
            ('[files]\nupload_threshold = "lots"\n', "files.upload_threshold"),
            ("[files]\nroots = []\n", "files.roots"),
            ('[files]\npart_size = "65MiB"\n', "files.part_size"),
            ('[log]\nformat = "xml"\n', "log.format"),
            ("[supervisor]\nintensity = 1.5\n", "supervisor.intensity"),
        ],
    )
    def test_each_invalid_value_is_rejected_by_key(
        self, tmp_path: Path, toml: str, key: str
    ) -> None:
        """Every section validates its values at load time."""
        path = write(tmp_path, toml)
        with pytest.raises(ConfigError) as info:
            Config.load(path, environ={})
        assert info.value.key == key
        assert str(path) in str(info.value)

    def test_inconsistent_values_are_rejected(self, tmp_path: Path) -> None:
        """max_poll_interval below poll_interval names both."""
        path = write(tmp_path, "[background]\npoll_interval = 10\nmax_poll_interval = 5\n")
        with pytest.raises(
            ConfigError, match=r"max_poll_interval = 5\.0: must be >= .*poll_interval"
        ):
            Config.load(path, environ={})

    def test_an_api_key_in_the_file_is_refused_without_echoing_it(self, tmp_path: Path) -> None:
        """Keys belong in the environment; the error does not repeat the key."""
        path = write(tmp_path, f'[openai]\napi_key = "{KEY}"\n')
        with pytest.raises(ConfigError, match="OPENAI_API_KEY") as info:
            Config.load(path, environ={})
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)


class TestEnvironment:
    def test_sdk_variables_set_the_openai_section(self) -> None:
        """OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID and OPENAI_PROJECT_ID are honoured."""
        config = Config.load(
            environ={
                "OPENAI_API_KEY": KEY,
                "OPENAI_BASE_URL": "http://127.0.0.1:9000/v1/",
                "OPENAI_ORG_ID": "org-1",
                "OPENAI_PROJECT_ID": "proj_1",
            }
        )
        assert config.openai.api_key == KEY
        assert config.openai.base_url == "http://127.0.0.1:9000/v1"
        assert (config.openai.organization, config.openai.project) == ("org-1", "proj_1")

    def test_no_api_key_means_the_embedded_server(self) -> None:
        """use_embedded_server is derived from the key's absence; empty counts as absent."""
        assert Config.load(environ={}).use_embedded_server
        assert Config.load(environ={"OPENAI_API_KEY": ""}).use_embedded_server
        assert not Config.load(environ={"OPENAI_API_KEY": KEY}).use_embedded_server

    def test_streamvisor_variables_override_file_and_sdk_variables(self, tmp_path: Path) -> None:
        """STREAMVISOR_<SECTION>_<KEY> has the last word."""
        path = write(tmp_path, "[background]\npoll_interval = 3\n")
        config = Config.load(
            path,
            environ={
                "STREAMVISOR_BACKGROUND_POLL_INTERVAL": "0.5",
                "OPENAI_BASE_URL": "http://a.example/v1",
                "STREAMVISOR_OPENAI_BASE_URL": "http://b.example/v1",
            },
        )
        assert config.background.poll_interval == 0.5
        assert config.openai.base_url == "http://b.example/v1"

    def test_environment_values_are_parsed_by_the_key_type(self) -> None:
        """Booleans, integers, sizes, choices and lists all parse from strings."""
        config = Config.load(
            environ={
                "STREAMVISOR_SESSIONS_DURABLE_RESPONSES": "off",
                "STREAMVISOR_BUS_SUBSCRIBER_BUFFER": "16",
                "STREAMVISOR_BUS_OVERFLOW": "Disconnect",
                "STREAMVISOR_FILES_UPLOAD_THRESHOLD": "10 MB",
                "STREAMVISOR_FILES_ROOTS": os.pathsep.join(["/a", "/b"]),
                "STREAMVISOR_FILES_DEDUPE": "1",
            }
        )
        assert config.sessions.durable_responses is False
        assert config.bus.subscriber_buffer == 16
        assert config.bus.overflow == "disconnect"
        assert config.files.upload_threshold == 10_000_000
        assert config.files.roots == ("/a", "/b")
        assert config.files.dedupe is True

    def test_a_list_may_be_given_as_json(self) -> None:
        """A JSON array allows any character in a path."""
        env = {"STREAMVISOR_FILES_ROOTS": '["/x:y", "."]'}
        assert Config.load(environ=env).files.roots == ("/x:y", ".")

    def test_a_bad_environment_value_names_the_variable(self) -> None:
        """The source of an environment value is its variable."""
        with pytest.raises(ConfigError) as info:
            Config.load(environ={"STREAMVISOR_SESSIONS_STOP_TIMEOUT": "soon"})
        assert str(info.value) == (
            "environment STREAMVISOR_SESSIONS_STOP_TIMEOUT: sessions.stop_timeout = 'soon': "
            "invalid value (expected a number > 0 (seconds))"
        )

    def test_a_bad_boolean_is_rejected(self) -> None:
        """Only the usual spellings of true and false are accepted."""
        with pytest.raises(ConfigError, match="true or false"):
            Config.load(environ={"STREAMVISOR_FILES_DEDUPE": "maybe"})

    def test_an_unknown_streamvisor_variable_is_an_error(self) -> None:
        """A misspelt variable is not silently ignored."""
        with pytest.raises(ConfigError, match="did you mean 'STREAMVISOR_BUS_OVERFLOW'"):
            Config.load(environ={"STREAMVISOR_BUS_OVERFLOWS": "disconnect"})

    def test_unrelated_variables_are_ignored(self) -> None:
        """Only OPENAI_* names we know and STREAMVISOR_* are read."""
        assert Config.load(environ={"OPENAI_LOG": "debug", "HOME": "/root"}) == Config()


class TestSecrecy:
    def test_the_api_key_never_appears_in_repr(self) -> None:
        """repr and str of the config show that a key is set, not the key."""
        config = Config.load(environ={"OPENAI_API_KEY": KEY})
        assert KEY not in repr(config)
        assert KEY not in str(config.openai)
        assert "api_key='<redacted>'" in repr(config)

    def test_an_invalid_api_key_error_does_not_show_it(self) -> None:
        """Errors about the key redact its value."""
        with pytest.raises(ConfigError) as info:
            OpenAISection(api_key=12345)  # type: ignore[arg-type]
        assert "12345" not in str(info.value)
        assert info.value.value == "<redacted>"
        assert "openai.api_key = '<redacted>'" in str(info.value)

    def test_errors_elsewhere_do_not_show_the_key(self, tmp_path: Path) -> None:
        """A failing load with a key set never includes it."""
        path = write(tmp_path, "[openai]\nmax_connections = 0\n")
        with pytest.raises(ConfigError) as info:
            Config.load(path, environ={"OPENAI_API_KEY": KEY})
        assert KEY not in str(info.value)


class TestSections:
    def test_sections_validate_when_built_by_hand(self) -> None:
        """Tests and embedders building sections directly get the same checks."""
        with pytest.raises(ConfigError, match=r"argument: bus\.subscriber_buffer = 0"):
            BusSection(subscriber_buffer=0)

    def test_keepalive_pool_cannot_exceed_the_pool(self) -> None:
        """max_keepalive_connections <= max_connections."""
        with pytest.raises(ConfigError, match="max_keepalive_connections"):
            OpenAISection(max_connections=10, max_keepalive_connections=11)

    def test_roots_accept_a_list(self) -> None:
        """A list of roots is stored as a tuple."""
        assert FilesSection(roots=["/a"]).roots == ("/a",)  # type: ignore[arg-type]


class TestSupervision:
    """``[supervisor]``: the root's intensity and, per dynamic level, the supervisor's own
    intensity and each child's restart budget."""

    def test_the_defaults_give_every_level_a_child_budget_inside_its_supervisors(self) -> None:
        section = Config().supervisor
        assert (section.intensity, section.period) == (3, 5.0)
        assert section.level("sessions") == (30, 5.0)
        assert section.child_budget("sessions") == (3, 5.0)
        assert section.level("agents") == (30, 5.0)
        assert section.child_budget("agents") == (3, 5.0)
        assert section.level("pollers") == (30, 60.0)
        assert section.child_budget("pollers") == (3, 60.0)

    def test_every_level_key_is_read_from_the_file(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "[supervisor]\nintensity = 1\nperiod = 2\n"
            "sessions_intensity = 9\nsessions_period = 3\n"
            "sessions_child_intensity = 2\nsessions_child_period = 4\n"
            "agents_intensity = 8\nagents_period = 1\n"
            "agents_child_intensity = 0\nagents_child_period = 1\n"
            "pollers_intensity = 7\npollers_period = 10\n"
            "pollers_child_intensity = 7\npollers_child_period = 30\n",
        )
        section = Config.load(path, environ={}).supervisor
        assert (section.intensity, section.period) == (1, 2.0)
        assert (section.level("sessions"), section.child_budget("sessions")) == ((9, 3.0), (2, 4.0))
        assert (section.level("agents"), section.child_budget("agents")) == ((8, 1.0), (0, 1.0))
        assert (section.level("pollers"), section.child_budget("pollers")) == ((7, 10.0), (7, 30.0))
        assert isinstance(section.sessions_period, float)

    def test_each_key_has_its_environment_variable(self) -> None:
        config = Config.load(
            environ={
                "STREAMVISOR_SUPERVISOR_SESSIONS_CHILD_INTENSITY": "1",
                "STREAMVISOR_SUPERVISOR_AGENTS_PERIOD": "2.5",
                "STREAMVISOR_SUPERVISOR_POLLERS_INTENSITY": "100",
            }
        )
        assert config.supervisor.sessions_child_intensity == 1
        assert config.supervisor.agents_period == 2.5
        assert config.supervisor.pollers_intensity == 100

    def test_a_misspelt_level_key_is_an_error_with_a_suggestion(self, tmp_path: Path) -> None:
        path = write(tmp_path, "[supervisor]\nsession_child_intensity = 3\n")
        with pytest.raises(ConfigError, match="did you mean 'sessions_child_intensity'"):
            Config.load(path, environ={})
        with pytest.raises(ConfigError, match="unknown variable"):
            Config.load(environ={"STREAMVISOR_SUPERVISOR_SESSION_BUDGET": "3"})

    @pytest.mark.parametrize(
        ("toml", "key"),
        [
            ("sessions_intensity = -1", "supervisor.sessions_intensity"),
            ("agents_period = 0", "supervisor.agents_period"),
            ("pollers_child_intensity = 2.5", "supervisor.pollers_child_intensity"),
            ('sessions_child_period = "5s"', "supervisor.sessions_child_period"),
        ],
    )
    def test_invalid_values_are_rejected_by_key(self, tmp_path: Path, toml: str, key: str) -> None:
        path = write(tmp_path, f"[supervisor]\n{toml}\n")
        with pytest.raises(ConfigError) as info:
            Config.load(path, environ={})
        assert info.value.key == key

    @pytest.mark.parametrize(
        ("overrides", "key", "detail"),
        [
            ({"sessions_child_intensity": 31}, "supervisor.sessions_child_intensity", "<= "),
            ({"agents_child_period": 1.0}, "supervisor.agents_child_period", ">= "),
            ({"pollers_intensity": 2}, "supervisor.pollers_child_intensity", "<= "),
            ({"sessions_period": 10.0}, "supervisor.sessions_child_period", ">= "),
        ],
    )
    def test_a_child_budget_that_does_not_fit_inside_its_supervisors_is_refused(
        self, overrides: dict[str, float], key: str, detail: str
    ) -> None:
        """Otherwise one child alone could exhaust its supervisor's intensity."""
        with pytest.raises(ConfigError, match="fit inside its supervisor's") as info:
            SupervisorSection(**overrides)  # type: ignore[arg-type]
        assert info.value.key == key
        assert detail in info.value.detail


class TestRuntimeSection:
    """``[runtime]``: the garbage collector's young-generation threshold."""

    def test_the_default_is_ten_thousand(self) -> None:
        assert Config().runtime.gc_threshold == 10_000

    def test_the_environment_sets_it_and_a_negative_value_is_refused(self) -> None:
        config = Config.load(None, environ={"STREAMVISOR_RUNTIME_GC_THRESHOLD": "0"})
        assert config.runtime.gc_threshold == 0
        with pytest.raises(ConfigError, match="gc_threshold"):
            Config.load(None, environ={"STREAMVISOR_RUNTIME_GC_THRESHOLD": "-1"})


class TestClusterSection:
    """``[cluster]``: off by default, both engines or neither, credentials never shown."""

    DSN = "postgresql://sv:hunter2-secret@127.0.0.1:5432/sv"
    NATS = "nats://user:nats-secret@127.0.0.1:4222"

    def test_off_by_default(self) -> None:
        cluster = Config().cluster
        assert not cluster.enabled
        assert cluster.lease_ttl == 10.0
        assert cluster.publish_interval == 0.0075
        assert cluster.node_id is None

    def test_both_engines_from_the_environment_turn_it_on(self) -> None:
        config = Config.load(
            None,
            environ={
                "STREAMVISOR_CLUSTER_POSTGRES_DSN": self.DSN,
                "STREAMVISOR_CLUSTER_NATS_URL": self.NATS,
                "STREAMVISOR_CLUSTER_NODE_ID": "node-a",
                "STREAMVISOR_CLUSTER_LEASE_TTL": "2.5",
                "STREAMVISOR_CLUSTER_PUBLISH_INTERVAL": "0",
            },
        )
        assert config.cluster.enabled
        assert (config.cluster.node_id, config.cluster.lease_ttl) == ("node-a", 2.5)
        assert config.cluster.publish_interval == 0.0
        shown = repr(config)
        assert "hunter2-secret" not in shown
        assert "nats-secret" not in shown

    @pytest.mark.parametrize("only", ["POSTGRES_DSN", "NATS_URL"])
    def test_one_engine_alone_is_refused_without_showing_it(self, only: str) -> None:
        value = self.DSN if only == "POSTGRES_DSN" else self.NATS
        with pytest.raises(ConfigError, match="go together") as info:
            Config.load(None, environ={f"STREAMVISOR_CLUSTER_{only}": value})
        assert "secret" not in str(info.value)

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("postgres_dsn", "mysql://root@db/x"),
            ("nats_url", "http://127.0.0.1:4222"),
            ("node_id", "node.a"),
            ("node_id", "a" * 65),
            ("node_id", "node a"),
            ("lease_ttl", "0"),
            ("publish_interval", "-0.001"),
            ("publish_interval", "1.5"),
        ],
    )
    def test_bad_values_name_the_key(self, key: str, value: str) -> None:
        with pytest.raises(ConfigError) as info:
            Config.load(None, environ={f"STREAMVISOR_CLUSTER_{key.upper()}": value})
        assert info.value.key == f"cluster.{key}"

    def test_a_bad_dsn_is_not_echoed(self) -> None:
        with pytest.raises(ConfigError) as info:
            Config.load(None, environ={"STREAMVISOR_CLUSTER_POSTGRES_DSN": "pg:hunter2-secret"})
        assert "hunter2-secret" not in str(info.value)


def test_a_base_url_with_a_trailing_newline_is_refused() -> None:
    """Matched in full: ``$`` would have let ``"...\\n"`` through."""
    with pytest.raises(ConfigError, match="base_url"):
        Config.load(None, environ={"OPENAI_BASE_URL": "http://127.0.0.1:1/v1\n"})
