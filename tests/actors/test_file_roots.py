"""Reading under the roots against an adversary: the symlink swap race, and outside paths that
must all look alike."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from streamvisor.actors.files import _roots as _file_roots
from streamvisor.actors.files._errors import (
    FileAccessError,
    FileTooLarge,
    MissingFile,
    NotARegularFile,
    OutsideAllowedRoots,
    PathIsADirectory,
    UnreadableFile,
)
from streamvisor.actors.files._roots import ReadableRoots, load_file

#: The race test stops after this many reads or this many seconds, whichever comes first.
RACE_TRIES = 4000
RACE_SECONDS = 3.0


@pytest.fixture(params=["openat2", "walk"])
def opener(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: with the kernel's openat2, and with the O_NOFOLLOW walk that
    stands in where openat2 is missing (before Linux 5.6) or forbidden (seccomp)."""
    if request.param == "openat2" and _file_roots._openat2() is None:
        pytest.skip("openat2 is not available here")
    if request.param == "walk":
        monkeypatch.setattr(_file_roots, "_openat2", lambda: None)
    return str(request.param)


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


@pytest.mark.usefixtures("opener")
class TestSymlinkSwapRace:
    """Swapping a directory for a symlink while the file is being opened never leaks outside."""

    @pytest.mark.parametrize("reader", ["ReadableRoots.read", "load_file"])
    def test_a_directory_swapped_for_an_outside_symlink_is_never_read_through(
        self, tmp_path: Path, reader: str
    ) -> None:
        """Thousands of reads race a flipper: each returns the inside bytes or a typed error,
        and the outside file's marker is never read, not even once (by the bare read, or by
        load_file, which checks and returns the bytes it read from the one fd)."""
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
                    if reader == "load_file":
                        data = load_file(root / "dir" / "file", "user_data", roots=roots).data
                    else:
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
        # Once the flipper has stopped (a real directory again), the same read simply works.
        assert roots.read(root / "dir" / "file", 100)[1] == b"inside"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_bytes(b"inside")
    (tmp_path / "secret.txt").write_bytes(b"outside")
    (tmp_path / "outdir").mkdir()
    return root


def _outside_error(roots: ReadableRoots, path: str | Path) -> OutsideAllowedRoots:
    with pytest.raises(OutsideAllowedRoots) as info:
        roots.read(path, 100)
    return info.value


@pytest.mark.usefixtures("opener")
class TestNothingIsRevealedOutside:
    """Every way out of the roots gets the same typed error with the same message shape."""

    def test_an_existing_and_a_missing_outside_file_get_identical_errors(
        self, root: Path, tmp_path: Path
    ) -> None:
        """Whether an outside file exists cannot be told from the error: same type, same
        message once the path (the caller's own words) is taken out, same attributes."""
        roots = ReadableRoots([root])
        errors = [_outside_error(roots, tmp_path / name) for name in ("secret.txt", "absent.txt")]
        assert [type(e) for e in errors] == [OutsideAllowedRoots, OutsideAllowedRoots]
        shapes = [str(e).removeprefix(f"{e.path}: ") for e in errors]
        assert shapes[0] == shapes[1]
        assert [(e.roots, e.rule, e.errno) for e in errors] == [
            ((str(root),), "allowed_roots", None)
        ] * 2
        assert all(isinstance(e, PermissionError) for e in errors)

    @pytest.mark.parametrize("target", ["secret.txt", "absent.txt", "outdir", "."])
    def test_every_way_out_gets_one_message(self, root: Path, tmp_path: Path, target: str) -> None:
        """Outside paths, `..` traversals, escaping file and directory symlinks, to an existing
        file, a missing one, a directory: one message, independent of the target."""
        (root / "link").symlink_to(tmp_path / target)
        (root / "dirlink").symlink_to(tmp_path)
        roots = ReadableRoots([root])
        ways = {
            "absolute": tmp_path / target,
            "dotdot": root / "sub" / ".." / ".." / target,
            "relative dotdot": Path("..") / target,
            "file symlink": root / "link",
            "directory symlink": root / "dirlink" / target,
        }
        shapes = set()
        for way, path in ways.items():
            err = _outside_error(roots, path)
            assert err.path == str(path), way
            shapes.add(str(err).removeprefix(f"{path}: "))
        assert shapes == {
            f"is not under the readable roots (no symlinks or '..' are followed); allowed: {root}"
        }

    def test_the_outside_target_is_never_touched(
        self, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An absolute path under no root is refused without a single system call on it."""
        touched: list[object] = []
        real_open = os.open

        def spy(path: object, *args: object, **kwargs: object) -> int:
            touched.append(path)
            return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(_file_roots.os, "open", spy)
        _outside_error(ReadableRoots([root]), tmp_path / "secret.txt")
        assert touched == []


@pytest.mark.usefixtures("opener")
class TestReadableRoots:
    """`ReadableRoots` confines reads to configured directories."""

    def test_a_file_under_the_root_is_read(self, root: Path) -> None:
        """The real path and the bytes come back."""
        real, data = ReadableRoots([root]).read(root / "sub" / "a.txt", 100)
        assert (real, data) == (root / "sub" / "a.txt", b"inside")

    def test_relative_paths_are_taken_from_the_first_root(self, root: Path, tmp_path: Path) -> None:
        """A relative path does not depend on the daemon's working directory."""
        roots = ReadableRoots([root, tmp_path / "other"])
        assert roots.read("sub/a.txt", 100) == (root / "sub" / "a.txt", b"inside")

    def test_an_absolute_path_under_a_later_root_is_read(self, root: Path, tmp_path: Path) -> None:
        """Absolute paths are placed under whichever root they start with."""
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "b.txt").write_bytes(b"other")
        roots = ReadableRoots([root, tmp_path / "other"])
        assert roots.read(tmp_path / "other" / "b.txt", 100)[1] == b"other"

    def test_dot_components_and_doubled_slashes_are_harmless(self, root: Path) -> None:
        """`.` and `//` name the same entry; they are not `..`."""
        assert ReadableRoots([root]).read(f"{root}/./sub//a.txt", 100)[1] == b"inside"

    def test_a_single_root_may_be_given_as_a_string(self, root: Path) -> None:
        """A plain path string is one root."""
        assert ReadableRoots(str(root)).roots == (root,)

    def test_a_symlinked_root_is_resolved_and_either_spelling_works(
        self, root: Path, tmp_path: Path
    ) -> None:
        """A root that is itself a symlink (configuration is trusted) is resolved once; paths
        may name it as configured or as resolved."""
        (tmp_path / "link-root").symlink_to(root)
        roots = ReadableRoots([tmp_path / "link-root"])
        assert roots.roots == (root,)
        assert roots.read(tmp_path / "link-root" / "sub" / "a.txt", 100) == (
            root / "sub" / "a.txt",
            b"inside",
        )
        assert roots.read(root / "sub" / "a.txt", 100)[1] == b"inside"

    def test_a_path_with_a_nul_byte_is_unreadable_not_a_crash(self, root: Path) -> None:
        """A NUL byte cannot name a file: a typed UnreadableFile, not a bare ValueError."""
        with pytest.raises(UnreadableFile, match="NUL byte"):
            ReadableRoots([root]).read(str(root / "sub" / "a.txt\0.png"), 100)

    def test_dotdot_is_refused_even_when_it_stays_inside(self, root: Path) -> None:
        """`..` is never taken, so sub/../sub/a.txt is refused like an escape."""
        _outside_error(ReadableRoots([root]), root / "sub" / ".." / "sub" / "a.txt")

    def test_a_symlink_within_the_root_is_refused(self, root: Path) -> None:
        """Links are not followed even when they stay inside (behaviour since the race fix)."""
        (root / "alias.txt").symlink_to(root / "sub" / "a.txt")
        (root / "alias-dir").symlink_to(root / "sub")
        roots = ReadableRoots([root])
        _outside_error(roots, root / "alias.txt")
        _outside_error(roots, root / "alias-dir" / "a.txt")

    def test_a_dangling_symlink_and_a_loop_are_refused_like_any_link(self, root: Path) -> None:
        """Links are refused unread, so where they lead (nowhere, round in circles) is moot."""
        (root / "dangling").symlink_to(root / "gone")
        (root / "loop-a").symlink_to(root / "loop-b")
        (root / "loop-b").symlink_to(root / "loop-a")
        roots = ReadableRoots([root])
        _outside_error(roots, root / "dangling")
        _outside_error(roots, root / "loop-a")

    def test_a_sibling_directory_sharing_the_prefix_is_outside(self, tmp_path: Path) -> None:
        """/x/root2 is not under /x/root, whatever the string prefix says."""
        (tmp_path / "root").mkdir()
        (tmp_path / "root2").mkdir()
        (tmp_path / "root2" / "f.txt").write_bytes(b"x")
        _outside_error(ReadableRoots([tmp_path / "root"]), tmp_path / "root2" / "f.txt")

    def test_a_missing_file_is_missing(self, root: Path) -> None:
        """MissingFile is a FileNotFoundError naming the path (inside the root, so it may)."""
        path = root / "nope.txt"
        with pytest.raises(MissingFile, match=r"nope\.txt: no such file$") as info:
            ReadableRoots([root]).read(path, 100)
        assert isinstance(info.value, FileNotFoundError)
        assert info.value.path == str(path)

    def test_a_missing_directory_on_the_way_is_missing(self, root: Path) -> None:
        """A component that does not exist makes the file missing."""
        with pytest.raises(MissingFile):
            ReadableRoots([root]).read(root / "nodir" / "a.txt", 100)

    def test_a_file_used_as_a_directory_is_unreadable(self, root: Path) -> None:
        """sub/a.txt/x: the OS's 'Not a directory'."""
        with pytest.raises(UnreadableFile, match="Not a directory"):
            ReadableRoots([root]).read(root / "sub" / "a.txt" / "x", 100)

    @pytest.mark.parametrize("spelling", ["sub", "root"])
    def test_a_directory_is_refused(self, root: Path, spelling: str) -> None:
        """PathIsADirectory is both NotARegularFile and IsADirectoryError (the root too)."""
        path = root / "sub" if spelling == "sub" else root
        with pytest.raises(PathIsADirectory, match=r": is a directory, not a regular file") as info:
            ReadableRoots([root]).read(path, 100)
        assert isinstance(info.value, IsADirectoryError)
        assert info.value.kind == "directory"

    def test_a_named_pipe_is_refused_without_blocking(self, root: Path) -> None:
        """A FIFO is opened non-blocking and refused as not a regular file."""
        os.mkfifo(root / "pipe")
        with pytest.raises(NotARegularFile, match="pipe: is a named pipe") as info:
            ReadableRoots([root]).read(root / "pipe", 100)
        assert info.value.kind == "named pipe"

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
    def test_an_unreadable_file_says_why(self, root: Path) -> None:
        """Permission denied becomes UnreadableFile with the OS's reason."""
        path = root / "locked.txt"
        path.write_bytes(b"x")
        path.chmod(0)
        try:
            with pytest.raises(
                UnreadableFile, match=r"locked\.txt: cannot be read: Permission denied"
            ):
                ReadableRoots([root]).read(path, 100)
        finally:
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)

    def test_an_io_error_while_reading_says_why(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failing read (EIO) becomes UnreadableFile, an OSError naming the path."""

        def failing_read(fd: int, size: int) -> bytes:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(_file_roots.os, "read", failing_read)
        with pytest.raises(UnreadableFile, match=r"a\.txt: cannot be read: Input/output error$"):
            ReadableRoots([root]).read(root / "sub" / "a.txt", 100)

    def test_a_file_over_the_limit_is_refused_before_reading(self, root: Path) -> None:
        """The size on disk already breaks the limit."""
        (root / "big.bin").write_bytes(b"x" * 101)
        with pytest.raises(FileTooLarge) as info:
            ReadableRoots([root]).read(root / "big.bin", 100)
        assert (info.value.size, info.value.limit) == (101, 100)

    def test_a_file_that_grows_while_being_read_is_caught_at_the_cap(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The read stops at limit + 1 bytes even when fstat saw a small file."""
        path = root / "growing.log"
        path.write_bytes(b"x" * 10_000)
        real_fstat: Callable[[int], os.stat_result] = os.fstat

        def stale_fstat(fd: int) -> os.stat_result:
            fields = list(real_fstat(fd))
            fields[stat.ST_SIZE] = 10  # the size when it was stat'ed, before it grew
            return os.stat_result(fields)

        monkeypatch.setattr(_file_roots.os, "fstat", stale_fstat)
        with pytest.raises(FileTooLarge) as info:
            ReadableRoots([root]).read(path, 100)
        assert (info.value.size, info.value.limit) == (101, 100)

    @pytest.mark.parametrize(
        ("roots", "message"),
        [
            pytest.param([], "at least one readable root", id="empty"),
            pytest.param(["relative/dir"], "must be an absolute path", id="relative"),
        ],
    )
    def test_bad_roots_are_rejected_at_construction(self, roots: list[str], message: str) -> None:
        """Roots must be given, and absolute."""
        with pytest.raises(ValueError, match=message):
            ReadableRoots(roots)


class TestOpeners:
    """The kernel's confinement where it is there, and the walk that stands in for it."""

    def test_a_kernel_without_openat2_falls_back_to_the_walk(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """ENOSYS from the probe (an unknown syscall number here) means 'not available'."""
        (tmp_path / "f.txt").write_bytes(b"walked")
        _file_roots._openat2.cache_clear()
        monkeypatch.setitem(_file_roots._SYS_OPENAT2, os.uname().machine, 1023)
        try:
            assert _file_roots._openat2() is None
            assert ReadableRoots([tmp_path]).read(tmp_path / "f.txt", 100)[1] == b"walked"
        finally:
            _file_roots._openat2.cache_clear()

    def test_the_walk_refuses_a_directory_that_was_a_symlink_when_opened(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """O_DIRECTORY | O_NOFOLLOW fails with ENOTDIR on a symlink; if a real directory is back
        by the time the walk looks, it was swapped: refused as a symlink, not 'Not a directory'."""
        monkeypatch.setattr(_file_roots, "_openat2", lambda: None)
        real_open = os.open

        def open_during_a_swap(path: str, flags: int, mode: int = 0o777, **kw: int) -> int:
            if path == "sub":
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            return real_open(path, flags, mode, **kw)

        monkeypatch.setattr(_file_roots.os, "open", open_during_a_swap)
        _outside_error(ReadableRoots([root]), root / "sub" / "a.txt")
