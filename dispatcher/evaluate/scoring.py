"""Pages + labelled episodes -> detection, time to page, burden and PPV. Pure arithmetic.

Definitions (issue 14):

* An episode is **detected** when a page (a human notification decided by the case lifecycle:
  a new case, a raised severity, a re-escalation; not a rule firing absorbed by a case) for its
  citizen falls in ``[onset, harm_by]``. Minutes to page = first such page - onset.
* A page is a **true positive** when it falls in some episode's window of its citizen;
  ``ppv`` = true-positive pages / pages.
* **Right tier**: the first page in the window whose tier is the episode's ``tier`` (a doctor
  page also serves an episode that needs a nurse); episodes without a tier accept any.
* ``citizen_days``: per citizen, the span of its measurement events (discharges excluded), at
  least one day per citizen seen, summed.
* Percentiles are nearest-rank (p90 of 10 values is the 9th); ``None`` when there is none.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Label:
    citizen_id: str
    kind: str
    onset: datetime
    harm_by: datetime
    tier: str | None = None
    continuous: bool | None = None


@dataclass(frozen=True)
class ScoredPage:
    at: datetime
    citizen_id: str
    tier: str
    rules: tuple[str, ...]
    kind: str = "new"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def right_tier(page_tier: str, wanted: str | None) -> bool:
    if wanted is None:
        return True
    if wanted == "nurse":
        return page_tier in ("nurse", "doctor")
    return page_tier == wanted


def citizen_days(spans: dict[str, tuple[datetime, datetime]]) -> float:
    """Sum over citizens of their observed span in days, at least one day each."""
    return sum(max(1.0, (end - start) / timedelta(days=1)) for start, end in spans.values())


@dataclass
class _EpisodeResult:
    label: Label
    minutes: float | None
    right_minutes: float | None
    signal_minutes: float | None = None  # first abnormal measurement -> first page (>= 0)
    signalled: bool = False


def _episode_results(
    labels: Sequence[Label],
    pages: Sequence[ScoredPage],
    signals: dict[str, list[datetime]] | None = None,
) -> list[_EpisodeResult]:
    by_citizen: dict[str, list[ScoredPage]] = {}
    for p in sorted(pages, key=lambda p: p.at):
        by_citizen.setdefault(p.citizen_id, []).append(p)
    times = {c: [p.at for p in ps] for c, ps in by_citizen.items()}
    out = []
    for label in labels:
        ps = by_citizen.get(label.citizen_id, [])
        i = bisect.bisect_left(times.get(label.citizen_id, []), label.onset)
        minutes = right = None
        for p in ps[i:]:
            if p.at > label.harm_by:
                break
            if minutes is None:
                minutes = (p.at - label.onset) / timedelta(minutes=1)
            if right_tier(p.tier, label.tier):
                right = (p.at - label.onset) / timedelta(minutes=1)
                break
        result = _EpisodeResult(label, minutes, right)
        first_signal = min(
            (
                t
                for t in (signals or {}).get(label.citizen_id, ())
                if label.onset <= t <= label.harm_by
            ),
            default=None,
        )
        if first_signal is not None:
            result.signalled = True
            if minutes is not None:
                paged_at = label.onset + timedelta(minutes=minutes)
                result.signal_minutes = max(0.0, (paged_at - first_signal) / timedelta(minutes=1))
        out.append(result)
    return out


def _true_positive(page: ScoredPage, windows: dict[str, list[Label]]) -> bool:
    return any(lb.onset <= page.at <= lb.harm_by for lb in windows.get(page.citizen_id, ()))


def _detection(results: Sequence[_EpisodeResult]) -> dict[str, Any]:
    minutes = [r.minutes for r in results if r.minutes is not None]
    right = [r.right_minutes for r in results if r.right_minutes is not None]
    from_signal = [r.signal_minutes for r in results if r.signal_minutes is not None]
    n = len(results)
    return {
        "episodes_with_signal": sum(r.signalled for r in results),
        "median_minutes_signal_to_page": _round(_median(from_signal)),
        "episodes": n,
        "detected": len(minutes),
        "sensitivity": round(len(minutes) / n, 4) if n else None,
        "median_minutes_to_page": _round(_median(minutes)),
        "p90_minutes_to_page": _round(percentile(minutes, 90)),
        "detected_right_tier": len(right),
        "median_minutes_to_right_tier": _round(_median(right)),
    }


def score(
    name: str,
    labels: Sequence[Label],
    pages: Sequence[ScoredPage],
    days: float,
    extra: dict[str, Any] | None = None,
    *,
    signals: dict[str, list[datetime]] | None = None,
) -> dict[str, Any]:
    """The report entry of one rule set (the issue's output shape, plus a few extra fields).

    ``signals``: per citizen, when an abnormal measurement was taken; the first one inside an
    episode's window starts the dispatcher's own delay (``median_minutes_signal_to_page``: to
    the first page, 0 when a page came first)."""
    results = _episode_results(labels, pages, signals)
    windows: dict[str, list[Label]] = {}
    for lb in labels:
        windows.setdefault(lb.citizen_id, []).append(lb)
    tp = [_true_positive(p, windows) for p in pages]
    by_rule: dict[str, dict[str, Any]] = {}
    for page, hit in zip(pages, tp, strict=True):
        for rule in page.rules or ("(none)",):
            entry = by_rule.setdefault(rule, {"pages": 0, "true_positive": 0})
            entry["pages"] += 1
            entry["true_positive"] += int(hit)
    for entry in by_rule.values():
        entry["ppv"] = round(entry["true_positive"] / entry["pages"], 4)
    by_kind = {}
    for kind in sorted({lb.kind for lb in labels}):
        by_kind[kind] = _detection([r for r in results if r.label.kind == kind])
    continuous = [r for r in results if r.label.continuous]
    cont_minutes = [r.minutes for r in continuous if r.minutes is not None]
    cont_signal = [r.signal_minutes for r in continuous if r.signal_minutes is not None]
    result: dict[str, Any] = {"name": name, **_detection(results)}
    result |= {
        "pages": len(pages),
        "citizen_days": round(days, 1),
        "pages_per_100_citizen_days": round(100 * len(pages) / days, 2) if days else None,
        "ppv": round(sum(tp) / len(pages), 4) if pages else None,
        "continuous_episodes": len(continuous),
        "continuous_detected": len(cont_minutes),
        "median_minutes_to_page_continuous": _round(_median(cont_minutes)),
        "median_minutes_signal_to_page_continuous": _round(_median(cont_signal)),
        "pages_by_tier": _count(p.tier for p in pages),
        "pages_by_kind": _count(p.kind for p in pages),
        "by_kind": by_kind,
        "by_rule": dict(sorted(by_rule.items(), key=lambda kv: (-kv[1]["pages"], kv[0]))),
    }
    if extra:
        result |= extra
    return result


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def minutes_to_page(labels: Sequence[Label], pages: Sequence[ScoredPage]) -> list[float]:
    """Minutes from onset to the first page, per detected episode (for the plot)."""
    return [r.minutes for r in _episode_results(labels, pages) if r.minutes is not None]


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    if pct:
        return f"{100 * value:.1f} %"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


SUMMARY_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("episodes", "episodes", False),
    ("detected", "detected before harm", False),
    ("sensitivity", "sensitivity", True),
    ("median_minutes_to_page", "median minutes onset -> first page", False),
    ("p90_minutes_to_page", "p90 minutes onset -> first page", False),
    ("detected_right_tier", "detected at the right tier", False),
    ("median_minutes_to_right_tier", "median minutes to the right tier", False),
    ("continuous_episodes", "continuous-sensor episodes", False),
    ("median_minutes_to_page_continuous", "median minutes to page, continuous-sensor", False),
    ("episodes_with_signal", "episodes with an abnormal measurement before harm", False),
    ("median_minutes_signal_to_page", "median minutes first abnormal measurement -> page", False),
    (
        "median_minutes_signal_to_page_continuous",
        "the same, continuous-sensor episodes",
        False,
    ),
    ("pages", "pages", False),
    ("citizen_days", "citizen-days", False),
    ("pages_per_100_citizen_days", "pages per 100 citizen-days", False),
    ("ppv", "PPV (pages inside an episode)", True),
)


TARGET_SENSITIVITY = 0.95
TARGET_CONTINUOUS_MINUTES = 15.0


def targets(report: dict[str, Any], baseline: str = "news2_ge5") -> list[str]:
    """Issue 14's targets for the first rule set, against the baseline: a Markdown table."""
    sets = report["rulesets"]
    base = next((s for s in sets if s["name"] == baseline), None)
    first = next((s for s in sets if s["name"] != baseline), None)
    if first is None:
        return []

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else "met" if ok else "**not met**"

    sens = first.get("sensitivity")
    burden = first.get("pages_per_100_citizen_days")
    base_burden = base.get("pages_per_100_citizen_days") if base else None
    cont = first.get("median_minutes_to_page_continuous")
    rows = [
        (
            f"sensitivity >= {100 * TARGET_SENSITIVITY:g} % before harm",
            _fmt(sens, True),
            verdict(None if sens is None else sens >= TARGET_SENSITIVITY),
        ),
        (
            f"pages per 100 citizen-days <= {baseline}'s ({_fmt(base_burden)})",
            _fmt(burden),
            verdict(None if burden is None or base_burden is None else burden <= base_burden),
        ),
        (
            f"median minutes onset -> first page <= {TARGET_CONTINUOUS_MINUTES:g}, "
            "continuous-sensor episodes",
            _fmt(cont),
            verdict(None if cont is None else cont <= TARGET_CONTINUOUS_MINUTES),
        ),
    ]
    lines = [
        f"## Targets (issue 14): {first['name']}",
        "",
        f"| target | {first['name']} | result |",
        "|---|---:|---|",
    ]
    lines += [f"| {t} | {v} | {r} |" for t, v, r in rows]
    return [*lines, ""]


def markdown(report: dict[str, Any]) -> str:
    """The readable report: summary side by side, the targets, then per episode kind and per
    rule."""
    sets = report["rulesets"]
    names = [s["name"] for s in sets]
    lines = ["# Evaluation", ""]
    if report.get("cohort"):
        lines += [report["cohort"], ""]
    lines += ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key, title, pct in SUMMARY_ROWS:
        lines.append(f"| {title} | " + " | ".join(_fmt(s.get(key), pct) for s in sets) + " |")
    lines += ["", *targets(report)]
    lines += ["## By episode kind (detected / episodes, median minutes to page)", ""]
    kinds = sorted({k for s in sets for k in s["by_kind"]})
    lines += ["| kind | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for kind in kinds:
        cells = []
        for s in sets:
            k = s["by_kind"].get(kind)
            cells.append(
                "-"
                if k is None
                else f"{k['detected']}/{k['episodes']} ({_fmt(k['sensitivity'], True)}), "
                f"{_fmt(k['median_minutes_to_page'])} min"
            )
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    for s in sets:
        lines += ["", f"## Pages by rule: {s['name']}", ""]
        lines += ["| rule | pages | true positive | PPV |", "|---|---:|---:|---:|"]
        for rule, r in s["by_rule"].items():
            lines.append(
                f"| {rule} | {r['pages']} | {r['true_positive']} | {_fmt(r['ppv'], True)} |"
            )
    return "\n".join(lines) + "\n"
