"""The I/O shell's guarantees, against the in-memory repository (no database needed)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg

from dispatcher.contract.topics import (
    DEAD_LETTER,
    DISCHARGES,
    ESCALATIONS,
    NURSE_OBSERVATIONS,
    SENSOR_READINGS,
)
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.retry import RetryPolicy
from dispatcher.store.testing import InMemoryRepository
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Outbox:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[OutboxMessage] = []
        self.fail = fail

    async def send(self, messages: Sequence[OutboxMessage]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.sent.extend(messages)


def incoming(
    body: dict[str, object] | bytes, offset: int, topic: str = NURSE_OBSERVATIONS
) -> Incoming:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = str(body["citizen_id"]).encode() if isinstance(body, dict) else b"k"  # as published
    return Incoming(topic, 0, offset, key, raw)


def processor(repo: InMemoryRepository, out: Outbox) -> BatchProcessor:
    return BatchProcessor(
        repo,
        out.send,
        DispatcherMetrics(),
        clock=lambda: NOW,
        retry=RetryPolicy(first_delay_s=0.0, max_delay_s=0.0),
    )


class TestIdempotency:
    async def test_same_event_twice_in_one_batch_escalates_once(self) -> None:
        """A duplicate event id inside one batch gives one audit row and one escalation."""
        repo, out = InMemoryRepository(), Outbox()
        obs = helpers.deteriorating("cit-abc123", NOW)
        await processor(repo, out).handle([incoming(obs, 1), incoming(obs, 2)])
        assert len(repo.audit) == 1
        assert [m.topic for m in out.sent] == [ESCALATIONS]

    async def test_replay_in_a_later_batch_does_nothing(self) -> None:
        """Replaying an already processed event id sends nothing new."""
        repo, out = InMemoryRepository(), Outbox()
        obs = helpers.deteriorating("cit-abc123", NOW)
        p = processor(repo, out)
        await p.handle([incoming(obs, 1)])
        await p.handle([incoming(obs, 1)])
        assert len(out.sent) == 1


class TestBackpressure:
    async def test_database_outage_is_retried_until_stored(self) -> None:
        """Transient database errors are retried; handle returns only once stored."""
        repo, out = InMemoryRepository(), Outbox()
        repo.fail_next = [ConnectionRefusedError(), asyncpg.CannotConnectNowError("starting")]
        obs = helpers.deteriorating("cit-abc123", NOW)
        await processor(repo, out).handle([incoming(obs, 1)])
        assert repo.apply_calls == 3
        assert obs["event_id"] in {str(k) for k in repo.audit}
        assert len(out.sent) == 1


class TestPoisonIsolation:
    async def test_non_transient_failure_splits_the_batch(self) -> None:
        """A batch failing for a non-transient reason is retried message by message."""
        repo, out = InMemoryRepository(), Outbox()
        repo.fail_next = [RuntimeError("bug")]
        a = helpers.deteriorating("cit-aaa111", NOW)
        b = helpers.deteriorating("cit-bbb222", NOW)
        await processor(repo, out).handle([incoming(a, 1), incoming(b, 2)])
        assert len(repo.audit) == 2
        assert len(out.sent) == 2

    async def test_message_that_keeps_failing_is_dead_lettered(self) -> None:
        """A single message whose store fails non-transiently is dead-lettered with the error."""
        repo, out = InMemoryRepository(), Outbox()
        repo.fail_next = [RuntimeError("bug"), RuntimeError("bug again")]
        a = helpers.deteriorating("cit-aaa111", NOW)
        await processor(repo, out).handle([incoming(a, 1)])
        assert repo.audit == {}
        assert [m.topic for m in out.sent] == [DEAD_LETTER]
        letter = json.loads(out.sent[0].value)
        assert letter["category"] == "store_error"
        assert letter["error"]["field"] == "$"
        assert "RuntimeError" in letter["error"]["reason"]


class TestOutbox:
    async def test_failed_send_stays_in_outbox_for_the_sweep(self) -> None:
        """If the broker refuses the send, the escalation stays queued and the sweep sends it."""
        repo, out = InMemoryRepository(), Outbox(fail=1)
        p = processor(repo, out)
        await p.handle([incoming(helpers.deteriorating("cit-abc123", NOW), 1)])
        assert out.sent == []
        assert len(repo.unpublished()) == 1
        assert await p.relay() == 1
        assert [m.topic for m in out.sent] == [ESCALATIONS]
        assert repo.unpublished() == []

    async def test_bad_input_goes_to_dead_letter_topic(self) -> None:
        """Bad bytes produce a dead letter on the topic and in the store."""
        repo, out = InMemoryRepository(), Outbox()
        await processor(repo, out).handle([incoming(b"nope", 5)])
        assert len(repo.dead_letters) == 1
        assert [m.topic for m in out.sent] == [DEAD_LETTER]


class TestSilentSensorTimer:
    async def test_silent_sensor_escalates_once_per_silence(self) -> None:
        """A COPD citizen's spot-check sensor silent past its limit (36 h: a daily schedule plus
        grace, issue 12 item 10) escalates once, however often the timer runs; a new reading
        and a new silence escalate again."""
        repo, out = InMemoryRepository(), Outbox()
        clock = [NOW]
        p = BatchProcessor(
            repo,
            out.send,
            DispatcherMetrics(),
            clock=lambda: clock[0],
            retry=RetryPolicy(first_delay_s=0.0, max_delay_s=0.0),
        )
        cid = "cit-silent01"
        await p.handle(
            [
                incoming(helpers.discharge(cid, NOW - timedelta(hours=1)), 1, DISCHARGES),
                Incoming(
                    SENSOR_READINGS,
                    0,
                    2,
                    cid.encode(),
                    json.dumps(helpers.sensor(cid, "spo2", 95, "%", NOW)).encode(),
                ),
            ]
        )
        assert out.sent == []
        clock[0] = NOW + timedelta(hours=30)  # silent 30 h: within a daily schedule's grace
        await p.check_silent_sensors()
        assert out.sent == []
        clock[0] = NOW + timedelta(hours=37)
        await p.check_silent_sensors()
        clock[0] = NOW + timedelta(hours=38)
        await p.check_silent_sensors()
        assert [m.topic for m in out.sent] == [ESCALATIONS]
        esc = json.loads(out.sent[0].value)
        assert esc["citizen_id"] == cid
        assert [r["rule_id"] for r in esc["reasons"]] == ["sensor.silent"]
        await p.handle(
            [
                Incoming(
                    SENSOR_READINGS,
                    0,
                    3,
                    cid.encode(),
                    json.dumps(
                        helpers.sensor(cid, "spo2", 95, "%", NOW + timedelta(hours=38))
                    ).encode(),
                )
            ]
        )
        clock[0] = NOW + timedelta(hours=75)
        await p.check_silent_sensors()
        assert [m.topic for m in out.sent] == [ESCALATIONS, ESCALATIONS]

    async def test_a_silent_continuous_oximeter_is_found_within_minutes(self) -> None:
        """The scan looks back only as far as the shortest silence limit: a continuous
        oximeter silent for 20 minutes (limit 15) escalates, though no spot-check limit
        (36 h) has passed."""
        repo, out = InMemoryRepository(), Outbox()
        clock = [NOW]
        p = BatchProcessor(
            repo,
            out.send,
            DispatcherMetrics(),
            clock=lambda: clock[0],
            retry=RetryPolicy(first_delay_s=0.0, max_delay_s=0.0),
        )
        cid = "cit-silent02"
        readings = [
            helpers.sensor(cid, "spo2", 95, "%", NOW + timedelta(seconds=s)) for s in (0, 1)
        ]
        await p.handle(
            [incoming(helpers.discharge(cid, NOW - timedelta(hours=1)), 1, DISCHARGES)]
            + [
                Incoming(SENSOR_READINGS, 0, 2 + i, cid.encode(), json.dumps(r).encode())
                for i, r in enumerate(readings)
            ]
        )
        clock[0] = NOW + timedelta(minutes=10)
        await p.check_silent_sensors()
        assert out.sent == []
        clock[0] = NOW + timedelta(minutes=20)
        await p.check_silent_sensors()
        assert [m.topic for m in out.sent] == [ESCALATIONS]
        assert [r["rule_id"] for r in json.loads(out.sent[0].value)["reasons"]] == ["sensor.silent"]


class TestDeadLetterReplay:
    async def test_replayed_bad_message_is_not_dead_lettered_twice(self) -> None:
        """The same bad bytes at the same offset, consumed again, send no second dead letter."""
        repo, out = InMemoryRepository(), Outbox()
        p = processor(repo, out)
        await p.handle([incoming(b"not json", 9)])
        await p.handle([incoming(b"not json", 9)])
        assert [m.topic for m in out.sent] == [DEAD_LETTER]
        assert len(repo.dead_letters) == 1
