"""The roster in PostgreSQL: teams, staff and the on-call doctor team, replaced as a whole.

Every worker reads the same roster (the case manager caches it for a few seconds); the API and
``dispatcher roster load`` replace it in one transaction and bump ``roster_meta.version`` so a
reader can tell that it changed.
"""

from __future__ import annotations

import json

from dispatcher.routing.roster import Roster
from dispatcher.store.db import Connection, Executor


async def load_roster(conn: Executor) -> Roster | None:
    """The stored roster, or ``None`` when none was ever loaded."""
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


async def roster_version(conn: Executor) -> int:
    """How many times the roster was replaced (0: never loaded)."""
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM roster_meta"))


async def store_roster(conn: Connection, roster: Roster) -> None:
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


async def seed_roster(conn: Connection, roster: Roster) -> Roster:
    """Store ``roster`` unless one is loaded already; return the roster now in force.

    Runs in the caller's transaction: the check and the write commit together."""
    current = await load_roster(conn)
    if current is None:
        await store_roster(conn, roster)
        current = roster
    return current
