"""The roster's version stamp (``roster_meta``): which roster is stored, and since when.

The roster itself is read and replaced by ``store.cases``; the API reports this stamp after a
read or a replace so a client (and an owner reloading by version) can tell rosters apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatcher.store.db import Executor


@dataclass(frozen=True)
class RosterStamp:
    """The stored roster's version (1 for the first load, +1 per replace) and change time."""

    version: int
    updated_at: datetime


async def roster_stamp(db: Executor) -> RosterStamp | None:
    """The stamp of the stored roster; None before any roster was loaded."""
    row = await db.fetchrow("SELECT version, updated_at FROM roster_meta")
    if row is None:
        return None
    return RosterStamp(version=row["version"], updated_at=row["updated_at"])
