"""API bearer tokens in PostgreSQL: only ``sha256(token)`` is ever stored or looked up.

Hashing and generating tokens is the API's business (``dispatcher.api.auth``); this module only
keeps the rows. Revocation sets ``revoked_at`` and leaves the row, as the audit trail of who held
access.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatcher.contract.vocab import Role
from dispatcher.store.db import Executor


@dataclass(frozen=True)
class TokenHolder:
    """Whom a live token belongs to, as stored."""

    actor: str
    team_id: str | None
    role: Role


async def insert_token(
    db: Executor, token_sha256: str, actor: str, team_id: str | None, role: Role
) -> None:
    """Store the hash of a new token for ``actor``."""
    await db.execute(
        "INSERT INTO api_tokens (token_sha256, actor, team_id, role) VALUES ($1, $2, $3, $4)",
        token_sha256,
        actor,
        team_id,
        role,
    )


async def revoke_tokens(db: Executor, actor: str) -> int:
    """Revoke every live token of ``actor``; return how many were revoked."""
    rows = await db.fetch(
        "UPDATE api_tokens SET revoked_at = now() WHERE actor = $1 AND revoked_at IS NULL "
        "RETURNING token_sha256",
        actor,
    )
    return len(rows)


async def live_token_holder(db: Executor, token_sha256: str) -> TokenHolder | None:
    """The holder of the live token with this hash, or None for an unknown or revoked one."""
    row = await db.fetchrow(
        "SELECT actor, team_id, role FROM api_tokens "
        "WHERE token_sha256 = $1 AND revoked_at IS NULL",
        token_sha256,
    )
    if row is None:
        return None
    role: Role = "admin" if row["role"] == "admin" else "member"
    return TokenHolder(actor=row["actor"], team_id=row["team_id"], role=role)
