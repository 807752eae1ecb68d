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
from uuid import UUID

from dispatcher.cases.pages import Page, PageKind
from dispatcher.contract.events import Escalation
from dispatcher.contract.vocab import (
    AWAITING_ACK,
    SEVERITY_RANK,
    CaseState,
    Outcome,
    Severity,
    Tier,
)
from dispatcher.errors import PermanentError
from dispatcher.routing.router import RouteDecision, Target


class TransitionError(PermanentError, ValueError):
    """An action that the case's state does not allow (e.g. acknowledging a resolved case)."""


@dataclass(frozen=True)
class Case:
    case_id: UUID
    citizen_id: str
    state: CaseState
    severity: Severity
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
    outcome: Outcome | None = None

    @property
    def target(self) -> Target:
        return self.chain[min(self.level, len(self.chain) - 1)]

    @property
    def tier(self) -> Tier:
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
        self, citizen_id: str, rule_ids: Sequence[str], severity: Severity, now: datetime
    ) -> bool:
        if citizen_id != self.citizen_id or not (self.starts_at <= now < self.ends_at):
            return False
        if severity == "critical" and not self.include_critical:
            return False
        return self.rule_id is None or self.rule_id in rule_ids


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


def _rules(esc: Escalation) -> list[str]:
    return [r.rule_id for r in esc.reasons]


def _page(case: Case, seq: int, kind: PageKind, reason: str) -> Page:
    """Page the case's current rung, at its severity and deadline."""
    return Page(case.case_id, seq, kind, case.target, case.severity, case.ack_deadline, reason)


def _paged(page: Page) -> CaseEvent:
    """The case history names who was paged and which page it was."""
    return CaseEvent(SYSTEM, "paged", {"page_seq": page.page_seq, **page.target.as_dict()})


def _ack_minutes(esc: Escalation) -> int:
    """The rules' response time, in whole minutes and at least one.

    The case keeps the minutes rather than the escalation's deadline so every later rung gets
    the same time to acknowledge, counted from when it is paged."""
    return max(1, round((esc.ack_deadline - esc.created_at) / timedelta(minutes=1)))


def _escalation_detail(esc: Escalation, rules: list[str]) -> dict[str, Any]:
    """What every case event about an escalation records, so the history names its cause."""
    return {"escalation_id": str(esc.escalation_id), "severity": esc.severity, "rules": rules}


def _merged_rules(case: Case, rules: list[str]) -> list[str]:
    """The case lists every rule that ever fired for it, once each, in a stable order."""
    return sorted({*case.detail.get("rules", []), *rules})


def _matching_silence(
    esc: Escalation, rules: list[str], silences: Sequence[Silence], now: datetime
) -> Silence | None:
    """The first silence covering this escalation now; it is named on the decision."""
    return next((s for s in silences if s.matches(esc.citizen_id, rules, esc.severity, now)), None)


def _raises_severity(esc: Escalation, case: Case) -> bool:
    """Only a more urgent escalation changes an open case: it may need someone else, sooner."""
    return SEVERITY_RANK[esc.severity] > SEVERITY_RANK[case.severity]


def _inhibits(case: Case, esc: Escalation) -> bool:
    """An open doctor-level case already has the most qualified person on it, so a lower-tier
    page for the same citizen would only add noise (Alertmanager's inhibit rule)."""
    return case.tier == "doctor" and esc.route.tier != "doctor"


def _silenced(esc: Escalation, rules: list[str], silence: Silence) -> CaseDecision:
    """No case and no page, but the escalation is recorded with the silence and its author, so
    what was suppressed, and by whom, stays visible."""
    detail = {
        **_escalation_detail(esc, rules),
        "silence_id": str(silence.silence_id),
        "author": silence.author,
    }
    return CaseDecision(
        "silenced",
        None,
        None,
        (CaseEvent(SYSTEM, "silenced", detail),),
        silence_id=silence.silence_id,
    )


def _open_new(
    esc: Escalation,
    rules: list[str],
    decision: RouteDecision,
    *,
    now: datetime,
    page_seq: int,
    meta: dict[str, Any] | None,
) -> CaseDecision:
    """The citizen's first escalation opens a case at the first rung of its route and pages it;
    the route's reasons go into the case so the history says why this person was chosen."""
    ack_minutes = _ack_minutes(esc)
    case = Case(
        case_id=esc.case_id,
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
    opened = CaseEvent(
        SYSTEM,
        "opened",
        {**_escalation_detail(esc, rules), "route_steps": list(decision.steps)},
    )
    return CaseDecision("opened", case, page, (opened, _paged(page)))


def _raise(
    esc: Escalation,
    rules: list[str],
    case: Case,
    decision: RouteDecision,
    silence: Silence | None,
    *,
    now: datetime,
    page_seq: int,
) -> CaseDecision:
    """A more urgent escalation re-routes the open case at the new severity from rung 0 with
    the new (shorter) deadline, and pages that rung. A silence still holds back the page, but
    the raise itself is recorded: the case must carry its true severity."""
    ack_minutes = _ack_minutes(esc)
    raised = replace(
        case,
        severity=esc.severity,
        chain=decision.chain,
        level=0,
        state=CaseState.NOTIFIED,
        ack_minutes=ack_minutes,
        ack_deadline=now + timedelta(minutes=ack_minutes),
        updated_at=now,
        detail={
            **case.detail,
            "rules": _merged_rules(case, rules),
            "route_steps": list(decision.steps),
        },
    )
    events = [
        CaseEvent(
            SYSTEM,
            "severity_raised",
            {
                **_escalation_detail(esc, rules),
                "from": case.severity,
                "route_steps": list(decision.steps),
            },
        )
    ]
    if silence is not None:
        events.append(CaseEvent(SYSTEM, "silenced", {"silence_id": str(silence.silence_id)}))
        return CaseDecision("raised", raised, None, tuple(events), silence.silence_id)
    page = _page(
        raised, page_seq, "severity_raised", f"severity raised {case.severity} -> {esc.severity}"
    )
    events.append(_paged(page))
    return CaseDecision("raised", raised, page, tuple(events))


def _attach(case: Case, rules: list[str], now: datetime) -> Case:
    """A same-or-lower escalation joins the open case (Alertmanager's group-by citizen): its
    rules are added, nothing else about the case changes."""
    return replace(
        case, updated_at=now, detail={**case.detail, "rules": _merged_rules(case, rules)}
    )


def _inhibited(esc: Escalation, rules: list[str], attached: Case) -> CaseDecision:
    """Joined to the doctor-level case without a page, recording whom it would have paged."""
    detail = {
        **_escalation_detail(esc, rules),
        "by": "open doctor-level case",
        "would_route_to": esc.route.tier,
    }
    return CaseDecision("inhibited", attached, None, (CaseEvent(SYSTEM, "inhibited", detail),))


def _attached(esc: Escalation, rules: list[str], attached: Case) -> CaseDecision:
    """Joined without a page: whoever has the case already knows the citizen needs help."""
    detail = {**_escalation_detail(esc, rules), "note": "same or lower severity"}
    return CaseDecision("attached", attached, None, (CaseEvent(SYSTEM, "attached", detail),))


def on_escalation(
    esc: Escalation,
    open_case: Case | None,
    silences: Sequence[Silence],
    route_for: Callable[[Severity], RouteDecision],
    *,
    now: datetime,
    page_seq: int,
    meta: dict[str, Any] | None = None,
) -> CaseDecision:
    """Decide what an incoming escalation does to the citizen's case.

    ``route_for(severity)`` computes a route on demand (only when a case is opened or raised).
    ``page_seq`` is the next page number for the case (1 for a new case).

    ============  ==================  =========  ==========================================
    open case     escalation          silenced   decision
    ============  ==================  =========  ==========================================
    none          any                 yes        silenced: no case, no page
    none          any                 no         opened: new case, page rung 0
    yes           more severe         either     raised: re-routed; paged unless silenced
    doctor-level  same or lower, not  ignored    inhibited: attached, no page
                  doctor-routed
    yes           same or lower       ignored    attached: no page
    ============  ==================  =========  ==========================================
    """
    rules = _rules(esc)
    silence = _matching_silence(esc, rules, silences, now)
    if open_case is None:
        if silence is not None:
            return _silenced(esc, rules, silence)
        return _open_new(esc, rules, route_for(esc.severity), now=now, page_seq=page_seq, meta=meta)
    if _raises_severity(esc, open_case):
        return _raise(
            esc, rules, open_case, route_for(esc.severity), silence, now=now, page_seq=page_seq
        )
    attached = _attach(open_case, rules, now)
    if _inhibits(open_case, esc):
        return _inhibited(esc, rules, attached)
    return _attached(esc, rules, attached)


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
            _paged(page),
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
