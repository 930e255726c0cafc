"""Reading files under configured roots, and checking them for their purpose.

:class:`ReadableRoots` confines reads to configured directories; :func:`load_file` reads a file
under them and checks it against the rules. This is the only code of the file actor that touches
the file system: it blocks, and the actor runs it in a worker thread with
``trio.to_thread.run_sync``.

A path is never resolved and then opened (another process can swap a directory for a symlink in
between). It is opened in one step that the kernel confines to the root: ``openat2(2)`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` (Linux 5.6+), or, where that is missing or forbidden by
seccomp, a walk from the root's directory fd that opens one component at a time with
``O_NOFOLLOW``. The bytes checked and uploaded are the bytes read from that one fd.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import stat
import sys
from collections.abc import Callable, Collection
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


# --------------------------------------------------------------------------------------------
# Opening beneath a directory fd

#: ``openat2`` has one number on the architectures that share the generic syscall table.
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437}
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: The file itself. Non-blocking, so that a FIFO or device is refused by ``fstat`` instead of
#: hanging the open; the flag is cleared before reading a regular file.
_FILE_FLAGS = (
    os.O_RDONLY | _CLOEXEC | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
)
_DIR_FLAGS = os.O_RDONLY | _CLOEXEC | getattr(os, "O_DIRECTORY", 0)


class _OpenHow(ctypes.Structure):
    _fields_ = (("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64))


_Openat2 = Callable[[int, str, int, int], int]


@functools.cache
def _openat2() -> _Openat2 | None:
    """The ``openat2`` syscall as ``(dir_fd, path, flags, resolve) -> fd``, or None if this kernel
    (or its seccomp filter) does not offer it. Probed once per process."""
    number = _SYS_OPENAT2.get(platform.machine()) if sys.platform == "linux" else None
    if number is None:
        return None
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long

    def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
        how = _OpenHow(flags, 0, resolve)
        while True:  # retried on EINTR, as os.open does (PEP 475)
            fd = int(
                syscall(
                    ctypes.c_long(number),
                    ctypes.c_int(dir_fd),
                    ctypes.c_char_p(os.fsencode(path)),
                    ctypes.byref(how),
                    ctypes.c_size_t(ctypes.sizeof(how)),
                )
            )
            if fd >= 0:
                return fd
            code = ctypes.get_errno()
            if code != errno.EINTR:
                raise OSError(code, os.strerror(code))

    try:
        root = os.open("/", _DIR_FLAGS)
        try:
            os.close(openat2(root, ".", _DIR_FLAGS, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS))
        finally:
            os.close(root)
    except OSError:
        # ENOSYS before Linux 5.6, EPERM (or ENOSYS) from a seccomp filter that does not know the
        # syscall, EINVAL/E2BIG from a kernel without these flags: the walk is as safe, if slower.
        return None
    return openat2


def _walk(root_fd: int, parts: tuple[str, ...]) -> int:
    # One component at a time, each opened relative to its parent's fd, none of them followed
    # if it is a symlink: what the kernel does for openat2 above, done by hand.
    fd = root_fd
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except NotADirectoryError:
                # O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a symlink too. A look after the fact
                # tells them apart; finding a directory there now means it was swapped since.
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
                if stat.S_ISLNK(mode) or stat.S_ISDIR(mode):
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP)) from None
                raise
            if fd != root_fd:
                os.close(fd)
            fd = child
        return os.open(parts[-1] if parts else ".", _FILE_FLAGS, dir_fd=fd)
    finally:
        if fd != root_fd:
            os.close(fd)


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """Open ``root/parts...`` for reading without following any symlink or leaving ``root``.

    Raises:
        OSError: with the kernel's errno; ELOOP (or EXDEV) for a symlink anywhere on the way.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    try:
        openat2 = _openat2()
        if openat2 is None:
            return _walk(root_fd, parts)
        path = os.path.join(*parts) if parts else "."
        return openat2(root_fd, path, _FILE_FLAGS, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)
    finally:
        os.close(root_fd)


# --------------------------------------------------------------------------------------------
# The roots


def _absolute_roots(value: object) -> tuple[Path, ...]:
    if isinstance(value, str | os.PathLike):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset):
        raise TypeError(f"readable roots must be a path or a collection of paths, not {value!r}")
    roots = tuple(Path(root).expanduser() for root in value)
    for root in roots:
        if not root.is_absolute():
            raise ValueError(f"readable root {str(root)!r} must be an absolute path")
    if not roots:
        raise ValueError("at least one readable root is required")
    return roots


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


@attrs.frozen(init=False)
class ReadableRoots:
    """The directories files may be read from; everything else is refused alike.

    Roots must be absolute; each is resolved once, at construction (a root may itself be a
    symlink: configuration is trusted). A requested path is never resolved:

    * a relative path is taken under the first root;
    * an absolute path must start with a root, as configured or as resolved, and is taken under
      the longest such root;
    * what follows the root is opened component by component with no symlink followed and no
      ``..`` accepted, confined by the kernel (see the module docstring). Symlinks inside the
      roots are refused even when they point inside: follow them when configuring the roots.

    Whatever lies outside (an outside path, a missing or existing outside file, a ``..`` or a
    symlink on the way) gets one answer, :class:`OutsideAllowedRoots` with one message, so the
    error never tells what exists outside the roots.
    """

    #: The roots, resolved.
    roots: tuple[Path, ...]
    #: (spelling, resolved root) pairs, longest spelling first, to place absolute paths.
    _spellings: tuple[tuple[Path, Path], ...] = attrs.field(repr=False, eq=False)

    def __init__(self, roots: str | os.PathLike[str] | Collection[str | os.PathLike[str]]) -> None:
        given = _absolute_roots(roots)
        real = tuple(root.resolve() for root in given)
        spellings = {*zip(given, real, strict=True), *((root, root) for root in real)}
        ordered = sorted(spellings, key=lambda pair: len(pair[0].parts), reverse=True)
        self.__attrs_init__(real, tuple(ordered))

    def _locate(self, path: str | os.PathLike[str]) -> tuple[Path, tuple[str, ...]]:
        """Split ``path`` into the root it lies under and the components below that root.

        Lexical only: nothing is looked up, so nothing is revealed about what exists anywhere.

        Raises:
            OutsideAllowedRoots: an absolute path under no root, or a ``..`` component.
            UnreadableFile: the path contains a NUL byte (no file can be named so).
        """
        shown = os.fspath(path)
        if "\0" in shown:
            raise UnreadableFile(shown, "the path contains a NUL byte")
        candidate = Path(path).expanduser()
        found = self._under(candidate)
        if found is None or ".." in found[1]:
            raise OutsideAllowedRoots(shown, self._names())
        return found

    def read(self, path: str | os.PathLike[str], limit: int) -> tuple[Path, bytes]:
        """Open ``path`` beneath its root and read at most ``limit`` bytes of it.

        The open is one confined step (no resolve-then-open window); the file's type and size
        come from ``fstat`` of the opened fd, and the bytes are read from that fd with a cap of
        ``limit + 1``, so a file that grows past the limit is caught without reading the rest.
        Returns the real path (root + components: no symlink or ``..`` was taken) and the bytes.

        Raises:
            OutsideAllowedRoots: outside every root, a ``..`` component, or a symlink on the way
                (one message for all, whatever is or is not at the other end).
            MissingFile: nothing exists there, under the root.
            PathIsADirectory: it is a directory.
            NotARegularFile: it is a pipe, socket or device (refused without blocking).
            FileTooLarge: it is (or becomes) larger than ``limit`` (``purpose`` is None here).
            UnreadableFile: permission denied, a file used as a directory, an I/O error, a NUL.
        """
        shown = os.fspath(path)
        root, parts = self._locate(path)
        try:
            fd = _open_beneath(root, parts)
        except OSError as exc:
            raise self._open_error(shown, exc) from None
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathIsADirectory(shown)
            if not stat.S_ISREG(info.st_mode):
                raise NotARegularFile(shown, _kind(info.st_mode))
            if info.st_size > limit:
                raise FileTooLarge(shown, info.st_size, limit, None)
            try:
                os.set_blocking(fd, True)
                data = _read_capped(fd, limit + 1)
            except OSError as exc:
                raise UnreadableFile(shown, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise FileTooLarge(shown, len(data), limit, None)
        return root.joinpath(*parts), data

    def _under(self, candidate: Path) -> tuple[Path, tuple[str, ...]] | None:
        if not candidate.is_absolute():
            return self.roots[0], candidate.parts
        for spelling, real in self._spellings:
            depth = len(spelling.parts)
            if candidate.parts[:depth] == spelling.parts:
                return real, candidate.parts[depth:]
        return None

    def _open_error(self, shown: str, exc: OSError) -> OSError:
        # With no symlink followed and no "..", every answer but ELOOP/EXDEV is about an entry
        # under the root, so it may be told as it is.
        if exc.errno in (errno.ELOOP, errno.EXDEV):
            return OutsideAllowedRoots(shown, self._names())
        if exc.errno == errno.ENOENT:
            return MissingFile(shown)
        return UnreadableFile(shown, exc.strerror or str(exc))

    def _names(self) -> list[str]:
        return [str(root) for root in self.roots]


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
    #: Its real path: the root it was read under, resolved, and the components below it.
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

    The checks apply to the bytes read from the one fd opened beneath the root; the path is never
    opened again.

    Raises:
        UnknownPurpose: ``purpose`` is not an upload purpose.
        MissingFile, OutsideAllowedRoots, PathIsADirectory, NotARegularFile, UnreadableFile:
            the file cannot be read as asked (see :meth:`ReadableRoots.read`).
        EmptyFile, FileTooLarge, UnsupportedFileType, AnimatedImageNotAllowed, MalformedFile,
            ImageTooLarge: the content breaks a rule (see :func:`check_content`).
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
