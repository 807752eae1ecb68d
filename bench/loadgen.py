"""Open-loop load over the real broker (aiokafka) and escalation read-back, in one process clock.

* ``send_open_loop`` sends pre-serialised events on a fixed schedule (event ``i`` is due at
  ``t0 + i / rate``), whatever the dispatcher does: a slow pipeline shows up as lag and latency,
  not as a slower generator. Send time is taken just before each ``producer.send``.
* ``EscalationTracker`` reads ``acute.escalations`` from its end and matches each escalation to
  the escalating events it was ``triggered_by``.
* ``ProgressProbe`` reads how many events have a durable outcome (the ``audit_log`` sequence in
  PostgreSQL), so lag = accepted events sent - audit rows written since the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.workload import LoadEvent
from dispatcher.contract.topics import ESCALATIONS

Clock = Callable[[], float]


async def start_producer(bootstrap: str) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        client_id="bench-load",
    )
    await producer.start()
    return producer


class EscalationTracker:
    """Send times of escalating events and the arrival of their escalations."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.sent_at: dict[str, float] = {}
        self.arrived_at: dict[str, float] = {}
        self.received = 0
        self.unmatched = 0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def sent(self, event_id: str, at: float) -> None:
        self.sent_at.setdefault(event_id, at)

    def on_escalation(self, raw: bytes, at: float) -> None:
        self.received += 1
        try:
            triggered = orjson.loads(raw).get("triggered_by") or []
        except (orjson.JSONDecodeError, AttributeError):
            self.unmatched += 1
            return
        matched = False
        for tid in triggered:
            if tid in self.sent_at:
                self.arrived_at.setdefault(tid, at)
                matched = True
        if not matched:
            self.unmatched += 1

    def latencies_ms(self, event_ids: Sequence[str]) -> list[float]:
        """Produce -> escalation latency per event id; ``inf`` if it has not arrived."""
        out = []
        for eid in event_ids:
            arrived = self.arrived_at.get(eid)
            out.append(math.inf if arrived is None else (arrived - self.sent_at[eid]) * 1000)
        return out

    def pending(self, event_ids: Sequence[str]) -> int:
        return sum(1 for eid in event_ids if eid not in self.arrived_at)

    def first_arrival_sent_after(self, cut: float) -> tuple[float, float] | None:
        """(sent, arrived) of the earliest-arriving escalation whose event was sent after
        ``cut``."""
        best: tuple[float, float] | None = None
        for eid, arrived in self.arrived_at.items():
            sent = self.sent_at[eid]
            if sent > cut and (best is None or arrived < best[1]):
                best = (sent, arrived)
        return best

    async def start(self, bootstrap: str) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            client_id="bench-escalations",
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        partitions = consumer.partitions_for_topic(ESCALATIONS)
        deadline = time.monotonic() + 15
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            await consumer._client.force_metadata_update()  # no public metadata refresh
            partitions = consumer.partitions_for_topic(ESCALATIONS)
        if not partitions:
            await consumer.stop()
            raise RuntimeError(f"topic {ESCALATIONS} has no partitions")
        tps = [TopicPartition(ESCALATIONS, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before any traffic
            await consumer.position(tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=2000)
            now = self.clock()
            for records in batches.values():
                for r in records:
                    if r.value is not None:
                        self.on_escalation(r.value, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class ProgressProbe:
    """Events with a durable outcome so far: the ``audit_log`` row sequence (one nextval per
    audit row). Cheap enough to read twice a second."""

    SQL = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM audit_log_audit_seq_seq"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()  # one connection, shared by the sampler and the steps
        self.base = 0

    @classmethod
    async def connect(cls, dsn: str) -> ProgressProbe:
        probe = cls(await asyncpg.connect(dsn))
        probe.base = await probe.raw()
        return probe

    async def raw(self) -> int:
        async with self._lock:
            value = await self._conn.fetchval(self.SQL)
        return int(value or 0)

    async def processed(self) -> int:
        return await self.raw() - self.base

    async def fetchval(self, sql: str, *args: object) -> object:
        async with self._lock:
            return await self._conn.fetchval(sql, *args)

    async def close(self) -> None:
        await self._conn.close()


@dataclass
class Counters:
    """What the generator has handed to the broker, over the whole run."""

    sent: int = 0
    accepted: int = 0
    bad: int = 0
    errors: int = 0
    escalating_ids: list[str] = field(default_factory=list)

    def on_done(self, fut: asyncio.Future[object]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.errors += 1


@dataclass(frozen=True)
class SendStats:
    sent: int
    elapsed_s: float
    max_behind_s: float
    escalating_ids: list[str]
    first_send: float
    last_send: float


async def send_open_loop(
    producer: AIOKafkaProducer,
    events: Sequence[LoadEvent],
    rate: float | None,
    tracker: EscalationTracker,
    counters: Counters,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock = time.monotonic,
    topic: str | None = None,
) -> SendStats:
    """Send ``events`` at ``rate`` per second (None: as fast as possible), then flush.
    ``topic`` overrides every event's topic (the baselines' input topics)."""
    esc_ids: list[str] = []
    t0 = clock()
    first = last = t0
    max_behind = 0.0
    i = 0
    n = len(events)
    tick = 0.002
    while i < n:
        if stop is not None and stop.is_set():
            break
        now = clock()
        due = n if rate is None else min(n, int((now - t0) * rate) + 1)
        if rate is not None and due > i:
            max_behind = max(max_behind, now - (t0 + i / rate))
        burst_end = min(due, i + 2000)  # yield to the tracker at least every 2000 sends
        while i < burst_end:
            ev = events[i]
            at = clock()
            if i == 0:
                first = at
            fut = await producer.send(topic or ev.topic, ev.value, key=ev.key)
            fut.add_done_callback(counters.on_done)
            counters.sent += 1
            if ev.accepted:
                counters.accepted += 1
            elif ev.event_id is None:
                counters.bad += 1
            if ev.escalates and ev.event_id is not None:
                tracker.sent(ev.event_id, at)
                esc_ids.append(ev.event_id)
            i += 1
        last = clock()
        if rate is None:
            await asyncio.sleep(0)
        else:
            next_due = t0 + i / rate
            await asyncio.sleep(max(0.0, min(tick, next_due - clock())))
    await producer.flush()
    counters.escalating_ids.extend(esc_ids)
    return SendStats(i, max(last - first, 1e-9), max_behind, esc_ids, first, last)
