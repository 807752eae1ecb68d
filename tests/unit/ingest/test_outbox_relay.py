"""Issue 11 item 1: the outbox relay isolates failures per message.

A message sent is marked and never sent again; one refused for good is parked with its reason
and counted, and never blocks the messages behind it; a transient failure leaves its row for
the sweep. Against the in-memory repository (the PostgreSQL one: tests/integration/
test_outbox_parking.py) and with a fake producer for the faust sender's per-message results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import errors as kafka_errors  # type: ignore[import-untyped]
from faust.exceptions import ProducerSendError

from dispatcher.contract.topics import ESCALATIONS
from dispatcher.ingest.planner import OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.store.batches import SendFailure, sort_results
from dispatcher.store.testing import InMemoryRepository
from dispatcher.streams.sender import classify, send_each

TOO_LARGE = SendFailure("MessageSizeTooLargeError: 2000000 bytes", permanent=True, kind="too_large")
FLAKY = SendFailure("KafkaConnectionError: gone", permanent=False, kind="transient")


def msg(n: int, topic: str = ESCALATIONS) -> OutboxMessage:
    return OutboxMessage(topic, b"k", b'{"n": %d}' % n)


class RefusingSender:
    """Sends everything except the values it is told to refuse (permanently or once)."""

    def __init__(self, refuse: dict[bytes, SendFailure], once: set[bytes] | None = None) -> None:
        self.refuse = refuse
        self.once = once or set()
        self.sent: list[bytes] = []

    async def __call__(self, messages: Sequence[OutboxMessage]) -> list[SendFailure | None]:
        out: list[SendFailure | None] = []
        for m in messages:
            failure = self.refuse.get(m.value)
            if failure is not None and m.value in self.once:
                del self.refuse[m.value]
            if failure is None:
                self.sent.append(m.value)
            out.append(failure)
        return out


def sample(metrics: DispatcherMetrics, name: str, labels: dict[str, str]) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def _relay_world(
    sender: RefusingSender, n: int = 5
) -> tuple[InMemoryRepository, BatchProcessor, DispatcherMetrics]:
    repo = InMemoryRepository()
    repo.outbox = [(i, msg(i), False) for i in range(1, n + 1)]
    metrics = DispatcherMetrics()
    return repo, BatchProcessor(repo, sender, metrics), metrics


class TestSortResults:
    def test_sent_parked_and_left(self) -> None:
        msgs = [msg(1), msg(2), msg(3)]
        published, outcome = sort_results([10, 11, 12], msgs, [None, TOO_LARGE, FLAKY])
        assert published == [10]
        assert outcome.sent == [msgs[0]]
        assert [(p.outbox_id, p.failure.kind) for p in outcome.parked] == [(11, "too_large")]
        assert outcome.left == 1

    def test_none_means_all_sent(self) -> None:
        published, outcome = sort_results([1, 2], [msg(1), msg(2)], None)
        assert published == [1, 2]
        assert len(outcome.sent) == 2

    def test_a_sender_that_miscounts_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="results"):
            sort_results([1, 2], [msg(1), msg(2)], [None])


class TestRelayIsolatesEachMessage:
    async def test_refused_message_is_parked_and_the_rest_go_out_exactly_once(self) -> None:
        """The issue-11 jam: row 3 is refused for good. Rows 1-2 and 4-5 are published once,
        row 3 is parked with its reason and counted, and further sweeps send nothing."""
        sender = RefusingSender({msg(3).value: TOO_LARGE})
        repo, p, metrics = await _relay_world(sender)
        assert await p.relay() == 4
        for _ in range(5):  # the sweep, every 2 s
            assert await p.relay() == 0
        assert sender.sent == [msg(i).value for i in (1, 2, 4, 5)]
        assert repo.parked == {3: TOO_LARGE.reason}
        assert repo.unpublished() == []
        labels = {"topic": ESCALATIONS, "reason": "too_large"}
        assert sample(metrics, "dispatcher_outbox_parked_total", labels) == 1

    async def test_transient_failure_stays_for_the_sweep_without_holding_back_others(
        self,
    ) -> None:
        sender = RefusingSender({msg(2).value: FLAKY}, once={msg(2).value})
        repo, p, metrics = await _relay_world(sender, n=3)
        assert await p.relay() == 2
        assert [m.value for m in repo.unpublished()] == [msg(2).value]
        assert sample(metrics, "dispatcher_outbox_failures_total", {}) == 1
        assert await p.relay() == 1
        assert sender.sent == [msg(1).value, msg(3).value, msg(2).value]
        assert repo.parked == {}

    async def test_a_relay_that_raises_leaves_every_row(self) -> None:
        async def broken(_m: Sequence[OutboxMessage]) -> None:
            raise ConnectionError("broker unavailable")

        repo = InMemoryRepository()
        repo.outbox = [(1, msg(1), False)]
        p = BatchProcessor(repo, broken, DispatcherMetrics())
        assert await p.relay() == 0
        assert len(repo.unpublished()) == 1


class FakeProducer:
    """faust's ``producer.send``: may raise at once (client checks) or return a future."""

    def __init__(self, at_send: dict[bytes, Exception], at_ack: dict[bytes, Exception]) -> None:
        self.at_send = at_send
        self.at_ack = at_ack

    async def send(self, topic: str, key: Any, value: bytes, *_: Any) -> asyncio.Future[None]:
        if value in self.at_send:
            raise self.at_send[value]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if value in self.at_ack:
            fut.set_exception(self.at_ack[value])
        else:
            fut.set_result(None)
        return fut


class TestFaustSender:
    async def test_each_message_gets_its_own_result(self) -> None:
        too_large = ProducerSendError("Error while sending")
        too_large.__cause__ = kafka_errors.MessageSizeTooLargeError("too big")
        producer = FakeProducer(
            at_send={msg(2).value: too_large},
            at_ack={msg(3).value: kafka_errors.NotLeaderForPartitionError()},
        )
        results = await send_each(producer, [msg(1), msg(2), msg(3), msg(4)])
        assert results[0] is None
        assert results[3] is None
        assert results[1] is not None
        assert results[1].permanent
        assert results[1].kind == "too_large"
        assert results[2] is not None
        assert not results[2].permanent


class TestClassify:
    @pytest.mark.parametrize(
        ("exc", "permanent", "kind"),
        [
            (kafka_errors.MessageSizeTooLargeError(), True, "too_large"),
            (kafka_errors.TopicAuthorizationFailedError(), True, "refused"),
            (kafka_errors.InvalidTopicError(), True, "refused"),
            (kafka_errors.CorruptRecordException(), True, "refused"),
            (kafka_errors.KafkaConnectionError(), False, "transient"),
            (kafka_errors.NotLeaderForPartitionError(), False, "transient"),
            (kafka_errors.KafkaTimeoutError(), False, "transient"),
            (kafka_errors.ProducerClosed(), False, "transient"),
            (kafka_errors.KafkaError(), False, "transient"),
            (asyncio.CancelledError(), False, "transient"),
            (OSError("reset"), False, "transient"),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
    )
    def test_only_what_cannot_succeed_later_is_permanent(
        self, exc: BaseException, permanent: bool, kind: str
    ) -> None:
        failure = classify(exc)
        assert (failure.permanent, failure.kind) == (permanent, kind)
        assert type(exc).__name__ in failure.reason
