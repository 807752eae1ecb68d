"""A faust Kafka transport whose consumer waits less for a fetch to fill.

faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. A broker may hold a fetch
that long before answering (the embedded Tansu broker does, even with data waiting), which puts
a floor of up to 1.5 s under every hop: far too slow for an acute page. This transport is faust's
own aiokafka transport with that one number made a setting (``DISPATCHER_FETCH_MAX_WAIT_MS``).
It is registered as the URL scheme ``dkafka://``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

SCHEME = "dkafka"


class LowLatencyConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms: ClassVar[int] = 50

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms  # read when the consumer starts
        return consumer


class LowLatencyConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return LowLatencyConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = LowLatencyConsumer
    default_port = 9092


def register(fetch_max_wait_ms: int) -> None:
    """Make ``dkafka://`` resolve to this transport, with the given fetch wait."""
    LowLatencyConsumerThread.fetch_max_wait_ms = fetch_max_wait_ms
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
