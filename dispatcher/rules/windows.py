"""Sensor rules by time window: a bounded summary per sensor kind, correct for any cadence.

Issue 12 item 1. A home oximeter may send a value every second, a blood-pressure cuff twice a
day. A rule that looks at "the last N readings" cannot serve both: at one cadence N readings
never span the required minutes (SpO2 80 % for 39 minutes never paged), at another every
reading escalates. Instead each citizen's context keeps, per sensor kind, a ``KindSummary``:

* the newest reading (``last_at``, ``last_value``) and the device profile (continuous or spot
  check, see below);
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

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.contract.events import DeviceProfile, SensorKind, SensorReading
from dispatcher.contract.vocab import Severity
from dispatcher.rules.findings import Outcome
from dispatcher.rules.ruleset import RuleSet, SensorProfiles, SustainedSensorRule

if TYPE_CHECKING:  # pragma: no cover - import for annotations only (context imports us)
    from dispatcher.rules.context import CitizenContext

Direction = Literal["at_or_below", "at_or_above"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LevelRun(_Frozen):
    """The current run of readings beyond one ``worse`` level inside an episode."""

    start_at: AwareDatetime
    count: int = Field(ge=1)


class BreachEpisode(_Frozen):
    """An open breach of one sustained rule: bounded, whatever the number of readings.

    An open episode always includes the kind's newest reading (a reading that does not breach
    ends it), so its newest time and value are the summary's ``last_at`` / ``last_value``.
    """

    start_at: AwareDatetime
    count: int = Field(ge=1)
    worst: float
    paged: int = Field(default=-1, ge=-1, description="Highest level escalated (-1: none yet).")
    runs: tuple[LevelRun | None, ...] = Field(default=(), description="One per worse level.")


class KindSummary(_Frozen):
    """What the rules remember about one sensor kind of one citizen."""

    last_at: AwareDatetime
    last_value: float
    profile: DeviceProfile
    declared: bool = Field(description="True when the reading declared its profile.")
    episodes: dict[str, BreachEpisode] = Field(default_factory=dict, description="By rule id.")


def infer_profile(
    reading: SensorReading, previous: KindSummary | None, settings: SensorProfiles
) -> tuple[DeviceProfile, bool]:
    """The device profile of ``reading`` and whether the reading declared it."""
    if reading.device_profile is not None:
        return reading.device_profile, True
    if previous is not None and (
        (reading.occurred_at - previous.last_at).total_seconds()
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


def observe(
    ctx: CitizenContext, reading: SensorReading, ruleset: RuleSet
) -> tuple[CitizenContext, Outcome]:
    """Fold an in-order, plausible reading into its kind's summary and run the windowed rules.

    ``ctx`` is the context after ``record_reading``; the summary of ``reading.kind`` is replaced.
    Falls and weights have no summary (``sensors.fall``, ``sensors.weight_gain``).
    """
    out = Outcome()
    if reading.kind in (SensorKind.FALL, SensorKind.WEIGHT):
        return ctx, out  # falls fire at once; weights have their own rules (sensors.py)
    previous = ctx.sensor_summaries.get(reading.kind.value)
    profile, declared = infer_profile(reading, previous, ruleset.sensor_profiles)
    episodes = dict(previous.episodes) if previous is not None else {}
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
            previous_at=previous.last_at if previous is not None else None,
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
    summary = KindSummary(
        last_at=at,
        last_value=reading.value,
        profile=profile,
        declared=declared,
        episodes=episodes,
    )
    summaries = {**ctx.sensor_summaries, reading.kind.value: summary}
    return ctx.model_copy(update={"sensor_summaries": summaries}), out
