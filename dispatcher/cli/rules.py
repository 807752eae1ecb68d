"""CLI commands of the clinical rules engine: ``assess``, ``rules test`` and ``rules check``.

* ``dispatcher assess [--context FILE] [--rules FILE] [--now TIME]`` reads nurse observations
  (the public event JSON, one per line) on stdin and prints one JSON line per input: the
  explained assessment, or ``{"line": n, "error": {"field": ..., "reason": ...}}``. Lines are
  decoded with ``dispatcher.ingest.decoding.decode`` and evaluated with
  ``dispatcher.ingest.planner.decide`` (``evaluate`` bounded by the topic's maximum age),
  exactly as the streaming path does, with the citizen's context carried from line to line;
  the input is read to its end and decided as one batch of the streaming path would be (per
  citizen in ``occurred_at`` order, ``planner.decision_order``), the output is in line order.
* ``dispatcher rules test --event FILE [--context FILE] [--rules FILE] [--json]`` shows which
  rules fire for one event (or several, in order) and where the case would route, like
  Alertmanager's ``amtool config routes test``.
* ``dispatcher rules check FILE`` validates a rule set; exit 1 with errors naming file, rule and
  field.

``--context FILE`` holds earlier events (typically the citizen's discharge; sensor readings and
observations are allowed too) as one JSON object, a JSON array or JSON lines; they are folded
into the context before the input is evaluated. Exit codes: 0 all good, 1 some input (or the
checked rule set) was invalid, 2 the options or files given could not be used.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import orjson

from dispatcher.contract.events import InputEvent, Route
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.errors import PermanentError
from dispatcher.ingest.decoding import Decoded, Rejected, decode
from dispatcher.ingest.planner import decide, decision_order, rule_error
from dispatcher.rules.assessment import Assessment
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.first_route import first_route
from dispatcher.rules.ruleset import (
    RuleSet,
    RuleSetError,
    default_ruleset,
    load_ruleset,
)


class UsageError(PermanentError):
    """An option or input file that cannot be used (exit 2)."""


# ---------------------------------------------------------------------------------------------
# Pure helpers (shared by the commands and the tests)
# ---------------------------------------------------------------------------------------------


def topic_for(obj: dict[str, Any]) -> str:
    """Guess the input topic of a public event from its fields."""
    if "discharged_at" in obj:
        return DISCHARGES
    if "device_id" in obj or "kind" in obj:
        return SENSOR_READINGS
    return NURSE_OBSERVATIONS


def decode_document(
    raw: bytes, n: int, source: str, now: datetime, default_topic: str
) -> tuple[str, Decoded | Rejected]:
    """Decode event ``n`` of a file on the topic its fields suggest (the streaming decoder, so
    errors read the same); a document that is not JSON at all is a ``UsageError``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"{source}: event {n}: not valid JSON: {exc}") from None
    topic = topic_for(obj) if isinstance(obj, dict) else default_topic
    return topic, decode(topic, raw, now)


def split_documents(text: str) -> list[bytes]:
    """One JSON object, a JSON array of objects, or JSON lines -> one byte string per event."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return [line.strip().encode() for line in text.splitlines() if line.strip()]
    items = whole if isinstance(whole, list) else [whole]
    return [orjson.dumps(item) for item in items]


def route_for(assessment: Assessment, ctx: CitizenContext) -> Route | None:
    return first_route(assessment, ctx) if assessment.escalate else None


def fold_events(
    raw_events: Iterable[bytes],
    contexts: dict[str, CitizenContext],
    now: datetime,
    ruleset: RuleSet,
    source: str,
) -> dict[str, CitizenContext]:
    """Fold earlier events into the contexts; an invalid one is a ``UsageError``."""
    out = dict(contexts)
    events: list[tuple[str, InputEvent]] = []
    for n, raw in enumerate(raw_events, start=1):
        topic, result = decode_document(raw, n, source, now, DISCHARGES)
        if not isinstance(result, Decoded):
            err = result.errors[0]
            raise UsageError(f"{source}: event {n}: field {err.field!r}: {err.reason}")
        events.append((topic, result.event))
    for i in decision_order(events):  # as one batch of the streaming path would be decided
        topic, ev = events[i]
        out[ev.citizen_id] = decide(topic, ev, out.get(ev.citizen_id), now, ruleset).context
    return out


def assessment_json(assessment: Assessment, route: Route | None, line: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"line": line, **assessment.model_dump(mode="json")}
    doc["route"] = route.model_dump(mode="json") if route is not None else None
    return doc


def assess_lines(
    lines: Iterable[str | bytes],
    contexts: dict[str, CitizenContext],
    now: datetime,
    ruleset: RuleSet,
) -> Iterator[dict[str, Any]]:
    """One output document per non-blank input line (nurse observations), in line order.

    Mirrors ``dispatcher.ingest.planner.plan_batch`` on one batch holding all the lines:
    decode like the streaming path, decide per citizen in ``occurred_at`` order
    (``decision_order``; the input is read to its end first), skip a repeated event id,
    carry the citizen's context forward, and turn a rule exception into a ``rule_error`` on
    the whole event.
    """
    current = dict(contexts)
    seen: set[UUID] = set()
    out: dict[int, dict[str, Any]] = {}
    valid: list[tuple[int, InputEvent]] = []
    for n, line in enumerate(lines, start=1):
        raw = line.encode() if isinstance(line, str) else line
        if not raw.strip():
            continue
        result = decode(NURSE_OBSERVATIONS, raw.strip(), now)
        if not isinstance(result, Decoded):
            err = result.errors[0]
            out[n] = {
                "line": n,
                "event_id": str(result.event_id) if result.event_id else None,
                "error": err.model_dump(),
                "errors": [e.model_dump() for e in result.errors],
            }
            continue
        valid.append((n, result.event))
    for i in decision_order([(NURSE_OBSERVATIONS, event) for _, event in valid]):
        n, event = valid[i]
        if event.event_id in seen:
            out[n] = {"line": n, "event_id": str(event.event_id), "skipped": "duplicate event_id"}
            continue
        try:
            decision = decide(
                NURSE_OBSERVATIONS, event, current.get(event.citizen_id), now, ruleset
            )
            assessment, ctx = decision.assessment, decision.context
            route = route_for(assessment, ctx)
        except Exception as exc:  # same isolation as plan_batch: one bad event, not the rest
            out[n] = {
                "line": n,
                "event_id": str(event.event_id),
                "category": DeadLetterCategory.RULE_ERROR,
                "error": rule_error(exc).model_dump(),
            }
            continue
        seen.add(event.event_id)
        current[event.citizen_id] = ctx
        out[n] = assessment_json(assessment, route, n)
    for n in sorted(out):
        yield out[n]


# ---------------------------------------------------------------------------------------------
# Human-readable explanation for `rules test`
# ---------------------------------------------------------------------------------------------


def explain(event: InputEvent, assessment: Assessment, route: Route | None, rs: RuleSet) -> str:
    a = assessment
    lines = [
        f"event {a.event_id} ({a.event_kind}, citizen {a.citizen_id}, "
        f"occurred {event.occurred_at.isoformat()}) - rule set {a.ruleset}"
    ]
    if a.news2 is not None:
        n2 = a.news2
        subs = " ".join(f"{k}={v}" for k, v in n2.subscores.items()) or "-"
        lines.append(
            f"  NEWS2 {n2.total} risk {n2.risk} (SpO2 scale {n2.scale}) - {a.news2_urgency}"
        )
        lines.append(f"    sub-scores: {subs}")
        if n2.missing:
            lines.append(f"    missing (not scored): {', '.join(n2.missing)}")
    fired = {r.rule_id for r in a.reasons} | {r.rule_id for r in a.suppressed}
    if a.reasons:
        lines.append("  rules fired:")
        width = max(len(f"{r.rule_id} v{r.rule_version}") for r in a.reasons)
        lines.extend(
            f"    {f'{r.rule_id} v{r.rule_version}':<{width}}  {r.summary}" for r in a.reasons
        )
    else:
        lines.append("  rules fired: none")
    if a.suppressed:
        lines.append("  matched but suppressed (stale, out-of-order event; never paged):")
        lines.extend(f"    {r.rule_id} v{r.rule_version}  {r.summary}" for r in a.suppressed)
    for q in a.quarantined:
        lines.append(f"  quarantined {q.field}: {q.reason}")
    for note in a.notes:
        lines.append(f"  note: {note}")
    quiet = [r.id for r in rs.enabled() if r.id not in fired]
    lines.append(f"  did not fire: {', '.join(quiet) or '-'}")
    if a.escalate:
        lines.append(
            f"  decision: ESCALATE {a.severity}, acknowledge within {a.response_minutes} min "
            f"(by {a.response_deadline.isoformat() if a.response_deadline else '?'}), "
            f"competence {a.competence}"
        )
    else:
        lines.append(f"  decision: no escalation (severity {a.severity})")
    if route is not None:
        lines.append(f"  route: {route.tier} -> {route.team} (competence {route.competence})")
        lines.append(f"    because: {route.reason}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--now {value!r} is not an ISO 8601 timestamp") from None
    if at.tzinfo is None:
        raise UsageError(f"--now {value!r} needs a UTC offset, e.g. 2026-11-21T09:00:00+01:00")
    return at


def _ruleset(path: str | None) -> RuleSet:
    if path is None:
        return default_ruleset()
    try:
        return load_ruleset(path)
    except RuleSetError as exc:
        raise UsageError(f"invalid rule set:\n{exc}") from None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _contexts(path: str | None, now: datetime, rs: RuleSet) -> dict[str, CitizenContext]:
    if path is None:
        return {}
    return fold_events(split_documents(_read(path)), {}, now, rs, path)


def run_assess(
    stdin: TextIO,
    stdout: TextIO,
    *,
    context: str | None,
    rules: str | None,
    now: datetime,
) -> int:
    rs = _ruleset(rules)
    contexts = _contexts(context, now, rs)
    rc = 0
    for doc in assess_lines(stdin, contexts, now, rs):
        if "error" in doc:
            rc = 1
        stdout.write(orjson.dumps(doc).decode() + "\n")
        stdout.flush()
    return rc


def cmd_assess(args: argparse.Namespace) -> int:
    try:
        return run_assess(
            sys.stdin, sys.stdout, context=args.context, rules=args.rules, now=_now(args.now)
        )
    except UsageError as exc:
        print(f"dispatcher assess: {exc}", file=sys.stderr)
        return 2


def run_rules_test(
    stdout: TextIO,
    *,
    event: str,
    context: str | None,
    rules: str | None,
    now: datetime,
    as_json: bool,
) -> int:
    rs = _ruleset(rules)
    contexts = _contexts(context, now, rs)
    docs = split_documents(_read(event))
    if not docs:
        raise UsageError(f"{event}: no event found")
    results: dict[int, dict[str, Any]] = {}
    texts: dict[int, str] = {}
    valid: list[tuple[int, str, InputEvent]] = []
    for n, raw in enumerate(docs, start=1):
        topic, decoded = decode_document(raw, n, event, now, NURSE_OBSERVATIONS)
        if not isinstance(decoded, Decoded):
            errs = [e.model_dump() for e in decoded.errors]
            results[n] = {"event": n, "topic": topic, "error": errs[0], "errors": errs}
            texts[n] = f"event {n} ({topic}): invalid: " + "; ".join(
                f"{e['field']}: {e['reason']}" for e in errs
            )
            continue
        valid.append((n, topic, decoded.event))
    # Decided as the streaming path decides one batch (per citizen by occurred_at, a discharge
    # first), reported in file order.
    for i in decision_order([(topic, ev) for _, topic, ev in valid]):
        n, topic, ev = valid[i]
        decision = decide(topic, ev, contexts.get(ev.citizen_id), now, rs)
        assessment, ctx = decision.assessment, decision.context
        contexts[ev.citizen_id] = ctx
        route = route_for(assessment, ctx)
        results[n] = {
            "event": n,
            "topic": topic,
            "assessment": assessment.model_dump(mode="json"),
            "route": route.model_dump(mode="json") if route else None,
        }
        texts[n] = explain(ev, assessment, route, rs)
        if decision.reassessments:
            results[n]["reassessed"] = [
                {
                    "assessment": again.model_dump(mode="json"),
                    "route": r.model_dump(mode="json") if (r := route_for(again, ctx)) else None,
                    "escalation_id": str(esc.escalation_id),
                }
                for again, esc in zip(decision.reassessments, decision.escalations, strict=True)
            ]
            texts[n] += "\n  re-assessed earlier observations with this discharge:\n" + "\n".join(
                f"    {again.event_id}: ESCALATE {again.severity}"
                for again in decision.reassessments
            )
    ordered = [results[n] for n in sorted(results)]
    if as_json:
        stdout.write(orjson.dumps(ordered, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        stdout.write("\n\n".join(texts[n] for n in sorted(texts)) + "\n")
    return 1 if any("error" in r for r in ordered) else 0


def run_rules_check(stdout: TextIO, stderr: TextIO, path: str) -> int:
    try:
        rs = load_ruleset(path)
    except RuleSetError as exc:
        for issue in exc.issues:
            stderr.write(f"{issue}\n")
        stderr.write(f"{path}: {len(exc.issues)} error(s)\n")
        return 1
    stdout.write(f"{path}: ok - rule set {rs.label}, {len(rs.rules)} rules\n")
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    try:
        if args.rules_command == "check":
            return run_rules_check(sys.stdout, sys.stderr, args.file)
        return run_rules_test(
            sys.stdout,
            event=args.event,
            context=args.context,
            rules=args.rules,
            now=_now(args.now),
            as_json=args.json,
        )
    except UsageError as exc:
        print(f"dispatcher rules {args.rules_command}: {exc}", file=sys.stderr)
        return 2


def add_subparsers(sub: Any) -> None:
    """Register ``assess`` and ``rules`` on the ``dispatcher`` command's subparsers."""
    now_help = "evaluation time, ISO 8601 with offset (default: the clock)"
    assess = sub.add_parser(
        "assess", help="assess nurse observations (JSON lines on stdin) with the rules engine"
    )
    assess.add_argument("--context", help="earlier events, e.g. the citizen's discharge (JSON)")
    assess.add_argument("--rules", help="rule set YAML (default: the packaged rule set)")
    assess.add_argument("--now", help=now_help)

    rules = sub.add_parser("rules", help="test or check clinical rule sets")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    test = rsub.add_parser("test", help="show which rules fire for an event and where it routes")
    test.add_argument("--event", required=True, help="event JSON file (one, an array or lines)")
    test.add_argument("--context", help="earlier events, e.g. the citizen's discharge (JSON)")
    test.add_argument("--rules", help="rule set YAML (default: the packaged rule set)")
    test.add_argument("--now", help=now_help)
    test.add_argument("--json", action="store_true", help="machine-readable output")
    check = rsub.add_parser("check", help="validate a rule set file")
    check.add_argument("file")


HANDLERS = {"assess": cmd_assess, "rules": cmd_rules}
