"""Integration fixtures: one real stack (broker + PostgreSQL + worker) per test session.

The broker is the embedded Tansu unless ``DISPATCHER_KAFKA_BOOTSTRAP`` names one; PostgreSQL is
the embedded pgserver unless ``DISPATCHER_DATABASE_URL`` names one. Nothing here is a mock.

One PostgreSQL serves the session: tests that need a database of their own (the API, webhook
delivery) get a fresh migrated *schema* on it (``schema_dsn``, ``pool``), not another server.
Only fault tests that stop or freeze PostgreSQL start their own.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from dispatcher.config import Settings
from dispatcher.contract.topics import DEAD_LETTER, ESCALATIONS
from dispatcher.devstack.stack import Stack, WorkerProcess, apply_migrations, seed_roster_text
from dispatcher.store import db as store_db

PARTITIONS = 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    # Short path: pgserver puts its unix socket in here (107-byte limit).
    with tempfile.TemporaryDirectory(prefix="dsp-", dir="/tmp") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def stack(run_dir: Path) -> Iterator[Stack]:
    settings = Settings.from_env(partitions=PARTITIONS, data_dir=str(run_dir))
    s = Stack.start_infra(settings, run_dir, seed_roster_text())
    try:
        yield s
    finally:
        s.stop()


def _with_search_path(dsn: str, schema: str) -> str:
    parts = urlsplit(dsn)
    query = [*parse_qsl(parts.query), ("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _execute(dsn: str, sql: str) -> None:
    async with store_db.connection(dsn) as conn:
        await conn.execute(sql)


@pytest.fixture(scope="module")
def schema_dsn(stack: Stack) -> Iterator[str]:
    """A fresh schema with every migration applied, on the session's PostgreSQL; dropped after
    the module. Its DSN pins ``search_path``, so the module's tables are its own."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    scoped = _with_search_path(stack.dsn, schema)
    asyncio.run(_execute(stack.dsn, f'CREATE SCHEMA "{schema}"'))
    try:
        asyncio.run(apply_migrations(scoped))
        yield scoped
    finally:
        asyncio.run(_execute(stack.dsn, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture
async def pool(schema_dsn: str) -> AsyncIterator[store_db.Pool]:
    """A small pool on the module's schema."""
    p = await store_db.create_pool(schema_dsn, min_size=1, max_size=8)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
def worker(stack: Stack) -> WorkerProcess:
    """A live, healthy worker of the session stack (a test may have killed the previous one)."""
    alive = [w for w in stack.workers if w.alive()]
    w = alive[0] if alive else stack.start_worker(name=f"worker-{len(stack.workers) + 1}")
    stack.wait_healthy(w)
    return w


@pytest.fixture(scope="session")
def producer(stack: Stack) -> Iterator[KafkaProducer]:
    p = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    yield p
    p.close(5)


Publish = Callable[[str, dict[str, Any] | bytes, str | None], None]


@pytest.fixture
def publish(producer: KafkaProducer) -> Publish:
    """Publish JSON (or raw bytes) keyed by citizen id, as a hospital would, and flush."""

    def _publish(topic: str, body: dict[str, Any] | bytes, key: str | None = None) -> None:
        value = body if isinstance(body, bytes) else json.dumps(body).encode()
        if key is None and isinstance(body, dict):
            key = body.get("citizen_id")
        producer.send(topic, key=key.encode() if key else None, value=value)
        producer.flush(10)

    return _publish


def _json_object(raw: bytes | None) -> dict[str, Any]:
    """A record's JSON object; ``{}`` (skipped by the reader) for anything else. Anyone can
    write to a topic (the poison tests put garbage on acute.escalations), and a reader must not
    trip over it."""
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class TopicReader:
    """Reads a topic from the beginning with manual assignment (no group join delay)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        self.consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> None:
        for records in self.consumer.poll(timeout_ms=200).values():
            self.seen.extend(obj for r in records if (obj := _json_object(r.value)))

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            found = [m for m in self.seen if match(m)]
            if len(found) >= count:
                return found
        return [m for m in self.seen if match(m)]

    def settle(
        self, match: Callable[[dict[str, Any]], bool], quiet_s: float = 3.0
    ) -> list[dict[str, Any]]:
        """Keep reading for ``quiet_s`` more seconds and return every match (to count extras)."""
        deadline = time.monotonic() + quiet_s
        while time.monotonic() < deadline:
            self.poll()
        return [m for m in self.seen if match(m)]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def escalations(stack: Stack) -> Iterator[TopicReader]:
    r = TopicReader(stack.bootstrap, ESCALATIONS)
    yield r
    r.close()


@pytest.fixture
def dead_letters(stack: Stack) -> Iterator[TopicReader]:
    r = TopicReader(stack.bootstrap, DEAD_LETTER)
    yield r
    r.close()


def wait_audited(stack: Stack, event_id: str, timeout_s: float = 30.0) -> str:
    """Block until the event has its audit row; return the outcome (cross-topic order is
    not guaranteed by Kafka, so a test that needs a discharge applied first waits for it)."""

    async def _wait() -> str:
        async with store_db.connection(stack.dsn) as conn:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                outcome = await conn.fetchval(
                    "SELECT outcome FROM audit_log WHERE event_id = $1::uuid", event_id
                )
                if outcome is not None:
                    return str(outcome)
                await asyncio.sleep(0.1)
            raise TimeoutError(f"event {event_id} not audited after {timeout_s}s")

    return asyncio.run(_wait())


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[store_db.Connection]:
    """A connection to the session stack's own schema (the worker's tables)."""
    async with store_db.connection(stack.dsn) as conn:
        yield conn
