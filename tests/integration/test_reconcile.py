"""The reconciler on a real broker and PostgreSQL: finite under live traffic, and the
case-manager side (forged, dropped and colliding escalations) is seen.

Its own stack (module scope): the forgeries below would otherwise be problems for every later
reconcile on the session stack.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
from kafka import KafkaProducer

from dispatcher.config import Settings
from dispatcher.contract.topics import ESCALATIONS
from dispatcher.devstack.stack import Stack, seed_roster_text
from dispatcher.ops import reconcile
from tests import helpers
from tests.integration.traffic import Load

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rstack() -> Iterator[Stack]:
    d = tempfile.mkdtemp(prefix="dspr-", dir="/tmp")
    settings = Settings.from_env(partitions=4, data_dir=d, batch_within_s=0.01)
    stack = Stack.start_infra(settings, Path(d), seed_roster_text())
    try:
        w = stack.start_worker(name="reconcile-worker")
        stack.wait_healthy(w)
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(d, ignore_errors=True)


def run_reconcile(stack: Stack, grace_s: float) -> tuple[reconcile.Report, float]:
    started = time.monotonic()
    report = asyncio.run(reconcile.run(stack.bootstrap, stack.dsn, grace_s=grace_s))
    return report, time.monotonic() - started


async def _fetch(stack: Stack, query: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def fetch(stack: Stack, query: str, *args: Any) -> list[Any]:
    return asyncio.run(_fetch(stack, query, *args))


class TestUnderLiveTraffic:
    def test_it_finishes_on_a_bounded_snapshot_and_finds_nothing_lost(self, rstack: Stack) -> None:
        """While traffic flows (100 messages/s for about 40 s, never quiet), the reconciler
        returns within 30 s, twice, with no problem: it reads what existed when it started
        (end offsets, then record timestamps up to T) and counts the youngest as in flight."""
        stop = threading.Event()
        load = Load(rstack.bootstrap, count=4000, rate=100, seed=21, stop=stop)
        load.start()
        try:
            time.sleep(5.0)
            reports = []
            for _ in range(2):
                sent_before = load.result.sent
                report, took = run_reconcile(rstack, grace_s=10.0)
                assert took < 30.0, f"reconcile took {took:.1f} s under live traffic"
                assert load.is_alive(), "the traffic ended: not under live traffic"
                assert load.result.sent > sent_before, "nothing was sent meanwhile"
                reports.append(report)
                time.sleep(2.0)
        finally:
            stop.set()
            load.join(60)
        assert load.error is None
        for report in reports:
            assert report.problems == []
            assert report.inputs_read > 0
            assert report.snapshot_taken_at is not None
            assert (
                report.accepted + report.duplicates + report.dead_lettered + (report.in_flight)
                >= report.inputs_read
            )
        assert reports[1].inputs_read > reports[0].inputs_read  # each run bounded by its own T
        assert sum(reports[-1].dead_lettered_by_topic.values()) > 0  # the load's bad messages


def forged_escalation(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(
        (ROOT / "schemas/examples/acute.escalations.json").read_text()
    )
    now = datetime.now(UTC)
    body.update(
        escalation_id=str(uuid4()),
        case_id=str(uuid4()),
        citizen_id=helpers.citizen(),
        created_at=now.isoformat(),
        ack_deadline=(now + timedelta(minutes=5)).isoformat(),
    )
    body.update(over)
    return body


class TestCaseManagerSide:
    def test_forged_dropped_and_colliding_escalations_are_reported(self, rstack: Stack) -> None:
        """A schema-valid escalation nobody decided (the case manager takes it: a case is
        opened) is escalation_forged; a message reusing a real escalation id with other content
        is escalation_id_collision (the case manager skips it as a duplicate, so only the
        reconciler can see it); an escalation whose case_escalations row is gone (dropped on
        the case-manager side) is escalation_not_at_case_manager. A poison message the case
        manager dead-lettered (found by its source offset) is no problem."""
        real = fetch(rstack, "SELECT escalation_id, citizen_id FROM escalations LIMIT 2")
        assert len(real) == 2, "the live-traffic test leaves escalations behind"
        forged = forged_escalation()
        colliding = forged_escalation(
            escalation_id=str(real[0]["escalation_id"]), citizen_id=real[0]["citizen_id"]
        )
        producer = KafkaProducer(bootstrap_servers=rstack.bootstrap, acks="all")
        try:
            for body in (forged, colliding):
                producer.send(
                    ESCALATIONS, key=body["citizen_id"].encode(), value=json.dumps(body).encode()
                )
            poison = producer.send(ESCALATIONS, key=b"cit-poison", value=b"not an escalation")
            producer.flush(10)
            where = poison.get(timeout=10)
        finally:
            producer.close(5)
        deadline = time.monotonic() + 30
        while not fetch(
            rstack,
            "SELECT 1 FROM case_escalations WHERE escalation_id = $1::uuid",
            forged["escalation_id"],
        ):
            assert time.monotonic() < deadline, "the case manager never took the forgery"
            time.sleep(0.2)
        while not fetch(
            rstack,
            "SELECT 1 FROM dead_letters WHERE source_topic = $1 AND source_partition = $2 "
            "AND source_offset = $3",
            ESCALATIONS,
            where.partition,
            where.offset,
        ):
            assert time.monotonic() < deadline, "the case manager never dead-lettered the poison"
            time.sleep(0.2)
        dropped = real[1]["escalation_id"]
        fetch(rstack, "DELETE FROM case_escalations WHERE escalation_id = $1", dropped)

        report, _ = run_reconcile(rstack, grace_s=0.0)
        found = {(p["problem"], p.get("escalation_id")) for p in report.problems}
        assert ("escalation_forged", forged["escalation_id"]) in found
        assert ("escalation_id_collision", colliding["escalation_id"]) in found
        assert ("escalation_not_at_case_manager", str(dropped)) in found
        forged_problem = next(
            p
            for p in report.problems
            if p["problem"] == "escalation_forged" and p["escalation_id"] == forged["escalation_id"]
        )
        assert forged_problem["handled"] is True
        assert not [
            p
            for p in report.problems
            if p.get("partition") == where.partition
            and p.get("offset") == where.offset
            and p["problem"] == "escalation_dropped"
        ]
        assert report.escalation_messages_dead_lettered >= 1
        assert not report.ok
