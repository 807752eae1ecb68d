"""Webhook deliveries in PostgreSQL: queued with a page, claimed with a lease, settled once.

The SQL of the delivery worker (``notify/delivery.py``) lives here; the worker keeps the
orchestration (slots, sending, retries, fail-over). Why the claim takes a lease and why a result
is fenced by the claim's ``(attempts, next_attempt_at)`` is explained in that module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dispatcher.cases.lifecycle import RENEWAL
from dispatcher.contract.vocab import CaseState, Channel, DeliveryState
from dispatcher.store.db import Connection, Executor, Record

# ``deliveries.channel``: the one push channel so far (a new sender adds a value to vocab.Channel).
WEBHOOK_CHANNEL: Channel = "webhook"


@dataclass(frozen=True)
class Claim:
    """One claimed delivery. ``attempts`` is the count before this attempt; ``lease_until`` is
    the claim's ``next_attempt_at`` (the fencing token together with ``attempts``).

    ``cancelled``: the case was already closed at claim time, so the claim ended the delivery
    instead of leasing it; nothing is sent."""

    delivery_id: UUID
    case_id: UUID
    page_seq: int
    team_id: str
    url: str
    idempotency_key: str
    payload: bytes
    attempts: int
    deadline_at: datetime
    lease_until: datetime
    cancelled: bool = False

    @property
    def attempt(self) -> int:
        return self.attempts + 1


# The page number of a stale acknowledgement's resolve-or-renew page (``lifecycle.on_stale_ack``):
# that page must reach its team although the case is acknowledged (docs/cases.md).
RENEWAL_PAGE_SEQ_PATH = [RENEWAL, "page_seq"]

# $1 now, $2 limit, $3 lease until, $4 closed case states, $5 pending, $6 cancelled,
# $7 acknowledged, $8 RENEWAL_PAGE_SEQ_PATH (a stale case's renewal page is not cancelled)
_CLAIM = """
WITH due AS (
    SELECT d.delivery_id,
           CASE WHEN c.state = $7 AND c.superseded_by IS NULL
                     AND (c.detail #>> $8::text[])::int = d.page_seq
                THEN NULL ELSE c.state END AS case_state
    FROM deliveries d JOIN cases c ON c.case_id = d.case_id
    WHERE d.state = $5 AND d.next_attempt_at <= $1
    ORDER BY d.next_attempt_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE deliveries AS d SET
    state = CASE WHEN due.case_state = ANY($4::text[]) THEN $6 ELSE d.state END,
    finished_at = CASE WHEN due.case_state = ANY($4::text[]) THEN $1 ELSE d.finished_at END,
    last_error = CASE WHEN due.case_state = ANY($4::text[])
                      THEN 'cancelled: case ' || due.case_state ELSE d.last_error END,
    next_attempt_at = CASE WHEN due.case_state = ANY($4::text[])
                           THEN d.next_attempt_at ELSE $3 END
FROM due
WHERE d.delivery_id = due.delivery_id
RETURNING d.delivery_id, d.case_id, d.page_seq, d.team_id, d.url, d.idempotency_key, d.payload,
          d.attempts, d.deadline_at, d.next_attempt_at, d.state
"""

_INSERT_ATTEMPT = """
INSERT INTO delivery_attempts
    (delivery_id, attempt, started_at, duration_ms, status_code, error, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7)
"""

# $1 id, $2 claimed attempts, $3 lease token, $4 new state, $5 next_attempt_at (NULL: keep),
# $6 finished_at, $7 last_error, $8 pending
_APPLY_RESULT = """
UPDATE deliveries SET
    attempts = attempts + 1,
    state = $4,
    next_attempt_at = coalesce($5, next_attempt_at),
    finished_at = $6,
    last_error = $7
WHERE delivery_id = $1 AND state = $8 AND attempts = $2 AND next_attempt_at = $3
"""


def _claim_from_row(row: Record) -> Claim:
    return Claim(
        delivery_id=row["delivery_id"],
        case_id=row["case_id"],
        page_seq=row["page_seq"],
        team_id=row["team_id"],
        url=row["url"],
        idempotency_key=row["idempotency_key"],
        payload=bytes(row["payload"]),
        attempts=row["attempts"],
        deadline_at=row["deadline_at"],
        lease_until=row["next_attempt_at"],
        cancelled=row["state"] == DeliveryState.CANCELLED,
    )


async def enqueue_webhook(  # noqa: PLR0917 - the row's columns, in table order
    conn: Connection,
    delivery_id: UUID,
    case_id: UUID,
    page_seq: int,
    team_id: str,
    url: str,
    payload: bytes,
    now: datetime,
    deadline_at: datetime,
) -> None:
    """Queue a webhook push due at once; a page queued twice is one delivery (the id is the
    idempotency key)."""
    await conn.execute(
        """INSERT INTO deliveries (delivery_id, case_id, page_seq, team_id, channel, url,
               idempotency_key, payload, state, next_attempt_at, deadline_at)
           VALUES ($1, $2, $3, $4, $10, $5, $6, $7, $11, $8, $9)
           ON CONFLICT (idempotency_key) DO NOTHING""",
        delivery_id,
        case_id,
        page_seq,
        team_id,
        url,
        str(delivery_id),
        payload,
        now,
        deadline_at,
        WEBHOOK_CHANNEL,
        DeliveryState.PENDING.value,
    )


async def claim_due(
    db: Executor,
    now: datetime,
    limit: int,
    lease_until: datetime,
    closed_case_states: Sequence[CaseState],
) -> list[Claim]:
    """Claim up to ``limit`` due pending deliveries in one statement (its own transaction).

    A delivery whose case is in ``closed_case_states`` is cancelled instead of leased (returned
    with ``cancelled``); the others get ``next_attempt_at = lease_until``."""
    rows = await db.fetch(
        _CLAIM,
        now,
        limit,
        lease_until,
        [s.value for s in closed_case_states],
        DeliveryState.PENDING.value,
        DeliveryState.CANCELLED.value,
        CaseState.ACKNOWLEDGED.value,
        RENEWAL_PAGE_SEQ_PATH,
    )
    return [_claim_from_row(r) for r in rows]


async def is_renewal_page(conn: Connection, case_id: UUID, page_seq: int) -> bool:
    """Whether ``page_seq`` is the resolve-or-renew page of a case still waiting for it
    (acknowledged, not superseded): it is wanted although the case is acknowledged."""
    found = await conn.fetchval(
        "SELECT 1 FROM cases WHERE case_id = $1 AND state = $2 AND superseded_by IS NULL "
        "AND (detail #>> $4::text[])::int = $3",
        case_id,
        CaseState.ACKNOWLEDGED.value,
        page_seq,
        RENEWAL_PAGE_SEQ_PATH,
    )
    return bool(found)


async def record_attempt(  # noqa: PLR0917 - the attempt's columns, in table order
    conn: Connection,
    delivery_id: UUID,
    attempt: int,
    started_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str | None,
    outcome: str,
) -> None:
    """Append one row to ``delivery_attempts`` (every attempt is kept, whatever came of it)."""
    await conn.execute(
        _INSERT_ATTEMPT, delivery_id, attempt, started_at, duration_ms, status_code, error, outcome
    )


async def apply_result(  # noqa: PLR0917 - the fence, then the new values
    conn: Connection,
    claim: Claim,
    state: DeliveryState,
    next_attempt_at: datetime | None,
    finished_at: datetime | None,
    last_error: str | None,
) -> bool:
    """Settle the claimed delivery if it still carries the claim's fence and is pending.

    ``next_attempt_at`` ``None`` keeps the current one. ``False``: the lease was lost (another
    worker claimed the row meanwhile) and nothing changed."""
    status = await conn.execute(
        _APPLY_RESULT,
        claim.delivery_id,
        claim.attempts,
        claim.lease_until,
        state.value,
        next_attempt_at,
        finished_at,
        last_error,
        DeliveryState.PENDING.value,
    )
    return bool(status == "UPDATE 1")
