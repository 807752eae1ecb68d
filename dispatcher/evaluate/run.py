"""``dispatcher evaluate run`` without the files: parse the interface lines, simulate, score.

Pure: the CLI reads the files and hands the lines over. EVENTS lines are
``{"topic", "value", "arrived_at"?}`` (``arrived_at`` defaults to the value's ``occurred_at``),
LABELS lines ``{"citizen_id", "kind", "onset", "harm_by"}`` (plus optional ``tier`` and
``continuous``). Every rule set runs over the same messages in a fresh simulator with the same
staff seed; the ``news2_ge5`` baseline is computed from the audit rows of the first one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from dispatcher.contract.topics import DISCHARGES
from dispatcher.evaluate import baseline as baseline_mod
from dispatcher.evaluate.scoring import Label, ScoredPage, citizen_days, score
from dispatcher.evaluate.simulator import SILENCE_SCAN_S, PageRecord, SimulationLog, Simulator
from dispatcher.evaluate.staff import SimulatedStaff
from dispatcher.routing.roster import Roster
from dispatcher.rules.ruleset import RuleSet

# After the last message the timers run this much longer (deadlines, answers), not more:
# every citizen falls silent when the data ends, which is no reason to page.
TAIL = timedelta(hours=1)


class InputError(ValueError):
    """A line of EVENTS or LABELS that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Message:
    topic: str
    value: bytes
    arrived_at: datetime
    citizen_id: str | None
    occurred_at: datetime | None


def _time(raw: Any, what: str) -> datetime:
    if not isinstance(raw, str):
        raise InputError(f"{what}: must be an RFC 3339 time string")
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what}: not an RFC 3339 time: {raw!r}") from exc
    if at.tzinfo is None:
        raise InputError(f"{what}: needs a UTC offset: {raw!r}")
    return at


def _object(line: str | bytes, where: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{where}: must be a JSON object")
    return obj


def parse_events(lines: Iterable[str | bytes], source: str = "EVENTS") -> list[Message]:
    out: list[Message] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        obj = _object(line, where)
        topic, value = obj.get("topic"), obj.get("value")
        if not isinstance(topic, str):
            raise InputError(f"{where}: 'topic' must be a string")
        if "value" not in obj:
            raise InputError(f"{where}: 'value' is missing")
        # orjson's buffer is over-allocated (~4 KB a value): keep an exact-size copy
        raw = value.encode() if isinstance(value, str) else bytes(memoryview(orjson.dumps(value)))
        occurred = None
        citizen = None
        if isinstance(value, dict):
            citizen = value.get("citizen_id") if isinstance(value.get("citizen_id"), str) else None
            try:
                occurred = _time(value.get("occurred_at"), where)
            except InputError:
                occurred = None
        if "arrived_at" in obj:
            arrived = _time(obj["arrived_at"], f"{where}: arrived_at")
        elif occurred is not None:
            arrived = occurred
        else:
            raise InputError(f"{where}: no 'arrived_at' and no readable value.occurred_at")
        out.append(Message(topic, raw, arrived, citizen, occurred))
    return out


def parse_labels(lines: Iterable[str | bytes], source: str = "LABELS") -> list[Label]:
    out: list[Label] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        obj = _object(line, where)
        citizen, kind = obj.get("citizen_id"), obj.get("kind")
        if not isinstance(citizen, str) or not isinstance(kind, str):
            raise InputError(f"{where}: 'citizen_id' and 'kind' must be strings")
        onset = _time(obj.get("onset"), f"{where}: onset")
        harm_by = _time(obj.get("harm_by"), f"{where}: harm_by")
        if harm_by < onset:
            raise InputError(f"{where}: harm_by is before onset")
        tier = obj.get("tier") if isinstance(obj.get("tier"), str) else None
        continuous = obj.get("continuous") if isinstance(obj.get("continuous"), bool) else None
        out.append(Label(citizen, kind, onset, harm_by, tier, continuous))
    return out


def spans(messages: Sequence[Message]) -> dict[str, tuple[datetime, datetime]]:
    """Per citizen, the first and last ``occurred_at`` of its measurement events."""
    out: dict[str, tuple[datetime, datetime]] = {}
    for m in messages:
        if m.topic == DISCHARGES or m.citizen_id is None or m.occurred_at is None:
            continue
        lo, hi = out.get(m.citizen_id, (m.occurred_at, m.occurred_at))
        out[m.citizen_id] = (min(lo, m.occurred_at), max(hi, m.occurred_at))
    return out


def in_episode(labels: Sequence[Label]) -> Any:
    by: dict[str, list[Label]] = {}
    for lb in labels:
        by.setdefault(lb.citizen_id, []).append(lb)

    def inside(citizen_id: str, at: datetime) -> bool:
        return any(lb.onset <= at <= lb.harm_by for lb in by.get(citizen_id, ()))

    return inside


def _scored(p: PageRecord) -> ScoredPage:
    return ScoredPage(p.at, p.citizen_id, p.tier, p.rules, p.kind)


@dataclass
class Evaluation:
    report: dict[str, Any]
    pages: dict[str, list[ScoredPage]] = field(default_factory=dict)
    logs: dict[str, SimulationLog] = field(default_factory=dict)


def simulate(
    messages: Sequence[Message],
    ruleset: RuleSet,
    roster: Roster | None,
    labels: Sequence[Label],
    *,
    seed: int = 0,
    baseline: baseline_mod.News2Baseline | None = None,
    silence_scan_s: float = SILENCE_SCAN_S,
) -> SimulationLog:
    """One rule set over the messages, in arrival order, with seeded staff."""
    staff = SimulatedStaff(seed=seed, in_episode=in_episode(labels))
    sim = Simulator(
        ruleset=ruleset,
        roster=roster,
        responder=staff,
        silence_scan_s=silence_scan_s,
        observe_audit=baseline.observe if baseline is not None else None,
    )
    last: datetime | None = None
    for m in messages:
        key = m.citizen_id.encode() if m.citizen_id else None
        sim.deliver(m.topic, m.value, m.arrived_at, key)
        last = m.arrived_at if last is None else max(last, m.arrived_at)
    if last is not None:
        sim.finish(last + TAIL)
    return sim.log


def evaluate(
    messages: Sequence[Message],
    labels: Sequence[Label],
    rulesets: Sequence[tuple[str, RuleSet]],
    roster: Roster | None,
    *,
    seed: int = 0,
    with_baseline: bool = True,
    silence_scan_s: float = SILENCE_SCAN_S,
) -> Evaluation:
    """Score every rule set, then the baseline; the issue's output shape under ``rulesets``."""
    days = citizen_days(spans(messages))
    out = Evaluation(report={"rulesets": []})
    # The baseline observes the first run's audit rows (always, for the abnormal-measurement
    # times every entry is scored with); it is reported unless ``with_baseline`` is False.
    base = baseline_mod.News2Baseline()
    logs: list[tuple[str, RuleSet, SimulationLog]] = []
    for i, (name, ruleset) in enumerate(rulesets):
        log = simulate(
            messages,
            ruleset,
            roster,
            labels,
            seed=seed,
            baseline=base if i == 0 else None,
            silence_scan_s=silence_scan_s,
        )
        logs.append((name, ruleset, log))
    for name, ruleset, log in logs:
        pages = [_scored(p) for p in log.pages]
        extra = {
            "ruleset": ruleset.label,
            "escalations": len(log.escalations),
            "dead_letters": log.dead_letters,
            "duplicates": log.duplicates,
            "acknowledged": log.acknowledged,
        }
        out.report["rulesets"].append(score(name, labels, pages, days, extra, signals=base.signals))
        out.pages[name] = pages
        out.logs[name] = log
    if with_baseline:
        entry = score(baseline_mod.NAME, labels, base.pages, days, signals=base.signals)
        out.report["rulesets"].append(entry)
        out.pages[baseline_mod.NAME] = base.pages
    return out
