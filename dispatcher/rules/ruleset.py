"""Declarative rule sets: thresholds are data (YAML), validated by pydantic when loaded.

A rule set names itself (``ruleset`` and ``version``), holds the settings every rule shares
(post-discharge window, history bounds, acknowledgement minutes per severity) and a list of rules.
Every rule has an ``id``, a ``version`` and a ``kind`` that selects its parameters; the engine
(``dispatcher.rules.assessment``) implements each kind once, so a new threshold never needs code.

Loading never lets a bad file through half-read: ``parse_ruleset`` either returns a ``RuleSet``
or raises ``RuleSetError`` whose ``issues`` each name the file, the rule (by id when it has one)
and the field, e.g. ``my.yaml: rule 'news2.trend': field 'min_rise': Input should be >= 1``.

The default rule set ships as package data (``dispatcher/rules/rulesets/default.yaml``) and is
loaded once by ``default_ruleset()``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dispatcher.contract.events import DeviceProfile, SensorKind
from dispatcher.contract.vocab import Severity
from dispatcher.errors import PermanentError

RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.-]{1,63}$")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]

VITAL_SENSOR_KINDS: tuple[SensorKind, ...] = (
    SensorKind.SPO2,
    SensorKind.PULSE,
    SensorKind.SYSTOLIC_BP,
    SensorKind.DIASTOLIC_BP,
    SensorKind.TEMPERATURE,
    SensorKind.RESPIRATION_RATE,
    SensorKind.BLOOD_GLUCOSE,
)
DEFAULT_RULESET_RESOURCE = ("rulesets", "default.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# Shared settings
# ---------------------------------------------------------------------------------------------


class ContextSettings(_Strict):
    """Settings of the citizen context."""

    post_discharge_window_days: float = Field(
        gt=0, le=365, description="Vigilance is raised for this many days after a discharge."
    )


class HistoryLimits(_Strict):
    """Bounds on the recent history kept per citizen (memory: well under 5 KB serialized)."""

    readings_per_kind: int = Field(ge=1, le=10, description="Last N readings per vital kind.")
    weights: int = Field(ge=2, le=21, description="Last N weights.")
    weight_days: float = Field(gt=0, le=21, description="Weights older than this are dropped.")
    news2_entries: int = Field(ge=2, le=10, description="Last N NEWS2 totals.")
    news2_baseline_entries: int = Field(
        default=3,
        ge=2,
        le=21,
        description="Complete NEWS2 sets kept as the rolling trend baseline (a sliding-window "
        "minimum: only sets that can still be the lowest of a window are kept).",
    )


class AckMinutes(_Strict):
    """Minutes within which an escalation of each severity must be acknowledged."""

    medium: int = Field(gt=0, le=24 * 60)
    high: int = Field(gt=0, le=24 * 60)
    critical: int = Field(gt=0, le=24 * 60)

    def for_severity(self, severity: Severity) -> int | None:
        if severity == "low":
            return None
        return int(getattr(self, severity))


class Range(_Strict):
    """An inclusive range of physiologically possible values."""

    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    def contains(self, value: float) -> bool:
        return self.min <= value <= self.max


class PlausibleLimits(_Strict):
    """Possible ranges per measured field; a value outside is a sensor or entry fault."""

    spo2: Range
    pulse: Range
    respiration_rate: Range
    systolic_bp: Range
    diastolic_bp: Range
    temperature: Range
    weight: Range
    blood_glucose: Range = Field(
        default_factory=lambda: Range(min=0.5, max=60.0),
        description="mmol/L; outside is a meter or entry fault.",
    )

    def for_field(self, name: str) -> Range | None:
        value = getattr(self, name, None)
        return value if isinstance(value, Range) else None


# ---------------------------------------------------------------------------------------------
# Rules, one model per kind
# ---------------------------------------------------------------------------------------------


class _Rule(_Strict):
    id: RuleId
    version: int = Field(ge=1)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True
    source: str | None = Field(
        default=None,
        min_length=3,
        max_length=400,
        description="Citation of the clinical source of the rule's thresholds (e.g. RCP 2017).",
    )


class PlausibilityRule(_Rule):
    """Values outside ``limits`` are never scored: sensor fault / quarantined field."""

    kind: Literal["plausibility"]
    limits: PlausibleLimits


class News2BandRule(_Rule):
    """Fires when the NEWS2 risk band (RCP 2017 chart 2) equals ``band``."""

    kind: Literal["news2_band"]
    band: Literal["low-medium", "medium", "high"]
    severity: Severity


class PostDischargeNews2Rule(_Rule):
    """Fires when NEWS2 >= ``min_total`` within the post-discharge window."""

    kind: Literal["news2_post_discharge"]
    min_total: int = Field(ge=1, le=20)
    severity: Severity


class ConsciousnessRule(_Rule):
    """Fires when the ACVPU level is one of ``levels``."""

    kind: Literal["consciousness"]
    levels: list[Literal["C", "V", "P", "U"]] = Field(min_length=1)
    severity: Severity


class NurseWorryRule(_Rule):
    """Fires when the nurse is worried, whatever the score (Danish TOBS practice)."""

    kind: Literal["nurse_worry"]
    severity: Severity


class TobsBandRule(_Rule):
    """Fires when the TOBS total (0-15; rule sets with ``score: tobs``) is in
    ``min_total``..``max_total``: the card's triage colour and our severity."""

    kind: Literal["tobs_band"]
    min_total: int = Field(ge=0, le=15)
    max_total: int | None = Field(default=None, ge=0, le=15, description="None: no upper end.")
    triage: Literal["green", "yellow", "red"]
    severity: Severity
    response: str = Field(min_length=3, max_length=300, description="What staff do (the card).")

    @model_validator(mode="after")
    def _ordered(self) -> TobsBandRule:
        if self.max_total is not None and self.max_total < self.min_total:
            raise ValueError("max_total must not be below min_total")
        return self

    def matches(self, total: int) -> bool:
        return self.min_total <= total and (self.max_total is None or total <= self.max_total)


class RemeasureRule(_Rule):
    """Fires when a vital was sent but could not be scored (implausible, quarantined, or an
    unusable value, dropped): the observing nurse must re-measure it now."""

    kind: Literal["remeasure"]
    severity: Severity


class IncompleteSetRule(_Rule):
    """Fires when NEWS2 parameters are missing: names them and asks for them (the total is a
    lower bound). ``severity`` applies as is; ``min_total_to_escalate``, when set, raises it to
    ``escalate_severity`` when even the lower bound is already that high."""

    kind: Literal["news2_incomplete"]
    severity: Severity
    min_total_to_escalate: int | None = Field(default=None, ge=1, le=20)
    escalate_severity: Severity = "medium"


class News2TrendRule(_Rule):
    """Fires when NEWS2 rose by >= ``min_rise`` above the rolling baseline: the lowest NEWS2 of
    the *complete* observation sets of the ``within_hours`` before the observation. Partial
    sets never count as baseline. Once per rise: a later set at the same or a lower level is
    noted, a further rise fires again."""

    kind: Literal["news2_trend"]
    min_rise: int = Field(ge=1, le=20)
    within_hours: float = Field(
        gt=0, le=24 * 7, description="Length of the rolling baseline window, hours."
    )
    severity: Severity


class FallRule(_Rule):
    """A fall alarm fires at once (no debounce)."""

    kind: Literal["sensor_fall"]
    severity: Severity


Source = Annotated[str, Field(min_length=3, max_length=400)]


class WorseLevel(_Strict):
    """A more severe threshold inside a breach episode: crossing it (sustained) escalates again."""

    at_or_below: float | None = None
    at_or_above: float | None = None
    at_or_below_scale2: float | None = None
    severity: Severity
    source: Source | None = None

    @model_validator(mode="after")
    def _one_direction(self) -> WorseLevel:
        if (self.at_or_below is None) == (self.at_or_above is None):
            raise ValueError("set exactly one of at_or_below and at_or_above")
        if self.at_or_below_scale2 is not None and self.at_or_below is None:
            raise ValueError("at_or_below_scale2 needs at_or_below")
        return self

    def threshold(self, scale: int) -> tuple[Literal["at_or_below", "at_or_above"], float]:
        if self.at_or_above is not None:
            return "at_or_above", self.at_or_above
        assert self.at_or_below is not None
        if scale == 2 and self.at_or_below_scale2 is not None:
            return "at_or_below", self.at_or_below_scale2
        return "at_or_below", self.at_or_below


class SustainedSensorRule(_Rule):
    """A sensor value beyond a threshold, sustained over TIME (debounce), for any cadence.

    Kept as a bounded breach episode per rule (``dispatcher.rules.windows``): the episode starts
    at the first breaching reading, goes on while readings breach and none is more than
    ``max_gap_minutes`` after the previous one (the episode timeout), and ends at the first
    reading back in range or after a longer gap. It fires once per episode, on the reading where
    the episode has lasted ``min_minutes`` and holds at least ``min_readings`` readings; a
    ``worse`` level sustained for the same time inside the episode escalates once more.
    """

    kind: Literal["sensor_sustained"]
    sensor: SensorKind
    at_or_below: float | None = None
    at_or_above: float | None = None
    at_or_below_scale2: float | None = Field(
        default=None,
        description="SpO2 only: threshold for citizens scored on NEWS2 SpO2 scale 2.",
    )
    min_readings: int = Field(
        ge=1, le=1000, description="At least this many breaching readings (2: never one alone)."
    )
    min_minutes: float = Field(ge=0, le=24 * 60)
    max_gap_minutes: float = Field(gt=0, le=24 * 60)
    severity: Severity
    worse: list[WorseLevel] = Field(default_factory=list, max_length=3)

    @model_validator(mode="after")
    def _one_direction(self) -> SustainedSensorRule:
        if (self.at_or_below is None) == (self.at_or_above is None):
            raise ValueError("set exactly one of at_or_below and at_or_above")
        if self.sensor not in VITAL_SENSOR_KINDS:
            raise ValueError(f"sensor must be a vital sign kind, not {self.sensor.value!r}")
        if self.at_or_below_scale2 is not None and (
            self.sensor != SensorKind.SPO2 or self.at_or_below is None
        ):
            raise ValueError("at_or_below_scale2 applies to an spo2 at_or_below rule only")
        for scale in (1, 2):
            base_dir, base = self.threshold(scale)
            for level in self.worse:
                direction, value = level.threshold(scale)
                beyond = value < base if direction == "at_or_below" else value > base
                if direction != base_dir or not beyond:
                    raise ValueError(
                        f"each worse level must lie beyond the rule's own threshold (scale "
                        f"{scale}: {value:g} vs {base:g})"
                    )
        return self

    def threshold(self, scale: int) -> tuple[Literal["at_or_below", "at_or_above"], float]:
        if self.at_or_above is not None:
            return "at_or_above", self.at_or_above
        assert self.at_or_below is not None
        if scale == 2 and self.at_or_below_scale2 is not None:
            return "at_or_below", self.at_or_below_scale2
        return "at_or_below", self.at_or_below


Comparison = Literal["below", "at_or_below", "above", "at_or_above"]


class SpotCheckRule(_Rule):
    """A single spot-check reading beyond a limit (``min_days`` 1), or readings beyond it on
    ``min_days`` separate calendar days within ``within_days`` (repeated breaches).

    Applies to readings whose device profile is in ``profiles`` (default: spot checks only;
    continuous devices are debounced by the sustained rules). Exactly one of ``below``,
    ``at_or_below``, ``above``, ``at_or_above`` is set; ``at_or_below_scale2`` replaces
    ``at_or_below`` for citizens on NEWS2 SpO2 scale 2 (documented hypercapnic failure). A
    single-reading rule does not page again while consecutive readings of the kind stay beyond
    the limit within ``repage_hours``; a repeat rule pages once per ``within_days``.
    """

    kind: Literal["sensor_spot_check"]
    sensor: SensorKind
    below: float | None = None
    at_or_below: float | None = None
    above: float | None = None
    at_or_above: float | None = None
    at_or_below_scale2: float | None = None
    min_days: int = Field(default=1, ge=1, le=7)
    within_days: float = Field(default=7, gt=0, le=14)
    repage_hours: float = Field(default=4, ge=0, le=72)
    profiles: list[DeviceProfile] = Field(
        default_factory=lambda: [DeviceProfile.SPOT_CHECK], min_length=1
    )
    severity: Severity

    @model_validator(mode="after")
    def _one_limit(self) -> SpotCheckRule:
        set_ = [
            n
            for n in ("below", "at_or_below", "above", "at_or_above")
            if getattr(self, n) is not None
        ]
        if len(set_) != 1:
            raise ValueError("set exactly one of below, at_or_below, above and at_or_above")
        if self.sensor not in VITAL_SENSOR_KINDS:
            raise ValueError(f"sensor must be a measured kind, not {self.sensor.value!r}")
        if self.at_or_below_scale2 is not None and (
            self.sensor != SensorKind.SPO2 or self.at_or_below is None
        ):
            raise ValueError("at_or_below_scale2 applies to an spo2 at_or_below rule only")
        if self.min_days > 1 and self.within_days < self.min_days - 1:
            raise ValueError("within_days too short to hold min_days separate days")
        return self

    def limit(self, scale: int) -> tuple[Comparison, float]:
        if scale == 2 and self.at_or_below_scale2 is not None:
            return "at_or_below", self.at_or_below_scale2
        for name in ("below", "at_or_below", "above", "at_or_above"):
            value = getattr(self, name)
            if value is not None:
                return name, float(value)
        raise AssertionError("validated: one limit is set")  # pragma: no cover


class WeightGainRule(_Rule):
    """Fires when weight rose by >= ``min_gain_kg`` within ``within_days`` (heart failure).

    Weights are first cleaned of artefacts (``dispatcher.rules.weight``): a step of more than
    ``artefact_step_kg`` from the previous weight is held until the next weight confirms it and
    dropped when the next weight contradicts it (e.g. one step-off reading). The gain is the
    lowest of the newest ``sustained_readings`` weights minus the reference: the lowest weight
    of the window before them (``reference: window``), or the discharge weight when documented,
    else that rolling lowest (``reference: baseline``). Fires once per episode.
    """

    kind: Literal["weight_gain"]
    min_gain_kg: float = Field(gt=0, le=50)
    within_days: float = Field(gt=0, le=21)
    sustained_readings: int = Field(default=1, ge=1, le=7)
    reference: Literal["window", "baseline"] = "window"
    artefact_step_kg: float | None = Field(default=None, gt=0, le=50)
    conditions: list[Name] = Field(
        default_factory=list, description="Only for citizens with one of these; empty = all."
    )
    severity: Severity


class WeightLossRule(_Rule):
    """Weight fell by >= ``min_loss_kg`` within ``within_days``: noted (default severity low:
    shown with its reason, never paged), e.g. over-diuresis or dehydration in heart failure."""

    kind: Literal["weight_loss"]
    min_loss_kg: float = Field(gt=0, le=50)
    within_days: float = Field(gt=0, le=21)
    artefact_step_kg: float | None = Field(default=None, gt=0, le=50)
    conditions: list[Name] = Field(default_factory=list)
    severity: Severity = "low"


class SensorSilenceRule(_Rule):
    """A high-risk citizen's sensor went silent against its schedule (timer-driven).

    Per sensor kind, by the device profile of its newest reading: a spot-check device (a daily
    scale, cuff or finger oximeter) is silent after ``silent_hours`` (or its kind's entry in
    ``silent_hours_by_kind``), a continuous device after ``continuous_silent_minutes``.
    """

    kind: Literal["sensor_silence"]
    silent_hours: float = Field(
        gt=0, le=24 * 7, description="Spot-check devices: the schedule plus its grace."
    )
    silent_hours_by_kind: dict[SensorKind, float] = Field(
        default_factory=dict, description="Spot-check limit per kind, overriding silent_hours."
    )
    continuous_silent_minutes: float | None = Field(
        default=None, gt=0, le=24 * 60, description="Continuous devices (None: as spot checks)."
    )
    high_risk_conditions: list[Name] = Field(default_factory=list)
    high_risk_flags: list[Name] = Field(default_factory=list)
    post_discharge_is_high_risk: bool = True
    high_risk_news2_at_least: int | None = Field(default=None, ge=1, le=20)
    severity: Severity

    def limit(self, kind: SensorKind, profile: DeviceProfile) -> timedelta:
        """How long ``kind`` may be silent when its newest reading had ``profile``."""
        if profile == DeviceProfile.CONTINUOUS and self.continuous_silent_minutes is not None:
            return timedelta(minutes=self.continuous_silent_minutes)
        return timedelta(hours=self.silent_hours_by_kind.get(kind, self.silent_hours))

    def shortest(self) -> timedelta:
        """The shortest limit of the rule (the timer's scan must look at least this far)."""
        hours = (self.silent_hours, *self.silent_hours_by_kind.values())
        limits = [timedelta(hours=h) for h in hours]
        if self.continuous_silent_minutes is not None:
            limits.append(timedelta(minutes=self.continuous_silent_minutes))
        return min(limits)


Rule = Annotated[
    PlausibilityRule
    | News2BandRule
    | PostDischargeNews2Rule
    | ConsciousnessRule
    | NurseWorryRule
    | RemeasureRule
    | IncompleteSetRule
    | TobsBandRule
    | News2TrendRule
    | FallRule
    | SustainedSensorRule
    | SpotCheckRule
    | WeightGainRule
    | WeightLossRule
    | SensorSilenceRule,
    Field(discriminator="kind"),
]


class SensorProfiles(_Strict):
    """How a reading's device profile is inferred when the reading does not declare it."""

    continuous_max_interval_seconds: float = Field(
        default=120,
        gt=0,
        le=3600,
        description=(
            "A reading at most this long after the previous one of its kind counts as from a "
            "continuous device; otherwise (and for the first reading) as a spot check."
        ),
    )


class ConditionCodes(_Strict):
    """ICD-10 code prefixes (normalised form, ``I50`` or ``I11.0``) that mean ``condition``."""

    condition: Name
    icd10_prefixes: list[Annotated[str, Field(pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")]] = (
        Field(min_length=1)
    )
    source: str = Field(min_length=3, max_length=400)


class RuleSet(_Strict):
    """A complete, validated rule set."""

    ruleset: RuleId
    version: int = Field(ge=1)
    description: str | None = Field(default=None, max_length=2000)
    context: ContextSettings
    history: HistoryLimits
    ack_minutes: AckMinutes
    sensor_profiles: SensorProfiles = Field(default_factory=SensorProfiles)
    score: Literal["news2", "tobs"] = Field(
        default="news2",
        description="The early-warning score whose bands this rule set pages on: NEWS2 (RCP "
        "2017; news2_band rules) or TOBS (Danish municipalities; tobs_band rules). NEWS2 is "
        "always computed and shown; with tobs the TOBS score is computed and shown too.",
    )
    conditions: list[ConditionCodes] = Field(
        min_length=1,
        description="Diagnosis -> condition map, in priority order (the first condition a "
        "citizen has picks the nurse competence).",
    )
    rules: list[Rule] = Field(min_length=1)

    @property
    def label(self) -> str:
        return f"{self.ruleset}@v{self.version}"

    def condition_map(self) -> tuple[tuple[str, str], ...]:
        """(ICD-10 prefix, condition) pairs in priority order."""
        return tuple((p, c.condition) for c in self.conditions for p in c.icd10_prefixes)

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]

    def plausibility(self) -> PlausibilityRule:
        for rule in self.enabled():
            if isinstance(rule, PlausibilityRule):
                return rule
        raise LookupError("rule set has no enabled plausibility rule")  # refused at load


# ---------------------------------------------------------------------------------------------
# Loading and errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleIssue:
    """One problem in a rule set file: the file, the rule (id or #index) and the field."""

    file: str
    rule: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"rule {self.rule!r}: " if self.rule is not None else ""
        return f"{self.file}: {where}field {self.field!r}: {self.reason}"


class RuleSetError(PermanentError, ValueError):
    """The rule set is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: list[RuleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _rule_name(raw: Any, index: int) -> str:
    rules = raw.get("rules") if isinstance(raw, dict) else None
    if isinstance(rules, list) and index < len(rules):
        item = rules[index]
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            return str(item["id"])
    return f"#{index}"


def _issue_from_pydantic(source: str, raw: Any, err: Any) -> RuleIssue:
    loc: tuple[int | str, ...] = tuple(err["loc"])
    reason = str(err["msg"])
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rule = _rule_name(raw, loc[1])
        rest = list(loc[2:])
        if err["type"] in ("union_tag_invalid", "union_tag_not_found") and not rest:
            return RuleIssue(source, rule, "kind", reason)
        if rest and isinstance(rest[0], str) and rest[0] in _KINDS:
            rest = rest[1:]  # drop the discriminator tag pydantic puts in the location
        field = ".".join(str(p) for p in rest) or "$"
        return RuleIssue(source, rule, field, reason)
    return RuleIssue(source, None, ".".join(str(p) for p in loc) or "$", reason)


def rule_kind(model: type[BaseModel]) -> str:
    """The ``kind`` tag of a rule model: the single value of its ``kind`` Literal."""
    (kind,) = get_args(model.model_fields["kind"].annotation)
    return str(kind)


# Every rule model of the ``Rule`` union and their kinds, derived (never a hand-kept list): a new
# rule model added to the union is known here, to error reporting and to the engine's registry.
RULE_MODELS: tuple[type[BaseModel], ...] = get_args(get_args(Rule)[0])
RULE_KINDS: frozenset[str] = frozenset(rule_kind(m) for m in RULE_MODELS)
_KINDS = RULE_KINDS


def _cross_check(source: str, rs: RuleSet) -> list[RuleIssue]:
    """Checks across rules that a single model cannot make."""
    issues: list[RuleIssue] = []
    seen: set[str] = set()
    for rule in rs.rules:
        if rule.id in seen:
            issues.append(RuleIssue(source, rule.id, "id", "duplicate rule id"))
        seen.add(rule.id)
        if (
            isinstance(rule, (WeightGainRule, WeightLossRule))
            and rule.within_days > rs.history.weight_days
        ):
            issues.append(
                RuleIssue(
                    source,
                    rule.id,
                    "within_days",
                    f"must not exceed history.weight_days ({rs.history.weight_days})",
                )
            )
    for rule in rs.enabled():
        if isinstance(rule, TobsBandRule) and rs.score != "tobs":
            issues.append(
                RuleIssue(source, rule.id, "kind", "an enabled tobs_band rule needs 'score: tobs'")
            )
        if isinstance(rule, News2BandRule) and rs.score == "tobs":
            issues.append(
                RuleIssue(
                    source,
                    rule.id,
                    "kind",
                    "news2_band rules do not page in a 'score: tobs' rule set; use tobs_band",
                )
            )
    if rs.score == "tobs":
        bands = sorted(
            (r for r in rs.enabled() if isinstance(r, TobsBandRule)), key=lambda r: r.min_total
        )
        covered = {t for r in bands for t in range(16) if r.matches(t)}
        if covered != set(range(16)):
            gaps = sorted(set(range(16)) - covered)
            issues.append(
                RuleIssue(
                    source,
                    None,
                    "rules",
                    "with 'score: tobs' the enabled tobs_band rules must cover every total "
                    f"0-15; not covered: {gaps}",
                )
            )
    plausibility = [r for r in rs.rules if isinstance(r, PlausibilityRule) and r.enabled]
    if len(plausibility) != 1:
        issues.append(
            RuleIssue(
                source,
                None,
                "rules",
                "exactly one enabled rule of kind 'plausibility' is required (impossible "
                f"values must never be scored); found {len(plausibility)}",
            )
        )
    return issues


def parse_ruleset(text: str, source: str = "<string>") -> RuleSet:
    """Parse and validate YAML text. Raises ``RuleSetError`` naming file, rule and field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleSetError(
            [RuleIssue(source, None, "$", f"not valid YAML{where}: {problem}")]
        ) from None
    if not isinstance(raw, dict):
        raise RuleSetError(
            [RuleIssue(source, None, "$", f"must be a mapping, not {type(raw).__name__}")]
        )
    try:
        rs = RuleSet.model_validate(raw)
    except ValidationError as exc:
        raise RuleSetError(
            [
                _issue_from_pydantic(source, raw, e)
                for e in exc.errors(include_url=False, include_input=False)
            ]
        ) from None
    issues = _cross_check(source, rs)
    if issues:
        raise RuleSetError(issues)
    return rs


def load_ruleset(path: str | Path) -> RuleSet:
    """Read and validate a rule set file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleSetError([RuleIssue(str(p), None, "$", f"cannot read: {exc}")]) from None
    return parse_ruleset(text, str(p))


def default_ruleset_text() -> str:
    """The packaged default rule set, as YAML text."""
    node = resources.files("dispatcher.rules")
    for part in DEFAULT_RULESET_RESOURCE:
        node = node.joinpath(part)
    return node.read_text(encoding="utf-8")


@functools.cache
def default_ruleset() -> RuleSet:
    """The packaged default rule set, parsed once."""
    return parse_ruleset(default_ruleset_text(), "dispatcher/rules/rulesets/default.yaml")


__all__ = [
    "RULE_KINDS",
    "RULE_MODELS",
    "Rule",
    "RuleIssue",
    "RuleSet",
    "RuleSetError",
    "default_ruleset",
    "load_ruleset",
    "parse_ruleset",
    "rule_kind",
]
