"""A case's push deliveries as the API shows and stops them: each with its attempt log, and the
cancellation of the pending ones when a person takes the case in hand.

The delivery worker's claim/lease/result SQL is not here (it is the worker's); delivery states
are ``vocab.DeliveryState`` values passed as parameters, never spelled inside the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from dispatcher.contract.vocab import AttemptOutcome, Channel, DeliveryState
from dispatcher.store.db import Connection, Executor


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try at pushing a delivery."""

    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: AttemptOutcome


@dataclass(frozen=True)
class CaseDelivery:
    """One delivery of a page of the case, with its attempts oldest first."""

    delivery_id: UUID
    page_seq: int
    team_id: str
    channel: Channel
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    deadline_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_error: str | None
    attempt_log: tuple[DeliveryAttempt, ...]


async def case_deliveries(db: Executor, case_id: UUID) -> list[CaseDelivery]:
    """The case's deliveries by page then creation time, each with its attempt log."""
    deliveries = await db.fetch(
        """SELECT delivery_id, page_seq, team_id, channel, state, attempts,
                  next_attempt_at, deadline_at, created_at, finished_at, last_error
             FROM deliveries WHERE case_id = $1 ORDER BY page_seq, created_at""",
        case_id,
    )
    attempts = await db.fetch(
        """SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code,
                  a.error, a.outcome
             FROM delivery_attempts a JOIN deliveries d ON d.delivery_id = a.delivery_id
            WHERE d.case_id = $1 ORDER BY a.delivery_id, a.attempt""",
        case_id,
    )
    by_delivery: dict[UUID, list[DeliveryAttempt]] = {}
    for a in attempts:
        by_delivery.setdefault(a["delivery_id"], []).append(
            DeliveryAttempt(
                attempt=a["attempt"],
                started_at=a["started_at"],
                duration_ms=a["duration_ms"],
                status_code=a["status_code"],
                error=a["error"],
                outcome=a["outcome"],
            )
        )
    return [
        CaseDelivery(
            delivery_id=d["delivery_id"],
            page_seq=d["page_seq"],
            team_id=d["team_id"],
            channel=d["channel"],
            state=DeliveryState(d["state"]),
            attempts=d["attempts"],
            next_attempt_at=d["next_attempt_at"],
            deadline_at=d["deadline_at"],
            created_at=d["created_at"],
            finished_at=d["finished_at"],
            last_error=d["last_error"],
            attempt_log=tuple(by_delivery.get(d["delivery_id"], ())),
        )
        for d in deliveries
    ]


async def cancel_pending_deliveries(conn: Connection, case_id: UUID) -> list[UUID]:
    """Cancel the case's pending deliveries (inside the caller's transaction); their ids."""
    rows = await conn.fetch(
        "UPDATE deliveries SET state = $2, finished_at = now() "
        "WHERE case_id = $1 AND state = $3 RETURNING delivery_id",
        case_id,
        DeliveryState.CANCELLED.value,
        DeliveryState.PENDING.value,
    )
    return [r["delivery_id"] for r in rows]
