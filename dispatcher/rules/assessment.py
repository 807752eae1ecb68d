"""Turn one event plus the citizen's context into an explained assessment.

``assess`` is the single entry point the streaming path and the CLI share, so both give the same
answer for the same input. Every rule that fires adds a ``Reason`` naming the rule id, its
version and the inputs it used; severity is the highest any rule asked for.

Severity ladder (ours, mapped from NEWS2 chart 4 clinical response):

* ``critical`` - emergency response (NEWS2 >= 7, or unresponsive): the fixed on-call doctor.
* ``high``     - urgent response (NEWS2 5-6, a single parameter scoring 3, a fall alarm).
* ``medium``   - prompt nurse assessment (the nurse is worried; NEWS2 >= 3 within the
  post-discharge window).
* ``low``      - no escalation; recorded and scored only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from dispatcher.events import (
    DischargeEvent,
    DischargeFlag,
    InputEvent,
    News2Summary,
    NurseObservation,
    Reason,
    SensorKind,
    SensorReading,
    Severity,
)
from dispatcher.rules import news2
from dispatcher.rules.context import CitizenContext

SEVERITY_ORDER: dict[Severity, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}


@dataclass(frozen=True)
class Policy:
    """Tunable thresholds. Defaults live here, in one named value (``DEFAULT_POLICY``)."""

    post_discharge_window: timedelta = timedelta(days=30)
    post_discharge_news2_threshold: int = 3
    ack_minutes: tuple[tuple[Severity, int], ...] = (
        ("critical", 5),
        ("high", 15),
        ("medium", 30),
    )

    def ack_minutes_for(self, severity: Severity) -> int | None:
        return dict(self.ack_minutes).get(severity)


DEFAULT_POLICY = Policy()


class Assessment(BaseModel):
    """The explained decision for one event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    citizen_id: str
    event_kind: str
    assessed_at: datetime
    news2: News2Summary | None = None
    escalate: bool
    severity: Severity
    competence: str
    reasons: list[Reason]
    response_minutes: int | None = None


def max_severity(a: Severity, b: Severity) -> Severity:
    return a if SEVERITY_ORDER[a] >= SEVERITY_ORDER[b] else b


def competence_for(ctx: CitizenContext) -> str:
    """The nurse competence that fits the citizen best; palliative care trumps diagnoses."""
    if ctx.has_flag(DischargeFlag.PALLIATIVE):
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


def _assess_observation(
    obs: NurseObservation, ctx: CitizenContext, now: datetime, policy: Policy
) -> tuple[Severity, list[Reason], News2Summary]:
    scale: news2.Scale = 2 if ctx.has_flag(DischargeFlag.HYPERCAPNIC_RESPIRATORY_FAILURE) else 1
    vitals = news2.Vitals(
        respiration_rate=obs.respiration_rate,
        spo2=obs.spo2,
        on_oxygen=obs.on_oxygen,
        systolic_bp=obs.systolic_bp,
        pulse=obs.pulse,
        consciousness=obs.consciousness,
        temperature=obs.temperature,
    )
    result = news2.score(vitals, scale)
    summary = _news2_summary(result)
    inputs: dict[str, Any] = {
        "total": result.total,
        "subscores": dict(result.subscores),
        "missing": list(result.missing),
        "scale": scale,
    }
    severity: Severity = "low"
    reasons: list[Reason] = []
    if result.risk == "high":
        severity = "critical"
        reasons.append(
            Reason(
                rule_id="news2.high",
                rule_version=1,
                summary=f"NEWS2 {result.total} (>= 7): {result.response}",
                inputs=inputs,
            )
        )
    elif result.risk == "medium":
        severity = "high"
        reasons.append(
            Reason(
                rule_id="news2.medium",
                rule_version=1,
                summary=f"NEWS2 {result.total} (5-6): {result.response}",
                inputs=inputs,
            )
        )
    elif result.risk == "low-medium":
        severity = "high"
        red = sorted(k for k, v in result.subscores.items() if v == 3)
        reasons.append(
            Reason(
                rule_id="news2.red_score",
                rule_version=1,
                summary=f"Single parameter scored 3 ({', '.join(red)}): {result.response}",
                inputs={**inputs, "red_parameters": red},
            )
        )
    elif (
        result.total >= policy.post_discharge_news2_threshold
        and ctx.in_post_discharge_window(now, policy.post_discharge_window)
    ):
        severity = "medium"
        days = ctx.days_since_discharge(now)
        reasons.append(
            Reason(
                rule_id="post_discharge.news2",
                rule_version=1,
                summary=(
                    f"NEWS2 {result.total} within {policy.post_discharge_window.days} days "
                    "of discharge: vigilance raised after a hospital stay."
                ),
                inputs={**inputs, "days_since_discharge": round(days or 0.0, 2)},
            )
        )
    if obs.consciousness == "U":
        severity = "critical"
        reasons.append(
            Reason(
                rule_id="consciousness.unresponsive",
                rule_version=1,
                summary="Citizen unresponsive (ACVPU = U): emergency response.",
                inputs={"consciousness": "U"},
            )
        )
    if obs.worried:
        severity = max_severity(severity, "medium")
        reasons.append(
            Reason(
                rule_id="nurse.worry",
                rule_version=1,
                summary="The observing nurse is worried (TOBS practice: worry escalates alone).",
                inputs={"worried": True, "news2_total": result.total},
            )
        )
    return severity, reasons, summary


def _assess_sensor(reading: SensorReading) -> tuple[Severity, list[Reason]]:
    if reading.kind == SensorKind.FALL and reading.value >= 1:
        return "high", [
            Reason(
                rule_id="sensor.fall",
                rule_version=1,
                summary="Fall alarm from a home sensor: respond at once.",
                inputs={"device_id": reading.device_id, "value": reading.value},
            )
        ]
    return "low", []


def assess(
    event: InputEvent,
    ctx: CitizenContext,
    now: datetime,
    policy: Policy = DEFAULT_POLICY,
) -> Assessment:
    """Assess one event in the citizen's context. Pure and deterministic."""
    summary: News2Summary | None = None
    severity: Severity = "low"
    reasons: list[Reason] = []
    if isinstance(event, NurseObservation):
        severity, reasons, summary = _assess_observation(event, ctx, now, policy)
        kind = "nurse_observation"
    elif isinstance(event, SensorReading):
        severity, reasons = _assess_sensor(event)
        kind = "sensor_reading"
    elif isinstance(event, DischargeEvent):
        kind = "discharge"
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown event type {type(event).__name__}")
    escalate = SEVERITY_ORDER[severity] >= SEVERITY_ORDER["medium"]
    return Assessment(
        event_id=event.event_id,
        citizen_id=event.citizen_id,
        event_kind=kind,
        assessed_at=now,
        news2=summary,
        escalate=escalate,
        severity=severity,
        competence=competence_for(ctx),
        reasons=reasons,
        response_minutes=policy.ack_minutes_for(severity) if escalate else None,
    )
