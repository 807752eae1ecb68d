"""Raw Kafka bytes -> a validated event, or a list of field errors.

faust's own value decoding restarts an agent on a bad message, so agents consume raw bytes and
call ``decode`` here. It never raises for bad input: every failure names the field (``$`` for the
message as a whole), the reason and its ``DeadLetterCategory``, and the caller sends it to the
dead-letter topic.
"""

from __future__ import annotations

import json
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
    repeated = duplicate_key(raw, obj)
    if repeated is not None:
        return Rejected(
            _err(
                repeated,
                "duplicate key: the JSON object names it more than once (which value was "
                "meant is unknown; orjson would silently keep the last)",
            ),
            None if repeated == "event_id" else event_id,
        )
    if topic == NURSE_OBSERVATIONS and obj.get("dropped"):
        # ``dropped`` is what *we* found unusable; a publisher filling it would make the
        # re-measure rule fire for a vital nobody sent (an empty list, as a serialised model
        # carries it, says nothing and passes).
        return Rejected(
            _err(
                "dropped",
                "is filled by the dispatcher when it reads the observation; a "
                "publisher must not send it",
            ),
            event_id,
        )
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


# The dead-letter field of a Kafka key that is not the body's citizen_id.
MESSAGE_KEY = "$key"


def key_errors(key: bytes | None, event: InputEvent) -> list[FieldError]:
    """The Kafka key must be the body's ``citizen_id``, byte for byte (UTF-8): the topics are
    partitioned by it, so one worker owns each citizen and decides their events together. A
    null or different key would put the citizen's events on another partition, decided by
    another worker, out of order (issue 11 item 5). The reason never repeats either value."""
    if key is None:
        return _err(MESSAGE_KEY, "the Kafka key is null; it must be the body's citizen_id")
    if key != event.citizen_id.encode():
        return _err(
            MESSAGE_KEY, "the Kafka key differs from the body's citizen_id; it must equal it"
        )
    return []


def _colons_in(obj: dict[str, Any]) -> int:
    """The ``:`` a JSON text of ``obj`` holds without escapes: one per member, plus those inside
    keys and strings. orjson writes no ``\\u`` escape for ``:`` and no whitespace, so it is
    the count in orjson's own serialisation (about a microsecond)."""
    try:
        return orjson.dumps(obj).count(b":")
    except orjson.JSONEncodeError:  # pragma: no cover - what orjson read it can write
        return -1


def _first_repeated_key(raw: bytes) -> str | None:
    repeated: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if not repeated and len(set(keys)) < len(keys):
            repeated.append(next(k for i, k in enumerate(keys) if k in keys[:i]))
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=pairs_hook)
    except (ValueError, RecursionError):  # orjson read it; nothing better to report
        return None
    return repeated[0] if repeated else None


def duplicate_key(raw: bytes, obj: dict[str, Any]) -> str | None:
    """A key that one JSON object of ``raw`` names twice, or None (issue 11 item 5).

    orjson keeps the last of repeated keys silently (``{"spo2": 97, "spo2": 80}`` reads as
    80). The hot path stays cheap: without ``\\u`` escapes, every ``:`` in the bytes is either
    one member's separator or a character of a key or string, so the bytes hold exactly
    ``_colons_in(obj)`` colons unless a member was lost to a repeated key. Only when the counts
    differ (or escapes make them incomparable) is the text parsed again, with the standard
    library and a pairs hook, to name the key.
    """
    if b"\\u" not in raw and raw.count(b":") == _colons_in(obj):
        return None
    return _first_repeated_key(raw)


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
