"""Read views of cases for the API: a team's list page, a case's history and escalations, and
whether a citizen has a case on a team (the scope of a member's silences).

Writes to cases stay in ``store.cases``, beside the case manager's; these are only reads, so they
take a pool or a connection and never lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatcher.cases.lifecycle import Case
from dispatcher.contract.vocab import CaseState
from dispatcher.store.cases import CASE_COLUMNS, case_from_row
from dispatcher.store.db import Executor


def decode_jsonb(value: Any) -> Any:
    """asyncpg returns jsonb as text unless a codec is set; the pool is the caller's."""
    return json.loads(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class CaseHistoryEntry:
    """One ``case_events`` row: who did what to the case, when."""

    id: int
    at: datetime
    actor: str
    action: str
    detail: Any


@dataclass(frozen=True)
class CaseEscalation:
    """An escalation the case took in, with the escalation's own facts when it is stored."""

    escalation_id: UUID
    action: str
    silence_id: UUID | None
    received_at: datetime
    severity: str | None
    created_at: datetime | None
    reasons: Any
    news2: Any


async def list_cases(
    db: Executor,
    *,
    limit: int,
    team_id: str | None = None,
    state: CaseState | None = None,
    unresolved_only: bool = False,
    before: tuple[datetime, UUID] | None = None,
) -> list[Case]:
    """Newest first by (opened_at, case_id), at most ``limit``; ``before`` is the keyset of the
    last case of the previous page. ``unresolved_only`` wins over ``state``."""
    where: list[str] = []
    args: list[Any] = []
    if team_id is not None:
        args.append(team_id)
        where.append(f"team_id = ${len(args)}")
    if unresolved_only:
        args.append(CaseState.RESOLVED.value)
        where.append(f"state <> ${len(args)}")
    elif state is not None:
        args.append(state.value)
        where.append(f"state = ${len(args)}")
    if before is not None:
        args.extend(before)
        where.append(f"(opened_at, case_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    sql = (
        f"SELECT {CASE_COLUMNS} FROM cases"  # noqa: S608 - constants only
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY opened_at DESC, case_id DESC LIMIT ${len(args)}"
    )
    rows = await db.fetch(sql, *args)
    return [case_from_row(r) for r in rows]


async def case_history(db: Executor, case_id: UUID) -> list[CaseHistoryEntry]:
    """Every ``case_events`` row of the case, oldest first."""
    rows = await db.fetch(
        "SELECT id, at, actor, action, detail FROM case_events WHERE case_id = $1 ORDER BY id",
        case_id,
    )
    return [
        CaseHistoryEntry(
            id=r["id"],
            at=r["at"],
            actor=r["actor"],
            action=r["action"],
            detail=decode_jsonb(r["detail"]),
        )
        for r in rows
    ]


async def case_escalations(db: Executor, case_id: UUID) -> list[CaseEscalation]:
    """The escalations the case took in, in the order received."""
    rows = await db.fetch(
        """SELECT ce.escalation_id, ce.action, ce.silence_id, ce.received_at,
                  e.severity, e.created_at, e.payload -> 'reasons' AS reasons,
                  e.payload -> 'news2' AS news2
             FROM case_escalations ce
             LEFT JOIN escalations e ON e.escalation_id = ce.escalation_id
            WHERE ce.case_id = $1
            ORDER BY ce.received_at, ce.escalation_id""",
        case_id,
    )
    return [
        CaseEscalation(
            escalation_id=r["escalation_id"],
            action=r["action"],
            silence_id=r["silence_id"],
            received_at=r["received_at"],
            severity=r["severity"],
            created_at=r["created_at"],
            reasons=decode_jsonb(r["reasons"]),
            news2=decode_jsonb(r["news2"]),
        )
        for r in rows
    ]


async def citizen_has_case_on_team(db: Executor, citizen_id: str, team_id: str) -> bool:
    """Whether any case (in any state) of the citizen is on the team."""
    found = await db.fetchval(
        "SELECT 1 FROM cases WHERE citizen_id = $1 AND team_id = $2 LIMIT 1", citizen_id, team_id
    )
    return found is not None
