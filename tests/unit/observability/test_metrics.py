"""Metric definitions: label hygiene, the push-latency observations and the lag gauge."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from dispatcher.contract.topics import DEAD_LETTER, ESCALATIONS, NURSE_OBSERVATIONS
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.testing import InMemoryRepository
from dispatcher.streams.lag import compute_lag, refresh_outbox_backlog
from tests import helpers

# Bounded vocabularies only. Adding a label means adding it here, on purpose.
ALLOWED_LABELS = frozenset(
    {"topic", "partition", "category", "risk", "severity", "tier", "team", "reason"}
)
# Identity or free text: never a label, whatever the allow-list above says.
FORBIDDEN_LABELS = frozenset(
    {
        "citizen_id",
        "citizen",
        "cpr",
        "name",
        "full_name",
        "address",
        "note",
        "free_text",
        "phone",
        "email",
        "observer",
        "device_id",
        "event_id",
        "case_id",
        "escalation_id",
        "key",
        "message",
    }
)

NOW = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)


def sample(metrics: DispatcherMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_every_label_name_is_allowed_and_none_identifies_a_citizen() -> None:
    """Every label of every metric in a fresh registry is allowed and none identifies anyone."""
    metrics = DispatcherMetrics(CollectorRegistry())
    labels = metrics.label_names()
    assert set(labels) == set(metrics.families()), "a metric escaped the label scan"
    used = {name for names in labels.values() for name in names}
    assert used <= ALLOWED_LABELS, f"labels outside the allow-list: {used - ALLOWED_LABELS}"
    assert not used & FORBIDDEN_LABELS
    assert ALLOWED_LABELS.isdisjoint(FORBIDDEN_LABELS)


def test_registry_is_injected_not_global() -> None:
    """Two containers with their own registries do not collide or share counts."""
    a = DispatcherMetrics(CollectorRegistry())
    b = DispatcherMetrics(CollectorRegistry())
    a.events_consumed.labels(NURSE_OBSERVATIONS).inc()
    assert sample(a, "dispatcher_events_consumed_total", topic=NURSE_OBSERVATIONS) == 1
    assert sample(b, "dispatcher_events_consumed_total", topic=NURSE_OBSERVATIONS) == 0


def test_required_operational_metrics_are_defined() -> None:
    """The metrics the dashboard and alerts depend on are all exported."""
    names = DispatcherMetrics().exported_names()
    for name in (
        "dispatcher_cases_open",
        "dispatcher_escalation_to_push_seconds_bucket",
        "dispatcher_event_to_push_seconds_bucket",
        "dispatcher_acknowledgement_seconds_bucket",
        "dispatcher_reescalations_total",
        "dispatcher_pages_suppressed_total",
        "dispatcher_webhook_attempts_total",
        "dispatcher_webhook_failures_total",
        "dispatcher_consumer_lag_messages",
        "dispatcher_last_event_timestamp_seconds",
        "dispatcher_events_rejected_total",
        "dispatcher_outbox_backlog_messages",
    ):
        assert name in names


def test_published_escalation_observes_created_to_sent() -> None:
    """Relaying an escalation observes sent_at minus its created_at; other topics only count."""
    metrics = DispatcherMetrics()
    created = NOW - timedelta(seconds=3)
    value = json.dumps({"created_at": created.isoformat(), "severity": "high"}).encode()
    metrics.observe_published(ESCALATIONS, value, NOW)
    metrics.observe_published(DEAD_LETTER, b"{}", NOW)
    metrics.observe_published(ESCALATIONS, b"not json", NOW)
    assert sample(metrics, "dispatcher_escalation_to_push_seconds_count") == 1
    assert sample(metrics, "dispatcher_escalation_to_push_seconds_sum") == pytest.approx(3.0)
    assert sample(metrics, "dispatcher_outbox_published_total", topic=ESCALATIONS) == 2
    assert sample(metrics, "dispatcher_outbox_published_total", topic=DEAD_LETTER) == 1


def test_clock_skew_never_gives_a_negative_duration() -> None:
    """An escalation stamped in the future observes 0, not a negative latency."""
    metrics = DispatcherMetrics()
    value = json.dumps({"created_at": (NOW + timedelta(minutes=1)).isoformat()}).encode()
    metrics.observe_published(ESCALATIONS, value, NOW)
    assert sample(metrics, "dispatcher_escalation_to_push_seconds_sum") == 0.0
    assert sample(metrics, "dispatcher_escalation_to_push_seconds_count") == 1


def _observation_message(occurred: datetime) -> Incoming:
    body = helpers.deteriorating(helpers.citizen(), occurred)
    return Incoming(
        NURSE_OBSERVATIONS, 0, 0, body["citizen_id"].encode(), json.dumps(body).encode()
    )


async def test_event_to_push_is_observed_from_occurred_at_when_the_relay_succeeds() -> None:
    """A relayed escalation observes clock-at-send minus the triggering event's occurred_at."""
    metrics = DispatcherMetrics()
    sent: list[OutboxMessage] = []

    async def send(messages: Sequence[OutboxMessage]) -> None:
        sent.extend(messages)

    processor = BatchProcessor(InMemoryRepository(), send, metrics, clock=lambda: NOW)
    await processor.handle([_observation_message(NOW - timedelta(seconds=40))])
    assert [m.topic for m in sent] == [ESCALATIONS]
    assert sample(metrics, "dispatcher_event_to_push_seconds_count") == 1
    assert sample(metrics, "dispatcher_event_to_push_seconds_sum") == pytest.approx(40.0)
    assert sample(metrics, "dispatcher_escalation_to_push_seconds_count") == 1


async def test_event_to_push_is_not_observed_when_the_relay_fails() -> None:
    """If sending fails the rows stay in the outbox and no push latency is recorded."""
    metrics = DispatcherMetrics()

    async def send(messages: Sequence[OutboxMessage]) -> None:
        raise OSError("broker down")

    repo = InMemoryRepository()
    processor = BatchProcessor(repo, send, metrics, clock=lambda: NOW)
    await processor.handle([_observation_message(NOW - timedelta(seconds=40))])
    assert len(repo.unpublished()) == 1
    assert sample(metrics, "dispatcher_event_to_push_seconds_count") == 0
    assert sample(metrics, "dispatcher_outbox_failures_total") == 1


def test_last_rung_gauges_have_every_escalating_severity_and_drop_to_zero() -> None:
    """Overdue-at-the-last-rung count and oldest age per severity; severities with none are 0
    (never absent), and a case acknowledged since makes its series 0 again."""
    metrics = DispatcherMetrics()
    metrics.set_last_rung({"critical": (2, 900.0)})
    count, oldest = (
        "dispatcher_cases_last_rung_overdue",
        "dispatcher_cases_last_rung_oldest_unacknowledged_seconds",
    )
    assert sample(metrics, count, severity="critical") == 2
    assert sample(metrics, oldest, severity="critical") == 900
    for severity in ("high", "medium"):
        assert sample(metrics, count, severity=severity) == 0
        assert sample(metrics, oldest, severity=severity) == 0
    metrics.set_last_rung({})
    assert sample(metrics, count, severity="critical") == 0
    assert sample(metrics, oldest, severity="critical") == 0


def test_consumer_lag_drops_partitions_no_longer_assigned() -> None:
    """After a rebalance, lag series of partitions this worker lost disappear."""
    metrics = DispatcherMetrics()
    metrics.set_consumer_lag({(NURSE_OBSERVATIONS, 0): 5, (NURSE_OBSERVATIONS, 1): 7})
    metrics.set_consumer_lag({(NURSE_OBSERVATIONS, 1): 2})
    lag = "dispatcher_consumer_lag_messages"
    assert (
        metrics.registry.get_sample_value(lag, {"topic": NURSE_OBSERVATIONS, "partition": "0"})
        is None
    )
    assert sample(metrics, lag, topic=NURSE_OBSERVATIONS, partition="1") == 2
    assert sample(metrics, "dispatcher_assigned_partitions") == 1


class FakeTP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition

    def __hash__(self) -> int:
        return hash((self.topic, self.partition))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FakeTP) and (self.topic, self.partition) == (
            other.topic,
            other.partition,
        )


class FakeConsumer:
    """The slice of faust's consumer that ``compute_lag`` reads."""

    def __init__(
        self, high: dict[Any, int], committed: dict[Any, int], pos: dict[Any, int]
    ) -> None:
        self._high = high
        self._committed_offset = committed
        self._pos = pos

    def assignment(self) -> set[Any]:
        return set(self._high)

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self._high[tp] for tp in tps}

    async def position(self, tp: Any) -> int | None:
        return self._pos.get(tp)


async def test_lag_is_highwater_minus_committed_else_position() -> None:
    """Lag uses the committed offset, falls back to the position before the first commit."""
    p0, p1, p2 = (FakeTP(NURSE_OBSERVATIONS, i) for i in range(3))
    consumer = FakeConsumer(high={p0: 100, p1: 50, p2: 10}, committed={p0: 90}, pos={p1: 20})
    assert await compute_lag(consumer) == {(NURSE_OBSERVATIONS, 0): 10, (NURSE_OBSERVATIONS, 1): 30}


async def test_outbox_backlog_gauges_count_and_oldest_age() -> None:
    """The backlog gauges show the waiting rows and how long the oldest has waited."""
    metrics = DispatcherMetrics()

    async def backlog() -> tuple[int, datetime | None]:
        return 4, NOW - timedelta(seconds=90)

    await refresh_outbox_backlog(backlog, metrics, now=lambda: NOW)
    assert sample(metrics, "dispatcher_outbox_backlog_messages") == 4
    assert sample(metrics, "dispatcher_outbox_oldest_age_seconds") == 90
