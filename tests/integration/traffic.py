"""Bounded, seeded load for fault tests: valid events, escalating ones, bad ones, duplicates."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from dispatcher.contract.topics import NURSE_OBSERVATIONS, SENSOR_READINGS
from tests import helpers


@dataclass
class LoadResult:
    sent: int = 0
    event_ids: set[str] = field(default_factory=set)
    escalating: set[str] = field(default_factory=set)
    bad: int = 0
    duplicates: int = 0
    failed_sends: list[str] = field(default_factory=list)
    citizens: list[str] = field(default_factory=list)


def produce_load(
    bootstrap: str,
    count: int,
    rate: float,
    seed: int = 1,
    citizens: int = 40,
    stop: threading.Event | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Send ``count`` messages at about ``rate``/s (open loop; stops early if ``stop`` is set).

    ``result``, when given, is filled as the messages go out, so another thread can see how
    much was sent so far (``len(result.event_ids)``)."""
    rng = random.Random(seed)
    ids = [helpers.citizen() for _ in range(citizens)]
    result = result if result is not None else LoadResult()
    result.citizens = ids
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2, retries=10)
    start = time.monotonic()
    futures: list[tuple[str, Any]] = []
    try:
        for i in range(count):
            if stop is not None and stop.is_set():
                break
            cid = rng.choice(ids)
            roll = rng.random()
            if roll < 0.03:
                producer.send(
                    NURSE_OBSERVATIONS,
                    key=cid.encode(),
                    value=b'{"event_id": "broken", "spo2": "x"}',
                )
                result.bad += 1
            elif roll < 0.10:
                body = helpers.deteriorating(cid)
                result.escalating.add(body["event_id"])
                result.event_ids.add(body["event_id"])
                futures.append(
                    (
                        body["event_id"],
                        producer.send(
                            NURSE_OBSERVATIONS, key=cid.encode(), value=json.dumps(body).encode()
                        ),
                    )
                )
            else:
                body = helpers.sensor(cid, "pulse", rng.randint(60, 90), "/min")
                result.event_ids.add(body["event_id"])
                raw = json.dumps(body).encode()
                futures.append(
                    (body["event_id"], producer.send(SENSOR_READINGS, key=cid.encode(), value=raw))
                )
                if rng.random() < 0.05:
                    producer.send(SENSOR_READINGS, key=cid.encode(), value=raw)
                    result.duplicates += 1
            result.sent += 1
            target = start + (i + 1) / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush(30)
        for event_id, fut in futures:
            try:
                fut.get(timeout=30)
            except Exception as exc:  # the broker did not accept it: not ours to lose
                result.failed_sends.append(f"{event_id}: {type(exc).__name__}: {exc}")
    finally:
        producer.close(10)
    return result


class Load(threading.Thread):
    """``produce_load`` in a thread: ``join()`` then read ``result``."""

    def __init__(
        self,
        bootstrap: str,
        count: int,
        rate: float,
        seed: int = 1,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.args_ = (bootstrap, count, rate, seed)
        self.stop = stop
        self.result = LoadResult()  # filled while the load runs (see produce_load)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = produce_load(*self.args_, stop=self.stop, result=self.result)
        except BaseException as exc:  # surfaced by the test after join()
            self.error = exc
