"""Sensor rules: debounce, falls, weight gain, silence, plausibility and ordering."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import yaml

from dispatcher.contract.events import InputEvent, SensorKind
from dispatcher.rules.assessment import Assessment, evaluate, silent_sensor_check
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import (
    RuleSet,
    SustainedSensorRule,
    default_ruleset,
    default_ruleset_text,
    parse_ruleset,
)
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import observation_model as observation
from tests.helpers import reading_model as reading

RS = default_ruleset()
SPO2_RULE = next(
    r for r in RS.rules if isinstance(r, SustainedSensorRule) and r.sensor == SensorKind.SPO2
)
LOW_SPO2 = (SPO2_RULE.at_or_below or 0) - 3  # clearly below the scale-1 threshold
GOOD_SPO2 = 97


def run(
    events: Iterable[InputEvent], ctx: CitizenContext | None = None, rs: RuleSet = RS
) -> tuple[list[Assessment], CitizenContext]:
    out: list[Assessment] = []
    for ev in events:
        a, ctx = evaluate(ev, ctx, NOW, rs)
        out.append(a)
    assert ctx is not None
    return out, ctx


def spo2_series(values: list[float], start: datetime, every_min: float) -> list[InputEvent]:
    """Readings from a worn oximeter that declares itself continuous: the debounce (sustained)
    rules apply, not the spot-check single-reading limits (tested in test_rules_spot.py)."""
    return [
        reading(
            SensorKind.SPO2, v, at=start + timedelta(minutes=i * every_min), profile="continuous"
        )
        for i, v in enumerate(values)
    ]


def fired(a: Assessment) -> set[str]:
    return {r.rule_id for r in a.reasons}


class TestDesaturationDebounce:
    """Sustained desaturation escalates; a single artefact does not."""

    def test_single_low_reading_does_not_escalate(self) -> None:
        """One low SpO2 reading between normal ones is treated as a possible artefact."""
        start = NOW - timedelta(minutes=30)
        results, _ = run(spo2_series([GOOD_SPO2, LOW_SPO2, GOOD_SPO2], start, 5))
        assert not any(a.escalate for a in results)
        assert any("debounce" in n for n in results[1].notes)

    def test_sustained_low_readings_escalate_once(self) -> None:
        """min_readings low readings spanning min_minutes escalate on the reading that completes
        the run, and later readings of the same run do not page again."""
        n = SPO2_RULE.min_readings
        step = SPO2_RULE.min_minutes / (n - 1) + 1
        start = NOW - timedelta(hours=1)
        results, _ = run(spo2_series([LOW_SPO2] * (n + 2), start, step))
        escalated = [i for i, a in enumerate(results) if a.escalate]
        assert escalated == [n - 1]
        assert SPO2_RULE.id in fired(results[n - 1])
        assert results[n - 1].severity == SPO2_RULE.severity
        assert any("already escalated" in note for note in results[n].notes)

    def test_readings_in_a_burst_are_not_enough(self) -> None:
        """Enough low readings within less than min_minutes do not yet escalate."""
        n = SPO2_RULE.min_readings
        start = NOW - timedelta(minutes=10)
        results, _ = run(spo2_series([LOW_SPO2] * n, start, 0.1))
        assert not any(a.escalate for a in results)

    def test_a_long_gap_breaks_the_run(self) -> None:
        """Low readings further apart than max_gap_minutes do not form a sustained run."""
        n = SPO2_RULE.min_readings
        gap = SPO2_RULE.max_gap_minutes + 1
        start = NOW - timedelta(minutes=gap * n)
        results, _ = run(spo2_series([LOW_SPO2] * n, start, gap))
        assert not any(a.escalate for a in results)

    def test_a_new_run_after_recovery_escalates_again(self) -> None:
        """After a normal reading ends the run, a new sustained run escalates again."""
        n = SPO2_RULE.min_readings
        step = SPO2_RULE.min_minutes / (n - 1) + 1
        values = [LOW_SPO2] * n + [GOOD_SPO2] + [LOW_SPO2] * n
        results, _ = run(spo2_series(values, NOW - timedelta(hours=2), step))
        assert [i for i, a in enumerate(results) if a.escalate] == [n - 1, 2 * n]

    def test_scale_2_citizen_uses_the_scale_2_threshold(self) -> None:
        """For hypercapnic respiratory failure, saturations in the 88-92 % target never trigger
        the desaturation rule (RCP 2017 chart 1, scale 2)."""
        _, ctx = run([discharge(flags=["hypercapnic_respiratory_failure"])])
        n = SPO2_RULE.min_readings
        step = SPO2_RULE.min_minutes / (n - 1) + 1
        results, _ = run(spo2_series([88] * (n + 1), NOW - timedelta(hours=1), step), ctx)
        assert not any(a.escalate for a in results)
        assert SPO2_RULE.at_or_below_scale2 is not None
        low = SPO2_RULE.at_or_below_scale2 - 1
        results, _ = run(spo2_series([low] * n, NOW - timedelta(minutes=30), step), ctx)
        assert results[-1].escalate

    def test_debounce_count_is_configurable(self) -> None:
        """With min_readings 2 and min_minutes 0 in YAML, two low readings escalate."""
        data = yaml.safe_load(default_ruleset_text())
        rule = next(r for r in data["rules"] if r["id"] == SPO2_RULE.id)
        rule.update(min_readings=2, min_minutes=0)
        rs = parse_ruleset(yaml.safe_dump(data))
        results, _ = run(spo2_series([LOW_SPO2] * 2, NOW - timedelta(minutes=5), 1), rs=rs)
        assert [a.escalate for a in results] == [False, True]


class TestFallAlarm:
    """A fall alarm escalates at once."""

    def test_fall_escalates_on_the_first_reading(self) -> None:
        """A single fall event escalates immediately, with no debounce."""
        [a], _ = run([reading(SensorKind.FALL, 1)])
        assert a.escalate
        assert "sensor.fall" in fired(a)
        assert a.response_minutes == RS.ack_minutes.for_severity(a.severity)

    def test_zero_value_is_not_a_fall(self) -> None:
        """A fall-sensor event with value 0 does not escalate."""
        [a], _ = run([reading(SensorKind.FALL, 0)])
        assert not a.escalate


class TestHeartFailureWeightGain:
    """Weight gain of 2 kg in 3 days escalates for heart failure (rule set thresholds)."""

    def weights(self, kg: list[float], ctx: CitizenContext | None) -> list[Assessment]:
        events = [
            reading(SensorKind.WEIGHT, w, at=NOW - timedelta(days=len(kg) - 1 - i))
            for i, w in enumerate(kg)
        ]
        return run(events, ctx)[0]

    def hf_context(self) -> CitizenContext:
        return run([discharge(diagnoses=["I50.0"], at=NOW - timedelta(days=10))])[1]

    def test_two_kg_in_three_days_escalates(self) -> None:
        """70 -> 71 -> 72 kg over two days escalates on the reading that reaches +2 kg."""
        results = self.weights([70.0, 71.0, 72.0], self.hf_context())
        assert [a.escalate for a in results] == [False, False, True]
        reason = next(r for r in results[-1].reasons if r.rule_id == "heart_failure.weight_gain")
        assert reason.inputs["gain_kg"] == 2.0

    def test_decimal_weights_reach_the_threshold(self) -> None:
        """71.3 -> 73.3 kg counts as 2 kg despite binary floating point."""
        results = self.weights([71.3, 73.3], self.hf_context())
        assert results[-1].escalate

    def test_slow_gain_does_not_escalate(self) -> None:
        """2 kg spread over more than 3 days does not escalate."""
        results = self.weights([70.0, 70.5, 71.0, 71.5, 72.0], self.hf_context())
        assert not any(a.escalate for a in results)

    def test_citizen_without_heart_failure_is_not_paged(self) -> None:
        """The same gain does not escalate for a citizen without heart failure."""
        ctx = run([discharge(diagnoses=["J44.1"])])[1]
        results = self.weights([70.0, 72.5], ctx)
        assert not any(a.escalate for a in results)

    def test_gain_escalates_once_per_episode(self) -> None:
        """Further weights that stay above the threshold do not page again."""
        results = self.weights([70.0, 72.0, 72.2, 72.4], self.hf_context())
        assert [a.escalate for a in results] == [False, True, False, False]


class TestSilentSensor:
    """A high-risk citizen's silent sensor raises a timer-driven escalation."""

    def silent_ctx(self, hours: float, **discharge_over: object) -> CitizenContext:
        last = NOW - timedelta(hours=hours)
        return run(
            [
                discharge(at=NOW - timedelta(days=5), **discharge_over),
                reading(SensorKind.SPO2, GOOD_SPO2, at=last),
            ]
        )[1]

    def test_high_risk_silent_citizen_escalates(self) -> None:
        """A COPD citizen silent beyond silent_hours gets an escalating assessment."""
        rule = next(r for r in RS.rules if r.kind == "sensor_silence")
        ctx = self.silent_ctx(rule.silent_hours + 1, diagnoses=["J44.1"])  # type: ignore[union-attr]
        a = silent_sensor_check(ctx, NOW, RS)
        assert a is not None
        assert a.escalate
        assert a.event_kind == "sensor_silence"
        assert fired(a) == {rule.id}

    def test_not_silent_long_enough(self) -> None:
        """Silence shorter than silent_hours gives nothing."""
        assert silent_sensor_check(self.silent_ctx(1, diagnoses=["J44.1"]), NOW, RS) is None

    def test_low_risk_citizen_is_not_paged(self) -> None:
        """A citizen with no high-risk condition, flag, recent discharge or high NEWS2 is not
        paged for silence."""
        ctx = run([reading(SensorKind.SPO2, GOOD_SPO2, at=NOW - timedelta(days=2))])[1]
        assert silent_sensor_check(ctx, NOW, RS) is None

    def test_citizen_without_sensor_is_not_paged(self) -> None:
        """A citizen who never had a sensor reading cannot be 'silent'."""
        ctx = run([discharge(diagnoses=["J44.1"])])[1]
        assert silent_sensor_check(ctx, NOW + timedelta(days=1), RS) is None

    def test_repeated_checks_give_the_same_id(self) -> None:
        """Timer calls during one silence repeat the same event id (deduplicated downstream)."""
        ctx = self.silent_ctx(40, diagnoses=["I50.0"])  # a spot check, limit 36 h
        a = silent_sensor_check(ctx, NOW, RS)
        b = silent_sensor_check(ctx, NOW + timedelta(hours=1), RS)
        assert a is not None
        assert b is not None
        assert a.event_id == b.event_id


class TestPlausibility:
    """Physiologically impossible values are a fault: flagged, never scored."""

    def test_sensor_spo2_120_is_a_fault(self) -> None:
        """An SpO2 of 120 % is quarantined naming the field, not stored, not paged."""
        [a], ctx = run([reading(SensorKind.SPO2, 120)])
        assert not a.escalate
        assert [q.field for q in a.quarantined] == ["spo2"]
        assert ctx.latest(SensorKind.SPO2) is None
        assert ctx.last_sensor_at is None
        assert ctx.sensor_faults == 1

    def test_sensor_pulse_400_is_a_fault(self) -> None:
        """A pulse of 400 /min is quarantined naming 'pulse'."""
        [a], _ = run([reading(SensorKind.PULSE, 400)])
        assert [q.field for q in a.quarantined] == ["pulse"]
        assert "400" in a.quarantined[0].reason

    def test_observation_scores_the_valid_vitals(self) -> None:
        """In a nurse observation, an impossible SpO2 is quarantined and missing while the other
        vitals are still scored."""
        [a], _ = run([observation(spo2=120, pulse=135)])  # pulse >= 131 scores 3 (chart 1)
        assert [q.field for q in a.quarantined] == ["spo2"]
        assert a.news2 is not None
        assert "spo2" in a.news2.missing
        assert "spo2" not in a.news2.subscores
        assert a.news2.subscores["pulse"] == 3
        assert a.escalate


class TestOutOfOrder:
    """An older reading never pages and never moves the latest view backwards."""

    def test_older_reading_keeps_the_latest(self) -> None:
        """A late reading older than the newest is recorded as stale; latest is unchanged."""
        newest = reading(SensorKind.PULSE, 80, at=NOW)
        late = reading(SensorKind.PULSE, 150, at=NOW - timedelta(hours=1))
        [_, a], ctx = run([newest, late])
        latest = ctx.latest(SensorKind.PULSE)
        assert latest is not None
        assert latest.value == 80
        assert a.stale
        assert not a.escalate
        assert ctx.stale_events == 1
        assert ctx.last_sensor_at == newest.occurred_at

    def test_older_low_spo2_run_never_pages(self) -> None:
        """Late low SpO2 readings that would complete a run never page."""
        n = SPO2_RULE.min_readings
        _, ctx = run([reading(SensorKind.SPO2, GOOD_SPO2, at=NOW)])
        late = spo2_series([LOW_SPO2] * (n + 1), NOW - timedelta(hours=2), 10)
        results, _ = run(late, ctx)
        assert not any(a.escalate for a in results)
        assert all(a.stale for a in results)

    def test_older_fall_never_pages(self) -> None:
        """A fall older than the last recorded fall is suppressed, not paged."""
        [first, late], _ = run(
            [
                reading(SensorKind.FALL, 1, at=NOW),
                reading(SensorKind.FALL, 1, at=NOW - timedelta(minutes=30)),
            ]
        )
        assert first.escalate
        assert not late.escalate
        assert [r.rule_id for r in late.suppressed] == ["sensor.fall"]

    def test_older_observation_is_assessed_on_its_own_merit(self) -> None:
        """Issue 12 item 8: a worrying nurse observation older than the newest (normal) one is
        NOT suppressed: it pages on its own merit, says it arrived out of order, enters the
        NEWS2 history in time order and never moves the latest view back."""
        [_, late], ctx = run(
            [observation(at=NOW), observation(at=NOW - timedelta(hours=3), worried=True)]
        )
        assert not late.stale
        assert late.escalate
        assert "nurse.worry" in {r.rule_id for r in late.reasons}
        assert late.suppressed == []
        assert any("Arrived out of order" in n for n in late.notes)
        assert late.news2 is not None
        assert [e.at for e in ctx.news2_history] == [NOW - timedelta(hours=3), NOW]
        assert ctx.last_observation_at == NOW
