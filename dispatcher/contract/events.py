"""The public event contract: what hospitals, sensors and nurses publish, and what we emit.

These pydantic models are the single source of truth. ``schemas/*.json`` is generated from them
(``dispatcher schemas write``) and a test fails when the committed files drift.

Every input event carries an ``event_id`` (idempotency key), a ``schema_version``, an
``occurred_at`` timestamp with a UTC offset, its ``source`` system and a pseudonymous
``citizen_id``. A Danish CPR number is never accepted as a citizen id: the validator refuses
anything shaped like one, so it cannot leak into topics, logs or the database by mistake.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    Strict,
    ValidationError,
    field_validator,
    model_validator,
)

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import CPR_PATTERN, DeadLetterCategory, RiskBand, Severity, Tier

SCHEMA_VERSION = 1

_PSEUDONYM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{2,63}")


def _pseudonymous(value: str) -> str:
    if CPR_PATTERN.search(value):
        raise ValueError("looks like a CPR number; only pseudonymous ids are accepted")
    if not _PSEUDONYM.fullmatch(value):  # whole: "cit-1\n" is not "cit-1" (issue 11 item 5)
        raise ValueError(
            "must be 3-64 characters of letters, digits and . _ : - (a pseudonymous id)"
        )
    return value


PseudonymousId = Annotated[
    str,
    AfterValidator(_pseudonymous),
    Field(
        description="Pseudonymous identifier (never a CPR number, name or address).",
        examples=["cit-7f3a9c"],
    ),
]

ShortText = Annotated[str, Field(min_length=1, max_length=120)]
_SKS_DIAGNOSIS = re.compile(r"^D([A-Z][0-9]{2})([0-9A-Z]{1,4})?$")
_ICD10 = re.compile(r"^([A-Z][0-9]{2})(?:\.?([0-9A-Z]{1,4}))?$")


def normalise_diagnosis(code: str) -> str:
    """One form for every diagnosis code: WHO ICD-10 with the dot (``I50.1``).

    Accepted: ICD-10 with or without the dot (``I50.1``, ``I501``) and the Danish SKS
    diagnosis code, which is the ICD-10 code prefixed with ``D`` and written without the dot,
    possibly with Danish sub-levels (``DI501`` -> ``I50.1``, ``DJ441`` -> ``J44.1``, ``DJ441A``
    -> ``J44.1A``). The two cannot be confused: an ICD-10 code has a digit in second place, an
    SKS diagnosis code a letter (Sundhedsdatastyrelsen, SKS-klassifikationen, D-hovedgruppe).
    """
    match = _SKS_DIAGNOSIS.match(code) or _ICD10.match(code)
    if match is None:  # the pattern below already refused it; kept for direct callers
        raise ValueError(f"not an ICD-10 or SKS diagnosis code: {code!r}")
    head, tail = match.groups()
    return f"{head}.{tail}" if tail else head


Icd10Code = Annotated[
    str,
    Field(
        pattern=r"^(D[A-Z][0-9]{2}[0-9A-Z]{0,4}|[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?)$",
        description="Diagnosis: ICD-10 (J44.1 or J441) or Danish SKS (DJ441); normalised to "
        "ICD-10 with the dot (J44.1) when read.",
        examples=["J44.1", "DI501"],
    ),
    AfterValidator(normalise_diagnosis),
]
FlagName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and infinity are not measurements)")
    return value


# No coercion on input (issue 11 item 5): pydantic's lax mode would read "88" and true as the
# number 88 and 1.0, "yes" and 1 as true, and 1700000000 or "1700000000" as a timestamp. The
# input models' fields are strict instead: a number is a JSON number (an integer or a decimal),
# a boolean is true or false, a timestamp is an RFC 3339 string with a UTC offset, an event id
# is a UUID in its canonical 8-4-4-4-12 form. (Python datetime and UUID objects are accepted
# too, for callers that build events in code.)
FiniteFloat = Annotated[float, Strict(), AfterValidator(_finite)]
StrictBool = Annotated[bool, Strict()]

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_CANONICAL_UUID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise ValueError(
        "must be an RFC 3339 timestamp string with a UTC offset, e.g. "
        "2026-11-21T08:30:00+01:00 (a number is not a timestamp)"
    )


def _canonical_uuid(value: Any) -> Any:
    if isinstance(value, UUID) or (isinstance(value, str) and _CANONICAL_UUID.fullmatch(value)):
        return value
    raise ValueError("must be a UUID string in its canonical form, 8-4-4-4-12 hex digits")


def _exactly_one(value: Any) -> Any:
    if type(value) is not int:  # true and 1.0 are not the version 1
        raise ValueError("must be the integer 1")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
EventId = Annotated[UUID, BeforeValidator(_canonical_uuid)]


class _Model(BaseModel):
    """Strict base: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=True)


class FieldError(_Model):
    """A validation failure: which field, and why."""

    field: str
    reason: str


class EventEnvelope(_Model):
    """Fields every input event carries."""

    event_id: EventId = Field(description="Unique id of this event; duplicates are ignored.")
    schema_version: Annotated[Literal[1], BeforeValidator(_exactly_one)] = Field(
        description="Version of this contract; 1 for now."
    )
    occurred_at: Timestamp = Field(description="When it happened, RFC 3339 with a UTC offset.")
    source: ShortText = Field(description="Publishing system, e.g. 'rh-sp' or 'kmd-nexus'.")
    citizen_id: PseudonymousId


class DischargeFlag(StrEnum):
    """Flags with a meaning to the rules. Other lower_snake_case flags are kept, not acted on."""

    HYPERCAPNIC_RESPIRATORY_FAILURE = "hypercapnic_respiratory_failure"
    PALLIATIVE = "palliative"
    LIVES_ALONE = "lives_alone"
    HOME_OXYGEN = "home_oxygen"
    FALL_RISK = "fall_risk"
    COGNITIVE_IMPAIRMENT = "cognitive_impairment"


class FollowUp(_Model):
    """A follow-up need agreed at discharge."""

    action: ShortText = Field(examples=["home visit by acute team"])
    due_by: Timestamp | None = None
    responsible: ShortText | None = Field(default=None, examples=["municipal acute team"])


class DischargeEvent(EventEnvelope):
    """Topic ``hospital.discharges``: a citizen was sent home from hospital."""

    discharged_at: Timestamp
    hospital: ShortText
    department: ShortText
    municipality: ShortText
    district: ShortText
    diagnoses: list[Icd10Code] = Field(default_factory=list, max_length=50)
    flags: list[FlagName] = Field(default_factory=list, max_length=50)
    flags_ended: list[FlagName] = Field(
        default_factory=list,
        max_length=50,
        description="Flags this source explicitly ends (e.g. palliative no longer applies). "
        "Flags from earlier discharges are otherwise kept: a flag ends only when a source "
        "says so.",
    )
    follow_up: list[FollowUp] = Field(default_factory=list, max_length=20)
    weight_kg: float | None = Field(
        default=None,
        ge=20,
        le=350,
        description="Weight at discharge (the 'dry weight' after diuresis), kg. Optional: when "
        "present the heart-failure weight rules use it as the baseline.",
    )

    @model_validator(mode="after")
    def _flag_set_or_ended(self) -> DischargeEvent:
        both = sorted(set(self.flags) & set(self.flags_ended))
        if both:
            raise ValueError(f"flags both set and ended: {', '.join(both)}")
        return self


class SensorKind(StrEnum):
    SPO2 = "spo2"
    PULSE = "pulse"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    TEMPERATURE = "temperature"
    RESPIRATION_RATE = "respiration_rate"
    WEIGHT = "weight"
    FALL = "fall"
    BLOOD_GLUCOSE = "blood_glucose"  # capillary or CGM glucose, mmol/L


# Accepted units per kind (UCUM first, then common device spellings).
SENSOR_UNITS: dict[SensorKind, frozenset[str]] = {
    SensorKind.SPO2: frozenset({"%"}),
    SensorKind.PULSE: frozenset({"/min", "bpm"}),
    SensorKind.SYSTOLIC_BP: frozenset({"mm[Hg]", "mmHg"}),
    SensorKind.DIASTOLIC_BP: frozenset({"mm[Hg]", "mmHg"}),
    SensorKind.TEMPERATURE: frozenset({"Cel", "°C"}),
    SensorKind.RESPIRATION_RATE: frozenset({"/min", "breaths/min"}),
    SensorKind.WEIGHT: frozenset({"kg"}),
    SensorKind.FALL: frozenset({"1", "event"}),
    SensorKind.BLOOD_GLUCOSE: frozenset({"mmol/L"}),
}


class DeviceProfile(StrEnum):
    """How a device measures: streaming on its own, or a deliberate single measurement."""

    CONTINUOUS = "continuous"  # e.g. a worn oximeter sending every few seconds
    SPOT_CHECK = "spot_check"  # e.g. a blood-pressure cuff, a scale, a finger oximeter reading


class SensorReading(EventEnvelope):
    """Topic ``home.sensor-readings``: one measurement from a home device."""

    kind: SensorKind
    device_id: PseudonymousId
    value: FiniteFloat
    unit: ShortText
    device_profile: DeviceProfile | None = Field(
        default=None,
        description=(
            "How the device measures. Optional: when absent the rules infer it from the "
            "cadence (readings of the kind at most sensor_profiles.continuous_max_interval_"
            "seconds apart count as continuous, otherwise as spot checks)."
        ),
    )

    @field_validator("unit")
    @classmethod
    def _unit_known(cls, unit: str, info: Any) -> str:
        kind = info.data.get("kind")
        if kind is not None and unit not in SENSOR_UNITS[kind]:
            allowed = ", ".join(sorted(SENSOR_UNITS[kind]))
            raise ValueError(f"unit {unit!r} is not valid for kind {kind.value!r} (use {allowed})")
        return unit


Consciousness = Literal["A", "C", "V", "P", "U"]


def _not_a_flag(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number (true/false is not a measurement)")
    return value


# A measured value as a device sends it: any finite number, decimals included (SpO2 88.5,
# temperature 37.85). The rules round it to the chart's resolution before banding
# (dispatcher.rules.news2.CHART_RESOLUTION); the value as measured is kept here.
# Strict (issue 11 item 5): "88" is not a number either - dropped with its reason like "high".
Measurement = Annotated[float, BeforeValidator(_not_a_flag), Strict(), AfterValidator(_finite)]

# Fields of a nurse observation that are dropped, with their reason, when their value cannot be
# used (wrong type, not finite, not an ACVPU letter): the rest of the observation is still
# assessed. Anything else that fails validation still refuses the whole message.
DROPPABLE_VITALS: tuple[str, ...] = (
    "respiration_rate",
    "spo2",
    "on_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)


class NurseObservation(EventEnvelope):
    """Topic ``homecare.nurse-observations``: a home-care nurse's vital signs and judgement.

    Any vital may be missing; a missing vital is reported as missing, never scored as normal.
    Numbers are accepted as devices send them (decimals included). A vital whose value cannot
    be used at all (``"spo2": "high"``) is dropped and listed in ``dropped`` with the reason;
    the other vitals are still assessed, so one bad value never dead-letters the observation.
    """

    respiration_rate: Measurement | None = Field(
        default=None, description="Breaths per minute (decimals accepted; scored rounded)."
    )
    spo2: Measurement | None = Field(
        default=None,
        description="Peripheral oxygen saturation, % (decimals accepted; scored rounded).",
    )
    on_oxygen: StrictBool | None = Field(default=None, description="Receiving supplemental oxygen.")
    systolic_bp: Measurement | None = Field(
        default=None, description="Systolic blood pressure, mmHg (decimals accepted)."
    )
    pulse: Measurement | None = Field(
        default=None, description="Heart rate, beats per minute (decimals accepted)."
    )
    consciousness: Consciousness | None = Field(
        default=None, description="ACVPU: Alert, new Confusion, Voice, Pain, Unresponsive."
    )
    temperature: Measurement | None = Field(default=None, description="Body temperature, °C.")
    worried: StrictBool = Field(
        default=False, description="The nurse is worried about the citizen."
    )
    note: str | None = Field(
        default=None,
        max_length=2000,
        description="Free text. Stored for the case, never logged or used as a metric label.",
    )
    observer: PseudonymousId = Field(description="Pseudonymous id of the observing nurse.")
    dropped: list[FieldError] = Field(
        default_factory=list,
        max_length=len(DROPPABLE_VITALS),
        description="Vitals that were sent but could not be used, each with the reason: filled "
        "by the dispatcher when the observation is read (a publisher must not send it); never "
        "scored, reported missing.",
        json_schema_extra={"readOnly": True},
    )

    @model_validator(mode="wrap")
    @classmethod
    def _drop_unusable_vitals(
        cls, data: Any, handler: ModelWrapValidatorHandler[NurseObservation]
    ) -> NurseObservation:
        """Validate; if only vitals failed, drop them (with the reason) and validate the rest."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            bad = {e["loc"][0] for e in errors if len(e["loc"]) >= 1}
            if (
                not isinstance(data, dict)
                or not errors
                or any(len(e["loc"]) < 1 or e["loc"][0] not in DROPPABLE_VITALS for e in errors)
            ):
                raise
            dropped = list(data.get("dropped") or [])
            for name in DROPPABLE_VITALS:
                if name in bad:
                    why = "; ".join(str(e["msg"]) for e in errors if e["loc"][0] == name)
                    dropped.append(
                        {
                            "field": name,
                            "reason": f"unusable value {_shown(data[name])}: {why}; dropped, "
                            "not scored (the rest of the observation is assessed)",
                        }
                    )
            kept = {k: v for k, v in data.items() if k not in bad}
            return handler({**kept, "dropped": dropped})


def _shown(value: Any) -> str:
    """A rejected value for a reason text: numbers as sent, anything else by its JSON type only
    (free text in a vital field could hold anything, a CPR number included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    kinds = {str: "string", bool: "boolean", list: "array", dict: "object", type(None): "null"}
    return f"({kinds.get(type(value), type(value).__name__)})"


InputEvent = DischargeEvent | SensorReading | NurseObservation


class SensorSilenceCheck(EventEnvelope):
    """Internal, never on a topic: the dispatcher's own timer noticed a silent sensor.

    It is audited like an input event so the escalation it may cause is explained and
    idempotent: its ``event_id`` is derived from the citizen and the last reading time, so one
    silence episode is one event however often the timer runs.
    """

    last_sensor_at: AwareDatetime


AuditedEvent = InputEvent | SensorSilenceCheck


# ---------------------------------------------------------------------------------------------
# Output contract
# ---------------------------------------------------------------------------------------------


class Route(_Model):
    """The rules' first route: the tier and competence wanted, and the district team by name.

    The case manager then routes the case over the roster (who covers the citizen, is on shift
    and least loaded, with the fallback chain) and says so on the page it sends
    (``acute.pages.<team_id>``); the page's ``target`` is the authoritative assignee.
    """

    tier: Tier
    team: ShortText
    competence: ShortText
    reason: str = Field(description="Why this route was chosen, in words.")


class Reason(_Model):
    """One rule that fired, with the inputs it used."""

    rule_id: ShortText
    rule_version: int = Field(ge=1)
    summary: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class News2Summary(_Model):
    """NEWS2 (Royal College of Physicians, 2017) as scored for the escalation."""

    total: int = Field(ge=0, le=20)
    risk: RiskBand
    subscores: dict[str, int]
    missing: list[str] = Field(default_factory=list)
    scale: Literal[1, 2] = 1
    red_score: bool = Field(description="Some single parameter scored 3.")


class Escalation(_Model):
    """Topic ``acute.escalations``: an acute case that needs a person now."""

    escalation_id: UUID
    schema_version: Literal[1] = 1
    case_id: UUID
    citizen_id: PseudonymousId
    created_at: AwareDatetime
    severity: Severity
    route: Route
    reasons: list[Reason] = Field(min_length=1)
    news2: News2Summary | None = None
    ack_deadline: AwareDatetime
    triggered_by: list[UUID] = Field(min_length=1)


class DeadLetter(_Model):
    """Topic ``dispatcher.dead-letter``: input we could not accept, with the reason."""

    dead_letter_id: UUID
    schema_version: Literal[1] = 1
    rejected_at: datetime
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None = Field(
        default=None,
        description="The original Kafka key, base64: at most its first 1 KiB, CPR-shaped "
        "numbers replaced by '#' (see key_redacted).",
    )
    key_size: int | None = Field(
        default=None, ge=0, description="Size of the original key in bytes (null: no key)."
    )
    key_sha256: str | None = Field(default=None, description="SHA-256 of the whole original key.")
    key_truncated: bool = False
    key_redacted: bool = Field(
        default=False, description="CPR-shaped numbers in the key excerpt were replaced by '#'."
    )
    original_b64: str = Field(
        description="The original message bytes, base64: at most the first 64 KiB, CPR-shaped "
        "numbers replaced by '#' (see original_redacted)."
    )
    original_size: int = Field(default=0, ge=0, description="Size of the original in bytes.")
    original_sha256: str | None = Field(default=None, description="SHA-256 of the original.")
    original_truncated: bool = False
    original_redacted: bool = Field(
        default=False,
        description="CPR-shaped numbers in the excerpt were replaced by '#' (it is then not a "
        "prefix of the original).",
    )
    category: DeadLetterCategory = Field(
        default=DeadLetterCategory.VALIDATION,
        description="Why it was refused: malformed bytes, an unsupported schema_version, a field "
        "that failed validation, an error of the rules or the store on a valid event, or an "
        "event_id already used by an event with different content (id_reused).",
    )
    error: FieldError = Field(description="The first error; all errors are in 'errors'.")
    errors: list[FieldError] = Field(min_length=1)
    event_id: UUID | None = Field(default=None, description="The event id, when it was readable.")


# The input topics' contracts: what the decoder validates and what the JSON Schemas describe.
INPUT_MODEL_BY_TOPIC: dict[str, type[_Model]] = {
    DISCHARGES: DischargeEvent,
    SENSOR_READINGS: SensorReading,
    NURSE_OBSERVATIONS: NurseObservation,
}
