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
* at most ``recent.KEEP`` (3) recent nurse observations of the last 24 h, kept so a late
  discharge can re-assess them (``dispatcher.rules.recent``, issue 11 item 4): about 600 bytes,
  at most 0.9 KB, which takes the contrived all-fields-maximal context past 5 KB;
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
from dispatcher.rules.recent import RecentObservation
from dispatcher.rules.ruleset import default_ruleset
from dispatcher.rules.windows import KindSummary

MAX_DIAGNOSES = 20
MAX_FLAGS = 16
MAX_SOURCES = 2  # newest discharges kept with full provenance (older: by number n)

# Treatment limitations carried by discharge flags.
TREATMENT_LIMITATION_FLAGS: tuple[DischargeFlag, ...] = (DischargeFlag.PALLIATIVE,)

ConditionMap = tuple[tuple[str, str], ...]


def default_condition_map() -> ConditionMap:
    """The packaged rule set's diagnosis -> condition map (``conditions:`` in default.yaml)."""
    return default_ruleset().condition_map()


def conditions_for(
    diagnoses: list[str] | tuple[str, ...], condition_map: ConditionMap | None = None
) -> tuple[str, ...]:
    """Map (normalised ICD-10) codes to the chronic conditions the acute teams specialise in,
    in the map's priority order."""
    cmap = condition_map if condition_map is not None else default_condition_map()
    found = {c for prefix, c in cmap for code in diagnoses if code.startswith(prefix)}
    return tuple(dict.fromkeys(c for _, c in cmap if c in found))


def _bounded(entries: dict[str, int], first: set[str], limit: int) -> dict[str, int]:
    """``first`` entries always (in order), then the others in order, up to ``limit``."""
    kept = {k: v for k, v in entries.items() if k in first}
    for k, v in entries.items():
        if len(kept) >= limit:
            break
        kept.setdefault(k, v)
    return kept


def utc(at: datetime) -> datetime:
    return at.astimezone(UTC)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Provenance(_Frozen):
    """A source of context facts: the ``n``-th discharge folded in, its event id and time."""

    n: int = Field(ge=1)
    event_id: str
    at: AwareDatetime


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
    # Provenance, aligned with ``diagnoses`` / ``flags``: the ``n`` of the source that first
    # listed the diagnosis / set the flag (0: unknown, a context stored before provenance).
    diagnosis_sources: tuple[int, ...] = ()
    flag_sources: tuple[int, ...] = ()
    sources: tuple[Provenance, ...] = Field(
        default=(), description="The newest MAX_SOURCES discharges folded in (oldest first)."
    )
    last_discharge_event_id: str | None = None
    discharge_count: int = Field(default=0, ge=0)
    # Bounded recent history (sensor and trend rules).
    readings: dict[str, tuple[Sample, ...]] = Field(default_factory=dict)
    weights: tuple[Sample, ...] = ()
    baseline_weight_kg: float | None = Field(
        default=None, description="First valid weight after the latest discharge."
    )
    discharge_weight_kg: float | None = Field(
        default=None, description="Weight documented at the latest discharge (dry weight)."
    )
    news2_history: tuple[News2Entry, ...] = ()
    news2_baseline: tuple[News2Entry, ...] = Field(
        default=(),
        description="Complete NEWS2 sets that can still be the lowest of a trend window "
        "(a sliding-window minimum, totals rising with time; bounded).",
    )
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
    recent_observations: tuple[RecentObservation, ...] = Field(
        default=(),
        description="The last few observations with the severity they were decided with, so a "
        "late discharge can re-assess them (dispatcher.rules.recent; issue 11 item 4).",
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


def _aligned(entries: tuple[str, ...], sources: tuple[int, ...]) -> dict[str, int]:
    if len(sources) != len(entries):
        sources = (0,) * len(entries)  # stored before provenance: unknown source
    return dict(zip(entries, sources, strict=True))


def apply_discharge(
    ctx: CitizenContext | None,
    event: DischargeEvent,
    condition_map: ConditionMap | None = None,
) -> CitizenContext:
    """Fold a discharge in: facts accumulate, with provenance; the newest stay sets the rest.

    * Diagnoses from every discharge are merged (chronic conditions persist), each with the
      source that first listed it; conditions are derived from all of them (``condition_map``,
      default: the packaged rule set's ``conditions:``). Codes arrive normalised (ICD-10 with
      the dot; SKS ``DI501`` is ``I50.1``), so both spellings are one diagnosis.
    * Flags from every discharge are merged, each with the source that set it. A flag ends
      only when a discharge lists it in ``flags_ended`` and is not older than the source that
      set it.
    * The newest discharge (by ``discharged_at``) sets the stay: time, hospital, department,
      municipality, district and the re-taken weight baseline. An older discharge that arrives
      late adds its facts but never moves these back.
    * Bounds: ``MAX_DIAGNOSES`` (condition-mapped codes kept first), ``MAX_FLAGS`` (flags the
      rules act on kept first), ``MAX_SOURCES`` sources with id and time.
    """
    base = ctx or empty_context(event.citizen_id)
    cmap = condition_map if condition_map is not None else default_condition_map()
    n = base.discharge_count + 1
    at = utc(event.discharged_at)
    known_sources = {s.n: s for s in base.sources}

    dx = _aligned(base.diagnoses, base.diagnosis_sources)
    for code in event.diagnoses:
        dx.setdefault(code, n)
    mapped = {code for code in dx if conditions_for((code,), cmap)}
    dx = _bounded(dx, mapped, MAX_DIAGNOSES)

    flags = _aligned(base.flags, base.flag_sources)
    for flag in event.flags:
        flags.setdefault(flag, n)
    for flag in event.flags_ended:
        setter = known_sources.get(flags.get(flag, -1))
        if flag in flags and (setter is None or setter.at <= at):
            del flags[flag]
    flags = _bounded(flags, {f.value for f in DischargeFlag}, MAX_FLAGS)

    conditions = conditions_for(tuple(dx), cmap)
    conditions = (*conditions, *(c for c in base.conditions if c not in conditions))
    update: dict[str, object] = {
        "diagnoses": tuple(dx),
        "diagnosis_sources": tuple(dx.values()),
        "conditions": conditions,
        "flags": tuple(flags),
        "flag_sources": tuple(flags.values()),
        "sources": (*base.sources, Provenance(n=n, event_id=str(event.event_id), at=at))[
            -MAX_SOURCES:
        ],
        "discharge_count": n,
    }
    if base.discharged_at is None or event.discharged_at >= base.discharged_at:
        update |= {
            "discharged_at": at,
            "hospital": event.hospital,
            "department": event.department,
            "municipality": event.municipality,
            "district": event.district,
            "last_discharge_event_id": str(event.event_id),
            "baseline_weight_kg": None,  # a new stay: the baseline is re-taken at home
            "discharge_weight_kg": event.weight_kg,
        }
    return base.model_copy(update=update)


def provenance(
    ctx: CitizenContext, *, diagnosis: str | None = None, flag: str | None = None
) -> Provenance | int | None:
    """Where a diagnosis or flag came from: the source (id and time) when still kept, else its
    discharge number ``n`` (0: unknown), ``None`` when the context does not hold it."""
    entries = (
        _aligned(ctx.diagnoses, ctx.diagnosis_sources)
        if diagnosis
        else _aligned(ctx.flags, ctx.flag_sources)
    )
    key = diagnosis or flag
    if key is None or key not in entries:
        return None
    n = entries[key]
    return next((s for s in ctx.sources if s.n == n), n)


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


def _sliding_minimum(entries: list[News2Entry], keep: int) -> tuple[News2Entry, ...]:
    """Keep only entries that can still be the lowest total of a window ending later: an entry
    with a later entry at the same or a lower total can never be (a monotone queue, totals
    strictly rising with time). Bounded to ``keep``: the oldest (the current minimum) and the
    newest ``keep - 1``."""
    kept: list[News2Entry] = []
    for e in sorted(entries, key=lambda e: e.at):
        while kept and kept[-1].total >= e.total:
            kept.pop()
        kept.append(e)
    if len(kept) > keep:
        kept = [kept[0], *kept[len(kept) - keep + 1 :]]
    return tuple(kept)


def baseline_news2(ctx: CitizenContext, at: datetime, hours: float) -> News2Entry | None:
    """The rolling baseline for an observation at ``at``: the lowest NEWS2 of the complete sets
    in the ``hours`` before it (the oldest such, on a tie)."""
    start = at - timedelta(hours=hours)
    window = [e for e in ctx.news2_baseline if start <= e.at < at]
    return min(window, key=lambda e: (e.total, e.at)) if window else None


def record_news2(
    ctx: CitizenContext,
    at: datetime,
    total: int | None,
    complete: bool,
    *,
    keep: int,
    baseline_keep: int = 3,
    baseline_hours: float = 24.0,
) -> CitizenContext:
    """Record an observation's NEWS2 total at its own time (late ones in time order).

    ``last_observation_at`` only moves forward. ``total`` is ``None`` when no NEWS2 parameter
    could be scored: such an observation must not enter the history as a 0, or the trend rule
    would later see a rise that never happened. Only a complete set enters the trend baseline
    (a partial set's total is a lower bound, often 0), which keeps sets that can still be the
    lowest of a ``baseline_hours`` window.
    """
    at = utc(at)
    newest = ctx.last_observation_at
    update: dict[str, object] = {
        "last_observation_at": at if newest is None or at > newest else newest
    }
    if total is not None:
        entry = News2Entry(at=at, total=total, complete=complete)
        history = sorted((*ctx.news2_history, entry), key=lambda e: e.at)
        update["news2_history"] = tuple(history[-keep:])
        if complete:
            horizon = max(at, newest or at) - timedelta(hours=baseline_hours)
            recent = [e for e in (*ctx.news2_baseline, entry) if e.at >= horizon]
            update["news2_baseline"] = _sliding_minimum(recent, baseline_keep)
    return ctx.model_copy(update=update)
