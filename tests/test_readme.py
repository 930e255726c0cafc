"""The README's Python examples run as written (against the embedded server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamvisor import _samples as samples
from streamvisor.testing import gateway_thread

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
#: The embedding example: the first block that opens the daemon.
EMBEDDING = next(block for block in BLOCKS if "open_daemon(" in block)


def run_example(block: str, directory: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `block` in a fresh process with no API key (the embedded server), from `directory`
    (which gets the files the examples name); ``settings`` are further environment variables."""
    (directory / "diagram.png").write_bytes(samples.png(8, 8))
    script = directory / "example.py"
    script.write_text(block)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMVISOR_"))}
    env["STREAMVISOR_MOCKAPI_TOKEN_DELAY"] = "0"
    env.update(settings)
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_readme_has_python_examples() -> None:
    """There is something to check: the embedding and the runtime examples."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_example_runs(index: int, tmp_path: Path) -> None:
    """Each example runs to completion with no API key (the embedded server), in a fresh
    process, from a scratch directory holding the files it names. An unchanged OpenAI SDK
    program runs with only ``OPENAI_BASE_URL``/``OPENAI_API_KEY`` pointing at a daemon's
    ``/v1``."""
    block = BLOCKS[index]
    if "import openai" in block:
        with gateway_thread(tmp_path) as running:
            done = run_example(
                block, tmp_path, OPENAI_BASE_URL=running.v1_url, OPENAI_API_KEY=running.token
            )
    else:
        done = run_example(block, tmp_path, STREAMVISOR_BACKGROUND_REGISTRY_PATH=":memory:")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_the_embedding_example_runs_ten_times_over_one_var_directory(tmp_path: Path) -> None:
    """Run after run from one directory, the background registry under var/ persists, and the
    embedded server's fresh ids never collide with the records earlier runs left there."""
    for run in range(10):
        done = run_example(EMBEDDING, tmp_path)
        assert done.returncode == 0, f"run {run + 1}:\n{done.stderr[-3000:]}"
    registries = list((tmp_path / "var").glob("*.sqlite3"))
    assert registries, "the registry was not persisted under var/: the test proves nothing"
