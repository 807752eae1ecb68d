"""Nurse-observation rules and the explanation every assessment carries."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.contract.events import NurseObservation
from dispatcher.contract.vocab import SEVERITY_RANK
from dispatcher.rules.assessment import (
    ENGINE_KINDS,
    OBSERVATION_EVALUATORS,
    SENSOR_EVALUATORS,
    TIMER_EVALUATORS,
    Assessment,
    evaluate,
)
from dispatcher.rules.context import (
    CitizenContext,
    baseline_news2,
    empty_context,
    record_news2,
)
from dispatcher.rules.first_route import first_route
from dispatcher.rules.ruleset import RULE_KINDS, News2BandRule, News2TrendRule, default_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import observation_model as observation

RS = default_ruleset()
BAND_SEVERITY = {r.band: r.severity for r in RS.rules if isinstance(r, News2BandRule)}
TREND = next(r for r in RS.rules if isinstance(r, News2TrendRule))


def fired(a: Assessment) -> set[str]:
    return {r.rule_id for r in a.reasons}


class TestNurseWorry:
    """Nurse worry escalates on its own (Danish TOBS practice)."""

    def test_worry_with_score_zero_escalates(self) -> None:
        """A worried nurse escalates even with NEWS2 0."""
        a, _ = evaluate(observation(worried=True), None, NOW, RS)
        assert a.news2 is not None
        assert a.news2.total == 0
        assert a.escalate
        assert fired(a) == {"nurse.worry"}

    def test_no_worry_score_zero_is_routine(self) -> None:
        """Without worry, NEWS2 0 does not escalate and says routine monitoring (RCP 2017
        chart 4)."""
        a, _ = evaluate(observation(), None, NOW, RS)
        assert not a.escalate
        assert a.reasons == []
        assert a.news2_urgency == "routine monitoring"


class TestNews2Bands:
    """NEWS2 bands map to severities through the rule set (RCP 2017 charts 2 and 4)."""

    @pytest.mark.parametrize(
        ("vitals", "total", "band"),
        [
            ({"respiration_rate": 22, "pulse": 115}, 4, "low"),  # 2 + 2
            ({"respiration_rate": 22, "pulse": 115, "temperature": 38.5}, 5, "medium"),  # +1
            ({"respiration_rate": 26, "pulse": 115, "temperature": 38.5}, 6, "medium"),  # 3+2+1
            ({"consciousness": "C"}, 3, "low-medium"),  # a single red score
        ],
    )
    def test_band_sets_severity(self, vitals: dict[str, object], total: int, band: str) -> None:
        """Each band fires its rule at the rule set's severity; the low band fires none."""
        a, _ = evaluate(observation(**vitals), None, NOW, RS)
        assert a.news2 is not None
        assert (a.news2.total, a.news2.risk) == (total, band)
        if band == "low":
            assert not a.escalate
        else:
            assert a.severity == BAND_SEVERITY[band]
            assert any(r.rule_id.startswith("news2.") for r in a.reasons)

    def test_seven_is_high_and_critical(self) -> None:
        """NEWS2 7 is the emergency threshold: high band, the rule set's severity for it."""
        a, _ = evaluate(
            observation(respiration_rate=26, pulse=115, temperature=39.5), None, NOW, RS
        )  # 3 + 2 + 2 = 7 (chart 1)
        assert a.news2 is not None
        assert a.news2.total == 7
        assert a.news2.risk == "high"
        assert a.severity == BAND_SEVERITY["high"]
        assert "news2.high" in fired(a)

    def test_unresponsive_is_critical(self) -> None:
        """ACVPU U fires the consciousness rule at critical severity."""
        a, _ = evaluate(observation(consciousness="U"), None, NOW, RS)
        assert "consciousness.reduced" in fired(a)
        assert a.severity == "critical"


class TestConsciousness:
    """Issue 12 item 9: new V, P or U alone is an emergency (critical, doctor); new confusion
    alone stays high (urgent, nurse). RCP NEWS2 2017 charts 1, 2 and 4."""

    @pytest.mark.parametrize("level", ["V", "P", "U"])
    def test_new_v_p_or_u_alone_is_critical_and_goes_to_the_doctor(self, level: str) -> None:
        """With every other vital normal (NEWS2 3, a single red score), V, P or U is critical
        with the 5-minute deadline and routes to the on-call doctor."""
        a, ctx = evaluate(observation(consciousness=level), None, NOW, RS)
        assert a.news2 is not None
        assert a.news2.total == 3
        assert a.news2.subscores["consciousness"] == 3
        assert a.severity == "critical"
        assert fired(a) == {"consciousness.reduced", "news2.red_score"}
        reason = next(r for r in a.reasons if r.rule_id == "consciousness.reduced")
        assert reason.inputs == {"consciousness": level}
        assert a.response_minutes == RS.ack_minutes.critical
        route = first_route(a, ctx)
        assert route.tier == "doctor"

    def test_new_confusion_alone_is_high_and_goes_to_a_nurse(self) -> None:
        """New confusion with every other vital normal is high (urgent response), not an
        emergency: the acute-team nurse within 15 minutes."""
        a, ctx = evaluate(observation(consciousness="C"), None, NOW, RS)
        assert a.severity == "high"
        assert fired(a) == {"consciousness.new_confusion", "news2.red_score"}
        assert a.response_minutes == RS.ack_minutes.high
        assert first_route(a, ctx).tier == "nurse"

    def test_alert_fires_no_consciousness_rule(self) -> None:
        """Alert (A) is the normal edge: no consciousness rule fires."""
        a, _ = evaluate(observation(consciousness="A"), None, NOW, RS)
        assert not {r for r in fired(a) if r.startswith("consciousness.")}
        assert not a.escalate

    def test_confusion_with_news2_seven_is_critical(self) -> None:
        """Confusion does not cap the severity: with NEWS2 >= 7 it is critical by the band."""
        a, _ = evaluate(
            observation(consciousness="C", respiration_rate=26, pulse=115), None, NOW, RS
        )  # 3 + 3 + 2 = 8
        assert a.severity == "critical"
        assert {"consciousness.new_confusion", "news2.high"} <= fired(a)

    def test_palliative_citizen_with_p_goes_to_the_palliative_pathway(self) -> None:
        """A critical V/P/U for a palliative citizen still routes to the palliative team."""
        _, ctx = evaluate(discharge(flags=["palliative"]), None, NOW, RS)
        a, ctx = evaluate(observation(consciousness="P"), ctx, NOW, RS)
        assert a.severity == "critical"
        assert first_route(a, ctx).tier == "palliative"


class TestPostDischargeVigilance:
    """NEWS2 >= 3 escalates within the post-discharge window only."""

    def ctx(self, days_ago: float) -> CitizenContext:
        return evaluate(discharge(at=NOW - timedelta(days=days_ago)), None, NOW, RS)[1]

    def test_inside_window_escalates(self) -> None:
        """NEWS2 3 two days after discharge escalates with the post-discharge rule."""
        a, _ = evaluate(observation(respiration_rate=22, temperature=38.5), self.ctx(2), NOW)
        assert a.news2 is not None
        assert a.news2.total == 3
        assert fired(a) == {"post_discharge.news2"}

    def test_outside_window_does_not(self) -> None:
        """The same NEWS2 3 after the window does not escalate."""
        days = RS.context.post_discharge_window_days + 1
        a, _ = evaluate(observation(respiration_rate=22, temperature=38.5), self.ctx(days), NOW)
        assert not a.escalate


class TestNews2Trend:
    """NEWS2 rising by >= 2 against the previous observation within 24 h escalates."""

    def test_rise_of_two_within_a_day_escalates(self) -> None:
        """NEWS2 0 then 2 four hours later fires the trend rule."""
        _, ctx = evaluate(observation(at=NOW - timedelta(hours=4)), None, NOW, RS)
        a, _ = evaluate(observation(respiration_rate=22), ctx, NOW, RS)  # 21-24 scores 2
        assert a.news2 is not None
        assert a.news2.total == TREND.min_rise
        assert fired(a) == {TREND.id}
        reason = a.reasons[0]
        assert reason.inputs["baseline_total"] == 0
        assert reason.inputs["rise"] == TREND.min_rise

    def test_rise_of_one_does_not(self) -> None:
        """A rise smaller than min_rise does not fire."""
        _, ctx = evaluate(observation(at=NOW - timedelta(hours=4)), None, NOW, RS)
        a, _ = evaluate(observation(respiration_rate=10), ctx, NOW, RS)  # 9-11 scores 1
        assert TREND.id not in fired(a)

    def test_previous_outside_window_does_not(self) -> None:
        """A rise against an observation older than within_hours does not fire."""
        before = NOW - timedelta(hours=TREND.within_hours + 1)
        _, ctx = evaluate(observation(at=before), None, NOW, RS)
        a, _ = evaluate(observation(respiration_rate=22), ctx, NOW, RS)
        assert TREND.id not in fired(a)


class TestPalliativePathway:
    """Palliative citizens route to the palliative pathway, never an emergency call."""

    def test_critical_palliative_case_routes_palliative(self) -> None:
        """Even NEWS2 >= 7 routes a palliative citizen to the palliative team and says why."""
        _, ctx = evaluate(discharge(flags=["palliative"]), None, NOW, RS)
        a, ctx = evaluate(
            observation(respiration_rate=26, pulse=135, consciousness="V"), ctx, NOW, RS
        )
        assert a.escalate
        route = first_route(a, ctx)
        assert route.tier == "palliative"
        assert a.treatment_limitations == ["palliative"]
        assert any("112" in n for n in a.notes)

    def test_non_palliative_critical_goes_to_doctor(self) -> None:
        """Without the limitation, a critical case goes to the on-call doctor."""
        a, ctx = evaluate(observation(consciousness="U"), None, NOW, RS)
        assert first_route(a, ctx).tier == "doctor"


class TestExplanation:
    """Every assessment explains itself."""

    def test_escalation_carries_rules_inputs_and_deadline(self) -> None:
        """Rule ids and versions, NEWS2 sub-scores, competence, rule set and deadline are all
        present and consistent."""
        _, ctx = evaluate(discharge(diagnoses=["J44.1"]), None, NOW, RS)
        a, _ = evaluate(observation(pulse=135, worried=True), ctx, NOW, RS)
        versions = {r.id: r.version for r in RS.rules}
        assert a.reasons
        for reason in a.reasons:
            assert reason.rule_version == versions[reason.rule_id]
            assert reason.summary
        assert a.news2 is not None
        assert a.news2.subscores["pulse"] == 3
        assert a.competence == "copd"
        assert a.ruleset == RS.label
        assert a.response_minutes is not None
        assert a.response_deadline == a.assessed_at + timedelta(minutes=a.response_minutes)

    def test_severity_is_the_highest_fired(self) -> None:
        """The assessment's severity is the maximum over the rules that fired."""
        a, _ = evaluate(observation(pulse=135, worried=True), None, NOW, RS)
        severities = {r.id: r.severity for r in RS.rules if hasattr(r, "severity")}
        top = max((severities[r.rule_id] for r in a.reasons), key=SEVERITY_RANK.__getitem__)
        assert a.severity == top

    def test_missing_vitals_are_explained(self) -> None:
        """An observation with vitals missing lists them and notes the total is a lower bound."""
        a, _ = evaluate(observation(temperature=None, systolic_bp=None), None, NOW, RS)
        assert a.news2 is not None
        assert set(a.news2.missing) == {"temperature", "systolic_bp"}
        assert any("lower bound" in n for n in a.notes)

    def test_assessment_json_round_trips(self) -> None:
        """The assessment loads back from its JSON (it is stored in the audit log)."""
        a, _ = evaluate(observation(worried=True), None, NOW, RS)
        assert Assessment.model_validate_json(a.model_dump_json()) == a


class TestEntryPoint:
    """evaluate() is pure and guards its inputs."""

    def test_same_input_same_output(self) -> None:
        """Evaluating the same event and context twice gives equal results."""
        obs = observation(pulse=120)
        assert evaluate(obs, None, NOW, RS) == evaluate(obs, None, NOW, RS)

    def test_context_of_another_citizen_is_refused(self) -> None:
        """A context for a different citizen is an error, never silently used."""
        with pytest.raises(ValueError, match="citizen"):
            evaluate(observation(), empty_context("cit-000001"), NOW, RS)

    def test_empty_context_and_none_give_the_same_assessment(self) -> None:
        """evaluate() with an empty context equals evaluate() with None (a new citizen); the
        assessment does not depend on how the caller spells "no context"."""
        obs = observation(worried=True)
        ctx = empty_context(obs.citizen_id)
        assert evaluate(obs, ctx, NOW, RS)[0] == evaluate(obs, None, NOW, RS)[0]

    def test_every_rule_kind_has_exactly_one_evaluator(self) -> None:
        """The registry covers every kind of the Rule union once (observation, sensor, timer
        or the engine itself): a new rule model cannot be silently ignored."""
        homes = [
            set(OBSERVATION_EVALUATORS),
            set(SENSOR_EVALUATORS),
            set(TIMER_EVALUATORS),
            set(ENGINE_KINDS),
        ]
        assert set().union(*homes) == RULE_KINDS
        assert sum(len(h) for h in homes) == len(RULE_KINDS)

    def test_unscorable_observation_does_not_fake_a_trend(self) -> None:
        """An observation with nothing scorable (only an implausible SpO2) is not recorded as
        NEWS2 0, so the next observation is compared with the last real score."""
        _, ctx = evaluate(observation(at=NOW - timedelta(hours=3), pulse=115), None, NOW, RS)
        bare = observation(
            at=NOW - timedelta(hours=2),
            respiration_rate=None,
            on_oxygen=None,
            systolic_bp=None,
            pulse=None,
            consciousness=None,
            temperature=None,
            spo2=120,
        )
        _, ctx = evaluate(bare, ctx, NOW, RS)
        assert [e.total for e in ctx.news2_history] == [2]
        assert ctx.last_observation_at == bare.occurred_at
        a, _ = evaluate(observation(respiration_rate=22, pulse=115), ctx, NOW, RS)  # 2 + 2
        trend = next(r for r in a.reasons if r.rule_id == TREND.id)
        assert trend.inputs["baseline_total"] == 2
        assert trend.inputs["rise"] == 2


class TestNumbersAsDevicesSendThem:
    """Issue 12 item 4: decimals are scored after half-up rounding to the chart's resolution,
    noted; an unusable vital is dropped with its reason and the rest is assessed."""

    def test_decimal_spo2_is_rounded_scored_and_noted(self) -> None:
        """SpO2 88.5 is charted as 89 (scale 1: 3 points), temperature 37.85 as 37.9."""
        a, _ = evaluate(observation(spo2=88.5, temperature=37.85), None, NOW, RS)
        assert a.news2 is not None
        assert a.news2.subscores["spo2"] == 3
        assert a.news2.subscores["temperature"] == 0
        assert "news2.red_score" in fired(a)
        note = next(n for n in a.notes if n.startswith("Rounded half-up"))
        assert "spo2 88.5 -> 89" in note
        assert "temperature 37.85 -> 37.9" in note

    def test_half_a_percent_below_a_band_edge_rounds_up(self) -> None:
        """SpO2 91.5 is charted as 92 (2 points), 91.4 as 91 (3 points)."""
        up, _ = evaluate(observation(spo2=91.5), None, NOW, RS)
        down, _ = evaluate(observation(spo2=91.4), None, NOW, RS)
        assert up.news2 is not None
        assert down.news2 is not None
        assert (up.news2.subscores["spo2"], down.news2.subscores["spo2"]) == (2, 3)

    def test_whole_numbers_are_not_noted(self) -> None:
        """No rounding note when every value is already on the chart."""
        a, _ = evaluate(observation(), None, NOW, RS)
        assert not [n for n in a.notes if n.startswith("Rounded")]

    def test_unusable_vital_is_dropped_and_the_rest_assessed(self) -> None:
        """spo2 "high" is dropped (listed with its reason, reported missing); the alarming
        respiration rate and pulse are still scored and escalate."""
        obs = NurseObservation.model_validate(
            {
                **observation().model_dump(mode="json"),
                "spo2": "high",
                "respiration_rate": 26,
                "pulse": 135,
            }
        )
        a, _ = evaluate(obs, None, NOW, RS)
        assert [d.field for d in a.dropped] == ["spo2"]
        assert a.news2 is not None
        assert "spo2" in a.news2.missing
        assert a.news2.subscores["respiration_rate"] == 3
        assert a.news2.subscores["pulse"] == 3
        assert a.escalate
        assert any(n.startswith("Dropped") and "spo2" in n for n in a.notes)


class TestNeverSilent:
    """Issue 12 item 3: an implausible or unusable vital prompts a re-measurement (medium, a
    person acts); an incomplete set names what is missing and asks for it; every assessment
    says why it did or did not escalate."""

    @pytest.mark.parametrize("spo2", [120, 30])
    def test_quarantined_spo2_with_normal_set_prompts_remeasure(self, spo2: int) -> None:
        """SpO2 120 or 30 (outside 50-100) with every other vital normal escalates medium to
        the district nurses with "re-measure now", never "routine monitoring"."""
        a, ctx = evaluate(observation(spo2=spo2), None, NOW, RS)
        assert a.escalate
        assert a.severity == "medium"
        assert fired(a) == {"observation.remeasure", "news2.incomplete"}  # incomplete: low
        reason = next(r for r in a.reasons if r.rule_id == "observation.remeasure")
        assert reason.inputs["fields"] == ["spo2"]
        assert reason.inputs["observer"] == "nurse-031"
        assert "Re-measure now" in reason.summary
        assert a.news2_urgency == "incomplete set"
        assert a.news2_urgency != "routine monitoring"
        assert first_route(a, ctx).tier == "nurse"

    def test_plausible_edges_do_not_prompt(self) -> None:
        """SpO2 50 and 100 are plausible (the limits are inclusive): scored, no re-measure."""
        for spo2 in (50, 100):
            a, _ = evaluate(observation(spo2=spo2), None, NOW, RS)
            assert "observation.remeasure" not in fired(a)
            assert a.quarantined == []

    def test_dropped_vital_prompts_remeasure(self) -> None:
        """An unusable value (dropped) is re-measured like an implausible one."""
        body = {**observation().model_dump(mode="json"), "pulse": "fast"}
        a, _ = evaluate(NurseObservation.model_validate(body), None, NOW, RS)
        assert "observation.remeasure" in fired(a)
        reason = next(r for r in a.reasons if r.rule_id == "observation.remeasure")
        assert reason.inputs["fields"] == ["pulse"]

    def test_incomplete_set_names_missing_and_asks_without_paging(self) -> None:
        """Temperature and systolic missing, the rest normal: news2.incomplete names them at low
        severity (no page), the urgency is "incomplete set", not routine monitoring."""
        a, _ = evaluate(observation(temperature=None, systolic_bp=None), None, NOW, RS)
        assert not a.escalate
        assert fired(a) == {"news2.incomplete"}
        reason = a.reasons[0]
        assert reason.inputs["missing"] == ["systolic_bp", "temperature"]
        assert "measure them now" in reason.summary
        assert a.news2_urgency == "incomplete set"

    @pytest.mark.parametrize(("rate", "escalates"), [(22, False), (26, True)])
    def test_incomplete_lower_bound_edge(self, rate: int, escalates: bool) -> None:
        """Lower bound 2 (RR 22) stays low; 3 (RR 26, also a red score) raises the request to
        medium at least: the full score may reach 5."""
        a, _ = evaluate(
            observation(respiration_rate=rate, temperature=None, systolic_bp=None), None, NOW, RS
        )
        incomplete = next(r for r in a.reasons if r.rule_id == "news2.incomplete")
        assert incomplete.inputs["total_lower_bound"] == (2 if rate == 22 else 3)
        assert a.escalate == escalates

    def test_incomplete_lower_bound_three_without_red_escalates_medium(self) -> None:
        """RR 22 (2) + temperature 38.5 (1) = 3 with SpO2 missing: medium, complete the set."""
        a, _ = evaluate(
            observation(respiration_rate=22, temperature=38.5, spo2=None), None, NOW, RS
        )
        assert a.severity == "medium"
        assert fired(a) == {"news2.incomplete"}

    def test_complete_set_fires_no_incomplete_rule(self) -> None:
        """A full set never fires news2.incomplete."""
        a, _ = evaluate(observation(), None, NOW, RS)
        assert "news2.incomplete" not in fired(a)

    def test_decision_note_for_no_escalation_names_the_quiet_rules(self) -> None:
        """A normal set says it did not escalate and which rules were evaluated but quiet."""
        a, _ = evaluate(observation(), None, NOW, RS)
        [decision] = [n for n in a.notes if n.startswith("Decision:")]
        assert decision.startswith("Decision: no escalation")
        assert "Did not fire:" in decision
        for rule_id in ("news2.high", "consciousness.reduced", "nurse.worry", "news2.trend"):
            assert rule_id in decision

    def test_decision_note_for_escalation_names_the_rules(self) -> None:
        """An escalation says its severity and the rules (with their severities) behind it."""
        a, _ = evaluate(observation(pulse=135, worried=True), None, NOW, RS)
        [decision] = [n for n in a.notes if n.startswith("Decision:")]
        assert decision.startswith("Decision: escalate high because")
        assert "news2.red_score (high)" in decision
        assert "nurse.worry (medium)" in decision

    @given(
        rate=st.none() | st.integers(0, 60),
        spo2=st.none() | st.integers(0, 130),
        pulse=st.none() | st.integers(0, 400),
        worried=st.booleans(),
    )
    @settings(max_examples=60, deadline=None)
    def test_every_assessment_says_why(
        self, rate: int | None, spo2: int | None, pulse: int | None, worried: bool
    ) -> None:
        """Whatever the vitals, there is exactly one decision note and it matches the
        decision; a quarantined vital always escalates at least medium."""
        obs = observation(respiration_rate=rate, spo2=spo2, pulse=pulse, worried=worried)
        a, _ = evaluate(obs, None, NOW, RS)
        [decision] = [n for n in a.notes if n.startswith("Decision:")]
        assert decision.startswith("Decision: escalate") == a.escalate
        if a.quarantined:
            assert SEVERITY_RANK[a.severity] >= SEVERITY_RANK["medium"]
        assert a.news2_urgency != "routine monitoring" or (
            a.news2 is not None and not a.news2.missing
        )


PARTIAL = {"respiration_rate": None, "on_oxygen": None, "systolic_bp": None, "temperature": None}


def _fold(*observations: NurseObservation) -> CitizenContext | None:
    ctx = None
    for o in observations:
        _, ctx = evaluate(o, ctx, NOW, RS)
    return ctx


class TestTrendOverARollingBaseline:
    """Issue 12 item 6: NEWS2 against the lowest complete set of the last within_hours hours;
    partial sets never count as baseline; once per rise."""

    def test_slow_rise_over_a_day_fires(self) -> None:
        """0 -> 1 -> 2 over 20 hours: each step is 1, but 2 above the baseline 0 fires."""
        ctx = _fold(
            observation(at=NOW - timedelta(hours=20)),
            observation(at=NOW - timedelta(hours=12), respiration_rate=10),  # 1
        )
        a, _ = evaluate(observation(respiration_rate=22), ctx, NOW, RS)  # 2
        trend = next(r for r in a.reasons if r.rule_id == TREND.id)
        assert trend.inputs["baseline_total"] == 0
        assert trend.inputs["rise"] == 2
        assert trend.inputs["previous_total"] == 1

    def test_partial_set_scored_zero_is_not_a_baseline(self) -> None:
        """Full set 3, then a partial set scoring 0, then a full set 3: no jump, no trend."""
        ctx = _fold(
            observation(at=NOW - timedelta(hours=6), respiration_rate=26),  # 3
            observation(
                at=NOW - timedelta(hours=3),
                respiration_rate=None,
                **{k: v for k, v in PARTIAL.items() if k != "respiration_rate"},
            ),  # spo2, pulse, consciousness only: 0, partial
        )
        assert ctx is not None
        assert [e.total for e in ctx.news2_baseline] == [3]
        a, _ = evaluate(observation(respiration_rate=26), ctx, NOW, RS)
        assert TREND.id not in fired(a)

    def test_once_per_rise_then_again_when_worse(self) -> None:
        """0, then 2 (fires), then 2 (noted, no second page), then 3 (fires again)."""
        o0 = observation(at=NOW - timedelta(hours=6))
        o2 = observation(at=NOW - timedelta(hours=4), respiration_rate=22)
        o2b = observation(at=NOW - timedelta(hours=2), respiration_rate=22)
        o3 = observation(respiration_rate=22, temperature=38.5)
        ctx = _fold(o0)
        a2, ctx = evaluate(o2, ctx, NOW, RS)
        a2b, ctx = evaluate(o2b, ctx, NOW, RS)
        a3, _ = evaluate(o3, ctx, NOW, RS)
        assert TREND.id in fired(a2)
        assert TREND.id not in fired(a2b)
        assert any("already raised" in n for n in a2b.notes)
        assert TREND.id in fired(a3)

    @pytest.mark.parametrize(("hours_before", "fires"), [(24.0, True), (24.01, False)])
    def test_window_edge(self, hours_before: float, fires: bool) -> None:
        """A baseline exactly within_hours before counts; one just older does not."""
        ctx = _fold(observation(at=NOW - timedelta(hours=hours_before)))
        a, _ = evaluate(observation(respiration_rate=22), ctx, NOW, RS)
        assert (TREND.id in fired(a)) == fires

    def test_no_baseline_is_said(self) -> None:
        """Without a complete set in the window the assessment says there is no baseline."""
        a, _ = evaluate(observation(respiration_rate=22), None, NOW, RS)
        assert any("no trend baseline" in n for n in a.notes)

    @given(
        st.lists(
            st.tuples(st.integers(0, 10), st.booleans(), st.integers(1, 6)),
            min_size=1,
            max_size=12,
        )
    )
    @settings(max_examples=80, deadline=None)
    def test_baseline_equals_the_brute_force_window_minimum(
        self, steps: list[tuple[int, bool, int]]
    ) -> None:
        """For in-order observations, the kept baseline is the minimum of the complete totals
        in the window, as a brute force over every set gives (bounded queue large enough)."""
        ctx = empty_context("cit-7f3a9c")
        at = NOW - timedelta(days=5)
        seen: list[tuple[datetime, int]] = []
        for total, complete, gap_h in steps:
            at += timedelta(hours=gap_h)
            window = [t for when, t in seen if at - timedelta(hours=24) <= when < at]
            base = baseline_news2(ctx, at, 24)
            assert (base.total if base else None) == (min(window) if window else None)
            ctx = record_news2(ctx, at, total, complete, keep=3, baseline_keep=21)
            if complete:
                seen.append((at, total))


class TestOutOfOrderObservations:
    """Issue 12 item 8: each observation is assessed on its own merit at its own time."""

    def test_worrying_late_observation_after_a_newer_normal_one_pages(self) -> None:
        """NEWS2 7 from 08:00 arriving after a normal set from 08:30 pages (critical)."""
        ctx = _fold(observation(at=NOW - timedelta(minutes=30)))
        late = observation(
            at=NOW - timedelta(hours=1), respiration_rate=26, pulse=115, temperature=39.5
        )
        a, new_ctx = evaluate(late, ctx, NOW, RS)
        assert a.severity == "critical"
        assert "news2.high" in fired(a)
        assert not a.stale
        assert a.suppressed == []
        note = next(n for n in a.notes if n.startswith("Arrived out of order"))
        assert "NEWS2 0" in note
        assert new_ctx.last_observation_at == NOW - timedelta(minutes=30)
        assert [e.total for e in new_ctx.news2_history] == [7, 0]

    def test_late_observation_uses_the_baseline_before_its_own_time(self) -> None:
        """The trend of a late set compares with the sets before *its* time, not the newest."""
        ctx = _fold(
            observation(at=NOW - timedelta(hours=10)),  # 0: the baseline for the late set
            observation(at=NOW, respiration_rate=22, temperature=38.5),  # 3, newer
        )
        late = observation(at=NOW - timedelta(hours=5), respiration_rate=22)  # 2
        a, _ = evaluate(late, ctx, NOW, RS)
        trend = next(r for r in a.reasons if r.rule_id == TREND.id)
        assert trend.inputs["baseline_total"] == 0
        assert trend.inputs["baseline_at"] == (NOW - timedelta(hours=10)).isoformat()

    def test_in_order_observation_has_no_out_of_order_note(self) -> None:
        """Observations in time order say nothing about ordering."""
        ctx = _fold(observation(at=NOW - timedelta(hours=1)))
        a, _ = evaluate(observation(), ctx, NOW, RS)
        assert not [n for n in a.notes if "out of order" in n]

    @given(st.permutations(list(range(5))))
    @settings(max_examples=30, deadline=None)
    def test_any_arrival_order_gives_each_set_its_own_decision(self, order: list[int]) -> None:
        """Whatever the arrival order of five sets, each alarming one pages and the context
        ends the same (history in time order, latest = the newest)."""
        sets = [
            observation(at=NOW - timedelta(hours=5 - i), **({"pulse": 135} if i % 2 else {}))
            for i in range(5)
        ]
        ctx: CitizenContext | None = None
        for i in order:
            a, ctx = evaluate(sets[i], ctx, NOW, RS)
            assert a.escalate == bool(i % 2)
        assert ctx is not None
        assert ctx.last_observation_at == sets[-1].occurred_at
        assert [e.at for e in ctx.news2_history] == [s.occurred_at for s in sets[-3:]]


class TestRouteNameBounds:
    """A maximal district name still gives a valid route (found by a planner fuzz test once
    the re-measure rule made an all-implausible observation escalate)."""

    @pytest.mark.parametrize("flags", [[], ["palliative"]])
    def test_120_character_district_routes(self, flags: list[str]) -> None:
        """District names up to the contract's 120 characters (and lower-casing that grows,
        'İ' -> 'i̇') give team names within 120 characters."""
        _, ctx = evaluate(discharge(district="İ" * 120, flags=flags), None, NOW, RS)
        a, ctx = evaluate(observation(spo2=120), ctx, NOW, RS)
        route = first_route(a, ctx)
        assert len(route.team) <= 120
        assert route.team.startswith("palliative-" if flags else "acute-nurses-")
