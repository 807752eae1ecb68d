"""The durable side of a batch: one PostgreSQL transaction per batch, and the outbox relay.

``Repository`` is the small interface the service depends on; ``PostgresRepository`` is the real
one (asyncpg) and ``InMemoryRepository`` in ``dispatcher.store.testing`` is its test double.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import orjson

from dispatcher.contract.events import DeadLetter
from dispatcher.ingest.planner import BatchPlan, OutboxMessage, SeenIds
from dispatcher.rules.context import CitizenContext
from dispatcher.store import db

# The planner gets the batch's event ids already stored, each with its content hash.
Planner = Callable[[SeenIds, dict[str, CitizenContext]], BatchPlan]
# Timer scans: contexts -> the candidate event ids and a planner that takes the ids already seen.
ScanPlanner = Callable[
    [dict[str, CitizenContext]], tuple[list[UUID], Callable[[set[UUID]], BatchPlan]]
]


@dataclass(frozen=True)
class SendFailure:
    """Why one outbox message was not sent. ``permanent``: sending it again cannot succeed (too
    large, any non-retriable produce error), so the relay parks the row; otherwise the row stays
    for the sweep. ``kind`` is a bounded word for metrics (``too_large``, ``refused``,
    ``transient``); ``reason`` is the text kept with a parked row."""

    reason: str
    permanent: bool
    kind: str = "refused"


# Sends messages and says, per message and in order, None (sent and acknowledged) or the
# failure. Returning None means all were sent; raising means nothing is known to have been
# sent (every row stays for the sweep).
Sender = Callable[[Sequence[OutboxMessage]], Awaitable[Sequence[SendFailure | None] | None]]


@dataclass(frozen=True)
class ParkedMessage:
    outbox_id: int
    topic: str
    failure: SendFailure


@dataclass
class RelayOutcome:
    """One relay pass: what went out (marked published, never sent again), what was parked
    (refused for good, never blocks the rows behind it) and how many rows stay for the sweep."""

    sent: list[OutboxMessage] = field(default_factory=list)
    parked: list[ParkedMessage] = field(default_factory=list)
    left: int = 0


def sort_results(
    ids: Sequence[int],
    messages: Sequence[OutboxMessage],
    results: Sequence[SendFailure | None] | None,
) -> tuple[list[int], RelayOutcome]:
    """Split one send's per-message results into the ids to mark published and the outcome."""
    if results is None:
        results = [None] * len(messages)
    if len(results) != len(messages):
        raise ValueError(f"sender answered {len(results)} results for {len(messages)} messages")
    published: list[int] = []
    outcome = RelayOutcome()
    for outbox_id, message, result in zip(ids, messages, results, strict=True):
        if result is None:
            published.append(outbox_id)
            outcome.sent.append(message)
        elif result.permanent:
            outcome.parked.append(ParkedMessage(outbox_id, message.topic, result))
        else:
            outcome.left += 1
    return published, outcome


@dataclass(frozen=True)
class StoredBatch:
    plan: BatchPlan
    outbox_ids: list[int]


class Repository(Protocol):
    async def apply_batch(
        self, event_ids: Sequence[UUID], citizen_ids: Sequence[str], planner: Planner
    ) -> StoredBatch:
        """Load what the planner needs, run it, store its plan atomically."""

    async def relay_outbox(
        self,
        send: Sender,
        ids: Sequence[int] | None = None,
        min_age_s: float = 0.0,
        limit: int = 1000,
    ) -> RelayOutcome:
        """Send pending outbox rows (all, or only ``ids``): mark each one sent as published,
        park each one refused for good with its reason, leave the rest for the sweep."""

    async def apply_sensor_scan(
        self, sensor_silent_since: datetime, limit: int, planner: ScanPlanner
    ) -> StoredBatch:
        """Lock contexts whose last sensor reading is older than ``sensor_silent_since``, plan
        timer checks over them and store the plan atomically."""


# The exit status of a worker stopped by the test-only fault hook (Settings.
# fault_exit_after_outbox_send), so a test can tell it from any other death.
FAULT_EXIT_CODE = 86


def _fault_exit() -> None:
    os.write(2, b"fault_exit_after_outbox_send: exiting between send and mark (test only)\n")
    os._exit(FAULT_EXIT_CODE)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


# One round trip to start a batch: the event ids already audited with their content hashes,
# and the contexts of the batch's citizens, locked in citizen order (so two workers never
# deadlock on them).
LOAD_BATCH = """
WITH locked AS (
    SELECT citizen_id, context::text AS context FROM citizen_context
    WHERE citizen_id = ANY($2::text[]) ORDER BY citizen_id FOR UPDATE
),
seen AS (
    SELECT event_id, content_sha256 FROM audit_log WHERE event_id = ANY($1::uuid[])
)
SELECT
    ARRAY(SELECT event_id FROM seen ORDER BY event_id) AS seen,
    ARRAY(SELECT content_sha256 FROM seen ORDER BY event_id) AS seen_sha256,
    ARRAY(SELECT citizen_id FROM locked ORDER BY citizen_id) AS citizens,
    ARRAY(SELECT context FROM locked ORDER BY citizen_id) AS contexts
"""

# One round trip to store a whole plan: every table is written from arrays (one element per
# row), and the outbox ids come back. Data-modifying CTEs always run to completion, whether or
# not the outer query reads them; an empty array inserts nothing.
STORE_PLAN = """
WITH audit AS (
    INSERT INTO audit_log (event_id, citizen_id, event_kind, source_topic, source_partition,
                           source_offset, occurred_at, outcome, severity, assessment, payload,
                           content_sha256)
    SELECT event_id, citizen_id, event_kind, source_topic, source_partition, source_offset,
           occurred_at, outcome, severity, assessment::jsonb, payload::jsonb, content_sha256
    FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::bigint[],
                $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::text[],
                $36::text[])
         WITH ORDINALITY
         AS t(event_id, citizen_id, event_kind, source_topic, source_partition, source_offset,
              occurred_at, outcome, severity, assessment, payload, content_sha256, n)
    ORDER BY n  -- audit_seq follows the plan's (consumption) order
),
context AS (
    INSERT INTO citizen_context (citizen_id, context, updated_at)
    SELECT citizen_id, context::jsonb, now()
    FROM unnest($12::text[], $13::text[]) AS t(citizen_id, context)
    ON CONFLICT (citizen_id)
    DO UPDATE SET context = EXCLUDED.context, updated_at = now()
),
escalation AS (
    INSERT INTO escalations (escalation_id, case_id, citizen_id, severity, route_tier,
                             route_team, payload, created_at)
    SELECT escalation_id, case_id, citizen_id, severity, route_tier, route_team,
           payload::jsonb, created_at
    FROM unnest($14::uuid[], $15::uuid[], $16::text[], $17::text[], $18::text[], $19::text[],
                $20::text[], $21::timestamptz[])
         AS t(escalation_id, case_id, citizen_id, severity, route_tier, route_team, payload,
              created_at)
    ON CONFLICT (escalation_id) DO NOTHING
),
dead_letter AS (
    INSERT INTO dead_letters (dead_letter_id, source_topic, source_partition, source_offset,
                              event_id, error_field, error_reason, errors, original,
                              rejected_at)
    SELECT dead_letter_id, source_topic, source_partition, source_offset, event_id,
           error_field, error_reason, errors::jsonb, decode(original, 'base64'), rejected_at
    FROM unnest($22::uuid[], $23::text[], $24::int[], $25::bigint[], $26::uuid[], $27::text[],
                $28::text[], $29::text[], $30::text[], $31::timestamptz[])
         AS t(dead_letter_id, source_topic, source_partition, source_offset, event_id,
              error_field, error_reason, errors, original, rejected_at)
    ON CONFLICT (dead_letter_id) DO NOTHING
    RETURNING dead_letter_id
)
INSERT INTO outbox (topic, key, value)
SELECT topic, key, value
FROM unnest($32::text[], $33::bytea[], $34::bytea[], $35::uuid[]) WITH ORDINALITY
     AS t(topic, key, value, dead_letter_id, n)
-- A replayed bad message maps to a dead letter we already have: it is not sent again.
WHERE t.dead_letter_id IS NULL OR t.dead_letter_id IN (SELECT dead_letter_id FROM dead_letter)
ORDER BY n
RETURNING id
"""


class PostgresRepository:
    """asyncpg implementation over the tables in ``migrations/``; one ``db.transaction`` per
    batch, scan and relay."""

    def __init__(self, pool: db.Pool, *, fault_exit_after_send: bool = False) -> None:
        self._pool = pool
        self._fault_exit_after_send = fault_exit_after_send  # test only (Settings)

    @classmethod
    async def connect(
        cls, dsn: str, min_size: int = 1, max_size: int = 5, *, fault_exit_after_send: bool = False
    ) -> PostgresRepository:
        return cls(
            await db.create_pool(dsn, min_size=min_size, max_size=max_size),
            fault_exit_after_send=fault_exit_after_send,
        )

    @property
    def pool(self) -> db.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def apply_batch(
        self, event_ids: Sequence[UUID], citizen_ids: Sequence[str], planner: Planner
    ) -> StoredBatch:
        async with db.transaction(self._pool) as conn:
            row = await conn.fetchrow(LOAD_BATCH, list(event_ids), sorted(set(citizen_ids)))
            assert row is not None
            seen = dict(zip(row["seen"], row["seen_sha256"], strict=True))
            contexts = {
                cid: CitizenContext.model_validate_json(raw)
                for cid, raw in zip(row["citizens"], row["contexts"], strict=True)
            }
            plan = planner(seen, contexts)
            return await self._store_with_outbox(conn, plan)

    async def apply_sensor_scan(
        self, sensor_silent_since: datetime, limit: int, planner: ScanPlanner
    ) -> StoredBatch:
        async with db.transaction(self._pool) as conn:
            rows = await conn.fetch(
                "SELECT citizen_id, context FROM citizen_context "
                "WHERE (context->>'last_sensor_at')::timestamptz < $1 "
                "ORDER BY citizen_id LIMIT $2 FOR UPDATE SKIP LOCKED",
                sensor_silent_since,
                limit,
            )
            contexts = {
                r["citizen_id"]: CitizenContext.model_validate_json(r["context"]) for r in rows
            }
            candidate_ids, finish = planner(contexts)
            seen_rows = await conn.fetch(
                "SELECT event_id FROM audit_log WHERE event_id = ANY($1::uuid[])", candidate_ids
            )
            plan = finish({r["event_id"] for r in seen_rows})
            return await self._store_with_outbox(conn, plan)

    @staticmethod
    async def _store_with_outbox(conn: db.Connection, plan: BatchPlan) -> StoredBatch:
        """Everything the plan stores, in one statement (one round trip)."""
        outbox = plan.outbox()
        if not (plan.audits or plan.contexts or plan.escalations or plan.dead_letters):
            return StoredBatch(plan, [])
        audits = plan.audits
        contexts = plan.contexts
        escalations = plan.escalations
        letters = plan.dead_letters
        rows = await conn.fetch(
            STORE_PLAN,
            # audit_log
            [a.event.event_id for a in audits],
            [a.event.citizen_id for a in audits],
            [a.assessment.event_kind for a in audits],
            [a.incoming.topic for a in audits],
            [a.incoming.partition for a in audits],
            [a.incoming.offset for a in audits],
            [a.event.occurred_at for a in audits],
            [a.outcome for a in audits],
            [a.assessment.severity for a in audits],
            [a.assessment.model_dump_json() for a in audits],
            [a.event.model_dump_json() for a in audits],
            # citizen_context
            list(contexts),
            [c.model_dump_json() for c in contexts.values()],
            # escalations
            [e.escalation_id for e in escalations],
            [e.case_id for e in escalations],
            [e.citizen_id for e in escalations],
            [e.severity for e in escalations],
            [e.route.tier for e in escalations],
            [e.route.team for e in escalations],
            [e.model_dump_json() for e in escalations],
            [e.created_at for e in escalations],
            # dead_letters
            [d.dead_letter_id for d in letters],
            [d.source_topic for d in letters],
            [d.partition for d in letters],
            [d.offset for d in letters],
            [d.event_id for d in letters],
            [d.error.field for d in letters],
            [d.error.reason for d in letters],
            [_json([e.model_dump() for e in d.errors]) for d in letters],
            [d.original_b64 for d in letters],
            [d.rejected_at for d in letters],
            # outbox
            [m.topic for m in outbox],
            [m.key for m in outbox],
            [m.value for m in outbox],
            [m.dead_letter_id for m in outbox],
            # audit_log.content_sha256 (numbered last: added after the rest)
            [a.content_sha256 for a in audits],
        )
        return StoredBatch(plan, [r["id"] for r in rows])

    async def relay_outbox(
        self,
        send: Sender,
        ids: Sequence[int] | None = None,
        min_age_s: float = 0.0,
        limit: int = 1000,
    ) -> RelayOutcome:
        async with db.transaction(self._pool) as conn:
            if ids is not None:
                rows = await conn.fetch(
                    "SELECT id, topic, key, value FROM outbox "
                    "WHERE id = ANY($1::bigint[]) AND published_at IS NULL AND parked_at IS NULL "
                    "ORDER BY id FOR UPDATE SKIP LOCKED",
                    list(ids),
                )
            else:
                rows = await conn.fetch(
                    "SELECT id, topic, key, value FROM outbox "
                    "WHERE published_at IS NULL AND parked_at IS NULL "
                    "AND created_at <= now() - make_interval(secs => $1) "
                    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    min_age_s,
                    limit,
                )
            if not rows:
                return RelayOutcome()
            messages = [OutboxMessage(r["topic"], r["key"], r["value"]) for r in rows]
            published, outcome = sort_results(
                [r["id"] for r in rows], messages, await send(messages)
            )
            if published and self._fault_exit_after_send:
                _fault_exit()  # sent, not yet marked: a crash here re-sends them (at least once)
            if published:
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    published,
                )
            if outcome.parked:
                await conn.execute(
                    "UPDATE outbox SET parked_at = now(), park_reason = t.reason "
                    "FROM unnest($1::bigint[], $2::text[]) AS t(id, reason) WHERE outbox.id = t.id",
                    [p.outbox_id for p in outcome.parked],
                    [p.failure.reason[:1000] for p in outcome.parked],
                )
            return outcome

    async def parked_outbox(self) -> list[tuple[int, str, str, datetime]]:
        """Parked rows (id, topic, reason, parked_at), oldest first: what an operator must see."""
        rows = await self._pool.fetch(
            "SELECT id, topic, park_reason, parked_at FROM outbox "
            "WHERE parked_at IS NOT NULL ORDER BY parked_at, id"
        )
        return [(r["id"], r["topic"], r["park_reason"], r["parked_at"]) for r in rows]

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many outbox rows wait to be sent, and since when (for health and metrics);
        parked rows do not wait (they are counted and alerted on when parked)."""
        row = await self._pool.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
            "WHERE published_at IS NULL AND parked_at IS NULL"
        )
        assert row is not None
        return int(row["n"]), row["oldest"]


async def store_dead_letters(conn: db.Connection, letters: Sequence[DeadLetter]) -> list[int]:
    """Store dead letters in the caller's transaction (the case manager's): a row each, and an
    outbox row for each one not stored before (a replayed message is not dead-lettered twice).
    Returns the new outbox ids."""
    if not letters:
        return []
    stored = await PostgresRepository._store_with_outbox(
        conn, BatchPlan(dead_letters=list(letters))
    )
    return stored.outbox_ids
