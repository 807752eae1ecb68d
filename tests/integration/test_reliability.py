"""Fault tests: nothing lost under crashes, graceful stops, rebalances and a database outage.

Each test drives real load through a real broker and PostgreSQL, injects the fault for real
(kill -9, SIGTERM, a second worker, stopping PostgreSQL) and then runs the product's own
reconciler (``dispatcher reconcile``), which must find no problem.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from dispatcher.config import Settings
from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack, seed_roster_text
from dispatcher.ops import reconcile
from dispatcher.store.batches import FAULT_EXIT_CODE
from tests import helpers
from tests.integration.traffic import Load, LoadResult

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[Stack]:
    d = tempfile.mkdtemp(prefix="dspf-", dir="/tmp")
    settings = Settings.from_env(partitions=PARTITIONS, data_dir=d, batch_within_s=0.01)
    stack = Stack.start_infra(settings, Path(d), seed_roster_text())
    try:
        w = stack.start_worker(name="fault-worker-1")
        stack.wait_healthy(w)
        yield stack
    finally:
        stack.stop()
        if not os.environ.get("DISPATCHER_KEEP_FAULT_DIR"):  # keep logs for a post-mortem
            shutil.rmtree(d, ignore_errors=True)


def live_worker(stack: Stack) -> Any:
    alive = [w for w in stack.workers if w.alive()]
    if alive:
        return alive[0]
    w = stack.start_worker()
    stack.wait_healthy(w)
    return w


def reconcile_until_ok(stack: Stack, timeout_s: float = 90.0) -> reconcile.Report:
    """The reconciler, repeated until it passes or the time is up (work may be in flight)."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = asyncio.run(reconcile.run(stack.bootstrap, stack.dsn, grace_s=0.0))
        if report.ok or time.monotonic() > deadline:
            return report
        time.sleep(1.0)


def audited_ids(stack: Stack, ids: set[str]) -> set[str]:
    async def _q() -> set[str]:
        conn = await asyncpg.connect(stack.dsn)
        try:
            rows = await conn.fetch(
                "SELECT event_id::text FROM audit_log WHERE event_id = ANY($1::uuid[])",
                list(ids),
            )
            return {r[0] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(_q())


def wait_all_audited(stack: Stack, load: LoadResult, timeout_s: float = 90.0) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        done = audited_ids(stack, load.event_ids)
        if done == load.event_ids or time.monotonic() > deadline:
            return done
        time.sleep(0.5)


def escalation_copies(stack: Stack, event_ids: set[str]) -> Counter[str]:
    """How often each triggering event's escalation appears on acute.escalations."""
    counts: Counter[str] = Counter()
    for msg in reconcile.read_topics(stack.bootstrap, [ESCALATIONS]):
        esc = json.loads(msg.value or b"{}")
        for trig in esc.get("triggered_by", []):
            if trig in event_ids:
                counts[trig] += 1
    return counts


def assert_nothing_lost(stack: Stack, load: LoadResult) -> None:
    assert load.sent > 0
    assert load.failed_sends == []
    missing = load.event_ids - wait_all_audited(stack, load)
    report = reconcile_until_ok(stack, timeout_s=5.0 if missing else 90.0)
    where = sorted(
        {
            (p["problem"], p.get("topic"), p.get("partition"), p.get("offset"))
            for p in report.problems
        }
    )
    if missing:
        located = [
            (m.topic, m.partition, m.offset)
            for m in reconcile.read_topics(stack.bootstrap, list(INPUT_TOPICS))
            if str(reconcile.event_id_of(m.value)) in missing
        ]
        pytest.fail(
            f"{len(missing)} events without outcome; reconciler problems {where[:20]}; "
            f"on the input topics at {sorted(located)[:20]}"
        )
    assert report.problems == []
    copies = escalation_copies(stack, load.escalating)
    assert set(copies) == load.escalating  # every escalation the rules called for is out


def committed_offsets(stack: Stack) -> dict[tuple[str, int], int]:
    """The group's committed offsets on the input topics (the next offset a consumer reads)."""
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    try:
        group = stack.settings.app_id
        offsets = admin.list_group_offsets(group)[group]
        return {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if tp.topic in INPUT_TOPICS and meta.offset >= 0
        }
    finally:
        admin.close()


def audit_locations(stack: Stack, ids: set[str]) -> dict[str, tuple[str, int, int]]:
    """event id -> (topic, partition, offset) of the message whose outcome its audit row is."""

    async def _q() -> dict[str, tuple[str, int, int]]:
        conn = await asyncpg.connect(stack.dsn)
        try:
            rows = await conn.fetch(
                "SELECT event_id::text, source_topic, source_partition, source_offset "
                "FROM audit_log WHERE event_id = ANY($1::uuid[])",
                list(ids),
            )
            return {r[0]: (r[1], int(r[2]), int(r[3])) for r in rows}
        finally:
            await conn.close()

    return asyncio.run(_q())


def metric_by_topic(port: int, name: str) -> dict[str, float]:
    """A counter labelled by topic, from a worker's /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") and 'topic="' in line:
            topic = line.split('topic="', 1)[1].split('"', 1)[0]
            values[topic] = values.get(topic, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


DUPLICATES = "dispatcher_duplicate_events_total"
CONSUMED = "dispatcher_events_consumed_total"


@dataclass
class KillSnapshot:
    """What was sent, stored and committed at the moment of a kill -9."""

    sent: int
    stored: dict[str, tuple[str, int, int]]
    committed: dict[tuple[str, int], int]

    @property
    def stored_uncommitted(self) -> set[str]:
        """Events with a stored outcome whose offset the group had not committed: the
        replacement must read them again and recognise them as known duplicates."""
        return {
            eid
            for eid, (topic, part, offset) in self.stored.items()
            if offset >= self.committed.get((topic, part), 0)
        }


def kill_in_flight(stack: Stack, worker: Any, load: Load) -> KillSnapshot:
    """kill -9 ``worker`` while stored-but-uncommitted work exists, then snapshot PostgreSQL and
    the group's offsets (the dead worker can commit nothing more)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        sample = KillSnapshot(
            0, audit_locations(stack, set(load.result.event_ids)), committed_offsets(stack)
        )
        if sample.stored_uncommitted:
            break
        time.sleep(0.05)
    sent = len(load.result.event_ids)  # valid events handed to the producer so far
    worker.stop(signal.SIGKILL)
    time.sleep(0.5)  # a COMMIT already on the wire when it died completes; then nothing more
    snap = KillSnapshot(
        sent,
        audit_locations(stack, set(load.result.event_ids)),
        committed_offsets(stack),
    )
    assert load.is_alive(), "the load had ended: the kill did not hit a running stream"
    assert 0 < len(snap.stored) < snap.sent, (len(snap.stored), snap.sent)
    assert snap.stored_uncommitted, "no stored-but-uncommitted work at the kill"
    print(
        f"kill -9 {worker.name}: {len(snap.stored)} stored of {snap.sent} sent, "
        f"{len(snap.stored_uncommitted)} stored past the committed offsets"
    )
    return snap


def expected_rereads(
    stack: Stack, snap: KillSnapshot, run_ids: set[str]
) -> tuple[dict[str, int], int]:
    """For the worker that takes over after ``snap`` and reads to the end: per topic, how many
    messages it must recognise as known duplicates (a deliberate second copy, or an event the
    killed worker stored but whose offset it had not committed), and how many input messages it
    must consume (everything from the committed offsets on)."""
    located = audit_locations(stack, run_ids)
    uncommitted = snap.stored_uncommitted
    dups: Counter[str] = Counter()
    consumed = 0
    for m in reconcile.read_topics(stack.bootstrap, list(INPUT_TOPICS)):
        if m.offset < snap.committed.get((m.topic, m.partition), 0):
            continue
        consumed += 1
        eid = reconcile.event_id_of(m.value)
        if eid is None or str(eid) not in located:
            continue
        here = (m.topic, m.partition, m.offset)
        if located[str(eid)] != here or str(eid) in uncommitted:
            dups[m.topic] += 1
    return dict(dups), consumed


def wait_metric(
    port: int, name: str, at_least: dict[str, float] | float, timeout_s: float = 60.0
) -> dict[str, float]:
    """Poll a worker's counter until it reaches ``at_least`` (per topic, or summed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = metric_by_topic(port, name)
        if isinstance(at_least, dict):
            done = all(got.get(t, 0.0) >= n for t, n in at_least.items())
        else:
            done = sum(got.values()) >= at_least
        if done or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


class TestCrash:
    def test_kill_9_under_load_loses_nothing(self, fault_stack: Stack) -> None:
        """kill -9 of the worker twice mid-stream, each time with work stored but its offsets
        not committed (0 < stored < sent), the replacement healthy before the next fault: the
        replacements re-read those offsets and count them as known duplicates, every event has
        exactly one outcome, every escalation is out, the reconciler passes."""
        stop = threading.Event()
        load = Load(fault_stack.bootstrap, count=9000, rate=100, seed=11, stop=stop)
        first = live_worker(fault_stack)
        load.start()
        try:
            time.sleep(1.5)
            snap1 = kill_in_flight(fault_stack, first, load)
            second = fault_stack.start_worker()
            fault_stack.wait_healthy(second)
            # It re-read what the dead worker stored but had not committed: known duplicates.
            rereads = len(snap1.stored_uncommitted)
            dups = wait_metric(second.web_port, DUPLICATES, rereads, timeout_s=30.0)
            assert sum(dups.values()) >= rereads, (dups, rereads)
            # ... and commits its own progress: the second kill falls between two commits.
            deadline = time.monotonic() + 20.0
            while committed_offsets(fault_stack) == snap1.committed:
                assert time.monotonic() < deadline, "the replacement committed no offset"
                time.sleep(0.2)
            snap2 = kill_in_flight(fault_stack, second, load)
            assert snap2.committed != snap1.committed
            third = fault_stack.start_worker()
            fault_stack.wait_healthy(third)
            time.sleep(1.0)
        finally:
            stop.set()
            load.join()
        assert load.error is None
        assert_nothing_lost(fault_stack, load.result)
        # Exactly one outcome per event (audit_log.event_id is unique; none is missing).
        assert len(audit_locations(fault_stack, load.result.event_ids)) == len(
            load.result.event_ids
        )
        # The last worker read everything from the offsets committed at the second kill: each
        # message whose outcome was already stored was recognised as a known duplicate.
        want_dups, want_consumed = expected_rereads(fault_stack, snap2, load.result.event_ids)
        assert sum(want_dups.values()) >= len(snap2.stored_uncommitted) > 0
        consumed = wait_metric(third.web_port, CONSUMED, want_consumed)
        assert sum(consumed.values()) >= want_consumed
        got_dups = wait_metric(third.web_port, DUPLICATES, want_dups, timeout_s=10.0)
        print(f"last worker: duplicates {got_dups} (at least {want_dups}), consumed {consumed}")
        assert {t: got_dups.get(t, 0.0) >= n for t, n in want_dups.items()} == {
            t: True for t in want_dups
        }, (got_dups, want_dups)


class TestGracefulStop:
    def test_sigterm_mid_stream_gives_no_duplicates(self, fault_stack: Stack) -> None:
        """A SIGTERM mid-stream hands over cleanly: nothing lost and no escalation twice."""
        live_worker(fault_stack)
        load = Load(fault_stack.bootstrap, count=600, rate=150, seed=12)
        load.start()
        time.sleep(1.5)
        live_worker(fault_stack).stop(signal.SIGTERM)
        fault_stack.start_worker()
        load.join()
        assert load.error is None
        live_worker(fault_stack)
        assert_nothing_lost(fault_stack, load.result)
        copies = escalation_copies(fault_stack, load.result.escalating)
        assert {k: v for k, v in copies.items() if v > 1} == {}


class TestDuplicateWindow:
    def test_crash_between_send_and_mark_duplicates_and_cases_stay_single(
        self, fault_stack: Stack
    ) -> None:
        """The test-only fault hook (DISPATCHER_FAULT_EXIT_AFTER_OUTBOX_SEND) kills the worker
        after the relay sent an escalation to Kafka and before it marked the outbox row
        published. The replacement re-sends it: the escalation is on the topic twice with one
        escalation_id, and the case manager makes one case, one case_escalations row and one
        page of it; the observation itself keeps one audit row."""
        for w in fault_stack.workers:  # the faulty worker must be the one that relays
            if w.alive():
                w.stop(signal.SIGTERM)
        settings = fault_stack.settings
        fault_stack.settings = settings.model_copy(update={"fault_exit_after_outbox_send": True})
        try:
            faulty = fault_stack.start_worker(name="fault-after-send")
        finally:
            fault_stack.settings = settings
        fault_stack.wait_healthy(faulty)
        cid = helpers.citizen()
        obs = helpers.deteriorating(cid)
        producer = KafkaProducer(bootstrap_servers=fault_stack.bootstrap, acks="all")
        try:
            producer.send(NURSE_OBSERVATIONS, key=cid.encode(), value=json.dumps(obs).encode()).get(
                timeout=30
            )
        finally:
            producer.close(5)
        faulty.process.wait(timeout=60)
        assert faulty.stop() == FAULT_EXIT_CODE  # the hook fired, not some other death

        async def escalation_state() -> tuple[str, int, int]:
            conn = await asyncpg.connect(fault_stack.dsn)
            try:
                esc = await conn.fetchval(
                    "SELECT escalation_id::text FROM escalations WHERE citizen_id = $1", cid
                )
                unmarked = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE topic = $1 AND published_at IS NULL "
                    "AND convert_from(value, 'UTF8')::jsonb ->> 'citizen_id' = $2",
                    ESCALATIONS,
                    cid,
                )
                audits = await conn.fetchval(
                    "SELECT count(*) FROM audit_log WHERE event_id = $1::uuid", obs["event_id"]
                )
                return str(esc), int(unmarked), int(audits)
            finally:
                await conn.close()

        esc_id, unmarked, audits = asyncio.run(escalation_state())
        assert (unmarked, audits) == (1, 1)  # decided and stored, sent, never marked

        def copies() -> int:
            return sum(
                1
                for m in reconcile.read_topics(fault_stack.bootstrap, [ESCALATIONS])
                if json.loads(m.value or b"{}").get("escalation_id") == esc_id
            )

        assert copies() == 1  # the send itself completed before the exit
        replacement = fault_stack.start_worker()
        fault_stack.wait_healthy(replacement)
        deadline = time.monotonic() + 60
        while copies() < 2 and time.monotonic() < deadline:
            time.sleep(1.0)
        assert copies() == 2  # the duplicate window was met for real: same id, twice

        async def downstream() -> tuple[int, int, int, int, int]:
            conn = await asyncpg.connect(fault_stack.dsn)
            try:
                deadline = time.monotonic() + 30
                while True:
                    row = await conn.fetchrow(
                        """SELECT
                          (SELECT count(*) FROM cases WHERE citizen_id = $1),
                          (SELECT count(*) FROM case_escalations WHERE escalation_id = $2::uuid),
                          (SELECT count(*) FROM outbox WHERE topic LIKE 'acute.pages.%'
                             AND convert_from(value, 'UTF8')::jsonb ->> 'citizen_id' = $1),
                          (SELECT count(*) FROM outbox WHERE topic = $4 AND published_at IS NULL
                             AND convert_from(value, 'UTF8')::jsonb ->> 'citizen_id' = $1),
                          (SELECT count(*) FROM audit_log WHERE event_id = $3::uuid)""",
                        cid,
                        esc_id,
                        obs["event_id"],
                        ESCALATIONS,
                    )
                    assert row is not None
                    got = tuple(int(v) for v in row)
                    if got[2] >= 1 or time.monotonic() > deadline:
                        return got  # type: ignore[return-value]
                    await asyncio.sleep(0.5)
            finally:
                await conn.close()

        asyncio.run(downstream())
        time.sleep(3.0)  # both copies reach the case manager; a second case would show now
        cases, applied, pages, unmarked, audits = asyncio.run(downstream())
        assert (cases, applied, pages, unmarked, audits) == (1, 1, 1, 0, 1)
        report = reconcile_until_ok(fault_stack, timeout_s=60.0)
        assert report.problems == []
        assert report.escalation_copies_on_topic >= 1


class TestRebalance:
    def test_worker_joining_and_leaving_keeps_order_and_loses_nothing(
        self, fault_stack: Stack
    ) -> None:
        """A second worker joins mid-stream and, once it has partitions, the first leaves:
        nothing is lost and each citizen's events are decided in the order they were published.

        (The first leaves only after the second has joined: the embedded Tansu 0.6 broker can
        leave a group without a leader when the leader leaves during a join; Apache Kafka does
        not. See the README's broker notes.)"""
        first = live_worker(fault_stack)
        stop = threading.Event()  # the load runs until both hand-overs are done (any CPU speed)
        load = Load(fault_stack.bootstrap, count=9000, rate=100, seed=13, stop=stop)
        load.start()
        try:
            time.sleep(1.0)
            second = fault_stack.start_worker(name="joining-worker")
            fault_stack.wait_healthy(second)
            assert load.is_alive(), "the load ended before the rebalance: not mid-stream"
            first.stop(signal.SIGTERM)
            time.sleep(2.0)
        finally:
            stop.set()
            load.join()
        assert load.error is None
        fault_stack.wait_healthy(second)
        assert_nothing_lost(fault_stack, load.result)

        async def order_violations() -> int:
            conn = await asyncpg.connect(fault_stack.dsn)
            try:
                return int(
                    await conn.fetchval(
                        """SELECT count(*) FROM (
                         SELECT source_offset, lag(source_offset) OVER w AS prev
                         FROM audit_log WHERE citizen_id = ANY($1::text[])
                         WINDOW w AS (PARTITION BY citizen_id, source_topic ORDER BY audit_seq)
                       ) t WHERE prev IS NOT NULL AND source_offset < prev""",
                        load.result.citizens,
                    )
                )
            finally:
                await conn.close()

        assert asyncio.run(order_violations()) == 0


class TestDatabaseOutage:
    def test_postgres_down_30s_backpressures_and_catches_up(self, fault_stack: Stack) -> None:
        """With PostgreSQL stopped for 30 s the worker stays up, commits no offset past an
        unstored outcome, and catches up completely once the database is back."""
        if fault_stack.postgres is None:
            pytest.skip("DISPATCHER_DATABASE_URL names an outside database; cannot stop it")
        worker = live_worker(fault_stack)
        time.sleep(2.0)  # let in-flight work from earlier tests settle
        admin = KafkaAdminClient(bootstrap_servers=fault_stack.bootstrap)
        group = fault_stack.settings.app_id

        def committed() -> dict[tuple[str, int], int]:
            offsets = admin.list_group_offsets(group)[group]
            return {
                (tp.topic, tp.partition): meta.offset
                for tp, meta in offsets.items()
                if tp.topic in INPUT_TOPICS
            }

        before = committed()
        fault_stack.postgres.pause()
        try:
            load = Load(fault_stack.bootstrap, count=300, rate=30, seed=14)
            load.start()
            load.join()
            assert load.error is None
            time.sleep(20.0)
            during = committed()
            assert worker.alive()
        finally:
            fault_stack.postgres.resume()
        admin.close()
        # Nothing could be stored, so no committed offset may have moved forward.
        assert {k: v for k, v in during.items() if v > before.get(k, -1)} == {}
        assert_nothing_lost(fault_stack, load.result)


class TestReplay:
    def test_replaying_every_topic_from_the_start_changes_nothing(self, fault_stack: Stack) -> None:
        """A worker of a new consumer group re-reads all topics from the earliest offset: not
        one new audit row, escalation, case decision or page results."""

        async def counts() -> tuple[int, ...]:
            conn = await asyncpg.connect(fault_stack.dsn)
            try:
                return tuple(
                    [
                        int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
                        for table in (
                            "audit_log",
                            "escalations",
                            "dead_letters",
                            "case_escalations",
                            "case_events",
                            "outbox",
                        )
                    ]
                )
            finally:
                await conn.close()

        live_worker(fault_stack)
        assert reconcile_until_ok(fault_stack).ok
        before = asyncio.run(counts())
        inputs = len(reconcile.read_topics(fault_stack.bootstrap, list(INPUT_TOPICS)))
        settings = fault_stack.settings
        fault_stack.settings = settings.model_copy(update={"app_id": "acute-dispatcher-replay"})
        try:
            replay = fault_stack.start_worker(name="replay-group")
        finally:
            fault_stack.settings = settings
        try:
            fault_stack.wait_healthy(replay)
            deadline = time.monotonic() + 90
            consumed = 0.0
            while time.monotonic() < deadline and consumed < inputs:
                consumed = consumed_inputs(replay.web_port)
                time.sleep(1.0)
            assert consumed >= inputs
            time.sleep(3.0)  # anything it (wrongly) decided would be stored by now
            assert asyncio.run(counts()) == before
        finally:
            replay.stop(signal.SIGTERM)


def consumed_inputs(port: int) -> float:
    """Sum of dispatcher_events_consumed_total over the input topics, from /metrics."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("dispatcher_events_consumed_total{") and any(
            f'topic="{t}"' in line for t in INPUT_TOPICS
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


class TestBrokerRestart:
    def test_workers_reconnect_after_broker_restart(self, fault_stack: Stack) -> None:
        """After the (memory-only) broker restarts, the worker reconnects on its own and the next
        deteriorating observation escalates."""
        if fault_stack.broker is None:
            pytest.skip("DISPATCHER_KAFKA_BOOTSTRAP names an outside broker; cannot restart it")
        worker = live_worker(fault_stack)
        fault_stack.broker.restart()
        from kafka import KafkaProducer

        from dispatcher.contract.topics import NURSE_OBSERVATIONS
        from tests import helpers
        from tests.integration.conftest import TopicReader

        deadline = time.monotonic() + 120
        cid = helpers.citizen()
        found: list[dict[str, Any]] = []
        producer = KafkaProducer(bootstrap_servers=fault_stack.bootstrap, acks="all")
        reader = None
        try:
            while time.monotonic() < deadline and not found:
                obs = helpers.deteriorating(cid)
                producer.send(
                    NURSE_OBSERVATIONS, key=cid.encode(), value=json.dumps(obs).encode()
                ).get(timeout=30)
                if reader is None:
                    reader = TopicReader(fault_stack.bootstrap, ESCALATIONS)
                found = reader.wait_for(lambda e: e["citizen_id"] == cid, timeout_s=10.0)
        finally:
            producer.close(5)
            if reader is not None:
                reader.close()
        assert found, "no escalation within 120 s of the broker restart"
        assert worker.alive()
