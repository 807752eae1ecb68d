"""Issue 11 item 2: an event_id already seen with different content is a dead letter, never a
silent duplicate; exact duplicates stay idempotent."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.contract.topics import DEAD_LETTER, ESCALATIONS, NURSE_OBSERVATIONS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.ingest.planner import (
    ID_REUSED_REASON,
    Accepted,
    Incoming,
    content_sha256,
    decode_batch,
    plan_batch,
)
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.testing import InMemoryRepository
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def _msg(body: dict[str, Any] | bytes, offset: int) -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    obj = json.loads(raw) if isinstance(body, bytes) else body
    key = str(obj["citizen_id"]).encode()  # as published: keyed by the citizen
    return Incoming(NURSE_OBSERVATIONS, 0, offset, key, raw)


def _accept(*msgs: Incoming) -> list[Accepted]:
    accepted, dead = decode_batch(list(msgs), NOW)
    assert dead == []
    return accepted


def _a_and_b() -> tuple[dict[str, Any], dict[str, Any]]:
    """Citizen A's normal observation, and citizen B's critical one reusing A's event_id."""
    a = helpers.observation(helpers.citizen(), NOW - timedelta(minutes=5))
    b = helpers.deteriorating(helpers.citizen(), NOW - timedelta(minutes=1))
    b["event_id"] = a["event_id"]
    return a, b


class TestContentHash:
    def test_same_document_reserialised_has_the_same_hash(self) -> None:
        body = helpers.observation("cit-abcxdef", NOW)
        compact = json.dumps(body, separators=(",", ":")).encode()
        spaced = json.dumps(dict(reversed(list(body.items()))), indent=2).encode()
        one, two = _accept(_msg(compact, 1), _msg(spaced, 2))
        assert content_sha256(one) == content_sha256(two)

    def test_other_content_has_another_hash(self) -> None:
        a, b = _a_and_b()
        one, two = _accept(_msg(a, 1), _msg(b, 2))
        assert content_sha256(one) != content_sha256(two)


class TestPlanner:
    def test_reused_id_of_an_earlier_batch_is_a_dead_letter(self) -> None:
        """The issue-11 case: B's critical observation under A's event_id was swallowed as a
        duplicate, so B was never paged. Now it is an id_reused dead letter: visible."""
        a, b = _a_and_b()
        (first,) = _accept(_msg(a, 1))
        stored = plan_batch([first], [], {}, {}, NOW)
        seen = {row.event.event_id: row.content_sha256 for row in stored.audits}
        assert seen[first.event.event_id] == content_sha256(first)

        plan = plan_batch(_accept(_msg(b, 2)), [], seen, {}, NOW)
        assert plan.duplicates == []
        assert plan.audits == []
        assert plan.escalations == []
        (letter,) = plan.dead_letters
        assert letter.category == DeadLetterCategory.ID_REUSED
        assert letter.error.field == "event_id"
        assert letter.error.reason.startswith(ID_REUSED_REASON)
        assert str(letter.event_id) == a["event_id"]
        assert [m.topic for m in plan.outbox()] == [DEAD_LETTER]

    def test_reused_id_within_one_batch_is_a_dead_letter(self) -> None:
        a, b = _a_and_b()
        plan = plan_batch(_accept(_msg(a, 1), _msg(b, 2)), [], {}, {}, NOW)
        assert [row.event.citizen_id for row in plan.audits] == [a["citizen_id"]]
        assert [d.category for d in plan.dead_letters] == [DeadLetterCategory.ID_REUSED]
        assert plan.duplicates == []

    def test_exact_duplicates_stay_idempotent(self) -> None:
        body = helpers.deteriorating("cit-abcxdef", NOW)
        first = plan_batch(_accept(_msg(body, 1), _msg(body, 2)), [], {}, {}, NOW)
        assert len(first.audits) == 1
        assert len(first.duplicates) == 1
        assert first.dead_letters == []
        seen = {row.event.event_id: row.content_sha256 for row in first.audits}
        again = plan_batch(_accept(_msg(body, 3)), [], seen, {}, NOW)
        assert (len(again.duplicates), again.audits, again.dead_letters) == (1, [], [])

    def test_a_row_stored_without_a_hash_counts_as_a_duplicate(self) -> None:
        """Audit rows written before migration 0005 have no hash: nothing to compare with."""
        _a, b = _a_and_b()
        (item,) = _accept(_msg(b, 2))
        plan = plan_batch([item], [], {item.event.event_id: None}, {}, NOW)
        assert len(plan.duplicates) == 1
        assert plan.dead_letters == []

    def test_a_plain_set_of_seen_ids_is_still_accepted(self) -> None:
        a, _ = _a_and_b()
        (item,) = _accept(_msg(a, 1))
        plan = plan_batch([item], [], {item.event.event_id}, {}, NOW)
        assert len(plan.duplicates) == 1


class TestProcessor:
    async def test_citizen_b_is_dead_lettered_and_counted_not_swallowed(self) -> None:
        a, b = _a_and_b()
        repo = InMemoryRepository()
        sent: list[str] = []

        async def send(messages: Any) -> None:
            sent.extend(m.topic for m in messages)

        metrics = DispatcherMetrics()
        p = BatchProcessor(repo, send, metrics, clock=lambda: NOW)
        await p.handle([_msg(a, 1)])
        await p.handle([_msg(a, 2)])  # an exact duplicate: nothing new
        await p.handle([_msg(b, 3)])
        assert len(repo.audit) == 1
        assert len(repo.dead_letters) == 1
        assert ESCALATIONS not in sent
        assert sent == [DEAD_LETTER]
        labels = {"topic": NURSE_OBSERVATIONS, "category": "id_reused"}
        assert metrics.registry.get_sample_value("dispatcher_events_rejected_total", labels) == 1
        dup = {"topic": NURSE_OBSERVATIONS}
        assert metrics.registry.get_sample_value("dispatcher_duplicate_events_total", dup) == 1
