"""The faust worker: wires the input topics to ``BatchProcessor`` and serves health and metrics.

Only wiring lives here. Decisions are in ``dispatcher.rules``/``dispatcher.ingest.planner`` and the
durable side in ``dispatcher.store``. Three faust pitfalls shape this file:

* A value decode error restarts an agent, so topics use the ``raw`` serializer and we validate
  bytes ourselves (``dispatcher.ingest.decoding``).
* A message whose agent raised is acked anyway, so the agent uses ``noack_take`` and acks a batch
  only after ``BatchProcessor.handle`` returned, i.e. after its outcome is in PostgreSQL.
* Table updates and offset commits are not atomic, so per-citizen context lives in PostgreSQL,
  updated in the same transaction as the decision, not in a changelog-backed faust table.

One agent consumes all three input topics. They share a partition count and the citizen key, so
faust's assignor gives one worker every event of a citizen, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from dispatcher.cases.lifecycle import CaseDecision
from dispatcher.cases.manager import CaseManager
from dispatcher.config import Settings
from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.notify import DeliveryWorker, WebhookSender, roster_secrets
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.batches import PostgresRepository
from dispatcher.streams import transport
from dispatcher.streams.lag import install_lag_metrics

OUTBOX_SWEEP_MIN_AGE_S = 2.0
log = structlog.get_logger(__name__)


def guarded(name: str, fn: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer body that logs its failure and tries again next tick.

    faust crashes the whole worker when a timer raises; a database outage must not do that
    (the agents already hold their batches and retry), so every timer goes through this.
    """

    async def tick() -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("timer_failed", timer=name, error=type(exc).__name__)

    tick.__name__ = tick.__qualname__ = name
    return tick


def broker_urls(bootstrap: str, scheme: str = transport.SCHEME) -> str:
    return ";".join(f"{scheme}://{h.strip()}" for h in bootstrap.split(",") if h.strip())


class Runtime:
    """Lazily built I/O objects shared by the agent, the timer and the web pages."""

    def __init__(self, app: faust.App, settings: Settings, metrics: DispatcherMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._processor: BatchProcessor | None = None
        self._cases: CaseManager | None = None
        self._deliveries: DeliveryWorker | None = None
        self._sender: WebhookSender | None = None
        self.repo: PostgresRepository | None = None
        self.batches = 0

    async def send(self, messages: Sequence[OutboxMessage]) -> None:
        producer = self.app.producer
        futures = [await producer.send(m.topic, m.key, m.value, None, None, None) for m in messages]
        await asyncio.gather(*futures)

    async def processor(self) -> BatchProcessor:
        async with self._lock:
            if self._processor is None:
                self.repo = await PostgresRepository.connect(self.settings.dsn())
                self._processor = BatchProcessor(self.repo, self.send, self.metrics)
            return self._processor

    async def cases(self) -> CaseManager:
        processor = await self.processor()
        async with self._lock:
            if self._cases is None:
                assert self.repo is not None
                self._cases = CaseManager(
                    self.repo.pool, relay=processor.relay, observe=self.observe_case
                )
            return self._cases

    async def deliveries(self) -> DeliveryWorker:
        manager = await self.cases()
        processor = await self.processor()
        async with self._lock:
            if self._deliveries is None:
                assert self.repo is not None
                self._sender = WebhookSender(timeout_s=self.settings.webhook_timeout_s)

                async def relay() -> None:
                    await processor.relay()

                self._deliveries = DeliveryWorker(
                    self.repo.pool,
                    roster_secrets(lambda: manager.current_roster),
                    self._sender,
                    manager.fail_over,
                    observe_attempt=self.observe_attempt,
                    after_fail_over=relay,
                )
            return self._deliveries

    def observe_attempt(self, team_id: str, outcome: str, status: int | None) -> None:
        """Webhook attempt counters, labelled by tier (a bounded vocabulary), not team."""
        roster = self._cases.current_roster if self._cases is not None else None
        tier = "unknown"
        if roster is not None:
            tier = next((t.tier for t in roster.teams if t.team_id == team_id), "unknown")
        self.metrics.webhook_attempts.labels(tier).inc()
        if outcome != "delivered":
            reason = "http_error" if status is not None else "no_response"
            self.metrics.webhook_failures.labels(tier, reason).inc()

    def observe_case(self, decision: CaseDecision) -> None:
        case = decision.case
        first = decision.events[0].detail if decision.events else {}
        severity = case.severity if case is not None else str(first.get("severity", "unknown"))
        if decision.action == "re_escalated" and case is not None:
            self.metrics.re_escalations.labels(severity, case.tier).inc()
        elif decision.action in ("silenced", "inhibited"):
            self.metrics.pages_suppressed.labels(decision.action, severity).inc()

    @property
    def ready(self) -> bool:
        return self._processor is not None

    async def close(self) -> None:
        if self._deliveries is not None:
            await self._deliveries.aclose()
        if self._sender is not None:
            await self._sender.aclose()
        if self.repo is not None:
            await self.repo.close()


def create_app(settings: Settings, metrics: DispatcherMetrics | None = None) -> faust.App:
    """Build the faust app with its agent, outbox sweep timer and web pages."""
    metrics = metrics or DispatcherMetrics()
    transport.register(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=broker_urls(settings.bootstrap()),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        producer_acks=-1,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
        autodiscover=False,
    )
    runtime = Runtime(app, settings, metrics)
    app.dispatcher_runtime = runtime  # type: ignore[attr-defined]

    inputs = app.topic(
        *INPUT_TOPICS,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    @app.agent(inputs, name="citizen-events")
    async def citizen_events(stream: Any) -> None:
        processor = await runtime.processor()
        async for events in stream.noack_take(settings.batch_max, settings.batch_within_s):
            messages = [
                Incoming(
                    topic=e.message.topic,
                    partition=e.message.partition,
                    offset=e.message.offset,
                    key=e.message.key,
                    value=e.message.value,
                )
                for e in events
            ]
            await processor.handle(messages)
            for e in events:
                await stream.ack(e)
            runtime.batches += 1

    escalations = app.topic(
        ESCALATIONS, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )

    @app.agent(escalations, name="case-manager")
    async def case_manager(stream: Any) -> None:
        manager = await runtime.cases()
        async for events in stream.noack_take(settings.batch_max, settings.batch_within_s):
            await manager.handle([e.message.value for e in events])
            for e in events:
                await stream.ack(e)

    async def _sensor_silence_scan() -> None:
        processor = await runtime.processor()
        await processor.check_silent_sensors()

    async def _deadline_scan() -> None:
        manager = await runtime.cases()
        await manager.scan_deadlines()

    async def _case_stats() -> None:
        manager = await runtime.cases()
        open_counts, ack_times = await manager.case_stats()
        metrics.cases_open.clear()
        for (severity, team), n in open_counts.items():
            metrics.cases_open.labels(severity, team).set(n)
        for severity, seconds in ack_times:
            metrics.ack_seconds.labels(severity).observe(seconds)

    install_lag_metrics(app, metrics, interval_s=5.0)

    async def _webhook_delivery() -> None:
        worker = await runtime.deliveries()
        await worker.run_once()

    async def _outbox_sweep() -> None:
        processor = await runtime.processor()
        await processor.relay(min_age_s=OUTBOX_SWEEP_MIN_AGE_S)

    for interval, timer in (
        (settings.sensor_silence_scan_s, _sensor_silence_scan),
        (settings.deadline_scan_s, _deadline_scan),
        (settings.case_stats_s, _case_stats),
        (settings.outbox_sweep_s, _outbox_sweep),
        (settings.webhook_poll_s, _webhook_delivery),
    ):
        name = timer.__name__.lstrip("_")
        app.timer(interval=interval, name=f"dispatcher.{name}")(guarded(name, timer))

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
        consuming = runtime.ready and bool(assigned) and not app.rebalancing
        body = {
            "status": "ok" if consuming else "unavailable",
            "consuming": consuming,
            "assigned_partitions": len(assigned),
            "rebalancing": bool(app.rebalancing),
            "batches": runtime.batches,
        }
        return web.json(body, status=200 if consuming else 503)

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type=, so the full header goes in headers.
        body = generate_latest(metrics.registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers loosely
    async def _close(app: faust.App, **kwargs: Any) -> None:
        await runtime.close()

    return app
