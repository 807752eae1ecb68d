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

Nobody left unacknowledged: the case remembers when its last rung was first paged and how many
pages that rung got (``detail["last_rung"]``). From the ``pages.FALLBACK_AFTER_REPEATS``-th
repeat on, every page says "not acknowledged after K pages over M minutes" and carries the
fallback instruction (``pages.Unacknowledged``); ``last_rung_overdue`` is what the
``dispatcher_cases_last_rung_*`` metrics and their alert count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

from dispatcher.cases.pages import FALLBACK_AFTER_REPEATS, Page, PageKind, Unacknowledged
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
    # The citizen's newer case that took over because this acknowledgement went stale
    # (``AckPolicy.stale_after``); a superseded case no longer takes escalations in.
    superseded_by: UUID | None = None

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
    "renotified",
    "renewal_asked",
    "renewed",
]


@dataclass(frozen=True)
class CaseDecision:
    action: Action
    case: Case | None
    page: Page | None = None
    events: tuple[CaseEvent, ...] = ()
    silence_id: UUID | None = None
    # A stale acknowledged case this decision's new case took over from, with its own events
    # (stored before the new case: the one-open-case-per-citizen index counts only one).
    superseded: Case | None = None
    superseded_events: tuple[CaseEvent, ...] = ()


SYSTEM = "dispatcher"


def _rules(esc: Escalation) -> list[str]:
    return [r.rule_id for r in esc.reasons]


def _page(
    case: Case,
    seq: int,
    kind: PageKind,
    reason: str,
    unacknowledged: Unacknowledged | None = None,
) -> Page:
    """Page the case's current rung, at its severity and deadline."""
    return Page(
        case.case_id,
        seq,
        kind,
        case.target,
        case.severity,
        case.ack_deadline,
        reason,
        unacknowledged,
    )


# ``Case.detail`` key: ``{"since": <ISO time the last rung was first paged>, "pages": <pages
# that rung got since>}``; present only while the case is at the last rung of its chain.
LAST_RUNG = "last_rung"


def at_last_rung(case: Case) -> bool:
    return case.level >= len(case.chain) - 1


def _last_rung_record(case: Case) -> dict[str, Any]:
    record = case.detail.get(LAST_RUNG)
    return record if isinstance(record, dict) else {}


def last_rung_since(case: Case) -> datetime:
    """When the case's last rung was first paged. A case stored before this was recorded
    counts from when its current page went out (its deadline minus its minutes)."""
    since = _last_rung_record(case).get("since")
    if isinstance(since, str):
        try:
            parsed = datetime.fromisoformat(since)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return case.ack_deadline - timedelta(minutes=case.ack_minutes)


def last_rung_pages(case: Case) -> int:
    """Pages the last rung got so far (at least the one that put the case there)."""
    pages = _last_rung_record(case).get("pages")
    return pages if isinstance(pages, int) and not isinstance(pages, bool) and pages > 0 else 1


def _track_last_rung(paged: Case, now: datetime, before: Case | None = None) -> Case:
    """Record the page just decided for ``paged``: a first page of the last rung starts the
    record, a repeat (``before``: the case as it was) counts one more, any other rung drops it."""
    detail = {k: v for k, v in paged.detail.items() if k != LAST_RUNG}
    if at_last_rung(paged):
        if before is None:
            detail[LAST_RUNG] = {"since": now.isoformat(), "pages": 1}
        else:
            detail[LAST_RUNG] = {
                "since": last_rung_since(before).isoformat(),
                "pages": last_rung_pages(before) + 1,
            }
    elif LAST_RUNG not in paged.detail:
        return paged
    return replace(paged, detail=detail)


def unacknowledged_at_last_rung(
    before: Case, now: datetime, fallback_after: int = FALLBACK_AFTER_REPEATS
) -> Unacknowledged | None:
    """What a repeat page of the last rung must say, given the case before it: ``None`` for the
    first ``fallback_after - 1`` repeats, then "not acknowledged after K pages over M minutes"
    with the fallback instruction (K pages of that rung went out before this one)."""
    pages_before = last_rung_pages(before)  # this page is repeat number ``pages_before``
    if pages_before < fallback_after:
        return None
    minutes = int((now - last_rung_since(before)) // timedelta(minutes=1))
    return Unacknowledged(pages_before, max(0, minutes))


def last_rung_overdue(case: Case, now: datetime) -> timedelta | None:
    """How long the last rung of an unacknowledged case has been paged, once that rung's first
    deadline has passed; ``None`` for any other case (acknowledged, lower rung, in time)."""
    if case.state not in AWAITING_ACK or not at_last_rung(case):
        return None
    since = last_rung_since(case)
    if now < since + timedelta(minutes=case.ack_minutes):
        return None
    return now - since


def last_rung_backlog(cases: Sequence[Case], now: datetime) -> dict[Severity, tuple[int, float]]:
    """Per severity: how many cases are overdue at their last rung, and the oldest's age in
    seconds (``last_rung_overdue``); severities with none are absent."""
    out: dict[Severity, tuple[int, float]] = {}
    for case in cases:
        age = last_rung_overdue(case, now)
        if age is None:
            continue
        count, oldest = out.get(case.severity, (0, 0.0))
        out[case.severity] = (count + 1, max(oldest, age.total_seconds()))
    return out


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
    case = _track_last_rung(case, now)
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
    raised = _track_last_rung(raised, now)
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


def _inhibited(
    esc: Escalation, rules: list[str], attached: Case, why: str | None = None
) -> CaseDecision:
    """Joined to the doctor-level case without a page, recording whom it would have paged."""
    detail = {
        **_escalation_detail(esc, rules),
        "by": "open doctor-level case",
        "would_route_to": esc.route.tier,
    }
    if why is not None:
        detail["why"] = why
    return CaseDecision("inhibited", attached, None, (CaseEvent(SYSTEM, "inhibited", detail),))


def _attached(
    esc: Escalation,
    rules: list[str],
    attached: Case,
    why: str | None = None,
    facts: dict[str, Any] | None = None,
) -> CaseDecision:
    """Joined without a page: whoever has the case already knows the citizen needs help."""
    detail = {**_escalation_detail(esc, rules), **(facts or {}), "note": "same or lower severity"}
    if why is not None:
        detail["why"] = why
    return CaseDecision("attached", attached, None, (CaseEvent(SYSTEM, "attached", detail),))


# --- acknowledgement covers what was acknowledged (docs/cases.md) ----------------------------

DEFAULT_QUIET_PERIOD = timedelta(minutes=60)
DEFAULT_STALE_AFTER = timedelta(hours=12)
DEFAULT_BURST_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class AckPolicy:
    """What an acknowledgement covers, and for how long.

    ``quiet_period``: a rule already on an acknowledged case re-notifies its assignee when it
    fires again after at least this long without firing on the case (exactly this long counts).
    ``stale_after``: an acknowledgement this old (the case unresolved) asks its team to resolve
    or renew the case, and from then on a new finding opens a new case. ``burst_window``: the
    firings of one rule less than this long after the first of their burst are counted as one
    burst ("3 x sensor.fall within 2 min"); the burst of a rule never pages on its own.
    """

    quiet_period: timedelta = DEFAULT_QUIET_PERIOD
    stale_after: timedelta = DEFAULT_STALE_AFTER
    burst_window: timedelta = DEFAULT_BURST_WINDOW


DEFAULT_ACK_POLICY = AckPolicy()

# ``Case.detail`` keys. FINDINGS: per rule that fired on the case, ``{count, first_at, last_at,
# burst_since, burst_count}`` (ISO times). RENEWAL: set once a stale acknowledgement was asked
# to be resolved or renewed, ``{asked_at, acknowledged_at, page_seq}``; dropped by the next ack.
FINDINGS = "findings"
RENEWAL = "renewal"


def _span(span: timedelta) -> str:
    """A duration as people read it on a page: minutes below two hours, else hours."""
    minutes = span / timedelta(minutes=1)
    return f"{round(minutes, 1):g} min" if minutes < 120 else f"{round(minutes / 60, 1):g} h"


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _count(record: dict[str, Any], key: str) -> int:
    value = record.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _findings(case: Case | None) -> dict[str, dict[str, Any]]:
    raw = case.detail.get(FINDINGS) if case is not None else None
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, dict)}


def record_findings(
    before: dict[str, dict[str, Any]], rules: Sequence[str], now: datetime, burst_window: timedelta
) -> dict[str, dict[str, Any]]:
    """The case's findings after ``rules`` fired at ``now``: each rule counted once more; its
    burst goes on when the burst began less than ``burst_window`` ago, else a new one starts."""
    out = dict(before)
    for rule in dict.fromkeys(rules):
        old = before.get(rule, {})
        since = _time(old.get("burst_since"))
        in_burst = since is not None and now - since < burst_window
        first = _time(old.get("first_at"))
        out[rule] = {
            "count": _count(old, "count") + 1,
            "first_at": (first or now).isoformat(),
            "last_at": now.isoformat(),
            "burst_since": (since if in_burst and since is not None else now).isoformat(),
            "burst_count": _count(old, "burst_count") + 1 if in_burst else 1,
        }
    return out


def finding_summary(rule: str, record: dict[str, Any]) -> str:
    """A burst as "3 x sensor.fall within 2 min", the rule alone for a single firing, and the
    case's total when earlier bursts came before."""
    burst, total = _count(record, "burst_count"), _count(record, "count")
    since, last = _time(record.get("burst_since")), _time(record.get("last_at"))
    text = rule
    if burst > 1 and since is not None and last is not None:
        minutes = max(1, math.ceil((last - since) / timedelta(minutes=1)))
        text = f"{burst} x {rule} within {minutes} min"
    if total > max(burst, 1):
        text += f" ({total} in all on this case)"
    return text


def findings_view(case: Case) -> list[dict[str, Any]]:
    """Every rule counted on the case with its summary, by rule id (pages and the API)."""
    return [
        {"rule_id": rule, **record, "summary": finding_summary(rule, record)}
        for rule, record in sorted(_findings(case).items())
    ]


def lapsed(case: Case, now: datetime, policy: AckPolicy = DEFAULT_ACK_POLICY) -> bool:
    """An acknowledged, unresolved case whose acknowledgement is ``stale_after`` old or older:
    it no longer covers new findings (they open a new case)."""
    return (
        case.state == CaseState.ACKNOWLEDGED
        and case.acknowledged_at is not None
        and now >= case.acknowledged_at + policy.stale_after
    )


def _acked_by(case: Case) -> str:
    at = case.acknowledged_at.isoformat() if case.acknowledged_at else "an unknown time"
    return f"{case.acknowledged_by or 'its assignee'} at {at}"


def _not_covered(
    case: Case,
    rules: list[str],
    before: dict[str, dict[str, Any]],
    now: datetime,
    policy: AckPolicy,
) -> tuple[str | None, dict[str, Any]]:
    """Why the acknowledgement of ``case`` does not cover these findings (``None``: it covers
    them), and the facts behind it: rules new to the case, and rules quiet for at least the
    quiet period (a rule without a record counts from when the case was opened)."""
    seen = {*case.detail.get("rules", []), *before}
    fired = list(dict.fromkeys(rules))
    new = [r for r in fired if r not in seen]
    quiet = {
        r: now - (_time(before.get(r, {}).get("last_at")) or case.opened_at)
        for r in fired
        if r not in new
    }
    recurring = [r for r, gap in quiet.items() if gap >= policy.quiet_period]
    facts: dict[str, Any] = {
        "new_rules": new,
        "recurring_rules": recurring,
        "quiet_for_min": {r: round(g / timedelta(minutes=1), 1) for r, g in quiet.items()},
        "quiet_period_min": policy.quiet_period / timedelta(minutes=1),
        "acknowledged_by": case.acknowledged_by,
        "acknowledged_at": case.acknowledged_at.isoformat() if case.acknowledged_at else None,
    }
    parts: list[str] = []
    if new:
        parts.append(
            f"new finding {', '.join(new)}: not on the case when {_acked_by(case)} acknowledged it"
        )
    if recurring:
        again = ", ".join(f"{r} again after {_span(quiet[r])} quiet" for r in recurring)
        parts.append(f"{again} (quiet period {_span(policy.quiet_period)})")
    return ("; ".join(parts) if parts else None), facts


def _renotify(
    esc: Escalation,
    rules: list[str],
    case: Case,
    why: str,
    facts: dict[str, Any],
    *,
    silence: Silence | None,
    now: datetime,
    page_seq: int,
) -> CaseDecision:
    """A finding the acknowledgement did not cover: the assignee (the case's current rung) gets
    an ``update`` page with a new deadline and the case awaits acknowledgement again, so the
    deadline scan re-escalates it if nobody acknowledges the update. A matching silence holds
    the page back, and says so."""
    attached = _attach(case, rules, now)
    detail: dict[str, Any] = {**_escalation_detail(esc, rules), **facts, "why": why}
    if silence is not None:
        detail.update(
            why=f"{why}; the update page is held back by a silence",
            silence_id=str(silence.silence_id),
            author=silence.author,
        )
        return CaseDecision(
            "silenced",
            attached,
            None,
            (CaseEvent(SYSTEM, "silenced", detail),),
            silence_id=silence.silence_id,
        )
    if _inhibits(case, esc):
        detail["note"] = (
            f"routed to {esc.route.tier}; the doctor-level case's assignee is told instead"
        )
    # A new unacknowledged period starts with this page: at the last rung its count restarts.
    updated = replace(
        attached,
        state=CaseState.NOTIFIED,
        ack_deadline=now + timedelta(minutes=case.ack_minutes),
    )
    updated = _track_last_rung(updated, now)
    page = _page(updated, page_seq, "update", f"update: {why}")
    return CaseDecision(
        "renotified",
        updated,
        page,
        (CaseEvent(SYSTEM, "renotified", detail), _paged(page)),
    )


def _supersede(
    esc: Escalation,
    rules: list[str],
    stale: Case,
    silence: Silence | None,
    route_for: Callable[[Severity], RouteDecision],
    *,
    now: datetime,
    meta: dict[str, Any] | None,
    policy: AckPolicy,
) -> CaseDecision:
    """A finding for a citizen whose acknowledged case went stale opens a new case (its first
    page is page 1 of the new case); the stale case is marked superseded by it and stays
    unresolved for its team to resolve. A matching silence: no new case, as for any citizen."""
    if silence is not None:
        return _silenced(esc, rules, silence)
    case_id = esc.case_id
    if case_id == stale.case_id:  # never: case ids derive from the event; kept total anyway
        case_id = uuid5(stale.case_id, f"supersede:{esc.escalation_id}")
    assert stale.acknowledged_at is not None  # lapsed() holds
    why = (
        f"the citizen's case {stale.case_id} was acknowledged by {_acked_by(stale)} and left "
        f"unresolved for {_span(now - stale.acknowledged_at)} (the acknowledgement covers "
        f"{_span(policy.stale_after)}): a new finding opens a new case"
    )
    opened = _open_new(
        esc.model_copy(update={"case_id": case_id}),
        rules,
        route_for(esc.severity),
        now=now,
        page_seq=1,
        meta=meta,
    )
    assert opened.case is not None
    assert opened.page is not None
    new_case = replace(opened.case, detail={**opened.case.detail, "supersedes": str(stale.case_id)})
    page = replace(
        opened.page,
        reason=f"{opened.page.reason}; supersedes case {stale.case_id} (acknowledged "
        f"{_span(now - stale.acknowledged_at)} ago, never resolved: resolve it)",
    )
    first, *rest = opened.events
    events = (
        CaseEvent(
            first.actor,
            first.action,
            {**first.detail, "supersedes": str(stale.case_id), "why": why},
        ),
        *rest,
    )
    superseded = replace(stale, superseded_by=case_id, updated_at=now)
    gone = CaseEvent(
        SYSTEM,
        "superseded",
        {**_escalation_detail(esc, rules), "by_case": str(case_id), "why": why},
    )
    return replace(
        opened,
        case=new_case,
        page=page,
        events=events,
        superseded=superseded,
        superseded_events=(gone,),
    )


def _with_findings(decision: CaseDecision, findings: dict[str, dict[str, Any]]) -> CaseDecision:
    """The decided case carries the counted findings (pages and the API show them)."""
    if decision.case is None:
        return decision
    case = replace(decision.case, detail={**decision.case.detail, FINDINGS: findings})
    return replace(decision, case=case)


def _explained(decision: CaseDecision, why: str) -> CaseDecision:
    """The decision's first event says why."""
    if not decision.events:
        return decision
    first, *rest = decision.events
    return replace(
        decision, events=(CaseEvent(first.actor, first.action, {**first.detail, "why": why}), *rest)
    )


def on_escalation(
    esc: Escalation,
    open_case: Case | None,
    silences: Sequence[Silence],
    route_for: Callable[[Severity], RouteDecision],
    *,
    now: datetime,
    page_seq: int,
    meta: dict[str, Any] | None = None,
    policy: AckPolicy = DEFAULT_ACK_POLICY,
) -> CaseDecision:
    """Decide what an incoming escalation does to the citizen's case.

    ``route_for(severity)`` computes a route on demand (only when a case is opened or raised).
    ``page_seq`` is the next page number for the case (1 for a new case). ``policy``: what an
    acknowledgement covers (quiet period, stale-after, burst window). Every rule that fires is
    counted on the case (``detail["findings"]``, bursts collapsed), whatever the decision.

    =============  ==================  =========  ==========================================
    open case      escalation          silenced   decision
    =============  ==================  =========  ==========================================
    none           any                 yes        silenced: no case, no page
    none           any                 no         opened: new case, page rung 0
    acknowledged   any                 yes        silenced: no case, no page
    >= stale_after
    acknowledged   any                 no         opened: a new case, page rung 0; the stale
    >= stale_after                                case is marked superseded by it
    yes            more severe         either     raised: re-routed; paged unless silenced
    acknowledged   same or lower: a    no         renotified: ``update`` page to the current
                   new rule, or a rule            rung, new deadline, awaits ack again
                   quiet >= quiet_                (inhibition does not apply: the assignee
                   period                         of a doctor-level case is told)
    acknowledged   same, as above      yes        silenced: attached, no page
    acknowledged   same or lower,      ignored    attached: counted, no page
                   rules fired within
                   the quiet period
    awaiting ack,  same or lower, not  ignored    inhibited: attached, counted, no page
    doctor-level   doctor-routed
    awaiting ack   same or lower       ignored    attached: counted, no page
    =============  ==================  =========  ==========================================
    """
    rules = _rules(esc)
    silence = _matching_silence(esc, rules, silences, now)
    if open_case is not None and lapsed(open_case, now, policy):
        decision = _supersede(
            esc, rules, open_case, silence, route_for, now=now, meta=meta, policy=policy
        )
        return _with_findings(decision, record_findings({}, rules, now, policy.burst_window))
    before = _findings(open_case)
    after = record_findings(before, rules, now, policy.burst_window)
    decision = _on_current_case(
        esc, rules, open_case, silence, route_for, before, after, now, page_seq, meta, policy
    )
    return _with_findings(decision, after)


def _on_current_case(  # noqa: PLR0917 - on_escalation's inputs, passed through once
    esc: Escalation,
    rules: list[str],
    open_case: Case | None,
    silence: Silence | None,
    route_for: Callable[[Severity], RouteDecision],
    before: dict[str, dict[str, Any]],
    after: dict[str, dict[str, Any]],
    now: datetime,
    page_seq: int,
    meta: dict[str, Any] | None,
    policy: AckPolicy,
) -> CaseDecision:
    """``on_escalation`` for a citizen without a case or with a current (not stale) one."""
    if open_case is None:
        if silence is not None:
            return _silenced(esc, rules, silence)
        return _open_new(esc, rules, route_for(esc.severity), now=now, page_seq=page_seq, meta=meta)
    acknowledged = open_case.state == CaseState.ACKNOWLEDGED
    if _raises_severity(esc, open_case):
        raised = _raise(
            esc, rules, open_case, route_for(esc.severity), silence, now=now, page_seq=page_seq
        )
        raised_why = f"severity {open_case.severity} -> {esc.severity}: re-routed at it"
        if acknowledged:
            raised_why += (
                f"; the acknowledgement by {_acked_by(open_case)} covered {open_case.severity}"
            )
        return _explained(raised, raised_why)
    counted = "; ".join(finding_summary(r, after[r]) for r in dict.fromkeys(rules))
    attached = _attach(open_case, rules, now)
    if acknowledged:
        why, facts = _not_covered(open_case, rules, before, now, policy)
        if why is not None:
            return _renotify(
                esc, rules, open_case, why, facts, silence=silence, now=now, page_seq=page_seq
            )
        covered = (
            f"{', '.join(dict.fromkeys(rules))} fired again within the "
            f"{_span(policy.quiet_period)} quiet period: covered by the acknowledgement by "
            f"{_acked_by(open_case)}; counted: {counted}"
        )
        return _attached(esc, rules, attached, covered, facts)
    waiting = (
        f"the case awaits acknowledgement ({open_case.state.value}): the page already out and "
        f"its re-escalation cover it; counted: {counted}"
    )
    if _inhibits(open_case, esc):
        return _inhibited(esc, rules, attached, waiting)
    return _attached(esc, rules, attached, waiting)


def on_stale_ack(
    case: Case, now: datetime, page_seq: int, policy: AckPolicy = DEFAULT_ACK_POLICY
) -> CaseDecision | None:
    """Ask the team of an acknowledgement gone stale (``policy.stale_after``, case unresolved)
    to resolve or renew the case: one ``resolve_or_renew`` page to the current rung, once per
    acknowledgement (``detail["renewal"]``). ``None`` when the case is not stale, was asked
    already or was superseded. The page needs no acknowledgement: nothing re-escalates it."""
    if not lapsed(case, now, policy) or case.superseded_by is not None or RENEWAL in case.detail:
        return None
    assert case.acknowledged_at is not None  # lapsed() holds
    reason = (
        f"acknowledged by {_acked_by(case)}, {_span(now - case.acknowledged_at)} ago, and still "
        f"unresolved: resolve it, or acknowledge it again to renew it for "
        f"{_span(policy.stale_after)}; until then any new finding for the citizen opens a new case"
    )
    asked = replace(
        case,
        updated_at=now,
        detail={
            **case.detail,
            RENEWAL: {
                "asked_at": now.isoformat(),
                "acknowledged_at": case.acknowledged_at.isoformat(),
                "page_seq": page_seq,
            },
        },
    )
    page = replace(_page(asked, page_seq, "resolve_or_renew", reason), ack_deadline=now)
    event = CaseEvent(
        SYSTEM,
        "renewal_asked",
        {
            "why": reason,
            "acknowledged_by": case.acknowledged_by,
            "acknowledged_at": case.acknowledged_at.isoformat(),
            "stale_after_h": policy.stale_after / timedelta(hours=1),
        },
    )
    return CaseDecision("renewal_asked", asked, page, (event, _paged(page)))


def escalate_one_rung(
    case: Case,
    now: datetime,
    page_seq: int,
    why: str,
    kind: Literal["re_escalated", "delivery_failed"],
    *,
    fallback_after: int = FALLBACK_AFTER_REPEATS,
) -> CaseDecision:
    """Move an unacknowledged case one rung up its chain and page that rung.

    At the last rung the same rung is paged again; from the ``fallback_after``-th repeat on the
    page says how many pages over how many minutes went unanswered and carries the fallback
    instruction (``pages.Unacknowledged``)."""
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
    moved = _track_last_rung(moved, now, case if repeat else None)
    unacked = unacknowledged_at_last_rung(case, now, fallback_after) if repeat else None
    reason = why + ("; already at the last rung: paging it again" if repeat else "")
    if unacked is not None:
        reason += f"; {unacked.summary}. {unacked.instruction}"
    page = _page(moved, page_seq, kind, reason, unacked)
    detail: dict[str, Any] = {
        "from_level": case.level,
        "to_level": level,
        "reason": reason,
        **moved.target.as_dict(),
    }
    if unacked is not None:
        detail["unacknowledged"] = unacked.as_dict()
    return CaseDecision(
        "re_escalated", moved, page, (CaseEvent(SYSTEM, kind, detail), _paged(page))
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
    """Acknowledge: covers the case's findings as they are now (``detail["rules"]``), so a
    later new or recurring finding re-notifies (``on_escalation``). Idempotent on an
    acknowledged case, except that it renews one whose team was asked to resolve or renew it
    (``on_stale_ack``). A superseded case cannot be renewed: its successor took over."""
    if case.state == CaseState.RESOLVED:
        raise TransitionError("case is resolved")
    if case.superseded_by is not None:
        raise TransitionError(
            f"case was superseded by case {case.superseded_by} (its acknowledgement went "
            "stale); resolve it"
        )
    rest = {k: v for k, v in case.detail.items() if k != RENEWAL}
    if case.state == CaseState.ACKNOWLEDGED:
        renewal = case.detail.get(RENEWAL)
        if renewal is None:
            return CaseDecision("acknowledged", case, None, ())
        renewed = replace(
            case, acknowledged_at=now, acknowledged_by=actor, updated_at=now, detail=rest
        )
        why = "acknowledged again after the team was asked to resolve or renew it: renewed"
        detail = {
            "why": why,
            "asked": renewal,
            "previous_ack": {
                "by": case.acknowledged_by,
                "at": case.acknowledged_at.isoformat() if case.acknowledged_at else None,
            },
            "covers": list(case.detail.get("rules", [])),
        }
        return CaseDecision("renewed", renewed, None, (CaseEvent(actor, "renewed", detail),))
    acked = replace(
        case,
        state=CaseState.ACKNOWLEDGED,
        acknowledged_at=now,
        acknowledged_by=actor,
        updated_at=now,
        detail=rest,
    )
    detail = {"level": case.level, "covers": list(case.detail.get("rules", []))}
    return CaseDecision("acknowledged", acked, None, (CaseEvent(actor, "acknowledged", detail),))


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
