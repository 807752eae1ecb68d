"""NEWS2 edges the chart tests left open (found by ``make mutation``): the scale 2 saturation
boundary when air/oxygen is unknown, the defaults of the response helpers, a compact repr."""

from __future__ import annotations

import pytest

from dispatcher.rules import news2


class TestScale2UnknownOxygenBoundary:
    @pytest.mark.parametrize("spo2", [88, 90, 92])
    def test_up_to_92_scores_the_same_on_air_and_oxygen(self, spo2: int) -> None:
        """88-92 % is scale 2's target range: 0 on air and on oxygen, so it is scored even
        when air/oxygen is unknown (92 % included)."""
        result = news2.score(news2.Vitals(spo2=spo2), scale=2)
        assert result.subscores["spo2"] == 0
        assert "spo2" not in result.missing

    @pytest.mark.parametrize("spo2", [93, 94, 96])
    def test_from_93_unknown_oxygen_is_missing(self, spo2: int) -> None:
        """From 93 % the score depends on oxygen (0 on air, 1-3 on oxygen): unknown is missing."""
        result = news2.score(news2.Vitals(spo2=spo2), scale=2)
        assert "spo2" in result.missing
        assert "spo2" not in result.subscores
        on_o2 = news2.score(news2.Vitals(spo2=spo2, on_oxygen=True), scale=2)
        assert on_o2.subscores["spo2"] == news2.score_spo2_scale2(spo2, True) >= 1


class TestResponseDefaults:
    def test_a_zero_total_is_routine_monitoring_unless_told_incomplete(self) -> None:
        assert news2.urgency_for(0, "low") == news2.urgency_for(0, "low", complete=True)
        assert news2.urgency_for(0, "low") == "routine monitoring"
        assert news2.urgency_for(0, "low", complete=False) == "incomplete set"

    def test_the_response_text_defaults_to_a_complete_set(self) -> None:
        assert news2.response_for(0, "low") == news2.response_for(0, "low", complete=True)
        assert news2.response_for(0, "low") != news2.response_for(0, "low", complete=False)


def test_the_repr_leaves_out_the_long_response_text() -> None:
    """A score's repr (logs, test output) carries the numbers, not the chart 4 text."""
    result = news2.score(news2.Vitals(respiration_rate=16))
    assert result.response
    assert result.response not in repr(result)
    assert "total=" in repr(result)
