"""Issue 11 item 5 on the real broker and PostgreSQL: no coercion, no duplicate keys, ids
matched whole, and the Kafka key equal to the body's citizen_id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from dispatcher.contract.topics import NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.devstack.stack import Stack, WorkerProcess
from dispatcher.ingest.decoding import MESSAGE_KEY
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def _letter_for(dead_letters: TopicReader, event_id: str) -> dict[str, Any]:
    found = dead_letters.wait_for(lambda d: d.get("event_id") == event_id)
    assert len(found) == 1, found
    return found[0]


class TestNoCoercion:
    async def test_spo2_as_a_string_is_dropped_and_the_rest_still_pages(
        self, publish: Publish, stack: Stack, db: Any, dead_letters: TopicReader
    ) -> None:
        """ "spo2": "88" was read as 88; now it is dropped with its reason (never scored) and the
        respiration rate of 30 in the same observation still escalates; no dead letter."""
        obs = helpers.observation(helpers.citizen(), spo2="88", respiration_rate=30)
        publish(NURSE_OBSERVATIONS, obs, None)
        assert await asyncio.to_thread(wait_audited, stack, obs["event_id"]) == "escalated"
        row = await db.fetchval(
            "SELECT assessment FROM audit_log WHERE event_id = $1::uuid", obs["event_id"]
        )
        assessment = json.loads(row)
        assert [d["field"] for d in assessment["dropped"]] == ["spo2"]
        assert "spo2" in assessment["news2"]["missing"]
        assert dead_letters.settle(lambda d: d.get("event_id") == obs["event_id"], 1.0) == []

    @pytest.mark.parametrize(
        ("topic", "body", "field"),
        [
            (
                SENSOR_READINGS,
                {**helpers.sensor("cit-strictx01", "spo2", 0, "%"), "value": "88"},
                "value",
            ),
            (NURSE_OBSERVATIONS, helpers.observation("cit-strictx02", worried=1), "worried"),
            (
                NURSE_OBSERVATIONS,
                {**helpers.observation("cit-strictx03"), "occurred_at": 1700000000},
                "occurred_at",
            ),
            (
                NURSE_OBSERVATIONS,
                {**helpers.observation("cit-strictx04"), "citizen_id": "cit-strictx04\n"},
                "citizen_id",
            ),
        ],
        ids=["value-as-string", "worried-as-1", "unix-timestamp", "id-with-newline"],
    )
    def test_coerced_or_partial_values_are_dead_lettered_naming_the_field(
        self,
        publish: Publish,
        dead_letters: TopicReader,
        topic: str,
        body: dict[str, Any],
        field: str,
    ) -> None:
        """A sensor value "88", worried 1, occurred_at as a unix time and a citizen id with a
        trailing newline are each a dead letter naming the field."""
        publish(topic, body, body["citizen_id"].strip())
        letter = _letter_for(dead_letters, body["event_id"])
        assert letter["error"]["field"] == field


class TestDuplicateKeys:
    def test_a_repeated_key_is_a_dead_letter_naming_it(
        self, publish: Publish, dead_letters: TopicReader, worker: WorkerProcess
    ) -> None:
        """{"spo2": 97, ..., "spo2": 80} is refused naming spo2 (orjson kept 80 silently)."""
        cid = helpers.citizen()
        body = helpers.observation(cid, spo2=97)
        raw = json.dumps(body).encode()[:-1] + b', "spo2": 80}'
        publish(NURSE_OBSERVATIONS, raw, cid)
        letter = _letter_for(dead_letters, body["event_id"])
        assert letter["error"]["field"] == "spo2"
        assert "duplicate key" in letter["error"]["reason"]
        assert worker.alive()


class TestKafkaKey:
    @pytest.mark.parametrize(("key", "fragment"), [(None, "null"), ("cit-otherx99", "differs")])
    async def test_null_or_other_key_is_a_dead_letter_and_the_right_key_is_accepted(
        self,
        producer: Any,
        stack: Stack,
        dead_letters: TopicReader,
        escalations: TopicReader,
        key: str | None,
        fragment: str,
    ) -> None:
        """A deteriorating observation keyed null or by another citizen is a dead letter
        naming the key (never paged from the wrong partition); sent again keyed by its
        citizen_id, it is accepted and pages."""
        cid = helpers.citizen()
        body = helpers.deteriorating(cid)
        value = json.dumps(body).encode()
        producer.send(NURSE_OBSERVATIONS, key=key.encode() if key else None, value=value)
        producer.flush(10)
        letter = await asyncio.to_thread(_letter_for, dead_letters, body["event_id"])
        assert letter["error"]["field"] == MESSAGE_KEY
        assert fragment in letter["error"]["reason"]
        assert letter["category"] == "validation"
        producer.send(NURSE_OBSERVATIONS, key=cid.encode(), value=value)
        producer.flush(10)
        assert await asyncio.to_thread(wait_audited, stack, body["event_id"]) == "escalated"
        found = await asyncio.to_thread(escalations.wait_for, lambda e: e["citizen_id"] == cid)
        assert len(found) == 1
