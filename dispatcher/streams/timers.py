"""The worker's periodic work, each body guarded so a failure waits for the next tick.

Every worker runs every timer; ``FOR UPDATE SKIP LOCKED`` in the store makes each due item one
worker's. faust crashes the whole worker when a timer raises, and a database outage must not do
that (the agents already hold their batches and retry), so every timer goes through ``guarded``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import faust
import structlog

from dispatcher.streams.health import Probes
from dispatcher.streams.lag import install_lag_metrics
from dispatcher.streams.runtime import Runtime

log = structlog.get_logger(__name__)


def guarded(name: str, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer body that logs its failure and tries again next tick."""

    async def tick() -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("timer_failed", timer=name, error=type(exc).__name__)

    tick.__name__ = tick.__qualname__ = name
    return tick


def install(app: faust.App, runtime: Runtime, probes: Probes) -> None:
    settings, metrics = runtime.settings, runtime.metrics

    async def sensor_silence_scan() -> None:
        await runtime.processor.check_silent_sensors()

    async def deadline_scan() -> None:
        await runtime.cases.scan_deadlines()

    async def case_stats() -> None:
        open_counts, ack_times = await runtime.cases.case_stats()
        metrics.cases_open.clear()
        for (severity, team), n in open_counts.items():
            metrics.cases_open.labels(severity, team).set(n)
        for severity, seconds in ack_times:
            metrics.ack_seconds.labels(severity).observe(seconds)
        metrics.set_last_rung(await runtime.cases.last_rung_stats())

    async def webhook_delivery() -> None:
        await runtime.deliveries.run_once()

    async def outbox_sweep() -> None:
        await runtime.processor.relay(min_age_s=settings.outbox_sweep_min_age_s)

    for interval, timer in (
        (settings.sensor_silence_scan_s, sensor_silence_scan),
        (settings.deadline_scan_s, deadline_scan),
        (settings.case_stats_s, case_stats),
        (settings.outbox_sweep_s, outbox_sweep),
        (settings.webhook_poll_s, webhook_delivery),
    ):
        name = timer.__name__
        app.timer(interval=interval, name=f"dispatcher.{name}")(guarded(name, timer))

    install_lag_metrics(
        app,
        metrics,
        interval_s=settings.lag_metrics_s,
        backlog=runtime.repo.outbox_backlog,
        on_broker_answer=probes.broker_ok,
    )
