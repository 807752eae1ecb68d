"""Issue 11 item 2 on the real broker and PostgreSQL: an event_id reused with different content
is a visible dead letter, never a silent duplicate; exact duplicates stay idempotent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatcher.contract.topics import NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


class TestEventIdReuse:
    async def test_citizen_b_reusing_a_event_id_is_dead_lettered_not_swallowed(
        self,
        publish: Publish,
        stack: Stack,
        db: Any,
        dead_letters: TopicReader,
        escalations: TopicReader,
    ) -> None:
        """A's normal observation is audited (with its content hash) and sent again as an exact
        duplicate: still one audit row, no dead letter. Then citizen B's critical observation
        arrives under A's event_id: it is dead-lettered as id_reused (field event_id), B's
        content is not audited under A's id, and the worker goes on paging."""
        a_cid, b_cid = helpers.citizen(), helpers.citizen()
        a = helpers.observation(a_cid)
        publish(NURSE_OBSERVATIONS, a, None)
        await asyncio.to_thread(wait_audited, stack, a["event_id"])
        publish(NURSE_OBSERVATIONS, a, None)  # exact duplicate
        b = helpers.deteriorating(b_cid)
        b["event_id"] = a["event_id"]
        publish(NURSE_OBSERVATIONS, b, None)

        found = await asyncio.to_thread(
            dead_letters.wait_for, lambda d: d.get("event_id") == a["event_id"]
        )
        assert len(found) == 1
        letter = found[0]
        assert letter["category"] == "id_reused"
        assert letter["error"]["field"] == "event_id"
        assert "event_id reused with different content" in letter["error"]["reason"]
        # Only B's message is dead-lettered: A's exact duplicate is not.
        again = await asyncio.to_thread(
            dead_letters.settle, lambda d: d.get("event_id") == a["event_id"], 2.0
        )
        assert len(again) == 1

        rows = await db.fetch(
            "SELECT citizen_id, content_sha256 FROM audit_log WHERE event_id = $1::uuid",
            a["event_id"],
        )
        assert [r["citizen_id"] for r in rows] == [a_cid]
        assert rows[0]["content_sha256"] is not None
        assert len(rows[0]["content_sha256"]) == 64
        stored = await db.fetchval(
            "SELECT count(*) FROM dead_letters WHERE event_id = $1::uuid "
            "AND error_field = 'event_id'",
            a["event_id"],
        )
        assert stored == 1
        # B was not paged under A's id (B's producer must resend with its own id) ...
        assert (
            await asyncio.to_thread(escalations.settle, lambda e: e["citizen_id"] == b_cid, 1.0)
            == []
        )
        # ... and B's next observation under a fresh id pages at once.
        fresh = helpers.deteriorating(b_cid)
        publish(NURSE_OBSERVATIONS, fresh, None)
        paged = await asyncio.to_thread(escalations.wait_for, lambda e: e["citizen_id"] == b_cid)
        assert len(paged) == 1
