"""Reading files under configured roots, and checking them for their purpose.

:class:`ReadableRoots` confines reads to configured directories (``..`` and symlinks resolved);
:func:`load_file` reads a file under them and checks it against the rules. This is the only code of
the file actor that touches the file system: it blocks, and the actor runs it in a worker thread
with ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs

from ._dedup import content_digest
from ._errors import (
    FileTooLarge,
    MissingFile,
    NotARegularFile,
    OutsideAllowedRoots,
    PathIsADirectory,
    UnreadableFile,
)
from ._rules import DEFAULT_RULES, MIB, FileRules, Purpose, check_content, parse_purpose
from ._sniff import SniffResult

__all__ = ["LoadedFile", "ReadableRoots", "load_file"]


def _resolve_root(root: str | os.PathLike[str]) -> Path:
    path = Path(root).expanduser()
    if not path.is_absolute():
        raise ValueError(f"readable root {str(root)!r} must be an absolute path")
    return path.resolve()


def _to_roots(value: object) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset):
        raise TypeError(f"readable roots must be a path or a collection of paths, not {value!r}")
    return tuple(_resolve_root(r) for r in value)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "special file"


@attrs.frozen
class ReadableRoots:
    """The directories files may be read from; everything else is refused.

    Roots must be absolute and are resolved once (symlinks followed) at construction. A requested
    path is resolved the same way, so ``..`` segments and symlinks that lead outside every root
    are caught; relative paths are taken relative to the first root.

    The check narrows, but cannot close, the window in which another process swaps a directory for
    a symlink between resolving and opening: :meth:`read` re-checks the opened file's identity.
    """

    roots: tuple[Path, ...] = attrs.field(converter=_to_roots)

    @roots.validator
    def _non_empty(
        self, _attribute: attrs.Attribute[tuple[Path, ...]], value: tuple[Path, ...]
    ) -> None:
        if not value:
            raise ValueError("at least one readable root is required")

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """Return the real path of ``path`` if it lies under a root.

        Raises:
            MissingFile: nothing exists there (including a dangling symlink).
            OutsideAllowedRoots: it resolves outside every root.
            UnreadableFile: the OS refused to resolve it (e.g. a symlink loop, permissions).
        """
        shown = os.fspath(path)
        if "\0" in shown:
            # The OS cannot name such a file; Path.resolve would raise a bare ValueError.
            raise UnreadableFile(shown, "the path contains a NUL byte")
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        try:
            real = candidate.resolve(strict=True)
        except FileNotFoundError:
            # Say "outside" rather than "missing" when the path would escape anyway, so the
            # answer does not reveal what exists outside the roots.
            if not self._inside(Path(os.path.realpath(candidate))):
                raise OutsideAllowedRoots(shown, self._names()) from None
            raise MissingFile(shown) from None
        except (OSError, RuntimeError) as exc:
            raise UnreadableFile(shown, str(exc)) from None
        if not self._inside(real):
            raise OutsideAllowedRoots(shown, self._names(), str(real))
        return real

    def read(self, path: str | os.PathLike[str], limit: int) -> tuple[Path, bytes]:
        """Resolve ``path`` under the roots and read at most ``limit`` bytes of it.

        The file is read with a cap of ``limit + 1`` bytes, so a file that grows past the limit
        while being read is caught without reading the rest. Returns the resolved path and bytes.

        Raises:
            MissingFile, OutsideAllowedRoots: see :meth:`resolve`.
            PathIsADirectory: it is a directory.
            NotARegularFile: it is a pipe, socket or device.
            FileTooLarge: it is (or becomes) larger than ``limit`` (``purpose`` is None here).
            UnreadableFile: permission denied or an I/O error.
        """
        shown = os.fspath(path)
        real = self.resolve(path)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags)
        except IsADirectoryError:
            raise PathIsADirectory(shown) from None
        except FileNotFoundError:
            raise MissingFile(shown) from None
        except OSError as exc:
            raise UnreadableFile(shown, exc.strerror or str(exc)) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathIsADirectory(shown)
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(shown, _kind(info.st_mode))
            if self.resolve(path) != real or not _same_file(os.stat(real), info):
                raise OutsideAllowedRoots(shown, self._names(), str(real))
            if info.st_size > limit:
                raise FileTooLarge(shown, info.st_size, limit, None)
            try:
                data = _read_capped(fd, limit + 1)
            except OSError as exc:
                raise UnreadableFile(shown, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise FileTooLarge(shown, len(data), limit, None)
        return real, data

    def _inside(self, real: Path) -> bool:
        return any(real == root or real.is_relative_to(root) for root in self.roots)

    def _names(self) -> list[str]:
        return [str(root) for root in self.roots]


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_capped(fd: int, cap: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < cap:
        chunk = os.read(fd, min(cap - len(chunks), MIB))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


@attrs.frozen
class LoadedFile:
    """A file read under the roots and checked for its purpose: ready to upload."""

    #: The path as the caller gave it (used in errors and logs).
    path: str
    #: Its resolved real path.
    real_path: Path
    #: The name to upload it under (the real file's base name; never used to decide its type).
    filename: str
    data: bytes = attrs.field(repr=lambda d: f"<{len(d)} bytes>")
    purpose: Purpose
    sniffed: SniffResult
    #: :func:`content_digest` of ``data``.
    digest: str


def load_file(
    path: str | os.PathLike[str],
    purpose: Purpose | str,
    *,
    roots: ReadableRoots,
    rules: FileRules = DEFAULT_RULES,
) -> LoadedFile:
    """Read ``path`` under ``roots`` and check it for ``purpose``. Blocking: run it in a thread.

    Raises:
        UnknownPurpose: ``purpose`` is not an upload purpose.
        MissingFile, OutsideAllowedRoots, PathIsADirectory, NotARegularFile, UnreadableFile:
            the file cannot be read as asked (see :meth:`ReadableRoots.read`).
        EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedGifNotAllowed, MalformedFile:
            the content breaks a rule (see :func:`check_content`).
    """
    shown = os.fspath(path)
    parsed = parse_purpose(purpose, shown)
    limit = rules.size_limit(parsed)
    try:
        real, data = roots.read(path, limit)
    except FileTooLarge as exc:
        raise FileTooLarge(shown, exc.size, exc.limit, parsed.value) from None
    found = check_content(data, parsed, rules=rules, path=shown)
    return LoadedFile(
        path=shown,
        real_path=real,
        filename=real.name,
        data=data,
        purpose=parsed,
        sniffed=found,
        digest=content_digest(data),
    )
