"""A citizen's last few nurse observations, kept so a late discharge can re-assess them.

Issue 11 item 4: a discharge that arrives after observations it precedes (the citizen was home
when they were taken, but the discharge came in a later batch) changes what those observations
mean - the NEWS2 SpO2 scale, the post-discharge vigilance, the route. The context keeps the
newest ``KEEP`` observations of the last ``WINDOW`` (the observation topic's maximum age: an
older one would not page anyway), each with the vitals as measured and the severity it was
decided with, so ``dispatcher.ingest.planner.decide`` can assess them again with the
discharge and escalate when the outcome is worse.

Compact by design (the context stays small): the vitals are one array in ``VITALS`` order, the
free-text note is never kept, dropped vitals by name only. At most ``KEEP`` x about 200 bytes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.contract.events import FieldError, NurseObservation
from dispatcher.contract.vocab import Severity

KEEP = 3
WINDOW = timedelta(hours=24)
VITALS: tuple[str, ...] = (
    "respiration_rate",
    "spo2",
    "on_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)
REASSESSMENT_SOURCE = "dispatcher:re-assessment"
DROPPED_REASON = "unusable value when first received; dropped, not scored"


class RecentObservation(BaseModel):
    """One observation as it can be assessed again, and the severity it was decided with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID
    at: AwareDatetime
    severity: Severity
    observer: str
    vitals: tuple[float | bool | str | None, ...] = Field(
        description="The vitals as measured, in VITALS order (null: not sent)."
    )
    worried: bool = False
    dropped: tuple[str, ...] = ()

    @classmethod
    def of(cls, obs: NurseObservation, severity: Severity) -> RecentObservation:
        return cls(
            event_id=obs.event_id,
            at=obs.occurred_at,
            severity=severity,
            observer=obs.observer,
            vitals=tuple(getattr(obs, name) for name in VITALS),
            worried=obs.worried,
            dropped=tuple(d.field for d in obs.dropped),
        )

    def observation(self, citizen_id: str) -> NurseObservation:
        """The observation again (without its free-text note) for a re-assessment."""
        vitals: dict[str, Any] = dict(zip(VITALS, self.vitals, strict=True))
        return NurseObservation(
            event_id=self.event_id,
            schema_version=1,
            occurred_at=self.at,
            source=REASSESSMENT_SOURCE,
            citizen_id=citizen_id,
            observer=self.observer,
            worried=self.worried,
            dropped=[FieldError(field=f, reason=DROPPED_REASON) for f in self.dropped],
            **vitals,
        )


def remember(
    recent: tuple[RecentObservation, ...], entry: RecentObservation
) -> tuple[RecentObservation, ...]:
    """``recent`` with ``entry`` (replacing one of the same event id): oldest first, at most
    ``KEEP``, none older than ``WINDOW`` before the newest."""
    kept = sorted((*(r for r in recent if r.event_id != entry.event_id), entry), key=lambda r: r.at)
    horizon = kept[-1].at - WINDOW
    return tuple(r for r in kept if r.at >= horizon)[-KEEP:]


def with_severity(
    recent: tuple[RecentObservation, ...], event_id: UUID, severity: Severity
) -> tuple[RecentObservation, ...]:
    """``recent`` with the entry of ``event_id`` now decided at ``severity``."""
    return tuple(
        r.model_copy(update={"severity": severity}) if r.event_id == event_id else r for r in recent
    )


def before(recent: tuple[RecentObservation, ...], at: datetime) -> datetime | None:
    """The newest remembered observation time strictly before ``at``."""
    return max((r.at for r in recent if r.at < at), default=None)
