"""Issue 11 item 3 on the real broker and PostgreSQL: every timestamp has bounds, and an event
past its topic's maximum age is audited and shown but never pages."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def for_citizen(cid: str) -> Any:
    return lambda m: m.get("citizen_id") == cid


class TestDischargeInTheFuture:
    def test_discharge_in_2099_is_dead_lettered_and_a_real_one_still_applies(
        self,
        publish: Publish,
        stack: Stack,
        dead_letters: TopicReader,
        escalations: TopicReader,
    ) -> None:
        """The issue's case: discharged_at in 2099 is a dead letter naming discharged_at, so it
        cannot freeze the context; the citizen's later real (palliative) discharge is applied
        and a deteriorating observation is routed to the palliative team."""
        cid = helpers.citizen()
        bogus = helpers.discharge(cid, discharged_at="2099-01-01T00:00:00+00:00")
        publish(DISCHARGES, bogus, None)
        [letter] = dead_letters.wait_for(lambda d: d.get("event_id") == bogus["event_id"])
        assert letter["error"]["field"] == "discharged_at"
        assert "future" in letter["error"]["reason"]

        real = helpers.discharge(cid, flags=["palliative"])
        publish(DISCHARGES, real, None)
        assert wait_audited(stack, real["event_id"]) == "context_updated"
        publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
        [esc] = escalations.wait_for(for_citizen(cid))
        assert esc["route"]["tier"] == "palliative"


class TestMaximumAge:
    async def test_ten_day_old_observation_is_audited_shown_and_never_pages(
        self, publish: Publish, stack: Stack, escalations: TopicReader, db: Any
    ) -> None:
        """A NEWS2-11 observation from 10 days ago (it paged CRITICAL before) is audited with a
        stale assessment that says why, and nobody is paged."""
        cid = helpers.citizen()
        old = helpers.deteriorating(cid, datetime.now(UTC) - timedelta(days=10))
        publish(NURSE_OBSERVATIONS, old, None)
        assert await asyncio.to_thread(wait_audited, stack, old["event_id"]) == "assessed"
        row = await db.fetchrow(
            "SELECT severity, assessment FROM audit_log WHERE event_id = $1::uuid",
            old["event_id"],
        )
        assessment = json.loads(row["assessment"])
        assert row["severity"] == "low"
        assert assessment["stale"] is True
        assert assessment["escalate"] is False
        assert "news2.high" in {r["rule_id"] for r in assessment["suppressed"]}
        assert any("past the maximum age" in n for n in assessment["notes"])
        assert assessment["news2"]["total"] == 11
        assert await asyncio.to_thread(escalations.settle, for_citizen(cid), 2.0) == []
        stored = await db.fetchval("SELECT count(*) FROM escalations WHERE citizen_id = $1", cid)
        assert stored == 0

    def test_a_fresh_observation_after_a_stale_one_still_pages(
        self, publish: Publish, stack: Stack, escalations: TopicReader
    ) -> None:
        """The stale event is recorded but does not get in the way: a deteriorating observation
        taken now pages at once."""
        cid = helpers.citizen()
        old = helpers.deteriorating(cid, datetime.now(UTC) - timedelta(hours=30))
        publish(NURSE_OBSERVATIONS, old, None)
        wait_audited(stack, old["event_id"])
        fresh = helpers.deteriorating(cid)
        publish(NURSE_OBSERVATIONS, fresh, None)
        found = escalations.wait_for(for_citizen(cid))
        assert [e["triggered_by"] for e in found] == [[fresh["event_id"]]]
