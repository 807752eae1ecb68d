"""Prometheus metrics, defined in one container that takes an injected registry.

Labels are bounded, non-identifying vocabularies (topic names, severities, tiers, error
categories). A citizen id, name or free text never becomes a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_consumed = Counter(
            "dispatcher_events_consumed_total", "Messages consumed, per topic.", ["topic"],
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
        self.assessments = Counter(
            "dispatcher_assessments_total", "Assessments made, per NEWS2 risk band.",
            ["risk"], registry=r,
        )
        self.escalations = Counter(
            "dispatcher_escalations_total", "Escalations emitted, per severity and route tier.",
            ["severity", "tier"], registry=r,
        )
        self.store_retries = Counter(
            "dispatcher_store_retries_total",
            "Batches retried because PostgreSQL was unavailable or contended.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            "dispatcher_batch_seconds", "Time to decide and durably store one batch.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.outbox_published = Counter(
            "dispatcher_outbox_published_total", "Outbox messages published, per topic.",
            ["topic"], registry=r,
        )
        self.outbox_failures = Counter(
            "dispatcher_outbox_failures_total",
            "Outbox relay attempts that failed (the rows stay for the next sweep).",
            registry=r,
        )
        self.last_event_timestamp = Gauge(
            "dispatcher_last_event_timestamp_seconds",
            "Unix time of the last message consumed, per source topic (a silent source shows).",
            ["topic"], registry=r,
        )
