"""Turn one event plus the citizen's context into an explained assessment and the new context.

``evaluate(event, ctx, now, ruleset)`` is the single pure entry point the streaming path
(``dispatcher.ingest.planner.plan_batch``) and the CLI (``dispatcher assess``, ``dispatcher rules
test``) share, so both give the same answer for the same input. It handles every event kind and
always returns the updated context. ``silent_sensor_check`` is the timer-driven counterpart.

Every rule that fires adds a ``Reason`` naming the rule id, its version and the inputs it used;
severity is the highest any rule asked for; the response deadline comes from the rule set's
``ack_minutes``. Severity ladder (ours, mapped from NEWS2 chart 4 clinical response, RCP 2017):

* ``critical`` - emergency response (NEWS2 >= 7, or new V, P or U on ACVPU).
* ``high``     - urgent response (NEWS2 5-6, a single parameter scoring 3, a fall alarm,
  a sustained sensor breach).
* ``medium``   - prompt nurse assessment (the nurse is worried - TOBS practice: worry escalates
  on its own; NEWS2 >= 3 within the post-discharge window; NEWS2 rising by >= 2; heart-failure
  weight gain; a high-risk citizen's sensors silent).
* ``low``      - no escalation; recorded and scored only.

Clinical times (post-discharge window, trends, debounce) use the event's ``occurred_at``, so a
replay decides the same way; ``now`` stamps the assessment and its deadline.

Ordering: a nurse observation older than the newest one on record is assessed on its own merit
at its own time and pages like any other (issue 12 item 8); it is recorded in time order and
never moves the "latest" view backwards. A late *sensor reading* older than the newest of its
kind still never pages (its rules are listed in ``suppressed``; it counts as stale). Only an
event past its topic's maximum age is kept from paging: ``dispatcher.ingest.planner.decide``.

Palliative citizens (a treatment limitation) still get escalations, but routing sends them to
the palliative pathway, never to an emergency (112) call; the assessment says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID, uuid5

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.contract.events import (
    DischargeEvent,
    FieldError,
    InputEvent,
    News2Summary,
    NurseObservation,
    Reason,
    SensorKind,
    SensorReading,
)
from dispatcher.contract.vocab import SEVERITY_RANK, Severity, max_severity
from dispatcher.rules import context as cx
from dispatcher.rules import news2, plausibility, sensors, tobs, weight, windows
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.findings import Outcome
from dispatcher.rules.ruleset import (
    ConsciousnessRule,
    FallRule,
    IncompleteSetRule,
    News2BandRule,
    News2TrendRule,
    NurseWorryRule,
    PlausibilityRule,
    PostDischargeNews2Rule,
    RemeasureRule,
    Rule,
    RuleSet,
    SensorSilenceRule,
    SpotCheckRule,
    SustainedSensorRule,
    TobsBandRule,
    WeightGainRule,
    WeightLossRule,
    default_ruleset,
    rule_kind,
)

SILENCE_NAMESPACE = UUID("0d3b5e1c-8a2f-4e6b-9c71-2f4a6d8e0b13")
OBSERVED_VITALS: tuple[str, ...] = (
    "respiration_rate",
    "spo2",
    "systolic_bp",
    "pulse",
    "temperature",
)
PALLIATIVE_NOTE = (
    "Treatment limitation (palliative): route to the palliative pathway; "
    "never an emergency (112) call."
)


class TobsSummary(BaseModel):
    """TOBS (Danish municipal early-warning score, 0-15) as scored, with its triage colour."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int = Field(ge=0, le=15)
    subscores: dict[str, int]
    missing: list[str] = Field(default_factory=list)
    triage: str | None = Field(default=None, description="green, yellow or red (the band).")


class Assessment(BaseModel):
    """The explained decision for one event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    citizen_id: str
    event_kind: str
    assessed_at: datetime
    news2: News2Summary | None = None
    tobs: TobsSummary | None = Field(
        default=None, description="TOBS, when the rule set's score is tobs (issue 12 item 11)."
    )
    escalate: bool
    severity: Severity
    competence: str
    reasons: list[Reason]
    response_minutes: int | None = None
    # Added in the rule-set engine; all optional so stored assessments still load.
    response_deadline: datetime | None = Field(
        default=None, description="assessed_at + response_minutes, when escalating."
    )
    ruleset: str | None = Field(default=None, description="Rule set id@version used.")
    news2_urgency: str | None = Field(default=None, description="RCP 2017 chart 2/4 response.")
    news2_response: str | None = Field(default=None, description="RCP 2017 chart 4 text.")
    quarantined: list[FieldError] = Field(
        default_factory=list, description="Implausible fields: a fault, never scored."
    )
    dropped: list[FieldError] = Field(
        default_factory=list,
        description="Fields sent with an unusable value (wrong type): dropped, never scored; the "
        "rest of the event was assessed.",
    )
    suppressed: list[Reason] = Field(
        default_factory=list, description="Rules that matched a stale event: never paged."
    )
    stale: bool = Field(
        default=False,
        description="Never paged: a sensor reading older than the newest of its kind, or any "
        "event past its topic's maximum age (dispatcher.ingest.planner.decide).",
    )
    treatment_limitations: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def competence_for(ctx: CitizenContext) -> str:
    """The nurse competence that fits the citizen best; palliative care trumps diagnoses."""
    if ctx.palliative:
        return "palliative"
    if ctx.conditions:
        return ctx.conditions[0]
    return "general_acute"


def _news2_summary(result: news2.News2Score) -> News2Summary:
    return News2Summary(
        total=result.total,
        risk=result.risk,
        subscores=dict(result.subscores),
        missing=list(result.missing),
        scale=result.scale,
        red_score=result.red_score,
    )


def _window(ruleset: RuleSet) -> timedelta:
    return timedelta(days=ruleset.context.post_discharge_window_days)


# ---------------------------------------------------------------------------------------------
# The registry: rule kind -> evaluator
# ---------------------------------------------------------------------------------------------
#
# Each rule kind (the ``kind`` Literal of its model in ``dispatcher.rules.ruleset``) is
# implemented once, by one evaluator registered below for the event it reacts to: a nurse
# observation, a sensor reading or the silence timer. ``ENGINE_KINDS`` are kinds the engine
# applies itself (plausibility screens every value before any rule sees it). A test checks
# that every kind of the ``Rule`` union has exactly one home.


@dataclass(frozen=True)
class ObservationFacts:
    """What an observation rule may look at: the event, the context before it, its NEWS2."""

    obs: NurseObservation
    ctx: CitizenContext
    result: news2.News2Score
    ruleset: RuleSet
    quarantined: tuple[FieldError, ...] = ()
    tobs: tobs.TobsScore | None = None

    @property
    def red(self) -> list[str]:
        return sorted(k for k, v in self.result.subscores.items() if v == 3)

    def news2_inputs(self) -> dict[str, Any]:
        return {
            "total": self.result.total,
            "subscores": dict(self.result.subscores),
            "missing": list(self.result.missing),
            "scale": self.result.scale,
        }


@dataclass(frozen=True)
class SensorFacts:
    """What a sensor rule may look at: the reading and the context *after* recording it."""

    reading: SensorReading
    ctx: CitizenContext
    ruleset: RuleSet


@dataclass(frozen=True)
class TimerFacts:
    """What a timer rule may look at: the context and the time of the check."""

    ctx: CitizenContext
    now: datetime
    ruleset: RuleSet


F = TypeVar("F")
R = TypeVar("R", bound=BaseModel)
Evaluator = Callable[[Any, F], Outcome]

OBSERVATION_EVALUATORS: dict[str, Evaluator[ObservationFacts]] = {}
SENSOR_EVALUATORS: dict[str, Evaluator[SensorFacts]] = {}
TIMER_EVALUATORS: dict[str, Evaluator[TimerFacts]] = {}
# Sustained and spot-check sensor rules are stateful: ``windows.observe`` folds each reading into
# the kind's bounded summary (episodes, breach days) and decides in the same step (issue 12
# items 1 and 2).
ENGINE_KINDS: frozenset[str] = frozenset(
    {rule_kind(PlausibilityRule), rule_kind(SustainedSensorRule), rule_kind(SpotCheckRule)}
)


def _registers(
    registry: dict[str, Evaluator[F]], model: type[R]
) -> Callable[[Callable[[R, F], Outcome]], Callable[[R, F], Outcome]]:
    """Decorator: register ``fn`` as the evaluator of ``model``'s kind in ``registry``."""
    kind = rule_kind(model)

    def register(fn: Callable[[R, F], Outcome]) -> Callable[[R, F], Outcome]:
        if kind in registry:  # pragma: no cover - a programming error caught at import
            raise RuntimeError(f"rule kind {kind!r} registered twice")
        registry[kind] = fn
        return fn

    return register


def _run(registry: dict[str, Evaluator[F]], rules: list[Rule], facts: F) -> Outcome:
    """Run the evaluator of every rule whose kind ``registry`` implements, in rule-set order."""
    out = Outcome()
    for rule in rules:
        evaluator = registry.get(rule.kind)
        if evaluator is not None:
            out.extend(evaluator(rule, facts))
            out.evaluated.append(rule.id)
    return out


# --- nurse observations ----------------------------------------------------------------------

_BAND_LABEL = {"high": ">= 7", "medium": "5-6", "low-medium": "single parameter 3"}


@_registers(OBSERVATION_EVALUATORS, News2BandRule)
def _news2_band(rule: News2BandRule, f: ObservationFacts) -> Outcome:
    out = Outcome()
    result = f.result
    if result.risk == rule.band:
        red = f.red
        out.fire(
            rule,
            rule.severity,
            f"NEWS2 {result.total} ({_BAND_LABEL[rule.band]}"
            + (f": {', '.join(red)}" if rule.band == "low-medium" else "")
            + f"): {result.response}",
            {**f.news2_inputs(), "red_parameters": red},
        )
    return out


@_registers(OBSERVATION_EVALUATORS, PostDischargeNews2Rule)
def _post_discharge(rule: PostDischargeNews2Rule, f: ObservationFacts) -> Outcome:
    out = Outcome()
    at, ctx, result, ruleset = f.obs.occurred_at, f.ctx, f.result, f.ruleset
    if result.total >= rule.min_total and ctx.in_post_discharge_window(at, _window(ruleset)):
        days = ctx.days_since_discharge(at) or 0.0
        out.fire(
            rule,
            rule.severity,
            f"NEWS2 {result.total} (>= {rule.min_total}) {days:.1f} days after discharge "
            f"(window {ruleset.context.post_discharge_window_days:g} days): vigilance "
            "raised after a hospital stay.",
            {
                "total": result.total,
                "min_total": rule.min_total,
                "days_since_discharge": round(days, 2),
                "window_days": ruleset.context.post_discharge_window_days,
            },
        )
    return out


@_registers(OBSERVATION_EVALUATORS, ConsciousnessRule)
def _consciousness(rule: ConsciousnessRule, f: ObservationFacts) -> Outcome:
    out = Outcome()
    level = f.obs.consciousness
    if level is not None and level in rule.levels:
        out.fire(
            rule,
            rule.severity,
            f"Consciousness {level} (ACVPU).",
            {"consciousness": level},
        )
    return out


@_registers(OBSERVATION_EVALUATORS, NurseWorryRule)
def _nurse_worry(rule: NurseWorryRule, f: ObservationFacts) -> Outcome:
    out = Outcome()
    if f.obs.worried:
        out.fire(
            rule,
            rule.severity,
            "The observing nurse is worried (TOBS practice: worry escalates on its own, "
            "whatever the score).",
            {"worried": True, "news2_total": f.result.total},
        )
    return out


@_registers(OBSERVATION_EVALUATORS, TobsBandRule)
def _tobs_band(rule: TobsBandRule, f: ObservationFacts) -> Outcome:
    """The TOBS band (triage colour) of the observation, at the rule's severity."""
    out = Outcome()
    score = f.tobs
    if score is None or not score.subscores or not rule.matches(score.total):
        return out
    upper = f"-{rule.max_total}" if rule.max_total is not None else "+"
    out.fire(
        rule,
        rule.severity,
        f"TOBS {score.total} ({rule.min_total}{upper}, {rule.triage}): {rule.response}"
        + (f" Missing: {', '.join(score.missing)} (lower bound)." if score.missing else ""),
        {
            "total": score.total,
            "subscores": dict(score.subscores),
            "missing": list(score.missing),
            "triage": rule.triage,
        },
    )
    return out


@_registers(OBSERVATION_EVALUATORS, RemeasureRule)
def _remeasure(rule: RemeasureRule, f: ObservationFacts) -> Outcome:
    """A vital that was sent but cannot be scored is never silent: re-measure it now."""
    out = Outcome()
    unusable = [*f.quarantined, *f.obs.dropped]
    if unusable:
        fields = [u.field for u in unusable]
        out.fire(
            rule,
            rule.severity,
            f"Re-measure now: {', '.join(fields)} could not be scored (implausible or unusable "
            f"value; a device or entry fault is likely, a real extreme value is possible). The "
            f"observing nurse ({f.obs.observer}) re-measures and sends a new set; NEWS2 "
            f"{f.result.total} is a lower bound until then.",
            {
                "fields": fields,
                "why": {u.field: u.reason for u in unusable},
                "observer": f.obs.observer,
                "news2_total_lower_bound": f.result.total,
            },
        )
    return out


@_registers(OBSERVATION_EVALUATORS, IncompleteSetRule)
def _incomplete(rule: IncompleteSetRule, f: ObservationFacts) -> Outcome:
    """Name the missing NEWS2 parameters and ask for them; escalate if even the lower bound
    is high."""
    out = Outcome()
    result = f.result
    if result.complete or not result.subscores:
        # Complete: nothing to ask. Nothing scorable at all: the remeasure rule (if a value
        # was sent) or the note says so; a bare event without vitals is not a NEWS2 set.
        if not result.subscores:
            out.notes.append(
                f"{rule.id}: no NEWS2 parameter could be scored; measure a full set "
                f"({', '.join(result.missing)})."
            )
        return out
    severity = rule.severity
    raised = rule.min_total_to_escalate is not None and result.total >= rule.min_total_to_escalate
    if raised:
        severity = max_severity(severity, rule.escalate_severity)
    summary = (
        f"Incomplete NEWS2 set: {', '.join(result.missing)} missing; measure them now. The "
        f"total {result.total} is a lower bound"
        + (
            f" and already >= {rule.min_total_to_escalate}: the full score may reach the "
            "urgent threshold (5)."
            if raised
            else "."
        )
    )
    out.fire(
        rule,
        severity,
        summary,
        {
            "missing": list(result.missing),
            "total_lower_bound": result.total,
            "min_total_to_escalate": rule.min_total_to_escalate,
        },
    )
    return out


@_registers(OBSERVATION_EVALUATORS, News2TrendRule)
def _trend(rule: News2TrendRule, f: ObservationFacts) -> Outcome:
    """NEWS2 rising by >= ``min_rise`` above the rolling baseline (the lowest complete set of
    the ``within_hours`` before this observation); once per rise, again when it rises further."""
    out = Outcome()
    at, result = f.obs.occurred_at, f.result
    base = cx.baseline_news2(f.ctx, at, rule.within_hours)
    if base is None:
        out.notes.append(
            f"{rule.id}: no complete NEWS2 set in the {rule.within_hours:g} h before this one, "
            "so no trend baseline (partial sets never count)."
        )
        return out
    rise = result.total - base.total
    if rise < rule.min_rise:
        return out
    earlier = [e for e in f.ctx.news2_history if base.at < e.at < at]
    prev = earlier[-1] if earlier else None
    if prev is not None and prev.total >= result.total and prev.total - base.total >= rule.min_rise:
        out.notes.append(
            f"{rule.id}: NEWS2 {result.total} still {rise} above the baseline {base.total}; "
            f"already raised at {prev.at.isoformat()} (NEWS2 {prev.total}), not worse since."
        )
        return out
    hours = (at - base.at) / timedelta(hours=1)
    out.fire(
        rule,
        rule.severity,
        f"NEWS2 rose by {rise} above its baseline ({base.total} -> {result.total}) over "
        f"{hours:.1f} h (baseline: the lowest complete set of the last {rule.within_hours:g} h; "
        f"escalates at a rise of {rule.min_rise}).",
        {
            "baseline_total": base.total,
            "baseline_at": base.at.isoformat(),
            "baseline_window_hours": rule.within_hours,
            "total": result.total,
            "complete": result.complete,
            "rise": rise,
            "hours_since_baseline": round(hours, 2),
            "previous_total": prev.total if prev is not None else None,
        },
    )
    return out


# --- sensor readings -------------------------------------------------------------------------


@_registers(SENSOR_EVALUATORS, FallRule)
def _fall(rule: FallRule, f: SensorFacts) -> Outcome:
    if f.reading.kind != SensorKind.FALL:
        return Outcome()
    return sensors.fall(rule, f.reading)


@_registers(SENSOR_EVALUATORS, WeightGainRule)
def _weight_gain(rule: WeightGainRule, f: SensorFacts) -> Outcome:
    if f.reading.kind != SensorKind.WEIGHT:
        return Outcome()
    return weight.gain(rule, f.ctx)


@_registers(SENSOR_EVALUATORS, WeightLossRule)
def _weight_loss(rule: WeightLossRule, f: SensorFacts) -> Outcome:
    if f.reading.kind != SensorKind.WEIGHT:
        return Outcome()
    return weight.loss(rule, f.ctx)


# Sensor kinds evaluated for the record even when their reading is stale (suppressed, never
# paged): only the fall alarm, so the audit shows the fall that arrived late.
STALE_SENSOR_KINDS: frozenset[str] = frozenset({rule_kind(FallRule)})


# --- timer -----------------------------------------------------------------------------------


@_registers(TIMER_EVALUATORS, SensorSilenceRule)
def _silence(rule: SensorSilenceRule, f: TimerFacts) -> Outcome:
    return sensors.silence(rule, f.ctx, f.now, _window(f.ruleset))


# ---------------------------------------------------------------------------------------------
# Nurse observations
# ---------------------------------------------------------------------------------------------


def _trend_hours(ruleset: RuleSet) -> float:
    """How far back the trend baseline must reach: the longest enabled trend window."""
    return max(
        (r.within_hours for r in ruleset.enabled() if isinstance(r, News2TrendRule)),
        default=24.0,
    )


def _evaluate_observation(
    obs: NurseObservation, ctx: CitizenContext, ruleset: RuleSet
) -> tuple[CitizenContext, Outcome, news2.News2Score, list[FieldError], bool, TobsSummary | None]:
    rule = ruleset.plausibility()
    quarantined: list[FieldError] = []
    rounded: list[str] = []
    values: dict[str, Any] = {}
    for name in OBSERVED_VITALS:
        value = getattr(obs, name)
        if value is None:
            values[name] = None
            continue
        problem = plausibility.check(name, value, rule)  # on the value as measured
        if problem is not None:
            quarantined.append(problem)
            values[name] = None
            continue
        charted = news2.to_chart_resolution(name, value)
        if charted != Decimal(str(value)):
            rounded.append(f"{name} {value:g} -> {charted}")
        values[name] = float(charted) if name == "temperature" else int(charted)
    vitals = news2.Vitals(on_oxygen=obs.on_oxygen, consciousness=obs.consciousness, **values)
    scale: news2.Scale = 2 if ctx.news2_scale == 2 else 1
    result = news2.score(vitals, scale)
    tobs_score = (
        tobs.score(
            pulse=values["pulse"],
            consciousness=obs.consciousness,
            respiration_rate=values["respiration_rate"],
            temperature=values["temperature"],
            systolic_bp=values["systolic_bp"],
        )
        if ruleset.score == "tobs"
        else None
    )
    out = Outcome()
    if obs.dropped:
        out.notes.append(
            "Dropped (unusable value, not scored, reported missing): "
            + "; ".join(f"{d.field}: {d.reason}" for d in obs.dropped)
        )
    if quarantined:
        out.notes.append(
            "Quarantined (not scored, reported missing): " + ", ".join(q.field for q in quarantined)
        )
    if rounded:
        out.notes.append(
            "Rounded half-up to the NEWS2 chart's resolution before scoring (RCP 2017 chart 1; "
            "the value as measured is kept): " + ", ".join(rounded) + "."
        )
    spo2_quarantined = any(q.field == "spo2" for q in quarantined)
    if scale == 2 and obs.spo2 is not None and "spo2" in result.missing and not spo2_quarantined:
        out.notes.append("SpO2 scale 2 at >= 93 % needs air/oxygen to be scored; reported missing.")
    if result.missing:
        out.notes.append(
            f"NEWS2 {result.total} is a lower bound: missing {', '.join(result.missing)}."
        )
    # Out of order (issue 12 item 8): an observation older than the newest one on record is
    # assessed on its own merit at its own time - its rules fire and page like any other, the
    # trend compares it with the baseline before *its* time - and it is recorded in time order.
    # Only an event past its topic's maximum age is kept from paging (dispatcher.ingest.planner
    # .decide, MAX_EVENT_AGE_BY_TOPIC), audited and shown there.
    newest = ctx.last_observation_at
    if newest is not None and obs.occurred_at < newest:
        later = ctx.last_news2()
        out.notes.append(
            f"Arrived out of order: a newer observation ({newest.isoformat()}"
            + (f", NEWS2 {later.total}" if later is not None and later.at == newest else "")
            + ") is already on record; assessed on its own merit at its own time "
            f"({obs.occurred_at.isoformat()}), not suppressed, recorded in time order."
        )
    facts = ObservationFacts(obs, ctx, result, ruleset, tuple(quarantined), tobs_score)
    out.extend(_run(OBSERVATION_EVALUATORS, ruleset.enabled(), facts))
    new_ctx = cx.record_news2(
        ctx,
        obs.occurred_at,
        result.total if result.subscores else None,
        result.complete,
        keep=ruleset.history.news2_entries,
        baseline_keep=ruleset.history.news2_baseline_entries,
        baseline_hours=_trend_hours(ruleset),
    )
    return new_ctx, out, result, quarantined, False, _tobs_summary(tobs_score, ruleset)


def _tobs_summary(score: tobs.TobsScore | None, ruleset: RuleSet) -> TobsSummary | None:
    if score is None:
        return None
    triage = next(
        (
            r.triage
            for r in ruleset.enabled()
            if isinstance(r, TobsBandRule) and r.matches(score.total)
        ),
        None,
    )
    return TobsSummary(
        total=score.total,
        subscores=dict(score.subscores),
        missing=list(score.missing),
        triage=triage if score.subscores else None,
    )


# ---------------------------------------------------------------------------------------------
# Sensor readings
# ---------------------------------------------------------------------------------------------


def _evaluate_sensor(
    reading: SensorReading, ctx: CitizenContext, ruleset: RuleSet
) -> tuple[CitizenContext, Outcome, list[FieldError], bool]:
    out = Outcome()
    if reading.kind != SensorKind.FALL:
        problem = plausibility.check(reading.kind.value, reading.value, ruleset.plausibility())
        if problem is not None:
            out.notes.append(f"Sensor fault on device {reading.device_id}: {problem.reason}")
            return cx.record_sensor_fault(ctx), out, [problem], False
    if cx.is_stale(ctx, reading.kind, reading.occurred_at):
        latest = ctx.last_fall_at if reading.kind == SensorKind.FALL else None
        if latest is None:
            sample = ctx.latest(reading.kind)
            latest = sample.at if sample else None
        out.notes.append(
            f"Out of order: {reading.kind.value} reading at {reading.occurred_at.isoformat()} is "
            f"older than the newest one ({latest.isoformat() if latest else '?'}); recorded as "
            "stale, latest view unchanged, never paged."
        )
        # Still evaluate a fall for the record (suppressed), nothing else.
        for_record = [r for r in ruleset.enabled() if r.kind in STALE_SENSOR_KINDS]
        out.extend(_run(SENSOR_EVALUATORS, for_record, SensorFacts(reading, ctx, ruleset)))
        return cx.record_stale(ctx), out, [], True
    h = ruleset.history
    # Windowed rules first: they compare with the previous reading, still ctx.latest(kind).
    ctx, windowed = windows.observe(ctx, reading, ruleset)
    new_ctx = cx.record_reading(
        ctx,
        reading.kind,
        reading.occurred_at,
        reading.value,
        readings_per_kind=h.readings_per_kind,
        weights=h.weights,
        weight_days=h.weight_days,
    )
    out.extend(windowed)
    out.extend(_run(SENSOR_EVALUATORS, ruleset.enabled(), SensorFacts(reading, new_ctx, ruleset)))
    return new_ctx, out, [], False


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


def _build(
    *,
    event_id: UUID,
    citizen_id: str,
    kind: str,
    now: datetime,
    ctx: CitizenContext,
    ruleset: RuleSet,
    out: Outcome,
    result: news2.News2Score | None = None,
    quarantined: list[FieldError] | None = None,
    dropped: tuple[FieldError, ...] | list[FieldError] = (),
    stale: bool = False,
    tobs_summary: TobsSummary | None = None,
) -> Assessment:
    severity: Severity = "low"
    reasons: list[Reason] = []
    suppressed: list[Reason] = []
    for finding in out.findings:
        if stale:
            suppressed.append(finding.reason)
            continue
        severity = max_severity(severity, finding.severity)
        reasons.append(finding.reason)
    escalate = SEVERITY_RANK[severity] >= SEVERITY_RANK["medium"]
    minutes = ruleset.ack_minutes.for_severity(severity) if escalate else None
    notes = list(out.notes)
    if escalate and ctx.palliative:
        notes.append(PALLIATIVE_NOTE)
    notes.append(_decision_note(out, severity, escalate, stale, result))
    return Assessment(
        event_id=event_id,
        citizen_id=citizen_id,
        event_kind=kind,
        assessed_at=now,
        news2=_news2_summary(result) if result is not None else None,
        tobs=tobs_summary,
        escalate=escalate,
        severity=severity,
        competence=competence_for(ctx),
        reasons=reasons,
        response_minutes=minutes,
        response_deadline=now + timedelta(minutes=minutes) if minutes is not None else None,
        ruleset=ruleset.label,
        news2_urgency=result.urgency if result is not None else None,
        news2_response=result.response if result is not None else None,
        quarantined=quarantined or [],
        dropped=list(dropped),
        suppressed=suppressed,
        stale=stale,
        treatment_limitations=list(ctx.treatment_limitations),
        notes=notes,
    )


def _decision_note(
    out: Outcome,
    severity: Severity,
    escalate: bool,
    stale: bool,
    result: news2.News2Score | None,
) -> str:
    """Why the assessment did or did not escalate, in one sentence (always present)."""
    fired = [f"{f.reason.rule_id} ({f.severity})" for f in out.findings]
    fired_ids = {f.reason.rule_id for f in out.findings}
    quiet = [rule_id for rule_id in dict.fromkeys(out.evaluated) if rule_id not in fired_ids]
    did_not = f" Did not fire: {', '.join(quiet)}." if quiet else ""
    score = f" NEWS2 {result.total} ({result.urgency})." if result is not None else ""
    if stale and fired:
        return (
            f"Decision: not paged - stale event; matched but suppressed: "
            f"{', '.join(fired)}.{score}{did_not}"
        )
    if escalate:
        return f"Decision: escalate {severity} because {', '.join(fired)}.{score}{did_not}"
    below = f" (fired below medium: {', '.join(fired)})" if fired else ""
    return f"Decision: no escalation - no rule asked for medium or more{below}.{score}{did_not}"


def evaluate(
    event: InputEvent,
    ctx: CitizenContext | None,
    now: datetime,
    ruleset: RuleSet | None = None,
) -> tuple[Assessment, CitizenContext]:
    """Assess one event of any kind and fold it into the citizen's context. Pure.

    ``ctx`` is the citizen's context before the event (``None`` for a citizen not seen yet);
    the returned context includes the event. ``ruleset`` defaults to the packaged default.
    """
    rs = ruleset or default_ruleset()
    base = ctx if ctx is not None else cx.empty_context(event.citizen_id)
    if base.citizen_id != event.citizen_id:
        raise ValueError(
            f"context is for citizen {base.citizen_id!r}, event for {event.citizen_id!r}"
        )
    common: dict[str, Any] = {
        "event_id": event.event_id,
        "citizen_id": event.citizen_id,
        "now": now,
        "ruleset": rs,
    }
    if isinstance(event, DischargeEvent):
        new_ctx = cx.apply_discharge(base, event, rs.condition_map())
        ended = [f for f in event.flags_ended if f in base.flags and f not in new_ctx.flags]
        older = base.discharged_at is not None and event.discharged_at < base.discharged_at
        out = Outcome(
            notes=[
                f"Context updated from discharge #{new_ctx.discharge_count} (merged with "
                f"{base.discharge_count} earlier): conditions "
                f"{', '.join(new_ctx.conditions) or 'none mapped'}; flags "
                f"{', '.join(new_ctx.flags) or 'none'}"
                + (f" (ended by this source: {', '.join(ended)})" if ended else "")
                + f"; NEWS2 SpO2 scale {new_ctx.news2_scale}; post-discharge window "
                f"{rs.context.post_discharge_window_days:g} days"
                + (
                    "; an older stay than the one on record: its diagnoses and flags were "
                    "added, the current stay was kept."
                    if older
                    else "."
                )
            ]
        )
        return _build(kind="discharge", ctx=new_ctx, out=out, **common), new_ctx
    if isinstance(event, SensorReading):
        new_ctx, out, quarantined, stale = _evaluate_sensor(event, base, rs)
        return (
            _build(
                kind="sensor_reading",
                ctx=new_ctx,
                out=out,
                quarantined=quarantined,
                stale=stale,
                **common,
            ),
            new_ctx,
        )
    if isinstance(event, NurseObservation):
        new_ctx, out, result, quarantined, stale, tobs_summary = _evaluate_observation(
            event, base, rs
        )
        return (
            _build(
                kind="nurse_observation",
                ctx=new_ctx,
                out=out,
                result=result,
                quarantined=quarantined,
                dropped=event.dropped,
                tobs_summary=tobs_summary,
                stale=stale,
                **common,
            ),
            new_ctx,
        )
    raise TypeError(f"unknown event type {type(event).__name__}")  # pragma: no cover


def silence_event_id(citizen_id: str, last_sensor_at: datetime) -> UUID:
    """Stable id per silence episode: a timer firing again for the same silence repeats it."""
    return uuid5(SILENCE_NAMESPACE, f"silence:{citizen_id}:{last_sensor_at.isoformat()}")


def silent_sensor_check(
    ctx: CitizenContext, now: datetime, ruleset: RuleSet | None = None
) -> Assessment | None:
    """Timer check: an escalating assessment when a high-risk citizen's sensors went silent.

    Returns ``None`` when nothing is due. The assessment's ``event_id`` is derived from the
    citizen and the last reading time, so repeated timer calls during one silence produce the
    same id (and the same escalation id): consumers and the audit log deduplicate on it.
    """
    rs = ruleset or default_ruleset()
    out = _run(TIMER_EVALUATORS, rs.enabled(), TimerFacts(ctx, now, rs))
    if not out.findings or ctx.last_sensor_at is None:
        return None
    # The episode: the newest last reading among the silent kinds (a daily scale silent since
    # Monday stays one episode while a fresher device keeps sending; issue 12 item 10).
    episode = [
        datetime.fromisoformat(str(f.reason.inputs["episode_at"]))
        for f in out.findings
        if "episode_at" in f.reason.inputs
    ]
    return _build(
        event_id=silence_event_id(ctx.citizen_id, max(episode, default=ctx.last_sensor_at)),
        citizen_id=ctx.citizen_id,
        kind="sensor_silence",
        now=now,
        ctx=ctx,
        ruleset=rs,
        out=out,
    )
