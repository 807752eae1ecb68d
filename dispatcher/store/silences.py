"""Silences as the API manages them: listed, created and expired, never deleted.

The case manager reads only the active ones (``store.cases.active_silences``); the API needs
the whole row, including who created it when and when it was expired, because that row is the
audit trail of a silence (there is no separate history table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from dispatcher.store.db import Connection, Executor

COLUMNS = (
    "silence_id, citizen_id, rule_id, starts_at, ends_at, author, reason, include_critical,"
    " created_at, expired_at"
)
# Citizens with a case (in any state) on team $n: the scope of a member's silences.
_TEAM_CITIZENS = "SELECT citizen_id FROM cases WHERE team_id ="


@dataclass(frozen=True)
class StoredSilence:
    """One ``silences`` row."""

    silence_id: UUID
    citizen_id: str
    rule_id: str | None
    starts_at: datetime
    ends_at: datetime
    author: str
    reason: str
    include_critical: bool
    created_at: datetime
    expired_at: datetime | None

    def active_at(self, now: datetime) -> bool:
        """Not expired and ``now`` inside its window."""
        return self.expired_at is None and self.starts_at <= now < self.ends_at


def _from_row(row: Mapping[str, Any]) -> StoredSilence:
    return StoredSilence(
        silence_id=row["silence_id"],
        citizen_id=row["citizen_id"],
        rule_id=row["rule_id"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        author=row["author"],
        reason=row["reason"],
        include_critical=row["include_critical"],
        created_at=row["created_at"],
        expired_at=row["expired_at"],
    )


async def list_silences(
    db: Executor,
    *,
    limit: int,
    citizen_id: str | None = None,
    team_id: str | None = None,
    scope_to_team: bool = False,
    not_ended_at: datetime | None = None,
) -> list[StoredSilence]:
    """Newest first, at most ``limit``. ``citizen_id`` narrows to one citizen; otherwise
    ``scope_to_team`` narrows to citizens with a case on ``team_id`` (no team: none);
    ``not_ended_at`` keeps only unexpired silences that end after that time."""
    where: list[str] = []
    args: list[Any] = []
    if citizen_id is not None:
        args.append(citizen_id)
        where.append(f"citizen_id = ${len(args)}")
    elif scope_to_team:
        args.append(team_id)
        where.append(f"citizen_id IN ({_TEAM_CITIZENS} ${len(args)})")
    if not_ended_at is not None:
        args.append(not_ended_at)
        where.append(f"expired_at IS NULL AND ends_at > ${len(args)}")
    args.append(limit)
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM silences"  # noqa: S608 - constants only
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY created_at DESC, silence_id LIMIT ${len(args)}",
        *args,
    )
    return [_from_row(r) for r in rows]


async def insert_silence(  # noqa: PLR0917 - the row's columns, in table order
    conn: Connection,
    silence_id: UUID,
    citizen_id: str,
    rule_id: str | None,
    starts_at: datetime,
    ends_at: datetime,
    author: str,
    reason: str,
    include_critical: bool,
    created_at: datetime,
) -> StoredSilence:
    """Insert a new, unexpired silence and return the stored row."""
    row = await conn.fetchrow(
        f"INSERT INTO silences ({COLUMNS}) "  # noqa: S608 - constants only
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) "
        f"RETURNING {COLUMNS}",
        silence_id,
        citizen_id,
        rule_id,
        starts_at,
        ends_at,
        author,
        reason,
        include_critical,
        created_at,
    )
    return _from_row(row)


async def silence_for_update(conn: Connection, silence_id: UUID) -> StoredSilence | None:
    """The silence, row-locked until the caller's transaction ends; None if there is none."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM silences WHERE silence_id = $1 FOR UPDATE",  # noqa: S608 - constants only
        silence_id,
    )
    return _from_row(row) if row is not None else None


async def expire_silence(conn: Connection, silence_id: UUID, at: datetime) -> StoredSilence:
    """Set ``expired_at`` (the caller checked it was unset) and return the updated row."""
    row = await conn.fetchrow(
        f"UPDATE silences SET expired_at = $2 WHERE silence_id = $1 "  # noqa: S608 - constants only
        f"RETURNING {COLUMNS}",
        silence_id,
        at,
    )
    return _from_row(row)
