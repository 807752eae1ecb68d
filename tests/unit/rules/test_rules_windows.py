"""Sensor rules by time window (issue 12 item 1): any cadence from 1 s to 30 min.

The sustained rules keep a bounded breach episode per rule in the citizen's context
(``dispatcher.rules.windows``); these tests prove that a breach sustained for the rule's minutes
pages exactly once (plus once per worsening level), that a shorter breach never pages, that
recovery or a long gap ends the episode, and that the state stays bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.contract.events import DeviceProfile, InputEvent, SensorKind, SensorReading
from dispatcher.rules.assessment import Assessment, evaluate
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import SustainedSensorRule, default_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import reading_model as reading

RS = default_ruleset()
SPO2 = next(r for r in RS.rules if isinstance(r, SustainedSensorRule) and r.sensor == "spo2")
PULSE = next(r for r in RS.rules if isinstance(r, SustainedSensorRule) and r.sensor == "pulse")
BASE = SPO2.threshold(1)[1]  # 91 %
WORSE = SPO2.worse[0].threshold(1)[1]  # 85 %
WINDOW_S = SPO2.min_minutes * 60
CADENCES_S = (1, 5, 60, 300, 1800)
START = NOW - timedelta(days=1)


def spo2(
    value: float, at: datetime, profile: DeviceProfile | None = None, kind: str = "spo2"
) -> SensorReading:
    r = reading(SensorKind(kind), value, at=at)
    return r if profile is None else r.model_copy(update={"device_profile": profile})


def run(
    events: Sequence[InputEvent], ctx: CitizenContext | None = None
) -> tuple[list[Assessment], CitizenContext]:
    out: list[Assessment] = []
    for ev in events:
        a, ctx = evaluate(ev, ctx, NOW, RS)
        out.append(a)
    assert ctx is not None
    return out, ctx


def series(
    values: list[float],
    every_s: float,
    start: datetime = START,
    profile: DeviceProfile | None = DeviceProfile.CONTINUOUS,
) -> list[SensorReading]:
    """SpO2 readings at a fixed cadence, by default from a device that declares itself
    continuous (so only the sustained rules apply; spot-check limits: test_rules_spot.py)."""
    return [spo2(v, start + timedelta(seconds=i * every_s), profile) for i, v in enumerate(values)]


def firings(results: list[Assessment], rule_id: str = SPO2.id) -> list[tuple[int, int]]:
    """(reading index, level) of every reading on which the rule fired."""
    return [
        (i, int(r.inputs["level"]))
        for i, a in enumerate(results)
        for r in a.reasons
        if r.rule_id == rule_id
    ]


class TestTheIssueCase:
    def test_spo2_80_for_39_minutes_at_1_s_pages(self) -> None:
        """Issue 12: SpO2 80 % for 39 minutes from a 1-s oximeter never paged. It now pages once,
        after 5 minutes, at the worse level (<= 85 %: critical), and never again."""
        results, ctx = run(series([80] * (39 * 60), 1))
        escalated = [i for i, a in enumerate(results) if a.escalate]
        assert escalated == [int(WINDOW_S)]
        a = results[int(WINDOW_S)]
        assert a.severity == "critical"
        [reason] = [r for r in a.reasons if r.rule_id == SPO2.id]
        assert reason.inputs["episode_minutes"] == SPO2.min_minutes
        assert reason.inputs["worst"] == 80
        assert reason.inputs["device_profile"] == "continuous"
        assert any("already escalated" in n for n in results[-1].notes)
        ep = ctx.sensor_summaries["spo2"].episodes[SPO2.id]
        assert ep.count == 39 * 60
        assert ep.paged == 1


class TestAcrossCadences:
    """Property tests at 1 s, 5 s, 60 s, 5 min and 30 min cadences."""

    @settings(max_examples=40, deadline=None)
    @given(
        cadence=st.sampled_from(CADENCES_S),
        extra_s=st.integers(min_value=0, max_value=3 * 3600),
        value=st.sampled_from([BASE, BASE - 2, WORSE + 1]),
    )
    def test_sustained_breach_pages_exactly_once(
        self, cadence: int, extra_s: int, value: float
    ) -> None:
        """A breach observed for >= the window (first to last breaching reading) pages exactly
        once, then recovery ends the episode quietly."""
        n = max(2, -(-int(WINDOW_S + extra_s) // cadence) + 1)  # span >= window
        n = min(n, 20 * 60 + 1)  # bounded run time at 1 s
        values = [97.0] + [value] * n + [97.0]
        results, ctx = run(series(values, cadence))
        assert (n - 1) * cadence >= WINDOW_S
        [(i, level)] = firings(results)
        assert level == 0
        assert (i - 1) * cadence >= WINDOW_S  # not before the window has passed
        assert (i - 2) * cadence < WINDOW_S  # but on the first reading that completes it
        assert [a.escalate for a in results].count(True) == 1
        assert SPO2.id not in ctx.sensor_summaries["spo2"].episodes  # recovery ended it
        assert any("back in range" in n for n in results[-1].notes)

    @settings(max_examples=40, deadline=None)
    @given(
        cadence=st.sampled_from(CADENCES_S),
        fraction=st.floats(min_value=0, max_value=0.999),
        value=st.sampled_from([BASE, BASE - 2, WORSE, 70]),
    )
    def test_shorter_breach_never_pages(self, cadence: int, fraction: float, value: float) -> None:
        """A breach observed for less than the window never pages the sustained rule, at any
        cadence, however deep."""
        span_s = fraction * WINDOW_S
        n = int(span_s // cadence) + 1
        values = [97.0] + [value] * n + [97.0]
        results, _ = run(series(values, cadence))
        assert firings(results) == []

    @settings(max_examples=40, deadline=None)
    @given(cadence=st.sampled_from(CADENCES_S), extra_s=st.integers(min_value=0, max_value=3600))
    def test_worsening_pages_once_more(self, cadence: int, extra_s: int) -> None:
        """89 % sustained pages once (high); 80 % sustained inside the same episode pages once
        more (critical, the worse level); flapping around the worse level never pages again."""
        n = max(2, -(-int(WINDOW_S + extra_s) // cadence) + 1)
        n = min(n, 15 * 60 + 1)
        flap = [84.0, 86.0] * 3
        values = [89.0] * n + [80.0] * n + flap + [80.0] * n
        results, _ = run(series(values, cadence))
        assert [lvl for _, lvl in firings(results)] == [0, 1]
        escalated = [a for a in results if a.escalate]
        assert [a.severity for a in escalated] == [SPO2.severity, SPO2.worse[0].severity]

    @settings(max_examples=30, deadline=None)
    @given(cadence=st.sampled_from(CADENCES_S))
    def test_deep_breach_from_the_start_is_one_page(self, cadence: int) -> None:
        """A breach below the worse level from its first reading is one page at the worse
        severity (both levels sustained on the same reading), not two."""
        n = -(-int(WINDOW_S) // cadence) + 3
        results, _ = run(series([80.0] * n, cadence))
        assert [lvl for _, lvl in firings(results)] == [1]
        assert [a.severity for a in results if a.escalate] == ["critical"]


class TestInferredProfileCadences:
    @settings(max_examples=30, deadline=None)
    @given(
        cadence=st.sampled_from(CADENCES_S),
        extra_s=st.integers(min_value=0, max_value=3600),
    )
    def test_sustained_rule_fires_once_whatever_the_inferred_profile(
        self, cadence: int, extra_s: int
    ) -> None:
        """Without a declared profile (inferred from cadence: 1-60 s continuous, 5-30 min spot
        check), the sustained rule still fires exactly once per sustained breach."""
        n = max(2, -(-int(WINDOW_S + extra_s) // cadence) + 1)
        n = min(n, 15 * 60 + 1)
        results, ctx = run(series([97.0] + [89.0] * n, cadence, profile=None))
        assert [lvl for _, lvl in firings(results)] == [0]
        expected = DeviceProfile.CONTINUOUS if cadence <= 120 else DeviceProfile.SPOT_CHECK
        assert ctx.sensor_summaries["spo2"].profile == expected


class TestEpisodeBoundaries:
    def test_a_gap_longer_than_the_timeout_ends_the_episode(self) -> None:
        """Two 3-minute breaches separated by more than max_gap_minutes never page: the gap
        ends the first episode and the second is too short."""
        first = series([88.0] * 180, 1)
        later = START + timedelta(seconds=179) + timedelta(minutes=SPO2.max_gap_minutes + 1)
        results, _ = run(first + series([88.0] * 180, 1, later))
        assert firings(results) == []
        assert any("episode timeout" in n for n in results[180].notes)

    def test_a_gap_within_the_timeout_keeps_the_episode(self) -> None:
        """An oximeter dropout shorter than the timeout does not restart the episode: 3 min +
        a 10 min dropout + 1 reading is a 13-minute breach and pages."""
        first = series([88.0] * 180, 1)
        later = START + timedelta(seconds=179, minutes=10)
        results, _ = run([*first, spo2(88.0, later)])
        assert [i for i, _ in firings(results)] == [180]

    def test_recovery_then_new_breach_pages_again(self) -> None:
        """A reading back in range ends the episode; a new sustained breach is a new episode."""
        values = [88.0] * 400 + [95.0] + [88.0] * 400
        results, _ = run(series(values, 1))
        assert [i for i, _ in firings(results)] == [300, 701]

    def test_band_edges(self) -> None:
        """At the threshold (91 %) breaches, 92 % does not; exactly min_minutes pages, one
        second less does not."""
        results, _ = run(series([BASE] * (int(WINDOW_S) + 1), 1))
        assert [i for i, _ in firings(results)] == [int(WINDOW_S)]
        results, _ = run(series([BASE + 1] * 600, 1))
        assert firings(results) == []
        results, _ = run(series([BASE] * int(WINDOW_S), 1))
        assert firings(results) == []

    def test_scale_2_uses_its_own_levels(self) -> None:
        """Documented hypercapnic failure: 86 % (in the scale-2 tolerated zone above 83 %) never
        pages; 80 % sustained pages high; 75 % (below the scale-2 worse level 78 %) critical."""
        _, ctx = run([discharge(flags=["hypercapnic_respiratory_failure"])])
        results, _ = run(series([86.0] * 900, 1), ctx)
        assert firings(results) == []
        results, _ = run(series([80.0] * 400 + [75.0] * 400, 1), ctx)
        assert [lvl for _, lvl in firings(results)] == [0, 1]

    def test_pulse_rule_uses_the_same_windows(self) -> None:
        """The tachycardia rule (>= 131 /min) is windowed the same way at 5-s cadence."""
        events = [spo2(140.0, START + timedelta(seconds=5 * i), kind="pulse") for i in range(100)]
        results, _ = run(events)
        assert [i for i, _ in firings(results, PULSE.id)] == [60]


class TestDeviceProfile:
    def test_inferred_from_cadence(self) -> None:
        """A reading within 120 s of the previous one is continuous; the first reading and a
        reading 5 min later are spot checks."""
        _, ctx = run(series([97.0, 97.0], 1, profile=None))
        assert ctx.sensor_summaries["spo2"].profile == DeviceProfile.CONTINUOUS
        _, ctx = run(series([97.0], 1, profile=None))
        assert ctx.sensor_summaries["spo2"].profile == DeviceProfile.SPOT_CHECK
        _, ctx = run(series([97.0, 97.0], 300, profile=None))
        assert ctx.sensor_summaries["spo2"].profile == DeviceProfile.SPOT_CHECK

    def test_declared_profile_wins(self) -> None:
        """A device that declares itself continuous is continuous from the first reading."""
        [a], ctx = run([spo2(97.0, START, DeviceProfile.CONTINUOUS)])
        assert ctx.sensor_summaries["spo2"].profile == DeviceProfile.CONTINUOUS
        assert "Device profile continuous (declared)." in a.notes


class TestBoundedState:
    def test_state_is_constant_size_at_any_cadence(self) -> None:
        """Two hours at 1 s (7200 readings, an open episode) keep a context under 5 KB and the
        same size as ten minutes (600 readings): only the counters' digits grow."""
        _, small = run(series([88.0] * 600, 1))
        _, big = run(series([88.0] * 7200, 1))
        size = len(big.model_dump_json())
        assert size < 5 * 1024, size
        assert size - len(small.model_dump_json()) <= 4
        assert CitizenContext.model_validate_json(big.model_dump_json()) == big
