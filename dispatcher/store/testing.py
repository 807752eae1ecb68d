"""In-memory ``Repository`` for unit tests of the service: same contract, no database.

It can be told to fail the next N calls with a given exception, to exercise the retry and
poison-message paths without a real outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from dispatcher.ingest.planner import BatchPlan, OutboxMessage
from dispatcher.rules.context import CitizenContext
from dispatcher.store.batches import (
    Planner,
    RelayOutcome,
    ScanPlanner,
    Sender,
    StoredBatch,
    sort_results,
)


@dataclass
class InMemoryRepository:
    audit: dict[UUID, str] = field(default_factory=dict)
    content_sha256: dict[UUID, str | None] = field(default_factory=dict)
    contexts: dict[str, CitizenContext] = field(default_factory=dict)
    dead_letters: dict[UUID, str] = field(default_factory=dict)
    outbox: list[tuple[int, OutboxMessage, bool]] = field(default_factory=list)
    parked: dict[int, str] = field(default_factory=dict)  # outbox id -> park reason
    fail_next: list[BaseException] = field(default_factory=list)
    apply_calls: int = 0

    async def apply_batch(
        self, event_ids: Sequence[UUID], citizen_ids: Sequence[str], planner: Planner
    ) -> StoredBatch:
        self.apply_calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        seen = {i: self.content_sha256.get(i) for i in event_ids if i in self.audit}
        ctx = {c: self.contexts[c] for c in citizen_ids if c in self.contexts}
        return self._store(planner(seen, ctx))

    def _store(self, plan: BatchPlan) -> StoredBatch:
        for a in plan.audits:
            if a.event.event_id in self.audit:
                raise AssertionError("duplicate audit row")  # the real PK would refuse it
            self.audit[a.event.event_id] = a.outcome
            self.content_sha256[a.event.event_id] = a.content_sha256
        self.contexts.update(plan.contexts)
        new_letters = {
            d.dead_letter_id for d in plan.dead_letters if d.dead_letter_id not in self.dead_letters
        }
        for d in plan.dead_letters:
            self.dead_letters.setdefault(d.dead_letter_id, d.error.reason)
        ids = []
        for msg in plan.outbox():
            if msg.dead_letter_id is not None and msg.dead_letter_id not in new_letters:
                continue  # a replayed bad message: its dead letter exists and was sent
            ids.append(len(self.outbox) + 1)
            self.outbox.append((ids[-1], msg, False))
        return StoredBatch(plan, ids)

    async def apply_sensor_scan(
        self, sensor_silent_since: datetime, limit: int, planner: ScanPlanner
    ) -> StoredBatch:
        self.apply_calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        contexts = {
            c: ctx
            for c, ctx in sorted(self.contexts.items())
            if ctx.last_sensor_at is not None and ctx.last_sensor_at < sensor_silent_since
        }
        contexts = dict(list(contexts.items())[:limit])
        candidate_ids, finish = planner(contexts)
        return self._store(finish({i for i in candidate_ids if i in self.audit}))

    async def relay_outbox(
        self,
        send: Sender,
        ids: Sequence[int] | None = None,
        min_age_s: float = 0.0,
        limit: int = 1000,
    ) -> RelayOutcome:
        pending = [
            (i, m)
            for i, m, published in self.outbox
            if not published and i not in self.parked and (ids is None or i in ids)
        ][:limit]
        if not pending:
            return RelayOutcome()
        messages = [m for _, m in pending]
        done, outcome = sort_results([i for i, _ in pending], messages, await send(messages))
        self.outbox = [(i, m, p or i in done) for i, m, p in self.outbox]
        self.parked.update({p.outbox_id: p.failure.reason for p in outcome.parked})
        return outcome

    def unpublished(self) -> list[OutboxMessage]:
        """Rows still to send (neither published nor parked)."""
        return [m for i, m, published in self.outbox if not published and i not in self.parked]
