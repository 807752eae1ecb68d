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
    ConfigDict,
    Field,
    field_validator,
)

from dispatcher.contract.vocab import CPR_PATTERN, DeadLetterCategory, RiskBand, Severity, Tier

SCHEMA_VERSION = 1

_PSEUDONYM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$")


def _pseudonymous(value: str) -> str:
    if CPR_PATTERN.search(value):
        raise ValueError("looks like a CPR number; only pseudonymous ids are accepted")
    if not _PSEUDONYM.match(value):
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
Icd10Code = Annotated[
    str,
    Field(
        pattern=r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$",
        description="ICD-10 code, e.g. J44.1 (COPD with acute exacerbation).",
    ),
]
FlagName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")]


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number (NaN and infinity are not measurements)")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class _Model(BaseModel):
    """Strict base: unknown fields are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=True)


class EventEnvelope(_Model):
    """Fields every input event carries."""

    event_id: UUID = Field(description="Unique id of this event; duplicates are ignored.")
    schema_version: Literal[1] = Field(description="Version of this contract; 1 for now.")
    occurred_at: AwareDatetime = Field(description="When it happened, RFC 3339 with a UTC offset.")
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
    due_by: AwareDatetime | None = None
    responsible: ShortText | None = Field(default=None, examples=["municipal acute team"])


class DischargeEvent(EventEnvelope):
    """Topic ``hospital.discharges``: a citizen was sent home from hospital."""

    discharged_at: AwareDatetime
    hospital: ShortText
    department: ShortText
    municipality: ShortText
    district: ShortText
    diagnoses: list[Icd10Code] = Field(default_factory=list, max_length=50)
    flags: list[FlagName] = Field(default_factory=list, max_length=50)
    follow_up: list[FollowUp] = Field(default_factory=list, max_length=20)


class SensorKind(StrEnum):
    SPO2 = "spo2"
    PULSE = "pulse"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    TEMPERATURE = "temperature"
    RESPIRATION_RATE = "respiration_rate"
    WEIGHT = "weight"
    FALL = "fall"


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
}


class SensorReading(EventEnvelope):
    """Topic ``home.sensor-readings``: one measurement from a home device."""

    kind: SensorKind
    device_id: PseudonymousId
    value: FiniteFloat
    unit: ShortText

    @field_validator("unit")
    @classmethod
    def _unit_known(cls, unit: str, info: Any) -> str:
        kind = info.data.get("kind")
        if kind is not None and unit not in SENSOR_UNITS[kind]:
            allowed = ", ".join(sorted(SENSOR_UNITS[kind]))
            raise ValueError(f"unit {unit!r} is not valid for kind {kind.value!r} (use {allowed})")
        return unit


Consciousness = Literal["A", "C", "V", "P", "U"]


class NurseObservation(EventEnvelope):
    """Topic ``homecare.nurse-observations``: a home-care nurse's vital signs and judgement.

    Any vital may be missing; a missing vital is reported as missing, never scored as normal.
    """

    respiration_rate: int | None = Field(default=None, description="Breaths per minute.")
    spo2: int | None = Field(default=None, description="Peripheral oxygen saturation, %.")
    on_oxygen: bool | None = Field(default=None, description="Receiving supplemental oxygen.")
    systolic_bp: int | None = Field(default=None, description="Systolic blood pressure, mmHg.")
    pulse: int | None = Field(default=None, description="Heart rate, beats per minute.")
    consciousness: Consciousness | None = Field(
        default=None, description="ACVPU: Alert, new Confusion, Voice, Pain, Unresponsive."
    )
    temperature: FiniteFloat | None = Field(default=None, description="Body temperature, °C.")
    worried: bool = Field(default=False, description="The nurse is worried about the citizen.")
    note: str | None = Field(
        default=None,
        max_length=2000,
        description="Free text. Stored for the case, never logged or used as a metric label.",
    )
    observer: PseudonymousId = Field(description="Pseudonymous id of the observing nurse.")


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


class FieldError(_Model):
    """A validation failure: which field, and why."""

    field: str
    reason: str


class DeadLetter(_Model):
    """Topic ``dispatcher.dead-letter``: input we could not accept, with the reason."""

    dead_letter_id: UUID
    schema_version: Literal[1] = 1
    rejected_at: datetime
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    original_b64: str = Field(
        description="The original message bytes, base64 (the first 64 KiB when truncated)."
    )
    original_size: int = Field(default=0, ge=0, description="Size of the original in bytes.")
    original_sha256: str | None = Field(default=None, description="SHA-256 of the original.")
    original_truncated: bool = False
    category: DeadLetterCategory = Field(
        default=DeadLetterCategory.VALIDATION,
        description="Why it was refused: malformed bytes, an unsupported schema_version, a field "
        "that failed validation, or an error of the rules or the store on a valid event.",
    )
    error: FieldError = Field(description="The first error; all errors are in 'errors'.")
    errors: list[FieldError] = Field(min_length=1)
    event_id: UUID | None = Field(default=None, description="The event id, when it was readable.")
