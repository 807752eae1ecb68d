"""Declarative rule sets: the packaged default loads, thresholds are data, errors are precise."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from dispatcher.rules.assessment import evaluate
from dispatcher.rules.ruleset import (
    RULE_KINDS,
    RULE_MODELS,
    RuleSet,
    RuleSetError,
    default_ruleset,
    default_ruleset_text,
    load_ruleset,
    parse_ruleset,
    rule_kind,
)
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import observation_model as observation


def default_data() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(default_ruleset_text())


def rule_data(data: dict, rule_id: str) -> dict:  # type: ignore[type-arg]
    return next(r for r in data["rules"] if r["id"] == rule_id)


def issues_of(data: object, source: str = "test.yaml") -> list[tuple[str | None, str, str]]:
    with pytest.raises(RuleSetError) as info:
        parse_ruleset(yaml.safe_dump(data), source)
    assert all(i.file == source for i in info.value.issues)
    return [(i.rule, i.field, i.reason) for i in info.value.issues]


class TestDefaultRuleSet:
    """The default rule set ships as package data and validates."""

    def test_loads_and_is_cached(self) -> None:
        """default_ruleset() parses the packaged YAML once and returns the same object."""
        first = default_ruleset()
        assert isinstance(first, RuleSet)
        assert first is default_ruleset()

    def test_every_rule_has_id_and_version(self) -> None:
        """Every packaged rule carries a unique id and a version >= 1."""
        ids = [r.id for r in default_ruleset().rules]
        assert len(ids) == len(set(ids))
        assert all(r.version >= 1 for r in default_ruleset().rules)

    def test_covers_every_rule_kind(self) -> None:
        """The default rule set configures every kind the engine implements."""
        kinds = {r.kind for r in default_ruleset().rules}
        assert kinds == RULE_KINDS
        assert {
            "plausibility",
            "news2_band",
            "news2_post_discharge",
            "consciousness",
            "nurse_worry",
            "news2_trend",
            "sensor_fall",
            "sensor_sustained",
            "weight_gain",
            "sensor_silence",
        } <= RULE_KINDS

    def test_kinds_are_derived_from_the_rule_models(self) -> None:
        """RULE_KINDS is the set of kind tags of the Rule union's models, one per model."""
        assert len(RULE_MODELS) == len(RULE_KINDS)
        assert {rule_kind(m) for m in RULE_MODELS} == RULE_KINDS

    def test_file_and_text_give_the_same_rule_set(self, tmp_path: Path) -> None:
        """Loading the packaged text from a file gives an equal rule set."""
        path = tmp_path / "copy.yaml"
        path.write_text(default_ruleset_text())
        assert load_ruleset(path) == default_ruleset()


class TestThresholdsAreData:
    """Changing a threshold in YAML changes the decision without code changes."""

    def test_post_discharge_window_comes_from_the_rule_set(self) -> None:
        """NEWS2 3 on day 12 after discharge escalates with a 30-day window but not with a
        10-day one."""
        data = default_data()
        data["context"]["post_discharge_window_days"] = 10
        short = parse_ruleset(yaml.safe_dump(data))
        d = discharge(at=NOW - timedelta(days=12))
        obs = observation(respiration_rate=22, temperature=38.5)  # 2 + 1 = 3 (chart 1)
        for rs, expected in ((default_ruleset(), True), (short, False)):
            _, ctx = evaluate(d, None, NOW, rs)
            assessment, _ = evaluate(obs, ctx, NOW, rs)
            assert assessment.news2 is not None
            assert assessment.news2.total == 3
            fired = {r.rule_id for r in assessment.reasons}
            assert ("post_discharge.news2" in fired) is expected

    def test_ack_minutes_come_from_the_rule_set(self) -> None:
        """The response deadline follows ack_minutes for the assessment's severity."""
        data = default_data()
        data["ack_minutes"]["medium"] = 45
        rs = parse_ruleset(yaml.safe_dump(data))
        assessment, _ = evaluate(observation(worried=True), None, NOW, rs)
        assert assessment.severity == "medium"
        assert assessment.response_minutes == 45
        assert assessment.response_deadline == NOW + timedelta(minutes=45)

    def test_disabled_rule_does_not_fire(self) -> None:
        """A rule with enabled: false never fires."""
        data = default_data()
        rule_data(data, "nurse.worry")["enabled"] = False
        rs = parse_ruleset(yaml.safe_dump(data))
        assessment, _ = evaluate(observation(worried=True), None, NOW, rs)
        assert assessment.reasons == []
        assert not assessment.escalate


class TestErrorsNameFileRuleAndField:
    """A bad rule set is refused with errors naming file, rule and field."""

    def test_bad_threshold_names_rule_and_field(self) -> None:
        """A trend rise below 1 is refused naming the rule id and 'min_rise'."""
        data = default_data()
        rule_data(data, "news2.trend")["min_rise"] = 0
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == ("news2.trend", "min_rise")

    def test_unknown_kind_names_kind(self) -> None:
        """An unknown rule kind is refused naming the rule and the field 'kind'."""
        data = default_data()
        rule_data(data, "sensor.fall")["kind"] = "sensor_falls"
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == ("sensor.fall", "kind")

    def test_missing_version_is_refused(self) -> None:
        """A rule without a version is refused naming 'version'."""
        data = default_data()
        del rule_data(data, "nurse.worry")["version"]
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == ("nurse.worry", "version")

    def test_unknown_field_is_refused(self) -> None:
        """A misspelt parameter is an error, not silently ignored."""
        data = default_data()
        rule_data(data, "news2.trend")["min_rize"] = 3
        [(rule, field, reason)] = issues_of(data)
        assert (rule, field) == ("news2.trend", "min_rize")
        assert "extra" in reason.lower()

    def test_rule_without_id_is_named_by_index(self) -> None:
        """A rule lacking an id is named by its position in the list."""
        data = default_data()
        del data["rules"][0]["id"]
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == ("#0", "id")

    def test_duplicate_ids_are_refused(self) -> None:
        """Two rules with the same id are refused naming the id."""
        data = default_data()
        data["rules"].append(dict(rule_data(data, "nurse.worry")))
        [(rule, field, reason)] = issues_of(data)
        assert (rule, field) == ("nurse.worry", "id")
        assert "duplicate" in reason

    def test_debounce_count_is_no_longer_bounded_by_the_history(self) -> None:
        """Sustained rules are time windows over a bounded episode summary (issue 12 item 1), not
        a look at the last N stored readings: a debounce needing more readings than the history
        keeps is valid, while a debounce of zero readings is refused."""
        data = default_data()
        rule_data(data, "sensor.spo2_low_sustained")["min_readings"] = (
            data["history"]["readings_per_kind"] + 5
        )
        parse_ruleset(yaml.safe_dump(data), "test.yaml")  # valid: no RuleSetError
        rule_data(data, "sensor.spo2_low_sustained")["min_readings"] = 0
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == ("sensor.spo2_low_sustained", "min_readings")

    def test_worse_level_must_lie_beyond_the_threshold(self) -> None:
        """A 'worse' level of a sustained rule that is not more severe than the rule's own
        threshold is refused."""
        data = default_data()
        rule_data(data, "sensor.spo2_low_sustained")["worse"] = [
            {"at_or_below": 95, "severity": "critical"}
        ]
        [(rule, _, reason)] = issues_of(data)
        assert rule == "sensor.spo2_low_sustained"
        assert "beyond" in reason

    def test_plausibility_rule_is_required(self) -> None:
        """A rule set without a plausibility rule is refused: impossible values must never be
        scored."""
        data = default_data()
        data["rules"] = [r for r in data["rules"] if r["kind"] != "plausibility"]
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == (None, "rules")

    def test_inverted_plausible_range_names_the_field(self) -> None:
        """A plausible range with min above max names the nested field."""
        data = default_data()
        rule_data(data, "plausibility.vitals")["limits"]["spo2"] = {"min": 100, "max": 50}
        [(rule, field, _)] = issues_of(data)
        assert rule == "plausibility.vitals"
        assert field == "limits.spo2"

    def test_top_level_error_has_no_rule(self) -> None:
        """A missing shared setting is reported with its dotted field and no rule."""
        data = default_data()
        del data["ack_minutes"]["critical"]
        [(rule, field, _)] = issues_of(data)
        assert (rule, field) == (None, "ack_minutes.critical")

    def test_invalid_yaml_names_the_line(self) -> None:
        """Unparseable YAML is refused with the file name and line."""
        with pytest.raises(RuleSetError) as info:
            parse_ruleset("rules: [\n  - id: x\n  bad", "broken.yaml")
        assert "broken.yaml" in str(info.value)
        assert "line" in str(info.value)

    def test_unreadable_file_is_a_rule_set_error(self, tmp_path: Path) -> None:
        """A missing file is reported as a RuleSetError naming the path."""
        with pytest.raises(RuleSetError, match=r"missing\.yaml"):
            load_ruleset(tmp_path / "missing.yaml")
