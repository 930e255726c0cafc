"""`python run.py cluster --nodes N`: engines from the wheels, one embedded OpenAI server, N
daemons that answer on their gateways as one system; Ctrl-C stops everything cleanly."""

from __future__ import annotations

import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import Process, clean_env, run_py, spawn

__all__ = ["spawn"]

pytestmark = pytest.mark.slow


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Outside pytest's own temporary tree (private to root): PostgreSQL runs as its own user."""
    directory = Path(tempfile.mkdtemp(prefix="sv-cluster-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_two_nodes_start_answer_share_a_session_and_stop_on_sigint(
    spawn: list[Process], tmp_path: Path, scratch: Path
) -> None:
    process = run_py(
        spawn,
        tmp_path,
        "cluster",
        "--nodes",
        "2",
        "--lease-ttl",
        "2",
        "--base-port",
        "0",
        "--directory",
        str(scratch),
        env=clean_env(),
    )
    process.wait_for(r"2 node\(s\) running", timeout=90)
    nodes = re.findall(r"(node-\d): (http://127\.0\.0\.1:\d+)/\?token=(\S+)", process.out)
    assert [name for name, _, _ in nodes] == ["node-1", "node-2"]
    (_, url_a, token_a), (_, url_b, token_b) = nodes
    with httpx.Client(timeout=30) as http:
        ticket = http.post(
            f"{url_a}/sessions/tour/responses",
            headers={"authorization": f"Bearer {token_a}"},
            json={"model": "gpt-4o-mini", "input": "hello"},
        ).json()
        outcome = http.post(
            f"{url_b}/sessions/tour/wait/{ticket['stream_id']}",
            headers={"authorization": f"Bearer {token_b}"},
            json={},
        )
    assert outcome.status_code == 200, outcome.text
    assert outcome.json()["status"] == "completed"
    process.popen.send_signal(signal.SIGINT)
    code, out, err = process.finish(timeout=60)
    assert code == 0, err
    assert "stopping the cluster" in out
    assert out.rstrip().endswith("cluster stopped")
    assert "Traceback" not in err
