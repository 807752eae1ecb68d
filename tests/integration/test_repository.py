"""The PostgreSQL repository and migrations against a real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from dispatcher.contract.topics import DISCHARGES, ESCALATIONS, SENSOR_READINGS
from dispatcher.devstack.stack import Stack, apply_migrations
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.batches import PostgresRepository
from tests import helpers


class TestMigrations:
    async def test_migrations_apply_once(self, stack: Stack, db: Any) -> None:
        """Running the migrations again applies nothing and keeps one row per version."""
        assert await apply_migrations(stack.dsn) == []
        versions = await db.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [v["version"] for v in versions] == list(range(1, len(versions) + 1))


class TestSilentSensorScan:
    async def test_silence_scan_escalates_once_in_postgres(self, stack: Stack, db: Any) -> None:
        """The timer's scan finds a silent high-risk citizen in PostgreSQL and escalates once."""
        sent: list[OutboxMessage] = []

        async def send(msgs: Sequence[OutboxMessage]) -> None:
            sent.extend(msgs)

        now = datetime.now(UTC)
        clock = [now]
        repo = await PostgresRepository.connect(stack.dsn)
        try:
            p = BatchProcessor(repo, send, DispatcherMetrics(), clock=lambda: clock[0])
            cid = helpers.citizen()
            await p.handle(
                [
                    Incoming(
                        DISCHARGES,
                        -1,
                        -1,
                        cid.encode(),
                        json.dumps(helpers.discharge(cid, now - timedelta(hours=1))).encode(),
                    ),
                    Incoming(
                        SENSOR_READINGS,
                        -1,
                        -2,
                        cid.encode(),
                        json.dumps(helpers.sensor(cid, "spo2", 95, "%", now)).encode(),
                    ),
                ]
            )
            clock[0] = now + timedelta(hours=37)  # spot check: limit 36 h (issue 12 item 10)
            await p.check_silent_sensors()
            await p.check_silent_sensors()
        finally:
            await repo.close()
        mine = [json.loads(m.value) for m in sent if m.topic == ESCALATIONS]
        mine = [e for e in mine if e["citizen_id"] == cid]
        assert len(mine) == 1
        assert mine[0]["reasons"][0]["rule_id"] == "sensor.silent"
        row = await db.fetchrow(
            "SELECT source_topic, outcome FROM audit_log WHERE citizen_id = $1 "
            "AND event_kind = 'sensor_silence'",
            cid,
        )
        assert row is not None
        assert row["outcome"] == "escalated"
        assert isinstance(db, asyncpg.Connection)
