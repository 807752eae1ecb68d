"""The two agents: input events -> ``BatchProcessor``, escalations -> ``CaseManager``.

One agent consumes all three input topics. They share a partition count and the citizen key, so
faust's assignor gives one worker every event of a citizen, in order. Both agents take raw bytes
with ``noack_take`` and ack a batch only after the shell returned, i.e. after its outcome is
stored in PostgreSQL: a crash re-delivers, it never skips.
"""

from __future__ import annotations

from typing import Any

import faust

from dispatcher.contract.topics import ESCALATIONS, INPUT_TOPICS
from dispatcher.ingest.planner import Incoming
from dispatcher.streams.runtime import Runtime


def incoming(events: list[Any]) -> list[Incoming]:
    """faust events as the raw messages the shells take: bytes with their coordinates."""
    return [
        Incoming(
            topic=e.message.topic,
            partition=e.message.partition,
            offset=e.message.offset,
            key=e.message.key,
            value=e.message.value,
        )
        for e in events
    ]


def install(app: faust.App, runtime: Runtime) -> None:
    settings = runtime.settings
    inputs = app.topic(
        *INPUT_TOPICS,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    @app.agent(inputs, name="citizen-events")
    async def citizen_events(stream: Any) -> None:
        async for events in stream.noack_take(settings.batch_max, settings.batch_within_s):
            messages = incoming(events)
            await runtime.processor.handle(messages)
            for e in events:
                await stream.ack(e)
            runtime.batches += 1

    escalations = app.topic(
        ESCALATIONS, key_serializer="raw", value_serializer="raw", partitions=settings.partitions
    )

    @app.agent(escalations, name="case-manager")
    async def case_manager(stream: Any) -> None:
        async for events in stream.noack_take(settings.batch_max, settings.batch_within_s):
            # Raw bytes with their coordinates: a message that cannot be used is dead-lettered
            # by the case manager (never raised), and the batch is acked once all are stored.
            messages = incoming(events)
            await runtime.cases.handle(messages)
            runtime.metrics.events_consumed.labels(ESCALATIONS).inc(len(messages))
            for e in events:
                await stream.ack(e)
