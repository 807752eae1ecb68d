"""The reconciler's pure comparison: every problem type it reports, from in-memory data.

A clean snapshot (one accepted input, its duplicate, one dead-lettered input, one escalation
decided, published, on the topic and taken by the case manager) has no problem; each case below
breaks it in one way and sees exactly that problem. The bounded-read rule (``in_snapshot``) is
tested here too: it is what keeps ``dispatcher reconcile`` finite under live traffic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from dispatcher.contract.topics import ESCALATIONS, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.planner import Incoming, dead_letter_id_for
from dispatcher.ops.reconcile import (
    PROBLEMS,
    Report,
    Snapshot,
    TopicRecord,
    in_snapshot,
    reconcile,
    summarise,
)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(minutes=5)
GRACE = timedelta(seconds=10)
EVENT = UUID("11111111-1111-4111-8111-111111111111")
ESC = UUID("22222222-2222-4222-8222-222222222222")


def event(eid: UUID = EVENT) -> bytes:
    return json.dumps({"event_id": str(eid), "citizen_id": "cit-abc123"}).encode()


def esc_bytes(esc_id: UUID = ESC, note: str = "") -> bytes:
    return json.dumps(
        {"escalation_id": str(esc_id), "citizen_id": "cit-abc123", "n": note}
    ).encode()


ACCEPTED = Incoming(NURSE_OBSERVATIONS, 0, 0, b"cit-abc123", event())
DUPLICATE = Incoming(NURSE_OBSERVATIONS, 0, 1, b"cit-abc123", event())
BAD = Incoming(SENSOR_READINGS, 2, 7, b"cit-abc123", b'{"event_id": "broken"}')
ON_TOPIC = TopicRecord(ESCALATIONS, 0, 0, b"cit-abc123", esc_bytes(), OLD)


def clean() -> Snapshot:
    inputs = [ACCEPTED, DUPLICATE, BAD]
    return Snapshot(
        inputs=inputs,
        audited={EVENT},
        dead_letter_ids={dead_letter_id_for(BAD)},
        dead_letter_event_ids=set(),
        escalations_db={ESC: OLD},
        unpublished_outbox=[],
        escalations_on_topic=Counter({ESC: 1}),
        escalations_at_case_manager={ESC},
        stuck_deliveries=[],
        undeliverable_without_failover=[],
        deliveries_delivered_twice=[],
        taken_at=NOW - timedelta(seconds=1),
        input_times={(m.topic, m.partition, m.offset): OLD for m in inputs},
        audited_sources={(ACCEPTED.topic, ACCEPTED.partition, ACCEPTED.offset): EVENT},
        dead_letter_sources={(BAD.topic, BAD.partition, BAD.offset)},
        escalation_records=[ON_TOPIC],
    )


def problems(snap: Snapshot, now: datetime = NOW) -> list[str]:
    return [p["problem"] for p in reconcile(snap, now, GRACE).problems]


def test_a_clean_snapshot_has_no_problem_and_counts_each_outcome() -> None:
    report = reconcile(clean(), NOW, GRACE)
    assert report.problems == []
    assert (report.inputs_read, report.accepted, report.duplicates, report.dead_lettered) == (
        3,
        1,
        1,
        1,
    )
    assert report.dead_lettered_by_topic == {SENSOR_READINGS: 1}
    assert (report.escalations, report.escalation_messages_read, report.in_flight) == (1, 1, 0)


def _no_outcome(s: Snapshot) -> Snapshot:
    lost = Incoming(NURSE_OBSERVATIONS, 1, 4, b"k", event(uuid4()))
    return replace(s, inputs=[*s.inputs, lost], input_times={**s.input_times, ("x", 0, 0): OLD})


def _two_outcomes(s: Snapshot) -> Snapshot:
    src = (ACCEPTED.topic, ACCEPTED.partition, ACCEPTED.offset)
    return replace(s, dead_letter_sources={*s.dead_letter_sources, src})


def _unpublished(s: Snapshot) -> Snapshot:
    return replace(s, unpublished_outbox=[(ESCALATIONS, OLD)])


def _not_on_topic(s: Snapshot) -> Snapshot:
    return replace(s, escalation_records=[], escalations_on_topic=Counter())


def _not_at_case_manager(s: Snapshot) -> Snapshot:
    return replace(s, escalations_at_case_manager=set())


def _forged(s: Snapshot) -> Snapshot:
    forged_id = uuid4()
    rec = TopicRecord(ESCALATIONS, 1, 0, b"k", esc_bytes(forged_id), OLD)
    return replace(
        s,
        escalation_records=[*s.escalation_records, rec],
        escalations_at_case_manager={*s.escalations_at_case_manager, forged_id},
    )


def _dropped(s: Snapshot) -> Snapshot:
    rec = TopicRecord(ESCALATIONS, 1, 3, b"k", b"\x00 not an escalation", OLD)
    return replace(s, escalation_records=[*s.escalation_records, rec])


def _collision(s: Snapshot) -> Snapshot:
    other = TopicRecord(ESCALATIONS, 0, 1, b"k", esc_bytes(ESC, note="different"), OLD)
    return replace(s, escalation_records=[*s.escalation_records, other])


def _stuck(s: Snapshot) -> Snapshot:
    return replace(s, stuck_deliveries=["d-1"])


def _no_failover(s: Snapshot) -> Snapshot:
    return replace(s, undeliverable_without_failover=["d-2"])


def _twice(s: Snapshot) -> Snapshot:
    return replace(s, deliveries_delivered_twice=["d-3"])


BREAKS: dict[str, Callable[[Snapshot], Snapshot]] = {
    "no_outcome": _no_outcome,
    "two_outcomes": _two_outcomes,
    "unpublished_outbox": _unpublished,
    "escalation_not_on_topic": _not_on_topic,
    "escalation_not_at_case_manager": _not_at_case_manager,
    "escalation_forged": _forged,
    "escalation_dropped": _dropped,
    "escalation_id_collision": _collision,
    "delivery_stuck": _stuck,
    "undeliverable_without_failover": _no_failover,
    "delivered_twice": _twice,
}


def test_every_problem_type_has_a_case_here() -> None:
    assert set(BREAKS) == set(PROBLEMS)


@pytest.mark.parametrize("problem", PROBLEMS)
def test_each_break_gives_exactly_its_problem(problem: str) -> None:
    """One thing broken, one problem of that type reported (and nothing else)."""
    assert problems(BREAKS[problem](clean())) == [problem]


def test_the_no_outcome_problem_locates_the_message() -> None:
    report = reconcile(_no_outcome(clean()), NOW, GRACE)
    (p,) = report.problems
    assert (p["topic"], p["partition"], p["offset"]) == (NURSE_OBSERVATIONS, 1, 4)
    assert p["event_id"] is not None
    assert len(p["sha256"]) == 16


def test_forged_escalation_is_reported_whether_or_not_the_case_manager_took_it() -> None:
    """Taken (it made a case): forged, handled. Not taken and no dead letter: forged and
    dropped. Dead-lettered by source: forged only."""
    taken = reconcile(_forged(clean()), NOW, GRACE).problems
    assert [(p["problem"], p["handled"]) for p in taken] == [("escalation_forged", True)]
    s = _forged(clean())
    s = replace(s, escalations_at_case_manager={ESC})
    assert problems(s) == ["escalation_forged", "escalation_dropped"]
    rec = s.escalation_records[-1]
    s = replace(s, dead_letter_sources={*s.dead_letter_sources, rec.source})
    assert problems(s) == ["escalation_forged"]


def test_an_unreadable_escalation_message_with_a_dead_letter_is_fine() -> None:
    s = _dropped(clean())
    rec = s.escalation_records[-1]
    s = replace(s, dead_letter_sources={*s.dead_letter_sources, rec.source})
    report = reconcile(s, NOW, GRACE)
    assert report.problems == []
    assert report.escalation_messages_dead_lettered == 1


def test_bad_input_is_found_by_source_not_by_the_writers_id_function() -> None:
    """A dead letter whose id the writer's function would give, but at another source, does
    not count; one at the message's source counts whatever its id."""
    by_id_only = replace(clean(), dead_letter_sources=set())
    assert problems(by_id_only) == ["no_outcome"]
    by_source_only = replace(clean(), dead_letter_ids=set())
    assert problems(by_source_only) == []


def test_an_accepted_source_must_carry_the_audited_event_id() -> None:
    """An audit row at the message's place but for another event (a reused offset, a writer
    bug) does not make the message accepted."""
    src = (ACCEPTED.topic, ACCEPTED.partition, ACCEPTED.offset)
    s = replace(clean(), audited_sources={src: uuid4()}, audited=set())
    assert problems(s) == ["no_outcome", "no_outcome"]


def test_a_replayed_rule_error_counts_as_dead_lettered_by_its_event_id() -> None:
    eid = uuid4()
    again = Incoming(NURSE_OBSERVATIONS, 3, 9, b"k", event(eid))
    s = replace(clean(), inputs=[*clean().inputs, again], dead_letter_event_ids={eid})
    report = reconcile(s, NOW, GRACE)
    assert (report.problems, report.dead_lettered) == ([], 2)


def test_what_is_younger_than_the_grace_is_in_flight_not_a_problem() -> None:
    young = NOW - timedelta(seconds=3)
    lost = Incoming(NURSE_OBSERVATIONS, 1, 4, b"k", event(uuid4()))
    s = replace(
        clean(),
        inputs=[*clean().inputs, lost],
        input_times={**clean().input_times, (lost.topic, lost.partition, lost.offset): young},
        escalation_records=[
            ON_TOPIC,
            TopicRecord(ESCALATIONS, 1, 3, b"k", b"not yet dead-lettered", young),
        ],
    )
    report = reconcile(s, NOW, GRACE)
    assert (report.problems, report.in_flight) == ([], 2)
    assert problems(s, NOW + timedelta(minutes=1)) == ["no_outcome", "escalation_dropped"]


def test_an_escalation_decided_after_the_topic_was_read_is_not_missing_from_it() -> None:
    """Bounded snapshot: the topic was read at T; an escalation decided within the grace
    before T (or after it) need not be on it yet."""
    late = uuid4()
    taken_at = clean().taken_at
    assert taken_at is not None
    s = replace(
        clean(),
        escalations_db={ESC: OLD, late: taken_at - timedelta(seconds=2)},
        escalations_at_case_manager={ESC, late},
    )
    assert problems(s) == []
    assert problems(s, NOW + timedelta(minutes=1)) == []  # T, not now, bounds this check


def test_copies_of_one_escalation_are_counted_not_a_problem() -> None:
    copy = replace(ON_TOPIC, offset=5)
    report = reconcile(replace(clean(), escalation_records=[ON_TOPIC, copy]), NOW, GRACE)
    assert (report.problems, report.escalation_copies_on_topic) == ([], 1)


def test_an_old_style_snapshot_still_works() -> None:
    """A Snapshot built with only the original fields (no sources or times) is still judged:
    escalations by the counter, in-flight never assumed."""
    s = clean()
    old_style = Snapshot(
        inputs=[],
        audited=s.audited,
        dead_letter_ids=s.dead_letter_ids,
        dead_letter_event_ids=set(),
        escalations_db=s.escalations_db,
        unpublished_outbox=[],
        escalations_on_topic=Counter({ESC: 2}),
        escalations_at_case_manager={ESC},
        stuck_deliveries=[],
        undeliverable_without_failover=[],
        deliveries_delivered_twice=[],
    )
    report = reconcile(old_style, NOW, GRACE)
    assert (report.problems, report.escalation_copies_on_topic) == ([], 1)


class TestSnapshotBound:
    """The bounded read: what existed at T, whatever arrives later (Tansu's end offset is the
    last batch's base offset, so the tail of that batch is taken by its timestamp)."""

    T = NOW

    def test_below_the_end_offset_is_always_in(self) -> None:
        assert in_snapshot(9, self.T + timedelta(hours=1), 10, self.T)

    def test_at_or_past_the_end_offset_produced_by_t_is_in(self) -> None:
        assert in_snapshot(10, self.T, 10, self.T)
        assert in_snapshot(12, self.T - timedelta(seconds=1), 10, self.T)

    def test_produced_after_t_is_out(self) -> None:
        assert not in_snapshot(10, self.T + timedelta(milliseconds=1), 10, self.T)

    def test_without_a_timestamp_it_is_in_and_the_quiet_time_ends_the_partition(self) -> None:
        assert in_snapshot(10, None, 10, self.T)


def test_json_and_text_output_keep_their_old_shape() -> None:
    """--json keeps every original key (fields are only added); the text keeps its lines."""
    d = reconcile(clean(), NOW, GRACE).as_dict()
    old = {
        "inputs_read",
        "accepted",
        "duplicates",
        "dead_lettered",
        "escalations",
        "escalation_copies_on_topic",
        "problems",
        "ok",
    }
    assert old <= set(d)
    assert {"in_flight", "dead_lettered_by_topic", "snapshot_taken_at"} <= set(d)
    lines = list(summarise(Report(inputs_read=3, accepted=1)))
    assert lines[0] == "inputs read 3: accepted 1, duplicates 0, dead-lettered 0"
    assert lines[1] == "escalations 0, extra copies on the topic 0"
    assert lines[-1] == "OK: nothing lost"
