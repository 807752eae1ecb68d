"""A worker's ``/healthz`` tells the truth about its dependencies: a frozen PostgreSQL or broker
turns it 503 within the bound, and it recovers when they answer again."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.config import Settings
from dispatcher.devstack.stack import Stack, WorkerProcess, healthz

STALE_AFTER_S = 3.0
PROBE_S = 0.5


@pytest.fixture(scope="module")
def probed_stack() -> Iterator[tuple[Stack, WorkerProcess]]:
    """Its own broker, database and worker, with a short health bound."""
    with tempfile.TemporaryDirectory(prefix="dsh-", dir="/tmp") as d:
        settings = Settings.from_env(
            partitions=2,
            data_dir=d,
            health_probe_s=PROBE_S,
            health_stale_after_s=STALE_AFTER_S,
            lag_metrics_s=0.5,
        )
        stack = Stack.start_infra(settings, Path(d))
        try:
            worker = stack.start_worker()
            stack.wait_healthy(worker)
            yield stack, worker
        finally:
            stack.stop()


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = subprocess.run(
        ["/usr/bin/pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    )
    return [pid, *(p for child in out.stdout.split() for p in process_tree(int(child)))]


def postmaster_pid(stack: Stack) -> int:
    assert stack.postgres is not None
    pid_file = Path(stack.postgres.server.pgdata) / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0])


def wait_status(port: int, wanted: int, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    status, body = 0, {}
    while time.monotonic() < deadline:
        status, body = healthz(port)
        if status == wanted:
            return body
        time.sleep(0.2)
    raise AssertionError(f"healthz stayed {status} {body}, wanted {wanted}")


def freeze(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)


def thaw(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGCONT)


def test_a_frozen_database_makes_the_worker_unhealthy_until_it_answers(
    probed_stack: tuple[Stack, WorkerProcess],
) -> None:
    """SIGSTOP of PostgreSQL (all its processes): /healthz turns 503 naming the database once
    the bound passed; after SIGCONT it is 200 again."""
    stack, worker = probed_stack
    assert healthz(worker.web_port)[0] == 200
    pids = process_tree(postmaster_pid(stack))
    frozen_at = time.monotonic()
    freeze(pids)
    try:
        body = wait_status(worker.web_port, 503, timeout_s=STALE_AFTER_S + 10)
        # Not before the bound: the last answer came at most one probe period before the freeze.
        assert time.monotonic() - frozen_at >= STALE_AFTER_S - PROBE_S
        unreachable = body["unreachable_s"]
        assert isinstance(unreachable, dict)
        assert "database" in unreachable
    finally:
        thaw(pids)
    assert wait_status(worker.web_port, 200, timeout_s=30)["status"] == "ok"


def test_a_frozen_broker_makes_the_worker_unhealthy_until_it_answers(
    probed_stack: tuple[Stack, WorkerProcess],
) -> None:
    """SIGSTOP of the broker: /healthz turns 503 naming the broker; after SIGCONT it is 200."""
    stack, worker = probed_stack
    assert stack.broker is not None
    wait_status(worker.web_port, 200, timeout_s=30)
    pid = stack.broker.process.pid
    freeze([pid])
    try:
        body = wait_status(worker.web_port, 503, timeout_s=STALE_AFTER_S + 15)
        unreachable = body["unreachable_s"]
        assert isinstance(unreachable, dict)
        assert "broker" in unreachable
    finally:
        thaw([pid])
    assert wait_status(worker.web_port, 200, timeout_s=60)["status"] == "ok"
