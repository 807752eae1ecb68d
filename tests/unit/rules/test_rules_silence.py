"""Silent sensors against the schedule (issue 12 item 10): per kind and device profile, once
per episode."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

import yaml

from dispatcher.contract.events import InputEvent, SensorKind
from dispatcher.ingest.planner import plan_silence_checks, silence_candidates
from dispatcher.rules.assessment import evaluate, silent_sensor_check
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import (
    RuleSet,
    SensorSilenceRule,
    default_ruleset,
    default_ruleset_text,
    parse_ruleset,
)
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import reading_model as reading

RS = default_ruleset()
RULE = next(r for r in RS.rules if isinstance(r, SensorSilenceRule))
START = NOW - timedelta(days=10)


def fold(events: Sequence[InputEvent], ctx: CitizenContext | None = None) -> CitizenContext:
    for ev in events:
        _, ctx = evaluate(ev, ctx, NOW, RS)
    assert ctx is not None
    return ctx


def hf() -> CitizenContext:
    return fold([discharge(diagnoses=["I50.0"], at=START)])


def pages(ctx: CitizenContext, checks: Sequence[datetime], rs: RuleSet = RS) -> list[datetime]:
    """Run the timer at each time (as the processor does: candidates, then the audit's seen
    ids) and return the times at which it escalated."""
    seen: set[UUID] = set()
    out: list[datetime] = []
    for now in checks:
        plan = plan_silence_checks(
            silence_candidates({ctx.citizen_id: ctx}, now, ruleset=rs), seen, now
        )
        seen |= {a.event.event_id for a in plan.audits}
        out += [now for _ in plan.escalations]
    return out


def hourly(start: datetime, hours: int) -> list[datetime]:
    return [start + timedelta(hours=h) for h in range(hours + 1)]


class TestDailyScale:
    def test_daily_weights_as_prescribed_never_page(self) -> None:
        """Issue 12: a heart-failure citizen weighing every morning was paged daily as
        'silent'. With the timer running hourly over 7 days of daily weights: no page."""
        ctx = hf()
        paged: list[datetime] = []
        for day in range(7):
            at = START + timedelta(days=day + 1, hours=8)
            ctx = fold([reading(SensorKind.WEIGHT, 80.0, at=at)], ctx)
            paged += pages(ctx, hourly(at + timedelta(hours=1), 23))
        assert paged == []

    def test_a_missed_day_pages_once_at_36_hours(self) -> None:
        """The scale stops: nothing at 35 h, one page at 36 h, none on the hourly checks of
        the next two days (one episode)."""
        last = START + timedelta(days=1, hours=8)
        ctx = fold([reading(SensorKind.WEIGHT, 80.0, at=last)], hf())
        assert silent_sensor_check(ctx, last + timedelta(hours=35), RS) is None
        paged = pages(ctx, hourly(last + timedelta(hours=30), 48))
        assert paged == [last + timedelta(hours=36)]
        a = silent_sensor_check(ctx, last + timedelta(hours=36), RS)
        assert a is not None
        [silent] = a.reasons[0].inputs["silent"]
        assert silent["kind"] == "weight"
        assert silent["device_profile"] == "spot_check"
        assert silent["limit_hours"] == RULE.silent_hours


class TestContinuousOximeter:
    def oximeter(self, stop: datetime) -> CitizenContext:
        events = [
            reading(SensorKind.SPO2, 96, at=stop - timedelta(seconds=5 * i))
            for i in range(12, -1, -1)
        ]
        return fold(events, hf())

    def test_silent_after_minutes_once(self) -> None:
        """A worn oximeter (inferred continuous from its 5-s cadence) that stops: nothing at 14
        minutes, one page at 15, none on the checks of the next hour."""
        stop = NOW - timedelta(hours=2)
        ctx = self.oximeter(stop)
        assert ctx.sensor_summaries["spo2"].profile == "continuous"
        assert silent_sensor_check(ctx, stop + timedelta(minutes=14), RS) is None
        checks = [stop + timedelta(minutes=m) for m in range(10, 75)]
        assert pages(ctx, checks) == [stop + timedelta(minutes=15)]

    def test_oximeter_silent_while_the_scale_sends(self) -> None:
        """A fresh weight does not hide a silent oximeter: the silence names spo2 only."""
        stop = NOW - timedelta(hours=2)
        ctx = self.oximeter(stop)
        ctx = fold([reading(SensorKind.WEIGHT, 80.0, at=stop + timedelta(minutes=10))], ctx)
        a = silent_sensor_check(ctx, stop + timedelta(minutes=20), RS)
        assert a is not None
        assert [s["kind"] for s in a.reasons[0].inputs["silent"]] == ["spo2"]

    def test_a_new_silence_after_new_readings_pages_again(self) -> None:
        """The oximeter resumes, then stops again: a new episode, a new event id."""
        stop = NOW - timedelta(hours=3)
        ctx = self.oximeter(stop)
        first = silent_sensor_check(ctx, stop + timedelta(minutes=20), RS)
        ctx = fold(
            [
                reading(SensorKind.SPO2, 96, at=stop + timedelta(minutes=30, seconds=5 * i))
                for i in range(3)
            ],
            ctx,
        )
        assert silent_sensor_check(ctx, stop + timedelta(minutes=35), RS) is None
        second = silent_sensor_check(ctx, stop + timedelta(minutes=50), RS)
        assert first is not None
        assert second is not None
        assert first.event_id != second.event_id


class TestConfigurable:
    def test_per_kind_limit_from_yaml(self) -> None:
        """silent_hours_by_kind overrides the spot-check limit for one kind (here 12 h for
        blood pressure), leaving the others at silent_hours."""
        data = yaml.safe_load(default_ruleset_text())
        rule = next(r for r in data["rules"] if r["id"] == RULE.id)
        rule["silent_hours_by_kind"] = {"systolic_bp": 12}
        rs = parse_ruleset(yaml.safe_dump(data))
        last = START + timedelta(days=1)
        ctx = fold(
            [
                reading(SensorKind.SYSTOLIC_BP, 130, at=last),
                reading(SensorKind.WEIGHT, 80.0, at=last),
            ],
            hf(),
        )
        a = silent_sensor_check(ctx, last + timedelta(hours=13), rs)
        assert a is not None
        assert [s["kind"] for s in a.reasons[0].inputs["silent"]] == ["systolic_bp"]

    def test_low_risk_citizen_is_noted_not_paged(self) -> None:
        """A silent device of a citizen who is not high-risk is never paged."""
        ctx = fold([reading(SensorKind.WEIGHT, 80.0, at=START)])
        assert silent_sensor_check(ctx, NOW, RS) is None
