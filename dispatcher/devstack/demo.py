"""Demo traffic: a seeded, plausible stream of discharges, sensor readings and observations.

It publishes with kafka-python, exactly as a hospital, a sensor gateway or a home-care system
would. A few citizens deteriorate over time, a few fall, one nurse is worried; a little bad input
and some duplicates show the dead-letter topic and idempotency at work. All ids are pseudonymous.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dispatcher.contract.topics import (
    DEAD_LETTER,
    DISCHARGES,
    ESCALATIONS,
    NURSE_OBSERVATIONS,
    SENSOR_READINGS,
)

DISTRICTS = (
    ("Gladsaxe", "Gladsaxe Nord"),
    ("Gentofte", "Gentofte Syd"),
    ("Lyngby-Taarbæk", "Lyngby"),
    ("Rudersdal", "Holte"),
)
DIAGNOSES = (["J44.1"], ["I50.9"], ["E11.9", "I50.1"], ["J44.0", "J96.1"], ["N39.0"])


def _iso(t: datetime) -> str:
    return t.isoformat()


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes


def envelope(citizen_id: str, source: str, now: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": _iso(now),
        "source": source,
        "citizen_id": citizen_id,
    }


def discharge(citizen_id: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    municipality, district = rng.choice(DISTRICTS)
    diagnoses = rng.choice(DIAGNOSES)
    flags = ["lives_alone"] if rng.random() < 0.4 else []
    if "J96.1" in diagnoses:
        flags.append("hypercapnic_respiratory_failure")
    if rng.random() < 0.05:
        flags.append("palliative")
    return {
        **envelope(citizen_id, "rh-sp", now),
        "discharged_at": _iso(now - timedelta(hours=rng.randint(1, 72))),
        "hospital": "Herlev og Gentofte Hospital",
        "department": "Medicinsk afdeling",
        "municipality": municipality,
        "district": district,
        "diagnoses": diagnoses,
        "flags": flags,
        "follow_up": [{"action": "home visit by acute team within 24 h"}],
    }


def observation(
    citizen_id: str, rng: random.Random, now: datetime, deterioration: float
) -> dict[str, Any]:
    """Vitals drift from normal towards NEWS2-high as ``deterioration`` goes 0 -> 1."""
    d = deterioration
    return {
        **envelope(citizen_id, "homecare-app", now),
        "respiration_rate": int(16 + 12 * d + rng.randint(-1, 1)),
        "spo2": int(97 - 9 * d + rng.randint(-1, 0)),
        "on_oxygen": d > 0.7,
        "systolic_bp": int(128 - 40 * d + rng.randint(-4, 4)),
        "pulse": int(78 + 50 * d + rng.randint(-3, 3)),
        "consciousness": "C" if d > 0.85 else "A",
        "temperature": round(37.0 + 1.8 * d + rng.uniform(-0.2, 0.2), 1),
        "worried": d > 0.5 and rng.random() < 0.3,
        "observer": f"nurse-{rng.randint(1, 40):03d}",
    }


def sensor(citizen_id: str, kind: str, value: float, unit: str, now: datetime) -> dict[str, Any]:
    return {
        **envelope(citizen_id, "sensor-gw", now),
        "device_id": f"dev-{citizen_id}-{kind}",
        "kind": kind,
        "value": value,
        "unit": unit,
    }


def demo_messages(seed: int = 7, citizens: int = 40) -> Iterator[Message]:
    """An endless, seeded stream of demo messages (timestamps are 'now' when drawn)."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not cryptography
    ids = [f"cit-{seed:02d}{i:04d}" for i in range(citizens)]
    deteriorating = set(rng.sample(ids, max(1, citizens // 8)))
    step = 0
    now = datetime.now(UTC)
    for cid in ids:
        yield Message(DISCHARGES, cid.encode(), json.dumps(discharge(cid, rng, now)).encode())
    while True:
        step += 1
        now = datetime.now(UTC)
        cid = rng.choice(ids)
        roll = rng.random()
        if roll < 0.55:
            payload = sensor(cid, "spo2", rng.randint(93, 99), "%", now)
        elif roll < 0.75:
            payload = sensor(cid, "pulse", rng.randint(60, 95), "/min", now)
        elif roll < 0.78 and step > 20:
            payload = sensor(cid, "fall", 1, "1", now)
        else:
            d = min(1.0, step / 150) if cid in deteriorating else rng.uniform(0, 0.2)
            payload = observation(cid, rng, now, d)
        raw = json.dumps(payload).encode()
        topic = {
            "spo2": SENSOR_READINGS,
            "pulse": SENSOR_READINGS,
            "fall": SENSOR_READINGS,
        }.get(str(payload.get("kind")), NURSE_OBSERVATIONS)
        yield Message(topic, cid.encode(), raw)
        if rng.random() < 0.03:  # a duplicate delivery
            yield Message(topic, cid.encode(), raw)
        if rng.random() < 0.01:  # bad input from a misconfigured gateway
            yield Message(SENSOR_READINGS, cid.encode(), b'{"kind": "spo2", "value": "high"}')


def run_traffic(bootstrap: str, rate: float, stop: threading.Event, seed: int = 7) -> int:
    """Publish demo messages at ``rate`` per second until ``stop`` is set."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    sent = 0
    interval = 1.0 / rate
    try:
        for msg in demo_messages(seed):
            if stop.is_set():
                break
            producer.send(msg.topic, key=msg.key, value=msg.value)
            sent += 1
            stop.wait(interval)
    finally:
        producer.flush(10)
        producer.close(5)
    return sent


def describe_escalation(raw: bytes) -> str:
    e = json.loads(raw)
    news = e.get("news2") or {}
    score = f"NEWS2 {news['total']} ({news['risk']})" if news else "no NEWS2"
    rules = ", ".join(r["rule_id"] for r in e["reasons"])
    return (
        f"{e['created_at'][11:19]}  {e['severity'].upper():8} {e['citizen_id']:12} "
        f"-> {e['route']['tier']}/{e['route']['team']:28} {score:22} rules: {rules}"
    )


def describe_page(raw: bytes) -> str:
    p = json.loads(raw)
    target = p["target"]
    who = target.get("staff_id") or "(team channel)"
    return (
        f"case {p['case_id'][:8]} #{p['page_seq']} {p['kind']:15} {p['severity'].upper():8} "
        f"{p['citizen_id']:12} -> {who} @ {target['team_id']}  ack by {p['ack_deadline'][11:19]}"
    )


def tail(bootstrap: str, stop: threading.Event, partitions: int) -> None:
    """Print escalations, pages to teams and dead letters as they arrive."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    page_topics = sorted(t for t in consumer.topics() if t.startswith("acute.pages."))
    consumer.assign(
        [
            TopicPartition(t, p)
            for t in (ESCALATIONS, DEAD_LETTER, *page_topics)
            for p in range(partitions)
        ]
    )
    try:
        while not stop.is_set():
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if tp.topic == ESCALATIONS:
                        print("ESCALATION  " + describe_escalation(r.value), flush=True)
                    elif tp.topic.startswith("acute.pages."):
                        print("  PAGE      " + describe_page(r.value), flush=True)
                    else:
                        d = json.loads(r.value)
                        print(
                            f"DEAD-LETTER {d['source_topic']}@{d['partition']}:{d['offset']} "
                            f"{d['error']['field']}: {d['error']['reason']}",
                            flush=True,
                        )
    finally:
        consumer.close()
