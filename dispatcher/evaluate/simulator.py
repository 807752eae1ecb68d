"""The streaming path in memory, on a virtual clock: the real pure core, no Kafka, no PostgreSQL.

This module is the ONE place that mirrors the I/O shell. Each method names the shell code it
stands for; the decisions themselves are never re-implemented, they are the public pure
functions the shell calls:

==============================================  ==============================================
shell (what runs in production)                 here
==============================================  ==============================================
``ingest/processor.py: BatchProcessor``         ``Simulator.deliver``: ``decode_batch`` then
``_store_once`` + ``store/batches.apply_batch``  ``plan_batch`` with the seen ids and contexts
                                                the store would read; the plan "stored" in
                                                dicts; escalations relayed at once
``BatchProcessor.check_silent_sensors``         ``Simulator._silence_scan`` every
(timer ``sensor_silence_scan_s``, 60 s)         ``silence_scan_s``: contexts silent for the
                                                rule's shortest limit, then
                                                ``silence_candidates`` + ``plan_silence_checks``
``cases/manager.py: CaseManager._apply``        ``Simulator._on_escalation``: duplicate id?,
(``_situation``, ``_decide``, ``_route``,       open case, silences, roster, context, staff
``_store_decision``)                            load, next page seq, ``lifecycle.on_escalation``
                                                with the same ``route_for`` and ``meta``
``CaseManager.scan_deadlines`` (timer           ``Simulator._deadline``: ``on_ack_timeout`` at
``deadline_scan_s``, 1 s)                       the case's deadline (the shell: up to 1 s
                                                later); ``Simulator._stale``: ``on_stale_ack``
                                                when an acknowledgement goes stale
``api/cases.py`` ack / resolve                  ``Simulator._ack`` / ``_resolve``:
                                                ``lifecycle.acknowledge`` / ``resolve``, when
                                                the simulated staff (``staff.py``) answer
==============================================  ==============================================

Not mirrored: webhook delivery (every page is delivered, so ``on_delivery_failed`` never runs),
silences (none are set; the hook is there), batching (each message is its own batch, decided at
its arrival time; the shell batches up to a few ms of messages, which changes ``now`` by ms).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import orjson

from dispatcher.cases.lifecycle import (
    DEFAULT_ACK_POLICY,
    Case,
    CaseDecision,
    Silence,
    acknowledge,
    on_ack_timeout,
    on_escalation,
    on_stale_ack,
    resolve,
)
from dispatcher.cases.pages import Page
from dispatcher.contract.events import DeviceProfile, Escalation, SensorKind
from dispatcher.contract.vocab import AWAITING_ACK, CaseState, Outcome
from dispatcher.ingest.planner import (
    AuditRow,
    BatchPlan,
    Incoming,
    decode_batch,
    plan_batch,
    plan_silence_checks,
    silence_candidates,
)
from dispatcher.routing.roster import Roster
from dispatcher.routing.router import RouteDecision, RouteRequest, Target, route
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import RuleSet, SensorSilenceRule, default_ruleset

# The shell's timer periods (``config.Settings`` defaults).
SILENCE_SCAN_S = 60.0
SILENCE_SCAN_LIMIT = 5000  # BatchProcessor.check_silent_sensors(limit=5000)


@dataclass(frozen=True)
class PageRecord:
    """A human notification as the evaluation counts it: a page the lifecycle decided."""

    at: datetime
    citizen_id: str
    case_id: UUID
    page_seq: int
    kind: str
    tier: str
    team_id: str
    staff_id: str | None
    severity: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Response:
    """What the paged person does: acknowledge at ``ack_at`` (None: the page is missed) and
    resolve ``resolve_after`` after acknowledging, with ``outcome``."""

    ack_at: datetime | None
    actor: str
    resolve_after: timedelta
    outcome: Outcome


class Responder(Protocol):
    def respond(self, page: PageRecord) -> Response: ...


@dataclass(frozen=True)
class EscalationRecord:
    at: datetime
    escalation: Escalation
    action: str


@dataclass
class SimulationLog:
    pages: list[PageRecord] = field(default_factory=list)
    escalations: list[EscalationRecord] = field(default_factory=list)
    decisions: list[CaseDecision] = field(default_factory=list)
    dead_letters: int = 0
    duplicates: int = 0
    audits: int = 0
    acknowledged: int = 0
    resolved: int = 0


class Simulator:
    """Feed messages in arrival order with ``deliver``; ``finish`` runs the timers to the end.

    ``observe_audit`` (optional) sees every audit row with its decision time and the citizen's
    context after the batch (the baseline reads NEWS2 from them), without the simulator keeping
    them.
    """

    def __init__(
        self,
        *,
        ruleset: RuleSet | None = None,
        roster: Roster | None = None,
        responder: Responder | None = None,
        silences: Sequence[Silence] = (),
        silence_scan_s: float = SILENCE_SCAN_S,
        observe_audit: Callable[[datetime, AuditRow, CitizenContext | None], None] | None = None,
        keep_decisions: bool = False,
    ) -> None:
        self.ruleset = ruleset or default_ruleset()
        self.roster = roster
        self.responder = responder
        self.silences = list(silences)
        self.log = SimulationLog()
        self._observe_audit = observe_audit
        self._keep_decisions = keep_decisions
        # store/batches: audit_log (seen event ids) and citizen_context
        self.seen: set[UUID] = set()
        self.contexts: dict[str, CitizenContext] = {}
        # store/cases: cases, case_escalations, paged counts
        self.cases: dict[UUID, Case] = {}
        self._open_by_citizen: dict[str, UUID] = {}
        self._unresolved: set[UUID] = set()
        self._escalations_seen: set[UUID] = set()
        self._paged: dict[UUID, int] = {}
        self._page_rules: dict[UUID, tuple[str, ...]] = {}
        # virtual clock and timers
        self.now: datetime | None = None
        self._timers: list[tuple[datetime, str, int, str, Any]] = []
        self._timer_seq = 0
        limits = [r.shortest() for r in self.ruleset.enabled() if isinstance(r, SensorSilenceRule)]
        self._silent_after = min(limits) if limits else None
        self._scan_every = timedelta(seconds=silence_scan_s)
        self._next_scan: datetime | None = None
        self._silence_memo: dict[str, tuple[CitizenContext, datetime]] = {}
        self._silence_rules = [
            r for r in self.ruleset.enabled() if isinstance(r, SensorSilenceRule)
        ]
        self._offset = 0

    # --- the clock -----------------------------------------------------------------------------

    def advance(self, to: datetime) -> None:
        """Run every timer due up to ``to`` (in time order), then set the clock to ``to``.

        At equal times a case timer (deadline, answer) runs before the silence scan, and both
        before a message arriving then: what is overdue at ``now`` is handled first."""
        if self.now is None:
            self.now = to
            self._next_scan = to + self._scan_every
            return
        while True:
            t_timer = self._timers[0][0] if self._timers else None
            t_scan = self._next_scan if self._silent_after is not None else None
            nxt = min((t for t in (t_timer, t_scan) if t is not None), default=None)
            if nxt is None or nxt > to:
                break
            self.now = max(self.now, nxt)
            if t_scan is not None and nxt == t_scan and (t_timer is None or t_scan < t_timer):
                self._silence_scan(nxt)
                self._next_scan = nxt + self._scan_every
            else:
                _, _, _, kind, payload = heapq.heappop(self._timers)
                self._fire(kind, payload, nxt)
        self.now = max(self.now, to)

    def _at(self, when: datetime, kind: str, payload: Any, tie: str = "") -> None:
        """Schedule a timer; at equal times by ``tie`` (deadlines: the case id, as a stable
        stand-in for the scan's unordered ties), then in scheduling order."""
        self._timer_seq += 1
        heapq.heappush(self._timers, (when, tie, self._timer_seq, kind, payload))

    def _fire(self, kind: str, payload: Any, now: datetime) -> None:
        if kind == "deadline":
            self._deadline(payload, now)
        elif kind == "ack":
            self._ack(payload, now)
        elif kind == "resolve":
            self._resolve(payload, now)
        elif kind == "stale":
            self._stale(payload, now)

    def finish(self, until: datetime) -> SimulationLog:
        """Run the timers (deadlines, answers, silence scans) up to ``until``."""
        self.advance(until)
        return self.log

    # --- ingest (ingest/processor.py: BatchProcessor) --------------------------------------

    def deliver(
        self, topic: str, value: bytes, arrived_at: datetime, key: bytes | None = None
    ) -> BatchPlan:
        """One consumed message: decode, plan against the stored state, store, relay.

        ``key`` defaults to the body's ``citizen_id``, as a publisher keys it (a null or other
        key is a dead letter, issue 11 item 5)."""
        self.advance(arrived_at)
        assert self.now is not None
        now = self.now
        self._offset += 1
        if key is None:
            key = _citizen_key(value)
        msg = Incoming(topic, 0, self._offset, key, value)
        accepted, dead = decode_batch([msg], now)
        ids = [a.event.event_id for a in accepted]
        citizens = [a.event.citizen_id for a in accepted]
        # store/batches.apply_batch: seen ids among the batch's, contexts of its citizens
        seen = {i for i in ids if i in self.seen}
        contexts = {c: self.contexts[c] for c in citizens if c in self.contexts}
        plan = plan_batch(accepted, dead, seen, contexts, now, ruleset=self.ruleset)
        self._store(plan, now)
        return plan

    def _store(self, plan: BatchPlan, now: datetime) -> None:
        self.contexts.update(plan.contexts)
        for audit in plan.audits:
            self.seen.add(audit.event.event_id)
            if self._observe_audit is not None:
                self._observe_audit(now, audit, self.contexts.get(audit.event.citizen_id))
        self.log.audits += len(plan.audits)
        self.log.dead_letters += len(plan.dead_letters)
        self.log.duplicates += len(plan.duplicates)
        for esc in plan.escalations:  # the outbox, relayed to acute.escalations at once
            self._on_escalation(esc, now)

    def _silence_scan(self, now: datetime) -> None:
        """BatchProcessor.check_silent_sensors + InMemoryRepository/store.apply_sensor_scan.

        One shortcut, which changes no decision: a context that has not changed since it was
        last checked, at a scan before the next time its answer can change (``_silence_breaks``:
        a kind reaching its limit, the post-discharge window ending), gives the same answer as
        then, already audited (or None); the shell would check it again, the simulator skips it.
        """
        assert self._silent_after is not None
        since = now - self._silent_after
        contexts: dict[str, CitizenContext] = {}
        for c, ctx in self.contexts.items():
            last = ctx.last_sensor_at
            if last is None or last >= since:
                continue
            memo = self._silence_memo.get(c)
            if memo is not None and memo[0] is ctx and now < memo[1]:
                continue
            contexts[c] = ctx
        if not contexts:
            return
        contexts = dict(sorted(contexts.items())[:SILENCE_SCAN_LIMIT])
        due = silence_candidates(contexts, now, ruleset=self.ruleset)
        seen = {i for i in due if i in self.seen}
        self._store(plan_silence_checks(due, seen, now), now)
        for c, ctx in contexts.items():
            breaks = self._silence_breaks(ctx)
            later = [b for b in breaks if b > now] if breaks is not None else [now]
            self._silence_memo[c] = (ctx, min(later, default=datetime.max.replace(tzinfo=UTC)))

    def _silence_breaks(self, ctx: CitizenContext) -> list[datetime] | None:
        """The times at which the silence check of an unchanged ``ctx`` can change its answer
        (each just reached and just passed); None when the rule's shape is not known."""
        out: list[datetime] = []
        try:
            kinds = [SensorKind(k) for k, series in ctx.readings.items() if series]
            if ctx.weights:
                kinds.append(SensorKind.WEIGHT)
            for rule in self._silence_rules:
                for kind in kinds:
                    sample = ctx.latest(kind)
                    if sample is None:
                        continue
                    summary = ctx.sensor_summaries.get(kind.value)
                    profile = summary.profile if summary is not None else DeviceProfile.SPOT_CHECK
                    out.append(sample.at + rule.limit(kind, profile))
                if ctx.last_sensor_at is not None:
                    out.append(ctx.last_sensor_at + timedelta(hours=rule.silent_hours))
            if ctx.discharged_at is not None:
                window = timedelta(days=self.ruleset.context.post_discharge_window_days)
                out += [ctx.discharged_at, ctx.discharged_at + window]
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        tick = timedelta(microseconds=1)
        return [t for b in out for t in (b, b + tick)]

    # --- cases (cases/manager.py: CaseManager) ---------------------------------------------

    def _staff_load(self) -> dict[str, int]:
        """store.cases.staff_load: unresolved cases per staff member."""
        load: dict[str, int] = {}
        for case_id in self._unresolved:
            staff = self.cases[case_id].target.staff_id
            if staff is not None:
                load[staff] = load.get(staff, 0) + 1
        return load

    def _route(
        self,
        esc: Escalation,
        severity: str,
        ctx: CitizenContext | None,
        *,
        load: dict[str, int],
        now: datetime,
    ) -> RouteDecision:
        """CaseManager._route, line for line."""
        if self.roster is None:
            target = Target(esc.route.team, esc.route.tier, None, esc.route.competence)
            return RouteDecision(chain=(target,), steps=("no roster loaded: " + esc.route.reason,))
        req = RouteRequest(
            citizen_id=esc.citizen_id,
            severity=severity,
            competence=esc.route.competence if esc.route.tier != "doctor" else "general_acute",
            municipality=ctx.municipality if ctx else None,
            district=ctx.district if ctx else None,
            palliative=esc.route.tier == "palliative",
        )
        return route(req, self.roster, now, load=load)

    def _on_escalation(self, esc: Escalation, now: datetime) -> CaseDecision | None:
        """CaseManager._apply: one escalation, one decision."""
        if esc.escalation_id in self._escalations_seen:
            return None
        open_id = self._open_by_citizen.get(esc.citizen_id)
        open_case = self.cases[open_id] if open_id is not None else None
        silences = [
            s
            for s in self.silences
            if s.citizen_id == esc.citizen_id and s.starts_at <= now < s.ends_at
        ]
        ctx = self.contexts.get(esc.citizen_id)
        load = self._staff_load() if self.roster is not None else {}
        seq = self._paged.get(open_case.case_id, 0) + 1 if open_case else 1
        meta = {
            "municipality": ctx.municipality if ctx else None,
            "district": ctx.district if ctx else None,
            "competence": esc.route.competence,
        }

        def route_for(severity: str) -> RouteDecision:
            return self._route(esc, severity, ctx, load=load, now=now)

        decision = on_escalation(
            esc, open_case, silences, route_for, now=now, page_seq=seq, meta=meta
        )
        self._escalations_seen.add(esc.escalation_id)
        self.log.escalations.append(EscalationRecord(now, esc, decision.action))
        rules = tuple(r.rule_id for r in esc.reasons)
        self._apply(decision, now, rules)
        return decision

    def _apply(self, decision: CaseDecision, now: datetime, rules: tuple[str, ...] | None) -> None:
        """Store a decision (save_case, emit_page) and hand its page to the staff."""
        if self._keep_decisions:
            self.log.decisions.append(decision)
        if decision.superseded is not None:  # saved first: one current case per citizen
            self._save(decision.superseded, current=False)
        case = decision.case
        if case is None:
            return
        self._save(case, current=case.superseded_by is None)
        page = decision.page
        if page is None:
            return
        if rules is not None:
            self._page_rules[case.case_id] = rules
        self._paged[case.case_id] = self._paged.get(case.case_id, 0) + 1
        self._at(case.ack_deadline, "deadline", (case.case_id, page.page_seq), str(case.case_id))
        record = self._record(page, case, now)
        self.log.pages.append(record)
        if self.responder is not None:
            answer = self.responder.respond(record)
            if answer.ack_at is not None:
                self._at(max(answer.ack_at, now), "ack", (case.case_id, answer))

    def _save(self, case: Case, *, current: bool) -> None:
        self.cases[case.case_id] = case
        if case.state == CaseState.RESOLVED:
            self._unresolved.discard(case.case_id)
            if self._open_by_citizen.get(case.citizen_id) == case.case_id:
                del self._open_by_citizen[case.citizen_id]
            return
        self._unresolved.add(case.case_id)
        if current:
            self._open_by_citizen[case.citizen_id] = case.case_id
        elif self._open_by_citizen.get(case.citizen_id) == case.case_id:
            del self._open_by_citizen[case.citizen_id]

    def _record(self, page: Page, case: Case, now: datetime) -> PageRecord:
        return PageRecord(
            at=now,
            citizen_id=case.citizen_id,
            case_id=case.case_id,
            page_seq=page.page_seq,
            kind=page.kind,
            tier=page.target.tier,
            team_id=page.target.team_id,
            staff_id=page.target.staff_id,
            severity=page.severity,
            rules=self._page_rules.get(case.case_id, ()),
        )

    def _deadline(self, payload: tuple[UUID, int], now: datetime) -> None:
        """CaseManager._scan_once for one case: ``on_ack_timeout`` (None when no longer due)."""
        case_id, page_seq = payload
        case = self.cases.get(case_id)
        if case is None or self._paged.get(case_id, 0) != page_seq:
            return  # a later page set a later deadline
        decision = on_ack_timeout(case, now, self._paged.get(case_id, 0) + 1)
        if decision is not None:
            self._apply(decision, now, None)

    def _ack(self, payload: tuple[UUID, Response], now: datetime) -> None:
        """POST /api/cases/{id}/ack by the paged person."""
        case_id, answer = payload
        case = self.cases.get(case_id)
        if case is None or case.state not in AWAITING_ACK:
            return
        decision = acknowledge(case, answer.actor, now)
        self.log.acknowledged += 1
        self._apply(decision, now, None)
        self._at(now + answer.resolve_after, "resolve", (case_id, answer))
        self._at(now + DEFAULT_ACK_POLICY.stale_after, "stale", case_id)

    def _stale(self, case_id: UUID, now: datetime) -> None:
        """CaseManager._ask_stale_acks for one case: ``on_stale_ack`` (None when not due)."""
        case = self.cases.get(case_id)
        if case is None:
            return
        decision = on_stale_ack(case, now, self._paged.get(case_id, 0) + 1)
        if decision is not None:
            self._apply(decision, now, None)

    def _resolve(self, payload: tuple[UUID, Response], now: datetime) -> None:
        """POST /api/cases/{id}/resolve by whoever acknowledged."""
        case_id, answer = payload
        case = self.cases.get(case_id)
        if case is None or case.state == CaseState.RESOLVED:
            return
        decision = resolve(case, answer.actor, answer.outcome, now)
        self.log.resolved += 1
        self._apply(decision, now, None)


def _citizen_key(value: bytes) -> bytes | None:
    """The Kafka key a publisher sends with ``value``: its ``citizen_id``, when it has one."""
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    cid = body.get("citizen_id") if isinstance(body, dict) else None
    return cid.encode() if isinstance(cid, str) else None
