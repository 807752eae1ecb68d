"""NEWS2 against the Royal College of Physicians chart (RCP 2017, charts 1, 2 and 4).

The chart is transcribed here independently of the implementation, as (low, high, score) rows,
and every band edge is tested both as a table and as a hypothesis property.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.rules import news2

# RCP 2017 chart 1, row by row: inclusive (low, high) -> score.
RESPIRATION = [(0, 8, 3), (9, 11, 1), (12, 20, 0), (21, 24, 2), (25, 80, 3)]
SPO2_SCALE1 = [(50, 91, 3), (92, 93, 2), (94, 95, 1), (96, 100, 0)]
SPO2_SCALE2_AIR = [(50, 83, 3), (84, 85, 2), (86, 87, 1), (88, 100, 0)]
SPO2_SCALE2_OXYGEN = [
    (50, 83, 3),
    (84, 85, 2),
    (86, 87, 1),
    (88, 92, 0),
    (93, 94, 1),
    (95, 96, 2),
    (97, 100, 3),
]
SYSTOLIC = [(40, 90, 3), (91, 100, 2), (101, 110, 1), (111, 219, 0), (220, 300, 3)]
PULSE = [(20, 40, 3), (41, 50, 1), (51, 90, 0), (91, 110, 1), (111, 130, 2), (131, 300, 3)]
# Temperature bands are written to one decimal: <=35.0, 35.1-36.0, 36.1-38.0, 38.1-39.0, >=39.1.
TEMPERATURE_TENTHS = [(250, 350, 3), (351, 360, 1), (361, 380, 0), (381, 390, 1), (391, 450, 2)]


def chart(rows: list[tuple[int, int, int]], value: int) -> int:
    for low, high, points in rows:
        if low <= value <= high:
            return points
    raise AssertionError(f"{value} outside the transcribed chart")


def edges(rows: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    """Every band edge as (value, expected score): the last value of a band and the first of
    the next."""
    out: list[tuple[int, int]] = []
    for (_, high, points), (low, _, next_points) in itertools.pairwise(rows):
        out += [(high, points), (low, next_points)]
    return out


class TestRespirationRateChart1:
    """Respiration rate sub-score (RCP 2017 chart 1)."""

    @pytest.mark.parametrize(("rate", "expected"), edges(RESPIRATION))
    def test_band_edges(self, rate: int, expected: int) -> None:
        """Each respiration band edge scores as chart 1 says (<=8:3, 9-11:1, 12-20:0, 21-24:2,
        >=25:3)."""
        assert news2.score_respiration_rate(rate) == expected

    @given(st.integers(min_value=0, max_value=80))
    @example(8)
    @example(9)
    @example(11)
    @example(12)
    @example(20)
    @example(21)
    @example(24)
    @example(25)
    def test_any_rate_matches_chart(self, rate: int) -> None:
        """Any plausible respiration rate scores the chart 1 row it falls in."""
        assert news2.score_respiration_rate(rate) == chart(RESPIRATION, rate)


class TestSpo2Scale1Chart1:
    """SpO2 scale 1 sub-score (RCP 2017 chart 1)."""

    @pytest.mark.parametrize(("spo2", "expected"), edges(SPO2_SCALE1))
    def test_band_edges(self, spo2: int, expected: int) -> None:
        """Each scale-1 band edge scores as chart 1 says (<=91:3, 92-93:2, 94-95:1, >=96:0)."""
        assert news2.score_spo2_scale1(spo2) == expected

    @given(st.integers(min_value=50, max_value=100))
    @example(91)
    @example(92)
    @example(93)
    @example(94)
    @example(95)
    @example(96)
    def test_any_saturation_matches_chart(self, spo2: int) -> None:
        """Any plausible saturation scores the chart 1 scale-1 row it falls in."""
        assert news2.score_spo2_scale1(spo2) == chart(SPO2_SCALE1, spo2)


class TestSpo2Scale2Chart1:
    """SpO2 scale 2 (hypercapnic respiratory failure): high saturations score only on oxygen."""

    @pytest.mark.parametrize(("spo2", "expected"), edges(SPO2_SCALE2_OXYGEN))
    def test_band_edges_on_oxygen(self, spo2: int, expected: int) -> None:
        """On oxygen every scale-2 band edge scores as chart 1 says, including 93-94:1, 95-96:2,
        >=97:3."""
        assert news2.score_spo2_scale2(spo2, on_oxygen=True) == expected

    @pytest.mark.parametrize(("spo2", "expected"), edges(SPO2_SCALE2_AIR))
    def test_band_edges_on_air(self, spo2: int, expected: int) -> None:
        """On air, scale 2 scores 0 from 88 % upwards (chart 1: '>=93 on air' scores 0)."""
        assert news2.score_spo2_scale2(spo2, on_oxygen=False) == expected

    @given(st.integers(min_value=50, max_value=100), st.booleans())
    @example(92, True)
    @example(93, True)
    @example(96, True)
    @example(97, True)
    @example(97, False)
    def test_any_saturation_matches_chart(self, spo2: int, on_oxygen: bool) -> None:
        """Any plausible saturation on air or oxygen scores the chart 1 scale-2 row."""
        rows = SPO2_SCALE2_OXYGEN if on_oxygen else SPO2_SCALE2_AIR
        assert news2.score_spo2_scale2(spo2, on_oxygen) == chart(rows, spo2)

    def test_unknown_oxygen_high_saturation_is_missing_not_normal(self) -> None:
        """On scale 2 a saturation >= 93 % with unknown air/oxygen is reported missing, never
        scored as a normal 0."""
        result = news2.score(news2.Vitals(spo2=97), scale=2)
        assert "spo2" in result.missing
        assert "spo2" not in result.subscores

    def test_unknown_oxygen_low_saturation_is_scored(self) -> None:
        """On scale 2 a saturation <= 92 % scores the same on air and oxygen, so it is scored
        even when air/oxygen is unknown."""
        result = news2.score(news2.Vitals(spo2=83), scale=2)
        assert result.subscores["spo2"] == 3

    def test_scale_1_ignores_oxygen_for_saturation(self) -> None:
        """Scale 1 scores saturation alone; oxygen scores separately as 2 (chart 1)."""
        on_air = news2.score(news2.Vitals(spo2=97, on_oxygen=False), scale=1)
        on_o2 = news2.score(news2.Vitals(spo2=97, on_oxygen=True), scale=1)
        assert on_air.subscores["spo2"] == on_o2.subscores["spo2"] == 0
        assert on_o2.subscores["air_or_oxygen"] - on_air.subscores["air_or_oxygen"] == 2


class TestSystolicPulseConsciousnessChart1:
    """Systolic BP, pulse and consciousness sub-scores (RCP 2017 chart 1)."""

    @pytest.mark.parametrize(("systolic", "expected"), edges(SYSTOLIC))
    def test_systolic_band_edges(self, systolic: int, expected: int) -> None:
        """Each systolic band edge scores as chart 1 says (<=90:3 ... 111-219:0, >=220:3)."""
        assert news2.score_systolic_bp(systolic) == expected

    @pytest.mark.parametrize(("pulse", "expected"), edges(PULSE))
    def test_pulse_band_edges(self, pulse: int, expected: int) -> None:
        """Each pulse band edge scores as chart 1 says (<=40:3 ... 111-130:2, >=131:3)."""
        assert news2.score_pulse(pulse) == expected

    @given(st.integers(min_value=40, max_value=300))
    def test_any_systolic_matches_chart(self, systolic: int) -> None:
        """Any plausible systolic pressure scores the chart 1 row it falls in."""
        assert news2.score_systolic_bp(systolic) == chart(SYSTOLIC, systolic)

    @given(st.integers(min_value=20, max_value=300))
    def test_any_pulse_matches_chart(self, pulse: int) -> None:
        """Any plausible pulse scores the chart 1 row it falls in."""
        assert news2.score_pulse(pulse) == chart(PULSE, pulse)

    @pytest.mark.parametrize(("level", "expected"), [("A", 0), ("C", 3), ("V", 3), ("P", 3)])
    def test_acvpu(self, level: str, expected: int) -> None:
        """Alert scores 0; new confusion, voice and pain score 3 (chart 1, ACVPU)."""
        assert news2.score_consciousness(level) == expected

    def test_unresponsive_scores_three(self) -> None:
        """Unresponsive scores 3 (chart 1)."""
        assert news2.score_consciousness("U") == 3

    def test_unknown_level_is_refused(self) -> None:
        """A consciousness level outside ACVPU is an error, not a silent 0."""
        with pytest.raises(ValueError, match="consciousness"):
            news2.score_consciousness("X")


class TestTemperatureChart1:
    """Temperature sub-score at the one-decimal edges (RCP 2017 chart 1)."""

    @pytest.mark.parametrize(("tenths", "expected"), edges(TEMPERATURE_TENTHS))
    def test_band_edges(self, tenths: int, expected: int) -> None:
        """Each temperature band edge scores as chart 1 says (<=35.0:3, 35.1-36.0:1,
        36.1-38.0:0, 38.1-39.0:1, >=39.1:2)."""
        assert news2.score_temperature(tenths / 10) == expected

    @given(st.integers(min_value=250, max_value=450))
    def test_any_tenth_matches_chart(self, tenths: int) -> None:
        """Any plausible temperature to one decimal scores the chart 1 row it falls in."""
        assert news2.score_temperature(tenths / 10) == chart(TEMPERATURE_TENTHS, tenths)

    @given(st.decimals(min_value="25.00", max_value="45.00", places=2))
    def test_two_decimals_round_half_up_to_the_chart_resolution(self, value: Decimal) -> None:
        """A reading with two decimals scores like its half-up rounding to one decimal (so
        38.05 is banded as 38.1)."""
        tenths = int((value * 10).to_integral_value(rounding="ROUND_HALF_UP"))
        assert news2.score_temperature(float(value)) == chart(TEMPERATURE_TENTHS, tenths)


vitals_strategy = st.builds(
    news2.Vitals,
    respiration_rate=st.none() | st.integers(0, 80),
    spo2=st.none() | st.integers(50, 100),
    on_oxygen=st.none() | st.booleans(),
    systolic_bp=st.none() | st.integers(40, 300),
    pulse=st.none() | st.integers(20, 300),
    consciousness=st.none() | st.sampled_from(["A", "C", "V", "P", "U"]),
    temperature=st.none() | st.integers(250, 450).map(lambda t: t / 10),
)


def chart2_band(total: int, red: bool) -> str:
    """RCP 2017 chart 2, transcribed: 7+ high, 5-6 medium, any single 3 low-medium, else low."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    return "low-medium" if red else "low"


class TestAggregateAndBandsChart2:
    """Aggregate score, single-parameter red score and risk band (RCP 2017 chart 2)."""

    @given(vitals_strategy, st.sampled_from([1, 2]))
    def test_total_is_sum_of_present_subscores(self, vitals: news2.Vitals, scale: int) -> None:
        """The aggregate is the sum of the sub-scores of the parameters present."""
        result = news2.score(vitals, scale)  # type: ignore[arg-type]
        assert result.total == sum(result.subscores.values())
        assert set(result.subscores).isdisjoint(result.missing)
        assert set(result.subscores) | set(result.missing) == set(news2.PARAMETERS)

    @given(vitals_strategy, st.sampled_from([1, 2]))
    def test_band_follows_chart2(self, vitals: news2.Vitals, scale: int) -> None:
        """The risk band is chart 2's band of the aggregate and the red score."""
        result = news2.score(vitals, scale)  # type: ignore[arg-type]
        red = any(v == 3 for v in result.subscores.values())
        assert result.red_score is red
        assert result.risk == chart2_band(result.total, red)

    @pytest.mark.parametrize(
        ("total", "red", "band"),
        [
            (0, False, "low"),
            (4, False, "low"),
            (3, True, "low-medium"),
            (4, True, "low-medium"),
            (5, False, "medium"),
            (5, True, "medium"),
            (6, True, "medium"),
            (7, False, "high"),
            (7, True, "high"),
            (20, True, "high"),
        ],
    )
    def test_band_edges(self, total: int, red: bool, band: str) -> None:
        """The chart 2 edges: 4/5 (low to medium), 6/7 (medium to high), and a red score
        lifting 0-4 to low-medium but not changing 5+."""
        assert news2.risk_band(total, red) == band

    @given(st.integers(min_value=0, max_value=20), st.booleans())
    def test_band_property_at_every_total(self, total: int, red: bool) -> None:
        """For every possible aggregate, with or without a red score, the band is chart 2's."""
        assert news2.risk_band(total, red) == chart2_band(total, red)

    def test_example_aggregate(self) -> None:
        """A worked example: RR 26 (3), SpO2 85 scale 1 (3), oxygen (2), SBP 98 (2), pulse 118
        (2), alert (0), 38.4 (1) totals 13, high."""
        result = news2.score(
            news2.Vitals(
                respiration_rate=26,
                spo2=85,
                on_oxygen=True,
                systolic_bp=98,
                pulse=118,
                consciousness="A",
                temperature=38.4,
            )
        )
        assert result.total == 13
        assert result.risk == "high"
        assert result.complete


class TestMissingParameters:
    """A missing parameter is reported, never scored as normal."""

    def test_empty_vitals_report_all_missing(self) -> None:
        """With nothing measured, every parameter is listed missing and the score is
        incomplete."""
        result = news2.score(news2.Vitals())
        assert result.missing == news2.PARAMETERS
        assert not result.complete
        assert result.subscores == {}

    @given(vitals_strategy)
    def test_dropping_a_parameter_never_raises_the_total(self, vitals: news2.Vitals) -> None:
        """Removing a measured parameter lists it missing and never increases the total
        (scale 1)."""
        full = news2.score(vitals)
        for name in ("respiration_rate", "systolic_bp", "pulse", "consciousness", "temperature"):
            if getattr(vitals, name) is None:
                continue
            fewer = news2.score(news2.Vitals(**{**vitals.__dict__, name: None}))
            assert name in fewer.missing
            assert fewer.total == full.total - full.subscores[name]


class TestClinicalResponseChart4:
    """Urgency and response text (RCP 2017 charts 2 and 4)."""

    def test_total_zero_is_routine_monitoring(self) -> None:
        """An aggregate of 0 says routine monitoring (chart 4, first row)."""
        result = news2.score(
            news2.Vitals(
                respiration_rate=16,
                spo2=97,
                on_oxygen=False,
                systolic_bp=125,
                pulse=72,
                consciousness="A",
                temperature=37.0,
            )
        )
        assert result.total == 0
        assert result.urgency == "routine monitoring"
        assert "routine" in result.response.lower()

    @pytest.mark.parametrize(
        ("total", "red", "urgency"),
        [
            (1, False, "ward-based response"),
            (4, False, "ward-based response"),
            (3, True, "urgent ward-based response"),
            (5, False, "urgent response"),
            (6, True, "urgent response"),
            (7, False, "emergency response"),
        ],
    )
    def test_urgency_per_band(self, total: int, red: bool, urgency: str) -> None:
        """Each chart 2 band maps to its response: ward-based, urgent ward-based, urgent,
        emergency."""
        assert news2.urgency_for(total, news2.risk_band(total, red)) == urgency


class TestChartResolutionRounding:
    """Issue 12 item 4: decimals as devices send them are rounded half-up to the chart's
    resolution (whole numbers; temperature tenths) before banding."""

    @pytest.mark.parametrize(
        ("name", "value", "charted"),
        [
            ("spo2", 88.5, "89"),
            ("spo2", 88.49, "88"),
            ("spo2", 91.5, "92"),  # scale 1: 91 scores 3, 92 scores 2
            ("spo2", 91.4, "91"),
            ("respiration_rate", 20.5, "21"),  # 20 scores 0, 21 scores 2
            ("respiration_rate", 8.5, "9"),  # 8 scores 3, 9 scores 1
            ("systolic_bp", 90.5, "91"),  # 90 scores 3, 91 scores 2
            ("systolic_bp", 219.5, "220"),  # 219 scores 0, 220 scores 3
            ("pulse", 130.5, "131"),  # 130 scores 2, 131 scores 3
            ("pulse", 40.5, "41"),
            ("temperature", 37.85, "37.9"),
            ("temperature", 38.05, "38.1"),  # 38.0 scores 0, 38.1 scores 1
            ("temperature", 38.04, "38.0"),
            ("temperature", 35.05, "35.1"),  # 35.0 scores 3, 35.1 scores 1
        ],
    )
    def test_half_up_at_band_edges(self, name: str, value: float, charted: str) -> None:
        """Values half-way between two chart rows go up; below half go down."""
        assert news2.to_chart_resolution(name, value) == Decimal(charted)

    @pytest.mark.parametrize(
        ("spo2", "points"), [(91.49, 3), (91.5, 2), (93.49, 2), (93.5, 1), (95.5, 0)]
    )
    def test_rounded_spo2_scores_on_chart(self, spo2: float, points: int) -> None:
        """The scale-1 band of a decimal saturation is the band of its rounded value."""
        assert news2.score_spo2_scale1(int(news2.to_chart_resolution("spo2", spo2))) == points

    @given(st.integers(min_value=0, max_value=300))
    def test_whole_numbers_are_unchanged(self, value: int) -> None:
        """A whole number is already on the chart for every integer-charted vital."""
        for name in ("respiration_rate", "spo2", "systolic_bp", "pulse"):
            assert news2.to_chart_resolution(name, float(value)) == value

    @given(st.decimals(min_value=20, max_value=300, places=3))
    def test_rounding_moves_at_most_half_a_step(self, value: Decimal) -> None:
        """Rounding never moves a value by more than half the chart's resolution."""
        for name, step in news2.CHART_RESOLUTION.items():
            assert abs(news2.to_chart_resolution(name, float(value)) - value) <= step / 2


class TestIncompleteSetIsNotRoutine:
    """Issue 12 item 3: 0 over an incomplete set is not an aggregate of 0."""

    def test_empty_set_is_incomplete_not_routine(self) -> None:
        """No parameter at all: "incomplete set", never routine monitoring."""
        result = news2.score(news2.Vitals())
        assert result.total == 0
        assert result.urgency == "incomplete set"
        assert "missing" in result.response

    def test_zero_over_six_parameters_is_incomplete(self) -> None:
        """Six normal parameters and one missing: still not routine monitoring."""
        result = news2.score(
            news2.Vitals(
                respiration_rate=16,
                spo2=97,
                on_oxygen=False,
                systolic_bp=125,
                pulse=72,
                consciousness="A",
            )
        )
        assert result.missing == ("temperature",)
        assert result.urgency == "incomplete set"

    def test_nonzero_incomplete_keeps_its_band(self) -> None:
        """A lower bound of 1 or more keeps the chart-2 response (at least that urgent)."""
        assert news2.urgency_for(2, "low", complete=False) == "ward-based response"
        assert news2.urgency_for(0, "low", complete=True) == "routine monitoring"
