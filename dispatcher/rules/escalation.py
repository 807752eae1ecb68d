"""Build the outgoing escalation from an assessment.

Ids are derived (uuid5) from the triggering event id, so reprocessing the same event after a
crash produces byte-for-byte the same escalation id: consumers can deduplicate on it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID, uuid5

from dispatcher.contract.events import Escalation, Route
from dispatcher.rules.assessment import Assessment

ESCALATION_NAMESPACE = UUID("5b7c2a3e-2f0d-4d5e-9a35-5a1b9f0c1e77")


def escalation_id_for(event_id: UUID) -> UUID:
    return uuid5(ESCALATION_NAMESPACE, f"escalation:{event_id}")


def case_id_for(citizen_id: str, event_id: UUID) -> UUID:
    return uuid5(ESCALATION_NAMESPACE, f"case:{citizen_id}:{event_id}")


def build_escalation(
    assessment: Assessment, route: Route, now: datetime, case_id: UUID | None = None
) -> Escalation:
    if not assessment.escalate or assessment.response_minutes is None:
        raise ValueError("only an escalating assessment becomes an escalation")
    return Escalation(
        escalation_id=escalation_id_for(assessment.event_id),
        case_id=case_id or case_id_for(assessment.citizen_id, assessment.event_id),
        citizen_id=assessment.citizen_id,
        created_at=now,
        severity=assessment.severity,
        route=route,
        reasons=assessment.reasons,
        news2=assessment.news2,
        ack_deadline=now + timedelta(minutes=assessment.response_minutes),
        triggered_by=[assessment.event_id],
    )
