"""The outbox's producer: sends a relay pass's messages with the faust app's producer and says,
per message, whether it went out, failed for now, or was refused for good.

All messages of a pass are handed to the producer first (so they are pipelined), then every
acknowledgement is awaited on its own: one message the client or broker refuses never hides
the outcome of the others. ``classify`` decides what a produce error means:

* a non-retriable Kafka error (``MessageSizeTooLargeError``, an invalid or unauthorised topic,
  a corrupt record, ...) is permanent: the row is parked;
* everything else (connection loss, timeouts, leader changes, the producer stopping during a
  shutdown, cancellation) is transient: the row stays for the sweep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any

import faust
from aiokafka import errors as kafka_errors  # type: ignore[import-untyped]
from faust.exceptions import ProducerSendError

from dispatcher.ingest.planner import OutboxMessage
from dispatcher.store.batches import SendFailure

# Not retriable by aiokafka's flag, yet nothing is wrong with the message: try again later.
_NOT_THE_MESSAGES_FAULT: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.ProducerClosed,
    kafka_errors.IllegalStateError,
)


def classify(exc: BaseException) -> SendFailure:
    """What one produce error means for its outbox row."""
    cause: BaseException = exc
    if isinstance(exc, ProducerSendError) and exc.__cause__ is not None:
        cause = exc.__cause__  # faust wraps the client's error
    reason = f"{type(cause).__name__}: {cause}"[:1000]
    if isinstance(cause, kafka_errors.MessageSizeTooLargeError):
        return SendFailure(reason, permanent=True, kind="too_large")
    if (
        isinstance(cause, kafka_errors.KafkaError)
        and not cause.retriable
        and type(cause) is not kafka_errors.KafkaError
        and not isinstance(cause, _NOT_THE_MESSAGES_FAULT)
    ):
        return SendFailure(reason, permanent=True, kind="refused")
    return SendFailure(reason, permanent=False, kind="transient")


class FaustSender:
    """Publishes outbox messages with the faust app's producer, waiting for every ack."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    async def __call__(self, messages: Sequence[OutboxMessage]) -> list[SendFailure | None]:
        return await send_each(self._app.producer, messages)


async def send_each(producer: Any, messages: Sequence[OutboxMessage]) -> list[SendFailure | None]:
    """Send every message with ``producer`` (faust's ``send`` signature); one result each."""
    results: list[SendFailure | None] = [None] * len(messages)
    pending: list[tuple[int, Awaitable[Any]]] = []
    for i, m in enumerate(messages):
        try:
            pending.append((i, await producer.send(m.topic, m.key, m.value, None, None, None)))
        except Exception as exc:  # refused before it left: the client's own checks
            results[i] = classify(exc)
    acks = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    for (i, _), ack in zip(pending, acks, strict=True):
        if isinstance(ack, BaseException):
            results[i] = classify(ack)
    return results
