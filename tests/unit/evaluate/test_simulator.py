"""The simulator's own behaviour: staff answers stop re-escalation, seeded staff, baseline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson

from dispatcher.contract.events import SensorKind
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.evaluate.baseline import News2Baseline, sensor_subscore
from dispatcher.evaluate.simulator import PageRecord, Response, Simulator
from dispatcher.evaluate.staff import SimulatedStaff
from dispatcher.routing.roster import parse_roster

ROSTER = parse_roster(
    (Path(__file__).resolve().parents[3] / "dispatcher/routing/seed_roster.yaml").read_text("utf-8")
)
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
CIT = "cit-0a1b2c3d"


def _env(at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid4()),
        "schema_version": 1,
        "occurred_at": at.isoformat(),
        "source": "test",
        "citizen_id": CIT,
    }


def _discharge() -> bytes:
    v = _env(T0 - timedelta(days=2)) | {
        "discharged_at": (T0 - timedelta(days=2)).isoformat(),
        "hospital": "H",
        "department": "D",
        "municipality": "Gladsaxe",
        "district": "Gladsaxe Nord",
        "diagnoses": ["J44.1"],
    }
    return orjson.dumps(v)


def _obs(at: datetime, **vitals: Any) -> bytes:
    base = {
        "respiration_rate": 16,
        "spo2": 97,
        "on_oxygen": False,
        "systolic_bp": 130,
        "pulse": 70,
        "consciousness": "A",
        "temperature": 36.8,
        "observer": "rn-test01",
    }
    return orjson.dumps(_env(at) | base | vitals)


class Always:
    """Acknowledges every page after ``minutes`` (or never) and resolves an hour later."""

    def __init__(self, minutes: float | None) -> None:
        self.minutes = minutes
        self.pages: list[PageRecord] = []

    def respond(self, page: PageRecord) -> Response:
        self.pages.append(page)
        ack = None if self.minutes is None else page.at + timedelta(minutes=self.minutes)
        return Response(ack, page.staff_id or "x", timedelta(hours=1), "treated_at_home")


def _run(responder: Always) -> Simulator:
    sim = Simulator(roster=ROSTER, responder=responder)
    sim.deliver(DISCHARGES, _discharge(), T0)
    # NEWS2 5 (RR 22 = 2, SpO2 95 = 1, pulse 95 = 1, temp 38.2 = 1): high, 15 min, nurse
    sim.deliver(
        NURSE_OBSERVATIONS, _obs(T0, respiration_rate=22, spo2=95, pulse=95, temperature=38.2), T0
    )
    sim.finish(T0 + timedelta(hours=3))
    return sim


def test_unacknowledged_page_climbs_the_chain() -> None:
    sim = _run(Always(None))
    kinds = [(p.kind, p.tier) for p in sim.log.pages]
    assert kinds[0] == ("new", "nurse")
    assert ("re_escalated", "doctor") in kinds
    assert sim.log.acknowledged == 0


def test_acknowledged_in_time_one_page_then_resolved() -> None:
    sim = _run(Always(3))
    assert [p.kind for p in sim.log.pages] == ["new"]
    assert sim.log.acknowledged == 1
    assert sim.log.resolved == 1
    assert not sim._open_by_citizen  # resolved: the next escalation opens a new case


def test_late_ack_after_one_re_escalation() -> None:
    sim = _run(Always(20))  # deadline 15 min: re-escalated once, then acknowledged
    assert [p.kind for p in sim.log.pages] == ["new", "re_escalated"]
    assert sim.log.acknowledged == 1


def test_staff_are_seeded() -> None:
    page = PageRecord(T0, CIT, UUID(int=1), 1, "new", "nurse", "t", "rn-1", "high", ())
    a = [SimulatedStaff(seed=3).respond(page) for _ in range(1)]
    s1, s2 = SimulatedStaff(seed=3), SimulatedStaff(seed=3)
    assert [s1.respond(page) for _ in range(50)] == [s2.respond(page) for _ in range(50)]
    answers = [SimulatedStaff(seed=9).respond(page), *a]
    assert all(r.ack_at is None or r.ack_at > page.at for r in answers)
    many = SimulatedStaff(seed=1)
    missed = sum(many.respond(page).ack_at is None for _ in range(2000))
    assert 100 < missed < 240  # nurse miss rate 8 %


def test_baseline_pages_news2_ge5_and_single_red() -> None:
    base = News2Baseline()
    sim = Simulator(roster=ROSTER, observe_audit=base.observe)
    sim.deliver(DISCHARGES, _discharge(), T0)
    sim.deliver(NURSE_OBSERVATIONS, _obs(T0), T0)  # NEWS2 0: no page
    sim.deliver(
        NURSE_OBSERVATIONS,
        _obs(T0 + timedelta(hours=1), respiration_rate=26),
        T0 + timedelta(hours=1),
    )
    sim.deliver(
        NURSE_OBSERVATIONS,
        _obs(T0 + timedelta(hours=2), respiration_rate=22, spo2=95, pulse=95, temperature=38.2),
        T0 + timedelta(hours=2),
    )
    for i in range(10):  # a worn oximeter at 90 % for 10 minutes: one page for the run
        at = T0 + timedelta(hours=3, minutes=i)
        reading = _env(at) | {
            "kind": "spo2",
            "device_id": "dev-abc123",
            "value": 90,
            "unit": "%",
            "device_profile": "continuous",
        }
        sim.deliver(SENSOR_READINGS, orjson.dumps(reading), at)
    assert [p.rules for p in base.pages] == [
        ("news2.single_3",),
        ("news2.total_ge5",),
        ("sensor.spo2_single_3",),
    ]
    assert sensor_subscore(SensorKind.SPO2, 91.4, 1) == 3
    assert sensor_subscore(SensorKind.SPO2, 85, 2) == 2
    assert sensor_subscore(SensorKind.WEIGHT, 80, 1) is None
