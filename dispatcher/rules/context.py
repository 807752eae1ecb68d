"""Per-citizen context, folded from discharge events.

The context is what a nurse would want to know before judging a set of vitals: when the citizen
came home, from where, with which conditions and flags. It is a pure fold: ``apply_discharge``
takes the old context and an event and returns the new one, so the streaming path and the CLI
compute it the same way. PostgreSQL keeps it durably (``citizen_context``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.events import DischargeEvent, DischargeFlag

# ICD-10 chapter prefixes -> the condition (and nurse competence) that should take the case.
CONDITION_BY_ICD10_PREFIX: tuple[tuple[str, str], ...] = (
    ("J44", "copd"),  # other chronic obstructive pulmonary disease
    ("J43", "copd"),  # emphysema
    ("J96", "copd"),  # respiratory failure (hypercapnic failure is mostly COPD at home)
    ("I50", "heart_failure"),
    ("I11.0", "heart_failure"),  # hypertensive heart disease with heart failure
    ("E10", "diabetes"),
    ("E11", "diabetes"),
    ("E13", "diabetes"),
    ("E14", "diabetes"),
)


def conditions_for(diagnoses: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Map ICD-10 codes to the chronic conditions the acute teams specialise in."""
    found: list[str] = []
    for code in diagnoses:
        for prefix, condition in CONDITION_BY_ICD10_PREFIX:
            if code.startswith(prefix) and condition not in found:
                found.append(condition)
    return tuple(found)


class CitizenContext(BaseModel):
    """What we know about a citizen beyond the event at hand."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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

    def has_flag(self, flag: DischargeFlag) -> bool:
        return flag.value in self.flags

    def days_since_discharge(self, now: datetime) -> float | None:
        if self.discharged_at is None:
            return None
        return (now - self.discharged_at) / timedelta(days=1)

    def in_post_discharge_window(self, now: datetime, window: timedelta) -> bool:
        """True during the first ``window`` after the latest discharge (vigilance raised)."""
        if self.discharged_at is None:
            return False
        return timedelta(0) <= now - self.discharged_at <= window


def empty_context(citizen_id: str) -> CitizenContext:
    return CitizenContext(citizen_id=citizen_id)


def apply_discharge(ctx: CitizenContext | None, event: DischargeEvent) -> CitizenContext:
    """Fold a discharge into the context. An older discharge never overwrites a newer one."""
    base = ctx or empty_context(event.citizen_id)
    if base.discharged_at is not None and event.discharged_at < base.discharged_at:
        return base.model_copy(update={"discharge_count": base.discharge_count + 1})
    return CitizenContext(
        citizen_id=event.citizen_id,
        discharged_at=event.discharged_at,
        hospital=event.hospital,
        department=event.department,
        municipality=event.municipality,
        district=event.district,
        diagnoses=tuple(event.diagnoses),
        conditions=conditions_for(event.diagnoses),
        flags=tuple(event.flags),
        last_discharge_event_id=str(event.event_id),
        discharge_count=base.discharge_count + 1,
    )
