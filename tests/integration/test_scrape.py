"""A real Prometheus scrapes a real worker: the metrics reach Prometheus, not only /metrics.

Starts its own embedded stack (broker + PostgreSQL + one worker), publishes one nurse
observation with kafka-python, runs the Debian ``prometheus`` binary on a free loopback port
with a generated config (scrape every second), and queries the HTTP API until the consumed
counter shows the event. Everything started here is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaProducer

from dispatcher.config import Settings
from dispatcher.contract.topics import NURSE_OBSERVATIONS
from dispatcher.devstack.embedded import free_port
from dispatcher.devstack.stack import Stack
from tests import helpers

# Label names a scraped dispatcher series may carry (the metric's own, plus Prometheus's).
SCRAPED_LABELS = frozenset(
    {"__name__", "job", "instance", "topic", "partition", "category", "risk", "severity"}
    | {"tier", "team", "reason", "le"}
)
WAIT_S = 120.0


def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is not None:
        return path
    if os.geteuid() != 0:
        pytest.skip("prometheus not installed and not root (`make test` installs it as root)")
    pytest.fail("prometheus missing although running as root: run `make test` (it installs it)")


class PrometheusServer:
    def __init__(self, run_dir: Path, target: str) -> None:
        self.port = free_port()
        self.dir = run_dir / "prometheus"
        self.dir.mkdir()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "dispatcher",
                    "metrics_path": "/metrics",
                    "scrape_interval": "1s",
                    "static_configs": [{"targets": [target]}],
                }
            ],
        }
        self.config_path = self.dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = self.dir / "prometheus.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                prometheus_binary(),
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; [] while Prometheus is starting or has no data."""
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited; see {self.log_path}")
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = json.loads(resp.read())
        except (OSError, urllib.error.URLError, ValueError):
            return []
        return list(body.get("data", {}).get("result", []))

    def wait_for(
        self, promql: str, ok: Callable[[list[dict[str, Any]]], bool]
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT_S
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if ok(result):
                return result
            time.sleep(0.5)
        raise AssertionError(
            f"{promql!r} never satisfied; last result {result}; "
            f"scrape errors {self.scrape_errors()}; see {self.log_path}"
        )

    def scrape_errors(self) -> list[str]:
        url = f"http://127.0.0.1:{self.port}/api/v1/targets"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                targets = json.loads(resp.read())["data"]["activeTargets"]
        except (OSError, ValueError, KeyError):
            return ["(targets unavailable)"]
        return [f"{t['scrapeUrl']}: {t['lastError']}" for t in targets if t.get("lastError")]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def scraped_worker() -> Iterator[tuple[Stack, PrometheusServer]]:
    prometheus_binary()  # skip or fail before starting anything
    # Short path: pgserver puts its unix socket in here (107-byte limit).
    run_dir = Path(tempfile.mkdtemp(prefix="dsp-", dir="/tmp"))
    stack: Stack | None = None
    prom: PrometheusServer | None = None
    try:
        stack = Stack.start_infra(Settings.from_env(data_dir=str(run_dir)), run_dir)
        worker = stack.start_worker(name="scrape-worker")
        stack.wait_healthy(worker)
        prom = PrometheusServer(run_dir, f"127.0.0.1:{worker.web_port}")
        yield stack, prom
    finally:
        if prom is not None:
            prom.stop()
        if stack is not None:
            stack.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(run_dir)


def value(result: list[dict[str, Any]]) -> float:
    return sum(float(r["value"][1]) for r in result)


@pytest.mark.integration
@pytest.mark.slow
def test_prometheus_scrapes_consumed_events_from_a_worker(
    scraped_worker: tuple[Stack, PrometheusServer],
) -> None:
    """One published observation shows up in Prometheus as consumed, with lag and clean labels."""
    stack, prom = scraped_worker
    prom.wait_for('up{job="dispatcher"}', lambda r: value(r) == 1)

    body = helpers.observation(helpers.citizen())
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    try:
        producer.send(
            NURSE_OBSERVATIONS, key=body["citizen_id"].encode(), value=json.dumps(body).encode()
        )
        producer.flush(10)
    finally:
        producer.close(5)

    consumed = prom.wait_for(
        f'dispatcher_events_consumed_total{{topic="{NURSE_OBSERVATIONS}"}}',
        lambda r: value(r) > 0,
    )
    assert value(consumed) == 1
    assert consumed[0]["metric"]["job"] == "dispatcher"

    # The lag timer reports every assigned partition of the input topics.
    lag = prom.wait_for("dispatcher_consumer_lag_messages", lambda r: len(r) > 0)
    assert {r["metric"]["topic"] for r in lag} >= {NURSE_OBSERVATIONS}

    # What actually reached Prometheus carries no identifying label and no citizen id value.
    series = prom.query('{__name__=~"dispatcher_.*"}')
    assert series
    labels = {name for s in series for name in s["metric"]}
    assert labels <= SCRAPED_LABELS, labels - SCRAPED_LABELS
    assert body["citizen_id"] not in json.dumps(series)
