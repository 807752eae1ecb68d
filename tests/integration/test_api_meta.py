"""The API process's own health and metrics, and 404 for unknown paths, on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.api.app import create_api
from dispatcher.devstack.embedded import EmbeddedPostgres
from dispatcher.devstack.stack import apply_migrations
from dispatcher.store import db

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(scope="module")
def postgres() -> Iterator[EmbeddedPostgres]:
    """Its own PostgreSQL: one test pauses it."""
    base = Path(tempfile.mkdtemp(prefix="dsm-", dir="/tmp"))  # short path: unix socket limit
    pg = EmbeddedPostgres.start(base / "pg")
    try:
        asyncio.run(apply_migrations(pg.dsn))
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def client(postgres: EmbeddedPostgres) -> AsyncIterator[Client]:
    pool = await db.create_pool(postgres.dsn, min_size=1, max_size=2)
    try:
        async with TestClient(TestServer(create_api(pool))) as c:
            yield c
    finally:
        pool.terminate()


async def test_healthz_is_200_without_a_token_while_the_database_answers(client: Client) -> None:
    """GET /healthz needs no token and says the database answered."""
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok", "database": "ok"}


async def test_healthz_is_503_while_the_database_is_down_and_200_after(
    client: Client, postgres: EmbeddedPostgres
) -> None:
    """With PostgreSQL stopped, /healthz is 503 'unreachable' (not a hang, not a 200); once it
    is back, 200 again."""
    postgres.pause()
    try:
        resp = await client.get("/healthz")
        assert resp.status == 503
        assert (await resp.json())["database"] == "unreachable"
    finally:
        postgres.resume()
    for _ in range(50):
        resp = await client.get("/healthz")
        if resp.status == 200:
            break
        await asyncio.sleep(0.2)
    assert resp.status == 200


async def test_unknown_paths_are_404_with_or_without_a_token(client: Client) -> None:
    """A path no route matches is 404 in the JSON error shape, not 401 for want of a token;
    a wrong method on a known path is 405."""
    for headers in ({}, {"Authorization": "Bearer nonsense"}):
        resp = await client.get("/api/no-such-thing", headers=headers)
        assert resp.status == 404
        assert "error" in await resp.json()
    resp = await client.delete("/api/openapi.json")
    assert resp.status == 405


async def test_metrics_count_requests_by_route_template_not_by_id(client: Client) -> None:
    """/metrics is public and counts requests by route template and status class; a case id in
    the path never becomes a label."""
    await client.get("/api/cases/0b6c3a4e-5f2d-4c1b-9a8e-7d6f5e4c3b2a")
    await client.get("/api/no-such-thing")
    resp = await client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert (
        'dispatcher_api_requests_total{method="GET",route="/api/cases/{case_id}",status="4xx"} 1.0'
        in text
    )
    assert 'dispatcher_api_requests_total{method="GET",route="unmatched",status="4xx"} 1.0' in text
    assert "0b6c3a4e" not in text
