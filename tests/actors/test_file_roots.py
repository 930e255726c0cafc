"""Reading under the roots against an adversary: the symlink swap race, and outside paths that
must all look alike."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from streamvisor.actors.files._errors import FileAccessError
from streamvisor.actors.files._roots import ReadableRoots

#: The race test stops after this many reads or this many seconds, whichever comes first.
RACE_TRIES = 4000
RACE_SECONDS = 3.0


class _Flipper:
    """Swaps ``root/dir`` between a real directory and a symlink to a directory outside the roots,
    as fast as it can, in a thread, until stopped. Every step is one atomic rename."""

    def __init__(self, root: Path, outside: Path) -> None:
        self.dir = root / "dir"
        self.away = root / "dir.away"
        self.spare = root / "link.spare"
        self.spare.symlink_to(outside, target_is_directory=True)
        self.flips = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="symlink-flipper", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            os.rename(self.dir, self.away)
            os.rename(self.spare, self.dir)  # root/dir is now a symlink out of the roots
            os.rename(self.dir, self.spare)
            os.rename(self.away, self.dir)  # and a real directory again
            self.flips += 1

    def __enter__(self) -> _Flipper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


class TestSymlinkSwapRace:
    """Swapping a directory for a symlink while the file is being opened never leaks outside."""

    def test_a_directory_swapped_for_an_outside_symlink_is_never_read_through(
        self, tmp_path: Path
    ) -> None:
        """Thousands of reads race a flipper: each returns the inside bytes or a typed error,
        and the outside file's marker is never read, not even once."""
        root = tmp_path / "root"
        (root / "dir").mkdir(parents=True)
        (root / "dir" / "file").write_bytes(b"inside")
        outside = tmp_path / "outside"
        outside.mkdir()
        marker = b"OUTSIDE-MARKER-" + os.urandom(8).hex().encode()
        (outside / "file").write_bytes(marker)
        roots = ReadableRoots([root])

        seen: Counter[str] = Counter()
        with _Flipper(root, outside) as flipper:
            deadline = time.monotonic() + RACE_SECONDS
            for _ in range(RACE_TRIES):
                if time.monotonic() > deadline:
                    break
                try:
                    _real, data = roots.read(root / "dir" / "file", 100)
                except FileAccessError as exc:
                    seen[type(exc).__name__] += 1
                except Exception as exc:  # untyped: counted, so one run shows every failure
                    seen[f"untyped {type(exc).__name__}"] += 1
                else:
                    seen["marker" if marker in data else repr(data)] += 1
        print(f"race outcomes over {flipper.flips} flips: {dict(seen)}")
        assert flipper.flips > 0
        assert seen["marker"] == 0, f"read the outside file {seen['marker']} times: {dict(seen)}"
        assert set(seen) <= {"b'inside'", "OutsideAllowedRoots", "MissingFile"}, dict(seen)
        assert seen["b'inside'"] > 0, dict(seen)
