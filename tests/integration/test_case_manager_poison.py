"""Issue 11 item 1, the case-manager side, on the real broker and PostgreSQL.

A message on ``acute.escalations`` that is not a valid Escalation, or that PostgreSQL cannot
store (``\\u0000`` in a string: ``text``/``jsonb`` refuse NUL), once crashed the case-manager
agent: the escalations batched after it were dropped without a dead letter and SIGTERM then
hung. Now each is dead-lettered (field, reason, category), the rest of the batch is applied, and
a graceful stop with poison in flight ends within a bound.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from kafka import KafkaProducer

from dispatcher.cases import manager as manager_module
from dispatcher.cases.manager import CaseManager
from dispatcher.contract.events import DeadLetter, Escalation, Reason, Route
from dispatcher.contract.topics import ESCALATIONS
from dispatcher.devstack.stack import Stack, WorkerProcess
from dispatcher.ingest.planner import Incoming
from dispatcher.store.db import create_pool
from tests import helpers
from tests.integration.conftest import TopicReader

# A graceful stop must end within this (faust's own shutdown takes a few seconds).
STOP_BOUND_S = 30.0


def escalation(cid: str, **over: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    esc = Escalation(
        escalation_id=uuid4(),
        case_id=uuid4(),
        citizen_id=cid,
        created_at=now,
        severity="high",
        route=Route(
            tier="nurse", team="acute-nurses-lyngby", competence="general_acute", reason="t"
        ),
        reasons=[Reason(rule_id="sensor.fall", rule_version=1, summary="fall")],
        ack_deadline=now + timedelta(minutes=15),
        triggered_by=[uuid4()],
    )
    body: dict[str, Any] = json.loads(esc.model_dump_json())
    body.update(over)
    return body


def _poison_batch() -> tuple[list[bytes], dict[str, Any], dict[str, Any]]:
    """Valid, NUL-poisoned, garbage, not-an-escalation, valid (sent under one key: one
    partition, so one batch, in order)."""
    first, last = escalation(helpers.citizen()), escalation(helpers.citizen())
    nul = escalation(helpers.citizen())
    nul["route"]["reason"] = "bad\u0000byte"
    marker = str(uuid4())
    values = [
        json.dumps(first).encode(),
        json.dumps(nul).encode(),
        f"garbage {marker}".encode(),
        # citizen_id included: other tests' readers of the topic filter on it.
        json.dumps({"citizen_id": helpers.citizen(), "marker": marker}).encode(),
        json.dumps(last).encode(),
    ]
    return values, first, last


async def _reached_case_manager(db: Any, escalation_id: str, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await db.fetchval(
            "SELECT count(*) FROM case_escalations WHERE escalation_id = $1::uuid", escalation_id
        )
        if found:
            return True
        await asyncio.sleep(0.2)
    return False


def _from_escalations(d: dict[str, Any]) -> bool:
    return bool(d.get("source_topic") == ESCALATIONS)


class TestPoisonOnTheEscalationsTopic:
    async def test_poison_is_dead_lettered_and_the_batch_after_it_is_applied(
        self,
        stack: Stack,
        worker: WorkerProcess,
        producer: KafkaProducer,
        dead_letters: TopicReader,
        db: Any,
    ) -> None:
        key = helpers.citizen().encode()
        values, first, last = _poison_batch()
        for v in values:
            producer.send(ESCALATIONS, key=key, value=v)
        producer.flush(10)

        assert await _reached_case_manager(db, first["escalation_id"])
        assert await _reached_case_manager(db, last["escalation_id"])
        letters = await asyncio.to_thread(
            dead_letters.wait_for,
            lambda d: _from_escalations(d) and d["key_b64"] is not None,
            3,
        )
        mine = [d for d in letters if base64.b64decode(d["key_b64"]) == key]
        assert sorted(d["category"] for d in mine) == ["malformed", "validation", "validation"]
        assert {d["error"]["field"] for d in mine} >= {"$", "route.reason"}
        nul_letter = next(d for d in mine if d["error"]["field"] == "route.reason")
        assert "NUL" in nul_letter["error"]["reason"]
        stored = await db.fetchval(
            "SELECT count(*) FROM dead_letters WHERE source_topic = $1 AND dead_letter_id = "
            "ANY($2::uuid[])",
            ESCALATIONS,
            [d["dead_letter_id"] for d in mine],
        )
        assert stored == 3
        assert worker.alive()

    async def test_what_postgresql_refuses_is_a_store_error_dead_letter(
        self, stack: Stack, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the NUL check switched off, PostgreSQL itself refuses the escalation (its jsonb
        cannot hold \\u0000): the case manager dead-letters it as store_error instead of
        raising, and applies the escalation after it."""

        def without_nul_check(msg: Incoming, now: datetime) -> Escalation | DeadLetter:
            return Escalation.model_validate_json(msg.value or b"")

        monkeypatch.setattr(manager_module, "decode_escalation", without_nul_check)
        nul = escalation(helpers.citizen())
        nul["route"]["reason"] = "bad\u0000byte"
        nul["reasons"][0]["rule_id"] = "sensor.fa\u0000ll"  # a key of cases.detail (jsonb)
        after = escalation(helpers.citizen())
        pool = await create_pool(stack.dsn)
        relayed: list[int] = []

        async def relay() -> None:
            relayed.append(1)

        letters: list[DeadLetter] = []
        try:
            cm = CaseManager(pool, relay, on_dead_letter=letters.append)
            offset = int(time.time() * 1000)  # unique coordinates: a fresh dead letter id
            decisions = await cm.handle(
                [
                    Incoming(ESCALATIONS, 0, offset, b"k", json.dumps(nul).encode()),
                    Incoming(ESCALATIONS, 0, offset + 1, b"k", json.dumps(after).encode()),
                ]
            )
        finally:
            await pool.close()
        assert [d.category for d in letters] == ["store_error"]
        assert "UntranslatableCharacter" in letters[0].error.reason or "Unicode" in (
            letters[0].error.reason
        )
        assert len(decisions) == 1
        assert relayed
        assert await _reached_case_manager(db, after["escalation_id"], timeout_s=1)
        row = await db.fetchval(
            "SELECT error_reason FROM dead_letters WHERE dead_letter_id = $1",
            letters[0].dead_letter_id,
        )
        assert row is not None


class TestGracefulStopWithPoisonInFlight:
    async def test_sigterm_right_after_poison_exits_within_bound_and_nothing_is_lost(
        self,
        stack: Stack,
        worker: WorkerProcess,
        producer: KafkaProducer,
        dead_letters: TopicReader,
        db: Any,
    ) -> None:
        """Poison and valid escalations are sent and the worker is SIGTERMed at once: it exits
        within STOP_BOUND_S; the next worker dead-letters the poison and applies the rest (or
        the first one already had), each escalation reaching the case manager."""
        key = helpers.citizen().encode()
        values, first, last = _poison_batch()
        for v in values:
            producer.send(ESCALATIONS, key=key, value=v)
        producer.flush(10)
        await asyncio.sleep(0.3)  # in flight: fetched, maybe mid-batch
        started = time.monotonic()
        code = await asyncio.to_thread(worker.stop, 15, STOP_BOUND_S + 5)  # SIGTERM
        took = time.monotonic() - started
        assert took < STOP_BOUND_S, f"SIGTERM took {took:.1f}s"
        assert code is not None
        assert code >= 0, f"killed by signal {-code}, not a graceful exit"

        replacement = stack.start_worker(name=f"worker-poison-{int(time.time())}")
        await asyncio.to_thread(stack.wait_healthy, replacement)
        assert await _reached_case_manager(db, first["escalation_id"], timeout_s=60)
        assert await _reached_case_manager(db, last["escalation_id"], timeout_s=60)
        mine = await asyncio.to_thread(
            dead_letters.wait_for,
            lambda d: (
                _from_escalations(d)
                and d["key_b64"] is not None
                and base64.b64decode(d["key_b64"]) == key
            ),
            3,
            60.0,
        )
        assert len({d["dead_letter_id"] for d in mine}) == 3
        assert replacement.alive()
