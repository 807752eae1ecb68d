"""Connections: the one place that opens PostgreSQL connections and pools.

Everything outside ``store/`` asks for a pool or connection here and hands it to a store module's
functions; only ``store/`` and the composition roots name ``asyncpg``. Pool sizes come from
``Settings`` (``DISPATCHER_DB_POOL_MIN`` / ``DISPATCHER_DB_POOL_MAX``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

Pool = asyncpg.Pool
Connection = asyncpg.Connection


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool of ``min_size``..``max_size`` connections to ``dsn``."""
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None  # asyncpg types the pool as optional; create_pool never returns None
    return pool


@asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One short-lived connection (CLI commands, the reconciler), closed on exit."""
    conn = await asyncpg.connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
