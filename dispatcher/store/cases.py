"""PostgreSQL persistence for cases, silences, roster and pages (asyncpg, inside a caller's
transaction). PostgreSQL is the source of truth for cases, so deadlines survive any restart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from dispatcher.cases.lifecycle import (
    Case,
    CaseEvent,
    Page,
    Silence,
    page_id_for,
)
from dispatcher.contract.vocab import CaseState
from dispatcher.routing.roster import Roster, StaffMember, Team, page_topic
from dispatcher.routing.router import Target

DEFAULT_DELIVERY_DEADLINE = timedelta(minutes=2)

CASE_COLUMNS = (
    "case_id, citizen_id, state, severity, tier, team_id, staff_id, level, chain, ack_minutes,"
    " ack_deadline, opened_at, updated_at, acknowledged_at, acknowledged_by, resolved_at,"
    " resolved_by, outcome, detail"
)


def _target(d: dict[str, Any]) -> Target:
    return Target(d["team_id"], d["tier"], d.get("staff_id"), d["competence"])


def case_from_row(row: asyncpg.Record) -> Case:
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
    }


async def open_case_for_update(conn: asyncpg.Connection, citizen_id: str) -> Case | None:
    row = await conn.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE citizen_id = $1 AND state <> 'resolved' "  # noqa: S608 - constant column list
        "FOR UPDATE",
        citizen_id,
    )
    return case_from_row(row) if row else None


async def case_for_update(conn: asyncpg.Connection, case_id: UUID) -> Case | None:
    row = await conn.fetchrow(
        f"SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1 FOR UPDATE",  # noqa: S608 - constant columns
        case_id,
    )
    return case_from_row(row) if row else None


async def get_case(conn: asyncpg.Connection | asyncpg.Pool, case_id: UUID) -> Case | None:
    query = f"SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"  # noqa: S608 - constant columns
    row = await conn.fetchrow(query, case_id)
    return case_from_row(row) if row else None


async def save_case(conn: asyncpg.Connection, case: Case) -> None:
    await conn.execute(
        f"""INSERT INTO cases ({CASE_COLUMNS})
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12, $13, $14, $15,
                    $16, $17, $18, $19::jsonb)
            ON CONFLICT (case_id) DO UPDATE SET
              state = EXCLUDED.state, severity = EXCLUDED.severity, tier = EXCLUDED.tier,
              team_id = EXCLUDED.team_id, staff_id = EXCLUDED.staff_id, level = EXCLUDED.level,
              chain = EXCLUDED.chain, ack_minutes = EXCLUDED.ack_minutes,
              ack_deadline = EXCLUDED.ack_deadline, updated_at = EXCLUDED.updated_at,
              acknowledged_at = EXCLUDED.acknowledged_at,
              acknowledged_by = EXCLUDED.acknowledged_by, resolved_at = EXCLUDED.resolved_at,
              resolved_by = EXCLUDED.resolved_by, outcome = EXCLUDED.outcome,
              detail = EXCLUDED.detail""",  # noqa: S608 - constant column list
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
    )


async def append_events(
    conn: asyncpg.Connection, case_id: UUID, events: Sequence[CaseEvent], at: datetime
) -> None:
    if events:
        await conn.executemany(
            "INSERT INTO case_events (case_id, at, actor, action, detail) "
            "VALUES ($1, $2, $3, $4, $5::jsonb)",
            [(case_id, at, e.actor, e.action, orjson.dumps(e.detail).decode()) for e in events],
        )


async def next_page_seq(conn: asyncpg.Connection, case_id: UUID) -> int:
    n = await conn.fetchval(
        "SELECT count(*) FROM case_events WHERE case_id = $1 AND action = 'paged'", case_id
    )
    return int(n or 0) + 1


async def active_silences(
    conn: asyncpg.Connection, citizen_id: str, now: datetime
) -> list[Silence]:
    rows = await conn.fetch(
        "SELECT silence_id, citizen_id, rule_id, starts_at, ends_at, author, reason, "
        "include_critical FROM silences WHERE citizen_id = $1 AND expired_at IS NULL "
        "AND starts_at <= $2 AND ends_at > $2 ORDER BY created_at",
        citizen_id,
        now,
    )
    return [Silence(**dict(r)) for r in rows]


async def staff_load(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT staff_id, count(*) AS n FROM cases WHERE state <> 'resolved' "
        "AND staff_id IS NOT NULL GROUP BY staff_id"
    )
    return {r["staff_id"]: int(r["n"]) for r in rows}


async def load_roster(conn: asyncpg.Connection | asyncpg.Pool) -> Roster | None:
    doctor_team = await conn.fetchval("SELECT doctor_team FROM roster_meta")
    if doctor_team is None:
        return None
    teams = await conn.fetch("SELECT doc FROM roster_teams ORDER BY team_id")
    staff = await conn.fetch("SELECT doc FROM roster_staff ORDER BY staff_id")
    return Roster.model_validate(
        {
            "doctor_team": doctor_team,
            "teams": [json.loads(r["doc"]) for r in teams],
            "staff": [json.loads(r["doc"]) for r in staff],
        }
    )


async def roster_version(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM roster_meta"))


async def store_roster(conn: asyncpg.Connection, roster: Roster) -> None:
    """Replace the roster with ``roster`` (one transaction; the caller opens it)."""
    await conn.execute("DELETE FROM roster_staff")
    await conn.execute("DELETE FROM roster_teams")
    await conn.execute(
        """INSERT INTO roster_meta (singleton, doctor_team) VALUES (true, $1)
           ON CONFLICT (singleton) DO UPDATE SET doctor_team = EXCLUDED.doctor_team,
             version = roster_meta.version + 1, updated_at = now()""",
        roster.doctor_team,
    )
    await conn.executemany(
        "INSERT INTO roster_teams (team_id, tier, doc) VALUES ($1, $2, $3::jsonb)",
        [(t.team_id, t.tier, t.model_dump_json()) for t in roster.teams],
    )
    await conn.executemany(
        "INSERT INTO roster_staff (staff_id, team_id, doc) VALUES ($1, $2, $3::jsonb)",
        [(s.staff_id, s.team_id, s.model_dump_json()) for s in roster.staff],
    )


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
        "escalation": escalation,
        "links": {
            "case": f"/api/cases/{case.case_id}",
            "acknowledge": f"/api/cases/{case.case_id}/ack",
        },
    }


async def emit_page(  # noqa: PLR0917 - the page's parts, in the order a reader expects
    conn: asyncpg.Connection,
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
        key = str(page_id_for(case.case_id, page.page_seq))
        await conn.execute(
            """INSERT INTO deliveries (delivery_id, case_id, page_seq, team_id, channel, url,
                   idempotency_key, payload, state, next_attempt_at, deadline_at)
               VALUES ($1, $2, $3, $4, 'webhook', $5, $6, $7, 'pending', $8, $9)
               ON CONFLICT (idempotency_key) DO NOTHING""",
            page_id_for(case.case_id, page.page_seq),
            case.case_id,
            page.page_seq,
            team.team_id,
            team.channels.webhook.url,
            key,
            payload,
            now,
            now + delivery_deadline,
        )
    return payload


def staff_of(roster: Roster, staff_id: str) -> StaffMember | None:
    return next((s for s in roster.staff if s.staff_id == staff_id), None)
