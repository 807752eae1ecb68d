"""Issue 11 item 1 on the real broker and PostgreSQL: one message the producer refuses for good
never jams the outbox.

Before, the relay sent all-or-nothing per sweep: a refused row made the rows before it go out
again every 2 s (one escalation 95 times) and every row after it never went out. Now the refused
row is parked with its reason (``outbox.parked_at``, ``park_reason``), counted in
``dispatcher_outbox_parked_total``, and the rows before and after it are published exactly once.

The embedded Tansu 0.6 does not honour a topic's ``max.message.bytes`` (checked: a 5000-byte
record is accepted by a topic created with 2000), so the refusal used here is the real
producer's own: aiokafka refuses a record over ``max_request_size`` (1 MB in faust) with
``MessageSizeTooLargeError``, a non-retriable produce error, exactly as for an oversized
message on a real Kafka.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from dispatcher.devstack.stack import Stack, WorkerProcess
from dispatcher.ingest.planner import OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.batches import PostgresRepository, SendFailure

# A topic of its own: nothing here may look like an escalation, page or dead letter to the
# case manager or the reconciler.
TOPIC = "test.outbox-parking"


def _ensure_topic(bootstrap: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(TOPIC, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def _read_probe(bootstrap: str, probe: str, quiet_s: float, timeout_s: float = 30.0) -> list[int]:
    """The ``n`` of every message of this probe on the topic: wait for the first, then read on
    for ``quiet_s`` (several sweeps) to count any repeat."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    consumer.assign([TopicPartition(TOPIC, 0)])
    seen: list[int] = []
    deadline = time.monotonic() + timeout_s
    quiet_until: float | None = None
    try:
        while time.monotonic() < (quiet_until or deadline):
            for records in consumer.poll(timeout_ms=200).values():
                for r in records:
                    body = json.loads(r.value)
                    if body.get("probe") == probe:
                        seen.append(body["n"])
            if seen and quiet_until is None:
                quiet_until = time.monotonic() + quiet_s
    finally:
        consumer.close()
    return sorted(seen)


def _metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


async def _insert(db: Any, values: Sequence[bytes], age_s: float) -> list[int]:
    ids: list[int] = []
    for value in values:
        ids.append(
            await db.fetchval(
                "INSERT INTO outbox (topic, key, value, created_at) "
                "VALUES ($1, $2, $3, now() - make_interval(secs => $4)) RETURNING id",
                TOPIC,
                b"k",
                value,
                age_s,
            )
        )
    return ids


def _body(probe: str, n: int, pad: int = 0) -> bytes:
    return json.dumps({"probe": probe, "n": n, "pad": "x" * pad}).encode()


class TestRealWorkerParksARefusedMessage:
    async def test_rows_around_a_too_large_one_are_published_exactly_once(
        self, stack: Stack, worker: WorkerProcess, db: Any
    ) -> None:
        """Five outbox rows, the third 1.5 MB: the running worker's sweep publishes 1, 2, 4, 5
        once each (read on through several sweeps), parks 3 with the producer's reason, and
        counts it on /metrics."""
        await asyncio.to_thread(_ensure_topic, stack.bootstrap)
        probe = str(uuid.uuid4())
        values = [_body(probe, n, pad=1_500_000 if n == 3 else 0) for n in range(1, 6)]
        ids = await _insert(db, values, age_s=60)

        seen = await asyncio.to_thread(_read_probe, stack.bootstrap, probe, 8.0)
        assert seen == [1, 2, 4, 5]

        rows = await db.fetch(
            "SELECT id, published_at, parked_at, park_reason FROM outbox "
            "WHERE id = ANY($1::bigint[]) ORDER BY id",
            ids,
        )
        assert [r["published_at"] is not None for r in rows] == [True, True, False, True, True]
        assert [r["parked_at"] is not None for r in rows] == [False, False, True, False, False]
        assert "MessageSizeTooLarge" in rows[2]["park_reason"]
        text = await asyncio.to_thread(_metrics_text, worker.web_port)
        assert (
            'dispatcher_outbox_parked_total{reason="too_large",topic="test.outbox-parking"}' in text
        )
        # A parked row is not waiting: it does not hold the backlog age up.
        waiting = await db.fetchval(
            "SELECT count(*) FROM outbox WHERE id = ANY($1::bigint[]) "
            "AND published_at IS NULL AND parked_at IS NULL",
            ids,
        )
        assert waiting == 0
        assert worker.alive()
        # The parked row is this test's: gone, so a reconciler run on a shared database does
        # not report it (a real one is reported as unpublished until an operator acts).
        await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)


class RefusingSender:
    """Refuses the values it is given (permanently or transiently); records what it sent. Rows
    that are not this test's (another test's, swept along) fail transiently: they stay for the
    worker, which really sends them."""

    def __init__(self, mine: Sequence[bytes], refuse: dict[bytes, SendFailure]) -> None:
        self.mine = set(mine)
        self.refuse = refuse
        self.sent: list[bytes] = []

    async def __call__(self, messages: Sequence[OutboxMessage]) -> list[SendFailure | None]:
        out: list[SendFailure | None] = []
        for m in messages:
            failure = self.refuse.get(m.value)
            if m.value not in self.mine:
                failure = SendFailure("not this test's row", permanent=False, kind="transient")
            if failure is None:
                self.sent.append(m.value)
            out.append(failure)
        return out


class TestPostgresRelayPerMessage:
    @pytest.mark.parametrize("by_ids", [True, False], ids=["after-commit", "sweep"])
    async def test_parked_sent_and_left_rows_in_postgres(
        self, stack: Stack, db: Any, by_ids: bool
    ) -> None:
        """BatchProcessor + PostgresRepository with a sender that refuses row 2 for good and
        row 4 for now: 1, 3, 5 are marked published and never sent again, 2 is parked with its
        reason, 4 stays pending and goes out when the broker takes it."""
        probe = str(uuid.uuid4())
        values = [_body(probe, n) for n in range(1, 6)]
        refused = SendFailure("RecordTooLarge: refused", permanent=True, kind="refused")
        flaky = SendFailure("KafkaConnectionError: gone", permanent=False, kind="transient")
        sender = RefusingSender(values, {values[1]: refused, values[3]: flaky})
        # Young rows (the worker's own sweep leaves them alone) relayed by id, as after a
        # commit, or old enough for this processor's sweep (min_age 0).
        ids = await _insert(db, values, age_s=0)
        repo = await PostgresRepository.connect(stack.dsn)
        metrics = DispatcherMetrics()
        try:
            p = BatchProcessor(repo, sender, metrics)

            async def relay() -> int:
                return await (p.relay(ids) if by_ids else p.relay(min_age_s=0))

            await relay()
            await relay()
            assert sender.sent.count(values[0]) == 1
            assert sender.sent.count(values[2]) == 1
            assert sender.sent.count(values[4]) == 1
            assert values[1] not in sender.sent
            rows = await db.fetch(
                "SELECT published_at, parked_at, park_reason FROM outbox "
                "WHERE id = ANY($1::bigint[]) ORDER BY id",
                ids,
            )
            assert [r["published_at"] is not None for r in rows] == [
                True,
                False,
                True,
                False,
                True,
            ]
            assert rows[1]["park_reason"] == "RecordTooLarge: refused"
            assert rows[3]["parked_at"] is None
            sender.refuse.pop(values[3])
            await relay()
            assert sender.sent.count(values[3]) == 1
            assert values[1] not in sender.sent
            assert (
                metrics.registry.get_sample_value(
                    "dispatcher_outbox_parked_total", {"topic": TOPIC, "reason": "refused"}
                )
                == 1
            )
        finally:
            await repo.close()
            # This test's rows: not left for the worker's sweep nor for a reconciler run.
            await db.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
