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
from dispatcher.contract.vocab import WHOLE_MESSAGE, DeadLetterCategory

MODEL_BY_TOPIC: dict[str, type[BaseModel]] = dict(INPUT_MODEL_BY_TOPIC)

MAX_MESSAGE_BYTES = 64 * 1024
SUPPORTED_SCHEMA_VERSIONS = (1,)
MAX_FUTURE_SKEW = timedelta(minutes=10)
MAX_AGE = timedelta(days=365)


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
    if event.occurred_at > now + MAX_FUTURE_SKEW:
        return Rejected(
            _err("occurred_at", f"is more than {MAX_FUTURE_SKEW} in the future"), event_id
        )
    if event.occurred_at < now - MAX_AGE:
        return Rejected(_err("occurred_at", f"is older than {MAX_AGE.days} days"), event_id)
    return Decoded(event)
