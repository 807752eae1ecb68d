"""``dispatcher up`` supervises: a killed worker comes back, a taken port fails loudly.

These run the real command as a user would (its own embedded broker and database), so what is
proven is what an operator gets: the exit code, the lines on stderr, the restarted worker's
``/healthz``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.devstack.embedded import free_port
from dispatcher.devstack.stack import healthz


class UpProcess:
    """``python -m dispatcher up`` with its stdout and stderr collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher", "up", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def wait_for(self, lines: list[str], text: str, timeout_s: float = 90.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [line for line in lines if text in line]
            if found:
                return found[0]
            if self.proc.poll() is not None and not any(t.is_alive() for t in self._threads):
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen; stdout={self.out} stderr={self.err}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        for t in self._threads:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return rc


def up_env(data_dir: Path, web_port: int, api_port: int) -> dict[str, str]:
    """The caller's environment without any DISPATCHER_* (so `up` starts its own stack)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(
        DISPATCHER_DATA_DIR=str(data_dir),
        DISPATCHER_WEB_PORT=str(web_port),
        DISPATCHER_API_PORT=str(api_port),
        DISPATCHER_PARTITIONS="2",
        DISPATCHER_LOG_LEVEL="warning",
    )
    return env


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Short path: pgserver puts its unix socket in here (107-byte limit).
    with tempfile.TemporaryDirectory(prefix="dsu-", dir="/tmp") as d:
        yield Path(d)


def children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["/usr/bin/pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return [int(p) for p in out.stdout.split()]


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_a_killed_worker_is_restarted_and_consumes_again(data_dir: Path) -> None:
    """kill -9 of the worker under `dispatcher up`: up reports it, restarts it, it is healthy
    again on the same port, and `up` still stops cleanly with exit code 0."""
    web_port, api_port = free_port(), free_port()
    up = UpProcess(up_env(data_dir, web_port, api_port), "--duration", "240")
    try:
        up.wait_for(up.out, "acute dispatcher is up")
        workers = [p for p in children_of(up.proc.pid) if "dispatcher worker" in cmdline(p)]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)
        up.wait_for(up.err, "worker-1 exited with code -9")
        up.wait_for(up.err, "worker-1 restarted")
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and status != 200:
            status, _ = healthz(web_port)
            time.sleep(0.3)
        assert status == 200
        replacement = [p for p in children_of(up.proc.pid) if "dispatcher worker" in cmdline(p)]
        assert len(replacement) == 1
        assert replacement[0] != workers[0]
    finally:
        rc = up.stop()
    assert rc == 0


def test_a_taken_worker_port_fails_with_one_line_and_a_non_zero_exit(data_dir: Path) -> None:
    """When the worker's port is held by another process, `up` says so in one line naming the
    setting, exits 2, and never prints that it is up."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        up = UpProcess(up_env(data_dir, taken, free_port()), "--duration", "30")
        rc = up.proc.wait(timeout=120)
        up.stop()
    assert rc == 2
    errors = [line for line in up.err if line.startswith("dispatcher up:")]
    assert errors == [
        f"dispatcher up: port {taken} on 127.0.0.1 is already in use; "
        "set DISPATCHER_WEB_PORT to a free port"
    ]
    assert not any("is up" in line for line in up.out)
    assert not any("Traceback" in line for line in up.err)
