"""The reconciler: proves "nothing lost" after traffic stops (``dispatcher reconcile``).

What it checks, end to end, against the broker and PostgreSQL:

1. Every message on the input topics has a durable outcome: its ``event_id`` has an audit row
   (or it is a later duplicate of one that has), or it has a dead letter (stable id from topic,
   partition, offset and a hash of its bytes, or its event id for a rule error).
2. Every escalation decided (``escalations`` table) was published (its outbox row is marked
   published) and is on ``acute.escalations``; copies of one escalation id on the topic are
   counted (at-least-once after a crash; zero after a graceful stop).
3. Every escalation reached the case manager (``case_escalations``).
4. No push is stuck: a pending delivery past its deadline, or an undeliverable one whose case did
   not fail over, is a problem; no delivery has more than one successful attempt.

The core (``reconcile``) is pure; ``collect`` does the reading (SQL in ``store.audit``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS
from dispatcher.ingest.planner import Incoming, dead_letter_id_for


def event_id_of(raw: bytes | None) -> UUID | None:
    try:
        obj = orjson.loads(raw or b"")
        return UUID(str(obj["event_id"])) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


@dataclass
class Snapshot:
    """What was read from the broker and the database."""

    inputs: list[Incoming]
    audited: set[UUID]
    dead_letter_ids: set[UUID]
    dead_letter_event_ids: set[UUID]
    escalations_db: dict[UUID, datetime]
    unpublished_outbox: list[tuple[str, datetime]]
    escalations_on_topic: Counter[UUID]
    escalations_at_case_manager: set[UUID]
    stuck_deliveries: list[str]
    undeliverable_without_failover: list[str]
    deliveries_delivered_twice: list[str]


@dataclass
class Report:
    inputs_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    escalations: int = 0
    escalation_copies_on_topic: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def reconcile(snap: Snapshot, now: datetime, grace: timedelta = timedelta(seconds=10)) -> Report:
    report = Report(inputs_read=len(snap.inputs))
    first_seen: set[UUID] = set()
    for msg in snap.inputs:
        eid = event_id_of(msg.value)
        if eid is not None and eid in snap.audited:
            if eid in first_seen:
                report.duplicates += 1
            else:
                first_seen.add(eid)
                report.accepted += 1
        elif dead_letter_id_for(msg) in snap.dead_letter_ids or (
            eid is not None and eid in snap.dead_letter_event_ids
        ):
            report.dead_lettered += 1
        else:
            report.problems.append(
                {
                    "problem": "no_outcome",
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "event_id": str(eid) if eid else None,
                    "sha256": hashlib.sha256(msg.value or b"").hexdigest()[:16],
                }
            )
    report.escalations = len(snap.escalations_db)
    for topic, created in snap.unpublished_outbox:
        if now - created > grace:
            report.problems.append(
                {"problem": "unpublished_outbox", "topic": topic, "created_at": created.isoformat()}
            )
    for esc_id, created in snap.escalations_db.items():
        copies = snap.escalations_on_topic.get(esc_id, 0)
        if copies == 0 and now - created > grace:
            report.problems.append(
                {"problem": "escalation_not_on_topic", "escalation_id": str(esc_id)}
            )
        report.escalation_copies_on_topic += max(0, copies - 1)
        if esc_id not in snap.escalations_at_case_manager and now - created > grace:
            report.problems.append(
                {"problem": "escalation_not_at_case_manager", "escalation_id": str(esc_id)}
            )
    report.problems += [
        {"problem": "delivery_stuck", "delivery_id": d} for d in snap.stuck_deliveries
    ]
    report.problems += [
        {"problem": "undeliverable_without_failover", "delivery_id": d}
        for d in snap.undeliverable_without_failover
    ]
    report.problems += [
        {"problem": "delivered_twice", "delivery_id": d} for d in snap.deliveries_delivered_twice
    ]
    return report


def read_topics(
    bootstrap: str, topics: Sequence[str], timeout_s: float = 60.0, quiet_s: float = 1.5
) -> list[Incoming]:
    """Read the given topics from the beginning until nothing more arrives for ``quiet_s``.

    We do not stop at the end offsets ListOffsets reports: the embedded Tansu broker (0.6)
    reports the last batch's base offset there, not the high watermark, so a reader that trusted
    it would miss the tail. Fetch responses are right, so we read until the topics go quiet.
    """
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Incoming] = []
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the topics to their end")
            batch = consumer.poll(timeout_ms=300)
            for tp, records in batch.items():
                out.extend(
                    Incoming(tp.topic, tp.partition, r.offset, r.key, r.value) for r in records
                )
            if batch:
                quiet_since = time.monotonic()
            elif (
                all(consumer.position(tp) >= end[tp] for tp in tps)
                and time.monotonic() - quiet_since >= quiet_s
            ):
                return out
    finally:
        consumer.close()


async def collect(bootstrap: str, dsn: str) -> Snapshot:
    """Read the topics (in threads: the Kafka client blocks), then the database's evidence."""
    import asyncio

    from dispatcher.store import audit
    from dispatcher.store.db import connection

    inputs = await asyncio.to_thread(read_topics, bootstrap, list(INPUT_TOPICS))
    on_topic = await asyncio.to_thread(read_topics, bootstrap, [ESCALATIONS])
    async with connection(dsn) as conn:
        audited = await audit.audited_event_ids(conn)
        dead = await audit.dead_letters(conn)
        escalations = await audit.escalations_created(conn)
        unpublished = await audit.unpublished_outbox(conn)
        at_cases = await audit.escalations_at_case_manager(conn)
        stuck = await audit.stuck_deliveries(conn)
        no_failover = await audit.undeliverable_without_failover(conn)
        twice = await audit.deliveries_delivered_twice(conn)
    topic_counts: Counter[UUID] = Counter()
    for msg in on_topic:
        eid = _escalation_id_of(msg.value)
        if eid is not None:
            topic_counts[eid] += 1
    return Snapshot(
        inputs=inputs,
        audited=audited,
        dead_letter_ids={dl_id for dl_id, _ in dead},
        dead_letter_event_ids={eid for _, eid in dead if eid is not None},
        escalations_db=escalations,
        unpublished_outbox=unpublished,
        escalations_on_topic=topic_counts,
        escalations_at_case_manager=at_cases,
        stuck_deliveries=stuck,
        undeliverable_without_failover=no_failover,
        deliveries_delivered_twice=twice,
    )


def _escalation_id_of(raw: bytes | None) -> UUID | None:
    try:
        obj = orjson.loads(raw or b"")
        return UUID(str(obj["escalation_id"]))
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


async def run(bootstrap: str, dsn: str, grace_s: float = 10.0) -> Report:
    snap = await collect(bootstrap, dsn)
    return reconcile(snap, datetime.now(UTC), timedelta(seconds=grace_s))


def summarise(report: Report, limit: int = 20) -> Iterable[str]:
    yield (
        f"inputs read {report.inputs_read}: accepted {report.accepted}, duplicates "
        f"{report.duplicates}, dead-lettered {report.dead_lettered}"
    )
    yield (
        f"escalations {report.escalations}, extra copies on the topic "
        f"{report.escalation_copies_on_topic}"
    )
    yield "OK: nothing lost" if report.ok else f"PROBLEMS: {len(report.problems)}"
    for p in report.problems[:limit]:
        yield "  " + orjson.dumps(p).decode()
