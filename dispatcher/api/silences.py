"""``/api/silences``: integrations and teams silence a citizen's pages for a while.

Silences follow the citizen: a member may see, create or expire silences only of citizens that
have a case on their team (an admin, and a silence's own author when expiring, always may). A
silence is never deleted: expiring sets ``expired_at`` and the row, with its author and
``created_at``, is the audit trail; each change is also a structured log line carrying ids,
never the reason text.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import structlog
from aiohttp import web

from dispatcher.api.auth import Principal, principal_of
from dispatcher.api.bodies import parse_body
from dispatcher.api.context import CLOCK, POOL
from dispatcher.api.errors import ApiError
from dispatcher.api.models import MAX_SILENCE_MINUTES, SilenceBody
from dispatcher.api.responses import iso, json_response
from dispatcher.store import case_views
from dispatcher.store import silences as silence_store
from dispatcher.store.db import Connection, transaction

log = structlog.get_logger(__name__)

SILENCE_LIST_LIMIT = 500
MAX_SILENCE_AHEAD = timedelta(minutes=MAX_SILENCE_MINUTES)


def silence_view(silence: silence_store.StoredSilence, now: datetime) -> dict[str, Any]:
    """The API/JSON view of a silence, with whether it is in force at ``now``."""
    return {
        "silence_id": str(silence.silence_id),
        "citizen_id": silence.citizen_id,
        "rule_id": silence.rule_id,
        "starts_at": iso(silence.starts_at),
        "ends_at": iso(silence.ends_at),
        "author": silence.author,
        "reason": silence.reason,
        "include_critical": silence.include_critical,
        "created_at": iso(silence.created_at),
        "expired_at": iso(silence.expired_at),
        "active": silence.active_at(now),
    }


async def _authorize_citizen(
    conn: Connection, principal: Principal, citizen_id: str, what: str
) -> None:
    if principal.is_admin:
        return
    if principal.team_id is None or not await case_views.citizen_has_case_on_team(
        conn, citizen_id, principal.team_id
    ):
        raise ApiError(
            403, f"a member may {what} only citizens with a case on their team", "citizen_id"
        )


async def list_silences(request: web.Request) -> web.Response:
    """``GET /api/silences``: active ones by default (``state=all`` adds ended and expired)."""
    principal = principal_of(request)
    now = request.app[CLOCK]()
    citizen_id = request.query.get("citizen_id") or None
    state = request.query.get("state", "active")
    if state not in ("active", "all"):
        raise ApiError(400, "must be 'active' or 'all'", "state")
    async with request.app[POOL].acquire() as conn:
        if citizen_id is not None:
            await _authorize_citizen(conn, principal, citizen_id, "see silences of")
        found = await silence_store.list_silences(
            conn,
            limit=SILENCE_LIST_LIMIT,
            citizen_id=citizen_id,
            team_id=principal.team_id,
            scope_to_team=not principal.is_admin,
            not_ended_at=now if state == "active" else None,
        )
    return json_response({"silences": [silence_view(s, now) for s in found]})


def silence_window(body: SilenceBody, now: datetime) -> tuple[datetime, datetime]:
    """(starts, ends) of a new silence: exactly one of an end and a duration, ending in the
    future and at most 7 days ahead; a 400 on ``ends_at`` otherwise."""
    if (body.ends_at is None) == (body.duration_minutes is None):
        raise ApiError(400, "give exactly one of ends_at and duration_minutes", "ends_at")
    starts = body.starts_at or now
    ends = body.ends_at or starts + timedelta(minutes=body.duration_minutes or 0)
    if ends <= starts:
        raise ApiError(400, "must be after starts_at", "ends_at")
    if ends > now + MAX_SILENCE_AHEAD:
        raise ApiError(400, "may be at most 7 days ahead", "ends_at")
    if ends <= now:
        raise ApiError(400, "is already in the past", "ends_at")
    return starts, ends


async def create_silence(request: web.Request) -> web.Response:
    """``POST /api/silences``: the author is the token's actor, never a body field."""
    principal = principal_of(request)
    now = request.app[CLOCK]()
    body = await parse_body(request, SilenceBody)
    starts, ends = silence_window(body, now)
    silence_id = uuid4()
    async with transaction(request.app[POOL]) as conn:
        await _authorize_citizen(conn, principal, body.citizen_id, "silence")
        silence = await silence_store.insert_silence(
            conn,
            silence_id,
            body.citizen_id,
            body.rule_id,
            starts,
            ends,
            principal.actor,
            body.reason,
            body.include_critical,
            now,
        )
    log.info(
        "silence_created",
        silence_id=str(silence_id),
        citizen_id=body.citizen_id,
        rule_id=body.rule_id,
        actor=principal.actor,
        starts_at=starts.isoformat(),
        ends_at=ends.isoformat(),
        include_critical=body.include_critical,
    )
    return json_response({"silence": silence_view(silence, now)}, status=201)


async def expire_silence(request: web.Request) -> web.Response:
    """``DELETE /api/silences/{silence_id}``: sets ``expired_at``; the row stays for audit.
    Expiring an already expired silence is a no-op 200 that keeps the first time."""
    principal = principal_of(request)
    now = request.app[CLOCK]()
    try:
        silence_id = UUID(request.match_info["silence_id"])
    except ValueError as exc:
        raise ApiError(400, "not a UUID", "silence_id") from exc
    async with transaction(request.app[POOL]) as conn:
        silence = await silence_store.silence_for_update(conn, silence_id)
        if silence is None:
            raise ApiError(404, "no such silence", "silence_id")
        if not (principal.is_admin or silence.author == principal.actor):
            await _authorize_citizen(conn, principal, silence.citizen_id, "expire silences of")
        changed = silence.expired_at is None
        if changed:
            silence = await silence_store.expire_silence(conn, silence_id, now)
    log.info(
        "silence_expired",
        silence_id=str(silence_id),
        citizen_id=silence.citizen_id,
        actor=principal.actor,
        changed=changed,
    )
    return json_response({"silence": silence_view(silence, now)})
