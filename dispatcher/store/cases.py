"""PostgreSQL persistence for cases: rows, history, escalations taken, silences read, pages.

Writes and locking reads take a ``Connection`` inside the caller's transaction
(``db.transaction``); plain reads take either a pool or a connection. PostgreSQL is the source
of truth for cases, so deadlines survive any restart. States and event actions are query
parameters (``contract.vocab``), never SQL literals.

The roster moved to ``store.roster``; its functions are re-exported here for old callers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from dispatcher.cases.lifecycle import (
    RENEWAL,
    Case,
    CaseEvent,
    Silence,
    findings_view,
)
from dispatcher.cases.pages import Page, page_id_for
from dispatcher.contract.vocab import AWAITING_ACK, CaseState
from dispatcher.routing.roster import Roster, Team, page_topic
from dispatcher.routing.router import Target
from dispatcher.store import deliveries
from dispatcher.store import roster as _roster
from dispatcher.store.db import Connection, Executor, Record

# The roster lives in ``store.roster``; these names keep the callers that still read it from
# here (the API, ``dispatcher roster``) working until they import it from there.
load_roster = _roster.load_roster
roster_version = _roster.roster_version
store_roster = _roster.store_roster

DEFAULT_DELIVERY_DEADLINE = timedelta(minutes=2)
# The ``case_events.action`` the lifecycle records for every page sent (numbering the pages).
PAGED = "paged"

CASE_COLUMNS = (
    "case_id, citizen_id, state, severity, tier, team_id, staff_id, level, chain, ack_minutes,"
    " ack_deadline, opened_at, updated_at, acknowledged_at, acknowledged_by, resolved_at,"
    " resolved_by, outcome, detail, superseded_by"
)


def _target(d: dict[str, Any]) -> Target:
    return Target(d["team_id"], d["tier"], d.get("staff_id"), d["competence"])


def case_from_row(row: Record) -> Case:
    return Case(
        case_id=row["case_id"],
        citizen_id=row["citizen_id"],
        state=CaseState(row["state"]),
        severity=row["severity"],
        chain=tuple(_target(t) for t in json.loads(row["chain"])),
        level=row["level"],
        ack_minutes=row["ack_minutes"],
        ack_deadline=row["ack_deadline"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        detail=json.loads(row["detail"]),
        acknowledged_at=row["acknowledged_at"],
        acknowledged_by=row["acknowledged_by"],
        resolved_at=row["resolved_at"],
        resolved_by=row["resolved_by"],
        outcome=row["outcome"],
        superseded_by=row["superseded_by"],
    )


def case_to_dict(case: Case) -> dict[str, Any]:
    """The API/JSON view of a case."""
    return {
        "case_id": str(case.case_id),
        "citizen_id": case.citizen_id,
        "state": case.state.value,
        "severity": case.severity,
        "tier": case.tier,
        "team_id": case.team_id,
        "staff_id": case.target.staff_id,
        "level": case.level,
        "chain": [t.as_dict() for t in case.chain],
        "ack_minutes": case.ack_minutes,
        "ack_deadline": case.ack_deadline.isoformat(),
        "opened_at": case.opened_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "acknowledged_at": case.acknowledged_at.isoformat() if case.acknowledged_at else None,
        "acknowledged_by": case.acknowledged_by,
        "resolved_at": case.resolved_at.isoformat() if case.resolved_at else None,
        "resolved_by": case.resolved_by,
        "outcome": case.outcome,
        "detail": case.detail,
        # The stale acknowledged case's successor (docs/cases.md), and every rule counted on the
        # case with its burst ("3 x sensor.fall within 2 min").
        "superseded_by": str(case.superseded_by) if case.superseded_by else None,
        "findings": findings_view(case),
    }


async def open_case_for_update(conn: Connection, citizen_id: str) -> Case | None:
    """The citizen's current case (unresolved, not superseded; at most one), locked for this
    transaction."""
    row = await conn.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE citizen_id = $1 AND state <> $2 "  # noqa: S608 - constant column list
        "AND superseded_by IS NULL FOR UPDATE",
        citizen_id,
        CaseState.RESOLVED.value,
    )
    return case_from_row(row) if row else None


async def overdue_cases_for_update(conn: Connection, now: datetime, limit: int) -> list[Case]:
    """Up to ``limit`` cases awaiting acknowledgement past their deadline, oldest first, locked;
    cases another worker holds are skipped (``SKIP LOCKED``), so each is handled once."""
    rows = await conn.fetch(
        f"SELECT {CASE_COLUMNS} FROM cases "  # noqa: S608 - constant column list
        "WHERE state = ANY($3::text[]) AND ack_deadline <= $1 "
        "ORDER BY ack_deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
        sorted(s.value for s in AWAITING_ACK),
    )
    return [case_from_row(r) for r in rows]


async def stale_acks_for_update(
    conn: Connection, acknowledged_before: datetime, limit: int
) -> list[Case]:
    """Up to ``limit`` acknowledged, unresolved, not superseded cases acknowledged at or before
    ``acknowledged_before`` whose team was not yet asked to resolve or renew them, oldest first,
    locked; cases another worker holds are skipped (``SKIP LOCKED``)."""
    rows = await conn.fetch(
        f"SELECT {CASE_COLUMNS} FROM cases "  # noqa: S608 - constant column list
        "WHERE state = $1 AND superseded_by IS NULL AND acknowledged_at <= $2 "
        "AND NOT (detail ? $4) ORDER BY acknowledged_at LIMIT $3 FOR UPDATE SKIP LOCKED",
        CaseState.ACKNOWLEDGED.value,
        acknowledged_before,
        limit,
        RENEWAL,
    )
    return [case_from_row(r) for r in rows]


async def awaiting_at_last_rung(conn: Executor) -> list[Case]:
    """Cases awaiting acknowledgement whose current rung is the last of their chain (the
    ``dispatcher_cases_last_rung_*`` metrics; ``lifecycle.last_rung_backlog`` decides which are
    overdue)."""
    rows = await conn.fetch(
        f"SELECT {CASE_COLUMNS} FROM cases "  # noqa: S608 - constant column list
        "WHERE state = ANY($1::text[]) AND level >= jsonb_array_length(chain) - 1",
        sorted(s.value for s in AWAITING_ACK),
    )
    return [case_from_row(r) for r in rows]


async def case_state_for_update(conn: Connection, case_id: UUID) -> CaseState | None:
    """The case's state, its row locked (``None``: no such case)."""
    state = await conn.fetchval("SELECT state FROM cases WHERE case_id = $1 FOR UPDATE", case_id)
    return None if state is None else CaseState(state)


async def case_for_update(conn: Connection, case_id: UUID) -> Case | None:
    row = await conn.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE",  # noqa: S608 - constant columns
        case_id,
    )
    return case_from_row(row) if row else None


async def get_case(conn: Executor, case_id: UUID) -> Case | None:
    query = f"SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"  # noqa: S608 - constant columns
    row = await conn.fetchrow(query, case_id)
    return case_from_row(row) if row else None


async def save_case(conn: Connection, case: Case) -> None:
    await conn.execute(
        f"""INSERT INTO cases ({CASE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $19::jsonb, $20)
            ON CONFLICT (case_id) DO UPDATE SET
              state = EXCLUDED.state, severity = EXCLUDED.severity, tier = EXCLUDED.tier,
              team_id = EXCLUDED.team_id, staff_id = EXCLUDED.staff_id, level = EXCLUDED.level,
              chain = EXCLUDED.chain, ack_minutes = EXCLUDED.ack_minutes,
              ack_deadline = EXCLUDED.ack_deadline, updated_at = EXCLUDED.updated_at,
              acknowledged_at = EXCLUDED.acknowledged_at,
              acknowledged_by = EXCLUDED.acknowledged_by, resolved_at = EXCLUDED.resolved_at,
              resolved_by = EXCLUDED.resolved_by, outcome = EXCLUDED.outcome,
              detail = EXCLUDED.detail, superseded_by = EXCLUDED.superseded_by""",  # noqa: S608 - constant column list
        case.case_id,
        case.citizen_id,
        case.state.value,
        case.severity,
        case.tier,
        case.team_id,
        case.target.staff_id,
        case.level,
        orjson.dumps([t.as_dict() for t in case.chain]).decode(),
        case.ack_minutes,
        case.ack_deadline,
        case.opened_at,
        case.updated_at,
        case.acknowledged_at,
        case.acknowledged_by,
        case.resolved_at,
        case.resolved_by,
        case.outcome,
        orjson.dumps(case.detail).decode(),
        case.superseded_by,
    )


async def append_events(
    conn: Connection, case_id: UUID, events: Sequence[CaseEvent], at: datetime
) -> None:
    if events:
        await conn.executemany(
            "INSERT INTO case_events (case_id, at, actor, action, detail) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)",
            [(case_id, at, e.actor, e.action, orjson.dumps(e.detail).decode()) for e in events],
        )


async def next_page_seq(conn: Connection, case_id: UUID) -> int:
    """The sequence number the case's next page gets (1 for its first)."""
    n = await conn.fetchval(
        "SELECT count(*) FROM case_events WHERE case_id = $1 AND action = $2", case_id, PAGED
    )
    return int(n or 0) + 1


async def escalation_seen(conn: Connection, escalation_id: UUID) -> bool:
    """Whether the case manager has taken this escalation already (a redelivered message)."""
    seen = await conn.fetchval(
        "SELECT 1 FROM case_escalations WHERE escalation_id = $1", escalation_id
    )
    return bool(seen)


async def record_escalation(  # noqa: PLR0917 - the row's columns, in table order
    conn: Connection,
    escalation_id: UUID,
    case_id: UUID | None,
    citizen_id: str,
    action: str,
    silence_id: UUID | None,
) -> None:
    """Remember what became of an escalation (``escalation_seen`` reads it back)."""
    await conn.execute(
        "INSERT INTO case_escalations (escalation_id, case_id, citizen_id, action, "
        "silence_id) VALUES ($1, $2, $3, $4, $5)",
        escalation_id,
        case_id,
        citizen_id,
        action,
        silence_id,
    )


async def citizen_context(conn: Connection, citizen_id: str) -> dict[str, Any]:
    """The citizen's stored context document as plain JSON (``{}`` when none): routing reads
    municipality and district from it. The ingest writes it; cases only read it."""
    raw = await conn.fetchval(
        "SELECT context FROM citizen_context WHERE citizen_id = $1", citizen_id
    )
    return json.loads(raw) if raw else {}


async def active_silences(conn: Connection, citizen_id: str, now: datetime) -> list[Silence]:
    rows = await conn.fetch(
        "SELECT silence_id, citizen_id, rule_id, starts_at, ends_at, author, reason, "
        "include_critical FROM silences WHERE citizen_id = $1 AND expired_at IS NULL "
        "AND starts_at <= $2 AND ends_at > $2 ORDER BY created_at",
        citizen_id,
        now,
    )
    return [Silence(**dict(r)) for r in rows]


async def staff_load(conn: Connection) -> dict[str, int]:
    """Unresolved cases per staff member (the router spreads load by it)."""
    rows = await conn.fetch(
        "SELECT staff_id, count(*) AS n FROM cases WHERE state <> $1 "
        "AND staff_id IS NOT NULL GROUP BY staff_id",
        CaseState.RESOLVED.value,
    )
    return {r["staff_id"]: int(r["n"]) for r in rows}


async def open_case_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Unresolved cases per (severity, team)."""
    rows = await conn.fetch(
        "SELECT severity, team_id, count(*) AS n FROM cases WHERE state <> $1 "
        "GROUP BY severity, team_id",
        CaseState.RESOLVED.value,
    )
    return {(r["severity"], r["team_id"]): int(r["n"]) for r in rows}


async def claim_ack_times(conn: Connection, limit: int = 1000) -> list[tuple[str, float]]:
    """(severity, seconds from open to acknowledgement) of acknowledgements not yet observed,
    each marked observed (``ack_observed_at``) so exactly one worker ever reports it."""
    rows = await conn.fetch(
        "UPDATE cases SET ack_observed_at = now() WHERE case_id IN ("
        " SELECT case_id FROM cases WHERE acknowledged_at IS NOT NULL"
        " AND ack_observed_at IS NULL LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING severity, extract(epoch FROM acknowledged_at - opened_at) AS s",
        limit,
    )
    return [(r["severity"], max(0.0, float(r["s"]))) for r in rows]


def page_payload(case: Case, page: Page, escalation: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON a team receives, on its Kafka topic and its webhook alike."""
    return {
        "page_id": str(page_id_for(case.case_id, page.page_seq)),
        "case_id": str(case.case_id),
        "page_seq": page.page_seq,
        "kind": page.kind,
        "reason": page.reason,
        "citizen_id": case.citizen_id,
        "severity": case.severity,
        "target": page.target.as_dict(),
        "ack_deadline": page.ack_deadline.isoformat(),
        "case_state": case.state.value,
        # null, or {pages, minutes, summary, instruction} once the last rung has not answered
        # (cases.pages.Unacknowledged): the reader must act on the instruction.
        "unacknowledged": page.unacknowledged.as_dict() if page.unacknowledged else None,
        # Every rule counted on the case, bursts collapsed: [{rule_id, count, burst_count,
        # burst_since, first_at, last_at, summary: "3 x sensor.fall within 2 min"}].
        "findings": findings_view(case),
        # The citizen's stale acknowledged case this new case took over from (or null).
        "supersedes": case.detail.get("supersedes"),
        "escalation": escalation,
        "links": {
            "case": f"/api/cases/{case.case_id}",
            "acknowledge": f"/api/cases/{case.case_id}/ack",
        },
    }


async def emit_page(  # noqa: PLR0917 - the page's parts, in the order a reader expects
    conn: Connection,
    roster: Roster | None,
    case: Case,
    page: Page,
    escalation: dict[str, Any] | None,
    now: datetime,
    delivery_deadline: timedelta = DEFAULT_DELIVERY_DEADLINE,
) -> bytes:
    """Queue a page: the team's Kafka topic through the outbox, its webhook as a delivery."""
    payload = orjson.dumps(page_payload(case, page, escalation))
    team: Team | None = None
    if roster is not None:
        try:
            team = roster.team(page.target.team_id)
        except KeyError:
            team = None
    if team is None or team.channels.kafka:
        await conn.execute(
            "INSERT INTO outbox (topic, key, value) VALUES ($1, $2, $3)",
            page_topic(page.target.team_id),
            case.citizen_id.encode(),
            payload,
        )
    if team is not None and team.channels.webhook is not None:
        await deliveries.enqueue_webhook(
            conn,
            page_id_for(case.case_id, page.page_seq),
            case.case_id,
            page.page_seq,
            team.team_id,
            team.channels.webhook.url,
            payload,
            now,
            now + delivery_deadline,
        )
    return payload
