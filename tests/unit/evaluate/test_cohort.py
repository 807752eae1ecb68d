"""The cohort generator: deterministic by seed, valid events, pseudonymous ids, sane labels."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from dispatcher.contract.vocab import CPR_PATTERN
from dispatcher.evaluate.cohort import EPISODES, Cohort, CohortSpec, generate
from dispatcher.ingest.decoding import Decoded, decode

SPEC = CohortSpec(citizens=16, days=3, seed=11)


@pytest.fixture(scope="module")
def cohort() -> Cohort:
    return generate(SPEC)


def _bytes(c: Cohort) -> tuple[bytes, bytes]:
    events = b"\n".join(orjson.dumps(e.as_json()) for e in c.events)
    labels = b"\n".join(orjson.dumps(e.as_json()) for e in c.episodes)
    return events, labels


def test_same_seed_same_bytes(cohort: Cohort) -> None:
    assert _bytes(generate(SPEC)) == _bytes(cohort)


def test_another_seed_another_cohort(cohort: Cohort) -> None:
    other = generate(CohortSpec(citizens=16, days=3, seed=12))
    assert _bytes(other)[0] != _bytes(cohort)[0]


def test_events_in_arrival_order_and_all_decode(cohort: Cohort) -> None:
    arrivals = [e.arrived_at for e in cohort.events]
    assert arrivals == sorted(arrivals)
    for e in cohort.events:
        result = decode(e.topic, orjson.dumps(e.value), e.arrived_at)
        assert isinstance(result, Decoded), (e.value, result)
        assert e.arrived_at >= result.event.occurred_at


def test_ids_are_pseudonymous_never_cpr_shaped(cohort: Cohort) -> None:
    ids = {c.citizen_id for c in cohort.citizens} | {
        v for c in cohort.citizens for v in c.devices.values()
    }
    ids |= {
        str(e.value[k])
        for e in cohort.events
        for k in ("citizen_id", "device_id", "observer")
        if k in e.value
    }
    assert len(ids) > len(cohort.citizens)
    assert all(not CPR_PATTERN.search(i) for i in ids)


def test_faults_are_present(cohort: Cohort) -> None:
    """Duplicated deliveries (same event id twice), late deliveries, incomplete NEWS2 sets."""
    ids = [e.value["event_id"] for e in cohort.events]
    assert len(ids) > len(set(ids))
    late = [e for e in cohort.events if e.arrived_at - _occurred(e.value) > timedelta(minutes=2)]
    assert late
    observations = [e.value for e in cohort.events if e.topic == "homecare.nurse-observations"]
    assert any("temperature" not in o or "respiration_rate" not in o for o in observations)


def _occurred(value: dict[str, object]) -> object:
    from datetime import datetime

    return datetime.fromisoformat(str(value["occurred_at"]))


def test_labels(cohort: Cohort) -> None:
    citizens = {c.citizen_id: c for c in cohort.citizens}
    big = generate(CohortSpec(citizens=120, days=14, seed=3, continuous_cadence_s=3600))
    kinds = {e.kind for e in big.episodes}
    assert kinds == set(EPISODES)  # every kind occurs in a realistic cohort
    for e in [*cohort.episodes, *big.episodes]:
        assert e.harm_by > e.onset
        assert e.tier in ("nurse", "doctor", "palliative")
        shape = EPISODES[e.kind]
        hours = (e.harm_by - e.onset) / timedelta(hours=1)
        assert shape.harm_h[0] <= hours <= shape.harm_h[1]
    for e in cohort.episodes:
        c = citizens[e.citizen_id]
        assert cohort.spec.start <= e.onset <= cohort.end
        assert (e.tier == "palliative") == (c.condition == "palliative")
        assert e.kind != "hypoglycaemia" or c.diabetic
    line = cohort.episodes[0].as_json() if cohort.episodes else big.episodes[0].as_json()
    assert {"citizen_id", "kind", "onset", "harm_by"} <= set(line)
