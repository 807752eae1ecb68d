"""THE composition root of a worker process: every I/O object is built here, eagerly, from
``Settings``, before faust starts consuming.

``run_worker`` is all that ``dispatcher worker`` does: create missing topics, apply migrations,
connect the pool, build the batch processor, case manager, webhook sender and delivery worker
(``build_runtime``), wire them to a faust app (``streams.app``) and run it. Nothing is constructed
lazily behind a lock, and nothing is attached to the faust app as an attribute: the agents,
timers and pages receive the ``Runtime`` they use as an argument.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import faust
import structlog

from dispatcher.cases.lifecycle import AckPolicy, CaseDecision
from dispatcher.cases.manager import CaseManager
from dispatcher.config import Settings
from dispatcher.contract.events import DeadLetter
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.notify import DeliveryWorker, WebhookSender, roster_secrets
from dispatcher.observability.logging import configure_logging
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.ops.topics import ensure_topics
from dispatcher.store import db, migrate
from dispatcher.store.batches import PostgresRepository
from dispatcher.streams.sender import FaustSender  # re-exported: tests build one

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """The worker's I/O objects, built once by ``build_runtime`` and closed once by ``close``."""

    settings: Settings
    metrics: DispatcherMetrics
    repo: PostgresRepository
    processor: BatchProcessor
    cases: CaseManager
    sender: WebhookSender
    deliveries: DeliveryWorker
    batches: int = field(default=0)

    async def close(self) -> None:
        await self.deliveries.aclose()
        await self.sender.aclose()
        await self.repo.close()


def observe_attempt(
    metrics: DispatcherMetrics, cases: CaseManager, team_id: str, outcome: str, status: int | None
) -> None:
    """Webhook attempt counters, labelled by tier (a bounded vocabulary), not team."""
    roster = cases.current_roster
    tier = "unknown"
    if roster is not None:
        tier = next((t.tier for t in roster.teams if t.team_id == team_id), "unknown")
    metrics.webhook_attempts.labels(tier).inc()
    if outcome != "delivered":
        reason = "http_error" if status is not None else "no_response"
        metrics.webhook_failures.labels(tier, reason).inc()


def observe_case(metrics: DispatcherMetrics, decision: CaseDecision) -> None:
    """Re-escalation and suppression counters, by severity (and tier)."""
    case = decision.case
    first = decision.events[0].detail if decision.events else {}
    severity = case.severity if case is not None else str(first.get("severity", "unknown"))
    if decision.action == "re_escalated" and case is not None:
        metrics.re_escalations.labels(severity, case.tier).inc()
    elif decision.action in ("silenced", "inhibited"):
        metrics.pages_suppressed.labels(decision.action, severity).inc()


def ack_policy(settings: Settings) -> AckPolicy:
    """What an acknowledgement covers, from the ``DISPATCHER_ACK_*`` and burst settings."""
    return AckPolicy(
        quiet_period=timedelta(minutes=settings.ack_quiet_period_min),
        stale_after=timedelta(hours=settings.ack_stale_after_h),
        burst_window=timedelta(minutes=settings.burst_window_min),
    )


def observe_dead_letter(metrics: DispatcherMetrics, letter: DeadLetter) -> None:
    """A message on acute.escalations the case manager could not use (by category)."""
    metrics.events_rejected.labels(letter.source_topic, letter.category).inc()


async def build_runtime(settings: Settings, app: faust.App, metrics: DispatcherMetrics) -> Runtime:
    """Connect to PostgreSQL and build every collaborator, wired to each other, at once."""
    repo = await PostgresRepository.connect(
        settings.dsn(),
        min_size=settings.worker_pool_min,
        max_size=settings.worker_pool_max,
        fault_exit_after_send=settings.fault_exit_after_outbox_send,  # test only
    )
    processor = BatchProcessor(repo, FaustSender(app), metrics)
    cases = CaseManager(
        repo.pool,
        relay=processor.relay,
        observe=partial(observe_case, metrics),
        on_dead_letter=partial(observe_dead_letter, metrics),
        roster_ttl_s=settings.roster_ttl_s,
        ack_policy=ack_policy(settings),
    )
    sender = WebhookSender(timeout_s=settings.webhook_timeout_s)

    async def relay_after_fail_over() -> None:
        await processor.relay()

    deliveries = DeliveryWorker(
        repo.pool,
        roster_secrets(lambda: cases.current_roster),
        sender,
        cases.fail_over,
        max_in_flight=settings.delivery_max_in_flight,
        batch=settings.delivery_batch,
        observe_attempt=partial(observe_attempt, metrics, cases),
        after_fail_over=relay_after_fail_over,
    )
    return Runtime(settings, metrics, repo, processor, cases, sender, deliveries)


async def prepare_database(settings: Settings) -> list[int]:
    """Apply pending migrations (once, under the migrator's advisory lock)."""
    async with db.connection(settings.dsn()) as conn:
        return await migrate.migrate(conn)


def run_worker(settings: Settings) -> int:
    """``dispatcher worker``: topics, migrations, the runtime, the faust app; run until stopped."""
    from faust.worker import Worker

    from dispatcher.streams.app import create_app, wire

    configure_logging(settings.log_format, settings.log_level)
    ensure_topics(settings.bootstrap(), settings.partitions, settings.replication)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(prepare_database(settings))
    metrics = DispatcherMetrics()
    app = create_app(settings)
    runtime = loop.run_until_complete(build_runtime(settings, app, metrics))
    wire(app, runtime)
    worker = Worker(app, loglevel=settings.log_level.upper(), quiet=True, loop=loop)
    worker.execute_from_commandline()
    return 0
