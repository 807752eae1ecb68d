"""``/api/cases``: acute teams list, read, acknowledge and resolve their cases.

* **Every change goes through the pure lifecycle** (``dispatcher.cases.lifecycle``) inside one
  PostgreSQL transaction that holds the case row lock, exactly as the case manager does, so an
  acknowledgement racing a deadline re-escalation is serialised by the database, not by luck.
* **Acknowledging or resolving cancels the case's pending webhook deliveries** in the same
  transaction: a nurse who has the case in hand must not be paged for it again a second later.
* **Authorisation is by team**: a member token sees and acts on cases whose current
  ``team_id`` is its team (403 otherwise, and a list is always scoped to it); an admin token acts
  on all. Case changes are ``case_events`` rows under the token's actor.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
import structlog
from aiohttp import web

from dispatcher.api.auth import Principal, principal_of
from dispatcher.api.bodies import parse_body
from dispatcher.api.context import CLOCK, POOL
from dispatcher.api.errors import ApiError
from dispatcher.api.models import ResolveBody
from dispatcher.api.responses import iso, json_response
from dispatcher.cases.lifecycle import (
    Case,
    CaseDecision,
    CaseEvent,
    TransitionError,
    acknowledge,
    resolve,
)
from dispatcher.contract.vocab import CaseState
from dispatcher.store import case_deliveries, case_views
from dispatcher.store import cases as store
from dispatcher.store.db import transaction

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# "open" as a filter means every state but resolved; "all" means no filter.
OPEN_FILTER = "open"
ALL_FILTER = "all"
CASE_STATE_FILTERS = frozenset({OPEN_FILTER, ALL_FILTER, *(s.value for s in CaseState)})


def encode_cursor(opened_at: datetime, case_id: UUID) -> str:
    """The opaque keyset cursor of the last case on a page."""
    raw = orjson.dumps([opened_at.isoformat(), str(case_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (opened_at, case_id) of a cursor from ``encode_cursor``; a 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, cid = orjson.loads(raw)
        opened = datetime.fromisoformat(at)
        if opened.tzinfo is None:
            raise ValueError("naive time")
        return opened, UUID(cid)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ApiError(400, "not a cursor returned by this API", "cursor") from exc


def _limit(query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError(400, "must be an integer", "limit") from exc
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, f"must be between 1 and {MAX_LIMIT}", "limit")
    return value


def _case_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["case_id"])
    except ValueError as exc:
        raise ApiError(400, "not a UUID", "case_id") from exc


def _authorize_case(principal: Principal, case: Case) -> None:
    if not principal.may_act_on_team(case.team_id):
        raise ApiError(403, "the case belongs to another team")


async def list_cases(request: web.Request) -> web.Response:
    """``GET /api/cases``: newest first, keyset-paged on (opened_at, case_id)."""
    principal = principal_of(request)
    q = request.query
    state = q.get("state", OPEN_FILTER)
    if state not in CASE_STATE_FILTERS:
        raise ApiError(400, f"must be one of {sorted(CASE_STATE_FILTERS)}", "state")
    team = q.get("team") or None
    if not principal.is_admin:
        if principal.team_id is None:  # never "no filter": that would be every team
            raise ApiError(403, "this member token has no team")
        if team is not None and team != principal.team_id:
            raise ApiError(403, "a member may list only their own team's cases", "team")
        team = principal.team_id
    limit = _limit(q)
    before = decode_cursor(q["cursor"]) if "cursor" in q else None
    found = await case_views.list_cases(
        request.app[POOL],
        limit=limit + 1,
        team_id=team,
        state=CaseState(state) if state not in (OPEN_FILTER, ALL_FILTER) else None,
        unresolved_only=state == OPEN_FILTER,
        before=before,
    )
    cases = found[:limit]
    next_cursor = (
        encode_cursor(cases[-1].opened_at, cases[-1].case_id) if len(found) > limit else None
    )
    return json_response(
        {"cases": [store.case_to_dict(c) for c in cases], "next_cursor": next_cursor}
    )


def _escalation_view(x: case_views.CaseEscalation) -> dict[str, Any]:
    return {
        "escalation_id": str(x.escalation_id),
        "action": x.action,
        "silence_id": str(x.silence_id) if x.silence_id else None,
        "received_at": iso(x.received_at),
        "severity": x.severity,
        "created_at": iso(x.created_at),
        "reasons": x.reasons or [],
        "news2": x.news2,
    }


def _delivery_view(d: case_deliveries.CaseDelivery) -> dict[str, Any]:
    return {
        "delivery_id": str(d.delivery_id),
        "page_seq": d.page_seq,
        "team_id": d.team_id,
        "channel": d.channel,
        "state": d.state.value,
        "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at),
        "deadline_at": iso(d.deadline_at),
        "created_at": iso(d.created_at),
        "finished_at": iso(d.finished_at),
        "last_error": d.last_error,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "started_at": iso(a.started_at),
                "duration_ms": a.duration_ms,
                "status_code": a.status_code,
                "error": a.error,
                "outcome": a.outcome,
            }
            for a in d.attempt_log
        ],
    }


async def get_case_detail(request: web.Request) -> web.Response:
    """``GET /api/cases/{case_id}``: the case with history, escalations and deliveries."""
    principal = principal_of(request)
    case_id = _case_id(request)
    async with request.app[POOL].acquire() as conn:
        case = await store.get_case(conn, case_id)
        if case is None:
            raise ApiError(404, "no such case", "case_id")
        _authorize_case(principal, case)
        history = await case_views.case_history(conn, case_id)
        escalations = await case_views.case_escalations(conn, case_id)
        deliveries = await case_deliveries.case_deliveries(conn, case_id)
    return json_response(
        {
            "case": store.case_to_dict(case),
            "history": [
                {
                    "id": e.id,
                    "at": iso(e.at),
                    "actor": e.actor,
                    "action": e.action,
                    "detail": e.detail,
                }
                for e in history
            ],
            "escalations": [_escalation_view(x) for x in escalations],
            "deliveries": [_delivery_view(d) for d in deliveries],
        }
    )


Transition = Callable[[Case, str, datetime], CaseDecision]


async def _apply_transition(
    request: web.Request, transition: Transition, verb: str, log_event: str, **log_fields: str
) -> web.Response:
    """Lock the case, check the team, apply a lifecycle transition, cancel pending deliveries
    and record everything as ``case_events`` under the caller's actor, in one transaction."""
    principal = principal_of(request)
    case_id = _case_id(request)
    now = request.app[CLOCK]()
    async with transaction(request.app[POOL]) as conn:
        case = await store.case_for_update(conn, case_id)
        if case is None:
            raise ApiError(404, "no such case", "case_id")
        _authorize_case(principal, case)
        try:
            decision = transition(case, principal.actor, now)
        except TransitionError as exc:
            raise ApiError(409, f"{exc}; cannot {verb} it") from exc
        assert decision.case is not None  # acknowledge/resolve always return the case
        events = list(decision.events)
        if events:
            await store.save_case(conn, decision.case)
        cancelled = await case_deliveries.cancel_pending_deliveries(conn, case_id)
        cancelled_ids = sorted(str(d) for d in cancelled)
        if cancelled_ids:
            events.append(
                CaseEvent(
                    principal.actor,
                    "deliveries_cancelled",
                    {"delivery_ids": cancelled_ids, "by": decision.action},
                )
            )
        await store.append_events(conn, case_id, events, now)
    log.info(
        log_event,
        case_id=str(case_id),
        actor=principal.actor,
        changed=bool(decision.events),
        cancelled_deliveries=len(cancelled_ids),
        **log_fields,
    )
    return json_response(
        {"case": store.case_to_dict(decision.case), "cancelled_deliveries": cancelled_ids}
    )


async def ack_case(request: web.Request) -> web.Response:
    """``POST /api/cases/{case_id}/ack``: idempotent; a resolved case is a 409."""
    return await _apply_transition(request, acknowledge, "acknowledge", "case_acknowledged_via_api")


async def resolve_case(request: web.Request) -> web.Response:
    """``POST /api/cases/{case_id}/resolve`` with an outcome and an optional note."""
    body = await parse_body(request, ResolveBody)

    def transition(case: Case, actor: str, now: datetime) -> CaseDecision:
        return resolve(case, actor, body.outcome, now, body.note)

    return await _apply_transition(
        request, transition, "resolve", "case_resolved_via_api", outcome=body.outcome
    )
