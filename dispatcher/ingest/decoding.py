"""Raw Kafka bytes -> a validated event, or a list of field errors.

faust's own value decoding restarts an agent on a bad message, so agents consume raw bytes and
call ``decode`` here. It never raises for bad input: every failure names the field (``$`` for the
message as a whole), the reason and its ``DeadLetterCategory``, and the caller sends it to the
dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError

from dispatcher.contract.events import (
    INPUT_MODEL_BY_TOPIC,
    DischargeEvent,
    FieldError,
    InputEvent,
    NurseObservation,
    SensorReading,
)
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import WHOLE_MESSAGE, DeadLetterCategory

MODEL_BY_TOPIC: dict[str, type[BaseModel]] = dict(INPUT_MODEL_BY_TOPIC)

MAX_MESSAGE_BYTES = 64 * 1024
SUPPORTED_SCHEMA_VERSIONS = (1,)
# Hard time bounds (issue 11 item 3): a timestamp outside them is refused (a dead letter naming
# the field). Every timestamp of an event is checked: ``occurred_at``, a discharge's
# ``discharged_at`` (never in the future: a discharge "in 2099" would otherwise freeze the
# citizen's context, as an older discharge never overwrites a newer one) and its follow-ups'
# ``due_by`` (a due date is in the future by nature, at most MAX_FOLLOW_UP_AHEAD).
MAX_FUTURE_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=365)
MAX_FOLLOW_UP_AHEAD = timedelta(days=365)
# The maximum age by topic (the single source; ``dispatcher.ingest.planner`` applies it): an
# event whose ``occurred_at`` is older than this when it is decided is *stale*. It is accepted,
# audited and shown - its assessment says why - but it never pages and never changes the
# citizen's context. A vital sign from yesterday is no reason to send a nurse now. Discharges
# have none beyond MAX_AGE: a discharge is context (conditions, flags, the NEWS2 scale), not a
# finding, and a late one still matters.
MAX_EVENT_AGE_BY_TOPIC: dict[str, timedelta | None] = {
    SENSOR_READINGS: timedelta(hours=24),
    NURSE_OBSERVATIONS: timedelta(hours=24),
    DISCHARGES: None,
}


def past_max_age(topic: str, occurred_at: datetime, now: datetime) -> timedelta | None:
    """The topic's maximum age when ``occurred_at`` is older than it at ``now``, else None."""
    limit = MAX_EVENT_AGE_BY_TOPIC.get(topic)
    if limit is not None and now - occurred_at > limit:
        return limit
    return None


@dataclass(frozen=True)
class Decoded:
    event: InputEvent


@dataclass(frozen=True)
class Rejected:
    errors: list[FieldError]
    event_id: UUID | None = None
    category: DeadLetterCategory = DeadLetterCategory.VALIDATION


def _malformed(reason: str) -> Rejected:
    return Rejected(_err(WHOLE_MESSAGE, reason), category=DeadLetterCategory.MALFORMED)


def _err(field: str, reason: str) -> list[FieldError]:
    return [FieldError(field=field, reason=reason)]


def _event_id_of(obj: dict[str, Any]) -> UUID | None:
    raw = obj.get("event_id")
    if not isinstance(raw, str):
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or WHOLE_MESSAGE


def decode(topic: str, raw: bytes | None, now: datetime) -> Decoded | Rejected:
    """Validate one message from ``topic``. ``now`` bounds plausible timestamps."""
    model = MODEL_BY_TOPIC.get(topic)
    if model is None:
        return _malformed(f"no event contract for topic {topic!r}")
    if raw is None or len(raw) == 0:
        return _malformed("empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        return _malformed(f"message is {len(raw)} bytes; the limit is {MAX_MESSAGE_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _malformed(f"not valid UTF-8 at byte {exc.start}")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _malformed(f"not valid JSON: {exc}")
    if not isinstance(obj, dict):
        return _malformed(f"must be a JSON object, not {type(obj).__name__}")
    event_id = _event_id_of(obj)
    version = obj.get("schema_version")
    if isinstance(version, int) and version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejected(
            _err(
                "schema_version",
                f"unsupported schema_version {version} (supported: "
                f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))})",
            ),
            event_id,
            DeadLetterCategory.SCHEMA_VERSION,
        )
    try:
        event = model.model_validate(obj)
    except ValidationError as exc:
        errors = [
            FieldError(field=_loc(e["loc"]), reason=e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return Rejected(errors, event_id)
    assert isinstance(event, DischargeEvent | SensorReading | NurseObservation)
    time_errors = timestamp_errors(event, now)
    if time_errors:
        return Rejected(time_errors, event_id)
    return Decoded(event)


def _bounded(
    field: str, at: datetime, now: datetime, ahead: timedelta = MAX_FUTURE_SKEW
) -> list[FieldError]:
    if at > now + ahead:
        return _err(field, f"is more than {ahead} in the future")
    if at < now - MAX_AGE:
        return _err(field, f"is older than {MAX_AGE.days} days")
    return []


def timestamp_errors(event: InputEvent, now: datetime) -> list[FieldError]:
    """Every timestamp of ``event`` outside its hard bounds at ``now``, each naming its field."""
    errors = _bounded("occurred_at", event.occurred_at, now)
    if isinstance(event, DischargeEvent):
        errors += _bounded("discharged_at", event.discharged_at, now)
        for i, follow_up in enumerate(event.follow_up):
            if follow_up.due_by is not None:
                errors += _bounded(
                    f"follow_up.{i}.due_by", follow_up.due_by, now, MAX_FOLLOW_UP_AHEAD
                )
    return errors
