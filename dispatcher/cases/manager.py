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
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import structlog
from pydantic import ValidationError

from dispatcher.cases.lifecycle import (
    Case,
    CaseDecision,
    on_ack_timeout,
    on_delivery_failed,
    on_escalation,
)
from dispatcher.clock import utcnow
from dispatcher.contract.events import Escalation
from dispatcher.routing.roster import Roster
from dispatcher.routing.router import RouteDecision, RouteRequest, Target, route
from dispatcher.store import cases as store
from dispatcher.store.retry import RetryPolicy

log = structlog.get_logger(__name__)

DEADLINE_SCAN_LIMIT = 100
T = TypeVar("T")


def _log_case_retry(exc: BaseException, delay: float) -> None:
    log.warning(
        "case_store_unavailable_retrying", error=type(exc).__name__, retry_in_s=round(delay, 2)
    )


class CaseManager:
    def __init__(
        self,
        pool: asyncpg.Pool,
        relay: Callable[[], Any],
        *,
        clock: Callable[[], datetime] = utcnow,
        retry: RetryPolicy | None = None,
        roster_ttl_s: float = 5.0,
        observe: Callable[[CaseDecision], None] | None = None,
    ) -> None:
        self._pool = pool
        self._relay = relay
        self._clock = clock
        self._retry = retry or RetryPolicy()
        self._roster: Roster | None = None
        self._roster_loaded = 0.0
        self._roster_ttl = roster_ttl_s
        self._observe = observe or (lambda _d: None)

    async def roster(self, conn: asyncpg.Connection) -> Roster | None:
        if self._roster is None or time.monotonic() - self._roster_loaded > self._roster_ttl:
            self._roster = await store.load_roster(conn)
            self._roster_loaded = time.monotonic()
        return self._roster

    @property
    def current_roster(self) -> Roster | None:
        """The roster as last loaded (refreshed every ``roster_ttl_s`` by the case work)."""
        return self._roster

    def invalidate_roster(self) -> None:
        self._roster = None

    async def _retrying(self, work: Callable[[], Awaitable[T]]) -> T:
        return await self._retry.run(work, _log_case_retry)

    async def handle(self, raw_escalations: Sequence[bytes]) -> list[CaseDecision]:
        """Apply each escalation to its citizen's case; relay the pages once stored."""
        decisions: list[CaseDecision] = []
        for raw in raw_escalations:
            try:
                esc = Escalation.model_validate_json(raw)
            except ValidationError as exc:
                # Our own output topic: an invalid message is a bug or a foreign producer.
                log.error("escalation_invalid", error=str(exc.errors()[0]["loc"]))
                continue
            decision = await self._retrying(functools.partial(self._apply, esc))
            if decision is not None:
                decisions.append(decision)
                self._observe(decision)
        if any(d.page is not None for d in decisions):
            await self._relay()
        return decisions

    async def _apply(self, esc: Escalation) -> CaseDecision | None:
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            seen = await conn.fetchval(
                "SELECT 1 FROM case_escalations WHERE escalation_id = $1", esc.escalation_id
            )
            if seen:
                return None
            open_case = await store.open_case_for_update(conn, esc.citizen_id)
            silences = await store.active_silences(conn, esc.citizen_id, now)
            roster = await self.roster(conn)
            ctx_raw = await conn.fetchval(
                "SELECT context FROM citizen_context WHERE citizen_id = $1", esc.citizen_id
            )
            ctx = json.loads(ctx_raw) if ctx_raw else {}
            load = await store.staff_load(conn) if roster is not None else {}
            seq = await store.next_page_seq(conn, open_case.case_id) if open_case else 1
            meta = {
                "municipality": ctx.get("municipality"),
                "district": ctx.get("district"),
                "competence": esc.route.competence,
            }

            def route_for(severity: str) -> RouteDecision:
                return self._route(esc, severity, ctx, roster, load=load, now=now)

            decision = on_escalation(
                esc, open_case, silences, route_for, now=now, page_seq=seq, meta=meta
            )
            case_id = decision.case.case_id if decision.case else None
            if decision.case is not None:
                await store.save_case(conn, decision.case)
                await store.append_events(conn, decision.case.case_id, decision.events, now)
            await conn.execute(
                "INSERT INTO case_escalations (escalation_id, case_id, citizen_id, action, "
                "silence_id) VALUES ($1, $2, $3, $4, $5)",
                esc.escalation_id,
                case_id,
                esc.citizen_id,
                decision.action,
                decision.silence_id,
            )
            if decision.page is not None and decision.case is not None:
                await store.emit_page(
                    conn,
                    roster,
                    decision.case,
                    decision.page,
                    json.loads(esc.model_dump_json()),
                    now,
                )
            log.info(
                "case_decided",
                case_id=str(case_id) if case_id else None,
                escalation_id=str(esc.escalation_id),
                action=decision.action,
                paged=decision.page is not None,
            )
            return decision

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
        """Re-escalate every case whose acknowledgement deadline has passed."""
        decisions: list[CaseDecision] = await self._retrying(self._scan_once)
        for d in decisions:
            self._observe(d)
        if decisions:
            await self._relay()
        return decisions

    async def _scan_once(self) -> list[CaseDecision]:
        now = self._clock()
        out: list[CaseDecision] = []
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT {store.CASE_COLUMNS} FROM cases "  # noqa: S608 - constant column list
                "WHERE state IN ('open', 'notified', 're_escalated') AND ack_deadline <= $1 "
                "ORDER BY ack_deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
                now,
                DEADLINE_SCAN_LIMIT,
            )
            roster = await self.roster(conn) if rows else None
            for row in rows:
                case = store.case_from_row(row)
                seq = await store.next_page_seq(conn, case.case_id)
                decision = on_ack_timeout(case, now, seq)
                if decision is not None:
                    await self._persist_rung(conn, roster, decision, now)
                    out.append(decision)
        return out

    async def case_stats(self) -> tuple[dict[tuple[str, str], int], list[tuple[str, float]]]:
        """Open cases per severity and team; acknowledgement times not yet observed.

        Each acknowledgement is claimed once (``ack_observed_at``), so with several workers
        every acknowledgement lands in exactly one worker's histogram.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT severity, team_id, count(*) AS n FROM cases WHERE state <> 'resolved' "
                "GROUP BY severity, team_id"
            )
            acked = await conn.fetch(
                "UPDATE cases SET ack_observed_at = now() WHERE case_id IN ("
                " SELECT case_id FROM cases WHERE acknowledged_at IS NOT NULL"
                " AND ack_observed_at IS NULL LIMIT 1000 FOR UPDATE SKIP LOCKED)"
                " RETURNING severity, extract(epoch FROM acknowledged_at - opened_at) AS s"
            )
        return (
            {(r["severity"], r["team_id"]): int(r["n"]) for r in rows},
            [(r["severity"], max(0.0, float(r["s"]))) for r in acked],
        )

    async def fail_over(
        self, conn: asyncpg.Connection, case_id: UUID, now: datetime
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

    @staticmethod
    async def _persist_rung(
        conn: asyncpg.Connection, roster: Roster | None, decision: CaseDecision, now: datetime
    ) -> None:
        case: Case | None = decision.case
        assert case is not None
        assert decision.page is not None
        await store.save_case(conn, case)
        await store.append_events(conn, case.case_id, decision.events, now)
        await store.emit_page(conn, roster, case, decision.page, None, now)
        log.warning(
            "case_re_escalated",
            case_id=str(case.case_id),
            level=case.level,
            team=case.team_id,
            reason=decision.page.reason,
        )
