"""Bad input on the real stack: every kind gets a clear, field-naming outcome; the worker goes on.

Malformed messages land on ``dispatcher.dead-letter`` with the field and the reason; physically
impossible vitals in an otherwise valid observation are quarantined (named, never scored) while
the valid vitals are still assessed; out-of-order and duplicated events never page twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.contract.topics import NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import CPR_PATTERN
from dispatcher.devstack.stack import Stack, WorkerProcess
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def _obs(**over: Any) -> dict[str, Any]:
    body = helpers.observation(helpers.citizen())
    body.update(over)
    return body


def _without(field: str) -> dict[str, Any]:
    body = helpers.observation(helpers.citizen())
    del body[field]
    return body


CASES: list[tuple[str, bytes, str, str]] = [
    # id, raw bytes, expected error field, fragment of the reason
    ("not-json", b"this is not json", "$", "JSON"),
    ("latin-1", '{"note": "bl\u00e5"}'.encode("latin-1"), "$", "UTF-8"),
    ("empty", b"", "$", "empty"),
    ("one-megabyte", b'{"pad": "' + b"x" * 1_000_000 + b'"}', "$", "limit"),
    ("missing-field", json.dumps(_without("citizen_id")).encode(), "citizen_id", "required"),
    ("wrong-type", json.dumps(_obs(worried="maybe")).encode(), "worried", "boolean"),
    (
        "unknown-version",
        json.dumps(_obs(schema_version=3)).encode(),
        "schema_version",
        "unsupported",
    ),
    (
        "far-future",
        json.dumps(_obs(occurred_at=(datetime.now(UTC) + timedelta(days=2)).isoformat())).encode(),
        "occurred_at",
        "future",
    ),
    (
        "far-past",
        json.dumps(
            _obs(occurred_at=(datetime.now(UTC) - timedelta(days=800)).isoformat())
        ).encode(),
        "occurred_at",
        "older",
    ),
    ("nan", b'{"event_id": "7d1f0c2e-0000-4000-8000-000000000001", "spo2": NaN}', "$", "JSON"),
    ("cpr-as-id", json.dumps(_obs(citizen_id="010203-1234")).encode(), "citizen_id", "CPR"),
]


class TestDeadLetters:
    @pytest.mark.parametrize(
        ("case_id", "raw", "field", "fragment"), CASES, ids=[c[0] for c in CASES]
    )
    def test_bad_message_is_dead_lettered_with_field_and_reason(
        self,
        publish: Publish,
        dead_letters: TopicReader,
        worker: WorkerProcess,
        case_id: str,
        raw: bytes,
        field: str,
        fragment: str,
    ) -> None:
        """Each kind of bad input lands on the dead-letter topic naming the field and reason,
        with the original bytes, and the worker keeps running."""
        publish(NURSE_OBSERVATIONS, raw, f"key-{case_id}")
        key = f"key-{case_id}".encode()
        found = dead_letters.wait_for(
            lambda d: d.get("key_b64") and base64.b64decode(d["key_b64"]) == key
        )
        assert len(found) == 1, case_id
        letter = found[0]
        assert letter["original_size"] == len(raw)
        assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
        kept = base64.b64decode(letter["original_b64"])
        # A CPR-shaped number is replaced by '#' in the excerpt (issue 11 item 1).
        assert letter["original_redacted"] == (case_id == "cpr-as-id")
        if letter["original_redacted"]:
            assert CPR_PATTERN.search(kept.decode("latin-1")) is None
            assert len(kept) == len(raw)
        else:
            assert kept == raw[: len(kept)]
        assert letter["original_truncated"] == (len(kept) < len(raw))
        assert letter["error"]["field"] == field
        assert fragment.lower() in letter["error"]["reason"].lower()
        assert letter["source_topic"] == NURSE_OBSERVATIONS
        assert worker.alive()


class TestBoundedDeadLetters:
    def test_800_kb_key_makes_a_small_redacted_dead_letter_and_paging_goes_on(
        self,
        publish: Publish,
        dead_letters: TopicReader,
        escalations: TopicReader,
        worker: WorkerProcess,
    ) -> None:
        """Issue 11 item 1: a message with an 800 KB key (and a CPR number in key and value) is
        dead-lettered with a bounded, redacted excerpt of both plus their size and SHA-256; the
        dead letter is published (it fits), and a page queued after it still goes out."""
        cpr = "010203-1234"
        key = cpr.encode() + b"k" * 800_000
        raw = f'{{"citizen_id": "{cpr}", "pad": "'.encode() + b"x" * 1_000 + b'"}'
        publish(NURSE_OBSERVATIONS, raw, key.decode())
        cid = helpers.citizen()
        publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
        key_sha = hashlib.sha256(key).hexdigest()
        found = dead_letters.wait_for(lambda d: d.get("key_sha256") == key_sha)
        assert len(found) == 1
        letter = found[0]
        kept_key = base64.b64decode(letter["key_b64"])
        kept = base64.b64decode(letter["original_b64"])
        assert len(kept_key) == 1024
        assert letter["key_truncated"]
        assert letter["key_redacted"]
        assert letter["key_size"] == len(key)
        assert letter["original_size"] == len(raw)
        assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
        assert letter["original_redacted"]
        assert letter["original_truncated"] is False
        assert len(json.dumps(letter)) < 100_000
        for excerpt in (kept_key, kept):
            assert CPR_PATTERN.search(excerpt.decode("latin-1")) is None
        assert cpr not in json.dumps(letter)
        assert len(escalations.wait_for(lambda e: e["citizen_id"] == cid)) == 1
        assert worker.alive()


class TestQuarantine:
    async def test_impossible_vitals_are_quarantined_and_valid_ones_still_scored(
        self, publish: Publish, stack: Stack, db: Any
    ) -> None:
        """SpO2 120 and pulse 400 are named as implausible and not scored; the respiration rate
        of 30 in the same observation is still scored (NEWS2 respiration sub-score 3)."""
        cid = helpers.citizen()
        obs = helpers.observation(cid, spo2=120, pulse=400, respiration_rate=30)
        publish(NURSE_OBSERVATIONS, obs, None)
        import asyncio

        assert await asyncio.to_thread(wait_audited, stack, obs["event_id"]) in (
            "escalated",
            "assessed",
        )
        row = await db.fetchrow(
            "SELECT assessment FROM audit_log WHERE event_id = $1::uuid", obs["event_id"]
        )
        assessment = json.loads(row["assessment"])
        assert {q["field"] for q in assessment["quarantined"]} == {"spo2", "pulse"}
        assert "spo2" in assessment["news2"]["missing"]
        assert "pulse" in assessment["news2"]["missing"]
        assert assessment["news2"]["subscores"]["respiration_rate"] == 3

    async def test_unusable_and_decimal_vitals_never_dead_letter_the_observation(
        self, publish: Publish, stack: Stack, db: Any, dead_letters: TopicReader
    ) -> None:
        """Issue 12 item 4: pulse "fast" is dropped with its reason and SpO2 88.5 is scored
        (rounded half-up to 89); the observation is audited, not dead-lettered, and the
        respiration rate of 30 still scores 3."""
        cid = helpers.citizen()
        obs = helpers.observation(cid, pulse="fast", spo2=88.5, respiration_rate=30)
        publish(NURSE_OBSERVATIONS, obs, None)
        import asyncio

        assert await asyncio.to_thread(wait_audited, stack, obs["event_id"]) == "escalated"
        row = await db.fetchrow(
            "SELECT assessment FROM audit_log WHERE event_id = $1::uuid", obs["event_id"]
        )
        assessment = json.loads(row["assessment"])
        assert [d["field"] for d in assessment["dropped"]] == ["pulse"]
        assert "valid number" in assessment["dropped"][0]["reason"]
        assert "pulse" in assessment["news2"]["missing"]
        assert assessment["news2"]["subscores"]["spo2"] == 3
        assert assessment["news2"]["subscores"]["respiration_rate"] == 3
        assert dead_letters.settle(lambda d: d.get("event_id") == obs["event_id"]) == []


class TestOrderAndDuplicates:
    def test_late_worrying_observation_pages_on_its_own_merit(
        self, publish: Publish, stack: Stack, escalations: TopicReader
    ) -> None:
        """Issue 12 item 8: an alarming observation older than one already seen for the
        citizen (but within the maximum age) is NOT suppressed: it pages exactly once, for
        itself, at the severity of its own NEWS2."""
        cid = helpers.citizen()
        now = datetime.now(UTC)
        newer = helpers.observation(cid, now)
        older = helpers.deteriorating(cid, now - timedelta(minutes=30))
        publish(NURSE_OBSERVATIONS, newer, None)
        assert wait_audited(stack, newer["event_id"]) == "assessed"
        publish(NURSE_OBSERVATIONS, older, None)
        assert wait_audited(stack, older["event_id"]) == "escalated"
        found = escalations.settle(lambda e: e["citizen_id"] == cid, quiet_s=2.0)
        assert len(found) == 1
        assert found[0]["triggered_by"] == [older["event_id"]]
        assert found[0]["severity"] == "critical"  # NEWS2 11 (helpers.deteriorating)

    def test_ten_copies_give_one_escalation(
        self, publish: Publish, stack: Stack, escalations: TopicReader, db: Any
    ) -> None:
        """The same fall alarm delivered ten times escalates exactly once."""
        cid = helpers.citizen()
        fall = helpers.sensor(cid, "fall", 1, "1")
        for _ in range(10):
            publish(SENSOR_READINGS, fall, None)
        found = escalations.wait_for(lambda e: e["citizen_id"] == cid)
        assert len(found) == 1
        assert len(escalations.settle(lambda e: e["citizen_id"] == cid, quiet_s=2.0)) == 1
