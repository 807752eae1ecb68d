"""Passthrough baselines on the same broker and partition count as the dispatcher.

Each runs in its own process (like the dispatcher worker) over a pre-filled input topic and
reports its drain throughput: messages from the first one consumed to the last one produced
(producer flushed, broker acks=all), divided by that time.

* ``raw``: aiokafka consumer -> ``orjson.loads`` -> ``orjson.dumps`` -> aiokafka producer, the
  cheapest faithful passthrough in Python.
* ``faust``: a plain faust agent, one message at a time: ``async for value in stream`` with the
  json value serializer (faust uses orjson when installed), ``await out.send(...)``.

Run as ``python -m bench.baselines raw|faust --bootstrap B --in T --out T2 --count N --result F``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.worker import Worker


def _write(path: Path, result: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)


async def raw_passthrough(
    bootstrap: str, src: str, dst: str, count: int, timeout_s: float
) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id="bench-raw-passthrough",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    n = 0
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while n < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for r in records:
                    if first is None:
                        first = time.monotonic()
                    value = orjson.dumps(orjson.loads(r.value)) if r.value else b""
                    await producer.send(dst, value, key=r.key)
                    n += 1
        await producer.flush()
        end = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    elapsed = end - first if first is not None else 0.0
    return {
        "kind": "raw",
        "messages": n,
        "elapsed_s": elapsed,
        "rate": n / elapsed if elapsed > 0 else 0.0,
        "complete": n >= count,
    }


async def fetch_latency(
    bootstrap: str,
    topic: str,
    fetch_max_wait_ms: int,
    messages: int = 40,
    interval_s: float = 0.05,
) -> list[float]:
    """Produce -> consume latency (ms) of a bare aiokafka consumer at a trickle, for a given
    ``fetch_max_wait_ms`` (faust hard-codes 1500): how long the broker holds a fetch when
    data arrives during it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_max_wait_ms, enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    try:
        parts = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        sent: dict[bytes, float] = {}

        async def consume() -> None:
            while len(latencies) < messages:
                batches = await consumer.getmany(timeout_ms=2000)
                now = time.monotonic()
                for records in batches.values():
                    for r in records:
                        if r.value in sent:
                            latencies.append((now - sent[r.value]) * 1000)

        task = asyncio.create_task(consume())
        for i in range(messages):
            value = f"probe-{fetch_max_wait_ms}-{i}".encode()
            sent[value] = time.monotonic()
            await producer.send_and_wait(topic, value, key=value)
            await asyncio.sleep(interval_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(task, 5)
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


def faust_passthrough(
    bootstrap: str,
    src: str,
    dst: str,
    *,
    count: int,
    timeout_s: float,
    result: Path,
    datadir: Path,
) -> None:
    """Blocks in faust's worker; writes ``result`` and exits the process when done."""
    app = faust.App(
        "bench-faust-passthrough",
        broker=";".join(f"kafka://{h}" for h in bootstrap.split(",")),
        store="memory://",
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        datadir=str(datadir),
        topic_allow_declare=False,
    )
    src_topic = app.topic(src, key_serializer="raw", value_serializer="json")
    dst_topic = app.topic(dst, key_serializer="raw", value_serializer="json")
    state: dict[str, Any] = {"n": 0, "first": None}

    def finish() -> None:
        first = state["first"]
        end = time.monotonic()
        elapsed = end - first if first is not None else 0.0
        n = state["n"]
        _write(
            result,
            {
                "kind": "faust",
                "messages": n,
                "elapsed_s": elapsed,
                "rate": n / elapsed if elapsed > 0 else 0.0,
                "complete": n >= count,
            },
        )
        os._exit(0)  # the result is written; skip faust's slow shutdown

    @app.agent(src_topic)
    async def passthrough(stream: Any) -> None:
        async for value in stream:
            if state["first"] is None:
                state["first"] = time.monotonic()
            await dst_topic.send(key=stream.current_event.key, value=value)
            state["n"] += 1
            if state["n"] >= count:
                await app.producer.flush()
                finish()

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]
    async def watchdog() -> None:
        first = state["first"]
        if first is not None and time.monotonic() - first > timeout_s:
            await app.producer.flush()
            finish()

    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baselines")
    parser.add_argument("kind", choices=["raw", "faust"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--in", dest="src", required=True)
    parser.add_argument("--out", dest="dst", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--datadir", type=Path, default=Path("bench-results/faust-data"))
    args = parser.parse_args(argv)
    if args.kind == "raw":
        res = asyncio.run(
            raw_passthrough(args.bootstrap, args.src, args.dst, args.count, args.timeout)
        )
        _write(args.result, res)
        return 0
    faust_passthrough(
        args.bootstrap,
        args.src,
        args.dst,
        count=args.count,
        timeout_s=args.timeout,
        result=args.result,
        datadir=args.datadir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
