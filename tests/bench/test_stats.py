"""Benchmark arithmetic: percentiles, lag slope, the sustainable-rate decision and search."""

from __future__ import annotations

import math

import pytest

from bench.stats import (
    Criteria,
    StepResult,
    judge,
    max_sustainable,
    next_rate,
    percentile,
    slope,
    summarize_latencies,
)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99.9) == 7.0
    assert percentile(list(reversed(values)), 50) == 50


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], 0)
    # a missing escalation is infinite and pulls the tail up, not the median
    values = [10.0] * 98 + [math.inf] * 2
    assert percentile(values, 50) == 10.0
    assert math.isinf(percentile(values, 99))


def test_summarize_latencies_counts_missing() -> None:
    s = summarize_latencies([5.0, 10.0, math.inf])
    assert (s.count, s.missing, s.p50_ms) == (3, 1, 10.0)
    assert s.as_dict()["p99_ms"] is None  # infinite is reported as "never"


def test_slope() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(0, 5)]) == 0.0
    assert slope([(1, 5), (1, 9)]) == 0.0


def step(rate: float, growth: float, p99: float, sent_ratio: float = 1.0) -> StepResult:
    duration = 12.0
    samples = [(t / 4, 50 + growth * t / 4) for t in range(int(duration * 4) + 1)]
    lat = summarize_latencies([p99 / 2] * 98 + [p99] * 2)
    sent = int(rate * duration * sent_ratio)
    return StepResult(rate, duration, sent, duration, samples, lat)


def test_flat_lag_and_low_p99_is_sustainable() -> None:
    verdict = judge(step(1000, growth=20, p99=300))
    assert verdict.sustainable
    assert not verdict.reasons


def test_growing_lag_is_not_sustainable() -> None:
    verdict = judge(step(1000, growth=150, p99=300))
    assert not verdict.sustainable
    assert "lag grew" in verdict.reasons[0]


def test_high_p99_is_not_sustainable() -> None:
    verdict = judge(step(1000, growth=0, p99=1500), Criteria(p99_limit_ms=1000))
    assert not verdict.sustainable
    assert "p99" in verdict.reasons[0]


def test_generator_that_fell_behind_is_flagged() -> None:
    verdict = judge(step(1000, growth=0, p99=100, sent_ratio=0.8))
    assert verdict.generator_limited
    assert not verdict.sustainable


def test_no_escalations_cannot_be_judged_sustainable() -> None:
    s = step(1000, growth=0, p99=100)
    empty = StepResult(
        s.offered_rate,
        s.duration_s,
        s.sent,
        s.send_elapsed_s,
        s.lag_samples,
        summarize_latencies([]),
    )
    assert not judge(empty).sustainable


def test_max_sustainable_ignores_passes_above_a_failure() -> None:
    assert max_sustainable([(100, True), (150, True), (225, False)]) == 150
    assert max_sustainable([(100, True), (150, False), (200, True)]) == 100
    assert max_sustainable([(100, False)]) is None
    assert max_sustainable([]) is None


def test_next_rate_grows_then_bisects_then_stops() -> None:
    assert next_rate([], 100) == 100
    assert next_rate([(100, True)], 100, factor=1.5) == 150
    assert next_rate([(100, True), (150, False)], 100, factor=1.5) == 125
    # within 10 % of each other: done
    assert (
        next_rate(
            [(100, True), (150, False), (125, True), (137.5, True), (143.75, False)],
            100,
            resolution=0.1,
        )
        is None
    )


def test_next_rate_goes_down_when_the_first_step_fails_and_respects_max_steps() -> None:
    assert next_rate([(100, False)], 100, factor=2) == 50
    assert next_rate([(1, False)], 1, factor=2) is None
    history = [(100.0 * 2**i, True) for i in range(7)]
    assert next_rate(history, 100, factor=2, max_steps=7) is None
