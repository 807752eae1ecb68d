"""``/api/roster``: everyone reads the roster (webhook secrets redacted for members); an admin
replaces it atomically.

A replace is audited as a structured log line plus ``roster_meta.version/updated_at`` (no extra
table), then the ``on_roster_change`` hook tells the roster's owner; if that hook fails the
roster is still stored, and owners also reload by version.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import structlog
import yaml
from aiohttp import web
from pydantic import ValidationError

from dispatcher.api.auth import principal_of
from dispatcher.api.context import POOL, ROSTER_HOOK
from dispatcher.api.errors import ApiError, validation_error
from dispatcher.api.responses import iso, json_response
from dispatcher.routing.roster import Roster
from dispatcher.store import roster as roster_store
from dispatcher.store.db import transaction
from dispatcher.store.roster_meta import roster_stamp

log = structlog.get_logger(__name__)

JSON_TYPES = frozenset({"application/json"})
REDACTED = "[redacted]"


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
    principal = principal_of(request)
    async with request.app[POOL].acquire() as conn:
        roster = await roster_store.load_roster(conn)
        stamp = await roster_stamp(conn)
    if roster is None or stamp is None:
        raise ApiError(404, "no roster loaded")
    return json_response(
        {
            "version": stamp.version,
            "updated_at": iso(stamp.updated_at),
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
        raise validation_error(exc) from exc


async def put_roster(request: web.Request) -> web.Response:
    """``PUT /api/roster`` (admin): replace the roster atomically, then tell the owner."""
    principal = principal_of(request)
    if not principal.is_admin:
        raise ApiError(403, "only an admin token may change the roster")
    text = await request.text()
    if not text.strip():
        raise ApiError(400, "a roster body (JSON or YAML) is required", "$")
    roster = parse_roster_body(text, request.content_type)
    async with transaction(request.app[POOL]) as conn:
        await roster_store.store_roster(conn, roster)
        stamp = await roster_stamp(conn)
    assert stamp is not None  # store_roster just wrote the roster_meta row
    log.info(
        "roster_replaced",
        actor=principal.actor,
        version=stamp.version,
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
            "version": stamp.version,
            "updated_at": iso(stamp.updated_at),
            "teams": len(roster.teams),
            "staff": len(roster.staff),
        }
    )
