"""The README's Python examples run as written (against the embedded server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamvisor import _samples as samples

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_python_examples() -> None:
    """There is something to check: the embedding and the runtime examples."""
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_readme_example_runs(index: int, tmp_path: Path) -> None:
    """Each example runs to completion with no API key (the embedded server), in a fresh
    process, from a scratch directory holding the files it names."""
    (tmp_path / "diagram.png").write_bytes(samples.png(8, 8))
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMVISOR_"))}
    env["STREAMVISOR_BACKGROUND_REGISTRY_PATH"] = ":memory:"
    env["STREAMVISOR_MOCKAPI_TOKEN_DELAY"] = "0"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
