"""[cluster] without the cluster extra installed: a configuration error saying what to install,
before anything starts (and never showing the DSN)."""

from __future__ import annotations

import sys

import pytest

from streamvisor.config import ClusterSection, Config, ConfigError
from streamvisor.daemon import open_daemon


async def test_without_the_extra_a_cluster_config_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [
        m
        for m in sys.modules
        if m == "streamvisor.cluster" or m.startswith(("streamvisor.cluster.", "nats"))
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "nats", None)  # import nats now fails, as when missing
    config = Config(
        cluster=ClusterSection(
            postgres_dsn="postgresql://sv:hunter2-secret@127.0.0.1:1/sv",
            nats_url="nats://127.0.0.1:1",
        )
    )
    with pytest.raises(ConfigError, match=r"cluster extra .*pip install") as info:
        async with open_daemon(config, configure_logs=False):
            pass  # pragma: no cover
    assert info.value.key == "cluster.postgres_dsn"
    assert "hunter2-secret" not in str(info.value)
