"""Citizen context: discharge facts, conditions, limitations and bounded history."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.contract.events import DeviceProfile, SensorKind
from dispatcher.rules.assessment import competence_for, evaluate
from dispatcher.rules.context import (
    MAX_DIAGNOSES,
    MAX_FLAGS,
    MAX_SOURCES,
    CitizenContext,
    News2Entry,
    Provenance,
    Sample,
    apply_discharge,
    conditions_for,
)
from dispatcher.rules.ruleset import (
    VITAL_SENSOR_KINDS,
    SpotCheckRule,
    SustainedSensorRule,
    default_ruleset,
)
from dispatcher.rules.windows import BreachEpisode, KindSummary, LevelRun, RepeatState
from tests.helpers import CITIZEN
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import observation_model as observation
from tests.helpers import reading_model as reading


class TestDischargeFold:
    """A discharge sets conditions, flags, scale and competence."""

    def test_diagnoses_map_to_conditions(self) -> None:
        """COPD (J44), heart failure (I50) and diabetes (E11) codes map to their conditions."""
        assert conditions_for(["J44.1", "I50.0", "E11.9", "Z99.9"]) == (
            "copd",
            "heart_failure",
            "diabetes",
        )

    def test_condition_sets_competence(self) -> None:
        """The first mapped condition is the nurse competence asked for."""
        ctx = apply_discharge(None, discharge(diagnoses=["I50.1"]))
        assert competence_for(ctx) == "heart_failure"

    def test_palliative_trumps_diagnoses(self) -> None:
        """A palliative citizen gets palliative competence and a treatment limitation."""
        ctx = apply_discharge(None, discharge(diagnoses=["J44.1"], flags=["palliative"]))
        assert competence_for(ctx) == "palliative"
        assert ctx.treatment_limitations == ("palliative",)

    def test_hypercapnic_flag_selects_scale_2(self) -> None:
        """Documented hypercapnic respiratory failure selects SpO2 scale 2 and an 88-92 %
        target (RCP 2017 chart 1)."""
        ctx = apply_discharge(None, discharge(flags=["hypercapnic_respiratory_failure"]))
        assert ctx.news2_scale == 2
        assert ctx.spo2_target == (88, 92)
        assert apply_discharge(None, discharge()).news2_scale == 1

    def test_older_discharge_does_not_overwrite(self) -> None:
        """A late-arriving older discharge counts but does not replace the newer facts."""
        newer = apply_discharge(None, discharge(at=NOW, hospital="hospital-new"))
        both = apply_discharge(newer, discharge(at=NOW - timedelta(days=40), hospital="h-old"))
        assert both.hospital == "hospital-new"
        assert both.discharge_count == 2

    def test_new_discharge_keeps_history(self) -> None:
        """A new discharge keeps the sensor and NEWS2 history already recorded."""
        _, ctx = evaluate(reading(SensorKind.SPO2, 95, at=NOW - timedelta(hours=1)), None, NOW)
        ctx = apply_discharge(ctx, discharge(at=NOW))
        assert ctx.latest(SensorKind.SPO2) is not None

    def test_flags_and_diagnoses_are_bounded(self) -> None:
        """Diagnoses and flags are capped, keeping known flags; conditions use all codes."""
        codes = [f"A{n:02d}" for n in range(40)] + ["I50.0"]
        flags = [f"custom_{n}" for n in range(40)] + ["palliative"]
        ctx = apply_discharge(None, discharge(diagnoses=codes, flags=flags))
        assert len(ctx.diagnoses) <= MAX_DIAGNOSES
        assert len(ctx.flags) <= MAX_FLAGS
        assert "palliative" in ctx.flags
        assert "heart_failure" in ctx.conditions


class TestPostDischargeWindow:
    """Vigilance is raised during the configured window after discharge."""

    def test_window_edges(self) -> None:
        """Inside the window up to and including its last instant; not before discharge nor
        after."""
        ctx = apply_discharge(None, discharge(at=NOW))
        window = timedelta(days=default_ruleset().context.post_discharge_window_days)
        assert ctx.in_post_discharge_window(NOW, window)
        assert ctx.in_post_discharge_window(NOW + window, window)
        assert not ctx.in_post_discharge_window(NOW + window + timedelta(seconds=1), window)
        assert not ctx.in_post_discharge_window(NOW - timedelta(seconds=1), window)


class TestEveryEventUpdatesContext:
    """evaluate() returns the updated context for every event kind."""

    def test_sensor_reading_is_recorded(self) -> None:
        """A sensor reading becomes the latest of its kind and the last sensor time."""
        r = reading(SensorKind.PULSE, 80)
        _, ctx = evaluate(r, None, NOW)
        latest = ctx.latest(SensorKind.PULSE)
        assert latest is not None
        assert latest.value == 80
        assert ctx.last_sensor_at == r.occurred_at

    def test_observation_is_recorded(self) -> None:
        """A nurse observation adds its NEWS2 total to the history."""
        _, ctx = evaluate(observation(pulse=115), None, NOW)  # pulse 111-130 scores 2
        last = ctx.last_news2()
        assert last is not None
        assert last.total == 2
        assert last.complete
        assert ctx.last_observation_at == NOW

    def test_discharge_is_recorded(self) -> None:
        """A discharge sets the discharge time."""
        d = discharge()
        _, ctx = evaluate(d, None, NOW)
        assert ctx.discharged_at == d.discharged_at

    def test_weight_sets_baseline_once(self) -> None:
        """The first weight after discharge becomes the baseline; later ones do not move it."""
        _, ctx = evaluate(discharge(at=NOW - timedelta(days=3)), None, NOW)
        _, ctx = evaluate(reading(SensorKind.WEIGHT, 70, at=NOW - timedelta(days=2)), ctx, NOW)
        _, ctx = evaluate(reading(SensorKind.WEIGHT, 71, at=NOW - timedelta(days=1)), ctx, NOW)
        assert ctx.baseline_weight_kg == 70


class TestBoundedHistory:
    """History stays within the rule set's bounds and well under 5 KB."""

    def test_readings_per_kind_are_bounded(self) -> None:
        """Only the newest readings_per_kind readings of a kind are kept."""
        limit = default_ruleset().history.readings_per_kind
        ctx = None
        for i in range(limit + 5):
            _, ctx = evaluate(
                reading(SensorKind.PULSE, 60 + i, at=NOW + timedelta(minutes=i)), ctx, NOW
            )
        assert ctx is not None
        kept = ctx.readings["pulse"]
        assert len(kept) == limit
        assert kept[-1].value == 60 + limit + 4

    def test_old_weights_are_dropped(self) -> None:
        """Weights older than weight_days before the newest are dropped."""
        days = default_ruleset().history.weight_days
        ctx = None
        for d in (days + 2, days + 1, 1, 0):
            r = reading(SensorKind.WEIGHT, 70, at=NOW - timedelta(days=d))
            _, ctx = evaluate(r, ctx, NOW)
        assert ctx is not None
        assert len(ctx.weights) == 2

    def test_news2_history_is_bounded(self) -> None:
        """Only the newest news2_entries totals are kept."""
        keep = default_ruleset().history.news2_entries
        ctx = None
        for i in range(keep + 3):
            _, ctx = evaluate(observation(at=NOW + timedelta(hours=i)), ctx, NOW)
        assert ctx is not None
        assert len(ctx.news2_history) == keep

    def test_full_context_is_well_under_5_kb(self) -> None:
        """A context filled to every default bound, with maximal text fields, serializes under
        5 KB."""
        h = default_ruleset().history
        long = "x" * 120
        at = NOW.replace(microsecond=123456)
        ctx = CitizenContext(
            citizen_id="cit-" + "a" * 60,
            discharged_at=at,
            hospital=long,
            department=long,
            municipality=long,
            district=long,
            diagnoses=tuple(f"J44.{n:04d}" for n in range(MAX_DIAGNOSES)),
            conditions=("copd", "heart_failure", "diabetes"),
            flags=tuple(f"flag_{n:02d}_" + "y" * 20 for n in range(MAX_FLAGS)),
            # Provenance at its bounds (issue 12 item 5): every entry from a distinct source
            # number (<= discharge_count), MAX_SOURCES sources with full id and time.
            diagnosis_sources=tuple(range(99 - MAX_DIAGNOSES, 99)),
            flag_sources=tuple(range(99 - MAX_FLAGS, 99)),
            sources=tuple(
                Provenance(n=99 - n, event_id="0b0f7c1e-3d7a-4c55-9f2a-1c4b8e2d9a01", at=at)
                for n in range(MAX_SOURCES)
            ),
            last_discharge_event_id="0b0f7c1e-3d7a-4c55-9f2a-1c4b8e2d9a01",
            discharge_count=99,
            readings={
                k.value: tuple(Sample(at=at, value=123.456) for _ in range(h.readings_per_kind))
                for k in VITAL_SENSOR_KINDS
            },
            weights=tuple(Sample(at=at, value=123.456) for _ in range(h.weights)),
            baseline_weight_kg=123.456,
            discharge_weight_kg=123.456,
            news2_history=tuple(
                News2Entry(at=at, total=20, complete=True) for _ in range(h.news2_entries)
            ),
            last_sensor_at=at,
            last_fall_at=at,
            last_observation_at=at,
            stale_events=12345,
            sensor_faults=12345,
            # Worst case of the time-window state: every kind summarised, every sustained rule
            # with an open episode, every worse level with a run (issue 12 item 1).
            sensor_summaries={
                k.value: KindSummary(
                    profile=DeviceProfile.SPOT_CHECK,
                    episodes={
                        r.id: BreachEpisode(
                            start_at=at,
                            count=10**9,
                            worst=123.456,
                            paged=len(r.worse),
                            runs=tuple(LevelRun(start_at=at, count=10**9) for _ in r.worse),
                        )
                        for r in default_ruleset().rules
                        if isinstance(r, SustainedSensorRule) and r.sensor == k
                    },
                    repeats={
                        r.id: RepeatState(
                            days=tuple(at.date() for _ in range(r.min_days)), paged=at.date()
                        )
                        for r in default_ruleset().rules
                        if isinstance(r, SpotCheckRule) and r.sensor == k and r.min_days > 1
                    },
                )
                for k in VITAL_SENSOR_KINDS
            },
        )
        size = len(ctx.model_dump_json())
        assert size < 5 * 1024, size

    def test_context_round_trips_through_json(self) -> None:
        """The stored JSON loads back into an equal context (PostgreSQL keeps it as JSON)."""
        ctx = None
        for ev in (
            discharge(diagnoses=["I50.0"]),
            reading(SensorKind.WEIGHT, 80.5, at=NOW - timedelta(hours=2)),
            reading(SensorKind.SPO2, 94, at=NOW - timedelta(hours=1)),
            observation(),
        ):
            _, ctx = evaluate(ev, ctx, NOW)
        assert ctx is not None
        assert CitizenContext.model_validate_json(ctx.model_dump_json()) == ctx
        assert ctx.citizen_id == CITIZEN
