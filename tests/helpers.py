"""The one module of test-event builders, with pseudonymous ids only.

* JSON builders (``observation``, ``discharge``, ``sensor``...) for tests that publish or decode
  bytes, timestamped from the wall clock by default;
* model builders (``observation_model``, ``discharge_model``, ``reading_model``) for the pure
  rules tests: explicit times around ``RULES_NOW``, sequential ids, no clock.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from structlog.testing import CapturingLoggerFactory

from dispatcher.contract.events import DischargeEvent, NurseObservation, SensorKind, SensorReading
from dispatcher.observability.logging import configure_logging, uninstall_stdlib_redaction


def now() -> datetime:
    return datetime.now(UTC)


def citizen() -> str:
    """A fresh pseudonymous id. The 'x' in the middle keeps it from ever holding ten digits
    in a row, which the contract refuses as a possible CPR number."""
    h = uuid.uuid4().hex
    return f"cit-{h[:5]}x{h[5:10]}"


def envelope(citizen_id: str, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": (at or now()).isoformat(),
        "source": "test-suite",
        "citizen_id": citizen_id,
        **extra,
    }


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


def observation(citizen_id: str, at: datetime | None = None, **vitals: Any) -> dict[str, Any]:
    """A complete, normal observation (NEWS2 0) unless vitals override it."""
    base: dict[str, Any] = {**NORMAL_VITALS, "worried": False, "observer": "nurse-001"}
    base.update(vitals)
    return envelope(citizen_id, at, **base)


def deteriorating(citizen_id: str, at: datetime | None = None) -> dict[str, Any]:
    """NEWS2 high: RR 26 (3), SpO2 90 (3), BP 95 (2), pulse 120 (2), temp 38.5 (1) = 11."""
    return observation(
        citizen_id, at, respiration_rate=26, spo2=90, systolic_bp=95, pulse=120, temperature=38.5
    )


def discharge(citizen_id: str, at: datetime | None = None, **extra: Any) -> dict[str, Any]:
    t = at or now()
    body: dict[str, Any] = {
        "discharged_at": (t - timedelta(hours=2)).isoformat(),
        "hospital": "Herlev og Gentofte Hospital",
        "department": "Lungemedicinsk afdeling",
        "municipality": "Gladsaxe",
        "district": "Gladsaxe Nord",
        "diagnoses": ["J44.1"],
        "flags": [],
        "follow_up": [],
    }
    body.update(extra)
    return envelope(citizen_id, t, **body)


def sensor(
    citizen_id: str, kind: str, value: float, unit: str, at: datetime | None = None
) -> dict[str, Any]:
    return envelope(citizen_id, at, device_id=f"dev-{kind}-01", kind=kind, value=value, unit=unit)


@contextmanager
def captured_logs(level: str = "debug") -> Iterator[CapturingLoggerFactory]:
    """The production logging set-up (JSON, redaction) writing into a capturing factory;
    restored afterwards so other tests see structlog's defaults."""
    factory = CapturingLoggerFactory()
    configure_logging("json", level, logger_factory=factory)
    try:
        yield factory
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        uninstall_stdlib_redaction()


# --- model builders for the pure rules tests ---------------------------------------------

RULES_NOW = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
CITIZEN = "cit-7f3a9c"
_ids = itertools.count(1)  # sequential UUIDs: rule tests compare ids

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


def discharge_model(
    *, at: datetime = RULES_NOW - timedelta(days=2), citizen: str = CITIZEN, **over: Any
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


def observation_model(
    *, at: datetime = RULES_NOW, citizen: str = CITIZEN, **over: Any
) -> NurseObservation:
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


def reading_model(
    kind: SensorKind,
    value: float,
    *,
    at: datetime = RULES_NOW,
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
