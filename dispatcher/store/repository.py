"""The durable side of a batch: one PostgreSQL transaction per batch, and the outbox relay.

``Repository`` is the small interface the service depends on; ``PostgresRepository`` is the real
one (asyncpg) and ``InMemoryRepository`` in ``dispatcher.store.fake`` is its test double.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import orjson

from dispatcher.pipeline import BatchPlan, OutboxMessage
from dispatcher.rules.context import CitizenContext

Planner = Callable[[set[UUID], dict[str, CitizenContext]], BatchPlan]
# Timer scans: contexts -> the candidate event ids and a planner that takes the ids already seen.
ScanPlanner = Callable[
    [dict[str, CitizenContext]], tuple[list[UUID], Callable[[set[UUID]], BatchPlan]]
]
Sender = Callable[[Sequence[OutboxMessage]], Awaitable[None]]


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
        self, send: Sender, ids: Sequence[int] | None = None, min_age_s: float = 0.0,
        limit: int = 1000,
    ) -> int:
        """Send unpublished outbox rows (all, or only ``ids``) and mark them published."""

    async def apply_sensor_scan(
        self, sensor_silent_since: datetime, limit: int, planner: ScanPlanner
    ) -> StoredBatch:
        """Lock contexts whose last sensor reading is older than ``sensor_silent_since``, plan
        timer checks over them and store the plan atomically."""


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


class PostgresRepository:
    """asyncpg implementation over the tables in ``migrations/``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def connect(cls, dsn: str, min_size: int = 1, max_size: int = 5) -> PostgresRepository:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def close(self) -> None:
        await self._pool.close()

    async def apply_batch(
        self, event_ids: Sequence[UUID], citizen_ids: Sequence[str], planner: Planner
    ) -> StoredBatch:
        async with self._pool.acquire() as conn, conn.transaction():
            seen_rows = await conn.fetch(
                "SELECT event_id FROM audit_log WHERE event_id = ANY($1::uuid[])",
                list(event_ids),
            )
            ctx_rows = await conn.fetch(
                "SELECT citizen_id, context FROM citizen_context "
                "WHERE citizen_id = ANY($1::text[]) ORDER BY citizen_id FOR UPDATE",
                sorted(set(citizen_ids)),
            )
            seen = {r["event_id"] for r in seen_rows}
            contexts = {
                r["citizen_id"]: CitizenContext.model_validate_json(r["context"])
                for r in ctx_rows
            }
            plan = planner(seen, contexts)
            return await self._store_with_outbox(conn, plan)

    async def apply_sensor_scan(
        self, sensor_silent_since: datetime, limit: int, planner: ScanPlanner
    ) -> StoredBatch:
        async with self._pool.acquire() as conn, conn.transaction():
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

    async def _store_with_outbox(self, conn: asyncpg.Connection, plan: BatchPlan) -> StoredBatch:
        await self._store(conn, plan)
        outbox = plan.outbox()
        ids: list[int] = []
        if outbox:
            rows = await conn.fetch(
                "INSERT INTO outbox (topic, key, value) "
                "SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) RETURNING id",
                [m.topic for m in outbox],
                [m.key for m in outbox],
                [m.value for m in outbox],
            )
            ids = [r["id"] for r in rows]
        return StoredBatch(plan, ids)

    async def _store(self, conn: asyncpg.Connection, plan: BatchPlan) -> None:
        if plan.audits:
            await conn.executemany(
                """INSERT INTO audit_log (event_id, citizen_id, event_kind, source_topic,
                       source_partition, source_offset, occurred_at, outcome, severity,
                       assessment, payload)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb)""",
                [
                    (
                        a.event.event_id,
                        a.event.citizen_id,
                        a.assessment.event_kind,
                        a.incoming.topic,
                        a.incoming.partition,
                        a.incoming.offset,
                        a.event.occurred_at,
                        a.outcome,
                        a.assessment.severity,
                        a.assessment.model_dump_json(),
                        a.event.model_dump_json(),
                    )
                    for a in plan.audits
                ],
            )
        if plan.contexts:
            await conn.executemany(
                """INSERT INTO citizen_context (citizen_id, context, updated_at)
                   VALUES ($1, $2::jsonb, now())
                   ON CONFLICT (citizen_id)
                   DO UPDATE SET context = EXCLUDED.context, updated_at = now()""",
                [(cid, ctx.model_dump_json()) for cid, ctx in plan.contexts.items()],
            )
        if plan.escalations:
            await conn.executemany(
                """INSERT INTO escalations (escalation_id, case_id, citizen_id, severity,
                       route_tier, route_team, payload, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8)
                   ON CONFLICT (escalation_id) DO NOTHING""",
                [
                    (
                        e.escalation_id,
                        e.case_id,
                        e.citizen_id,
                        e.severity,
                        e.route.tier,
                        e.route.team,
                        e.model_dump_json(),
                        e.created_at,
                    )
                    for e in plan.escalations
                ],
            )
        if plan.dead_letters:
            await conn.executemany(
                """INSERT INTO dead_letters (dead_letter_id, source_topic, source_partition,
                       source_offset, event_id, error_field, error_reason, errors, original,
                       rejected_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, decode($9, 'base64'), $10)
                   ON CONFLICT (dead_letter_id) DO NOTHING""",
                [
                    (
                        d.dead_letter_id,
                        d.source_topic,
                        d.partition,
                        d.offset,
                        d.event_id,
                        d.error.field,
                        d.error.reason,
                        _json([e.model_dump() for e in d.errors]),
                        d.original_b64,
                        d.rejected_at,
                    )
                    for d in plan.dead_letters
                ],
            )

    async def relay_outbox(
        self, send: Sender, ids: Sequence[int] | None = None, min_age_s: float = 0.0,
        limit: int = 1000,
    ) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            if ids is not None:
                rows = await conn.fetch(
                    "SELECT id, topic, key, value FROM outbox "
                    "WHERE id = ANY($1::bigint[]) AND published_at IS NULL "
                    "ORDER BY id FOR UPDATE SKIP LOCKED",
                    list(ids),
                )
            else:
                rows = await conn.fetch(
                    "SELECT id, topic, key, value FROM outbox "
                    "WHERE published_at IS NULL "
                    "AND created_at <= now() - make_interval(secs => $1) "
                    "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                    min_age_s,
                    limit,
                )
            if not rows:
                return 0
            await send([OutboxMessage(r["topic"], r["key"], r["value"]) for r in rows])
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [r["id"] for r in rows],
            )
            return len(rows)

    async def outbox_backlog(self) -> tuple[int, datetime | None]:
        """How many outbox rows wait, and since when (for health and metrics)."""
        row = await self._pool.fetchrow(
            "SELECT count(*) AS n, min(created_at) AS oldest FROM outbox "
            "WHERE published_at IS NULL"
        )
        assert row is not None
        return int(row["n"]), row["oldest"]
