"""Read-only evidence for ``dispatcher reconcile``: what PostgreSQL says became of every input,
escalation and push. Nothing here locks or writes; the checks themselves are in
``ops/reconcile.py`` (pure).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from dispatcher.contract.vocab import CaseState, DeliveryState
from dispatcher.store.db import Executor

# A pending delivery is stuck once its deadline is this far behind (the worker gives up at the
# deadline; the margin covers an attempt still in flight then).
STUCK_AFTER_DEADLINE = timedelta(seconds=30)
# ``case_events.action`` values showing that an undeliverable push was taken care of: the case
# failed over (``delivery_failed``), moved up anyway, or a person took it.
_HANDLED_ACTIONS = (
    "delivery_failed",
    "re_escalated",
    CaseState.ACKNOWLEDGED.value,
    CaseState.RESOLVED.value,
)
_DELIVERED_ATTEMPT = "delivered"  # ``delivery_attempts.outcome`` of a successful POST


async def audited_event_ids(db: Executor) -> set[UUID]:
    """Every event id with an audit row (an accepted input)."""
    return {r[0] for r in await db.fetch("SELECT event_id FROM audit_log")}


async def dead_letters(db: Executor) -> list[tuple[UUID, UUID | None]]:
    """(dead letter id, event id if the input had one) of every dead letter."""
    return [
        (r[0], r[1]) for r in await db.fetch("SELECT dead_letter_id, event_id FROM dead_letters")
    ]


async def audited_sources(db: Executor) -> dict[tuple[str, int, int], UUID]:
    """(topic, partition, offset) of every accepted input -> its event id: the reconciler finds
    outcomes by where a message was, not by an id the writer computed."""
    rows = await db.fetch(
        "SELECT source_topic, source_partition, source_offset, event_id FROM audit_log"
    )
    return {(r[0], int(r[1]), int(r[2])): r[3] for r in rows}


async def dead_letter_sources(db: Executor) -> set[tuple[str, int, int]]:
    """(topic, partition, offset) of every dead letter (inputs and ``acute.escalations``)."""
    rows = await db.fetch("SELECT source_topic, source_partition, source_offset FROM dead_letters")
    return {(r[0], int(r[1]), int(r[2])) for r in rows}


async def escalations_created(db: Executor) -> dict[UUID, datetime]:
    """Every escalation decided, with when."""
    rows = await db.fetch("SELECT escalation_id, created_at FROM escalations")
    return {r[0]: r[1] for r in rows}


async def unpublished_outbox(db: Executor) -> list[tuple[str, datetime]]:
    """(topic, created at) of every outbox row not yet published."""
    rows = await db.fetch("SELECT topic, created_at FROM outbox WHERE published_at IS NULL")
    return [(r[0], r[1]) for r in rows]


async def escalations_at_case_manager(db: Executor) -> set[UUID]:
    """Every escalation id the case manager has taken."""
    return {r[0] for r in await db.fetch("SELECT escalation_id FROM case_escalations")}


async def stuck_deliveries(db: Executor) -> list[str]:
    """Ids of pending deliveries well past their deadline."""
    rows = await db.fetch(
        "SELECT delivery_id FROM deliveries WHERE state = $1 "
        "AND deadline_at < now() - $2::interval",
        DeliveryState.PENDING.value,
        STUCK_AFTER_DEADLINE,
    )
    return [str(r[0]) for r in rows]


async def undeliverable_without_failover(db: Executor) -> list[str]:
    """Ids of undeliverable deliveries whose case shows no fail-over, escalation or person."""
    rows = await db.fetch(
        "SELECT d.delivery_id FROM deliveries d WHERE d.state = $1 "
        "AND NOT EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = d.case_id "
        "AND e.action = ANY($2::text[]))",
        DeliveryState.UNDELIVERABLE.value,
        list(_HANDLED_ACTIONS),
    )
    return [str(r[0]) for r in rows]


async def deliveries_delivered_twice(db: Executor) -> list[str]:
    """Ids of deliveries with more than one successful attempt (the receiver saw two POSTs)."""
    rows = await db.fetch(
        "SELECT delivery_id FROM delivery_attempts WHERE outcome = $1 "
        "GROUP BY delivery_id HAVING count(*) > 1",
        _DELIVERED_ATTEMPT,
    )
    return [str(r[0]) for r in rows]
