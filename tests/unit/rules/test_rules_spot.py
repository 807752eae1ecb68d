"""Spot-check limits (issue 12 item 2): single-reading red bands for every accepted kind, blood
glucose, SpO2 scale 2, and repeated breaches on separate days."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from dispatcher.contract.events import InputEvent, SensorKind, SensorReading
from dispatcher.rules.assessment import Assessment, evaluate
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import SpotCheckRule, default_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import reading_model as reading

RS = default_ruleset()
SPOT = {r.id: r for r in RS.rules if isinstance(r, SpotCheckRule)}


def run(
    events: Sequence[InputEvent], ctx: CitizenContext | None = None
) -> tuple[list[Assessment], CitizenContext]:
    out: list[Assessment] = []
    for ev in events:
        a, ctx = evaluate(ev, ctx, NOW, RS)
        out.append(a)
    assert ctx is not None
    return out, ctx


def spot(kind: SensorKind, value: float, hours_ago: float = 0) -> SensorReading:
    return reading(kind, value, at=NOW - timedelta(hours=hours_ago), profile="spot_check")


def fired(a: Assessment) -> set[str]:
    return {r.rule_id for r in a.reasons}


# (rule id, kind, a value just beyond the limit, the nearest value inside it)
EDGES = [
    ("sensor.spo2_low_spot", SensorKind.SPO2, 91, 92),
    ("sensor.pulse_low_spot", SensorKind.PULSE, 40, 41),
    ("sensor.pulse_high_spot", SensorKind.PULSE, 131, 130),
    ("sensor.systolic_low_spot", SensorKind.SYSTOLIC_BP, 90, 91),
    ("sensor.systolic_high_spot", SensorKind.SYSTOLIC_BP, 220, 219),
    ("sensor.diastolic_high_spot", SensorKind.DIASTOLIC_BP, 120, 119),
    ("sensor.respiration_low_spot", SensorKind.RESPIRATION_RATE, 8, 9),
    ("sensor.respiration_high_spot", SensorKind.RESPIRATION_RATE, 25, 24),
    ("sensor.temperature_low_spot", SensorKind.TEMPERATURE, 35.0, 35.1),
    ("sensor.temperature_high_spot", SensorKind.TEMPERATURE, 39.1, 39.0),
    ("sensor.glucose_level2_spot", SensorKind.BLOOD_GLUCOSE, 2.9, 3.0),
    ("sensor.glucose_level1_spot", SensorKind.BLOOD_GLUCOSE, 3.8, 3.9),
    ("sensor.glucose_high_spot", SensorKind.BLOOD_GLUCOSE, 33.3, 33.2),
]


class TestSingleReadingLimits:
    @pytest.mark.parametrize(("rule_id", "kind", "beyond", "inside"), EDGES)
    def test_band_edge(self, rule_id: str, kind: SensorKind, beyond: float, inside: float) -> None:
        """One spot-check reading at the limit pages that rule with its severity; the nearest
        value inside the limit does not fire it."""
        [a], _ = run([spot(kind, beyond)])
        assert rule_id in fired(a)
        assert a.escalate
        assert a.severity == SPOT[rule_id].severity
        reason = next(r for r in a.reasons if r.rule_id == rule_id)
        assert reason.inputs["value"] == beyond
        assert reason.inputs["device_profile"] == "spot_check"
        [b], _ = run([spot(kind, inside)])
        assert rule_id not in fired(b)

    def test_every_accepted_measured_kind_has_a_limit(self) -> None:
        """SpO2, pulse, systolic and diastolic BP, temperature, respiration rate and blood
        glucose all have at least one single-reading rule, each with a source citation."""
        kinds = {r.sensor for r in SPOT.values() if r.min_days == 1}
        assert kinds == {
            SensorKind.SPO2,
            SensorKind.PULSE,
            SensorKind.SYSTOLIC_BP,
            SensorKind.DIASTOLIC_BP,
            SensorKind.TEMPERATURE,
            SensorKind.RESPIRATION_RATE,
            SensorKind.BLOOD_GLUCOSE,
        }
        assert all(r.source for r in SPOT.values())

    def test_glucose_below_3_is_level_2_high(self) -> None:
        """Glucose 2.5 mmol/L fires both hypoglycaemia levels; level 2 makes it high."""
        [a], _ = run([spot(SensorKind.BLOOD_GLUCOSE, 2.5)])
        assert {"sensor.glucose_level2_spot", "sensor.glucose_level1_spot"} <= fired(a)
        assert a.severity == "high"

    def test_undeclared_first_reading_counts_as_a_spot_check(self) -> None:
        """A reading that does not declare its profile and has no predecessor is a spot check:
        one very low systolic pages (issue 12: it paged nobody)."""
        [a], _ = run([reading(SensorKind.SYSTOLIC_BP, 82, at=NOW)])
        assert "sensor.systolic_low_spot" in fired(a)

    def test_continuous_devices_are_left_to_the_sustained_rules(self) -> None:
        """A declared continuous oximeter's single low reading does not fire the spot rule."""
        [a], _ = run([reading(SensorKind.SPO2, 85, at=NOW, profile="continuous")])
        assert not a.escalate
        assert not {r for r in fired(a) if r.endswith("_spot")}

    def test_consecutive_breaches_page_once(self) -> None:
        """A second low spot check 1 h after the first does not page the spot rule again (the
        sustained rule follows the episode); after a reading back in range it pages again."""
        results, _ = run(
            [
                spot(SensorKind.SYSTOLIC_BP, 85, hours_ago=3),
                spot(SensorKind.SYSTOLIC_BP, 86, hours_ago=2),
                spot(SensorKind.SYSTOLIC_BP, 120, hours_ago=1),
                spot(SensorKind.SYSTOLIC_BP, 84, hours_ago=0),
            ]
        )
        hits = ["sensor.systolic_low_spot" in fired(a) for a in results]
        assert hits == [True, False, False, True]
        assert any("not paged again" in n for n in results[1].notes)

    def test_scale_2_uses_its_own_limit(self) -> None:
        """Documented hypercapnic failure: a spot SpO2 of 86 % (scale-2 target zone edge) does
        not page; 83 % does (scale 2 scores 3 at <= 83 %)."""
        _, ctx = run([discharge(flags=["hypercapnic_respiratory_failure"])])
        [a], _ = run([spot(SensorKind.SPO2, 86)], ctx)
        assert "sensor.spo2_low_spot" not in fired(a)
        [b], _ = run([spot(SensorKind.SPO2, 83)], ctx)
        assert "sensor.spo2_low_spot" in fired(b)
        assert b.reasons[0].inputs["news2_scale"] == 2


class TestRepeatedOnSeparateDays:
    RULE = SPOT["sensor.spo2_low_repeat"]

    def test_same_low_reading_on_three_days_escalates_once(self) -> None:
        """SpO2 93 % (NEWS2 2, below the single-reading limit) once a day: day 1 and 2 are
        noted, day 3 escalates (medium), day 4 does not page again."""
        results, ctx = run([spot(SensorKind.SPO2, 93, hours_ago=24 * d) for d in (3, 2, 1, 0)])
        hits = [self.RULE.id in fired(a) for a in results]
        assert hits == [False, False, True, False]
        assert [a.escalate for a in results] == hits
        assert results[2].severity == "medium"
        reason = next(r for r in results[2].reasons if r.rule_id == self.RULE.id)
        assert len(reason.inputs["days"]) == 3
        assert any("1 of the 3" in n for n in results[0].notes)
        assert any("already escalated" in n for n in results[3].notes)
        assert len(ctx.sensor_summaries["spo2"].repeats[self.RULE.id].days) <= 3

    def test_three_readings_on_one_day_are_one_day(self) -> None:
        """Three low readings on the same day count as one day: no repeat escalation."""
        results, _ = run([spot(SensorKind.SPO2, 93, hours_ago=h) for h in (6, 4, 2)])
        assert not any(self.RULE.id in fired(a) for a in results)

    def test_days_outside_the_window_do_not_count(self) -> None:
        """Breaches 10 and 9 days ago plus today are not 3 days within 7."""
        results, _ = run([spot(SensorKind.SPO2, 93, hours_ago=24 * d) for d in (10, 9, 0)])
        assert not any(self.RULE.id in fired(a) for a in results)

    def test_normal_days_in_between_still_count(self) -> None:
        """Low on days 1, 3 and 5 with normal readings between escalates on day 5."""
        events = []
        for d in (5, 4, 3, 2, 1):
            events.append(spot(SensorKind.SPO2, 93 if d % 2 else 97, hours_ago=24 * d))
        results, _ = run(events)
        assert [self.RULE.id in fired(a) for a in results] == [False, False, False, False, True]
