"""The reconciler: proves "nothing lost", also under live traffic (``dispatcher reconcile``).

It takes a **bounded snapshot**: the time T at which it starts and, per partition, the end
offset the broker reports then. A message below that offset is in the snapshot; one at or above
it is in the snapshot only if it was produced at or before T (its record timestamp), and the
first later one closes its partition. So live traffic never keeps it reading: it stops at what
existed at T. (The embedded Tansu 0.6 reports the last batch's base offset as the end offset,
not the high watermark; the timestamp rule still reads that last batch, and an idle partition
closes after ``quiet_s`` without records at or past its end offset.) PostgreSQL is read after
the topics, so everything decided for the snapshot is visible; what is younger than ``grace``
and has no outcome yet is counted ``in_flight``, not a problem.

What it checks (``reconcile``, pure, over plain data in a ``Snapshot``):

1. Every message on the input topics has one durable outcome, found **by its source** (topic,
   partition, offset), never by recomputing the writer's ids: an audit row with that source
   (accepted), a dead letter with that source (dead-lettered), or a later copy of an audited or
   dead-lettered event id (duplicate). None is ``no_outcome``; both is ``two_outcomes``.
2. Every escalation decided (``escalations``) was published (its outbox row is marked published)
   and is on ``acute.escalations``; extra copies of one id are counted (at-least-once).
3. The case-manager side: every escalation decided reached it (``case_escalations``), and every
   message on ``acute.escalations`` reached a case (``case_escalations``) or a dead letter (by
   source). One nobody decided is ``escalation_forged``; one that reached neither is
   ``escalation_dropped``; one id carried by different bytes is ``escalation_id_collision``.
4. No push is stuck: a pending delivery past its deadline, or an undeliverable one whose case did
   not fail over, is a problem; no delivery has more than one successful attempt.

``PROBLEMS`` lists every problem type; a unit test produces each one from in-memory data.
``collect`` does the reading (SQL in ``store.audit``).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS
from dispatcher.ingest.planner import Incoming

# (topic, partition, offset): where a message is, independent of anything derived from it.
Source = tuple[str, int, int]

PROBLEMS = (
    "no_outcome",
    "two_outcomes",
    "unpublished_outbox",
    "escalation_not_on_topic",
    "escalation_not_at_case_manager",
    "escalation_forged",
    "escalation_dropped",
    "escalation_id_collision",
    "delivery_stuck",
    "undeliverable_without_failover",
    "delivered_twice",
)


def event_id_of(raw: bytes | None) -> UUID | None:
    try:
        obj = orjson.loads(raw or b"")
        return UUID(str(obj["event_id"])) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


def _escalation_id_of(raw: bytes | None) -> UUID | None:
    try:
        obj = orjson.loads(raw or b"")
        return UUID(str(obj["escalation_id"])) if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


def _sha(raw: bytes | None) -> str:
    return hashlib.sha256(raw or b"").hexdigest()[:16]


@dataclass(frozen=True)
class TopicRecord:
    """One message as read from the broker, with its record timestamp (None if it had none)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None = None

    @property
    def source(self) -> Source:
        return (self.topic, self.partition, self.offset)

    def incoming(self) -> Incoming:
        return Incoming(self.topic, self.partition, self.offset, self.key, self.value)


@dataclass
class TopicSnapshot:
    """What a bounded read returned: the records, the time T it was bounded by and the end
    offsets reported at the start."""

    taken_at: datetime
    records: list[TopicRecord]
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass
class Snapshot:
    """What was read from the broker and the database, as plain data.

    The first fields are the original ones (kept so callers that build a ``Snapshot`` still
    work); the later ones, with defaults, carry sources and times for the bounded checks."""

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
    # --- bounded snapshot --------------------------------------------------------------------
    taken_at: datetime | None = None  # T of the escalations read (inputs were read before)
    input_times: dict[Source, datetime] = field(default_factory=dict)
    audited_sources: dict[Source, UUID] = field(default_factory=dict)  # source -> event id
    dead_letter_sources: set[Source] = field(default_factory=set)
    escalation_records: list[TopicRecord] = field(default_factory=list)


@dataclass
class Report:
    inputs_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    escalations: int = 0
    escalation_copies_on_topic: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    # Added fields (the original ones above keep their names and meaning).
    in_flight: int = 0  # inputs or topic escalations younger than the grace, no outcome yet
    dead_lettered_by_topic: dict[str, int] = field(default_factory=dict)
    escalation_messages_read: int = 0
    escalation_messages_dead_lettered: int = 0
    snapshot_taken_at: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def _recent(at: datetime | None, now: datetime, grace: timedelta) -> bool:
    return at is not None and now - at <= grace


def _check_inputs(snap: Snapshot, report: Report, now: datetime, grace: timedelta) -> None:
    """Point 1: one outcome per input message, found by its source."""
    by_topic: Counter[str] = Counter()
    for msg in snap.inputs:
        src: Source = (msg.topic, msg.partition, msg.offset)
        eid = event_id_of(msg.value)
        accepted = eid is not None and snap.audited_sources.get(src) == eid
        dead = src in snap.dead_letter_sources
        if accepted and dead:
            report.problems.append(
                {
                    "problem": "two_outcomes",
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "event_id": str(eid),
                }
            )
        if accepted:
            report.accepted += 1
        elif dead:
            report.dead_lettered += 1
            by_topic[msg.topic] += 1
        elif eid is not None and eid in snap.audited:
            report.duplicates += 1
        elif eid is not None and eid in snap.dead_letter_event_ids:
            # A later copy of an event that was dead-lettered by its id (a rule error).
            report.dead_lettered += 1
            by_topic[msg.topic] += 1
        elif _recent(snap.input_times.get(src), now, grace):
            report.in_flight += 1
        else:
            report.problems.append(
                {
                    "problem": "no_outcome",
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "event_id": str(eid) if eid else None,
                    "sha256": _sha(msg.value),
                }
            )
    report.dead_lettered_by_topic = dict(sorted(by_topic.items()))


def _check_escalations_db(
    snap: Snapshot, report: Report, now: datetime, grace: timedelta, on_topic: Counter[UUID]
) -> None:
    """Point 2 and the first half of 3: each decided escalation published, on the topic (if
    decided long enough before the topic was read) and taken by the case manager."""
    report.escalations = len(snap.escalations_db)
    for topic, created in snap.unpublished_outbox:
        if now - created > grace:
            report.problems.append(
                {"problem": "unpublished_outbox", "topic": topic, "created_at": created.isoformat()}
            )
    read_at = snap.taken_at or now
    for esc_id, created in snap.escalations_db.items():
        copies = on_topic.get(esc_id, 0)
        if copies == 0 and read_at - created > grace:
            report.problems.append(
                {"problem": "escalation_not_on_topic", "escalation_id": str(esc_id)}
            )
        report.escalation_copies_on_topic += max(0, copies - 1)
        if esc_id not in snap.escalations_at_case_manager and now - created > grace:
            report.problems.append(
                {"problem": "escalation_not_at_case_manager", "escalation_id": str(esc_id)}
            )


def _check_escalation_topic(
    snap: Snapshot, report: Report, now: datetime, grace: timedelta
) -> None:
    """The second half of point 3: every message on acute.escalations reached a case or a
    dead letter; none was forged; no id is carried by different bytes."""
    contents: dict[UUID, set[str]] = defaultdict(set)
    report.escalation_messages_read = len(snap.escalation_records)
    for rec in snap.escalation_records:
        eid = _escalation_id_of(rec.value)
        where = {"partition": rec.partition, "offset": rec.offset}
        dead = rec.source in snap.dead_letter_sources
        report.escalation_messages_dead_lettered += int(dead)
        handled = dead or (eid is not None and eid in snap.escalations_at_case_manager)
        ours = eid is not None and eid in snap.escalations_db
        if eid is not None:
            contents[eid].add(_sha(rec.value))
            if not ours:
                report.problems.append(
                    {
                        "problem": "escalation_forged",
                        "escalation_id": str(eid),
                        "handled": handled,
                        **where,
                    }
                )
        if handled or ours:  # ours and not handled: escalation_not_at_case_manager says so
            continue
        if _recent(rec.timestamp, now, grace):
            report.in_flight += 1
            continue
        report.problems.append(
            {
                "problem": "escalation_dropped",
                "escalation_id": str(eid) if eid else None,
                "sha256": _sha(rec.value),
                **where,
            }
        )
    for eid, shas in contents.items():
        if len(shas) > 1:
            report.problems.append(
                {
                    "problem": "escalation_id_collision",
                    "escalation_id": str(eid),
                    "contents": len(shas),
                }
            )


def reconcile(snap: Snapshot, now: datetime, grace: timedelta = timedelta(seconds=10)) -> Report:
    """Compare what the broker holds with what PostgreSQL says became of it (pure)."""
    report = Report(
        inputs_read=len(snap.inputs),
        snapshot_taken_at=snap.taken_at.isoformat() if snap.taken_at else None,
    )
    _check_inputs(snap, report, now, grace)
    on_topic = snap.escalations_on_topic
    if snap.escalation_records:
        on_topic = Counter(
            eid for r in snap.escalation_records if (eid := _escalation_id_of(r.value)) is not None
        )
    _check_escalations_db(snap, report, now, grace, on_topic)
    _check_escalation_topic(snap, report, now, grace)
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


def in_snapshot(
    offset: int, timestamp: datetime | None, end_offset: int, taken_at: datetime
) -> bool:
    """The snapshot rule: below the end offset read at the start, or produced by T. A record
    without a timestamp past the end offset counts as in (the partition's quiet time ends it)."""
    return offset < end_offset or timestamp is None or timestamp <= taken_at


def _timestamp(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None and ms >= 0 else None


def read_snapshot(
    bootstrap: str,
    topics: Sequence[str],
    *,
    timeout_s: float = 60.0,
    quiet_s: float = 1.5,
    taken_at: datetime | None = None,
) -> TopicSnapshot:
    """Read ``topics`` from the beginning up to what existed at T (``taken_at``, default now):
    every record below the end offsets reported at the start, then records produced by T; a
    partition closes at its first later record, or after ``quiet_s`` with nothing new once it
    reached its end offset. Raises ``TimeoutError`` after ``timeout_s`` (a broker that does not
    answer), never because traffic goes on."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    taken_at = taken_at or datetime.now(UTC)
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
            return TopicSnapshot(taken_at, [])
        end = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[TopicRecord] = []
        open_tps = set(tps)
        started = time.monotonic()
        last_record = dict.fromkeys(tps, started)
        while open_tps:
            if time.monotonic() - started > timeout_s:
                raise TimeoutError("could not read the topics up to the snapshot")
            batch = consumer.poll(timeout_ms=200)
            for tp, records in batch.items():
                if tp not in open_tps:
                    continue
                last_record[tp] = time.monotonic()
                for r in records:
                    at = _timestamp(r.timestamp)
                    if not in_snapshot(r.offset, at, end[tp], taken_at):
                        open_tps.discard(tp)
                        consumer.pause(tp)
                        break
                    out.append(TopicRecord(tp.topic, tp.partition, r.offset, r.key, r.value, at))
            for tp in list(open_tps):
                if (
                    consumer.position(tp) >= end[tp]
                    and time.monotonic() - last_record[tp] >= quiet_s
                ):
                    open_tps.discard(tp)
                    consumer.pause(tp)
        return TopicSnapshot(taken_at, out, {(tp.topic, tp.partition): int(end[tp]) for tp in tps})
    finally:
        consumer.close()


def read_topics(
    bootstrap: str, topics: Sequence[str], timeout_s: float = 60.0, quiet_s: float = 1.5
) -> list[Incoming]:
    """The messages of ``topics`` up to now (``read_snapshot``), as the planner's ``Incoming``."""
    snap = read_snapshot(bootstrap, topics, timeout_s=timeout_s, quiet_s=quiet_s)
    return [r.incoming() for r in snap.records]


async def collect(bootstrap: str, dsn: str) -> Snapshot:
    """Read the topics (in threads: the Kafka client blocks), then the database's evidence."""
    import asyncio

    from dispatcher.store import audit
    from dispatcher.store.db import connection

    inputs = await asyncio.to_thread(read_snapshot, bootstrap, list(INPUT_TOPICS))
    on_topic = await asyncio.to_thread(read_snapshot, bootstrap, [ESCALATIONS])
    async with connection(dsn) as conn:
        audited = await audit.audited_event_ids(conn)
        audited_sources = await audit.audited_sources(conn)
        dead = await audit.dead_letters(conn)
        dead_sources = await audit.dead_letter_sources(conn)
        escalations = await audit.escalations_created(conn)
        unpublished = await audit.unpublished_outbox(conn)
        at_cases = await audit.escalations_at_case_manager(conn)
        stuck = await audit.stuck_deliveries(conn)
        no_failover = await audit.undeliverable_without_failover(conn)
        twice = await audit.deliveries_delivered_twice(conn)
    topic_counts: Counter[UUID] = Counter(
        eid for r in on_topic.records if (eid := _escalation_id_of(r.value)) is not None
    )
    return Snapshot(
        inputs=[r.incoming() for r in inputs.records],
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
        taken_at=on_topic.taken_at,
        input_times={r.source: r.timestamp for r in inputs.records if r.timestamp is not None},
        audited_sources=audited_sources,
        dead_letter_sources=dead_sources,
        escalation_records=on_topic.records,
    )


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
    yield (
        f"snapshot at {report.snapshot_taken_at}: in flight {report.in_flight}, escalation "
        f"messages read {report.escalation_messages_read} (dead-lettered "
        f"{report.escalation_messages_dead_lettered})"
    )
    yield "OK: nothing lost" if report.ok else f"PROBLEMS: {len(report.problems)}"
    for p in report.problems[:limit]:
        yield "  " + orjson.dumps(p).decode()
