"""The API process's composition root: everything ``dispatcher api`` serves, built from
``Settings`` in one place.

Built eagerly, before the port opens: a wrong DSN fails the start, not the first request.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.api.app import create_api
from dispatcher.config import Settings
from dispatcher.store.db import create_pool

log = structlog.get_logger(__name__)


async def build_api(settings: Settings) -> web.Application:
    """The API on its own pool (``api_pool_min``..``api_pool_max``), closed on app cleanup."""
    pool = await create_pool(
        settings.dsn(), min_size=settings.api_pool_min, max_size=settings.api_pool_max
    )
    app = create_api(pool)

    async def close_pool(_app: web.Application) -> None:
        await pool.close()

    app.on_cleanup.append(close_pool)
    log.info("api_listening", host=settings.web_host, port=settings.api_port)
    return app
