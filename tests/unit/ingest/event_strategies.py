"""Hypothesis strategies for valid-but-extreme input events of all three topics.

"Valid" means the contract accepts them at ``now``: every field within its schema limits and
every timestamp within the decoder's bounds. "Extreme" means at those limits: strings of the
maximum length in any (non-surrogate) unicode, lists at their maximum length, measurements of
any finite magnitude, timestamps from a year ago to minutes ahead with odd UTC offsets.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from dispatcher.contract.events import SENSOR_UNITS, DeviceProfile, DischargeFlag, SensorKind
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import CPR_PATTERN
from dispatcher.ingest.decoding import MAX_AGE, MAX_FOLLOW_UP_AHEAD, MAX_FUTURE_SKEW

# Any unicode a JSON string can carry (lone surrogates cannot be UTF-8 encoded).
UNICODE = st.characters(exclude_categories=("Cs",))
EDGE = timedelta(minutes=1)  # keep clear of the bounds: the planner may read "now" again


def text(min_size: int = 1, max_size: int = 120) -> st.SearchStrategy[str]:
    """Unicode text, often at the limit."""
    return st.one_of(
        st.text(UNICODE, min_size=min_size, max_size=max_size),
        st.text(UNICODE, min_size=max_size, max_size=max_size),
    )


pseudonyms = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{2,63}", fullmatch=True).filter(
    lambda s: not CPR_PATTERN.search(s)
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)


def instants(
    now: datetime, back: timedelta = MAX_AGE, ahead: timedelta = MAX_FUTURE_SKEW
) -> st.SearchStrategy[str]:
    """RFC 3339 timestamps in [now - back, now + ahead] (minus a margin), with odd offsets and
    microseconds, often right at the edges."""
    lo, hi = -(back - EDGE), ahead - EDGE
    deltas = st.one_of(
        st.timedeltas(min_value=lo, max_value=hi),
        st.sampled_from([lo, hi, timedelta(0), -timedelta(hours=24, seconds=1)]),
    )
    return st.builds(lambda d, tz: (now + d).astimezone(tz).isoformat(), deltas, offsets)


finite = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.sampled_from([0, -0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308]),
)


def envelope(now: datetime, citizen_id: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "event_id": st.uuids().map(str),
            "schema_version": st.just(1),
            "occurred_at": instants(now),
            "source": text(),
            "citizen_id": st.just(citizen_id) if citizen_id else pseudonyms,
        }
    )


def _merge(parts: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    return {**parts[0], **parts[1]}


def discharges(now: datetime, citizen_id: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    icd = st.from_regex(r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?", fullmatch=True)
    flag = st.one_of(
        st.sampled_from([f.value for f in DischargeFlag]),
        st.from_regex(r"[a-z][a-z0-9_]{1,63}", fullmatch=True),
    )
    follow_up = st.fixed_dictionaries(
        {"action": text()},
        optional={
            "due_by": st.one_of(st.none(), instants(now, ahead=MAX_FOLLOW_UP_AHEAD)),
            "responsible": st.one_of(st.none(), text()),
        },
    )
    body = st.fixed_dictionaries(
        {
            "discharged_at": instants(now, ahead=timedelta(0) + EDGE),
            "hospital": text(),
            "department": text(),
            "municipality": text(),
            "district": text(),
            "diagnoses": st.lists(icd, max_size=50),
            "flags": st.lists(flag, max_size=50),
            "follow_up": st.lists(follow_up, max_size=20),
        }
    )
    return st.tuples(envelope(now, citizen_id), body).map(_merge)


def sensor_readings(
    now: datetime, citizen_id: str | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    def body(kind: SensorKind) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {
                "kind": st.just(kind.value),
                "device_id": pseudonyms,
                "value": finite,
                "unit": st.sampled_from(sorted(SENSOR_UNITS[kind])),
            },
            optional={
                "device_profile": st.one_of(
                    st.none(), st.sampled_from([p.value for p in DeviceProfile])
                )
            },
        )

    kinds = st.sampled_from(list(SensorKind)).flatmap(body)
    return st.tuples(envelope(now, citizen_id), kinds).map(_merge)


def nurse_observations(
    now: datetime, citizen_id: str | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    vital = st.one_of(st.none(), finite)
    body = st.fixed_dictionaries(
        {"observer": pseudonyms},
        optional={
            "respiration_rate": vital,
            "spo2": vital,
            "systolic_bp": vital,
            "pulse": vital,
            "temperature": vital,
            "on_oxygen": st.one_of(st.none(), st.booleans()),
            "consciousness": st.one_of(st.none(), st.sampled_from(["A", "C", "V", "P", "U"])),
            "worried": st.booleans(),
            "note": st.one_of(st.none(), text(0, 2000)),
        },
    )
    return st.tuples(envelope(now, citizen_id), body).map(_merge)


BY_TOPIC = {
    DISCHARGES: discharges,
    SENSOR_READINGS: sensor_readings,
    NURSE_OBSERVATIONS: nurse_observations,
}


def events(
    now: datetime, citizen_id: str | None = None
) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    """(topic, body) of any of the three input topics."""
    return st.one_of(
        *[make(now, citizen_id).map(lambda b, t=t: (t, b)) for t, make in BY_TOPIC.items()]
    )


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode()


def fresh_citizen() -> str:
    h = uuid.uuid4().hex
    return f"cit-{h[:5]}x{h[5:10]}"
