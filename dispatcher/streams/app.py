"""The faust app of a worker: its broker settings, and ``wire`` that attaches the agents, timers
and web pages to a built ``Runtime`` (``streams/runtime.py`` is the composition root).

Only wiring lives in this package. Decisions are in ``dispatcher.rules``/``dispatcher.ingest``
and the durable side in ``dispatcher.store``. Three faust pitfalls shape it:

* A value decode error restarts an agent, so topics use the ``raw`` serializer and we validate
  bytes ourselves (``dispatcher.ingest.decoding``).
* A message whose agent raised is acked anyway, so the agents use ``noack_take`` and ack a batch
  only after its outcome is in PostgreSQL (``streams/agents.py``).
* Table updates and offset commits are not atomic, so per-citizen context lives in PostgreSQL,
  updated in the same transaction as the decision, not in a changelog-backed faust table.
"""

from __future__ import annotations

import faust

from dispatcher.config import Settings
from dispatcher.streams import agents, health, timers, transport
from dispatcher.streams.runtime import Runtime


def broker_urls(bootstrap: str, scheme: str = transport.SCHEME) -> str:
    return ";".join(f"{scheme}://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def create_app(settings: Settings) -> faust.App:
    """The faust app with our transport and group settings; nothing attached yet."""
    transport.register(settings.fetch_max_wait_ms)
    return faust.App(
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


def wire(app: faust.App, runtime: Runtime) -> None:
    """Attach the two agents, the guarded timers and /healthz, /metrics to ``app``."""
    probes = health.Probes(stale_after_s=runtime.settings.health_stale_after_s)
    agents.install(app, runtime)
    timers.install(app, runtime, probes)
    health.install(app, runtime, probes)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types async receivers loosely
    async def _close(app: faust.App, **kwargs: object) -> None:
        await runtime.close()
