"""A seeded home-care cohort: citizens, measurement schedules, artefacts and labelled episodes.

Pure: ``generate(spec)`` uses ``random.Random(spec.seed)`` only, so the same spec gives the same
events and labels, byte for byte. It returns the interface format of ``dispatcher evaluate run``:

* events: ``{"topic", "value": <the public event>, "arrived_at"}`` in arrival order;
* labels: ``{"citizen_id", "kind", "onset", "harm_by"}`` plus ``tier`` (who should see it:
  ``nurse``, ``doctor``, or ``palliative`` for a palliative citizen) and ``continuous`` (a
  continuous sensor was worn at onset), which the scorer uses when present.

Citizens (weights in ``CONDITIONS``): COPD with or without documented hypercapnic respiratory
failure (NEWS2 SpO2 scale 2), heart failure, frail after a discharge, chronic atrial
fibrillation, palliative; about a fifth also have diabetes (some on insulin, a few with a CGM).
Each has a discharge event, a district of the seed roster and devices matching the condition:
home-care nurse visits (NEWS2 sets, sometimes incomplete), spot-check finger oximeter and cuff a
few times a day, a daily scale for heart failure, overnight continuous oximetry for some, a
glucose meter (and a CGM) for diabetics on insulin, a fall pendant for frail citizens.

Physiology is a per-citizen baseline with measurement noise; an episode adds a deviation that
ramps up from ``onset`` (``EPISODES``: ramp, harm horizon, deltas) and decays after ``harm_by``.
Artefacts: single motion dips on oximeters, implausible values, missing vitals, late and
duplicated deliveries, gateway outages that deliver hours of readings at once.

Not modelled (yet): care plans (no such event exists in the contract), treatment changing the
data (the cohort is open-loop: a page does not make the citizen better), seasonal effects.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import CPR_PATTERN

LOCAL = timezone(timedelta(hours=1), "CET")  # Copenhagen in winter
DEFAULT_START = datetime(2026, 11, 2, tzinfo=LOCAL)

AREAS: tuple[tuple[str, str], ...] = (
    ("Gladsaxe", "Gladsaxe Nord"),
    ("Gladsaxe", "Gladsaxe Syd"),
    ("Gentofte", "Gentofte Nord"),
    ("Gentofte", "Gentofte Syd"),
    ("Lyngby-Taarbæk", "Lyngby"),
    ("Lyngby-Taarbæk", "Taarbæk"),
    ("Rudersdal", "Holte"),
    ("Rudersdal", "Birkerød"),
)

# Primary condition -> share of the cohort.
CONDITIONS: tuple[tuple[str, float], ...] = (
    ("copd", 0.20),
    ("copd_hypercapnic", 0.10),
    ("heart_failure", 0.22),
    ("frail_post_discharge", 0.22),
    ("chronic_af", 0.14),
    ("palliative", 0.12),
)
DIABETES_SHARE = 0.22
INSULIN_SHARE = 0.45  # of diabetics
CGM_SHARE = 0.25  # of diabetics on insulin

# Episode kind -> rate per citizen per 14 days, by primary condition (plus diabetes overlay).
EPISODE_RATES: dict[str, dict[str, float]] = {
    "copd": {"copd_exacerbation": 0.45, "sepsis": 0.04},
    "copd_hypercapnic": {"copd_exacerbation": 0.55, "sepsis": 0.05},
    "heart_failure": {"hf_decompensation": 0.40, "sepsis": 0.04},
    "frail_post_discharge": {"sepsis": 0.12, "fall_long_lie": 0.25},
    "chronic_af": {"sepsis": 0.05, "fall_long_lie": 0.05},
    "palliative": {"sepsis": 0.10, "fall_long_lie": 0.10},
}
HYPO_RATE_INSULIN = 0.55
HYPO_RATE_OTHER = 0.05


@dataclass(frozen=True)
class EpisodeShape:
    """How an episode unfolds: hours to full deviation, hours to harm, deltas at full."""

    ramp_h: tuple[float, float]
    harm_h: tuple[float, float]
    deltas: dict[str, tuple[float, float]]
    tier: str


EPISODES: dict[str, EpisodeShape] = {
    "copd_exacerbation": EpisodeShape(
        (3, 10),
        (24, 48),
        {"spo2": (-11, -7), "rr": (6, 10), "pulse": (15, 30), "temp": (0, 1.2)},
        "nurse",
    ),
    "hf_decompensation": EpisodeShape(
        (24, 72),
        (72, 120),
        {"spo2": (-9, -5), "rr": (6, 12), "pulse": (15, 30), "sys": (-20, 0), "weight": (2.5, 4.5)},
        "nurse",
    ),
    "sepsis": EpisodeShape(
        (2, 6),
        (8, 16),
        {"temp": (1.5, 2.5), "pulse": (30, 45), "rr": (8, 14), "sys": (-50, -30), "spo2": (-6, -3)},
        "doctor",
    ),
    "fall_long_lie": EpisodeShape((0, 0), (1.0, 2.0), {}, "nurse"),
    "hypoglycaemia": EpisodeShape(
        (0.25, 0.6), (0.75, 2.0), {"glucose": (-5.5, -4.0), "pulse": (10, 20)}, "nurse"
    ),
}


@dataclass(frozen=True)
class CohortSpec:
    citizens: int = 300
    days: int = 14
    seed: int = 1
    start: datetime = DEFAULT_START
    # artefacts and delivery faults
    p_motion_artefact: float = 0.015  # spot-check oximeter: one reading in the red band
    p_continuous_artefact: float = 0.004  # worn oximeter: a 1-3 reading dip
    p_implausible: float = 0.003
    p_late: float = 0.04
    p_duplicate: float = 0.015
    p_outage_per_day: float = 0.04
    p_implausible_observation: float = 0.005
    continuous_cadence_s: int = 120
    cgm_cadence_s: int = 300


@dataclass(frozen=True)
class Episode:
    citizen_id: str
    kind: str
    onset: datetime
    harm_by: datetime
    tier: str
    continuous: bool
    ramp: timedelta
    deltas: dict[str, float]
    pendant_worn: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "citizen_id": self.citizen_id,
            "kind": self.kind,
            "onset": self.onset.isoformat(),
            "harm_by": self.harm_by.isoformat(),
            "tier": self.tier,
            "continuous": self.continuous,
        }

    def fraction(self, at: datetime) -> float:
        """0 before onset, ramping to 1, decaying after harm_by over 12 h (treated/admitted)."""
        if at < self.onset:
            return 0.0
        if at > self.harm_by:
            return max(0.0, 1.0 - (at - self.harm_by) / timedelta(hours=12))
        if self.ramp <= timedelta(0):
            return 1.0
        return min(1.0, (at - self.onset) / self.ramp)


@dataclass
class Citizen:
    citizen_id: str
    condition: str
    municipality: str
    district: str
    diabetic: bool
    insulin: bool
    cgm: bool
    discharged_at: datetime
    base: dict[str, float]
    visits_per_day: float
    spot_sessions: tuple[float, ...]  # local hours
    cuff: bool
    scale: bool
    continuous: bool
    pendant: bool
    home_oxygen: bool = False
    devices: dict[str, str] = field(default_factory=dict)
    declares_profile: bool = True
    episodes: list[Episode] = field(default_factory=list)

    @property
    def scale2(self) -> bool:
        return self.condition == "copd_hypercapnic"

    @property
    def tier(self) -> str:
        return "palliative" if self.condition == "palliative" else "nurse"


@dataclass(frozen=True)
class EventLine:
    topic: str
    value: dict[str, Any]
    arrived_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"topic": self.topic, "value": self.value, "arrived_at": self.arrived_at.isoformat()}


@dataclass
class Cohort:
    spec: CohortSpec
    citizens: list[Citizen]
    events: list[EventLine]
    episodes: list[Episode]

    @property
    def end(self) -> datetime:
        return self.spec.start + timedelta(days=self.spec.days)


def _pseudonym(rng: random.Random, prefix: str) -> str:
    while True:
        token = f"{prefix}-{rng.getrandbits(40):010x}"
        if not CPR_PATTERN.search(token):
            return token


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    x = rng.random() * sum(w for _, w in weighted)
    for name, w in weighted:
        x -= w
        if x <= 0:
            return name
    return weighted[-1][0]


_DIAGNOSES: dict[str, tuple[tuple[str, ...], ...]] = {
    "copd": (("J44.1",), ("J44.9",), ("J44.0", "I10")),
    "copd_hypercapnic": (("J44.1", "J96.1"), ("J44.1",)),
    "heart_failure": (("I50.0",), ("I50.9", "I10"), ("I11.0",)),
    "frail_post_discharge": (("S72.0",), ("N39.0",), ("J18.9",), ("R26.8",)),
    "chronic_af": (("I48.2",), ("I48.2", "I10")),
    "palliative": (("C34.9",), ("C18.9",), ("C61",), ("G12.2",)),
}


def _citizen(rng: random.Random, spec: CohortSpec) -> Citizen:
    condition = _pick(rng, CONDITIONS)
    municipality, district = rng.choice(AREAS)
    diabetic = rng.random() < DIABETES_SHARE
    insulin = diabetic and rng.random() < INSULIN_SHARE
    cgm = insulin and rng.random() < CGM_SHARE
    days_home = rng.uniform(0, 6) if condition == "frail_post_discharge" else rng.uniform(1, 25)
    base = {
        "spo2": rng.uniform(95.5, 98.0),
        "rr": rng.uniform(13, 17),
        "pulse": rng.uniform(62, 84),
        "pulse_sd": 3.0,
        "sys": rng.uniform(115, 142),
        "temp": rng.uniform(36.3, 37.0),
        "weight": rng.uniform(55, 95),
        "glucose": rng.uniform(6.0, 8.5),
    }
    visits, cuff, scale, continuous, pendant = 0.4, False, False, False, False
    sessions: tuple[float, ...] = (8.0, 20.0)
    if condition == "copd":
        base |= {
            "spo2": rng.uniform(92.5, 95.5),
            "rr": rng.uniform(16, 20),
            "pulse": rng.uniform(75, 92),
        }
        visits, sessions, continuous = 0.6, (8.0, 14.0, 20.0), rng.random() < 0.05
    elif condition == "copd_hypercapnic":
        base |= {
            "spo2": rng.uniform(88.5, 91.5),
            "rr": rng.uniform(17, 21),
            "pulse": rng.uniform(78, 94),
        }
        visits, sessions, continuous = 0.7, (8.0, 14.0, 20.0), rng.random() < 0.30
    elif condition == "heart_failure":
        base |= {"spo2": rng.uniform(94.5, 97.5), "sys": rng.uniform(100, 130)}
        visits, sessions, cuff, scale, continuous = (
            0.6,
            (8.0, 20.0),
            True,
            True,
            rng.random() < 0.05,
        )
    elif condition == "frail_post_discharge":
        base |= {"pulse": rng.uniform(66, 88), "sys": rng.uniform(108, 145)}
        visits, sessions, pendant = 2.0, ((9.0,) if rng.random() < 0.5 else ()), True
        cuff = bool(sessions)
    elif condition == "chronic_af":
        base |= {"pulse": rng.uniform(82, 104), "pulse_sd": 10.0}
        visits, sessions, cuff = 0.4, (8.0, 20.0), True
        pendant = rng.random() < 0.3
    elif condition == "palliative":
        base |= {
            "spo2": rng.uniform(92.5, 96.5),
            "rr": rng.uniform(17, 22),
            "pulse": rng.uniform(80, 98),
        }
        visits, sessions, pendant = 2.5, ((10.0,) if rng.random() < 0.4 else ()), rng.random() < 0.5
    citizen = Citizen(
        citizen_id=_pseudonym(rng, "cit"),
        condition=condition,
        municipality=municipality,
        district=district,
        diabetic=diabetic,
        insulin=insulin,
        cgm=cgm,
        discharged_at=spec.start - timedelta(days=days_home, hours=rng.uniform(0, 8)),
        base=base,
        visits_per_day=visits,
        spot_sessions=sessions,
        cuff=cuff,
        scale=scale,
        continuous=continuous,
        pendant=pendant,
        declares_profile=rng.random() < 0.8,
        home_oxygen=condition == "copd_hypercapnic" and rng.random() < 0.5,
    )
    for device in ("oximeter", "cuff", "scale", "worn", "glucose", "cgm", "pendant"):
        citizen.devices[device] = _pseudonym(rng, "dev")
    return citizen


def _worn(c: Citizen, at: datetime) -> bool:
    """Overnight continuous oximetry: worn 21:00-09:00 local."""
    if not c.continuous:
        return False
    h = at.astimezone(LOCAL).hour
    return h >= 21 or h < 9


def _episodes(rng: random.Random, c: Citizen, spec: CohortSpec) -> list[Episode]:
    rates = dict(EPISODE_RATES[c.condition])
    if c.diabetic:
        rates["hypoglycaemia"] = HYPO_RATE_INSULIN if c.insulin else HYPO_RATE_OTHER
    out: list[Episode] = []
    scale = spec.days / 14.0
    for kind, rate in sorted(rates.items()):
        lam = rate * scale
        # Poisson draw (Knuth), small lambda
        n, p, limit = 0, rng.random(), math.exp(-lam)
        while p > limit:
            n += 1
            p *= rng.random()
        for _ in range(n):
            shape = EPISODES[kind]
            for _attempt in range(10):
                onset = spec.start + timedelta(hours=rng.uniform(12, spec.days * 24 - 12))
                harm = onset + timedelta(hours=rng.uniform(*shape.harm_h))
                busy = any(
                    onset < e.harm_by + timedelta(hours=24) and e.onset < harm + timedelta(hours=24)
                    for e in out
                )
                if not busy:
                    break
            else:
                continue
            deltas = {k: rng.uniform(lo, hi) for k, (lo, hi) in shape.deltas.items()}
            if kind == "copd_exacerbation" and rng.random() < 0.5:
                deltas["temp"] = 0.0  # not every exacerbation is infective
            if kind == "sepsis" and rng.random() < 0.1:
                deltas["temp"] = -deltas["temp"]  # hypothermic sepsis
            if kind == "hypoglycaemia":
                deltas["glucose"] = -(c.base["glucose"] - rng.uniform(1.8, 3.2))
            out.append(
                Episode(
                    citizen_id=c.citizen_id,
                    kind=kind,
                    onset=onset,
                    harm_by=harm,
                    tier="palliative" if c.condition == "palliative" else shape.tier,
                    continuous=_worn(c, onset) or (kind == "hypoglycaemia" and c.cgm),
                    ramp=timedelta(hours=rng.uniform(*shape.ramp_h)),
                    deltas=deltas,
                    pendant_worn=rng.random() < 0.8,
                )
            )
    return sorted(out, key=lambda e: e.onset)


class _Physiology:
    """The citizen's true values at a time: baseline, slow daily wobble, episodes."""

    def __init__(self, c: Citizen, rng: random.Random) -> None:
        self.c = c
        self.phase = rng.uniform(0, 2 * math.pi)

    def delta(self, name: str, at: datetime) -> float:
        total = 0.0
        for e in self.c.episodes:
            f = e.fraction(at)
            if f <= 0:
                continue
            d = e.deltas.get(name, 0.0)
            if name == "weight" and e.kind == "hf_decompensation":
                # fluid builds up from onset at a steady rate to its full gain at harm_by
                span = (e.harm_by - e.onset) / timedelta(hours=1)
                grow = min(1.0, max(0.0, (at - e.onset) / timedelta(hours=1) / span))
                f = grow if at <= e.harm_by else f
            total += d * f
        return total

    def value(self, name: str, at: datetime, rng: random.Random) -> float:
        b = self.c.base
        hours = (at - DEFAULT_START) / timedelta(hours=1)
        wobble = math.sin(2 * math.pi * hours / 24 + self.phase)
        if name == "spo2":
            v = b["spo2"] + 0.6 * wobble + rng.gauss(0, 0.8) + self.delta("spo2", at)
            return min(100.0, v)
        if name == "rr":
            return max(6.0, b["rr"] + rng.gauss(0, 1.2) + self.delta("rr", at))
        if name == "pulse":
            return max(
                35.0,
                b["pulse"] + 3 * wobble + rng.gauss(0, b["pulse_sd"]) + self.delta("pulse", at),
            )
        if name == "sys":
            return b["sys"] + 4 * wobble + rng.gauss(0, 6) + self.delta("sys", at)
        if name == "temp":
            return b["temp"] + 0.2 * wobble + rng.gauss(0, 0.15) + self.delta("temp", at)
        if name == "weight":
            return b["weight"] + rng.gauss(0, 0.25) + self.delta("weight", at)
        if name == "glucose":
            return max(
                1.2, b["glucose"] + 1.2 * wobble + rng.gauss(0, 0.5) + self.delta("glucose", at)
            )
        raise KeyError(name)  # pragma: no cover

    def confused(self, at: datetime) -> bool:
        for e in self.c.episodes:
            f = e.fraction(at)
            if e.kind == "sepsis" and f > 0.7:
                return True
            if e.kind == "copd_exacerbation" and self.c.scale2 and f > 0.9:
                return True
            if e.kind == "hypoglycaemia" and f > 0.8:
                return True
        return False

    def lying(self, at: datetime) -> Episode | None:
        """A fall with a long lie in progress: the citizen cannot measure anything."""
        for e in self.c.episodes:
            if e.kind == "fall_long_lie" and e.onset <= at <= e.harm_by:
                return e
        return None

    def ill(self, at: datetime) -> float:
        return max((e.fraction(at) for e in self.c.episodes), default=0.0)


class _Builder:
    def __init__(self, spec: CohortSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.lines: list[tuple[datetime, int, EventLine]] = []
        self.n = 0

    def emit(self, topic: str, value: dict[str, Any], arrived_at: datetime) -> None:
        self.n += 1
        line = EventLine(topic, value, arrived_at)
        self.lines.append((arrived_at, self.n, line))
        if self.rng.random() < self.spec.p_duplicate:
            self.n += 1
            again = arrived_at + timedelta(seconds=self.rng.uniform(1, 30))
            self.lines.append((again, self.n, EventLine(topic, value, again)))

    def envelope(self, c: Citizen, at: datetime, source: str) -> dict[str, Any]:
        return {
            "event_id": _uuid(self.rng),
            "schema_version": 1,
            "occurred_at": at.isoformat(),
            "source": source,
            "citizen_id": c.citizen_id,
        }

    def reading(  # noqa: PLR0917 - one reading's fields
        self,
        c: Citizen,
        at: datetime,
        kind: str,
        value: float,
        unit: str,
        device: str,
        profile: str,
        arrive: datetime | None = None,
    ) -> None:
        v = self.envelope(c, at, "home-gateway")
        v |= {"kind": kind, "device_id": c.devices[device], "value": value, "unit": unit}
        if c.declares_profile or profile == "continuous":
            v["device_profile"] = profile
        arrived = arrive or at + timedelta(seconds=self.rng.uniform(1, 20))
        if arrive is None and self.rng.random() < self.spec.p_late:
            arrived = at + timedelta(minutes=self.rng.uniform(2, 90))
        self.emit(SENSOR_READINGS, v, arrived)


def _discharge(b: _Builder, c: Citizen) -> None:
    rng = b.rng
    diagnoses = list(rng.choice(_DIAGNOSES[c.condition]))
    if c.diabetic:
        diagnoses.append("E10.9" if c.insulin and rng.random() < 0.3 else "E11.9")
    flags: list[str] = []
    if c.condition == "copd_hypercapnic":
        flags.append("hypercapnic_respiratory_failure")
    if c.home_oxygen:
        flags.append("home_oxygen")
    if c.condition == "palliative":
        flags.append("palliative")
    if c.condition == "frail_post_discharge":
        flags.append("fall_risk")
        if rng.random() < 0.5:
            flags.append("lives_alone")
    v = b.envelope(c, c.discharged_at, "rh-sp")
    v |= {
        "discharged_at": c.discharged_at.isoformat(),
        "hospital": "Herlev og Gentofte Hospital",
        "department": "Medicinsk afdeling",
        "municipality": c.municipality,
        "district": c.district,
        "diagnoses": diagnoses,
        "flags": flags,
    }
    # The discharge letter reaches the dispatcher when the window opens (or when sent, if later).
    b.emit(DISCHARGES, v, max(c.discharged_at + timedelta(minutes=5), b.spec.start))


def _round(value: float, digits: int = 0) -> float:
    return round(value, digits) if digits else float(round(value))


def _observation(b: _Builder, c: Citizen, ph: _Physiology, at: datetime) -> None:
    rng = b.rng
    ill = ph.ill(at)
    v = b.envelope(c, at, "kmd-nexus")
    vitals: dict[str, Any] = {
        "respiration_rate": _round(ph.value("rr", at, rng)),
        "spo2": _round(ph.value("spo2", at, rng)),
        "on_oxygen": c.home_oxygen,
        "systolic_bp": _round(ph.value("sys", at, rng)),
        "pulse": _round(ph.value("pulse", at, rng)),
        "consciousness": "C" if ph.confused(at) and rng.random() < 0.8 else "A",
        "temperature": _round(ph.value("temp", at, rng), 1),
    }
    for name, p in (("temperature", 0.15), ("respiration_rate", 0.10), ("consciousness", 0.04)):
        if rng.random() < p:
            vitals.pop(name)
    if c.scale2 and rng.random() < 0.3:
        vitals.pop("on_oxygen")  # not documented: a scale-2 SpO2 >= 93 % cannot be scored
    if rng.random() < b.spec.p_implausible_observation:
        vitals["spo2"] = rng.choice([0.0, 101.0, 120.0])
    lying = ph.lying(at)
    worried = rng.random() < (0.01 + 0.75 * ill) or lying is not None
    v |= vitals | {"worried": worried, "observer": c.devices["oximeter"].replace("dev-", "rn-")}
    delay = timedelta(minutes=rng.uniform(1, 10))
    if rng.random() < 0.10:
        delay = timedelta(minutes=rng.uniform(10, 60))  # documented after the visit
    b.emit(NURSE_OBSERVATIONS, v, at + delay)


def _spot_session(
    b: _Builder, c: Citizen, ph: _Physiology, at: datetime, arrive: datetime | None
) -> None:
    rng, spec = b.rng, b.spec
    spo2 = ph.value("spo2", at, rng)
    pulse = ph.value("pulse", at, rng)
    if rng.random() < spec.p_motion_artefact:
        spo2 = rng.uniform(72, 88)
        pulse = rng.uniform(40, 150)
    if rng.random() < spec.p_implausible:
        spo2 = rng.choice([0.0, 127.0])
    b.reading(c, at, "spo2", _round(spo2), "%", "oximeter", "spot_check", arrive)
    b.reading(
        c,
        at + timedelta(seconds=2),
        "pulse",
        _round(pulse),
        "/min",
        "oximeter",
        "spot_check",
        arrive,
    )
    if c.cuff:
        t = at + timedelta(minutes=rng.uniform(2, 5))
        sys = ph.value("sys", t, rng)
        b.reading(c, t, "systolic_bp", _round(sys), "mmHg", "cuff", "spot_check", arrive)
        b.reading(
            c,
            t,
            "diastolic_bp",
            _round(sys * rng.uniform(0.55, 0.68)),
            "mmHg",
            "cuff",
            "spot_check",
            arrive,
        )


def _generate_citizen(b: _Builder, c: Citizen, ph: _Physiology) -> None:  # noqa: PLR0915
    rng, spec = b.rng, b.spec
    _discharge(b, c)
    start, end = spec.start, spec.start + timedelta(days=spec.days)
    outages: list[tuple[datetime, datetime]] = []
    for d in range(spec.days):
        day = start + timedelta(days=d)
        if rng.random() < spec.p_outage_per_day:
            o = day + timedelta(hours=rng.uniform(0, 20))
            outages.append((o, o + timedelta(hours=rng.uniform(1, 6))))

    def arrival(at: datetime) -> datetime | None:
        for o_start, o_end in outages:
            if o_start <= at < o_end:
                return o_end + timedelta(seconds=rng.uniform(5, 60))
        return None

    for d in range(spec.days):
        day = start + timedelta(days=d)
        # home-care nurse visits
        n_visits = int(c.visits_per_day) + (1 if rng.random() < c.visits_per_day % 1 else 0)
        for slot in (8.5, 19.0, 13.5)[:n_visits]:
            at = day + timedelta(hours=slot + rng.uniform(-1, 1))
            _observation(b, c, ph, at)
        # spot checks (skipped while lying on the floor; a few missed by habit)
        for hour in c.spot_sessions:
            at = day + timedelta(hours=hour + rng.uniform(-0.75, 0.75))
            if ph.lying(at) is None and rng.random() < 0.88:
                _spot_session(b, c, ph, at, arrival(at))
        if c.spot_sessions and ph.ill(day + timedelta(hours=12)) > 0.2:
            for hour in (11.0, 16.5, 23.0):  # symptom-driven extra checks
                at = day + timedelta(hours=hour + rng.uniform(-1, 1))
                if rng.random() < 0.4 and ph.lying(at) is None:
                    _spot_session(b, c, ph, at, arrival(at))
        if c.scale:
            at = day + timedelta(hours=7.5 + rng.uniform(-0.5, 0.5))
            if rng.random() < 0.9 and ph.lying(at) is None:
                b.reading(
                    c,
                    at,
                    "weight",
                    _round(ph.value("weight", at, rng), 1),
                    "kg",
                    "scale",
                    "spot_check",
                    arrival(at),
                )
        if c.insulin:
            for hour in (7.5, 12.0, 18.0, 22.0):
                at = day + timedelta(hours=hour + rng.uniform(-0.5, 0.5))
                if rng.random() < 0.75 and ph.lying(at) is None:
                    g = ph.value("glucose", at, rng)
                    b.reading(
                        c,
                        at,
                        "blood_glucose",
                        _round(g, 1),
                        "mmol/L",
                        "glucose",
                        "spot_check",
                        arrival(at),
                    )
    # overnight continuous oximetry
    if c.continuous:
        step = timedelta(seconds=spec.continuous_cadence_s)
        at = start
        dip = 0
        while at < end:
            if _worn(c, at) and ph.lying(at) is None:
                spo2, pulse = ph.value("spo2", at, rng), ph.value("pulse", at, rng)
                if dip == 0 and rng.random() < spec.p_continuous_artefact:
                    dip = rng.randint(1, 3)
                if dip > 0:
                    spo2 = rng.uniform(75, 88)
                    dip -= 1
                if rng.random() < spec.p_implausible / 3:
                    spo2 = 0.0
                arrive = arrival(at)
                b.reading(
                    c,
                    at,
                    "spo2",
                    _round(spo2),
                    "%",
                    "worn",
                    "continuous",
                    arrive or at + timedelta(seconds=3),
                )
                b.reading(
                    c,
                    at,
                    "pulse",
                    _round(pulse),
                    "/min",
                    "worn",
                    "continuous",
                    arrive or at + timedelta(seconds=3),
                )
            at += step
    if c.cgm:
        step = timedelta(seconds=spec.cgm_cadence_s)
        at = start
        while at < end:
            g = ph.value("glucose", at, rng)
            b.reading(
                c,
                at,
                "blood_glucose",
                _round(g, 1),
                "mmol/L",
                "cgm",
                "continuous",
                arrival(at) or at + timedelta(seconds=5),
            )
            at += step
    # symptom-driven glucose checks and fall pendants
    for e in c.episodes:
        if e.kind == "hypoglycaemia" and c.diabetic and rng.random() < 0.75:
            at = e.onset + timedelta(minutes=rng.uniform(10, 40))
            b.reading(
                c,
                at,
                "blood_glucose",
                _round(ph.value("glucose", at, rng), 1),
                "mmol/L",
                "glucose",
                "spot_check",
            )
        if e.kind == "fall_long_lie" and c.pendant and e.pendant_worn:
            at = e.onset + timedelta(seconds=rng.uniform(5, 90))
            b.reading(c, at, "fall", 1.0, "event", "pendant", "spot_check")
    if c.pendant:  # false alarms: a pendant dropped or knocked
        for d in range(spec.days):
            if rng.random() < 0.02:
                at = start + timedelta(days=d, hours=rng.uniform(7, 22))
                b.reading(c, at, "fall", 1.0, "event", "pendant", "spot_check")


def generate(spec: CohortSpec) -> Cohort:
    """The cohort of ``spec``: citizens, their events in arrival order, and the labels."""
    rng = random.Random(spec.seed)  # noqa: S311 - simulation data, not secrets
    citizens = [_citizen(rng, spec) for _ in range(spec.citizens)]
    b = _Builder(spec, rng)
    episodes: list[Episode] = []
    for c in citizens:
        c.episodes = _episodes(rng, c, spec)
        episodes.extend(c.episodes)
        _generate_citizen(b, c, _Physiology(c, rng))
    b.lines.sort(key=lambda x: (x[0], x[1]))
    events = [line for _, _, line in b.lines]
    episodes.sort(key=lambda e: (e.onset, e.citizen_id))
    return Cohort(spec, citizens, events, episodes)


__all__ = ["Cohort", "CohortSpec", "Episode", "EventLine", "generate"]
