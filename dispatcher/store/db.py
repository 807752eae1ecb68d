"""Connections: the one place that opens PostgreSQL connections, pools and transactions.

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
Record = asyncpg.Record
# A single statement can run on either: a pool lends a connection for just that statement.
Executor = asyncpg.Pool | asyncpg.Connection


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


@asynccontextmanager
async def transaction(db: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside one transaction: committed on exit, rolled back on error.

    Given a pool, a connection is borrowed for the transaction; given a connection (a CLI's
    short-lived one), the transaction runs on it. The shells open their unit of work with this
    and hand the connection to store functions, which never open or commit one themselves."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


async def ping(pool: asyncpg.Pool, timeout_s: float) -> None:
    """``SELECT 1`` within ``timeout_s``: raises when the database is unreachable or frozen."""
    await pool.fetchval("SELECT 1", timeout=timeout_s)
