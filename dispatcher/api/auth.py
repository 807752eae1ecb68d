"""Who is calling: bearer tokens, created once, shown once, stored only as a SHA-256 hash.

A token is 32 random bytes (URL-safe base64). The database keeps ``sha256(token)`` in hex, so a
leaked database dump does not hand out working credentials, and a lookup by hash needs no
constant-time comparison (the attacker never controls what is compared against a secret).
Revocation sets ``revoked_at``; the row stays as the audit trail of who held access. The rows
themselves are ``store.tokens``; generating, hashing and checking tokens is this module's.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from aiohttp import web

from dispatcher.api.context import POOL
from dispatcher.api.errors import ApiError, Handler
from dispatcher.contract.vocab import Role
from dispatcher.store import tokens as token_store
from dispatcher.store.db import Executor

# Reachable without a token: the API's own description and the process's health and metrics.
PUBLIC_PATHS = frozenset({"/api/openapi.json", "/healthz", "/metrics"})


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


PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(
    db: Executor,
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
    role: Role = "admin" if admin else "member"
    await token_store.insert_token(db, token_hash(token), actor, team_id, role)
    return token


async def revoke(db: Executor, actor: str) -> int:
    """Revoke every live token of ``actor``; return how many were revoked."""
    return await token_store.revoke_tokens(db, actor)


async def lookup(db: Executor, token: str) -> Principal | None:
    """The principal of a live token, or None for an unknown or revoked one."""
    if not token:
        return None
    holder = await token_store.live_token_holder(db, token_hash(token))
    if holder is None:
        return None
    return Principal(actor=holder.actor, team_id=holder.team_id, role=holder.role)


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None for any other header."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <token>`` to a principal; 401 when absent or dead."""
    if request.path in PUBLIC_PATHS or request.match_info.http_exception is not None:
        # Public, or no route matches: the handler answers (a 404/405 needs no token).
        return await handler(request)
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        raise ApiError(401, "missing bearer token")
    principal = await lookup(request.app[POOL], token)
    if principal is None:
        raise ApiError(401, "unknown or revoked token")
    request[PRINCIPAL] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    """The caller, as resolved by ``auth_middleware``."""
    return request[PRINCIPAL]
