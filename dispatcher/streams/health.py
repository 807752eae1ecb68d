"""The worker's web pages: ``/healthz`` (200 only while consuming) and ``/metrics``."""

from __future__ import annotations

from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.streams.runtime import Runtime


def install(app: faust.App, runtime: Runtime) -> None:
    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
        consuming = bool(assigned) and not app.rebalancing
        body = {
            "status": "ok" if consuming else "unavailable",
            "consuming": consuming,
            "assigned_partitions": len(assigned),
            "rebalancing": bool(app.rebalancing),
            "batches": runtime.batches,
        }
        return web.json(body, status=200 if consuming else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        body = generate_latest(runtime.metrics.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
