"""Case lifecycle as pure transitions: group, inhibit, silence, page, time out, acknowledge.

States: ``open`` -> ``notified`` (a page was handed to delivery) -> ``acknowledged`` ->
``resolved``; ``re_escalated`` when an acknowledgement deadline passed (or a push could not be
delivered) and the case moved one rung up its chain, ending at the fixed on-call doctor.

Grouping (Alertmanager's group-by citizen): one open case per citizen. A further escalation for
the same citizen joins it without a new page, unless its severity is higher: then the case is
re-routed at the new severity and paged again.

Inhibition (Alertmanager's inhibit rules): an open doctor-level case suppresses nurse-level pages
for the same citizen; the escalation is recorded on the case as inhibited.

Silences: time-boxed, per citizen and optionally per rule, with author and reason. A silence
never hides a *critical* escalation unless it says ``include_critical`` explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

from dispatcher.contract.events import Escalation
from dispatcher.contract.vocab import AWAITING_ACK, SEVERITY_RANK, CaseState, Outcome
from dispatcher.errors import PermanentError
from dispatcher.routing.router import RouteDecision, Target

CASE_NAMESPACE = UUID("0c4f7d2a-9b1e-4c3d-8a6f-2e5b7c9d1f30")


class TransitionError(PermanentError, ValueError):
    """An action that the case's state does not allow (e.g. acknowledging a resolved case)."""


@dataclass(frozen=True)
class Case:
    case_id: UUID
    citizen_id: str
    state: CaseState
    severity: str
    chain: tuple[Target, ...]
    level: int
    ack_minutes: int
    ack_deadline: datetime
    opened_at: datetime
    updated_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None

    @property
    def target(self) -> Target:
        return self.chain[min(self.level, len(self.chain) - 1)]

    @property
    def tier(self) -> str:
        return self.target.tier

    @property
    def team_id(self) -> str:
        return self.target.team_id


@dataclass(frozen=True)
class Silence:
    silence_id: UUID
    citizen_id: str
    rule_id: str | None
    starts_at: datetime
    ends_at: datetime
    author: str
    reason: str
    include_critical: bool = False

    def matches(
        self, citizen_id: str, rule_ids: Sequence[str], severity: str, now: datetime
    ) -> bool:
        if citizen_id != self.citizen_id or not (self.starts_at <= now < self.ends_at):
            return False
        if severity == "critical" and not self.include_critical:
            return False
        return self.rule_id is None or self.rule_id in rule_ids


PageKind = Literal["new", "severity_raised", "re_escalated", "delivery_failed"]


@dataclass(frozen=True)
class Page:
    """A notification to one rung of the chain. ``page_seq`` is per case, from 1."""

    case_id: UUID
    page_seq: int
    kind: PageKind
    target: Target
    severity: str
    ack_deadline: datetime
    reason: str


@dataclass(frozen=True)
class CaseEvent:
    actor: str
    action: str
    detail: dict[str, Any]


Action = Literal[
    "opened",
    "attached",
    "raised",
    "inhibited",
    "silenced",
    "re_escalated",
    "acknowledged",
    "resolved",
    "duplicate",
]


@dataclass(frozen=True)
class CaseDecision:
    action: Action
    case: Case | None
    page: Page | None = None
    events: tuple[CaseEvent, ...] = ()
    silence_id: UUID | None = None


SYSTEM = "dispatcher"


def case_id_for(escalation: Escalation) -> UUID:
    return escalation.case_id


def _rules(esc: Escalation) -> list[str]:
    return [r.rule_id for r in esc.reasons]


def _page(case: Case, seq: int, kind: PageKind, reason: str) -> Page:
    return Page(case.case_id, seq, kind, case.target, case.severity, case.ack_deadline, reason)


def on_escalation(
    esc: Escalation,
    open_case: Case | None,
    silences: Sequence[Silence],
    route_for: Callable[[str], RouteDecision],
    *,
    now: datetime,
    page_seq: int,
    meta: dict[str, Any] | None = None,
) -> CaseDecision:
    """Decide what an incoming escalation does to the citizen's case.

    ``route_for(severity)`` computes a route on demand (only when a page is needed).
    ``page_seq`` is the next page number for the case (1 for a new case).
    """
    rules = _rules(esc)
    ack_minutes = max(1, round((esc.ack_deadline - esc.created_at) / timedelta(minutes=1)))
    silence = next(
        (s for s in silences if s.matches(esc.citizen_id, rules, esc.severity, now)), None
    )
    base_detail = {
        "escalation_id": str(esc.escalation_id),
        "severity": esc.severity,
        "rules": rules,
    }

    if open_case is None:
        if silence is not None:
            return CaseDecision(
                "silenced",
                None,
                None,
                (
                    CaseEvent(
                        SYSTEM,
                        "silenced",
                        {
                            **base_detail,
                            "silence_id": str(silence.silence_id),
                            "author": silence.author,
                        },
                    ),
                ),
                silence_id=silence.silence_id,
            )
        decision = route_for(esc.severity)
        case = Case(
            case_id=case_id_for(esc),
            citizen_id=esc.citizen_id,
            state=CaseState.NOTIFIED,
            severity=esc.severity,
            chain=decision.chain,
            level=0,
            ack_minutes=ack_minutes,
            ack_deadline=now + timedelta(minutes=ack_minutes),
            opened_at=now,
            updated_at=now,
            detail={**(meta or {}), "rules": rules, "route_steps": list(decision.steps)},
        )
        page = _page(case, page_seq, "new", f"new case: {', '.join(rules)}")
        return CaseDecision(
            "opened",
            case,
            page,
            (
                CaseEvent(SYSTEM, "opened", {**base_detail, "route_steps": list(decision.steps)}),
                CaseEvent(SYSTEM, "paged", {"page_seq": page.page_seq, **page.target.as_dict()}),
            ),
        )

    if SEVERITY_RANK[esc.severity] > SEVERITY_RANK[open_case.severity]:
        decision = route_for(esc.severity)
        raised = replace(
            open_case,
            severity=esc.severity,
            chain=decision.chain,
            level=0,
            state=CaseState.NOTIFIED,
            ack_minutes=ack_minutes,
            ack_deadline=now + timedelta(minutes=ack_minutes),
            updated_at=now,
            detail={
                **open_case.detail,
                "rules": sorted({*open_case.detail.get("rules", []), *rules}),
                "route_steps": list(decision.steps),
            },
        )
        events = [
            CaseEvent(
                SYSTEM,
                "severity_raised",
                {**base_detail, "from": open_case.severity, "route_steps": list(decision.steps)},
            )
        ]
        if silence is not None:
            events.append(CaseEvent(SYSTEM, "silenced", {"silence_id": str(silence.silence_id)}))
            return CaseDecision("raised", raised, None, tuple(events), silence.silence_id)
        page = _page(
            raised,
            page_seq,
            "severity_raised",
            f"severity raised {open_case.severity} -> {esc.severity}",
        )
        events.append(
            CaseEvent(SYSTEM, "paged", {"page_seq": page.page_seq, **page.target.as_dict()})
        )
        return CaseDecision("raised", raised, page, tuple(events))

    attached = replace(
        open_case,
        updated_at=now,
        detail={**open_case.detail, "rules": sorted({*open_case.detail.get("rules", []), *rules})},
    )
    if open_case.tier == "doctor" and esc.route.tier != "doctor":
        return CaseDecision(
            "inhibited",
            attached,
            None,
            (
                CaseEvent(
                    SYSTEM,
                    "inhibited",
                    {
                        **base_detail,
                        "by": "open doctor-level case",
                        "would_route_to": esc.route.tier,
                    },
                ),
            ),
        )
    return CaseDecision(
        "attached",
        attached,
        None,
        (CaseEvent(SYSTEM, "attached", {**base_detail, "note": "same or lower severity"}),),
    )


def escalate_one_rung(
    case: Case,
    now: datetime,
    page_seq: int,
    why: str,
    kind: Literal["re_escalated", "delivery_failed"],
) -> CaseDecision:
    """Move an unacknowledged case one rung up its chain and page that rung."""
    if case.state not in AWAITING_ACK:
        raise TransitionError(f"case is {case.state.value}; nothing to re-escalate")
    level = min(case.level + 1, len(case.chain) - 1)
    repeat = level == case.level
    moved = replace(
        case,
        level=level,
        state=CaseState.RE_ESCALATED,
        ack_deadline=now + timedelta(minutes=case.ack_minutes),
        updated_at=now,
    )
    reason = why + ("; already at the last rung: paging it again" if repeat else "")
    page = _page(moved, page_seq, kind, reason)
    return CaseDecision(
        "re_escalated",
        moved,
        page,
        (
            CaseEvent(
                SYSTEM,
                kind,
                {
                    "from_level": case.level,
                    "to_level": level,
                    "reason": reason,
                    **moved.target.as_dict(),
                },
            ),
            CaseEvent(SYSTEM, "paged", {"page_seq": page_seq, **moved.target.as_dict()}),
        ),
    )


def on_ack_timeout(case: Case, now: datetime, page_seq: int) -> CaseDecision | None:
    """Re-escalate when the acknowledgement deadline has passed; None when it has not."""
    if case.state not in AWAITING_ACK or now < case.ack_deadline:
        return None
    return escalate_one_rung(
        case,
        now,
        page_seq,
        f"not acknowledged within {case.ack_minutes} min",
        "re_escalated",
    )


def on_delivery_failed(case: Case, now: datetime, page_seq: int) -> CaseDecision | None:
    """A push that could not be delivered by its deadline moves the case to the fallback."""
    if case.state not in AWAITING_ACK:
        return None
    return escalate_one_rung(case, now, page_seq, "push undeliverable", "delivery_failed")


def acknowledge(case: Case, actor: str, now: datetime) -> CaseDecision:
    if case.state == CaseState.RESOLVED:
        raise TransitionError("case is resolved")
    if case.state == CaseState.ACKNOWLEDGED:
        return CaseDecision("acknowledged", case, None, ())
    acked = replace(
        case,
        state=CaseState.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=actor,
        updated_at=now,
    )
    return CaseDecision(
        "acknowledged", acked, None, (CaseEvent(actor, "acknowledged", {"level": case.level}),)
    )


def resolve(
    case: Case, actor: str, outcome: Outcome, now: datetime, note: str | None = None
) -> CaseDecision:
    if case.state == CaseState.RESOLVED:
        raise TransitionError("case is already resolved")
    done = replace(
        case,
        state=CaseState.RESOLVED,
        resolved_at=now,
        resolved_by=actor,
        outcome=outcome,
        updated_at=now,
        acknowledged_at=case.acknowledged_at or now,
        acknowledged_by=case.acknowledged_by or actor,
    )
    detail: dict[str, Any] = {"outcome": outcome}
    if note:
        detail["note"] = note
    return CaseDecision("resolved", done, None, (CaseEvent(actor, "resolved", detail),))


def page_id_for(case_id: UUID, page_seq: int) -> UUID:
    """Stable page id, also the webhook idempotency key: the same page is the same key."""
    return uuid5(CASE_NAMESPACE, f"page:{case_id}:{page_seq}")
