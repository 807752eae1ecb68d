"""Pure benchmark arithmetic: percentiles, lag slope, "is this rate sustainable", next rate.

No I/O and no clock, so every decision the benchmark makes can be unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``p`` % of samples at or below
    it). ``math.inf`` is a valid sample (an escalation that never arrived). NaN for no data."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], not {p}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    missing: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int | None]:
        def clean(x: float) -> float | None:
            return None if math.isnan(x) or math.isinf(x) else round(x, 2)

        return {
            "count": self.count,
            "missing": self.missing,
            "p50_ms": clean(self.p50_ms),
            "p99_ms": clean(self.p99_ms),
            "p999_ms": clean(self.p999_ms),
            "max_ms": clean(self.max_ms),
        }


def summarize_latencies(latencies_ms: Sequence[float]) -> LatencySummary:
    """Percentiles over every expected escalation; one that never arrived counts as infinite."""
    missing = sum(1 for x in latencies_ms if math.isinf(x))
    return LatencySummary(
        count=len(latencies_ms),
        missing=missing,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
        p999_ms=percentile(latencies_ms, 99.9),
        max_ms=max(latencies_ms) if latencies_ms else math.nan,
    )


def slope(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y); 0.0 for fewer than two distinct times."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    my = sum(y for _, y in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (y - my) for t, y in samples) / var


@dataclass(frozen=True)
class Criteria:
    """When an offered rate counts as sustainable."""

    # Latency bound while stepping (the 250 ms target is judged separately). The embedded
    # broker alone puts p99 near 1 s at any rate (faust's 1.5 s fetch wait): 2 s = "bounded".
    p99_limit_ms: float = 2000.0
    max_lag_growth: float = 0.10  # lag may grow by at most this fraction of the offered rate
    min_send_ratio: float = 0.95  # the generator itself must have kept up


@dataclass(frozen=True)
class StepResult:
    offered_rate: float
    duration_s: float
    sent: int
    send_elapsed_s: float
    lag_samples: Sequence[tuple[float, float]]  # (s since step start, events without outcome)
    latency: LatencySummary

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.send_elapsed_s if self.send_elapsed_s > 0 else 0.0

    def lag_growth_per_s(self) -> float:
        """Slope of the lag over the second half of the traffic (the first half fills the
        pipeline)."""
        half = self.duration_s / 2
        tail = [(t, y) for t, y in self.lag_samples if half <= t <= self.duration_s]
        return slope(tail)


@dataclass(frozen=True)
class Verdict:
    sustainable: bool
    generator_limited: bool
    reasons: list[str] = field(default_factory=list)


def judge(step: StepResult, criteria: Criteria | None = None) -> Verdict:
    """Sustainable = the generator kept the rate, the lag stayed flat and p99 stayed bounded."""
    c = criteria or Criteria()
    reasons: list[str] = []
    generator_limited = step.achieved_rate < c.min_send_ratio * step.offered_rate
    if generator_limited:
        reasons.append(
            f"generator sent {step.achieved_rate:.0f}/s of {step.offered_rate:.0f}/s offered"
        )
    growth = step.lag_growth_per_s()
    if growth > c.max_lag_growth * step.offered_rate:
        reasons.append(
            f"lag grew {growth:.0f} events/s (> {c.max_lag_growth:.0%} of the offered rate)"
        )
    p99 = step.latency.p99_ms
    if step.latency.count == 0:
        reasons.append("no escalations to time")
    elif math.isnan(p99) or p99 > c.p99_limit_ms:
        shown = "never" if math.isinf(p99) else f"{p99:.0f} ms"
        reasons.append(f"p99 {shown} > {c.p99_limit_ms:.0f} ms")
    return Verdict(not reasons, generator_limited, reasons)


def max_sustainable(steps: Sequence[tuple[float, bool]]) -> float | None:
    """The highest sustainable offered rate below the lowest unsustainable one."""
    failed = [r for r, ok in steps if not ok]
    ceiling = min(failed) if failed else math.inf
    passed = [r for r, ok in steps if ok and r < ceiling]
    return max(passed) if passed else None


def next_rate(
    steps: Sequence[tuple[float, bool]],
    start: float,
    factor: float = 1.5,
    resolution: float = 0.1,
    max_steps: int = 7,
) -> float | None:
    """The next offered rate to try, or None when done.

    Grow by ``factor`` from ``start`` until a step fails (down by ``factor`` if the first one
    fails), then bisect between the best pass and the lowest fail until they are within
    ``resolution`` (relative) or ``max_steps`` steps were run.
    """
    if not steps:
        return start
    if len(steps) >= max_steps:
        return None
    failed = [r for r, ok in steps if not ok]
    best = max_sustainable(steps)
    if not failed:
        return max(r for r, _ in steps) * factor
    low_fail = min(failed)
    if best is None:
        lowest = min(r for r, _ in steps)
        return lowest / factor if lowest / factor >= 1 else None
    if low_fail - best <= resolution * best:
        return None
    return (best + low_fail) / 2
