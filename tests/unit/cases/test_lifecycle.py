"""Case lifecycle: grouping, severity raise, inhibition, silences, deadlines, ack and resolve."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from dispatcher.cases.lifecycle import (
    LAST_RUNG,
    Case,
    Silence,
    TransitionError,
    acknowledge,
    escalate_one_rung,
    last_rung_backlog,
    last_rung_overdue,
    on_ack_timeout,
    on_delivery_failed,
    on_escalation,
    resolve,
)
from dispatcher.cases.pages import (
    FALLBACK_AFTER_REPEATS,
    FALLBACK_INSTRUCTION,
    Page,
    Unacknowledged,
)
from dispatcher.contract.events import Escalation, Reason, Route
from dispatcher.contract.vocab import CaseState
from dispatcher.routing.router import RouteDecision, Target

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NURSE = Target("north", "nurse", "n-1", "copd")
FALLBACK = Target("south", "nurse", "s-1", "copd")
DOCTOR = Target("doc", "doctor", "d-1", "doctor")
MINUTES = {"medium": 30, "high": 15, "critical": 5}


def escalation(
    severity: str = "high", rule: str = "news2.medium", tier: str = "nurse"
) -> Escalation:
    return Escalation(
        escalation_id=uuid4(),
        case_id=uuid4(),
        citizen_id="cit-abc123",
        created_at=NOW,
        severity=severity,  # type: ignore[arg-type]
        route=Route(tier=tier, team="x", competence="copd", reason="test"),  # type: ignore[arg-type]
        reasons=[Reason(rule_id=rule, rule_version=1, summary="s")],
        ack_deadline=NOW + timedelta(minutes=MINUTES[severity]),
        triggered_by=[uuid4()],
    )


def route_for(severity: str) -> RouteDecision:
    if severity == "critical":
        return RouteDecision(chain=(DOCTOR,), steps=("critical",))
    return RouteDecision(chain=(NURSE, FALLBACK, DOCTOR), steps=("nurse",))


def opened(severity: str = "high") -> Case:
    d = on_escalation(escalation(severity), None, [], route_for, now=NOW, page_seq=1)
    assert d.case is not None
    return d.case


class TestGrouping:
    def test_first_escalation_opens_a_case_and_pages_the_first_rung(self) -> None:
        """A citizen's first escalation opens a case, pages rung 0, deadline = urgency."""
        d = on_escalation(escalation(), None, [], route_for, now=NOW, page_seq=1)
        assert d.action == "opened"
        assert d.page is not None
        assert d.page.target == NURSE
        assert d.case is not None
        assert d.case.ack_deadline == NOW + timedelta(minutes=15)

    def test_same_severity_joins_the_open_case_without_a_page(self) -> None:
        """A second escalation of the same severity attaches silently."""
        d = on_escalation(escalation(), opened(), [], route_for, now=NOW, page_seq=2)
        assert (d.action, d.page) == ("attached", None)

    def test_higher_severity_reroutes_and_pages_again(self) -> None:
        """A critical escalation on a high case re-routes it to the doctor and pages."""
        d = on_escalation(
            escalation("critical", "news2.high"), opened(), [], route_for, now=NOW, page_seq=2
        )
        assert d.action == "raised"
        assert d.page is not None
        assert d.page.target == DOCTOR
        assert d.page.kind == "severity_raised"

    def test_open_doctor_case_inhibits_nurse_pages(self) -> None:
        """With a doctor-level case open, a nurse-level escalation is recorded as inhibited."""
        doctor_case = opened("critical")
        d = on_escalation(
            escalation("medium", "nurse.worry"), doctor_case, [], route_for, now=NOW, page_seq=2
        )
        assert (d.action, d.page) == ("inhibited", None)

    def test_doctor_routed_escalation_on_a_doctor_case_attaches(self) -> None:
        """Inhibition holds back only lower-tier pages: a doctor-routed one simply attaches."""
        doctor_case = opened("critical")
        d = on_escalation(
            escalation("high", "news2.high", tier="doctor"),
            doctor_case,
            [],
            route_for,
            now=NOW,
            page_seq=2,
        )
        assert (d.action, d.page) == ("attached", None)

    def test_attached_escalation_adds_its_rules_to_the_case(self) -> None:
        """Joining a case merges the escalation's rules into the case's, sorted and once each."""
        case = opened()  # rules: news2.medium
        d = on_escalation(escalation("medium", "a.first"), case, [], route_for, now=NOW, page_seq=2)
        assert d.case is not None
        assert d.case.detail["rules"] == ["a.first", "news2.medium"]
        assert d.case.severity == "high"  # a lower severity changes nothing else

    def test_response_time_is_at_least_one_minute(self) -> None:
        """An escalation whose deadline is its creation time still gets one minute to ack."""
        esc = escalation().model_copy(update={"ack_deadline": NOW})
        d = on_escalation(esc, None, [], route_for, now=NOW, page_seq=1)
        assert d.case is not None
        assert (d.case.ack_minutes, d.case.ack_deadline) == (1, NOW + timedelta(minutes=1))


class TestSilences:
    def silence(self, **over: object) -> Silence:
        base = {
            "silence_id": uuid4(),
            "citizen_id": "cit-abc123",
            "rule_id": None,
            "starts_at": NOW - timedelta(hours=1),
            "ends_at": NOW + timedelta(hours=1),
            "author": "rn-1",
            "reason": "known chronic low SpO2",
            "include_critical": False,
        }
        base.update(over)
        return Silence(**base)  # type: ignore[arg-type]

    def test_active_silence_suppresses_the_page(self) -> None:
        """A matching silence means no case and no page, with the silence named."""
        s = self.silence()
        d = on_escalation(escalation(), None, [s], route_for, now=NOW, page_seq=1)
        assert (d.action, d.case, d.page, d.silence_id) == ("silenced", None, None, s.silence_id)

    @pytest.mark.parametrize(
        "over",
        [
            {"rule_id": "sensor.fall"},
            {"ends_at": NOW - timedelta(minutes=1)},
            {"citizen_id": "cit-other1"},
        ],
        ids=["other-rule", "expired", "other-citizen"],
    )
    def test_non_matching_silence_does_not_suppress(self, over: dict[str, object]) -> None:
        """A silence for another rule, citizen or time lets the page through."""
        d = on_escalation(
            escalation(), None, [self.silence(**over)], route_for, now=NOW, page_seq=1
        )
        assert d.action == "opened"

    def test_critical_is_never_silenced_unless_the_silence_says_so(self) -> None:
        """Critical escalations pass an ordinary silence; include_critical silences them."""
        esc = escalation("critical", "news2.high")
        assert (
            on_escalation(esc, None, [self.silence()], route_for, now=NOW, page_seq=1).action
            == "opened"
        )
        assert (
            on_escalation(
                esc, None, [self.silence(include_critical=True)], route_for, now=NOW, page_seq=1
            ).action
            == "silenced"
        )

    def test_silence_holds_back_the_page_of_a_severity_raise(self) -> None:
        """A raise under a matching silence updates the case's severity but pages nobody."""
        s = self.silence()
        d = on_escalation(escalation("high"), opened("medium"), [s], route_for, now=NOW, page_seq=2)
        assert (d.action, d.page, d.silence_id) == ("raised", None, s.silence_id)
        assert d.case is not None
        assert d.case.severity == "high"
        assert [e.action for e in d.events] == ["severity_raised", "silenced"]


class TestDeadlines:
    def test_nothing_happens_before_the_deadline(self) -> None:
        """Before the deadline the timeout check is a no-op."""
        assert on_ack_timeout(opened(), NOW + timedelta(minutes=14), 2) is None

    def test_each_timeout_climbs_one_rung_to_the_doctor_and_stays(self) -> None:
        """Unacknowledged: nurse -> fallback nurse -> doctor, then the doctor is paged again."""
        case = opened()
        targets = []
        t = NOW
        for seq in range(2, 6):
            t = case.ack_deadline
            d = on_ack_timeout(case, t, seq)
            assert d is not None
            assert d.page is not None
            case = d.case  # type: ignore[assignment]
            targets.append(d.page.target.team_id)
        assert targets == ["south", "doc", "doc", "doc"]
        assert case.state == CaseState.RE_ESCALATED

    def test_acknowledged_case_does_not_reescalate(self) -> None:
        """After an acknowledgement a passed deadline changes nothing."""
        acked = acknowledge(opened(), "rn-1", NOW).case
        assert acked is not None
        assert on_ack_timeout(acked, NOW + timedelta(hours=1), 2) is None
        assert on_delivery_failed(acked, NOW, 2) is None

    def test_undeliverable_push_fails_over_at_once(self) -> None:
        """An undeliverable page moves the case to the next rung without waiting."""
        d = on_delivery_failed(opened(), NOW + timedelta(minutes=1), 2)
        assert d is not None
        assert d.page is not None
        assert (d.page.kind, d.page.target) == ("delivery_failed", FALLBACK)


class TestAckResolve:
    def test_ack_then_resolve_records_actor_and_outcome(self) -> None:
        """Acknowledge and resolve set state, actor, time and outcome, each as an event."""
        acked = acknowledge(opened(), "rn-1", NOW)
        assert acked.case is not None
        done = resolve(acked.case, "rn-1", "treated_at_home", NOW + timedelta(minutes=40))
        assert done.case is not None
        assert done.case.state == CaseState.RESOLVED
        assert (done.case.acknowledged_by, done.case.outcome) == ("rn-1", "treated_at_home")
        assert [e.action for e in (*acked.events, *done.events)] == ["acknowledged", "resolved"]

    def test_acting_on_a_resolved_case_is_refused(self) -> None:
        """A resolved case cannot be acknowledged or resolved again."""
        done = resolve(opened(), "rn-1", "false_alarm", NOW).case
        assert done is not None
        with pytest.raises(TransitionError):
            acknowledge(done, "rn-2", NOW)
        with pytest.raises(TransitionError):
            resolve(done, "rn-2", "admitted", NOW)


class TestNobodyLeftUnacknowledged:
    """The last rung re-paged: from the FALLBACK_AFTER_REPEATS-th repeat the page says so and
    carries the fallback instruction; ``last_rung_overdue`` feeds the metric and its alert."""

    @staticmethod
    def timeouts(case: Case, n: int) -> tuple[Case, list[Page]]:
        """``n`` deadlines pass in a row, each exactly at the case's deadline."""
        pages: list[Page] = []
        for seq in range(2, n + 2):
            d = on_ack_timeout(case, case.ack_deadline, seq)
            assert d is not None
            assert d.case is not None
            assert d.page is not None
            case = d.case
            pages.append(d.page)
        return case, pages

    def test_repeat_n_minus_1_is_a_plain_repeat(self) -> None:
        """Critical (the doctor only, 5 min): the first N-1 repeats are ordinary re-pages."""
        case, pages = self.timeouts(opened("critical"), FALLBACK_AFTER_REPEATS - 1)
        assert all(p.unacknowledged is None for p in pages)
        assert "not acknowledged after" not in pages[-1].reason
        assert FALLBACK_INSTRUCTION not in pages[-1].reason
        assert case.detail[LAST_RUNG] == {
            "since": NOW.isoformat(),
            "pages": FALLBACK_AFTER_REPEATS,
        }

    def test_repeat_n_says_so_and_carries_the_fallback(self) -> None:
        """The N-th repeat says how many pages over how many minutes went unanswered and
        carries the fallback instruction (payload field and reason)."""
        _, pages = self.timeouts(opened("critical"), FALLBACK_AFTER_REPEATS)
        page = pages[-1]
        minutes = FALLBACK_AFTER_REPEATS * 5
        assert page.unacknowledged == Unacknowledged(FALLBACK_AFTER_REPEATS, minutes)
        summary = f"not acknowledged after {FALLBACK_AFTER_REPEATS} pages over {minutes} minutes"
        assert page.unacknowledged.summary == summary
        assert summary in page.reason
        assert FALLBACK_INSTRUCTION in page.reason
        assert "112" in page.unacknowledged.instruction
        assert page.target == DOCTOR
        assert page.unacknowledged.as_dict()["instruction"] == FALLBACK_INSTRUCTION

    def test_every_later_repeat_keeps_saying_so_with_growing_numbers(self) -> None:
        _, pages = self.timeouts(opened("critical"), FALLBACK_AFTER_REPEATS + 2)
        tail = [p.unacknowledged for p in pages[FALLBACK_AFTER_REPEATS - 1 :]]
        assert [(u.pages, u.minutes) for u in tail if u is not None] == [
            (k, 5 * k) for k in range(FALLBACK_AFTER_REPEATS, FALLBACK_AFTER_REPEATS + 3)
        ]

    def test_counting_starts_when_the_last_rung_is_reached(self) -> None:
        """High: nurse -> fallback -> doctor; the doctor's pages are counted from the move, so
        the fallback comes at the doctor's N-th repeat, not earlier."""
        _, pages = self.timeouts(opened("high"), 2 + FALLBACK_AFTER_REPEATS)
        assert [p.target for p in pages[:2]] == [FALLBACK, DOCTOR]
        assert [p.unacknowledged is not None for p in pages] == [False] * (
            1 + FALLBACK_AFTER_REPEATS
        ) + [True]
        assert pages[-1].unacknowledged == Unacknowledged(
            FALLBACK_AFTER_REPEATS, 15 * FALLBACK_AFTER_REPEATS
        )

    def test_fallback_after_is_a_parameter(self) -> None:
        d = escalate_one_rung(opened("critical"), NOW, 2, "why", "re_escalated", fallback_after=1)
        assert d.page is not None
        assert d.page.unacknowledged == Unacknowledged(1, 0)

    def test_a_case_stored_without_the_record_counts_from_its_current_page(self) -> None:
        """A case stored before the record existed: its current page counts as the first."""
        case = opened("critical")
        legacy = replace(case, detail={k: v for k, v in case.detail.items() if k != LAST_RUNG})
        _, pages = self.timeouts(legacy, FALLBACK_AFTER_REPEATS)
        assert pages[-1].unacknowledged == Unacknowledged(
            FALLBACK_AFTER_REPEATS, 5 * FALLBACK_AFTER_REPEATS
        )

    def test_a_severity_raise_starts_counting_again(self) -> None:
        """A raise re-routes from rung 0: the old count does not carry over."""
        case, _ = self.timeouts(opened("high"), 3)  # at the doctor, one repeat
        assert case.detail[LAST_RUNG]["pages"] == 2
        d = on_escalation(
            escalation("critical", "news2.high"), case, [], route_for, now=NOW, page_seq=9
        )
        assert d.case is not None
        assert d.case.detail[LAST_RUNG] == {"since": NOW.isoformat(), "pages": 1}

    def test_overdue_only_after_the_last_rungs_first_deadline(self) -> None:
        """The metric's definition: at the last rung, unacknowledged, first deadline passed."""
        case = opened("critical")
        assert last_rung_overdue(case, NOW + timedelta(minutes=5) - timedelta(seconds=1)) is None
        assert last_rung_overdue(case, NOW + timedelta(minutes=5)) == timedelta(minutes=5)
        later, _ = self.timeouts(case, 2)  # re-paged twice: the deadline moved, still overdue
        assert last_rung_overdue(later, NOW + timedelta(minutes=10)) == timedelta(minutes=10)
        assert last_rung_overdue(opened("high"), NOW + timedelta(hours=1)) is None  # rung 0
        acked = acknowledge(later, "md-1", NOW).case
        assert acked is not None
        assert last_rung_overdue(acked, NOW + timedelta(hours=1)) is None

    def test_backlog_counts_per_severity_with_the_oldest_age(self) -> None:
        at = NOW + timedelta(minutes=20)
        critical_old = opened("critical")
        critical_new = replace(
            opened("critical"),
            detail={LAST_RUNG: {"since": (NOW + timedelta(minutes=10)).isoformat(), "pages": 1}},
        )
        high_at_doctor, _ = self.timeouts(opened("high"), 2)  # at the doctor since NOW + 30
        assert last_rung_backlog([critical_old, critical_new, high_at_doctor], at) == {
            "critical": (2, 1200.0)
        }
        assert last_rung_backlog([], at) == {}


def test_page_example_shows_the_unacknowledged_fallback_as_the_payload_carries_it() -> None:
    """schemas/examples/acute.pages.json (the page on acute.pages.<team> and the webhook) is a
    last-rung page with the fallback: its fields are ones page_payload writes, its
    ``unacknowledged`` is exactly what the lifecycle produces for that page."""
    import json
    from pathlib import Path

    from dispatcher.store.cases import page_payload

    example = json.loads(
        (Path(__file__).resolve().parents[3] / "schemas/examples/acute.pages.json").read_text()
    )
    case = opened("critical")
    case, pages = TestNobodyLeftUnacknowledged.timeouts(case, FALLBACK_AFTER_REPEATS)
    payload = page_payload(case, pages[-1], None)
    assert set(example) <= set(payload)
    assert example["unacknowledged"] == payload["unacknowledged"]
    assert example["kind"] == payload["kind"] == "re_escalated"
    assert example["reason"] == payload["reason"]
