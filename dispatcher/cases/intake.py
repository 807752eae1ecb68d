"""The case manager's input: raw bytes from ``acute.escalations`` -> an ``Escalation``, or a dead
letter (issue 11 item 1).

The topic is our own output, but anything can be written to it (a bug, a foreign producer, an
attacker), so the case-manager agent consumes raw bytes as the input agent does and never lets a
message crash it: what is not a valid ``Escalation``, or what PostgreSQL could not store (a NUL
character in a string: PostgreSQL ``text`` and ``jsonb`` refuse ``\\u0000``), becomes a dead letter
on ``dispatcher.dead-letter`` with the field, the reason and the category, and the escalations
after it are still applied. No I/O here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from dispatcher.contract.events import DeadLetter, Escalation, FieldError
from dispatcher.contract.vocab import WHOLE_MESSAGE, DeadLetterCategory
from dispatcher.ingest.planner import Incoming, make_dead_letter

# An escalation carries its reasons and a bounded context; far below this.
MAX_ESCALATION_BYTES = 256 * 1024


def _letter(
    msg: Incoming, field: str, reason: str, category: DeadLetterCategory, now: datetime
) -> DeadLetter:
    return make_dead_letter(msg, [FieldError(field=field, reason=reason)], now, None, category)


def _nul_field(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding a NUL character, else None."""
    if isinstance(value, str):
        return (path or WHOLE_MESSAGE) if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if "\x00" in str(k):
                return sub
            found = _nul_field(v, sub)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_field(v, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def decode_escalation(msg: Incoming, now: datetime) -> Escalation | DeadLetter:
    """The escalation in ``msg``, or the dead letter saying why it cannot be used."""
    raw = msg.value
    malformed = DeadLetterCategory.MALFORMED
    if not raw:
        return _letter(msg, WHOLE_MESSAGE, "empty message", malformed, now)
    if len(raw) > MAX_ESCALATION_BYTES:
        reason = f"message is {len(raw)} bytes; the limit is {MAX_ESCALATION_BYTES}"
        return _letter(msg, WHOLE_MESSAGE, reason, malformed, now)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _letter(msg, WHOLE_MESSAGE, f"not valid JSON (or UTF-8): {exc}", malformed, now)
    if not isinstance(obj, dict):
        reason = f"must be a JSON object, not {type(obj).__name__}"
        return _letter(msg, WHOLE_MESSAGE, reason, malformed, now)
    try:
        esc = Escalation.model_validate(obj)
    except ValidationError as exc:
        errors = [
            FieldError(field=".".join(map(str, e["loc"])) or WHOLE_MESSAGE, reason=e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        return make_dead_letter(msg, errors, now, None, DeadLetterCategory.VALIDATION)
    nul = _nul_field(obj)
    if nul is not None:
        reason = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
        return _letter(msg, nul, reason, DeadLetterCategory.VALIDATION, now)
    return esc


def store_error(msg: Incoming, exc: BaseException, now: datetime) -> DeadLetter:
    """A valid escalation PostgreSQL refused for a non-transient reason."""
    reason = f"{type(exc).__name__}: {str(exc)[:300]}"
    return _letter(msg, WHOLE_MESSAGE, reason, DeadLetterCategory.STORE_ERROR, now)
