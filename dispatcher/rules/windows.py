"""Sensor rules by time window: a bounded summary per sensor kind, correct for any cadence.

Issue 12 item 1. A home oximeter may send a value every second, a blood-pressure cuff twice a
day. A rule that looks at "the last N readings" cannot serve both: at one cadence N readings
never span the required minutes (SpO2 80 % for 39 minutes never paged), at another every
reading escalates. Instead each citizen's context keeps, per sensor kind, a ``KindSummary``:

* the device profile of the newest reading (continuous or spot check, see below; the newest
  reading itself is ``CitizenContext.latest(kind)``, not stored twice);
* per sustained rule with an open breach, a ``BreachEpisode``: when it started, how many
  readings breached, the worst value, which level was already escalated, and for each
  ``worse`` level the start of its own run (the newest value and time are the summary's: an
  open episode always holds the newest reading).

The summary is a constant size whatever the cadence (a few hundred bytes per kind), so the
context stays bounded (< 5 KB, tested).

Episode semantics (``SustainedSensorRule``):

* it **starts** at the first reading that breaches the rule's threshold (NEWS2 scale of the
  citizen applies: SpO2 scale 2 for documented hypercapnic respiratory failure);
* it **goes on** while readings breach and each comes at most ``max_gap_minutes`` after the
  previous breaching one;
* it **ends** at a reading back in range (recovery) or when a reading comes after a longer gap
  (episode timeout; that reading may start a new episode);
* it **escalates once**, on the reading at which it has lasted ``min_minutes`` (newest minus
  first breaching time) with at least ``min_readings`` readings; later readings of the same
  episode are noted "already escalated";
* it **escalates again when worsening**: a ``worse`` level (e.g. SpO2 <= 85 %) whose own run
  inside the episode has lasted ``min_minutes`` with ``min_readings`` readings escalates once,
  with that level's severity. Each level pages at most once per episode.

Device profile: taken from the reading's optional ``device_profile`` field when the device
declares it; otherwise inferred from the cadence: a reading at most
``sensor_profiles.continuous_max_interval_seconds`` (default 120 s) after the previous reading
of its kind is ``continuous``, anything else (including the first reading of a kind) is a
``spot_check``. The profile is reported with every sensor assessment and selects the
single-reading limits for spot checks and the silence limits.

Pure: no clock, no I/O; times are the readings' ``occurred_at``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.contract.events import DeviceProfile, SensorKind, SensorReading
from dispatcher.contract.vocab import Severity
from dispatcher.rules.findings import Outcome
from dispatcher.rules.ruleset import (
    Comparison,
    RuleSet,
    SensorProfiles,
    SpotCheckRule,
    SustainedSensorRule,
)

if TYPE_CHECKING:  # pragma: no cover - import for annotations only (context imports us)
    from dispatcher.rules.context import CitizenContext, Sample

Direction = Literal["at_or_below", "at_or_above"]


def _to_second(at: datetime) -> datetime:
    """Stored times are whole seconds in UTC (sub-second precision has no clinical meaning and
    would cost 7 bytes per time in the bounded context)."""
    return at.astimezone(UTC).replace(microsecond=0)


Second = Annotated[AwareDatetime, AfterValidator(_to_second)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelRun(_Frozen):
    """The current run of readings beyond one ``worse`` level inside an episode."""

    start_at: Second
    count: int = Field(ge=1)


class BreachEpisode(_Frozen):
    """An open breach of one sustained rule: bounded, whatever the number of readings.

    An open episode always includes the kind's newest reading (a reading that does not breach
    ends it), so its newest time and value are those of ``CitizenContext.latest(kind)``.
    """

    start_at: Second
    count: int = Field(ge=1)
    worst: float
    paged: int = Field(default=-1, ge=-1, description="Highest level escalated (-1: none yet).")
    runs: tuple[LevelRun | None, ...] = Field(default=(), description="One per worse level.")


class RepeatState(_Frozen):
    """Calendar days (the reading's own UTC offset) with a breach of a repeat rule; bounded."""

    days: tuple[date, ...] = ()
    paged: date | None = None


class KindSummary(_Frozen):
    """What the rules remember about one sensor kind of one citizen, beyond its newest reading
    (which is ``CitizenContext.latest(kind)``: not stored twice)."""

    profile: DeviceProfile = Field(description="Of the newest reading (declared or inferred).")
    episodes: dict[str, BreachEpisode] = Field(default_factory=dict, description="By rule id.")
    repeats: dict[str, RepeatState] = Field(
        default_factory=dict, description="Spot-check breach days, by repeat rule id."
    )


def infer_profile(
    reading: SensorReading, previous: Sample | None, settings: SensorProfiles
) -> tuple[DeviceProfile, bool]:
    """The device profile of ``reading`` and whether the reading declared it."""
    if reading.device_profile is not None:
        return reading.device_profile, True
    if previous is not None and (
        (reading.occurred_at - previous.at).total_seconds()
        <= settings.continuous_max_interval_seconds
    ):
        return DeviceProfile.CONTINUOUS, False
    return DeviceProfile.SPOT_CHECK, False


def _breaches(direction: Direction, threshold: float, value: float) -> bool:
    return value <= threshold if direction == "at_or_below" else value >= threshold


def _op(direction: Direction) -> str:
    return "<=" if direction == "at_or_below" else ">="


def _minutes(delta: timedelta) -> float:
    return delta / timedelta(minutes=1)


def _levels(rule: SustainedSensorRule, scale: int) -> list[tuple[Direction, float, Severity]]:
    """Level 0 is the rule's own threshold; then each ``worse`` level, in order."""
    direction, threshold = rule.threshold(scale)
    levels: list[tuple[Direction, float, Severity]] = [(direction, threshold, rule.severity)]
    levels += [(*w.threshold(scale), w.severity) for w in rule.worse]
    return levels


def step_episode(
    rule: SustainedSensorRule,
    episode: BreachEpisode | None,
    at: datetime,
    value: float,
    *,
    previous_at: datetime | None,
    scale: int,
    profile: DeviceProfile,
) -> tuple[BreachEpisode | None, Outcome]:
    """Fold one in-order reading into the rule's episode; fire or explain. Pure."""
    out = Outcome()
    levels = _levels(rule, scale)
    direction, threshold, _ = levels[0]
    op = _op(direction)
    sensor = rule.sensor.value
    max_gap = timedelta(minutes=rule.max_gap_minutes)
    if episode is not None and previous_at is not None and at - previous_at > max_gap:
        out.notes.append(
            f"{rule.id}: episode of {sensor} {op} {threshold:g} since "
            f"{episode.start_at.isoformat()} ended: no reading for "
            f"{_minutes(at - previous_at):.0f} min (episode timeout "
            f"{rule.max_gap_minutes:g} min)."
        )
        episode = None
    if not _breaches(direction, threshold, value):
        if episode is not None:
            out.notes.append(
                f"{rule.id}: {sensor} {value:g} back in range (not {op} {threshold:g}): episode "
                f"since {episode.start_at.isoformat()} ended after "
                f"{_minutes(at - episode.start_at):.0f} min, {episode.count} reading(s), worst "
                f"{episode.worst:g}."
            )
        return None, out
    worse_first = min if direction == "at_or_below" else max
    if episode is None:
        episode = BreachEpisode(
            start_at=at, count=1, worst=value, runs=tuple(None for _ in rule.worse)
        )
    else:
        episode = episode.model_copy(
            update={"count": episode.count + 1, "worst": worse_first(episode.worst, value)}
        )
    runs: list[LevelRun | None] = list(episode.runs) + [None] * (
        len(rule.worse) - len(episode.runs)
    )
    for i, (d, t, _) in enumerate(levels[1:]):
        run = runs[i]
        if _breaches(d, t, value):
            runs[i] = (
                LevelRun(start_at=at, count=1)
                if run is None
                else run.model_copy(update={"count": run.count + 1})
            )
        else:
            runs[i] = None
    min_span = timedelta(minutes=rule.min_minutes)
    sustained = [episode.count >= rule.min_readings and at - episode.start_at >= min_span]
    for run in runs:
        sustained.append(
            run is not None and run.count >= rule.min_readings and at - run.start_at >= min_span
        )
    top = max((i for i, ok in enumerate(sustained) if ok), default=-1)
    span = _minutes(at - episode.start_at)
    inputs: dict[str, Any] = {
        "sensor": sensor,
        direction: threshold,
        "news2_scale": scale,
        "device_profile": profile.value,
        "episode_start": episode.start_at.isoformat(),
        "episode_minutes": round(span, 1),
        "episode_readings": episode.count,
        "worst": episode.worst,
        "last": value,
        "min_minutes": rule.min_minutes,
        "min_readings": rule.min_readings,
        "max_gap_minutes": rule.max_gap_minutes,
    }
    if top > episode.paged:
        d, t, severity = levels[top]
        inputs["level"] = top
        inputs["level_threshold"] = f"{_op(d)} {t:g}"
        if top == 0:
            summary = (
                f"{sensor} {op} {threshold:g} sustained for {span:.0f} min over "
                f"{episode.count} readings (worst {episode.worst:g}, now {value:g}; "
                f"debounced: needs {rule.min_minutes:g} min, not a single artefact)."
            )
        else:
            run = runs[top - 1]
            assert run is not None
            inputs["level_minutes"] = round(_minutes(at - run.start_at), 1)
            inputs["level_readings"] = run.count
            summary = (
                f"{sensor} worsening: {_op(d)} {t:g} sustained for "
                f"{_minutes(at - run.start_at):.0f} min inside a breach episode of "
                f"{span:.0f} min (worst {episode.worst:g}, now {value:g})."
            )
        out.fire(rule, severity, summary, inputs)
        episode = episode.model_copy(update={"paged": top})
    elif top >= 0:
        out.notes.append(
            f"{rule.id}: {sensor} {op} {threshold:g} still sustained ({span:.0f} min, "
            f"{episode.count} readings, worst {episode.worst:g}); already escalated in this "
            "episode."
        )
    else:
        out.notes.append(
            f"{rule.id}: {sensor} {op} {threshold:g} for {span:.0f} min over {episode.count} "
            f"reading(s); needs {rule.min_minutes:g} min and {rule.min_readings} readings "
            "before it escalates (debounce)."
        )
    return episode.model_copy(update={"runs": tuple(runs)}), out


_SYMBOL: dict[Comparison, str] = {
    "below": "<",
    "at_or_below": "<=",
    "above": ">",
    "at_or_above": ">=",
}


def beyond(comparison: Comparison, limit: float, value: float) -> bool:
    """True when ``value`` is beyond ``limit`` in the rule's direction."""
    if comparison == "below":
        return value < limit
    if comparison == "at_or_below":
        return value <= limit
    if comparison == "above":
        return value > limit
    return value >= limit


def spot_check(
    rule: SpotCheckRule,
    reading: SensorReading,
    previous: Sample | None,
    repeat: RepeatState | None,
    *,
    scale: int,
    profile: DeviceProfile,
) -> tuple[RepeatState | None, Outcome]:
    """A single spot-check reading beyond its limit, or breaches on ``min_days`` days. Pure."""
    out = Outcome()
    comparison, limit = rule.limit(scale)
    sym = _SYMBOL[comparison]
    sensor = rule.sensor.value
    value = reading.value
    if profile not in rule.profiles:
        return repeat, out
    if not beyond(comparison, limit, value):
        return repeat, out
    inputs: dict[str, Any] = {
        "sensor": sensor,
        comparison: limit,
        "value": value,
        "news2_scale": scale,
        "device_profile": profile.value,
        "at": reading.occurred_at.isoformat(),
    }
    if rule.min_days == 1:
        if (
            previous is not None
            and beyond(comparison, limit, previous.value)
            and reading.occurred_at - previous.at <= timedelta(hours=rule.repage_hours)
        ):
            out.notes.append(
                f"{rule.id}: {sensor} {value:g} {sym} {limit:g} again; the previous reading "
                f"({previous.value:g} at {previous.at.isoformat()}) was already beyond "
                f"the limit within {rule.repage_hours:g} h: not paged again (the sustained rule "
                "follows the episode)."
            )
            return repeat, out
        out.fire(
            rule,
            rule.severity,
            f"Spot check {sensor} {value:g} ({sym} {limit:g}): a single measurement in the "
            "red band; assess now (re-measure to rule out a device fault).",
            inputs,
        )
        return repeat, out
    day = reading.occurred_at.date()  # the calendar day where the citizen lives (its offset)
    horizon = day - timedelta(days=int(rule.within_days) - 1)
    state = repeat or RepeatState()
    days = tuple(sorted({d for d in state.days if d >= horizon} | {day}))[-rule.min_days :]
    paged = state.paged if state.paged is not None and state.paged >= horizon else None
    inputs.update(
        {
            "days": [d.isoformat() for d in days],
            "min_days": rule.min_days,
            "within_days": rule.within_days,
        }
    )
    if len(days) >= rule.min_days and paged is None:
        out.fire(
            rule,
            rule.severity,
            f"{sensor} {sym} {limit:g} on {len(days)} separate days within "
            f"{rule.within_days:g} days ({', '.join(d.isoformat() for d in days)}): a "
            "repeated finding, not a one-off; assess the trend.",
            inputs,
        )
        paged = day
    elif paged is not None:
        out.notes.append(
            f"{rule.id}: {sensor} {value:g} {sym} {limit:g}; repeated breaches already escalated "
            f"on {paged.isoformat()}."
        )
    else:
        out.notes.append(
            f"{rule.id}: {sensor} {value:g} {sym} {limit:g} on {len(days)} of the "
            f"{rule.min_days} separate days (within {rule.within_days:g} days) it takes to "
            "escalate."
        )
    return RepeatState(days=days, paged=paged), out


def observe(
    ctx: CitizenContext, reading: SensorReading, ruleset: RuleSet
) -> tuple[CitizenContext, Outcome]:
    """Fold an in-order, plausible reading into its kind's summary and run the windowed rules.

    ``ctx`` is the context BEFORE ``record_reading`` (its ``latest(kind)`` is the previous
    reading); the summary of ``reading.kind`` is replaced. Falls and weights have no summary
    (``sensors.fall``, ``sensors.weight_gain``).
    """
    out = Outcome()
    if reading.kind in (SensorKind.FALL, SensorKind.WEIGHT):
        return ctx, out  # falls fire at once; weights have their own rules (sensors.py)
    summary = ctx.sensor_summaries.get(reading.kind.value)
    previous = ctx.latest(reading.kind)
    profile, declared = infer_profile(reading, previous, ruleset.sensor_profiles)
    how = "declared" if declared else "inferred from cadence"
    out.notes.append(f"Device profile {profile.value} ({how}).")
    episodes = dict(summary.episodes) if summary is not None else {}
    rules = [
        r
        for r in ruleset.enabled()
        if isinstance(r, SustainedSensorRule) and r.sensor == reading.kind
    ]
    at = reading.occurred_at.astimezone(UTC)
    for rule in rules:
        episode, o = step_episode(
            rule,
            episodes.get(rule.id),
            at,
            reading.value,
            previous_at=previous.at if previous is not None else None,
            scale=ctx.news2_scale,
            profile=profile,
        )
        out.extend(o)
        if episode is None:
            episodes.pop(rule.id, None)
        else:
            episodes[rule.id] = episode
    live = {r.id for r in rules}
    episodes = {k: v for k, v in episodes.items() if k in live}  # rules removed from the set
    repeats: dict[str, RepeatState] = {}
    for spot_rule in ruleset.enabled():
        if not isinstance(spot_rule, SpotCheckRule) or spot_rule.sensor != reading.kind:
            continue
        before = summary.repeats.get(spot_rule.id) if summary is not None else None
        state, o = spot_check(
            spot_rule, reading, previous, before, scale=ctx.news2_scale, profile=profile
        )
        out.extend(o)
        if state is not None and spot_rule.min_days > 1:
            repeats[spot_rule.id] = state
    new = KindSummary(profile=profile, episodes=episodes, repeats=repeats)
    summaries = {**ctx.sensor_summaries, reading.kind.value: new}
    return ctx.model_copy(update={"sensor_summaries": summaries}), out
