"""`python run.py`: the command line as a user runs it, in real subprocesses over real sockets."""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import openai
import pytest
import trio

from streamvisor._cli import DEMOS, status_line, until_interrupted
from streamvisor.daemon import DaemonStatus

RUN_PY = Path(__file__).resolve().parents[1] / "run.py"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any OpenAI or streamvisor setting (so: the embedded server)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "STREAMVISOR_")) and k != "PYTHONWARNINGS"
    }
    # The gateway's default port (8080) may be taken on a test machine: any free port.
    env.update({"STREAMVISOR_LOG_FORMAT": "json", "STREAMVISOR_GATEWAY_PORT": "0", **extra})
    return env


class Process:
    """A `run.py` subprocess whose output is read as it comes, with deadlines."""

    def __init__(self, args: list[str], cwd: Path, env: Mapping[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(RUN_PY), *args],
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out = ""

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """Read stdout until ``pattern`` matches; fail (with what was read) after ``timeout``."""
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.out)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {pattern!r} within {timeout}s; stdout so far:\n{self.out}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    pytest.fail(f"exited before {pattern!r}; stdout:\n{self.out}")
                self.out += chunk.decode()
        return found

    def finish(self, timeout: float = 15.0) -> tuple[int, str, str]:
        """Wait for the exit; return (code, all of stdout, stderr)."""
        rest, err = self.popen.communicate(timeout=timeout)
        self.out += rest.decode()
        return self.popen.returncode, self.out, err.decode()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.communicate(timeout=5)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.kill()


def run_py(
    spawn: list[Process], tmp_path: Path, *args: str, env: Mapping[str, str] | None = None
) -> Process:
    process = Process(list(args), tmp_path, env if env is not None else clean_env())
    spawn.append(process)
    return process


class TestHelp:
    def test_help_documents_every_command(self) -> None:
        """`run.py --help` exits 0 and names the daemon, mockapi and demo commands."""
        done = subprocess.run(
            [sys.executable, str(RUN_PY), "--help"], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0
        for command in ("daemon", "mockapi", "demo"):
            assert command in done.stdout
        assert "OPENAI_API_KEY" in done.stdout

    def test_demo_help_describes_every_feature(self) -> None:
        """Each demo feature is listed with a description."""
        done = subprocess.run(
            [sys.executable, str(RUN_PY), "demo", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0
        for feature in DEMOS:
            assert re.search(rf"^\s+{feature}\s+\w", done.stdout, re.MULTILINE), feature

    def test_an_unknown_demo_is_a_usage_error(self) -> None:
        """argparse rejects a feature that does not exist, with exit code 2."""
        done = subprocess.run(
            [sys.executable, str(RUN_PY), "demo", "teleport"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "invalid choice" in done.stderr

    def test_a_missing_config_file_is_reported_with_exit_code_2(self, tmp_path: Path) -> None:
        """A --config that does not exist is a configuration error, not a traceback."""
        done = subprocess.run(
            [sys.executable, str(RUN_PY), "--config", str(tmp_path / "nope.toml")],
            capture_output=True,
            text=True,
            timeout=30,
            env=clean_env(),
        )
        assert done.returncode == 2
        assert "configuration error" in done.stderr
        assert "Traceback" not in done.stderr


class TestMockAPI:
    def test_the_official_sdk_talks_to_the_served_mockapi(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """`run.py mockapi --port 0` prints its URL and an example; the SDK streams from it."""
        process = run_py(spawn, tmp_path, "mockapi", "--port", "0", "--token-delay", "0")
        url = process.wait_for(
            r"^streamvisor embedded OpenAI-compatible server \(canned replies, no model\) "
            r"on (http://127\.0\.0\.1:\d+/v1)\n"
        ).group(1)
        process.wait_for(r"try: OPENAI_BASE_URL=http://\S+/v1 .*python -c")
        client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0, timeout=10)
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hello mock"}],
            stream=True,
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "You said: Hello mock"
        response = client.responses.create(model="gpt-4o-mini", input="Hi")
        assert response.output_text == "You said: Hi"
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0
        assert "embedded OpenAI-compatible server stopped" in out
        assert "Running on" not in out + err  # hypercorn's own banner: one URL is enough

    def test_a_port_in_use_is_reported_without_a_traceback(self, tmp_path: Path) -> None:
        """An address that cannot be bound exits with code 1 and the OS's reason."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = subprocess.run(
                [sys.executable, str(RUN_PY), "mockapi", "--port", str(port)],
                capture_output=True,
                text=True,
                timeout=30,
                cwd=tmp_path,
                env=clean_env(),
            )
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith("error: [Errno")
        assert "Traceback" not in done.stderr


class TestDaemon:
    def test_without_a_key_it_says_it_uses_the_embedded_server_and_stops_on_sigint(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """The daemon announces the embedded server's URL, and SIGINT stops it cleanly."""
        process = run_py(spawn, tmp_path, "daemon", "--status-interval", "0")
        url = process.wait_for(r"embedded OpenAI-compatible server at (http://\S+/v1)").group(1)
        process.wait_for("running")
        client = openai.OpenAI(base_url=url, api_key="sk-test", max_retries=0, timeout=10)
        assert client.responses.create(model="m", input="up?").output_text == "You said: up?"
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0, err
        assert "received SIGINT, shutting down" in out
        assert out.rstrip().endswith("streamvisor daemon stopped")
        assert "Traceback" not in err

    def test_the_default_command_runs_the_daemon_and_stops_on_sigterm(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """`python run.py` with no command is the daemon; SIGTERM stops it with exit code 0."""
        process = run_py(spawn, tmp_path)
        process.wait_for("no OPENAI_API_KEY, so the embedded OpenAI-compatible server at")
        process.wait_for("running")
        process.popen.send_signal(signal.SIGTERM)
        code, out, _ = process.finish()
        assert code == 0
        assert "received SIGTERM, shutting down" in out
        assert "streamvisor daemon stopped" in out

    def test_the_daemon_serves_its_gateway_and_says_where(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """The daemon prints the page's URL with a new token, once; /health answers with the
        running tree to that token only; the token file is private while it runs, then gone;
        no log line shows the token."""
        process = run_py(spawn, tmp_path)
        found = process.wait_for(r"live page: +(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)\n")
        url, token = found.group(1), found.group(2)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 401
        bearer = {"authorization": f"Bearer {token}"}
        health = httpx.get(f"{url}/health", headers=bearer, timeout=5).json()
        assert [child["id"] for child in health["children"]] == [
            "files",
            "background",
            "sessions",
            "agents",
        ]
        token_file = tmp_path / "var" / "gateway-token"
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0
        assert out.count(token) == 1
        assert token not in err
        assert not token_file.exists()

    def test_a_configured_gateway_token_is_required_and_never_printed(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """STREAMVISOR_GATEWAY_TOKEN: that token opens the gateway; the banner does not show it."""
        token = "a-configured-gateway-token-0123"
        process = run_py(spawn, tmp_path, env=clean_env(STREAMVISOR_GATEWAY_TOKEN=token))
        url = process.wait_for(r"live page: +(http://127\.0\.0\.1:\d+)/\?token=<").group(1)
        bearer = {"authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/health", headers=bearer, timeout=5).status_code == 200
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0
        assert token not in out
        assert token not in err

    def test_one_banner_names_the_page_to_open_and_labels_the_embedded_server(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """No second "Running on" URL from hypercorn (on stdout or in the log): the banner alone
        says where the page is (with its token), where SDKs go, and that the other URL is the
        embedded server's."""
        process = run_py(spawn, tmp_path, "daemon", "--status-interval", "0")
        banner = process.wait_for(
            r"streamvisor daemon running; Ctrl-C or SIGTERM to stop\n"
            r"  live page:   (http://127\.0\.0\.1:\d+)/\?token=[\w-]+\n"
            r"  OpenAI SDKs: OPENAI_BASE_URL=\1/v1 OPENAI_API_KEY=\$\(cat var/gateway-token\)\n"
            r"  model API:   no OPENAI_API_KEY, so the embedded OpenAI-compatible server at "
            r"http://127\.0\.0\.1:\d+/v1 \(canned replies, not a model\)\n"
        )
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0, err
        assert "Running on" not in out + err
        assert out.count("http://") == banner.group(0).count("http://") == 3

    def test_with_an_api_key_the_banner_names_the_api_and_never_the_key(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """A configured key: the banner says which API requests go to; the key is nowhere."""
        key = "sk-test-cli-banner-0123456789abcdef"
        env = clean_env(OPENAI_API_KEY=key, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
        process = run_py(spawn, tmp_path, "daemon", "--status-interval", "0", env=env)
        process.wait_for(r"  model API:   http://127\.0\.0\.1:9/v1\n")
        process.popen.send_signal(signal.SIGINT)
        code, out, err = process.finish()
        assert code == 0, err
        assert "embedded" not in out
        assert key not in out + err

    def test_a_non_loopback_gateway_without_a_token_refuses_to_start(self, tmp_path: Path) -> None:
        """`[gateway] host = "0.0.0.0"` without a token: a configuration error, exit code 2."""
        done = subprocess.run(
            [sys.executable, str(RUN_PY)],
            cwd=tmp_path,
            env=clean_env(STREAMVISOR_GATEWAY_HOST="0.0.0.0"),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "gateway.token" in done.stderr
        assert "not a loopback address" in done.stderr

    def test_it_prints_a_periodic_status_line(self, spawn: list[Process], tmp_path: Path) -> None:
        """With --status-interval, a one-line status (sessions, agents, background) repeats."""
        process = run_py(spawn, tmp_path, "daemon", "--status-interval", "0.2")
        process.wait_for(
            r"(status: 0 session\(s\), 0 agent\(s\), 0 active background response\(s\)[^\n]*\n"
            r"){2}"
        )
        process.popen.send_signal(signal.SIGINT)
        code, _, _ = process.finish()
        assert code == 0

    def test_a_registry_path_in_the_working_directory_is_created_there(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """The durable registry's default path is relative to where the daemon runs."""
        process = run_py(spawn, tmp_path)
        process.wait_for("running")
        process.popen.send_signal(signal.SIGINT)
        assert process.finish()[0] == 0
        assert (tmp_path / "var" / "streamvisor-registry.sqlite3").is_file()


class TestDemoCommand:
    def test_ctrl_c_in_a_demo_says_interrupted_without_a_traceback(
        self, spawn: list[Process], tmp_path: Path
    ) -> None:
        """SIGINT while a demo's nurseries run: exit code 130 and one word, as before it starts."""
        process = run_py(spawn, tmp_path, "demo", "background")
        process.wait_for(r"created B = resp_\w+")
        process.popen.send_signal(signal.SIGINT)
        code, _, err = process.finish()
        assert code == 130, err
        assert err.strip().splitlines()[-1] == "interrupted"
        assert "Traceback" not in err


class TestUntilInterrupted:
    """A demo runs under `until_interrupted`: SIGINT is a signal it waits for, never a
    KeyboardInterrupt raised in whichever task happens to run."""

    async def test_sigint_cancels_the_demo_and_exits_130(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        started = trio.Event()

        async def demo() -> int:
            started.set()
            await trio.sleep_forever()
            return 0

        async def interrupt() -> None:
            await started.wait()
            os.kill(os.getpid(), signal.SIGINT)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(interrupt)
            code = await until_interrupted(demo)
        assert code == 130
        assert capsys.readouterr().err.strip() == "interrupted"

    async def test_a_demo_that_ends_keeps_its_exit_code(self) -> None:
        async def demo() -> int:
            await trio.lowlevel.checkpoint()
            return 1

        assert await until_interrupted(demo) == 1

    async def test_sigint_inside_a_task_that_swallows_groups_still_interrupts(self) -> None:
        """SIGINT arriving while a task runs inside a wrapper that logs and drops exception
        groups, as hypercorn's ASGI wrapper does for the embedded server's requests: as a
        KeyboardInterrupt it was raised in that task, dropped there, and the demo ran to its
        end (exit 0)."""

        sent = threading.Event()

        def interrupt() -> None:
            os.kill(os.getpid(), signal.SIGINT)
            sent.set()

        async def busy() -> None:
            threading.Thread(target=interrupt).start()
            # The signal lands in this loop, in this task: its handler runs at the loop's next
            # bytecode boundary, before `sent` can be seen set.
            while not sent.is_set():
                pass
            await trio.lowlevel.checkpoint()

        async def demo() -> int:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(busy)
            except BaseExceptionGroup:
                pass  # "Error in ASGI Framework", and on
            await trio.lowlevel.checkpoint()
            return 0

        assert await until_interrupted(demo) == 130


class TestStatusLine:
    def test_it_names_sessions_agents_and_active_background_responses(self) -> None:
        """The status line reads the daemon's counts."""
        status = DaemonStatus(
            base_url="http://127.0.0.1:1/v1",
            embedded=True,
            children=(),
            sessions=2,
            agents=1,
            active_background=3,
        )
        line = status_line(status, uptime=75.0)
        assert line == (
            "status: 2 session(s), 1 agent(s), 3 active background response(s); up 1m15s"
        )


class TestBanner:
    def test_without_a_gateway_it_says_so_and_names_the_api(self) -> None:
        """`[gateway] enabled = false`: no page to open, and the banner says why."""
        from types import SimpleNamespace

        from streamvisor._cli import _banner
        from streamvisor.config import GatewaySection

        daemon = SimpleNamespace(
            mockapi=None, client=SimpleNamespace(settings=SimpleNamespace(base_url="https://x/v1"))
        )
        assert _banner(daemon, None, GatewaySection(enabled=False)).splitlines() == [  # type: ignore[arg-type]
            "streamvisor daemon running; Ctrl-C or SIGTERM to stop",
            "  gateway:     off ([gateway] enabled = false)",
            "  model API:   https://x/v1",
        ]


class TestGatewayHosts:
    def test_no_extra_names_lets_the_gateway_choose(self) -> None:
        """An empty `[gateway] allowed_hosts` means the gateway's own loopback default."""
        from streamvisor._cli import _gateway_hosts
        from streamvisor.config import GatewaySection

        assert _gateway_hosts(GatewaySection()) is None

    def test_extra_names_keep_the_loopback_names(self) -> None:
        """Names added for a reverse proxy never lock out the loopback names."""
        from streamvisor._cli import _gateway_hosts
        from streamvisor.config import GatewaySection

        hosts = _gateway_hosts(GatewaySection(allowed_hosts=("svc.internal",)))
        assert hosts == {"svc.internal", "localhost", "127.0.0.1", "::1"}
