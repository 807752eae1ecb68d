"""End to end on the real broker and database: publish as a hospital or nurse would, read back."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.devstack.stack import Stack, WorkerProcess, healthz
from tests import helpers
from tests.integration.conftest import PARTITIONS, Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def for_citizen(cid: str) -> Any:
    return lambda m: m.get("citizen_id") == cid


class TestHealth:
    def test_healthz_reports_consuming(self, stack: Stack, worker: WorkerProcess) -> None:
        """A running worker with assigned partitions answers 200 with consuming=true, and
        counts only our four consumed topics' partitions, not faust's internal topics."""
        status, body = healthz(worker.web_port)
        assert status == 200
        assert body["consuming"] is True
        assigned = int(str(body["assigned_partitions"]))
        assert 0 < assigned <= 4 * PARTITIONS
        if [w for w in stack.workers if w.alive()] == [worker]:
            assert assigned == 4 * PARTITIONS  # three inputs + acute.escalations, all its own


class TestNurseObservationEscalates:
    async def test_deteriorating_observation_gives_one_escalation_even_if_sent_twice(
        self, publish: Publish, escalations: TopicReader, db: Any
    ) -> None:
        """A NEWS2-high observation sent twice yields exactly one escalation and one audit row."""
        cid = helpers.citizen()
        obs = helpers.deteriorating(cid)
        publish(NURSE_OBSERVATIONS, obs, None)
        publish(NURSE_OBSERVATIONS, obs, None)

        found = escalations.wait_for(for_citizen(cid))
        assert len(found) == 1
        esc = found[0]
        assert esc["severity"] == "critical"
        assert esc["route"]["tier"] == "doctor"
        assert esc["news2"]["total"] == 11
        assert esc["news2"]["risk"] == "high"
        assert esc["triggered_by"] == [obs["event_id"]]
        assert any(r["rule_id"] == "news2.high" for r in esc["reasons"])
        # Nothing else arrives later for this citizen.
        assert len(escalations.settle(for_citizen(cid))) == 1

        rows = await db.fetch("SELECT outcome, severity FROM audit_log WHERE citizen_id = $1", cid)
        assert [(r["outcome"], r["severity"]) for r in rows] == [("escalated", "critical")]
        stored = await db.fetchval("SELECT count(*) FROM escalations WHERE citizen_id = $1", cid)
        assert stored == 1

    async def test_normal_observation_is_audited_but_not_escalated(
        self, publish: Publish, escalations: TopicReader, db: Any
    ) -> None:
        """A NEWS2-0 observation is recorded as assessed and pages nobody."""
        cid = helpers.citizen()
        normal = helpers.observation(cid)
        publish(NURSE_OBSERVATIONS, normal, None)
        row = None
        for _ in range(150):
            row = await db.fetchrow(
                "SELECT outcome, severity, assessment FROM audit_log WHERE event_id = $1::uuid",
                normal["event_id"],
            )
            if row is not None:
                break
            await asyncio.sleep(0.2)
        assert row is not None
        assert row["outcome"] == "assessed"
        assert json.loads(row["assessment"])["news2"]["total"] == 0
        assert escalations.settle(for_citizen(cid), quiet_s=1.0) == []


class TestContextFromDischarge:
    def test_discharge_context_routes_palliative_citizen_to_palliative_team(
        self, publish: Publish, escalations: TopicReader, stack: Stack
    ) -> None:
        """A citizen discharged with the palliative flag is never routed to the doctor tier."""
        cid = helpers.citizen()
        dis = helpers.discharge(cid, flags=["palliative"])
        publish(DISCHARGES, dis, None)
        assert wait_audited(stack, dis["event_id"]) == "context_updated"
        publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
        found = escalations.wait_for(for_citizen(cid))
        assert len(found) == 1
        assert found[0]["route"]["tier"] == "palliative"
        assert found[0]["route"]["team"] == "palliative-gladsaxe-nord"

    def test_fall_alarm_escalates_to_district_nurses(
        self, publish: Publish, escalations: TopicReader, stack: Stack
    ) -> None:
        """A fall alarm from a home sensor escalates at once to the district's acute nurses."""
        cid = helpers.citizen()
        dis = helpers.discharge(cid, district="Lyngby")
        publish(DISCHARGES, dis, None)
        wait_audited(stack, dis["event_id"])
        publish(SENSOR_READINGS, helpers.sensor(cid, "fall", 1, "1"), None)
        found = escalations.wait_for(for_citizen(cid))
        assert len(found) == 1
        assert found[0]["severity"] == "high"
        assert found[0]["route"]["team"] == "acute-nurses-lyngby"
        assert found[0]["reasons"][0]["rule_id"] == "sensor.fall"


class TestDeadLetter:
    async def test_malformed_message_lands_on_dead_letter_topic_with_reason(
        self, publish: Publish, dead_letters: TopicReader, db: Any
    ) -> None:
        """A message with a wrong-typed field is dead-lettered naming the field and the reason
        (a wrong-typed *vital* is dropped instead, issue 12 item 4; ``worried`` is not a vital)."""
        cid = helpers.citizen()
        bad = helpers.observation(cid, worried="very")
        publish(NURSE_OBSERVATIONS, bad, None)
        found = dead_letters.wait_for(lambda d: d.get("event_id") == bad["event_id"])
        assert len(found) == 1
        letter = found[0]
        assert letter["error"]["field"] == "worried"
        assert "boolean" in letter["error"]["reason"]
        assert letter["source_topic"] == NURSE_OBSERVATIONS
        assert json.loads(base64.b64decode(letter["original_b64"])) == bad
        count = await db.fetchval(
            "SELECT count(*) FROM dead_letters WHERE event_id = $1::uuid", bad["event_id"]
        )
        assert count == 1

    def test_not_json_is_dead_lettered_and_worker_keeps_going(
        self,
        publish: Publish,
        dead_letters: TopicReader,
        escalations: TopicReader,
        worker: WorkerProcess,
    ) -> None:
        """Bytes that are not JSON are dead-lettered and the next valid event still escalates."""
        cid = helpers.citizen()
        raw = b"\xff\xfenot json at all " + cid.encode()
        publish(NURSE_OBSERVATIONS, raw, cid)
        publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
        found = dead_letters.wait_for(lambda d: base64.b64decode(d["original_b64"]) == raw)
        assert len(found) == 1
        assert found[0]["error"]["field"] == "$"
        assert "UTF-8" in found[0]["error"]["reason"]
        assert escalations.wait_for(for_citizen(cid))
        assert worker.alive()


class TestOutsideClients:
    def test_confluent_kafka_producer_gets_an_escalation(
        self, stack: Stack, escalations: TopicReader
    ) -> None:
        """A librdkafka 2.x producer (confluent-kafka) is an accepted publisher."""
        confluent_kafka = pytest.importorskip("confluent_kafka")
        cid = helpers.citizen()
        p = confluent_kafka.Producer({"bootstrap.servers": stack.bootstrap, "acks": "all"})
        p.produce(
            NURSE_OBSERVATIONS, key=cid.encode(), value=json.dumps(helpers.deteriorating(cid))
        )
        assert p.flush(15) == 0
        found = escalations.wait_for(for_citizen(cid))
        assert len(found) == 1
        assert found[0]["severity"] == "critical"
