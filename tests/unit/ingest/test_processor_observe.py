"""The batch-aggregated metrics and the gated decision log keep their per-event meaning."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import CapturingLoggerFactory

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.testing import InMemoryRepository
from tests import helpers

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def _value(metrics: DispatcherMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _msg(topic: str, body: dict[str, Any] | bytes, offset: int) -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = str(body["citizen_id"]).encode() if isinstance(body, dict) else b"k"  # as published
    return Incoming(topic, 0, offset, key, raw)


def _batch() -> list[Incoming]:
    a, b = helpers.citizen(), helpers.citizen()
    worse = helpers.deteriorating(a, NOW - timedelta(seconds=5))
    return [
        _msg(DISCHARGES, helpers.discharge(a, NOW - timedelta(hours=2)), 1),
        _msg(SENSOR_READINGS, helpers.sensor(a, "spo2", 95, "%", NOW - timedelta(minutes=3)), 2),
        _msg(
            SENSOR_READINGS, helpers.sensor(b, "pulse", 70, "/min", NOW - timedelta(minutes=2)), 3
        ),
        _msg(NURSE_OBSERVATIONS, worse, 4),
        _msg(NURSE_OBSERVATIONS, worse, 5),  # duplicate delivery
        _msg(NURSE_OBSERVATIONS, helpers.observation(b, NOW - timedelta(minutes=1)), 6),
        _msg(NURSE_OBSERVATIONS, b"not json", 7),
        _msg(SENSOR_READINGS, b"{}", 8),
    ]


async def _handle(messages: list[Incoming]) -> DispatcherMetrics:
    async def send(_: Sequence[OutboxMessage]) -> None:
        return None

    metrics = DispatcherMetrics()
    await BatchProcessor(InMemoryRepository(), send, metrics, clock=lambda: NOW).handle(messages)
    return metrics


async def test_batch_counts_equal_the_sum_of_one_message_batches() -> None:
    """Every counter a batch moves ends where handling its messages one by one would leave it."""
    messages = _batch()
    together = await _handle(messages)
    names = [
        ("dispatcher_events_consumed_total", {"topic": t})
        for t in (DISCHARGES, SENSOR_READINGS, NURSE_OBSERVATIONS)
    ]
    assert _value(together, "dispatcher_events_consumed_total", topic=SENSOR_READINGS) == 3
    assert _value(together, "dispatcher_duplicate_events_total", topic=NURSE_OBSERVATIONS) == 1
    assert (
        _value(
            together,
            "dispatcher_events_rejected_total",
            topic=NURSE_OBSERVATIONS,
            category="malformed",
        )
        == 1
    )
    assert (
        sum(
            s.value
            for f in together.registry.collect()
            if f.name == "dispatcher_escalations"
            for s in f.samples
            if s.name.endswith("_total")
        )
        == 1
    )
    # the same messages as eight one-message batches, against one shared repository
    repo = InMemoryRepository()
    one_by_one = DispatcherMetrics()

    async def send(_: Sequence[OutboxMessage]) -> None:
        return None

    p = BatchProcessor(repo, send, one_by_one, clock=lambda: NOW)
    for m in messages:
        await p.handle([m])
    for family in together.registry.collect():
        if family.type not in ("counter",):
            continue
        for s in family.samples:
            if s.name.endswith("_total"):
                assert _value(one_by_one, s.name, **s.labels) == s.value, (s.name, s.labels)
    for name, labels in names:
        assert _value(together, name, **labels) == _value(one_by_one, name, **labels)


@pytest.fixture
def info_logs() -> Iterator[CapturingLoggerFactory]:
    with helpers.captured_logs("info") as factory:
        yield factory


async def test_at_info_only_escalated_decisions_are_logged(
    info_logs: CapturingLoggerFactory,
) -> None:
    """At level info the debug decision lines are skipped whole; the escalation is logged with
    its event and case id."""
    await _handle(_batch())
    decided = [json.loads(c.args[0]) for c in info_logs.logger.calls]
    decided = [d for d in decided if d["event"] == "event_decided"]
    assert len(decided) == 1
    assert decided[0]["outcome"] == "escalated"
    assert decided[0]["event_id"]
    assert decided[0]["case_id"]
