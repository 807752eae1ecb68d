"""Per-citizen context: the discharge facts plus a small, bounded recent history.

The context is what a nurse would want to know before judging a set of vitals: when the citizen
came home, from where, with which conditions, flags and treatment limitations, and what the last
readings looked like. It is a pure fold: each ``record_*`` / ``apply_discharge`` function takes
the old context and an event and returns the new one, so the streaming path and the CLI compute
it the same way. PostgreSQL keeps it durably (``citizen_context``, one JSON document per citizen).

Memory is bounded by construction (target: well under 5 KB serialized per citizen):

* at most ``history.readings_per_kind`` readings per vital sensor kind, ``history.weights``
  weights no older than ``history.weight_days``, ``history.news2_entries`` NEWS2 totals;
* at most ``MAX_DIAGNOSES`` diagnoses and ``MAX_FLAGS`` flags (conditions are derived from all
  diagnoses first, and flags the rules act on are always kept);
* timestamps are stored in UTC.

Ordering: a reading older than the newest one of its kind never moves the "latest" view
backwards; it is counted in ``stale_events`` and otherwise ignored.

Conditions and competence: ICD-10 codes map to the chronic conditions the acute teams specialise
in (COPD, heart failure, diabetes). A documented hypercapnic respiratory failure flag selects
NEWS2 SpO2 scale 2 (RCP 2017, chart 1); the palliative flag is a treatment limitation (the
palliative pathway, never an emergency call).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.contract.events import DischargeEvent, DischargeFlag, SensorKind
from dispatcher.rules.windows import KindSummary

MAX_DIAGNOSES = 20
MAX_FLAGS = 16

# ICD-10 prefixes -> the condition (and nurse competence) that should take the case.
CONDITION_BY_ICD10_PREFIX: tuple[tuple[str, str], ...] = (
    ("J44", "copd"),  # other chronic obstructive pulmonary disease
    ("J43", "copd"),  # emphysema
    ("J96", "copd"),  # respiratory failure (hypercapnic failure is mostly COPD at home)
    ("I50", "heart_failure"),
    ("I11.0", "heart_failure"),  # hypertensive heart disease with heart failure
    ("I13.0", "heart_failure"),  # hypertensive heart and renal disease with heart failure
    ("E10", "diabetes"),
    ("E11", "diabetes"),
    ("E13", "diabetes"),
    ("E14", "diabetes"),
)

# Treatment limitations carried by discharge flags.
TREATMENT_LIMITATION_FLAGS: tuple[DischargeFlag, ...] = (DischargeFlag.PALLIATIVE,)


def conditions_for(diagnoses: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Map ICD-10 codes to the chronic conditions the acute teams specialise in."""
    found: list[str] = []
    for code in diagnoses:
        for prefix, condition in CONDITION_BY_ICD10_PREFIX:
            if code.startswith(prefix) and condition not in found:
                found.append(condition)
    return tuple(found)


def _bounded_flags(flags: list[str]) -> tuple[str, ...]:
    """Known flags always; other flags in order until ``MAX_FLAGS``."""
    known = {f.value for f in DischargeFlag}
    kept = [f for f in dict.fromkeys(flags) if f in known]
    for f in dict.fromkeys(flags):
        if len(kept) >= MAX_FLAGS:
            break
        if f not in kept:
            kept.append(f)
    return tuple(kept)


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Sample(_Frozen):
    """One timestamped value (a sensor reading or a weight)."""

    at: AwareDatetime
    value: float


class News2Entry(_Frozen):
    """A NEWS2 total from a nurse observation; ``complete`` when all seven were present."""

    at: AwareDatetime
    total: int = Field(ge=0, le=20)
    complete: bool


class CitizenContext(_Frozen):
    """What we know about a citizen beyond the event at hand."""

    citizen_id: str
    discharged_at: AwareDatetime | None = None
    hospital: str | None = None
    department: str | None = None
    municipality: str | None = None
    district: str | None = None
    diagnoses: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    last_discharge_event_id: str | None = None
    discharge_count: int = Field(default=0, ge=0)
    # Bounded recent history (sensor and trend rules).
    readings: dict[str, tuple[Sample, ...]] = Field(default_factory=dict)
    weights: tuple[Sample, ...] = ()
    baseline_weight_kg: float | None = Field(
        default=None, description="First valid weight after the latest discharge."
    )
    news2_history: tuple[News2Entry, ...] = ()
    last_sensor_at: AwareDatetime | None = Field(
        default=None, description="Newest valid (plausible, in-order) sensor reading."
    )
    last_fall_at: AwareDatetime | None = None
    last_observation_at: AwareDatetime | None = None
    stale_events: int = Field(default=0, ge=0)
    sensor_faults: int = Field(default=0, ge=0)
    sensor_summaries: dict[str, KindSummary] = Field(
        default_factory=dict,
        description=(
            "Per sensor kind: newest reading, device profile and open breach episodes "
            "(time-window rules, dispatcher.rules.windows); constant size at any cadence."
        ),
    )

    def has_flag(self, flag: DischargeFlag) -> bool:
        return flag.value in self.flags

    @property
    def news2_scale(self) -> int:
        """SpO2 scale 2 only with documented hypercapnic respiratory failure (RCP 2017)."""
        return 2 if self.has_flag(DischargeFlag.HYPERCAPNIC_RESPIRATORY_FAILURE) else 1

    @property
    def spo2_target(self) -> tuple[int, int]:
        """The baseline saturation target: 88-92 % on scale 2, else 96-100 % (chart 1)."""
        return (88, 92) if self.news2_scale == 2 else (96, 100)

    @property
    def treatment_limitations(self) -> tuple[str, ...]:
        return tuple(f.value for f in TREATMENT_LIMITATION_FLAGS if self.has_flag(f))

    @property
    def palliative(self) -> bool:
        return self.has_flag(DischargeFlag.PALLIATIVE)

    def days_since_discharge(self, now: datetime) -> float | None:
        if self.discharged_at is None:
            return None
        return (now - self.discharged_at) / timedelta(days=1)

    def in_post_discharge_window(self, now: datetime, window: timedelta) -> bool:
        """True during the first ``window`` after the latest discharge (vigilance raised)."""
        if self.discharged_at is None:
            return False
        return timedelta(0) <= now - self.discharged_at <= window

    def latest(self, kind: SensorKind) -> Sample | None:
        """The newest in-order sample of a kind (weights included)."""
        series = self.weights if kind == SensorKind.WEIGHT else self.readings.get(kind.value, ())
        return series[-1] if series else None

    def last_news2(self) -> News2Entry | None:
        return self.news2_history[-1] if self.news2_history else None


def empty_context(citizen_id: str) -> CitizenContext:
    return CitizenContext(citizen_id=citizen_id)


def apply_discharge(ctx: CitizenContext | None, event: DischargeEvent) -> CitizenContext:
    """Fold a discharge in. An older discharge never overwrites a newer one; history is kept."""
    base = ctx or empty_context(event.citizen_id)
    if base.discharged_at is not None and event.discharged_at < base.discharged_at:
        return base.model_copy(update={"discharge_count": base.discharge_count + 1})
    return base.model_copy(
        update={
            "discharged_at": utc(event.discharged_at),
            "hospital": event.hospital,
            "department": event.department,
            "municipality": event.municipality,
            "district": event.district,
            "diagnoses": tuple(dict.fromkeys(event.diagnoses))[:MAX_DIAGNOSES],
            "conditions": conditions_for(event.diagnoses),
            "flags": _bounded_flags(event.flags),
            "last_discharge_event_id": str(event.event_id),
            "discharge_count": base.discharge_count + 1,
            "baseline_weight_kg": None,  # a new stay: the baseline is re-taken at home
        }
    )


def is_stale(ctx: CitizenContext, kind: SensorKind, at: datetime) -> bool:
    """A reading older than the newest one of its kind is stale (it arrived out of order)."""
    if kind == SensorKind.FALL:
        return ctx.last_fall_at is not None and at < ctx.last_fall_at
    newest = ctx.latest(kind)
    return newest is not None and at < newest.at


def record_stale(ctx: CitizenContext) -> CitizenContext:
    return ctx.model_copy(update={"stale_events": ctx.stale_events + 1})


def record_sensor_fault(ctx: CitizenContext) -> CitizenContext:
    return ctx.model_copy(update={"sensor_faults": ctx.sensor_faults + 1})


def _touch_sensor(ctx: CitizenContext, at: datetime) -> datetime:
    return at if ctx.last_sensor_at is None or at > ctx.last_sensor_at else ctx.last_sensor_at


def record_reading(
    ctx: CitizenContext,
    kind: SensorKind,
    at: datetime,
    value: float,
    *,
    readings_per_kind: int,
    weights: int,
    weight_days: float,
) -> CitizenContext:
    """Append an in-order, plausible reading to the bounded history (caller checked order)."""
    at = utc(at)
    update: dict[str, object] = {"last_sensor_at": _touch_sensor(ctx, at)}
    if kind == SensorKind.FALL:
        if value >= 1:
            update["last_fall_at"] = at
    elif kind == SensorKind.WEIGHT:
        horizon = at - timedelta(days=weight_days)
        kept = tuple(w for w in ctx.weights if w.at >= horizon)
        update["weights"] = (*kept, Sample(at=at, value=value))[-weights:]
        if ctx.baseline_weight_kg is None and (
            ctx.discharged_at is None or at >= ctx.discharged_at
        ):
            update["baseline_weight_kg"] = value
    else:
        series = (*ctx.readings.get(kind.value, ()), Sample(at=at, value=value))
        update["readings"] = {**ctx.readings, kind.value: series[-readings_per_kind:]}
    return ctx.model_copy(update=update)


def record_news2(
    ctx: CitizenContext, at: datetime, total: int | None, complete: bool, *, keep: int
) -> CitizenContext:
    """Move ``last_observation_at`` forward and append the NEWS2 total, if there is one.

    ``total`` is ``None`` when no NEWS2 parameter could be scored: such an observation must not
    enter the history as a 0, or the trend rule would later see a rise that never happened.
    """
    at = utc(at)
    update: dict[str, object] = {"last_observation_at": at}
    if total is not None:
        entry = News2Entry(at=at, total=total, complete=complete)
        update["news2_history"] = (*ctx.news2_history, entry)[-keep:]
    return ctx.model_copy(update=update)
