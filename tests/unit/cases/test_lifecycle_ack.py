"""Acknowledgement covers what was acknowledged: update pages, quiet period, bursts, stale
acknowledgements (resolve or renew) and the new case after them. Pure lifecycle, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from uuid import uuid4

import pytest

from dispatcher.cases.lifecycle import (
    FINDINGS,
    RENEWAL,
    AckPolicy,
    Case,
    CaseDecision,
    Silence,
    TransitionError,
    acknowledge,
    finding_summary,
    findings_view,
    lapsed,
    on_ack_timeout,
    on_escalation,
    on_stale_ack,
    resolve,
)
from dispatcher.contract.events import Escalation, Reason, Route
from dispatcher.contract.vocab import CaseState
from dispatcher.routing.router import Target
from tests.unit.cases.test_lifecycle import DOCTOR, FALLBACK, MINUTES, NOW, NURSE, route_for

POLICY = AckPolicy(
    quiet_period=timedelta(minutes=60),
    stale_after=timedelta(hours=12),
    burst_window=timedelta(minutes=5),
)
ACKED_AT = NOW + timedelta(minutes=5)
MIN = timedelta(minutes=1)


def escalation(
    severity: str = "high", rule: str = "news2.medium", tier: str = "nurse", *rules: str
) -> Escalation:
    return Escalation(
        escalation_id=uuid4(),
        case_id=uuid4(),
        citizen_id="cit-abc123",
        created_at=NOW,
        severity=severity,
        route=Route(tier=tier, team="x", competence="copd", reason="test"),
        reasons=[Reason(rule_id=r, rule_version=1, summary="s") for r in (rule, *rules)],
        ack_deadline=NOW + timedelta(minutes=MINUTES[severity]),
        triggered_by=[uuid4()],
    )


def decide(
    esc: Escalation,
    case: Case | None,
    at: datetime,
    silences: list[Silence] | None = None,
    seq: int = 2,
) -> CaseDecision:
    return on_escalation(esc, case, silences or [], route_for, now=at, page_seq=seq, policy=POLICY)


def opened(severity: str = "high", rule: str = "news2.medium", tier: str = "nurse") -> Case:
    d = decide(escalation(severity, rule, tier), None, NOW, seq=1)
    assert d.case is not None
    return d.case


def acked(severity: str = "high", rule: str = "news2.medium", tier: str = "nurse") -> Case:
    d = acknowledge(opened(severity, rule, tier), "rn-1", ACKED_AT)
    assert d.case is not None
    return d.case


def silence(rule_id: str | None = None) -> Silence:
    return Silence(
        uuid4(),
        "cit-abc123",
        rule_id,
        NOW - timedelta(hours=1),
        NOW + timedelta(days=1),
        "rn-2",
        "planned visit",
    )


@dataclass(frozen=True)
class Row:
    """One row of the decision table for an acknowledged high case (news2.medium at NOW,
    acknowledged at NOW + 5 min): an escalation at ``at``, what becomes of it."""

    name: str
    at: datetime
    severity: str
    rule: str
    action: str
    page: str | None
    target: Target | None
    state: CaseState


TABLE = [
    Row("new rule", NOW + 10 * MIN, "medium", "sensor.fall", "renotified", "update", NURSE,
        CaseState.NOTIFIED),
    Row("new rule at the same severity", NOW + 10 * MIN, "high", "nurse.worry", "renotified",
        "update", NURSE, CaseState.NOTIFIED),
    Row("same rule 1 s inside the quiet period", NOW + 60 * MIN - timedelta(seconds=1), "high",
        "news2.medium", "attached", None, None, CaseState.ACKNOWLEDGED),
    Row("same rule exactly at the quiet period", NOW + 60 * MIN, "high", "news2.medium",
        "renotified", "update", NURSE, CaseState.NOTIFIED),
    Row("same rule 10 h later", NOW + timedelta(hours=10), "high", "news2.medium", "renotified",
        "update", NURSE, CaseState.NOTIFIED),
    Row("same rule, lower severity, within the quiet period", NOW + 30 * MIN, "medium",
        "news2.medium", "attached", None, None, CaseState.ACKNOWLEDGED),
    Row("higher severity", NOW + 10 * MIN, "critical", "news2.high", "raised",
        "severity_raised", DOCTOR, CaseState.NOTIFIED),
    Row("1 s before the acknowledgement goes stale", ACKED_AT + timedelta(hours=12, seconds=-1),
        "high", "news2.medium", "renotified", "update", NURSE, CaseState.NOTIFIED),
    Row("exactly when the acknowledgement goes stale", ACKED_AT + timedelta(hours=12), "medium",
        "news2.medium", "opened", "new", NURSE, CaseState.NOTIFIED),
]  # fmt: skip


class TestAcknowledgedCaseTable:
    @pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
    def test_decision(self, row: Row) -> None:
        case = acked()
        d = decide(escalation(row.severity, row.rule), case, row.at, seq=2)
        assert d.action == row.action
        assert d.case is not None
        assert d.case.state == row.state
        if row.page is None:
            assert d.page is None
        else:
            assert d.page is not None
            assert (d.page.kind, d.page.target) == (row.page, row.target)
        assert "why" in d.events[0].detail  # every decision explains itself

    def test_update_page_has_a_new_deadline_and_keeps_the_rung(self) -> None:
        at = NOW + timedelta(hours=10)
        d = decide(escalation("medium", "sensor.fall"), acked(), at, seq=2)
        assert d.case is not None
        assert d.page is not None
        assert d.case.ack_deadline == at + timedelta(minutes=15)  # the case's minutes (high)
        assert d.page.ack_deadline == d.case.ack_deadline
        assert (d.case.level, d.case.severity) == (0, "high")
        assert d.page.page_seq == 2
        assert d.page.reason.startswith("update: new finding sensor.fall")
        assert d.case.detail["rules"] == ["news2.medium", "sensor.fall"]
        assert [e.action for e in d.events] == ["renotified", "paged"]
        why = d.events[0].detail
        assert why["new_rules"] == ["sensor.fall"]
        assert why["acknowledged_by"] == "rn-1"

    def test_recurring_rule_says_how_long_it_was_quiet(self) -> None:
        d = decide(escalation("high", "news2.medium"), acked(), NOW + timedelta(hours=10))
        assert d.page is not None
        assert "news2.medium again after 10 h quiet (quiet period 60 min)" in d.page.reason
        assert d.events[0].detail["recurring_rules"] == ["news2.medium"]
        assert d.events[0].detail["quiet_for_min"] == {"news2.medium": 600.0}

    def test_quiet_period_counts_from_the_rules_last_firing_not_the_ack(self) -> None:
        """A rule that kept firing (every 40 min) never went quiet: it stays covered."""
        case = acked()
        for minutes in (40, 80, 120):
            d = decide(escalation("high", "news2.medium"), case, NOW + minutes * MIN)
            assert d.action == "attached"
            assert d.case is not None
            case = d.case
        assert case.detail[FINDINGS]["news2.medium"]["count"] == 4

    def test_covered_attach_says_why(self) -> None:
        d = decide(escalation("high", "news2.medium"), acked(), NOW + 20 * MIN)
        why = d.events[0].detail["why"]
        assert "within the 60 min quiet period" in why
        assert "covered by the acknowledgement by rn-1" in why

    def test_silence_holds_back_the_update_page(self) -> None:
        s = silence("sensor.fall")
        d = decide(escalation("medium", "sensor.fall"), acked(), NOW + MIN * 10, [s])
        assert (d.action, d.page, d.silence_id) == ("silenced", None, s.silence_id)
        assert d.case is not None
        assert d.case.state == CaseState.ACKNOWLEDGED
        assert "held back by a silence" in d.events[0].detail["why"]

    def test_a_legacy_case_without_findings_counts_quiet_from_its_opening(self) -> None:
        case = acked()
        legacy = replace(case, detail={k: v for k, v in case.detail.items() if k != FINDINGS})
        assert decide(escalation(), legacy, NOW + 59 * MIN).action == "attached"
        assert decide(escalation(), legacy, NOW + 60 * MIN).action == "renotified"

    def test_unacknowledged_case_still_attaches_new_rules(self) -> None:
        """Awaiting acknowledgement: the page out (and its re-escalation) covers it."""
        d = decide(escalation("medium", "sensor.fall"), opened(), NOW + timedelta(hours=10))
        assert (d.action, d.page) == ("attached", None)
        assert "awaits acknowledgement" in d.events[0].detail["why"]


class TestDoctorLevel:
    def test_doctor_to_doctor_attach_within_the_quiet_period(self) -> None:
        """An acknowledged doctor case, a doctor-routed repeat of its rule: attached."""
        case = acked("critical", "news2.high")
        d = decide(escalation("high", "news2.high", "doctor"), case, ACKED_AT + MIN)
        assert (d.action, d.page) == ("attached", None)

    def test_doctor_to_doctor_attach_awaiting_ack(self) -> None:
        d = decide(
            escalation("high", "sensor.fall", "doctor"), opened("critical", "news2.high"), NOW
        )
        assert (d.action, d.page) == ("attached", None)

    def test_nurse_finding_on_an_acknowledged_doctor_case_updates_the_doctor(self) -> None:
        """Inhibition spares the nurse a page, not the doctor who acknowledged the case."""
        case = acked("critical", "news2.high")
        d = decide(escalation("medium", "nurse.worry"), case, ACKED_AT + 30 * MIN)
        assert d.action == "renotified"
        assert d.page is not None
        assert (d.page.kind, d.page.target) == ("update", DOCTOR)
        assert "doctor-level case's assignee is told" in d.events[0].detail["note"]

    def test_nurse_finding_on_an_unacknowledged_doctor_case_is_inhibited(self) -> None:
        d = decide(escalation("medium", "nurse.worry"), opened("critical", "news2.high"), NOW)
        assert (d.action, d.page) == ("inhibited", None)
        assert "why" in d.events[0].detail


class TestUpdateAcknowledged:
    def renotified(self) -> Case:
        d = decide(escalation("medium", "sensor.fall"), acked(), NOW + timedelta(hours=2))
        assert d.case is not None
        return d.case

    def test_acknowledging_the_update_covers_the_new_finding(self) -> None:
        at = NOW + timedelta(hours=2, minutes=3)
        d = acknowledge(self.renotified(), "rn-2", at)
        assert d.case is not None
        assert (d.case.state, d.case.acknowledged_by, d.case.acknowledged_at) == (
            CaseState.ACKNOWLEDGED,
            "rn-2",
            at,
        )
        assert d.events[0].detail["covers"] == ["news2.medium", "sensor.fall"]
        again = decide(escalation("medium", "sensor.fall"), d.case, at + 10 * MIN)
        assert (again.action, again.page) == ("attached", None)

    def test_an_unacknowledged_update_re_escalates_at_its_deadline(self) -> None:
        case = self.renotified()
        assert on_ack_timeout(case, case.ack_deadline - timedelta(seconds=1), 3) is None
        d = on_ack_timeout(case, case.ack_deadline, 3)
        assert d is not None
        assert d.page is not None
        assert (d.page.kind, d.page.target) == ("re_escalated", FALLBACK)

    def test_a_second_ack_is_idempotent(self) -> None:
        first = acknowledge(opened(), "rn-1", ACKED_AT)
        assert first.case is not None
        second = acknowledge(first.case, "rn-2", ACKED_AT + MIN)
        assert (second.case, second.events) == (first.case, ())


class TestBursts:
    def test_three_falls_in_two_minutes_page_once_and_count_three(self) -> None:
        first = decide(escalation("high", "sensor.fall"), None, NOW, seq=1)
        assert first.page is not None
        case = first.case
        pages = [first.page]
        for minutes in (1, 2):
            d = decide(escalation("high", "sensor.fall"), case, NOW + minutes * MIN)
            assert d.action == "attached"
            if d.page is not None:
                pages.append(d.page)
            case = d.case
        assert case is not None
        assert len(pages) == 1
        record = case.detail[FINDINGS]["sensor.fall"]
        assert (record["count"], record["burst_count"]) == (3, 3)
        assert findings_view(case)[0]["summary"] == "3 x sensor.fall within 2 min"
        assert "3 x sensor.fall within 2 min" in d.events[0].detail["why"]

    def test_the_burst_window_boundary_starts_a_new_burst(self) -> None:
        case = opened("high", "sensor.fall")
        inside = decide(
            escalation("high", "sensor.fall"), case, NOW + 5 * MIN - timedelta(seconds=1)
        )
        assert inside.case is not None
        assert inside.case.detail[FINDINGS]["sensor.fall"]["burst_count"] == 2
        at_edge = decide(escalation("high", "sensor.fall"), inside.case, NOW + 5 * MIN)
        assert at_edge.case is not None
        record = at_edge.case.detail[FINDINGS]["sensor.fall"]
        assert (record["count"], record["burst_count"]) == (3, 1)
        assert finding_summary("sensor.fall", record) == "sensor.fall (3 in all on this case)"

    def test_a_burst_on_an_acknowledged_case_updates_once(self) -> None:
        """Acknowledged; a fall 10 h later re-notifies; the next two of its burst attach."""
        case = acked("high", "sensor.fall")
        t = NOW + timedelta(hours=10)
        actions = []
        for k in range(3):
            d = decide(escalation("high", "sensor.fall"), case, t + k * MIN)
            actions.append((d.action, d.page.kind if d.page else None))
            case = d.case  # type: ignore[assignment]
        assert actions == [("renotified", "update"), ("attached", None), ("attached", None)]
        assert case.detail[FINDINGS]["sensor.fall"]["burst_count"] == 3

    def test_one_escalation_with_two_rules_counts_each(self) -> None:
        d = decide(escalation("high", "news2.medium", "nurse", "sensor.fall"), None, NOW, seq=1)
        assert d.case is not None
        assert sorted(d.case.detail[FINDINGS]) == ["news2.medium", "sensor.fall"]


class TestStaleAcknowledgement:
    STALE = ACKED_AT + timedelta(hours=12)

    def test_boundary(self) -> None:
        case = acked()
        assert not lapsed(case, self.STALE - timedelta(seconds=1), POLICY)
        assert lapsed(case, self.STALE, POLICY)
        assert on_stale_ack(case, self.STALE - timedelta(seconds=1), 2, POLICY) is None
        assert not lapsed(opened(), self.STALE, POLICY)  # awaiting ack: the deadline scan's
        done = resolve(case, "rn-1", "treated_at_home", NOW).case
        assert done is not None
        assert not lapsed(done, self.STALE, POLICY)

    def test_asks_the_team_once_to_resolve_or_renew(self) -> None:
        d = on_stale_ack(acked(), self.STALE, 2, POLICY)
        assert d is not None
        assert d.case is not None
        assert d.page is not None
        assert (d.action, d.page.kind, d.page.target) == (
            "renewal_asked",
            "resolve_or_renew",
            NURSE,
        )
        assert "resolve it, or acknowledge it again to renew it for 12 h" in d.page.reason
        assert d.case.state == CaseState.ACKNOWLEDGED  # no deadline: nothing re-escalates it
        assert d.case.detail[RENEWAL]["page_seq"] == 2
        assert [e.action for e in d.events] == ["renewal_asked", "paged"]
        assert on_stale_ack(d.case, self.STALE + timedelta(hours=1), 3, POLICY) is None

    def test_acknowledging_again_renews(self) -> None:
        asked = on_stale_ack(acked(), self.STALE, 2, POLICY)
        assert asked is not None
        assert asked.case is not None
        at = self.STALE + 10 * MIN
        d = acknowledge(asked.case, "rn-3", at)
        assert d.action == "renewed"
        assert d.case is not None
        assert (d.case.acknowledged_at, d.case.acknowledged_by) == (at, "rn-3")
        assert RENEWAL not in d.case.detail
        assert d.events[0].detail["previous_ack"]["by"] == "rn-1"
        assert not lapsed(d.case, at + timedelta(hours=12, seconds=-1), POLICY)
        again = on_stale_ack(d.case, at + timedelta(hours=12), 3, POLICY)
        assert again is not None  # a renewed acknowledgement goes stale again

    def test_a_later_finding_opens_a_new_case_and_supersedes_the_stale_one(self) -> None:
        stale = acked()
        esc = escalation("medium", "sensor.fall")
        d = decide(esc, stale, self.STALE + MIN, seq=7)
        assert d.action == "opened"
        assert d.case is not None
        assert d.page is not None
        assert d.case.case_id == esc.case_id != stale.case_id
        assert (d.page.page_seq, d.page.kind) == (1, "new")  # page 1 of the new case
        assert d.case.detail["supersedes"] == str(stale.case_id)
        assert f"supersedes case {stale.case_id}" in d.page.reason
        assert d.case.detail[FINDINGS]["sensor.fall"]["count"] == 1  # counting starts afresh
        assert d.superseded is not None
        assert d.superseded.superseded_by == d.case.case_id
        assert d.superseded.state == CaseState.ACKNOWLEDGED  # still the team's to resolve
        assert [e.action for e in d.superseded_events] == ["superseded"]
        assert "left unresolved for 12 h" in d.superseded_events[0].detail["why"]
        assert "why" in d.events[0].detail

    def test_a_silenced_finding_on_a_stale_case_opens_nothing(self) -> None:
        d = decide(escalation("medium", "sensor.fall"), acked(), self.STALE, [silence()])
        assert (d.action, d.case, d.superseded) == ("silenced", None, None)

    def test_a_superseded_case_is_neither_asked_nor_renewed(self) -> None:
        d = decide(escalation("medium", "sensor.fall"), acked(), self.STALE)
        old = d.superseded
        assert old is not None
        assert on_stale_ack(old, self.STALE + MIN, 2, POLICY) is None
        with pytest.raises(TransitionError, match="superseded"):
            acknowledge(old, "rn-1", self.STALE + MIN)
        assert resolve(old, "rn-1", "other", self.STALE + MIN).case is not None

    def test_stale_after_is_a_parameter(self) -> None:
        short = AckPolicy(stale_after=timedelta(hours=1))
        assert lapsed(acked(), ACKED_AT + timedelta(hours=1), short)
        assert not lapsed(acked(), ACKED_AT + timedelta(hours=1), POLICY)


def test_page_example_findings_are_what_the_lifecycle_writes() -> None:
    """schemas/examples/acute.pages.json shows ``findings`` and ``supersedes`` as page_payload
    writes them; each summary is the lifecycle's own wording for its record."""
    import json
    from pathlib import Path

    from dispatcher.store.cases import page_payload

    example = json.loads(
        (Path(__file__).resolve().parents[3] / "schemas/examples/acute.pages.json").read_text()
    )
    d = decide(escalation("high", "sensor.fall"), None, NOW, seq=1)
    assert d.case is not None
    assert d.page is not None
    payload = page_payload(d.case, d.page, None)
    assert {"findings", "supersedes"} <= set(example) <= set(payload)
    assert set(payload["findings"][0]) == set(example["findings"][0])
    for record in example["findings"]:
        assert finding_summary(record["rule_id"], record) == record["summary"]


def test_an_update_at_the_last_rung_restarts_its_unacknowledged_count() -> None:
    """The doctor was re-paged until the fallback, then acknowledged; an update page starts a
    new unacknowledged period: its first repeat is a plain re-page, not "not acknowledged after
    K pages" counted from before the acknowledgement."""
    from dispatcher.cases.lifecycle import LAST_RUNG

    case = opened("critical", "news2.high")
    fallback = []
    for seq in (2, 3):  # two repeats at the doctor: the second carries the fallback
        d = on_ack_timeout(case, case.ack_deadline, seq)
        assert d is not None
        assert d.case is not None
        assert d.page is not None
        fallback.append(d.page.unacknowledged is not None)
        case = d.case
    assert fallback == [False, True]
    acked_case = acknowledge(case, "md-1", case.ack_deadline - MIN).case
    assert acked_case is not None
    at = acked_case.ack_deadline + timedelta(hours=1)
    update = decide(escalation("high", "sensor.fall", "doctor"), acked_case, at, seq=4)
    assert update.action == "renotified"
    assert update.case is not None
    assert update.case.detail[LAST_RUNG] == {"since": at.isoformat(), "pages": 1}
    repeat = on_ack_timeout(update.case, update.case.ack_deadline, 5)
    assert repeat is not None
    assert repeat.page is not None
    assert repeat.page.unacknowledged is None
