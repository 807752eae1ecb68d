"""Prometheus metrics, defined in one container that takes an injected registry.

Labels are bounded, non-identifying vocabularies (topic names, partitions, severities, tiers,
team names, error categories). A citizen id, name or free text never becomes a label;
``tests/unit/observability/test_metrics.py`` scans every label name against an allow-list.

Some metrics are defined here before the code that feeds them exists (a case manager sets
``cases_open``, the acknowledgement flow observes ``ack_seconds``, a webhook pusher counts its
attempts): defining them in one place keeps the dashboard and alert rules honest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, get_args
from uuid import UUID

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from dispatcher.contract.topics import ESCALATIONS
from dispatcher.contract.vocab import EscalatingSeverity

if TYPE_CHECKING:
    from dispatcher.ingest.planner import BatchPlan

# Acknowledgement objectives (critical 5 min, high 15 min, medium 30 min) are bucket bounds, so
# the alert rules can compute "share acknowledged within the objective" exactly.
ACK_BUCKETS = (60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0, 7200.0)
PUSH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
EVENT_TO_PUSH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def _seconds_between(start: datetime, end: datetime) -> float:
    """Elapsed seconds, never negative (clock skew between producers must not go below 0)."""
    return max(0.0, (end - start).total_seconds())


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # --- intake ------------------------------------------------------------------------
        self.events_consumed = Counter(
            "dispatcher_events_consumed_total",
            "Messages consumed, per topic.",
            ["topic"],
            registry=r,
        )
        self.events_rejected = Counter(
            "dispatcher_events_rejected_total",
            "Messages sent to the dead-letter topic, per source topic and error category.",
            ["topic", "category"],
            registry=r,
        )
        self.duplicates = Counter(
            "dispatcher_duplicate_events_total",
            "Events whose event_id was already processed (ignored).",
            ["topic"],
            registry=r,
        )
        self.last_event_timestamp = Gauge(
            "dispatcher_last_event_timestamp_seconds",
            "Unix time of the last message consumed, per source topic (a silent source shows).",
            ["topic"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "dispatcher_consumer_lag_messages",
            "Highwater minus committed offset (or position), per assigned topic-partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "dispatcher_assigned_partitions",
            "Topic-partitions currently assigned to this worker.",
            registry=r,
        )
        # --- decisions -----------------------------------------------------------------------
        self.assessments = Counter(
            "dispatcher_assessments_total",
            "Assessments made, per NEWS2 risk band.",
            ["risk"],
            registry=r,
        )
        self.escalations = Counter(
            "dispatcher_escalations_total",
            "Escalations emitted, per severity and route tier.",
            ["severity", "tier"],
            registry=r,
        )
        self.re_escalations = Counter(
            "dispatcher_reescalations_total",
            "Escalations raised again (unacknowledged past the deadline or worsened), "
            "per severity and route tier.",
            ["severity", "tier"],
            registry=r,
        )
        self.cases_open = Gauge(
            "dispatcher_cases_open",
            "Cases open (escalated, not yet closed), per severity and team.",
            ["severity", "team"],
            registry=r,
        )
        self.ack_seconds = Histogram(
            "dispatcher_acknowledgement_seconds",
            "Time from escalation created to acknowledged by a person, per severity.",
            ["severity"],
            buckets=ACK_BUCKETS,
            registry=r,
        )
        self.pages_suppressed = Counter(
            "dispatcher_pages_suppressed_total",
            "Pages not sent because silenced or inhibited, per reason and severity.",
            ["reason", "severity"],
            registry=r,
        )
        self.last_rung_overdue = Gauge(
            "dispatcher_cases_last_rung_overdue",
            "Cases unacknowledged after their last rung's (normally the on-call doctor's) first "
            "deadline passed, per severity (database-wide; every worker reports it, use max).",
            ["severity"],
            registry=r,
        )
        self.last_rung_oldest = Gauge(
            "dispatcher_cases_last_rung_oldest_unacknowledged_seconds",
            "Of those cases, seconds since the oldest one's last rung was first paged, per "
            "severity; 0 when none.",
            ["severity"],
            registry=r,
        )
        # --- storage -------------------------------------------------------------------------
        self.store_retries = Counter(
            "dispatcher_store_retries_total",
            "Batches retried because PostgreSQL was unavailable or contended.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "dispatcher_batch_seconds",
            "Time to decide and durably store one batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        # --- delivery ------------------------------------------------------------------------
        self.outbox_published = Counter(
            "dispatcher_outbox_published_total",
            "Outbox messages published, per topic.",
            ["topic"],
            registry=r,
        )
        self.outbox_failures = Counter(
            "dispatcher_outbox_failures_total",
            "Outbox relay attempts that failed (the rows stay for the next sweep).",
            registry=r,
        )
        self.outbox_parked = Counter(
            "dispatcher_outbox_parked_total",
            "Outbox messages refused for good (too_large, refused: a non-retriable produce "
            "error) and parked with their reason: never sent, a person must look. Per topic "
            "and kind.",
            ["topic", "reason"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "dispatcher_outbox_backlog_messages",
            "Outbox rows not yet published (shared table: every worker reports the same).",
            registry=r,
        )
        self.outbox_oldest_age = Gauge(
            "dispatcher_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox row, 0 when empty.",
            registry=r,
        )
        self.escalation_to_push = Histogram(
            "dispatcher_escalation_to_push_seconds",
            "Time from an escalation's created_at to its push being sent by the outbox relay.",
            buckets=PUSH_BUCKETS,
            registry=r,
        )
        self.event_to_push = Histogram(
            "dispatcher_event_to_push_seconds",
            "Time from the triggering event's occurred_at to the escalation's push being sent.",
            buckets=EVENT_TO_PUSH_BUCKETS,
            registry=r,
        )
        self.webhook_attempts = Counter(
            "dispatcher_webhook_attempts_total",
            "Webhook deliveries attempted, per route tier.",
            ["tier"],
            registry=r,
        )
        self.webhook_failures = Counter(
            "dispatcher_webhook_failures_total",
            "Webhook deliveries that failed, per route tier and failure category.",
            ["tier", "reason"],
            registry=r,
        )

    # --- observation helpers used by the I/O shell -------------------------------------------

    def observe_published(self, topic: str, value: bytes, sent_at: datetime) -> None:
        """Count one relayed outbox message; for an escalation, observe created_at -> sent."""
        self.outbox_published.labels(topic).inc()
        if topic != ESCALATIONS:
            return
        try:
            created_at = datetime.fromisoformat(orjson.loads(value)["created_at"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return  # not ours to judge here; the relay already sent it
        if created_at.tzinfo is None:
            return
        self.escalation_to_push.observe(_seconds_between(created_at, sent_at))

    def observe_event_to_push(self, plan: BatchPlan, sent_at: datetime) -> None:
        """For each escalation in a relayed plan: latest triggering event occurred_at -> sent."""
        occurred: dict[UUID, datetime] = {
            a.event.event_id: a.event.occurred_at for a in plan.audits
        }
        for escalation in plan.escalations:
            times = [occurred[i] for i in escalation.triggered_by if i in occurred]
            if times:
                self.event_to_push.observe(_seconds_between(max(times), sent_at))

    def set_consumer_lag(self, lags: dict[tuple[str, int], int]) -> None:
        """Replace the lag series with ``lags``; partitions no longer assigned disappear."""
        current = {(topic, int(part)) for topic, part in self._lag_label_sets()}
        for topic, part in current - set(lags):
            self.consumer_lag.remove(topic, str(part))
        for (topic, part), lag in lags.items():
            self.consumer_lag.labels(topic, str(part)).set(max(0, lag))
        self.assigned_partitions.set(len(lags))

    def _lag_label_sets(self) -> list[tuple[str, str]]:
        return [
            (s.labels["topic"], s.labels["partition"])
            for family in self.consumer_lag.collect()
            for s in family.samples
        ]

    def set_outbox_backlog(self, count: int, oldest_age_s: float | None) -> None:
        self.outbox_backlog.set(count)
        self.outbox_oldest_age.set(max(0.0, oldest_age_s or 0.0))

    def set_last_rung(self, stats: Mapping[str, tuple[int, float]]) -> None:
        """Per severity (count, oldest age in seconds) of cases overdue at their last rung.
        Every escalating severity always has a series (0 when none), so an alert on it never
        depends on a series appearing."""
        for severity in sorted({*get_args(EscalatingSeverity), *stats}):
            count, oldest = stats.get(severity, (0, 0.0))
            self.last_rung_overdue.labels(severity).set(count)
            self.last_rung_oldest.labels(severity).set(max(0.0, oldest))

    # --- introspection (dashboard and alert drift tests) -------------------------------------

    def families(self) -> dict[str, str]:
        """Metric family name -> type, for every metric this registry defines."""
        return {family.name: family.type for family in self.registry.collect()}

    def exported_names(self) -> set[str]:
        """Every sample name a scrape can show (``_total``, ``_bucket``... included)."""
        names: set[str] = set()
        for name, kind in self.families().items():
            names.update(name + suffix for suffix in _SUFFIXES.get(kind, ("",)))
        return names

    def label_names(self) -> dict[str, tuple[str, ...]]:
        """Metric family name -> its label names (``le`` excluded)."""
        out: dict[str, tuple[str, ...]] = {}
        for attr in vars(self).values():
            if isinstance(attr, Counter | Gauge | Histogram):
                family = next(iter(attr.describe()))
                out[family.name] = tuple(attr._labelnames)
        return out


class ApiMetrics:
    """The HTTP API process's own metrics (it is a separate process with its own ``/metrics``).

    Labels are the route template (``/api/cases/{case_id}``, never the id), the method and the
    status class, so their number is bounded by the routes table."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "dispatcher_api_requests_total",
            "API requests, per route template, method and status class (2xx, 4xx, 5xx).",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "dispatcher_api_request_seconds",
            "API request duration, per route template.",
            ["route"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "dispatcher_api_database_up",
            "1 when the API's last database probe (GET /healthz) answered in time, else 0.",
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, f"{status // 100}xx").inc()
        self.request_seconds.labels(route).observe(seconds)
