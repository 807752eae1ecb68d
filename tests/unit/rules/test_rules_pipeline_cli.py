"""plan_batch with the rules engine, and the CLI commands that share it."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dispatcher.cli import main as cli
from dispatcher.cli.rules import assess_lines, run_assess, run_rules_check, run_rules_test
from dispatcher.contract.events import InputEvent, SensorKind
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest import planner as pipeline
from dispatcher.ingest.planner import Incoming, decode_batch, plan_batch
from dispatcher.rules.ruleset import default_ruleset, default_ruleset_text, parse_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import new_id
from tests.helpers import observation_model as observation
from tests.helpers import reading_model as reading


def raw(event: InputEvent) -> bytes:
    return event.model_dump_json().encode()


def incoming(events: list[InputEvent]) -> list[Incoming]:
    out = []
    for offset, ev in enumerate(events):
        kind = type(ev).__name__
        topic = {
            "DischargeEvent": DISCHARGES,
            "SensorReading": SENSOR_READINGS,
            "NurseObservation": NURSE_OBSERVATIONS,
        }[kind]
        out.append(Incoming(topic, 0, offset, ev.citizen_id.encode(), raw(ev)))
    return out


def plan(events: list[InputEvent], **kw: Any) -> pipeline.BatchPlan:
    accepted, dead = decode_batch(incoming(events), NOW)
    return plan_batch(accepted, dead, set(), {}, NOW, **kw)


class TestPlanBatchContexts:
    """plan_batch stores the updated context for every event kind."""

    def test_every_event_kind_updates_the_context(self) -> None:
        """A discharge, a sensor reading and an observation all land in plan.contexts."""
        d = discharge(diagnoses=["I50.0"])
        r = reading(SensorKind.WEIGHT, 80.0, at=NOW - timedelta(hours=1))
        o = observation()
        result = plan([d, r, o])
        ctx = result.contexts[d.citizen_id]
        assert ctx.discharged_at == d.discharged_at
        assert ctx.weights[-1].value == 80.0
        assert ctx.last_observation_at == o.occurred_at
        assert [a.outcome for a in result.audits] == ["context_updated", "assessed", "assessed"]

    def test_sensor_only_citizen_gets_a_context(self) -> None:
        """A citizen seen only through a sensor still has a stored context."""
        r = reading(SensorKind.PULSE, 70, citizen="cit-99aa01")
        assert "cit-99aa01" in plan([r]).contexts

    def test_debounce_spans_a_batch(self) -> None:
        """Low SpO2 readings of a continuous oximeter in one batch escalate once, using the
        context built inside it (the episode state carries across the batch's events)."""
        rule = next(r for r in default_ruleset().rules if r.id == "sensor.spo2_low_sustained")
        n = rule.min_readings  # type: ignore[union-attr]
        events: list[InputEvent] = [
            reading(
                SensorKind.SPO2,
                85,
                at=NOW - timedelta(minutes=10 * (n - i)),
                profile="continuous",
            )
            for i in range(n + 1)
        ]
        result = plan(events)
        assert len(result.escalations) == 1


class TestPlanBatchIsolation:
    """Duplicates are skipped and a rule exception dead-letters only its event."""

    def test_duplicate_is_skipped(self) -> None:
        """A repeated event id produces no second audit row or escalation."""
        o = observation(worried=True)
        result = plan([o, o])
        assert len(result.audits) == 1
        assert len(result.duplicates) == 1
        assert len(result.escalations) == 1

    def test_rule_exception_dead_letters_only_that_event(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An event whose evaluation raises becomes a rule_error dead letter; the others go on."""
        bad = observation(worried=True)
        good = observation(worried=True, citizen="cit-42bb17")
        real = pipeline.evaluate

        def flaky(event: InputEvent, *args: Any) -> Any:
            if event.event_id == bad.event_id:
                raise RuntimeError("boom")
            return real(event, *args)

        monkeypatch.setattr(pipeline, "evaluate", flaky)
        result = plan([bad, good])
        assert [d.category for d in result.dead_letters] == ["rule_error"]
        assert [d.error.field for d in result.dead_letters] == ["$"]
        assert result.dead_letters[0].event_id == bad.event_id
        assert [a.event.event_id for a in result.audits] == [good.event_id]
        assert bad.citizen_id not in result.contexts

    def test_ruleset_parameter_is_used(self) -> None:
        """plan_batch uses the rule set it is given (worry disabled: no escalation)."""
        data = yaml.safe_load(default_ruleset_text())
        next(r for r in data["rules"] if r["id"] == "nurse.worry")["enabled"] = False
        rs = parse_ruleset(yaml.safe_dump(data))
        o = observation(worried=True)
        assert plan([o]).escalations
        assert not plan([o], ruleset=rs).escalations


class TestAssessCliMatchesStreaming:
    """`dispatcher assess` and the streaming path give the same assessment."""

    def test_same_assessments_as_plan_batch(self) -> None:
        """For the same discharge and observations, the CLI output equals plan_batch's
        assessments."""
        d = discharge(flags=["hypercapnic_respiratory_failure"], diagnoses=["J44.1"])
        observations: list[InputEvent] = [
            observation(at=NOW - timedelta(hours=3)),
            observation(at=NOW - timedelta(hours=1), respiration_rate=23, spo2=95, on_oxygen=True),
            observation(spo2=130, pulse=135, worried=True),
            observation(at=NOW - timedelta(hours=2), worried=True),  # stale
        ]
        streamed = plan([d, *observations])
        by_id = {str(a.event.event_id): a.assessment for a in streamed.audits}
        _, ctx = pipeline.evaluate(d, None, NOW, default_ruleset())
        lines = [raw(o).decode() for o in observations]
        docs = list(assess_lines(lines, {d.citizen_id: ctx}, NOW, default_ruleset()))
        assert len(docs) == len(observations)
        for doc in docs:
            expected = by_id[doc["event_id"]].model_dump(mode="json")
            assert {k: doc[k] for k in expected} == expected
        escalated = {e.triggered_by[0] for e in streamed.escalations}
        assert {d["event_id"] for d in docs if d["escalate"]} == {str(i) for i in escalated}


class TestAssessCli:
    """`dispatcher assess` reads observations on stdin and prints one JSON line each."""

    def test_bad_line_names_the_field_and_others_go_on(self) -> None:
        """An invalid line gives an error naming the field; a line with one unusable vital is
        assessed with that vital dropped and named; valid lines are still assessed."""
        good = raw(observation(worried=True)).decode()
        one_bad_vital = json.dumps(
            {**json.loads(good), "event_id": str(new_id()), "spo2": "high", "pulse": 135}
        )
        bad = json.dumps({**json.loads(good), "event_id": str(new_id()), "worried": "maybe"})
        stdin = io.StringIO("\n".join([good, one_bad_vital, bad, "not json", good]) + "\n")
        out = io.StringIO()
        rc = run_assess(stdin, out, context=None, rules=None, now=NOW)
        docs = [json.loads(line) for line in out.getvalue().splitlines()]
        assert rc == 1
        assert docs[0]["escalate"] is True
        assert docs[0]["news2"]["risk"] == "low"
        assert set(docs[0]["news2"]) >= {"total", "risk", "subscores"}
        assert docs[1]["line"] == 2
        assert [d["field"] for d in docs[1]["dropped"]] == ["spo2"]
        assert "spo2" in docs[1]["news2"]["missing"]
        assert docs[1]["news2"]["subscores"]["pulse"] == 3  # the rest is still scored
        assert docs[1]["escalate"] is True
        assert docs[2]["error"]["field"] == "worried"
        assert docs[3]["error"]["field"] == "$"
        assert docs[4]["skipped"] == "duplicate event_id"

    def test_context_file_applies_the_discharge(self, tmp_path: Path) -> None:
        """--context with a discharge makes NEWS2 3 escalate through the post-discharge rule."""
        path = tmp_path / "discharge.json"
        path.write_text(raw(discharge()).decode())
        line = raw(observation(respiration_rate=22, temperature=38.5)).decode()
        out = io.StringIO()
        run_assess(io.StringIO(line + "\n"), out, context=str(path), rules=None, now=NOW)
        doc = json.loads(out.getvalue())
        assert doc["news2"]["total"] == 3
        assert [r["rule_id"] for r in doc["reasons"]] == ["post_discharge.news2"]
        assert doc["route"]["tier"] == "nurse"

    def test_main_wires_the_command(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`dispatcher assess --now ...` runs through the main entry point."""
        line = raw(observation(consciousness="U")).decode()
        monkeypatch.setattr("sys.stdin", io.StringIO(line + "\n"))
        rc = cli.main(["assess", "--now", NOW.isoformat()])
        doc = json.loads(capsys.readouterr().out)
        assert rc == 0
        assert doc["severity"] == "critical"


class TestRulesCommands:
    """`dispatcher rules test` explains routing; `rules check` validates files."""

    def test_rules_test_names_fired_rules_and_route(self, tmp_path: Path) -> None:
        """The human output lists the fired rule ids and the route."""
        ev = tmp_path / "event.json"
        ev.write_text(raw(observation(pulse=135)).decode())
        out = io.StringIO()
        rc = run_rules_test(out, event=str(ev), context=None, rules=None, now=NOW, as_json=False)
        text = out.getvalue()
        assert rc == 0
        assert "news2.red_score v1" in text
        assert "route: nurse" in text

    def test_rules_test_json(self, tmp_path: Path) -> None:
        """--json gives the assessment and route per event, following a sequence in order."""
        ev = tmp_path / "events.jsonl"
        events = [reading(SensorKind.FALL, 1, at=NOW - timedelta(minutes=1)), observation()]
        ev.write_text("\n".join(raw(e).decode() for e in events))
        out = io.StringIO()
        run_rules_test(out, event=str(ev), context=None, rules=None, now=NOW, as_json=True)
        docs = json.loads(out.getvalue())
        assert [d["assessment"]["escalate"] for d in docs] == [True, False]
        assert docs[0]["route"]["tier"] == "nurse"
        assert docs[1]["route"] is None

    def test_check_accepts_the_default(self, tmp_path: Path) -> None:
        """The packaged rule set checks clean with exit 0."""
        path = tmp_path / "default.yaml"
        path.write_text(default_ruleset_text())
        out, err = io.StringIO(), io.StringIO()
        assert run_rules_check(out, err, str(path)) == 0
        assert err.getvalue() == ""

    def test_check_reports_file_rule_and_field(self, tmp_path: Path) -> None:
        """A bad rule set exits 1 with an error naming file, rule and field."""
        data = yaml.safe_load(default_ruleset_text())
        next(r for r in data["rules"] if r["id"] == "news2.trend")["within_hours"] = -1
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(data))
        out, err = io.StringIO(), io.StringIO()
        assert run_rules_check(out, err, str(path)) == 1
        first = err.getvalue().splitlines()[0]
        assert str(path) in first
        assert "'news2.trend'" in first
        assert "'within_hours'" in first
