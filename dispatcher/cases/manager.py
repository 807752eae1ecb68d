"""The case manager: escalations in, cases and pages out; deadlines watched from PostgreSQL.

It consumes ``acute.escalations`` (its own agent, keyed by citizen, so one worker owns a
citizen's cases) and, per escalation, in one transaction: recognises a duplicate escalation id,
locks the citizen's open case, applies the pure lifecycle (group, inhibit, silence, route, page)
and stores the case, its history and the page (outbox row for the team's Kafka topic, a
delivery row for its webhook). The deadline scan runs on every worker; ``FOR UPDATE SKIP
LOCKED`` means each overdue case is handled by exactly one of them, and because the deadline is
a column, a worker restart loses nothing.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import structlog

from dispatcher.cases.intake import decode_escalation, store_error
from dispatcher.cases.lifecycle import (
    DEFAULT_ACK_POLICY,
    AckPolicy,
    Case,
    CaseDecision,
    Silence,
    last_rung_backlog,
    on_ack_timeout,
    on_delivery_failed,
    on_escalation,
    on_stale_ack,
)
from dispatcher.clock import utcnow
from dispatcher.contract.events import DeadLetter, Escalation
from dispatcher.contract.topics import ESCALATIONS
from dispatcher.ingest.planner import Incoming
from dispatcher.routing.roster import Roster
from dispatcher.routing.router import RouteDecision, RouteRequest, Target, route
from dispatcher.store import cases as store
from dispatcher.store import db
from dispatcher.store.batches import store_dead_letters
from dispatcher.store.retry import RetryPolicy

log = structlog.get_logger(__name__)

# Overdue cases re-escalated per scan transaction (the rest wait for the next 1 s tick).
DEADLINE_SCAN_LIMIT = 100
T = TypeVar("T")


def _log_case_retry(exc: BaseException, delay: float) -> None:
    log.warning(
        "case_store_unavailable_retrying", error=type(exc).__name__, retry_in_s=round(delay, 2)
    )


@dataclass(frozen=True)
class _Situation:
    """What the lifecycle needs to know about a citizen to decide on an escalation, read in
    the escalation's transaction (the open case locked first)."""

    open_case: Case | None
    silences: list[Silence]
    roster: Roster | None
    context: dict[str, Any]
    load: dict[str, int]
    page_seq: int


class CaseManager:
    """The I/O shell around ``cases.lifecycle``: one transaction per escalation, per deadline
    scan and per fail-over; SQL is in ``store.cases``.

    ``roster_ttl_s``: how long a loaded roster is reused before it is read again.
    ``deadline_scan_limit``: overdue cases handled per scan. ``delivery_deadline``: how long a
    page's webhook delivery is retried before it counts as undeliverable.
    """

    def __init__(
        self,
        pool: db.Pool,
        relay: Callable[[], Any],
        *,
        clock: Callable[[], datetime] = utcnow,
        retry: RetryPolicy | None = None,
        roster_ttl_s: float = 5.0,
        observe: Callable[[CaseDecision], None] | None = None,
        on_dead_letter: Callable[[DeadLetter], None] | None = None,
        deadline_scan_limit: int = DEADLINE_SCAN_LIMIT,
        delivery_deadline: timedelta = store.DEFAULT_DELIVERY_DEADLINE,
        ack_policy: AckPolicy = DEFAULT_ACK_POLICY,
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._roster: Roster | None = None
        self._roster_loaded = 0.0
        self._roster_ttl = roster_ttl_s
        self._observe = observe or (lambda _d: None)
        self._on_dead_letter = on_dead_letter or (lambda _d: None)
        self._deadline_scan_limit = deadline_scan_limit
        self._delivery_deadline = delivery_deadline
        self._ack_policy = ack_policy

    async def roster(self, conn: db.Connection) -> Roster | None:
        """The roster, read again once the cached one is older than ``roster_ttl_s``."""
        if self._roster is None or time.monotonic() - self._roster_loaded > self._roster_ttl:
            self._roster = await store.load_roster(conn)
            self._roster_loaded = time.monotonic()
        return self._roster

    @property
    def current_roster(self) -> Roster | None:
        """The roster as last loaded (refreshed every ``roster_ttl_s`` by the case work)."""
        return self._roster

    async def _retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        return await self._retry.run(work, _log_case_retry)

    async def handle(self, messages: Sequence[Incoming | bytes]) -> list[CaseDecision]:
        """Apply each escalation to its citizen's case; relay the pages once stored.

        Raw bytes are decoded here (``cases.intake``), so no message can crash the agent: one
        that is not a valid escalation, or that PostgreSQL refuses for a non-transient reason
        (a NUL character in a string), is dead-lettered with field, reason and category, and
        the escalations after it are still applied. When this returns, every message has its
        outcome stored (case decision, known duplicate or dead letter): only then does the
        agent acknowledge the batch. Transient store errors are retried, as before."""
        decisions: list[CaseDecision] = []
        dead_lettered = False
        for item in messages:
            msg = item if isinstance(item, Incoming) else Incoming(ESCALATIONS, -1, -1, None, item)
            esc = decode_escalation(msg, self._clock())
            if isinstance(esc, DeadLetter):
                await self._dead_letter(esc)
                dead_lettered = True
                continue
            try:
                decision = await self._retrying(functools.partial(self._apply, esc))
            except Exception as exc:  # not transient: the escalation is poison, not the agent
                await self._dead_letter(store_error(msg, exc, self._clock()))
                dead_lettered = True
                continue
            if decision is not None:
                decisions.append(decision)
                self._observe(decision)
        if dead_lettered or any(d.page is not None for d in decisions):
            await self._relay()
        return decisions

    async def _dead_letter(self, letter: DeadLetter) -> None:
        """Store one dead letter (and its outbox row) durably, retrying transient errors."""

        async def work() -> None:
            async with db.transaction(self._pool) as conn:
                await store_dead_letters(conn, [letter])

        await self._retrying(work)
        self._on_dead_letter(letter)
        log.error(
            "escalation_dead_lettered",
            partition=letter.partition,
            offset=letter.offset,
            category=letter.category,
            field=letter.error.field,
            reason=letter.error.reason[:200],
        )

    async def _apply(self, esc: Escalation) -> CaseDecision | None:
        """One escalation, one transaction: skip a duplicate, else read, decide and store."""
        now = self._clock()
        async with db.transaction(self._pool) as conn:
            if await store.escalation_seen(conn, esc.escalation_id):
                return None
            situation = await self._situation(conn, esc, now)
            decision = self._decide(esc, situation, now)
            await self._store_decision(conn, esc, situation.roster, decision, now)
            case_id = decision.case.case_id if decision.case else None
            log.info(
                "case_decided",
                case_id=str(case_id) if case_id else None,
                escalation_id=str(esc.escalation_id),
                action=decision.action,
                paged=decision.page is not None,
            )
            return decision

    async def _situation(self, conn: db.Connection, esc: Escalation, now: datetime) -> _Situation:
        """Read the citizen's open case (locked), silences, roster, context, load and the next
        page number, in this order."""
        open_case = await store.open_case_for_update(conn, esc.citizen_id)
        silences = await store.active_silences(conn, esc.citizen_id, now)
        roster = await self.roster(conn)
        context = await store.citizen_context(conn, esc.citizen_id)
        load = await store.staff_load(conn) if roster is not None else {}
        seq = await store.next_page_seq(conn, open_case.case_id) if open_case else 1
        return _Situation(open_case, silences, roster, context, load, seq)

    def _decide(self, esc: Escalation, situation: _Situation, now: datetime) -> CaseDecision:
        """The pure lifecycle's verdict, with routing bound to what was read."""
        ctx = situation.context
        meta = {
            "municipality": ctx.get("municipality"),
            "district": ctx.get("district"),
            "competence": esc.route.competence,
        }

        def route_for(severity: str) -> RouteDecision:
            return self._route(esc, severity, ctx, situation.roster, load=situation.load, now=now)

        return on_escalation(
            esc,
            situation.open_case,
            situation.silences,
            route_for,
            now=now,
            page_seq=situation.page_seq,
            meta=meta,
            policy=self._ack_policy,
        )

    async def _store_decision(
        self,
        conn: db.Connection,
        esc: Escalation,
        roster: Roster | None,
        decision: CaseDecision,
        now: datetime,
    ) -> None:
        """The case and its history, what became of the escalation, and the page, if any."""
        case_id = decision.case.case_id if decision.case else None
        if decision.superseded is not None:  # first: the index allows one current case
            await store.save_case(conn, decision.superseded)
            await store.append_events(
                conn, decision.superseded.case_id, decision.superseded_events, now
            )
        if decision.case is not None:
            await store.save_case(conn, decision.case)
            await store.append_events(conn, decision.case.case_id, decision.events, now)
        await store.record_escalation(
            conn, esc.escalation_id, case_id, esc.citizen_id, decision.action, decision.silence_id
        )
        if decision.page is not None and decision.case is not None:
            await store.emit_page(
                conn,
                roster,
                decision.case,
                decision.page,
                json.loads(esc.model_dump_json()),
                now,
                self._delivery_deadline,
            )

    @staticmethod
    def _route(
        esc: Escalation,
        severity: str,
        ctx: dict[str, Any],
        roster: Roster | None,
        *,
        load: dict[str, int],
        now: datetime,
    ) -> RouteDecision:
        if roster is None:
            # No roster loaded: the first route from the rules, then the doctor's team name.
            target = Target(esc.route.team, esc.route.tier, None, esc.route.competence)
            return RouteDecision(chain=(target,), steps=("no roster loaded: " + esc.route.reason,))
        req = RouteRequest(
            citizen_id=esc.citizen_id,
            severity=severity,
            competence=esc.route.competence if esc.route.tier != "doctor" else "general_acute",
            municipality=ctx.get("municipality"),
            district=ctx.get("district"),
            palliative=esc.route.tier == "palliative",
        )
        return route(req, roster, now, load=load)

    async def scan_deadlines(self) -> list[CaseDecision]:
        """Re-escalate every case whose acknowledgement deadline has passed, and ask the team of
        every acknowledgement older than ``ack_policy.stale_after`` to resolve or renew it."""
        decisions: list[CaseDecision] = await self._retrying(self._scan_once)
        for d in decisions:
            self._observe(d)
        if decisions:
            await self._relay()
        return decisions

    async def _scan_once(self) -> list[CaseDecision]:
        now = self._clock()
        out: list[CaseDecision] = []
        async with db.transaction(self._pool) as conn:
            overdue = await store.overdue_cases_for_update(conn, now, self._deadline_scan_limit)
            roster = await self.roster(conn) if overdue else None
            for case in overdue:
                seq = await store.next_page_seq(conn, case.case_id)
                decision = on_ack_timeout(case, now, seq)
                if decision is not None:
                    await self._persist_rung(conn, roster, decision, now)
                    out.append(decision)
            out += await self._ask_stale_acks(conn, now)
        return out

    async def _ask_stale_acks(self, conn: db.Connection, now: datetime) -> list[CaseDecision]:
        """The same scan, second part: acknowledgements older than ``stale_after`` ask their
        team to resolve or renew the case, once (``lifecycle.on_stale_ack``)."""
        out: list[CaseDecision] = []
        policy = self._ack_policy
        stale = await store.stale_acks_for_update(
            conn, now - policy.stale_after, self._deadline_scan_limit
        )
        roster = await self.roster(conn) if stale else None
        for case in stale:
            seq = await store.next_page_seq(conn, case.case_id)
            decision = on_stale_ack(case, now, seq, policy)
            if decision is None or decision.case is None or decision.page is None:
                continue
            await store.save_case(conn, decision.case)
            await store.append_events(conn, case.case_id, decision.events, now)
            await store.emit_page(
                conn, roster, decision.case, decision.page, None, now, self._delivery_deadline
            )
            log.info("case_renewal_asked", case_id=str(case.case_id), team=case.team_id)
            out.append(decision)
        return out

    async def case_stats(self) -> tuple[dict[tuple[str, str], int], list[tuple[str, float]]]:
        """Open cases per severity and team; acknowledgement times not yet observed.

        Each acknowledgement is claimed once (``ack_observed_at``), so with several workers
        every acknowledgement lands in exactly one worker's histogram.
        """
        async with db.transaction(self._pool) as conn:
            open_counts = await store.open_case_counts(conn)
            ack_times = await store.claim_ack_times(conn)
        return open_counts, ack_times

    async def last_rung_stats(self) -> dict[str, tuple[int, float]]:
        """Per severity: cases unacknowledged past their last rung's first deadline, and the
        oldest one's seconds since that rung was first paged (``lifecycle.last_rung_backlog``).
        Database-wide, so every worker reports the same numbers."""
        cases = await store.awaiting_at_last_rung(self._pool)
        return {str(sev): stat for sev, stat in last_rung_backlog(cases, self._clock()).items()}

    async def fail_over(
        self, conn: db.Connection, case_id: UUID, now: datetime
    ) -> CaseDecision | None:
        """A push to the case's current target was undeliverable: move to the next rung.

        Runs inside the caller's transaction (the delivery loop's)."""
        case = await store.case_for_update(conn, case_id)
        if case is None:
            return None
        seq = await store.next_page_seq(conn, case.case_id)
        decision = on_delivery_failed(case, now, seq)
        if decision is not None:
            await self._persist_rung(conn, await self.roster(conn), decision, now)
            self._observe(decision)
        return decision

    async def _persist_rung(
        self, conn: db.Connection, roster: Roster | None, decision: CaseDecision, now: datetime
    ) -> None:
        """Store a one-rung move (deadline passed or push undeliverable) and page the rung."""
        case: Case | None = decision.case
        assert case is not None
        assert decision.page is not None
        await store.save_case(conn, case)
        await store.append_events(conn, case.case_id, decision.events, now)
        await store.emit_page(conn, roster, case, decision.page, None, now, self._delivery_deadline)
        log.warning(
            "case_re_escalated",
            case_id=str(case.case_id),
            level=case.level,
            team=case.team_id,
            reason=decision.page.reason,
        )
