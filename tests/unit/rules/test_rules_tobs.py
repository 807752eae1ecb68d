"""TOBS (issue 12 item 11): the Danish municipal early-warning score, selectable per rule set.

The card is transcribed here independently of the implementation as (low, high, points) rows
in whole units (temperature in tenths), gap values already given the higher neighbouring score
(dispatcher/rules/tobs.py explains why), and every edge is tested as a table and a property.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.rules import tobs
from dispatcher.rules.assessment import evaluate
from dispatcher.rules.first_route import first_route
from dispatcher.rules.ruleset import RuleSet, RuleSetError, default_ruleset_text, parse_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import observation_model as observation

PULSE = [(0, 39, 2), (40, 49, 1), (50, 89, 0), (90, 109, 1), (110, 129, 2), (130, 300, 3)]
RESPIRATION = [(0, 8, 3), (9, 11, 1), (12, 20, 0), (21, 24, 2), (25, 80, 3)]
SYSTOLIC = [(0, 69, 3), (70, 79, 2), (80, 99, 1), (100, 199, 0), (200, 300, 2)]
TEMPERATURE_TENTHS = [(250, 339, 3), (340, 359, 2), (360, 379, 0), (380, 389, 1), (390, 399, 2)]
TEMPERATURE_TENTHS += [(400, 450, 3)]


def card(rows: list[tuple[int, int, int]], value: int) -> int:
    return next(points for low, high, points in rows if low <= value <= high)


def edges(rows: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    return [(v, p) for low, high, p in rows for v in (low, high)]


def tobs_data() -> dict[str, Any]:
    """The default rule set switched to TOBS: score tobs, NEWS2 bands off, TOBS bands on."""
    data: dict[str, Any] = yaml.safe_load(default_ruleset_text())
    data["score"] = "tobs"
    for rule in data["rules"]:
        if rule["kind"] == "news2_band":
            rule["enabled"] = False
        if rule["kind"] == "tobs_band":
            rule["enabled"] = True
    return data


def tobs_ruleset() -> RuleSet:
    return parse_ruleset(yaml.safe_dump(tobs_data()), "tobs.yaml")


TOBS_RS = tobs_ruleset()


class TestCard:
    """Each parameter at every band edge, and any value, against the transcribed card."""

    @pytest.mark.parametrize(("value", "points"), edges(PULSE))
    def test_pulse_edges(self, value: int, points: int) -> None:
        """Pulse: 130 and 39 (between the card's rows) take the higher score."""
        assert tobs.score_pulse(value) == points

    @pytest.mark.parametrize(("value", "points"), edges(RESPIRATION))
    def test_respiration_edges(self, value: int, points: int) -> None:
        """Respiration: 25 and 8 (between rows) score 3."""
        assert tobs.score_respiration_rate(value) == points

    @pytest.mark.parametrize(("value", "points"), edges(SYSTOLIC))
    def test_systolic_edges(self, value: int, points: int) -> None:
        """Systolic: 200 scores 2, 69 scores 3."""
        assert tobs.score_systolic_bp(value) == points

    @pytest.mark.parametrize(("tenths", "points"), edges(TEMPERATURE_TENTHS))
    def test_temperature_edges(self, tenths: int, points: int) -> None:
        """Temperature in tenths: 40.0 and 33.9 (between rows) score 3."""
        assert tobs.score_temperature(Decimal(tenths) / 10) == points

    @pytest.mark.parametrize(
        ("level", "points"), [("A", 0), ("C", 1), ("V", 1), ("P", 2), ("U", 3)]
    )
    def test_consciousness(self, level: str, points: int) -> None:
        """Habitual 0, agitated / new confusion 1, voice 1, pain 2, no response 3."""
        assert tobs.score_consciousness(level) == points

    @given(st.integers(0, 300), st.integers(0, 80), st.integers(0, 300), st.integers(250, 450))
    def test_any_value_matches_the_card(self, p: int, r: int, s: int, t: int) -> None:
        """Every integer value scores as the card says."""
        assert tobs.score_pulse(p) == card(PULSE, p)
        assert tobs.score_respiration_rate(r) == card(RESPIRATION, r)
        assert tobs.score_systolic_bp(s) == card(SYSTOLIC, s)
        assert tobs.score_temperature(Decimal(t) / 10) == card(TEMPERATURE_TENTHS, t)

    @given(
        st.integers(0, 300),
        st.sampled_from("ACVPU"),
        st.integers(0, 80),
        st.integers(250, 450),
        st.integers(0, 300),
    )
    def test_total_is_the_sum_and_at_most_15(self, p: int, c: str, r: int, t: int, s: int) -> None:
        """The total is the sum of the five sub-scores, 0-15, nothing missing."""
        result = tobs.score(
            pulse=p, consciousness=c, respiration_rate=r, temperature=Decimal(t) / 10, systolic_bp=s
        )
        assert result.total == sum(result.subscores.values())
        assert 0 <= result.total <= tobs.MAX_TOTAL
        assert result.complete

    def test_missing_is_listed_not_normal(self) -> None:
        """A missing parameter is listed; the total is over the ones present."""
        result = tobs.score(pulse=135)
        assert result.total == 3
        assert set(result.missing) == {
            "consciousness",
            "respiration_rate",
            "temperature",
            "systolic_bp",
        }


class TestTobsRuleSet:
    """``score: tobs`` pages on TOBS bands, with their triage colours, at every band edge."""

    @pytest.mark.parametrize(
        ("vitals", "total", "triage", "severity", "rule_id"),
        [
            ({}, 0, "green", "low", "tobs.green"),
            ({"pulse": 95}, 1, "yellow", "low", "tobs.one"),  # 90-109: 1
            ({"pulse": 115}, 2, "yellow", "medium", "tobs.two"),
            ({"pulse": 130}, 3, "red", "high", "tobs.red"),  # the card's gap value 130
            ({"pulse": 130, "systolic_bp": 75}, 5, "red", "high", "tobs.red"),
            ({"pulse": 130, "respiration_rate": 25}, 6, "red", "critical", "tobs.red_emergency"),
            (
                {
                    "pulse": 130,
                    "respiration_rate": 26,
                    "consciousness": "U",
                    "temperature": 40.0,
                    "systolic_bp": 60,
                },
                15,
                "red",
                "critical",
                "tobs.red_emergency",
            ),
        ],
    )
    def test_band_edges(
        self, vitals: dict[str, Any], total: int, triage: str, severity: str, rule_id: str
    ) -> None:
        """Totals 0, 1, 2, 3, 5, 6 and 15 give the band's triage colour and severity."""
        a, _ = evaluate(observation(**vitals), None, NOW, TOBS_RS)
        assert a.tobs is not None
        assert (a.tobs.total, a.tobs.triage) == (total, triage)
        assert [r.rule_id for r in a.reasons if r.rule_id.startswith("tobs.")] == [rule_id]
        assert a.severity == severity

    def test_news2_bands_do_not_page_in_a_tobs_rule_set(self) -> None:
        """Pulse 135 is a NEWS2 red score (high under NEWS2) but TOBS 3 (red, high): only the
        TOBS band fires; NEWS2 is still shown."""
        a, ctx = evaluate(observation(pulse=135), None, NOW, TOBS_RS)
        assert a.news2 is not None
        assert a.news2.red_score
        assert {r.rule_id for r in a.reasons} == {"tobs.red"}
        assert first_route(a, ctx).tier == "nurse"

    def test_spo2_is_not_in_tobs(self) -> None:
        """SpO2 is not a TOBS parameter: a low saturation alone scores TOBS 0."""
        a, _ = evaluate(observation(spo2=90), None, NOW, TOBS_RS)
        assert a.tobs is not None
        assert a.tobs.total == 0
        assert "spo2" not in a.tobs.subscores

    def test_news2_rule_set_has_no_tobs(self) -> None:
        """The default (NEWS2) rule set shows no TOBS."""
        a, _ = evaluate(observation(pulse=135), None, NOW)
        assert a.tobs is None
        assert not [r for r in a.reasons if r.rule_id.startswith("tobs.")]


class TestTobsRuleSetChecks:
    """A TOBS rule set must be consistent."""

    def test_enabled_tobs_band_needs_score_tobs(self) -> None:
        """tobs_band rules enabled in a news2 rule set are refused naming the rule."""
        data = tobs_data()
        data["score"] = "news2"
        for rule in data["rules"]:
            if rule["kind"] == "news2_band":
                rule["enabled"] = True
        with pytest.raises(RuleSetError) as err:
            parse_ruleset(yaml.safe_dump(data), "x.yaml")
        assert {i.rule for i in err.value.issues} >= {"tobs.green", "tobs.red"}

    def test_news2_band_enabled_with_score_tobs_is_refused(self) -> None:
        """An enabled news2_band rule in a TOBS rule set is refused."""
        data = tobs_data()
        next(r for r in data["rules"] if r["id"] == "news2.high")["enabled"] = True
        with pytest.raises(RuleSetError) as err:
            parse_ruleset(yaml.safe_dump(data), "x.yaml")
        assert [i.rule for i in err.value.issues] == ["news2.high"]

    def test_bands_must_cover_0_to_15(self) -> None:
        """A TOBS rule set with a gap in its bands is refused, naming the totals."""
        data = tobs_data()
        next(r for r in data["rules"] if r["id"] == "tobs.two")["enabled"] = False
        with pytest.raises(RuleSetError, match=r"not covered: \[2\]"):
            parse_ruleset(yaml.safe_dump(data), "x.yaml")
