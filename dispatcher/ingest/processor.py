"""The I/O shell around the pure planner: decode, store atomically, then relay the outbox.

Guarantees this module is responsible for:

* A batch is acknowledged to Kafka only after ``handle`` returns, and ``handle`` returns only when
  every message has a durable outcome (audit row, dead letter or known duplicate) in PostgreSQL.
  While PostgreSQL is unavailable it retries with capped backoff: that is the backpressure.
* A batch that fails for a non-transient reason is split and retried message by message; a single
  message that still fails is dead-lettered with the error, so one poison message cannot block a
  partition or take other citizens down with it.
* Outgoing messages are sent from the outbox after the commit; what fails to send stays in the
  outbox for the periodic sweep, so nothing decided is lost.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

import structlog

from dispatcher.clock import utcnow
from dispatcher.contract.events import DeadLetter, FieldError
from dispatcher.contract.vocab import WHOLE_MESSAGE, DeadLetterCategory
from dispatcher.ingest.planner import (
    Accepted,
    BatchPlan,
    Incoming,
    SeenIds,
    decode_batch,
    make_dead_letter,
    plan_batch,
    plan_silence_checks,
    silence_candidates,
)
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import RuleSet, SensorSilenceRule, default_ruleset
from dispatcher.store.batches import Repository, Sender, StoredBatch
from dispatcher.store.retry import RetryPolicy

log = structlog.get_logger(__name__)


class BatchProcessor:
    def __init__(
        self,
        repo: Repository,
        send: Sender,
        metrics: DispatcherMetrics,
        clock: Callable[[], datetime] = utcnow,
        *,
        ruleset: RuleSet | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._repo = repo
        self._send = send
        self._metrics = metrics
        self._clock = clock
        self._ruleset = ruleset or default_ruleset()
        self._retry = retry or RetryPolicy()

    async def handle(self, messages: Sequence[Incoming]) -> list[StoredBatch]:
        """Give every message a durable outcome, then relay what it produced."""
        if not messages:
            return []
        started = time.perf_counter()
        try:
            stored = [await self._store_with_retry(messages)]
        except Exception as exc:
            log.warning("batch_failed_splitting", size=len(messages), error=type(exc).__name__)
            stored = [await self._store_single(m) for m in messages]
        self._metrics.batch_seconds.observe(time.perf_counter() - started)
        for batch in stored:
            self._observe(batch.plan)
            if await self.relay(batch.outbox_ids) and batch.plan.escalations:
                self._metrics.observe_event_to_push(batch.plan, self._clock())
        consumed_at = time.time()
        for topic, n in Counter(msg.topic for msg in messages).items():
            self._metrics.events_consumed.labels(topic).inc(n)
            self._metrics.last_event_timestamp.labels(topic).set(consumed_at)
        return stored

    async def check_silent_sensors(self, limit: int = 5000) -> StoredBatch | None:
        """Timer: escalate high-risk citizens whose sensors went silent (once per episode)."""
        limits = [r.shortest() for r in self._ruleset.enabled() if isinstance(r, SensorSilenceRule)]
        if not limits:
            return None
        now = self._clock()
        # Any kind may be silent once the newest reading of all is older than the shortest
        # limit (a continuous device's minutes); the rules then judge each kind on its own.
        since = now - min(limits)
        ruleset = self._ruleset

        def planner(
            contexts: dict[str, CitizenContext],
        ) -> tuple[list[UUID], Callable[[set[UUID]], BatchPlan]]:
            due = silence_candidates(contexts, now, ruleset=ruleset)
            return list(due), lambda seen: plan_silence_checks(due, seen, now)

        stored = await self._retry.run(
            lambda: self._repo.apply_sensor_scan(since, limit, planner), self._on_store_retry
        )
        self._observe(stored.plan)
        await self.relay(stored.outbox_ids)
        return stored

    async def relay(self, ids: Sequence[int] | None = None, min_age_s: float = 0.0) -> int:
        """Send outbox rows, isolating failures per message; return how many went out.

        A row sent is marked published (never sent again); a row refused for good is parked
        with its reason, counted and logged, and does not hold back the rows after it; a row
        that failed transiently (or a relay that failed as a whole) stays for the sweep."""
        if ids is not None and not ids:
            return 0
        try:
            outcome = await self._repo.relay_outbox(self._send, ids=ids, min_age_s=min_age_s)
        except Exception as exc:
            self._metrics.outbox_failures.inc()
            log.warning("outbox_relay_failed", error=type(exc).__name__, detail=str(exc)[:200])
            return 0
        sent_at = self._clock()
        for m in outcome.sent:
            self._metrics.observe_published(m.topic, m.value, sent_at)
        for p in outcome.parked:
            self._metrics.outbox_parked.labels(p.topic, p.failure.kind).inc()
            log.error(
                "outbox_message_parked",
                outbox_id=p.outbox_id,
                topic=p.topic,
                kind=p.failure.kind,
                reason=p.failure.reason[:200],
            )
        if outcome.left:
            self._metrics.outbox_failures.inc()
            log.warning("outbox_messages_left_for_sweep", count=outcome.left)
        return len(outcome.sent)

    def _on_store_retry(self, exc: BaseException, delay: float) -> None:
        self._metrics.store_retries.inc()
        log.warning(
            "store_unavailable_retrying", error=type(exc).__name__, retry_in_s=round(delay, 2)
        )

    async def _store_with_retry(self, messages: Sequence[Incoming]) -> StoredBatch:
        return await self._retry.run(lambda: self._store_once(messages), self._on_store_retry)

    async def _store_once(self, messages: Sequence[Incoming]) -> StoredBatch:
        """Decode (with the clock read now, so a retry judges timestamps afresh) and store."""
        now = self._clock()
        accepted, dead = decode_batch(messages, now)
        ids = [a.event.event_id for a in accepted]
        citizens = [a.event.citizen_id for a in accepted]
        planner = functools.partial(self._plan, accepted, dead, now=now)
        return await self._repo.apply_batch(ids, citizens, planner)

    def _plan(
        self,
        accepted: list[Accepted],
        dead: list[DeadLetter],
        seen: SeenIds,
        contexts: dict[str, CitizenContext],
        *,
        now: datetime,
    ) -> BatchPlan:
        return plan_batch(accepted, dead, seen, contexts, now, ruleset=self._ruleset)

    async def _store_single(self, msg: Incoming) -> StoredBatch:
        try:
            return await self._store_with_retry([msg])
        except Exception as exc:
            now = self._clock()
            letter = make_dead_letter(
                msg,
                [FieldError(field=WHOLE_MESSAGE, reason=f"{type(exc).__name__}: {str(exc)[:300]}")],
                now,
                None,
                DeadLetterCategory.STORE_ERROR,
            )
            log.error(
                "message_dead_lettered_on_store_error",
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                error=type(exc).__name__,
            )

            def planner(_seen: SeenIds, _ctx: dict[str, CitizenContext]) -> BatchPlan:
                return BatchPlan(dead_letters=[letter])

            return await self._retry.run(
                lambda: self._repo.apply_batch([], [], planner), self._on_store_retry
            )

    def _observe(self, plan: BatchPlan) -> None:
        """Metrics (one label lookup per distinct label set of the batch) and decision logs."""
        m = self._metrics
        for (topic, category), n in Counter(
            (d.source_topic, d.category) for d in plan.dead_letters
        ).items():
            m.events_rejected.labels(topic, category).inc(n)
        for topic, n in Counter(dup.incoming.topic for dup in plan.duplicates).items():
            m.duplicates.labels(topic).inc(n)
        for risk, n in Counter(
            a.assessment.news2.risk for a in plan.audits if a.assessment.news2 is not None
        ).items():
            m.assessments.labels(risk).inc(n)
        for (severity, tier), n in Counter(
            (e.severity, e.route.tier) for e in plan.escalations
        ).items():
            m.escalations.labels(severity, tier).inc(n)
        # Escalated decisions log at info; the rest at debug, skipped whole when debug is off.
        debug = _debug_enabled()
        if not plan.escalations and not debug:
            return
        case_of = {i: str(e.case_id) for e in plan.escalations for i in e.triggered_by}
        for a in plan.audits:
            if not (a.assessment.escalate or debug):
                continue
            with structlog.contextvars.bound_contextvars(
                event_id=str(a.event.event_id), case_id=case_of.get(a.event.event_id)
            ):
                (log.info if a.assessment.escalate else log.debug)(
                    "event_decided",
                    topic=a.incoming.topic,
                    outcome=a.outcome,
                    severity=a.assessment.severity,
                    rules=[r.rule_id for r in a.assessment.reasons],
                )


def _debug_enabled() -> bool:
    """Whether the configured structlog logger would write a debug line."""
    is_enabled_for = getattr(log.bind(), "is_enabled_for", None)
    return True if is_enabled_for is None else bool(is_enabled_for(logging.DEBUG))
