"""Builders for rules-engine tests: pseudonymous ids only, explicit times, no clock."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from dispatcher.contract.events import DischargeEvent, NurseObservation, SensorKind, SensorReading

NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CITIZEN = "cit-7f3a9c"
_ids = itertools.count(1)

UNITS = {
    SensorKind.SPO2: "%",
    SensorKind.PULSE: "/min",
    SensorKind.SYSTOLIC_BP: "mm[Hg]",
    SensorKind.DIASTOLIC_BP: "mm[Hg]",
    SensorKind.TEMPERATURE: "Cel",
    SensorKind.RESPIRATION_RATE: "/min",
    SensorKind.WEIGHT: "kg",
    SensorKind.FALL: "event",
    SensorKind.BLOOD_GLUCOSE: "mmol/L",
}


def new_id() -> UUID:
    return UUID(int=next(_ids))


def discharge(
    *, at: datetime = NOW - timedelta(days=2), citizen: str = CITIZEN, **over: Any
) -> DischargeEvent:
    data: dict[str, Any] = {
        "event_id": new_id(),
        "schema_version": 1,
        "occurred_at": at,
        "source": "rh-sp",
        "citizen_id": citizen,
        "discharged_at": at,
        "hospital": "hospital-a",
        "department": "department-b",
        "municipality": "municipality-c",
        "district": "District North",
        "diagnoses": [],
        "flags": [],
    }
    data.update(over)
    return DischargeEvent.model_validate(data)


# A normal observation: every NEWS2 parameter present, every sub-score 0 (RCP 2017 chart 1).
NORMAL_VITALS: dict[str, Any] = {
    "respiration_rate": 16,
    "spo2": 97,
    "on_oxygen": False,
    "systolic_bp": 125,
    "pulse": 72,
    "consciousness": "A",
    "temperature": 37.0,
}


def observation(*, at: datetime = NOW, citizen: str = CITIZEN, **over: Any) -> NurseObservation:
    data: dict[str, Any] = {
        "event_id": new_id(),
        "schema_version": 1,
        "occurred_at": at,
        "source": "homecare-app",
        "citizen_id": citizen,
        "observer": "nurse-031",
        **NORMAL_VITALS,
    }
    data.update(over)
    return NurseObservation.model_validate(data)


def reading(
    kind: SensorKind,
    value: float,
    *,
    at: datetime = NOW,
    citizen: str = CITIZEN,
    profile: str | None = None,
) -> SensorReading:
    """A sensor reading; ``profile`` sets ``device_profile`` ("continuous" / "spot_check")."""
    data: dict[str, Any] = {
        "event_id": new_id(),
        "schema_version": 1,
        "occurred_at": at,
        "source": "sensor-gw",
        "citizen_id": citizen,
        "device_id": "dev-0001",
        "kind": kind,
        "value": value,
        "unit": UNITS[kind],
    }
    if profile is not None:
        data["device_profile"] = profile
    return SensorReading.model_validate(data)
