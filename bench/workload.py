"""A seeded benchmark workload: pre-serialised events over a fixed population of citizens.

Pure: no I/O and no clock. The caller passes the time the first event of a batch "occurred" and
the spacing between events, so the same seed, salt and calls give byte-identical batches.

The mix (per event, defaults): mostly home-sensor readings (SpO2, pulse, blood pressure) with
normal values, some nurse observations (NEWS2 0), a few discharges; about 4 % are built to
escalate (fall alarms, NEWS2-high observations, a worried nurse); a little bad input (dead
letters) and a few duplicate deliveries (same bytes again). Only events built to escalate are
flagged ``escalates``: the load generator records their send time and matches escalations by
``triggered_by``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS

# Districts and diagnoses known to the seed roster (same as the demo traffic).
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("Gladsaxe", "Gladsaxe Nord"),
    ("Gentofte", "Gentofte Syd"),
    ("Lyngby-Taarbæk", "Lyngby"),
    ("Rudersdal", "Holte"),
)
DIAGNOSES: tuple[tuple[str, ...], ...] = (
    ("J44.1",),
    ("I50.9",),
    ("E11.9", "I50.1"),
    ("J44.0",),
    ("N39.0",),
)


class Kind(StrEnum):
    SENSOR = "sensor"
    FALL = "fall"
    OBSERVATION = "observation"
    DETERIORATION = "deterioration"
    WORRY = "worry"
    DISCHARGE = "discharge"
    BAD = "bad"
    DUPLICATE = "duplicate"


ESCALATING_KINDS = frozenset({Kind.FALL, Kind.DETERIORATION, Kind.WORRY})


@dataclass(frozen=True, slots=True)
class LoadEvent:
    topic: str
    key: bytes
    value: bytes
    kind: Kind
    event_id: str | None  # None for bad input

    @property
    def escalates(self) -> bool:
        return self.kind in ESCALATING_KINDS

    @property
    def accepted(self) -> bool:
        """A valid event seen for the first time: it must end as exactly one audit row."""
        return self.kind not in (Kind.BAD, Kind.DUPLICATE)


@dataclass(frozen=True)
class Mix:
    """Per-event probabilities; what is left over is a normal sensor reading."""

    fall: float = 0.025
    deterioration: float = 0.01
    worry: float = 0.005
    observation: float = 0.12
    discharge: float = 0.02
    bad: float = 0.005
    duplicate: float = 0.01

    def __post_init__(self) -> None:
        total = (
            self.fall
            + self.deterioration
            + self.worry
            + self.observation
            + self.discharge
            + self.bad
            + self.duplicate
        )
        if not 0 <= total <= 1:
            raise ValueError(f"mix probabilities add up to {total}, not within [0, 1]")

    @property
    def escalating(self) -> float:
        return self.fall + self.deterioration + self.worry


def _iso(t: datetime) -> str:
    return t.isoformat()


class Workload:
    """Seeded generator of benchmark events for ``citizens`` citizens.

    ``salt`` goes into every event id and citizen id, so two runs against the same database
    (``DISPATCHER_DATABASE_URL``) never collide; tests fix it for determinism.
    """

    def __init__(
        self, seed: int = 7, citizens: int = 10_000, salt: str = "b", mix: Mix | None = None
    ) -> None:
        if citizens < 1:
            raise ValueError("citizens must be >= 1")
        self.seed = seed
        self.salt = salt
        self.mix = mix or Mix()
        self._rng = random.Random(f"{seed}:{salt}")  # noqa: S311 - benchmark data
        self.citizen_ids: list[str] = [f"bench-{salt}-{i:05d}" for i in range(citizens)]
        self._last: LoadEvent | None = None
        self._last_at: datetime | None = None

    # -- building blocks --------------------------------------------------------------------

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _envelope(self, cid: str, source: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": self._event_id(),
            "schema_version": 1,
            "occurred_at": _iso(at),
            "source": source,
            "citizen_id": cid,
        }

    def _make(self, topic: str, kind: Kind, body: dict[str, Any]) -> LoadEvent:
        cid = str(body["citizen_id"])
        return LoadEvent(topic, cid.encode(), orjson.dumps(body), kind, str(body["event_id"]))

    def discharge(self, cid: str, at: datetime) -> LoadEvent:
        rng = self._rng
        municipality, district = rng.choice(DISTRICTS)
        diagnoses = list(rng.choice(DIAGNOSES))
        flags = ["lives_alone"] if rng.random() < 0.4 else []
        body = {
            **self._envelope(cid, "rh-sp", at),
            "discharged_at": _iso(at - timedelta(hours=rng.randint(1, 72))),
            "hospital": "Herlev og Gentofte Hospital",
            "department": "Medicinsk afdeling",
            "municipality": municipality,
            "district": district,
            "diagnoses": diagnoses,
            "flags": flags,
            "follow_up": [{"action": "home visit by acute team within 24 h"}],
        }
        return self._make(DISCHARGES, Kind.DISCHARGE, body)

    def sensor(self, cid: str, at: datetime) -> LoadEvent:
        """A normal reading: never breaches a sustained-sensor threshold."""
        rng = self._rng
        roll = rng.random()
        if roll < 0.5:
            kind, value, unit = "spo2", float(rng.randint(94, 99)), "%"
        elif roll < 0.85:
            kind, value, unit = "pulse", float(rng.randint(58, 92)), "/min"
        else:
            kind, value, unit = "systolic_bp", float(rng.randint(112, 142)), "mmHg"
        body = {
            **self._envelope(cid, "sensor-gw", at),
            "device_id": f"dev-{cid}-{kind}",
            "kind": kind,
            "value": value,
            "unit": unit,
        }
        return self._make(SENSOR_READINGS, Kind.SENSOR, body)

    def fall(self, cid: str, at: datetime) -> LoadEvent:
        body = {
            **self._envelope(cid, "sensor-gw", at),
            "device_id": f"dev-{cid}-fall",
            "kind": "fall",
            "value": 1,
            "unit": "1",
        }
        return self._make(SENSOR_READINGS, Kind.FALL, body)

    def observation(self, cid: str, at: datetime, kind: Kind = Kind.OBSERVATION) -> LoadEvent:
        """NEWS2 0 (every parameter in its 0 band) unless ``kind`` says otherwise."""
        rng = self._rng
        vitals: dict[str, Any] = {
            "respiration_rate": rng.randint(13, 19),
            "spo2": rng.randint(96, 99),
            "on_oxygen": False,
            "systolic_bp": rng.randint(115, 140),
            "pulse": rng.randint(60, 88),
            "consciousness": "A",
            "temperature": round(rng.uniform(36.4, 37.6), 1),
            "worried": kind is Kind.WORRY,
            "observer": f"nurse-{rng.randint(1, 40):03d}",
        }
        if kind is Kind.DETERIORATION:  # NEWS2 11: RR 26, SpO2 90, BP 95, pulse 120, 38.5
            vitals.update(respiration_rate=26, spo2=90, systolic_bp=95, pulse=120, temperature=38.5)
        body = {**self._envelope(cid, "homecare-app", at), **vitals}
        return self._make(NURSE_OBSERVATIONS, kind, body)

    def bad(self, cid: str, at: datetime) -> LoadEvent:
        rng = self._rng
        roll = rng.randrange(3)
        if roll == 0:
            value = b'{"kind": "spo2", "value": "high"'  # not JSON
        elif roll == 1:  # wrong type
            value = orjson.dumps(
                {
                    **self._envelope(cid, "sensor-gw", at),
                    "kind": "spo2",
                    "value": "high",
                    "unit": "%",
                    "device_id": f"dev-{cid}-spo2",
                }
            )
        else:  # unknown schema version
            body = {
                **self._envelope(cid, "sensor-gw", at),
                "kind": "pulse",
                "value": 70.0,
                "unit": "/min",
                "device_id": f"dev-{cid}-pulse",
            }
            body["schema_version"] = 9
            value = orjson.dumps(body)
        return LoadEvent(SENSOR_READINGS, cid.encode(), value, Kind.BAD, None)

    # -- batches ----------------------------------------------------------------------------

    def _start(self, start: datetime) -> datetime:
        """Occurrence times never go backwards across batches (a stale fall is never paged)."""
        if self._last_at is not None and start <= self._last_at:
            return self._last_at + timedelta(microseconds=1)
        return start

    def population(self, start: datetime, spacing: timedelta) -> list[LoadEvent]:
        """A discharge then a sensor reading for every citizen, in citizen order: creates (and
        fills) every citizen's context. Event ``i`` occurred at ``start + i * spacing``."""
        at = self._start(start)
        out: list[LoadEvent] = []
        for cid in self.citizen_ids:
            out.append(self.discharge(cid, at + len(out) * spacing))
            out.append(self.sensor(cid, at + len(out) * spacing))
        self._last_at = at + (len(out) - 1) * spacing
        return out

    def batch(self, n: int, start: datetime, spacing: timedelta) -> list[LoadEvent]:
        """``n`` events of the mix; event ``i`` occurred at ``start + i * spacing``."""
        rng = self._rng
        mix = self.mix
        at0 = self._start(start)
        # Cumulative thresholds, checked in this order; the rest are sensor readings.
        edges: list[tuple[float, Kind]] = []
        acc = 0.0
        for p, kind in (
            (mix.fall, Kind.FALL),
            (mix.deterioration, Kind.DETERIORATION),
            (mix.worry, Kind.WORRY),
            (mix.observation, Kind.OBSERVATION),
            (mix.discharge, Kind.DISCHARGE),
            (mix.bad, Kind.BAD),
            (mix.duplicate, Kind.DUPLICATE),
        ):
            acc += p
            edges.append((acc, kind))
        out: list[LoadEvent] = []
        for i in range(n):
            at = at0 + i * spacing
            cid = self.citizen_ids[rng.randrange(len(self.citizen_ids))]
            roll = rng.random()
            kind = next((k for edge, k in edges if roll < edge), Kind.SENSOR)
            event: LoadEvent
            if kind is Kind.DUPLICATE and self._last is not None and self._last.accepted:
                last = self._last
                event = LoadEvent(last.topic, last.key, last.value, Kind.DUPLICATE, last.event_id)
            elif kind is Kind.FALL:
                event = self.fall(cid, at)
            elif kind in (Kind.DETERIORATION, Kind.WORRY, Kind.OBSERVATION):
                event = self.observation(cid, at, kind)
            elif kind is Kind.DISCHARGE:
                event = self.discharge(cid, at)
            elif kind is Kind.BAD:
                event = self.bad(cid, at)
            else:
                event = self.sensor(cid, at)
            out.append(event)
            if event.kind is not Kind.DUPLICATE:
                self._last = event
        if n:
            self._last_at = at0 + (n - 1) * spacing
        return out


def summarize(events: list[LoadEvent]) -> dict[str, int]:
    """Counts per kind plus totals (for the report and the no-loss check)."""
    counts: dict[str, int] = {k.value: 0 for k in Kind}
    for e in events:
        counts[e.kind.value] += 1
    counts["total"] = len(events)
    counts["escalating"] = sum(1 for e in events if e.escalates)
    counts["accepted"] = sum(1 for e in events if e.accepted)
    return counts
