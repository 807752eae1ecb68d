"""Issue 11 item 4 on the real broker and PostgreSQL: per citizen, a discharge and the
observations after it are decided discharge-first across topics, and a discharge that arrives
after an observation it precedes re-assesses it and escalates once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaProducer

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack
from dispatcher.ingest.planner import reassessment_escalation_id
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def for_citizen(cid: str) -> Any:
    return lambda m: m.get("citizen_id") == cid


def _news2_3(cid: str, at: datetime) -> dict[str, Any]:
    """NEWS2 3 (RR 21, temperature 38.5): no page on its own; medium within 30 days of a
    discharge (post-discharge vigilance)."""
    return helpers.observation(cid, at, respiration_rate=21, temperature=38.5)


class TestBackToBack:
    def test_discharge_and_observation_sent_back_to_back_are_decided_discharge_first(
        self, producer: KafkaProducer, escalations: TopicReader
    ) -> None:
        """The issue's case, for eight citizens: a discharge and then an observation sent at
        once on their two topics. Whichever the worker fetches first, every observation is
        judged with its discharge: one medium escalation each, by the post-discharge rule."""
        now = datetime.now(UTC)
        citizens = [helpers.citizen() for _ in range(8)]
        observations = {}
        for cid in citizens:
            dis = helpers.discharge(cid, now - timedelta(seconds=2))
            obs = _news2_3(cid, now - timedelta(seconds=1))
            observations[cid] = obs["event_id"]
            producer.send(DISCHARGES, key=cid.encode(), value=json.dumps(dis).encode())
            producer.send(NURSE_OBSERVATIONS, key=cid.encode(), value=json.dumps(obs).encode())
        producer.flush(10)
        ours = set(citizens)
        escalations.wait_for(lambda e: e["citizen_id"] in ours, count=len(citizens))
        found = escalations.settle(lambda e: e["citizen_id"] in ours, quiet_s=2.0)
        assert sorted(e["citizen_id"] for e in found) == sorted(citizens)
        for esc in found:
            assert esc["severity"] == "medium"
            assert "post_discharge.news2" in {r["rule_id"] for r in esc["reasons"]}
            assert observations[esc["citizen_id"]] in esc["triggered_by"]


class TestLateDischarge:
    async def test_late_discharge_re_assesses_the_observation_and_escalates_once(
        self, publish: Publish, stack: Stack, escalations: TopicReader, db: Any
    ) -> None:
        """An observation decided without context pages nobody; the discharge from before it
        arrives later: the observation is re-assessed with it and escalates once, with an id
        derived from both events; the discharge sent again changes nothing."""
        cid = helpers.citizen()
        now = datetime.now(UTC)
        obs = _news2_3(cid, now - timedelta(minutes=10))
        publish(NURSE_OBSERVATIONS, obs, None)
        assert await asyncio.to_thread(wait_audited, stack, obs["event_id"]) == "assessed"
        dis = helpers.discharge(cid, now, discharged_at=(now - timedelta(hours=1)).isoformat())
        publish(DISCHARGES, dis, None)
        assert await asyncio.to_thread(wait_audited, stack, dis["event_id"]) == "context_updated"
        [esc] = await asyncio.to_thread(escalations.wait_for, for_citizen(cid))
        assert esc["escalation_id"] == str(
            reassessment_escalation_id(UUID(obs["event_id"]), UUID(dis["event_id"]))
        )
        assert esc["triggered_by"] == [obs["event_id"], dis["event_id"]]
        assert esc["severity"] == "medium"
        note = await db.fetchval(
            "SELECT assessment FROM audit_log WHERE event_id = $1::uuid", dis["event_id"]
        )
        assert any("now medium (escalated)" in n for n in json.loads(note)["notes"])

        publish(DISCHARGES, dis, None)  # a duplicate delivery of the late discharge
        again = await asyncio.to_thread(escalations.settle, for_citizen(cid), 2.0)
        assert len(again) == 1
        stored = await db.fetchval("SELECT count(*) FROM escalations WHERE citizen_id = $1", cid)
        assert stored == 1
