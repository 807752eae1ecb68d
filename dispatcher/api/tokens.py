"""API bearer tokens: created once, shown once, stored only as a SHA-256 hash.

A token is 32 random bytes (URL-safe base64). The database keeps ``sha256(token)`` in hex, so a
leaked database dump does not hand out working credentials, and a lookup by hash needs no
constant-time comparison (the attacker never controls what is compared against a secret).
Revocation sets ``revoked_at``; the row stays as the audit trail of who held access.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import asyncpg

from dispatcher.contract.vocab import Role


@dataclass(frozen=True)
class Principal:
    """Who is calling: the actor recorded in every audit line, their team and their role."""

    actor: str
    team_id: str | None
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_act_on_team(self, team_id: str) -> bool:
        """Admins act on every team; a member only on their own."""
        return self.is_admin or (self.team_id is not None and self.team_id == team_id)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    conn: asyncpg.Connection | asyncpg.Pool,
    actor: str,
    team_id: str | None = None,
    admin: bool = False,
) -> str:
    """Store a new token for ``actor`` and return it (the only time it is ever visible).

    A member token must name a team: without one it could see nothing, which is a mistake the
    operator should hear about now rather than as a puzzling 403 later.
    """
    if not actor.strip():
        raise ValueError("actor must not be empty")
    if not admin and not team_id:
        raise ValueError("a member token needs a team (--team), or make it --admin")
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_tokens (token_sha256, actor, team_id, role) VALUES ($1, $2, $3, $4)",
        token_hash(token),
        actor,
        team_id,
        "admin" if admin else "member",
    )
    return token


async def revoke(conn: asyncpg.Connection | asyncpg.Pool, actor: str) -> int:
    """Revoke every live token of ``actor``; return how many were revoked."""
    rows = await conn.fetch(
        "UPDATE api_tokens SET revoked_at = now() WHERE actor = $1 AND revoked_at IS NULL "
        "RETURNING token_sha256",
        actor,
    )
    return len(rows)


async def lookup(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> Principal | None:
    """The principal of a live token, or None for an unknown or revoked one."""
    if not token:
        return None
    row = await conn.fetchrow(
        "SELECT actor, team_id, role FROM api_tokens "
        "WHERE token_sha256 = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    if row is None:
        return None
    role: Role = "admin" if row["role"] == "admin" else "member"
    return Principal(actor=row["actor"], team_id=row["team_id"], role=role)
