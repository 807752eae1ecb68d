"""Valid-but-extreme events of all three topics through the pure planner (decode_batch +
plan_batch): nothing raises, every message gets exactly one outcome, no rule errors on valid
input, and a normal deteriorating observation later in the same batch is still escalated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.ingest.decoding import Decoded, decode
from dispatcher.ingest.planner import BatchPlan, Incoming, decode_batch, plan_batch
from tests import helpers
from tests.unit.ingest import event_strategies as es

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ONE = "cit-fuzz0x00001"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def incoming(items: list[tuple[str, dict[str, Any]]]) -> list[Incoming]:
    return [
        Incoming(topic, i % 4, i, body["citizen_id"].encode(), es.encode(body))
        for i, (topic, body) in enumerate(items)
    ]


def outcomes(plan: BatchPlan) -> list[tuple[str, int]]:
    """(topic, offset) of every outcome the plan gives a message."""
    return (
        [(a.incoming.topic, a.incoming.offset) for a in plan.audits]
        + [(d.source_topic, d.offset) for d in plan.dead_letters]
        + [(d.incoming.topic, d.incoming.offset) for d in plan.duplicates]
    )


def run_batch(items: list[tuple[str, dict[str, Any]]]) -> tuple[list[Incoming], BatchPlan]:
    messages = incoming(items)
    for m in messages:  # the strategies are meant to be valid: say which field if not
        result = decode(m.topic, m.value, NOW)
        assert isinstance(result, Decoded), (m.topic, getattr(result, "errors", None))
    accepted, dead = decode_batch(messages, NOW)
    plan = plan_batch(accepted, dead, set(), {}, NOW)
    return messages, plan


def check(items: list[tuple[str, dict[str, Any]]]) -> None:
    """Extreme ``items``, then one normal deteriorating observation of a fresh citizen."""
    sentinel = helpers.deteriorating(es.fresh_citizen(), at=NOW)
    messages, plan = run_batch([*items, (NURSE_OBSERVATIONS, sentinel)])
    got = outcomes(plan)
    assert sorted(got) == sorted((m.topic, m.offset) for m in messages)  # exactly one each
    rule_errors = [d for d in plan.dead_letters if d.category == DeadLetterCategory.RULE_ERROR]
    assert [d.error.reason for d in rule_errors] == []
    last = messages[-1]
    audit = [a for a in plan.audits if a.incoming.offset == last.offset]
    assert [a.outcome for a in audit] == ["escalated"]
    assert any(sentinel["event_id"] in {str(t) for t in e.triggered_by} for e in plan.escalations)


class TestExtremeEventsThroughThePlanner:
    @FUZZ
    @given(st.lists(es.discharges(NOW), min_size=1, max_size=4))
    def test_discharges(self, bodies: list[dict[str, Any]]) -> None:
        check([(DISCHARGES, b) for b in bodies])

    @FUZZ
    @given(st.lists(es.sensor_readings(NOW), min_size=1, max_size=8))
    def test_sensor_readings(self, bodies: list[dict[str, Any]]) -> None:
        check([(SENSOR_READINGS, b) for b in bodies])

    @FUZZ
    @given(st.lists(es.nurse_observations(NOW), min_size=1, max_size=8))
    def test_nurse_observations(self, bodies: list[dict[str, Any]]) -> None:
        check([(NURSE_OBSERVATIONS, b) for b in bodies])

    @settings(FUZZ, max_examples=40)
    @given(
        st.lists(es.sensor_readings(NOW, ONE), min_size=10, max_size=60),
        st.lists(es.events(NOW, ONE), max_size=4),
        st.randoms(use_true_random=False),
    )
    def test_one_citizen_many_events_of_all_topics(
        self,
        readings: list[dict[str, Any]],
        others: list[tuple[str, dict[str, Any]]],
        rnd: Any,
    ) -> None:
        """Many readings, plus observations and discharges, of ONE citizen in odd time order
        fold into one context without a rule error; the next citizen is still paged."""
        items = [(SENSOR_READINGS, b) for b in readings] + others
        rnd.shuffle(items)
        check(items)

    @settings(FUZZ, max_examples=50)
    @given(st.lists(es.events(NOW), min_size=1, max_size=6))
    def test_replayed_batch_is_all_duplicates(
        self, items: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """The same extreme batch again, with its event ids seen: every message is a known
        duplicate, nothing is audited or escalated twice."""
        messages, first = run_batch(items)
        seen = {a.event.event_id for a in first.audits}
        accepted, dead = decode_batch(messages, NOW)
        again = plan_batch(accepted, dead, seen, dict(first.contexts), NOW)
        assert again.audits == []
        assert again.escalations == []
        assert len(again.duplicates) == len(first.audits)
