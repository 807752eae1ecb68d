"""The HTTP API: acute teams list, read, acknowledge and resolve their cases; integrations
manage silences and the roster.

Why it looks like this:

* **Every change goes through the pure lifecycle** (``dispatcher.cases.lifecycle``) inside one
  PostgreSQL transaction that holds the case row lock, exactly as the case manager does, so an
  acknowledgement racing a deadline re-escalation is serialised by the database, not by luck.
* **Acknowledging or resolving cancels the case's pending webhook deliveries** in the same
  transaction: a nurse who has the case in hand must not be paged for it again a second later.
* **Authorisation is by team**: a member token sees and acts on cases whose current
  ``team_id`` is its team (403 otherwise, and a list is always scoped to it); an admin token acts
  on all. Silences follow the citizen: a member may silence or un-silence only citizens that
  have a case on their team.
* **Audit**: case changes are ``case_events`` rows with the token's actor; silence and roster
  changes are structured log lines plus the ``silences.author/created_at/expired_at`` columns and
  ``roster_meta.version/updated_at`` (no extra table). Log lines carry ids, never notes, reasons
  or other free text.
* **Errors** are always ``{"error": {"field"?: ..., "reason": ...}}`` with a fitting status.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any, TypeVar
from uuid import UUID, uuid4

import asyncpg
import orjson
import structlog
import yaml
from aiohttp import web
from pydantic import BaseModel, ValidationError

from dispatcher.api import tokens
from dispatcher.api.models import MAX_SILENCE_MINUTES, ResolveBody, SilenceBody
from dispatcher.cases.lifecycle import (
    Case,
    CaseDecision,
    CaseEvent,
    TransitionError,
    acknowledge,
    resolve,
)
from dispatcher.contract.vocab import CaseState
from dispatcher.errors import PermanentError
from dispatcher.routing.roster import Roster
from dispatcher.store import cases as store

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]
RosterHook = Callable[[], Awaitable[None] | None]

POOL: web.AppKey[asyncpg.Pool] = web.AppKey("pool")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
ROSTER_HOOK: web.AppKey[RosterHook | None] = web.AppKey("on_roster_change")
PRINCIPAL: web.RequestKey[tokens.Principal] = web.RequestKey("principal")
M = TypeVar("M", bound=BaseModel)

PUBLIC_PATHS = frozenset({"/api/openapi.json"})
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
SILENCE_LIST_LIMIT = 500
TEAM_CITIZENS = "SELECT citizen_id FROM cases WHERE team_id ="
MAX_SILENCE_AHEAD = timedelta(minutes=MAX_SILENCE_MINUTES)
MAX_BODY_BYTES = 1024 * 1024
CASE_STATE_FILTERS = frozenset({"open", "all", *(s.value for s in CaseState)})
JSON_TYPES = frozenset({"application/json"})
REDACTED = "[redacted]"


def utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Errors and JSON
# ---------------------------------------------------------------------------------------------


class ApiError(PermanentError):
    """An error the client can act on: status, reason and, when one is to blame, the field."""

    def __init__(
        self,
        status: int,
        reason: str,
        field: str | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.errors = errors

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"reason": self.reason}
        if self.field is not None:
            err["field"] = self.field
        if self.errors and len(self.errors) > 1:
            err["errors"] = self.errors
        return {"error": err}


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as (dotted field path, message); "$" for whole-object rules."""
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "$", "reason": e["msg"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def _validation_error(exc: ValidationError) -> ApiError:
    errors = _field_errors(exc)
    first = errors[0]
    return ApiError(400, first["reason"], first["field"], errors)


async def _json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        raise ApiError(400, "a JSON body is required", "$")
    raw = await request.read()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "body is not valid JSON", "$") from exc


async def _parse_body(request: web.Request, model: type[M]) -> M:
    data = await _json_body(request)
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object", "$")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonb(value: Any) -> Any:
    """asyncpg returns jsonb as text unless a codec is set; the pool is the caller's."""
    return json.loads(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# Middlewares: JSON errors, bearer-token authentication
# ---------------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the JSON error shape; never echo free text into the log."""
    try:
        return await handler(request)
    except ApiError as exc:
        resp = json_response(exc.body(), status=exc.status)
        if exc.status == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="dispatcher"'
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_response({"error": {"reason": exc.reason.lower()}}, status=exc.status)
    except Exception as exc:
        # The exception message may quote row values; log only its type and the route.
        log.error(
            "api_internal_error", error=type(exc).__name__, path=request.path, method=request.method
        )
        return json_response({"error": {"reason": "internal error"}}, status=500)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve ``Authorization: Bearer <token>`` to a principal; 401 when absent or dead."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token")
    principal = await tokens.lookup(request.app[POOL], token.strip())
    if principal is None:
        raise ApiError(401, "unknown or revoked token")
    request[PRINCIPAL] = principal
    return await handler(request)


def _principal(request: web.Request) -> tokens.Principal:
    return request[PRINCIPAL]


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


def _encode_cursor(opened_at: datetime, case_id: UUID) -> str:
    raw = orjson.dumps([opened_at.isoformat(), str(case_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
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


def _authorize_case(principal: tokens.Principal, case: Case) -> None:
    if not principal.may_act_on_team(case.team_id):
        raise ApiError(403, "the case belongs to another team")


async def list_cases(request: web.Request) -> web.Response:
    """``GET /api/cases``: newest first, keyset-paged on (opened_at, case_id)."""
    principal = _principal(request)
    q = request.query
    state = q.get("state", "open")
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

    where: list[str] = []
    args: list[Any] = []
    if team is not None:
        args.append(team)
        where.append(f"team_id = ${len(args)}")
    if state == "open":
        where.append("state <> 'resolved'")
    elif state != "all":
        args.append(state)
        where.append(f"state = ${len(args)}")
    if "cursor" in q:
        opened, cid = _decode_cursor(q["cursor"])
        args.extend([opened, cid])
        where.append(f"(opened_at, case_id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    sql = (
        f"SELECT {store.CASE_COLUMNS} FROM cases"  # noqa: S608 - constants only
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY opened_at DESC, case_id DESC LIMIT ${len(args)}"
    )
    rows = await request.app[POOL].fetch(sql, *args)
    cases = [store.case_from_row(r) for r in rows[:limit]]
    next_cursor = (
        _encode_cursor(cases[-1].opened_at, cases[-1].case_id) if len(rows) > limit else None
    )
    return json_response(
        {"cases": [store.case_to_dict(c) for c in cases], "next_cursor": next_cursor}
    )


async def get_case_detail(request: web.Request) -> web.Response:
    """``GET /api/cases/{case_id}``: the case with history, escalations and deliveries."""
    principal = _principal(request)
    case_id = _case_id(request)
    pool = request.app[POOL]
    async with pool.acquire() as conn:
        case = await store.get_case(conn, case_id)
        if case is None:
            raise ApiError(404, "no such case", "case_id")
        _authorize_case(principal, case)
        events = await conn.fetch(
            "SELECT id, at, actor, action, detail FROM case_events WHERE case_id = $1 ORDER BY id",
            case_id,
        )
        escalations = await conn.fetch(
            """SELECT ce.escalation_id, ce.action, ce.silence_id, ce.received_at,
                      e.severity, e.created_at, e.payload -> 'reasons' AS reasons,
                      e.payload -> 'news2' AS news2
                 FROM case_escalations ce
                 LEFT JOIN escalations e ON e.escalation_id = ce.escalation_id
                WHERE ce.case_id = $1
                ORDER BY ce.received_at, ce.escalation_id""",
            case_id,
        )
        deliveries = await conn.fetch(
            """SELECT delivery_id, page_seq, team_id, channel, state, attempts,
                      next_attempt_at, deadline_at, created_at, finished_at, last_error
                 FROM deliveries WHERE case_id = $1 ORDER BY page_seq, created_at""",
            case_id,
        )
        attempts = await conn.fetch(
            """SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, a.status_code,
                      a.error, a.outcome
                 FROM delivery_attempts a JOIN deliveries d ON d.delivery_id = a.delivery_id
                WHERE d.case_id = $1 ORDER BY a.delivery_id, a.attempt""",
            case_id,
        )
    by_delivery: dict[UUID, list[dict[str, Any]]] = {}
    for a in attempts:
        by_delivery.setdefault(a["delivery_id"], []).append(
            {
                "attempt": a["attempt"],
                "started_at": _iso(a["started_at"]),
                "duration_ms": a["duration_ms"],
                "status_code": a["status_code"],
                "error": a["error"],
                "outcome": a["outcome"],
            }
        )
    return json_response(
        {
            "case": store.case_to_dict(case),
            "history": [
                {
                    "id": e["id"],
                    "at": _iso(e["at"]),
                    "actor": e["actor"],
                    "action": e["action"],
                    "detail": _jsonb(e["detail"]),
                }
                for e in events
            ],
            "escalations": [
                {
                    "escalation_id": str(x["escalation_id"]),
                    "action": x["action"],
                    "silence_id": str(x["silence_id"]) if x["silence_id"] else None,
                    "received_at": _iso(x["received_at"]),
                    "severity": x["severity"],
                    "created_at": _iso(x["created_at"]),
                    "reasons": _jsonb(x["reasons"]) or [],
                    "news2": _jsonb(x["news2"]),
                }
                for x in escalations
            ],
            "deliveries": [
                {
                    "delivery_id": str(d["delivery_id"]),
                    "page_seq": d["page_seq"],
                    "team_id": d["team_id"],
                    "channel": d["channel"],
                    "state": d["state"],
                    "attempts": d["attempts"],
                    "next_attempt_at": _iso(d["next_attempt_at"]),
                    "deadline_at": _iso(d["deadline_at"]),
                    "created_at": _iso(d["created_at"]),
                    "finished_at": _iso(d["finished_at"]),
                    "last_error": d["last_error"],
                    "attempt_log": by_delivery.get(d["delivery_id"], []),
                }
                for d in deliveries
            ],
        }
    )


Transition = Callable[[Case, str, datetime], CaseDecision]


async def _apply_transition(
    request: web.Request, transition: Transition, verb: str, log_event: str, **log_fields: str
) -> web.Response:
    """Lock the case, check the team, apply a lifecycle transition, cancel pending deliveries
    and record everything as ``case_events`` under the caller's actor, in one transaction."""
    principal = _principal(request)
    case_id = _case_id(request)
    now = request.app[CLOCK]()
    async with request.app[POOL].acquire() as conn, conn.transaction():
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
        cancelled = await conn.fetch(
            "UPDATE deliveries SET state = 'cancelled', finished_at = now() "
            "WHERE case_id = $1 AND state = 'pending' RETURNING delivery_id",
            case_id,
        )
        cancelled_ids = sorted(str(r["delivery_id"]) for r in cancelled)
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
    body = await _parse_body(request, ResolveBody)

    def transition(case: Case, actor: str, now: datetime) -> CaseDecision:
        return resolve(case, actor, body.outcome, now, body.note)

    return await _apply_transition(
        request, transition, "resolve", "case_resolved_via_api", outcome=body.outcome
    )


# ---------------------------------------------------------------------------------------------
# Silences
# ---------------------------------------------------------------------------------------------

SILENCE_COLUMNS = (
    "silence_id, citizen_id, rule_id, starts_at, ends_at, author, reason, include_critical,"
    " created_at, expired_at"
)


def _silence_dict(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "silence_id": str(row["silence_id"]),
        "citizen_id": row["citizen_id"],
        "rule_id": row["rule_id"],
        "starts_at": _iso(row["starts_at"]),
        "ends_at": _iso(row["ends_at"]),
        "author": row["author"],
        "reason": row["reason"],
        "include_critical": row["include_critical"],
        "created_at": _iso(row["created_at"]),
        "expired_at": _iso(row["expired_at"]),
        "active": row["expired_at"] is None and row["starts_at"] <= now < row["ends_at"],
    }


async def _citizen_on_team(conn: Any, citizen_id: str, team_id: str | None) -> bool:
    if team_id is None:
        return False
    found = await conn.fetchval(
        "SELECT 1 FROM cases WHERE citizen_id = $1 AND team_id = $2 LIMIT 1", citizen_id, team_id
    )
    return found is not None


async def _authorize_citizen(
    conn: Any, principal: tokens.Principal, citizen_id: str, what: str
) -> None:
    if principal.is_admin:
        return
    if not await _citizen_on_team(conn, citizen_id, principal.team_id):
        raise ApiError(
            403, f"a member may {what} only citizens with a case on their team", "citizen_id"
        )


async def list_silences(request: web.Request) -> web.Response:
    """``GET /api/silences``: active ones by default (``state=all`` adds ended and expired)."""
    principal = _principal(request)
    now = request.app[CLOCK]()
    citizen_id = request.query.get("citizen_id") or None
    state = request.query.get("state", "active")
    if state not in ("active", "all"):
        raise ApiError(400, "must be 'active' or 'all'", "state")
    where: list[str] = []
    args: list[Any] = []
    async with request.app[POOL].acquire() as conn:
        if citizen_id is not None:
            await _authorize_citizen(conn, principal, citizen_id, "see silences of")
            args.append(citizen_id)
            where.append(f"citizen_id = ${len(args)}")
        elif not principal.is_admin:
            args.append(principal.team_id)
            where.append(f"citizen_id IN ({TEAM_CITIZENS} ${len(args)})")
        if state == "active":
            args.append(now)
            where.append(f"expired_at IS NULL AND ends_at > ${len(args)}")
        args.append(SILENCE_LIST_LIMIT)
        rows = await conn.fetch(
            f"SELECT {SILENCE_COLUMNS} FROM silences"  # noqa: S608 - constants only
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY created_at DESC, silence_id LIMIT ${len(args)}",
            *args,
        )
    return json_response({"silences": [_silence_dict(r, now) for r in rows]})


def _silence_window(body: SilenceBody, now: datetime) -> tuple[datetime, datetime]:
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
    principal = _principal(request)
    now = request.app[CLOCK]()
    body = await _parse_body(request, SilenceBody)
    starts, ends = _silence_window(body, now)
    silence_id = uuid4()
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await _authorize_citizen(conn, principal, body.citizen_id, "silence")
        row = await conn.fetchrow(
            f"INSERT INTO silences ({SILENCE_COLUMNS}) "  # noqa: S608 - constants only
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL) "
            f"RETURNING {SILENCE_COLUMNS}",
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
    return json_response({"silence": _silence_dict(row, now)}, status=201)


async def expire_silence(request: web.Request) -> web.Response:
    """``DELETE /api/silences/{silence_id}``: sets ``expired_at``; the row stays for audit.
    Expiring an already expired silence is a no-op 200 that keeps the first time."""
    principal = _principal(request)
    now = request.app[CLOCK]()
    try:
        silence_id = UUID(request.match_info["silence_id"])
    except ValueError as exc:
        raise ApiError(400, "not a UUID", "silence_id") from exc
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {SILENCE_COLUMNS} FROM silences WHERE silence_id = $1 FOR UPDATE",  # noqa: S608 - constants only
            silence_id,
        )
        if row is None:
            raise ApiError(404, "no such silence", "silence_id")
        if not (principal.is_admin or row["author"] == principal.actor):
            await _authorize_citizen(conn, principal, row["citizen_id"], "expire silences of")
        changed = row["expired_at"] is None
        if changed:
            row = await conn.fetchrow(
                f"UPDATE silences SET expired_at = $2 WHERE silence_id = $1 "  # noqa: S608 - constants only
                f"RETURNING {SILENCE_COLUMNS}",
                silence_id,
                now,
            )
    log.info(
        "silence_expired",
        silence_id=str(silence_id),
        citizen_id=row["citizen_id"],
        actor=principal.actor,
        changed=changed,
    )
    return json_response({"silence": _silence_dict(row, now)})


# ---------------------------------------------------------------------------------------------
# Roster
# ---------------------------------------------------------------------------------------------


def roster_view(roster: Roster, show_secrets: bool) -> dict[str, Any]:
    """The roster as JSON; webhook secrets are redacted unless the caller may hold them."""
    data: dict[str, Any] = roster.model_dump(mode="json")
    if not show_secrets:
        for team in data["teams"]:
            hook = (team.get("channels") or {}).get("webhook")
            if hook is not None:
                hook["secret"] = REDACTED
    return data


async def get_roster(request: web.Request) -> web.Response:
    """``GET /api/roster``: members get webhook secrets redacted; admins see them to edit."""
    principal = _principal(request)
    async with request.app[POOL].acquire() as conn:
        roster = await store.load_roster(conn)
        meta = await conn.fetchrow("SELECT version, updated_at FROM roster_meta")
    if roster is None or meta is None:
        raise ApiError(404, "no roster loaded")
    return json_response(
        {
            "version": meta["version"],
            "updated_at": _iso(meta["updated_at"]),
            "roster": roster_view(roster, show_secrets=principal.is_admin),
        }
    )


def parse_roster_body(text: str, content_type: str) -> Roster:
    """JSON or YAML into a validated roster; the ApiError names the first bad field."""
    try:
        data = json.loads(text) if content_type in JSON_TYPES else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if content_type in JSON_TYPES else "YAML"
        raise ApiError(400, f"body is not valid {kind}", "$") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "the roster must be an object with doctor_team, teams, staff", "$")
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc) from exc


async def put_roster(request: web.Request) -> web.Response:
    """``PUT /api/roster`` (admin): replace the roster atomically, then tell the owner."""
    principal = _principal(request)
    if not principal.is_admin:
        raise ApiError(403, "only an admin token may change the roster")
    text = await request.text()
    if not text.strip():
        raise ApiError(400, "a roster body (JSON or YAML) is required", "$")
    roster = parse_roster_body(text, request.content_type)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await store.store_roster(conn, roster)
        meta = await conn.fetchrow("SELECT version, updated_at FROM roster_meta")
    log.info(
        "roster_replaced",
        actor=principal.actor,
        version=meta["version"],
        teams=len(roster.teams),
        staff=len(roster.staff),
    )
    hook = request.app[ROSTER_HOOK]
    if hook is not None:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            # The roster is stored; owners also reload by version, so this is not fatal.
            log.warning("roster_change_hook_failed", error=type(exc).__name__)
    return json_response(
        {
            "version": meta["version"],
            "updated_at": _iso(meta["updated_at"]),
            "teams": len(roster.teams),
            "staff": len(roster.staff),
        }
    )


# ---------------------------------------------------------------------------------------------
# OpenAPI and the application
# ---------------------------------------------------------------------------------------------


@cache
def openapi_spec() -> dict[str, Any]:
    """The OpenAPI 3.1 description, kept as YAML next to this module."""
    text = (resources.files("dispatcher.api") / "openapi.yaml").read_text(encoding="utf-8")
    spec: dict[str, Any] = yaml.safe_load(text)
    return spec


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi_spec())


def create_api(
    pool: asyncpg.Pool,
    clock: Clock = utc_now,
    on_roster_change: RosterHook | None = None,
) -> web.Application:
    """The API application on ``pool``. ``clock`` is injected so tests control time;
    ``on_roster_change`` runs after a roster PUT commits (e.g. to drop a cached roster)."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[POOL] = pool
    app[CLOCK] = clock
    app[ROSTER_HOOK] = on_roster_change
    app.router.add_get("/api/cases", list_cases, allow_head=False)
    app.router.add_get("/api/cases/{case_id}", get_case_detail, allow_head=False)
    app.router.add_post("/api/cases/{case_id}/ack", ack_case)
    app.router.add_post("/api/cases/{case_id}/resolve", resolve_case)
    app.router.add_get("/api/silences", list_silences, allow_head=False)
    app.router.add_post("/api/silences", create_silence)
    app.router.add_delete("/api/silences/{silence_id}", expire_silence)
    app.router.add_get("/api/roster", get_roster, allow_head=False)
    app.router.add_put("/api/roster", put_roster)
    app.router.add_get("/api/openapi.json", get_openapi, allow_head=False)
    return app
