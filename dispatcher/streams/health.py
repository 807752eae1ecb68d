"""The worker's web pages: ``/healthz`` and ``/metrics``, and the probes behind ``/healthz``.

``/healthz`` is 200 only while the worker consumes (it holds partitions, no rebalance) AND both
of its dependencies answered recently: PostgreSQL (``SELECT 1`` with a timeout, every
``health_probe_s``) and the broker (the lag timer's offset request). A PostgreSQL that is frozen
or unreachable for longer than ``health_stale_after_s`` makes the worker unhealthy, so an
orchestrator or ``dispatcher up`` sees it, instead of a 200 from a worker that cannot store
anything. The page itself only reads timestamps: it never blocks on a dependency.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS
from dispatcher.store import db
from dispatcher.streams.runtime import Runtime

log = structlog.get_logger(__name__)
CONSUMED_TOPICS = frozenset({*INPUT_TOPICS, ESCALATIONS})


@dataclass
class Probes:
    """When each dependency last answered (monotonic seconds); both start as "just now"."""

    stale_after_s: float
    clock: Callable[[], float] = time.monotonic
    db_ok_at: float = field(default=0.0)
    broker_ok_at: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.db_ok_at = self.broker_ok_at = self.clock()

    def db_ok(self) -> None:
        self.db_ok_at = self.clock()

    def broker_ok(self) -> None:
        self.broker_ok_at = self.clock()

    def stale(self) -> dict[str, float]:
        """Dependencies silent for longer than allowed -> seconds since they last answered."""
        now = self.clock()
        ages = {"database": now - self.db_ok_at, "broker": now - self.broker_ok_at}
        return {name: round(age, 1) for name, age in ages.items() if age > self.stale_after_s}


def install(app: faust.App, runtime: Runtime, probes: Probes) -> None:
    settings = runtime.settings

    async def health_probe() -> None:
        try:
            await db.ping(runtime.repo.pool, timeout_s=settings.health_probe_s)
        except Exception as exc:  # a timeout, a refused connection, an error: "no answer"
            log.warning("database_probe_failed", error=type(exc).__name__)
        else:
            probes.db_ok()

    app.timer(interval=settings.health_probe_s, name="dispatcher.health_probe")(health_probe)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        # Only our own topics: faust also assigns its internal ones (the leader topic, ...).
        assigned = sorted(
            f"{tp.topic}:{tp.partition}"
            for tp in app.consumer.assignment()
            if tp.topic in CONSUMED_TOPICS
        )
        consuming = bool(assigned) and not app.rebalancing
        unreachable = probes.stale()
        healthy = consuming and not unreachable
        body = {
            "status": "ok" if healthy else "unavailable",
            "consuming": consuming,
            "assigned_partitions": len(assigned),
            "rebalancing": bool(app.rebalancing),
            "batches": runtime.batches,
            "unreachable_s": unreachable,
        }
        return web.json(body, status=200 if healthy else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        body = generate_latest(runtime.metrics.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
