"""Consumer lag (and outbox backlog) gauges, refreshed by a faust timer on every worker.

Lag per assigned topic-partition is the broker's highwater (the offset the next produced message
gets) minus this group's committed offset; before the first commit of a partition we use the
consumer's position instead. Both are "next offset to read", so the difference is the number of
messages not yet durably handled. Partitions this worker no longer owns after a rebalance are
removed from the gauge, so a dashboard summing over workers does not count them twice.

The same timer also reads the outbox backlog from PostgreSQL: the outbox is the one queue
Kafka's lag cannot see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from dispatcher.clock import Clock, utcnow
from dispatcher.observability.metrics import DispatcherMetrics

log = structlog.get_logger(__name__)


async def compute_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """(topic, partition) -> lag for the consumer's current assignment."""
    assigned = list(consumer.assignment())
    if not assigned:
        return {}
    highwaters: Mapping[Any, int | None] = await consumer.highwaters(*assigned)
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    lags: dict[tuple[str, int], int] = {}
    for tp in assigned:
        high = highwaters.get(tp)
        if high is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = await consumer.position(tp)
        if done is None:
            continue
        lags[(tp.topic, int(tp.partition))] = max(0, int(high) - int(done))
    return lags


async def refresh_outbox_backlog(
    backlog: Callable[[], Awaitable[tuple[int, datetime | None]]],
    metrics: DispatcherMetrics,
    now: Clock = utcnow,
) -> None:
    count, oldest = await backlog()
    age = (now() - oldest).total_seconds() if oldest is not None else 0.0
    metrics.set_outbox_backlog(count, age)


def install_lag_metrics(
    app: Any,
    metrics: DispatcherMetrics,
    interval_s: float,
    backlog: Callable[[], Awaitable[tuple[int, datetime | None]]],
    on_broker_answer: Callable[[], None] = lambda: None,
) -> None:
    """Add a timer to ``app`` that refreshes the lag and outbox gauges every ``interval_s``.

    Each offset request the broker answers in time is reported to ``on_broker_answer`` (the
    health probe's broker side)."""

    async def lag_metrics() -> None:
        if app.rebalancing:
            on_broker_answer()  # a rebalance is the broker answering; lag waits for it to end
            return
        try:
            lags = await asyncio.wait_for(compute_lag(app.consumer), timeout=interval_s)
            metrics.set_consumer_lag(lags)
            on_broker_answer()
        except Exception as exc:  # the consumer may not be started yet; try on the next tick
            log.debug("consumer_lag_unavailable", error=type(exc).__name__)
        with contextlib.suppress(Exception):
            await refresh_outbox_backlog(backlog, metrics)

    app.timer(interval=interval_s, name="dispatcher.lag_metrics")(lag_metrics)
