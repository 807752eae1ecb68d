"""The API process's own ``/healthz`` and ``/metrics`` (no token), and its request metrics.

``/healthz`` is 200 only when PostgreSQL answers ``SELECT 1`` within ``HEALTH_TIMEOUT_S``: an
API that cannot read cases cannot serve an acute team, and must look that way to a probe.
"""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.api.context import METRICS, POOL
from dispatcher.api.errors import Handler
from dispatcher.api.responses import json_response
from dispatcher.store import db

HEALTH_TIMEOUT_S = 2.0
UNMATCHED = "unmatched"  # the route label of a request no route matched (404/405)
log = structlog.get_logger(__name__)


async def healthz(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        await db.ping(request.app[POOL], timeout_s=HEALTH_TIMEOUT_S)
    except Exception as exc:  # a timeout, a refused connection: the database does not answer
        log.warning("api_database_probe_failed", error=type(exc).__name__)
        metrics.database_up.set(0)
        return json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    metrics.database_up.set(1)
    return json_response({"status": "ok", "database": "ok"})


async def metrics_page(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by its route template (bounded), method and status class."""
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].observe(route, request.method, status, time.perf_counter() - started)
