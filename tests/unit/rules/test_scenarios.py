"""Scenario suite (issue 12): clinical situations -> the decision we expect.

Every row is a short sequence of events for one citizen, in arrival order. It runs through the
pure streaming planner (``dispatcher.ingest.planner.plan_batch``, from raw bytes like the
worker) AND through the CLI (``dispatcher rules test --json``), and the test asserts that

* both paths give identical assessments for every event of the row, and
* the LAST event's decision is the one expected: severity, the route's tier (``None`` when it
  does not escalate) and the exact set of rule ids that fired (plus, optionally, rule ids that
  matched but were suppressed, and words the notes must contain).

To add a situation, append a ``Scenario(...)`` row to ``SCENARIOS`` (several engineers add
rows: append only, never reorder or rewrite existing rows).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.cli.rules import run_rules_test
from dispatcher.contract.events import InputEvent, SensorKind
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.planner import Incoming, decode_batch, plan_batch
from dispatcher.rules.first_route import first_route
from dispatcher.rules.ruleset import default_ruleset, parse_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import observation_model as observation
from tests.helpers import reading_model as reading
from tests.unit.rules.test_rules_tobs import tobs_data

H = timedelta(hours=1)
MIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Scenario:
    """A clinical situation and the decision expected for its last event."""

    name: str
    events: tuple[InputEvent | dict[str, Any], ...]  # a dict is sent as raw JSON (device input)
    severity: str
    tier: str | None
    rules: frozenset[str]
    suppressed: frozenset[str] = frozenset()
    notes_contain: tuple[str, ...] = ()
    rules_yaml: str | None = None  # a rule set other than the packaged default
    extra: dict[str, Any] = field(default_factory=dict)  # exact values in the last assessment


def _raw(ev: InputEvent | dict[str, Any]) -> bytes:
    if isinstance(ev, dict):
        return json.dumps(ev).encode()
    return ev.model_dump_json().encode()


def _key(ev: InputEvent | dict[str, Any]) -> bytes:
    """The Kafka key a publisher sends: the citizen id (issue 11 item 5)."""
    return str(ev["citizen_id"] if isinstance(ev, dict) else ev.citizen_id).encode()


def _topic(ev: InputEvent | dict[str, Any]) -> str:
    obj = ev if isinstance(ev, dict) else json.loads(_raw(ev))
    if "discharged_at" in obj:
        return DISCHARGES
    if "device_id" in obj or "kind" in obj:
        return SENSOR_READINGS
    return NURSE_OBSERVATIONS


def raw_observation(**over: Any) -> dict[str, Any]:
    """A nurse observation as JSON a device or app would send (values unvalidated)."""
    base = json.loads(observation().model_dump_json(exclude_defaults=True))
    base.update(over)
    return base


SCENARIOS: list[Scenario] = [
    # --- issue 12 item 9: consciousness ----------------------------------------------------
    Scenario(
        name="new responds-to-voice, all else normal: emergency, on-call doctor",
        events=(observation(consciousness="V"),),
        severity="critical",
        tier="doctor",
        rules=frozenset({"consciousness.reduced", "news2.red_score"}),
    ),
    Scenario(
        name="new responds-only-to-pain, all else normal: emergency, on-call doctor",
        events=(observation(consciousness="P"),),
        severity="critical",
        tier="doctor",
        rules=frozenset({"consciousness.reduced", "news2.red_score"}),
    ),
    Scenario(
        name="unresponsive: emergency, on-call doctor",
        events=(observation(consciousness="U"),),
        severity="critical",
        tier="doctor",
        rules=frozenset({"consciousness.reduced", "news2.red_score"}),
    ),
    Scenario(
        name="new confusion, all else normal: urgent, acute-team nurse",
        events=(observation(consciousness="C"),),
        severity="high",
        tier="nurse",
        rules=frozenset({"consciousness.new_confusion", "news2.red_score"}),
    ),
    Scenario(
        name="palliative citizen responds only to pain: palliative pathway, never 112",
        events=(
            discharge(flags=["palliative"]),
            observation(consciousness="P"),
        ),
        severity="critical",
        tier="palliative",
        rules=frozenset({"consciousness.reduced", "news2.red_score", "post_discharge.news2"}),
        notes_contain=("112",),
    ),
    Scenario(
        name="alert, all vitals normal: no escalation",
        events=(observation(at=NOW - 10 * MIN),),
        severity="low",
        tier=None,
        rules=frozenset(),
    ),
    # --- issue 12 item 1: sensor rules by time window (any cadence) --------------------------
    Scenario(
        name="SpO2 80 % from a 1-s oximeter for 10 min: one critical page (worse level <= 85 %)",
        events=tuple(
            reading(SensorKind.SPO2, 80, at=NOW - 10 * MIN + timedelta(seconds=i))
            for i in range(301)
        ),
        severity="critical",
        tier="doctor",
        rules=frozenset({"sensor.spo2_low_sustained"}),
    ),
    Scenario(
        name="SpO2 89 % every 5 min for 10 min: sustained desaturation, urgent nurse",
        events=tuple(
            reading(SensorKind.SPO2, 89, at=NOW - 10 * MIN + 5 * i * MIN) for i in range(2)
        ),
        severity="high",
        tier="nurse",
        rules=frozenset({"sensor.spo2_low_sustained"}),
    ),
    Scenario(
        name="SpO2 88 % dip of 3 min from a 1-s oximeter: debounced, no page",
        events=tuple(
            reading(SensorKind.SPO2, 88, at=NOW - 5 * MIN + timedelta(seconds=i))
            for i in range(181)
        ),
        severity="low",
        tier=None,
        rules=frozenset(),
        notes_contain=("debounce",),
    ),
    Scenario(
        name="SpO2 89 % for 8 min then recovery to 95 %: episode ends, no new page",
        events=(
            *(reading(SensorKind.SPO2, 89, at=NOW - 20 * MIN + i * MIN) for i in range(9)),
            reading(SensorKind.SPO2, 95, at=NOW - 10 * MIN),
        ),
        severity="low",
        tier=None,
        rules=frozenset(),
        notes_contain=("back in range",),
    ),
    # --- issue 12 item 4: numbers as devices send them ---------------------------------------
    Scenario(
        name="SpO2 88.5 with RR 26 and pulse 120: scored (not a dead letter), emergency",
        events=(raw_observation(spo2=88.5, respiration_rate=26, pulse=120),),
        severity="critical",
        tier="doctor",
        rules=frozenset({"news2.high"}),  # RR 3 + SpO2 89 -> 3 + pulse 2 = 8
        notes_contain=("spo2 88.5 -> 89",),
    ),
    Scenario(
        name="pulse sent as text with RR 26: pulse dropped with reason, the rest pages",
        events=(raw_observation(pulse="fast", respiration_rate=26),),
        severity="high",
        tier="nurse",
        rules=frozenset({"news2.red_score", "observation.remeasure", "news2.incomplete"}),
        notes_contain=("Dropped", "pulse"),
    ),
    Scenario(
        name="temperature 38.05 rounds to 38.1 (1 point) in an otherwise normal set: no page",
        events=(raw_observation(temperature=38.05),),
        severity="low",
        tier=None,
        rules=frozenset(),
        notes_contain=("temperature 38.05 -> 38.1",),
    ),
    # --- issue 12 item 3: never silent ---------------------------------------------------------
    Scenario(
        name="SpO2 120 with an otherwise normal set: re-measure now (medium), not routine",
        events=(observation(spo2=120),),
        severity="medium",
        tier="nurse",
        rules=frozenset({"observation.remeasure", "news2.incomplete"}),
        notes_contain=("Quarantined", "Decision: escalate medium"),
        extra={"news2_urgency": "incomplete set"},
    ),
    Scenario(
        name="only SpO2 and pulse measured, both normal: asks for the other five, no page",
        events=(
            observation(
                respiration_rate=None,
                on_oxygen=None,
                systolic_bp=None,
                consciousness=None,
                temperature=None,
            ),
        ),
        severity="low",
        tier=None,
        rules=frozenset({"news2.incomplete"}),
        notes_contain=("Decision: no escalation",),
    ),
    Scenario(
        name="RR 22 and temperature 38.5 with SpO2 missing: lower bound 3, complete the set",
        events=(observation(respiration_rate=22, temperature=38.5, spo2=None),),
        severity="medium",
        tier="nurse",
        rules=frozenset({"news2.incomplete"}),
    ),
    # --- issue 12 item 2: spot-check single-reading limits, repeated breaches on days -------
    Scenario(
        name="one spot-check systolic 82 mmHg from a home cuff: urgent, acute-team nurse",
        events=(reading(SensorKind.SYSTOLIC_BP, 82, at=NOW - 5 * MIN),),
        severity="high",
        tier="nurse",
        rules=frozenset({"sensor.systolic_low_spot"}),
    ),
    Scenario(
        name="one spot-check SpO2 88 % (finger oximeter, scale 1): urgent, acute-team nurse",
        events=(reading(SensorKind.SPO2, 88, at=NOW - 5 * MIN, profile="spot_check"),),
        severity="high",
        tier="nurse",
        rules=frozenset({"sensor.spo2_low_spot"}),
    ),
    Scenario(
        name="spot-check SpO2 88 % with documented hypercapnic failure (scale 2): no page",
        events=(
            discharge(flags=["hypercapnic_respiratory_failure"]),
            reading(SensorKind.SPO2, 88, at=NOW - 5 * MIN, profile="spot_check"),
        ),
        severity="low",
        tier=None,
        rules=frozenset(),
    ),
    Scenario(
        name="blood glucose 2.6 mmol/L: level 2 hypoglycaemia, urgent",
        events=(reading(SensorKind.BLOOD_GLUCOSE, 2.6, at=NOW - 5 * MIN),),
        severity="high",
        tier="nurse",
        rules=frozenset({"sensor.glucose_level2_spot", "sensor.glucose_level1_spot"}),
    ),
    Scenario(
        name="the same SpO2 93 % spot check on three days: repeated finding, prompt nurse",
        events=tuple(
            reading(SensorKind.SPO2, 93, at=NOW - d * 24 * H, profile="spot_check")
            for d in (2, 1, 0)
        ),
        severity="medium",
        tier="nurse",
        rules=frozenset({"sensor.spo2_low_repeat"}),
    ),
    Scenario(
        name="temperature 39.4 spot check: fever in NEWS2 band 2, prompt nurse",
        events=(reading(SensorKind.TEMPERATURE, 39.4, at=NOW - 5 * MIN),),
        severity="medium",
        tier="nurse",
        rules=frozenset({"sensor.temperature_high_spot"}),
    ),
    # --- issue 12 item 5: context that accumulates -------------------------------------------
    Scenario(
        name="palliative from an earlier stay survives a later discharge: palliative pathway",
        events=(
            discharge(at=NOW - 20 * H * 24, diagnoses=["J44.1"], flags=["palliative"]),
            discharge(at=NOW - 2 * H * 24, diagnoses=["I50.0"]),
            observation(respiration_rate=26, pulse=135, temperature=39.5),
        ),
        severity="critical",
        tier="palliative",
        rules=frozenset({"news2.high", "post_discharge.news2"}),
        notes_contain=("112",),
    ),
    Scenario(
        name="hypercapnic failure from an earlier stay keeps SpO2 scale 2: 87 % on air no page",
        events=(
            discharge(
                at=NOW - 20 * H * 24,
                diagnoses=["DJ441"],
                flags=["hypercapnic_respiratory_failure"],
            ),
            discharge(at=NOW - 40 * H * 24, diagnoses=["I50.0"]),  # older stay, arrives late
            observation(spo2=87),
        ),
        severity="low",
        tier=None,
        rules=frozenset(),
        extra={"competence": "copd"},
    ),
    Scenario(
        name="SKS DI420 (cardiomyopathy) discharge: heart-failure competence for a worried nurse",
        events=(discharge(diagnoses=["DI420"]), observation(worried=True)),
        severity="medium",
        tier="nurse",
        rules=frozenset({"nurse.worry"}),
        extra={"competence": "heart_failure"},
    ),
    # --- issue 12 item 6: trends over a rolling baseline ------------------------------------
    Scenario(
        name="NEWS2 0 -> 1 -> 2 over 20 h: 2 above the day's baseline, prompt nurse review",
        events=(
            observation(at=NOW - 20 * H),
            observation(at=NOW - 12 * H, respiration_rate=10),
            observation(respiration_rate=22),
        ),
        severity="medium",
        tier="nurse",
        rules=frozenset({"news2.trend"}),
    ),
    Scenario(
        name="full set 3, partial set scored 0, full set 3: no false jump",
        events=(
            observation(at=NOW - 6 * H, respiration_rate=26),
            observation(
                at=NOW - 3 * H,
                respiration_rate=None,
                on_oxygen=None,
                systolic_bp=None,
                temperature=None,
            ),
            observation(respiration_rate=26),
        ),
        severity="high",
        tier="nurse",
        rules=frozenset({"news2.red_score"}),  # the red score still pages; no news2.trend
    ),
    # --- issue 12 item 7: heart-failure weight ---------------------------------------------
    Scenario(
        name="heart failure, one step-off scale reading (+19 kg) then normal: never paged",
        events=(
            discharge(diagnoses=["I50.0"], at=NOW - 10 * 24 * H),
            reading(SensorKind.WEIGHT, 70.0, at=NOW - 24 * H),
            reading(SensorKind.WEIGHT, 89.0, at=NOW - 12 * H),
            reading(SensorKind.WEIGHT, 70.2, at=NOW - 1 * H),
        ),
        severity="low",
        tier=None,
        rules=frozenset(),
        notes_contain=("rejected as an artefact",),
    ),
    Scenario(
        name="heart failure, 70 -> 72 kg in 2 days: fluid retention, prompt nurse",
        events=(
            discharge(diagnoses=["I50.0"], at=NOW - 10 * 24 * H),
            reading(SensorKind.WEIGHT, 70.0, at=NOW - 48 * H),
            reading(SensorKind.WEIGHT, 71.0, at=NOW - 24 * H),
            reading(SensorKind.WEIGHT, 72.0, at=NOW - 1 * H),
        ),
        severity="medium",
        tier="nurse",
        rules=frozenset({"heart_failure.weight_gain"}),
    ),
    Scenario(
        name="heart failure, +0.5 kg a day for 6 days: slow gain over a week pages once",
        events=(
            discharge(diagnoses=["I50.0"], at=NOW - 10 * 24 * H),
            *(
                reading(SensorKind.WEIGHT, 70.0 + 0.5 * i, at=NOW - (6 - i) * 24 * H)
                for i in range(7)
            ),
        ),
        severity="medium",
        tier="nurse",
        rules=frozenset({"heart_failure.weight_gain_week"}),
    ),
    Scenario(
        name="heart failure, weight 2.5 kg above the documented discharge weight twice",
        events=(
            discharge(diagnoses=["I50.0"], at=NOW - 10 * 24 * H, weight_kg=68.0),
            reading(SensorKind.WEIGHT, 70.5, at=NOW - 24 * H),
            reading(SensorKind.WEIGHT, 70.6, at=NOW - 1 * H),
        ),
        severity="medium",
        tier="nurse",
        rules=frozenset({"heart_failure.weight_gain_week"}),
    ),
    Scenario(
        name="heart failure, weight down 2 kg in 3 days: noted, not paged",
        events=(
            discharge(diagnoses=["I50.0"], at=NOW - 10 * 24 * H),
            reading(SensorKind.WEIGHT, 72.0, at=NOW - 48 * H),
            reading(SensorKind.WEIGHT, 71.0, at=NOW - 24 * H),
            reading(SensorKind.WEIGHT, 70.0, at=NOW - 1 * H),
        ),
        severity="low",
        tier=None,
        rules=frozenset({"heart_failure.weight_loss"}),
    ),
    # --- issue 12 item 8: out-of-order arrival -------------------------------------------------
    Scenario(
        name="NEWS2 7 from 08:00 arriving after a normal set from 08:30: pages, not suppressed",
        events=(
            observation(at=NOW - 30 * MIN),
            observation(at=NOW - 60 * MIN, respiration_rate=26, pulse=115, temperature=39.5),
        ),
        severity="critical",
        tier="doctor",
        rules=frozenset({"news2.high"}),  # no trend: no complete set before 08:00
    ),
    Scenario(
        name="unresponsive recorded 25 h ago, arriving now: past the maximum age, shown not paged",
        events=(observation(at=NOW - 25 * H, consciousness="U"),),
        severity="low",
        tier=None,
        rules=frozenset(),
        suppressed=frozenset({"consciousness.reduced", "news2.red_score"}),
        notes_contain=("maximum age",),
        extra={"stale": True},
    ),
    # --- issue 12 item 11: TOBS as the rule set's score --------------------------------------
    Scenario(
        name="TOBS rule set: pulse 130 alone is TOBS 3 (red): urgent, acute-team nurse",
        events=(observation(pulse=130),),
        severity="high",
        tier="nurse",
        rules=frozenset({"tobs.red"}),
        rules_yaml=yaml.safe_dump(tobs_data()),
    ),
    Scenario(
        name="TOBS rule set: RR 25 and pulse 130 is TOBS 6: emergency, on-call doctor",
        events=(observation(pulse=130, respiration_rate=25),),
        severity="critical",
        tier="doctor",
        rules=frozenset({"tobs.red_emergency"}),
        rules_yaml=yaml.safe_dump(tobs_data()),
    ),
    Scenario(
        name="TOBS rule set: pulse 95 is TOBS 1 (yellow): recorded, repeat, no page",
        events=(observation(pulse=95),),
        severity="low",
        tier=None,
        rules=frozenset({"tobs.one"}),
        rules_yaml=yaml.safe_dump(tobs_data()),
    ),
]


def _plan(s: Scenario) -> list[dict[str, Any]]:
    rs = parse_ruleset(s.rules_yaml) if s.rules_yaml else default_ruleset()
    messages = [
        Incoming(_topic(ev), 0, offset, _key(ev), _raw(ev)) for offset, ev in enumerate(s.events)
    ]
    accepted, dead = decode_batch(messages, NOW)
    assert not dead, [d.errors for d in dead]
    plan = plan_batch(accepted, dead, set(), {}, NOW, ruleset=rs)
    assert len(plan.audits) == len(s.events)
    out = [audit.assessment.model_dump(mode="json") for audit in plan.audits]
    last = plan.audits[-1].assessment
    out[-1]["_tier"] = (
        first_route(last, plan.contexts[last.citizen_id]).tier if last.escalate else None
    )
    return out


def _cli(s: Scenario, tmp_path: Path) -> list[dict[str, Any]]:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(_raw(ev).decode() for ev in s.events) + "\n")
    rules = None
    if s.rules_yaml:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(s.rules_yaml)
        rules = str(rules_path)
    out = io.StringIO()
    rc = run_rules_test(out, event=str(events), context=None, rules=rules, now=NOW, as_json=True)
    docs = json.loads(out.getvalue())
    assert rc == 0, docs
    result = [d["assessment"] for d in docs]
    route = docs[-1]["route"]
    result[-1]["_tier"] = route["tier"] if route else None
    return result


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, tmp_path: Path) -> None:
    """The streaming planner and `rules test` agree on every event, and the last event's
    decision is the expected one."""
    streamed = _plan(scenario)
    cli = _cli(scenario, tmp_path)
    assert streamed == cli
    last = streamed[-1]
    assert last["severity"] == scenario.severity
    assert last["_tier"] == scenario.tier
    assert last["escalate"] == (scenario.tier is not None)
    assert {r["rule_id"] for r in last["reasons"]} == scenario.rules
    assert {r["rule_id"] for r in last["suppressed"]} == scenario.suppressed
    notes = " ".join(last["notes"])
    for words in scenario.notes_contain:
        assert words in notes, notes
    for key, value in scenario.extra.items():
        assert last[key] == value, key


def test_scenario_names_are_unique() -> None:
    """Each row names a distinct situation (the name is the test id)."""
    names = [s.name for s in SCENARIOS]
    assert len(names) == len(set(names))
