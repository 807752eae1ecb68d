"""The benchmark workload: deterministic per seed, the intended mix, valid events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from bench.workload import Kind, Mix, Workload, summarize
from dispatcher.ingest.decoding import Decoded, Rejected, decode

START = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TICK = timedelta(milliseconds=1)


def test_same_seed_and_salt_give_identical_batches() -> None:
    a = Workload(seed=3, citizens=500, salt="t")
    b = Workload(seed=3, citizens=500, salt="t")
    assert a.population(START, TICK) == b.population(START, TICK)
    assert a.batch(2000, START, TICK) == b.batch(2000, START, TICK)


def test_another_seed_or_salt_gives_another_batch() -> None:
    base = Workload(seed=3, citizens=500, salt="t").batch(200, START, TICK)
    assert Workload(seed=4, citizens=500, salt="t").batch(200, START, TICK) != base
    other_salt = Workload(seed=3, citizens=500, salt="u").batch(200, START, TICK)
    ids = {e.event_id for e in base if e.event_id}
    assert ids.isdisjoint({e.event_id for e in other_salt if e.event_id})


def test_mix_is_mostly_sensor_readings_with_a_few_percent_escalating() -> None:
    events = Workload(seed=7, citizens=10_000, salt="t").batch(20_000, START, TICK)
    counts = summarize(events)
    share = {k: counts[k] / counts["total"] for k in counts}
    assert share[Kind.SENSOR.value] > 0.7
    assert 0.02 <= share["escalating"] <= 0.05
    assert 0 < share[Kind.BAD.value] < 0.01
    assert 0 < share[Kind.DUPLICATE.value] < 0.02
    assert counts["accepted"] == counts["total"] - counts["bad"] - counts["duplicate"]


def test_duplicates_repeat_the_previous_event_bytes() -> None:
    events = Workload(seed=7, citizens=100, salt="t").batch(5000, START, TICK)
    for i, e in enumerate(events):
        if e.kind is Kind.DUPLICATE:
            previous = next(p for p in reversed(events[:i]) if p.kind is not Kind.DUPLICATE)
            assert (e.topic, e.key, e.value) == (previous.topic, previous.key, previous.value)
            assert not e.escalates
            assert not e.accepted


def test_events_decode_as_the_dispatcher_would() -> None:
    """Accepted events pass the real decoder; bad input is rejected; ids match."""
    wl = Workload(seed=7, citizens=50, salt="t")
    events = wl.population(START, TICK) + wl.batch(3000, START, TICK)
    now = START + timedelta(minutes=5)
    for e in events:
        result = decode(e.topic, e.value, now)
        if e.kind is Kind.BAD:
            assert isinstance(result, Rejected)
        else:
            assert isinstance(result, Decoded), (e.kind, result)
            assert str(result.event.event_id) == e.event_id
            assert result.event.citizen_id == e.key.decode()


def test_occurrence_times_never_go_backwards_across_batches() -> None:
    wl = Workload(seed=1, citizens=10, salt="t")
    first = wl.batch(100, START, TICK)
    second = wl.batch(100, START, TICK)  # asked to start earlier than the last event

    def at(e: object) -> str:
        return str(orjson.loads(e.value)["occurred_at"])  # type: ignore[attr-defined]

    assert at(second[0]) > at(first[-1])


def test_escalating_kinds() -> None:
    assert Mix().escalating == Mix().fall + Mix().deterioration + Mix().worry
    wl = Workload(seed=2, citizens=10, salt="t")
    assert wl.fall("c-1", START).escalates
    assert wl.observation("c-1", START, Kind.DETERIORATION).escalates
    assert not wl.observation("c-1", START).escalates
    assert not wl.sensor("c-1", START).escalates
