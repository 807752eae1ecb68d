"""The HTTP API application: its routes and middlewares, nothing else.

Handlers live one module per resource (``cases``, ``silences``, ``roster``, ``openapi``);
errors always have the shape ``{"error": {"field"?: ..., "reason": ...}}`` (``errors``), and
every route but the OpenAPI description, ``/healthz`` and ``/metrics`` needs a bearer token
(``auth``); a path no route matches is 404 (405 for a wrong method), token or not. The process that
serves it is built by ``api.server.build_api``.
"""

from __future__ import annotations

from aiohttp import web

from dispatcher.api import cases, meta, openapi, roster, silences
from dispatcher.api.auth import auth_middleware
from dispatcher.api.context import CLOCK, METRICS, POOL, ROSTER_HOOK, RosterHook
from dispatcher.api.errors import error_middleware
from dispatcher.api.meta import metrics_middleware
from dispatcher.clock import Clock, utcnow
from dispatcher.observability.metrics import ApiMetrics
from dispatcher.store.db import Pool

MAX_BODY_BYTES = 1024 * 1024


def create_api(
    pool: Pool,
    clock: Clock = utcnow,
    on_roster_change: RosterHook | None = None,
    metrics: ApiMetrics | None = None,
) -> web.Application:
    """The API application on ``pool``. ``clock`` is injected so tests control time;
    ``on_roster_change`` runs after a roster PUT commits (e.g. to drop a cached roster)."""
    app = web.Application(
        middlewares=[metrics_middleware, error_middleware, auth_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[POOL] = pool
    app[CLOCK] = clock
    app[ROSTER_HOOK] = on_roster_change
    app[METRICS] = metrics or ApiMetrics()
    app.router.add_get("/api/cases", cases.list_cases, allow_head=False)
    app.router.add_get("/api/cases/{case_id}", cases.get_case_detail, allow_head=False)
    app.router.add_post("/api/cases/{case_id}/ack", cases.ack_case)
    app.router.add_post("/api/cases/{case_id}/resolve", cases.resolve_case)
    app.router.add_get("/api/silences", silences.list_silences, allow_head=False)
    app.router.add_post("/api/silences", silences.create_silence)
    app.router.add_delete("/api/silences/{silence_id}", silences.expire_silence)
    app.router.add_get("/api/roster", roster.get_roster, allow_head=False)
    app.router.add_put("/api/roster", roster.put_roster)
    app.router.add_get("/api/openapi.json", openapi.get_openapi, allow_head=False)
    app.router.add_get("/healthz", meta.healthz, allow_head=False)
    app.router.add_get("/metrics", meta.metrics_page, allow_head=False)
    return app
