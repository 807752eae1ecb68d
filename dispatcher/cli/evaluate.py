"""``dispatcher evaluate generate|run``: a simulated cohort, and the clinical effect measured on it.

* ``dispatcher evaluate generate --citizens N --days D --seed S --out DIR`` writes
  ``DIR/EVENTS.ndjson`` and ``DIR/LABELS.ndjson`` (``dispatcher.evaluate.cohort``).
* ``dispatcher evaluate run --events E --labels L [--rules FILE ...] [--json] [--plot PNG]``
  replays the events through the real pure core on a virtual clock for each rule set (default:
  the packaged one) and the ``news2_ge5`` baseline, and prints the report: Markdown, or the
  issue's JSON shape with ``--json``. ``--plot`` needs matplotlib (the ``bench`` extra).

The files are read here; everything else is ``dispatcher.evaluate`` (pure). Exit codes: 0 done,
2 the options or files could not be used.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from dispatcher.evaluate import cohort as cohort_mod
from dispatcher.evaluate.run import Evaluation, InputError, evaluate, parse_events, parse_labels
from dispatcher.evaluate.scoring import markdown, minutes_to_page
from dispatcher.routing.roster import Roster, RosterError, parse_roster
from dispatcher.rules.ruleset import RuleSet, RuleSetError, default_ruleset, load_ruleset

EVENTS_FILE = "EVENTS.ndjson"
LABELS_FILE = "LABELS.ndjson"
# ``--doc FILE`` replaces what lies between these two lines with the run's report.
DOC_BEGIN = "<!-- evaluate:begin (written by `make evaluate`; edits here are overwritten) -->"
DOC_END = "<!-- evaluate:end -->"


def update_doc(path: Path, block: str) -> None:
    """Put ``block`` between the markers of ``path`` (appended with them when absent)."""
    text = path.read_text("utf-8") if path.exists() else ""
    fresh = f"{DOC_BEGIN}\n{block.rstrip()}\n{DOC_END}"
    if DOC_BEGIN in text and DOC_END in text:
        head, rest = text.split(DOC_BEGIN, 1)
        tail = rest.split(DOC_END, 1)[1]
        text = head + fresh + tail
    else:
        text = text + ("\n" if text and not text.endswith("\n") else "") + fresh + "\n"
    path.write_text(text, "utf-8")


def seed_roster() -> Roster:
    """The demo roster shipped beside the router (``dispatcher/routing/seed_roster.yaml``)."""
    text = resources.files("dispatcher.routing").joinpath("seed_roster.yaml").read_text("utf-8")
    return parse_roster(text, "dispatcher/routing/seed_roster.yaml")


def write_cohort(cohort: cohort_mod.Cohort, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    events, labels = out / EVENTS_FILE, out / LABELS_FILE
    with events.open("wb") as f:
        for line in cohort.events:
            f.write(orjson.dumps(line.as_json()) + b"\n")
    with labels.open("wb") as f:
        for episode in cohort.episodes:
            f.write(orjson.dumps(episode.as_json()) + b"\n")
    return events, labels


def cmd_generate(args: argparse.Namespace) -> int:
    start = cohort_mod.DEFAULT_START
    if args.start:
        start = datetime.fromisoformat(args.start)
        if start.tzinfo is None:
            print("dispatcher evaluate generate: --start needs a UTC offset", file=sys.stderr)
            return 2
    spec = cohort_mod.CohortSpec(
        citizens=args.citizens, days=args.days, seed=args.seed, start=start
    )
    cohort = cohort_mod.generate(spec)
    events, labels = write_cohort(cohort, Path(args.out))
    print(
        f"wrote {events} ({len(cohort.events)} messages, {spec.citizens} citizens, "
        f"{spec.days} days) and {labels} ({len(cohort.episodes)} episodes)"
    )
    return 0


def _rulesets(files: Sequence[str] | None) -> list[tuple[str, RuleSet]]:
    if not files:
        return [("default", default_ruleset())]
    out: list[tuple[str, RuleSet]] = []
    for f in files:
        rs = load_ruleset(f)
        name = rs.ruleset
        if any(n == name for n, _ in out):
            name = f"{name} ({Path(f).name})"
        out.append((name, rs))
    return out


def plot(evaluation: Evaluation, labels: Any, path: Path) -> bool:
    """Time to page (per rule set) and pages per day; False when matplotlib is missing."""
    try:  # optional: only the bench extra installs it; untyped, hence import_module
        matplotlib: Any = importlib.import_module("matplotlib")
        matplotlib.use("Agg")
        plt: Any = importlib.import_module("matplotlib.pyplot")
    except ImportError:
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, pages in evaluation.pages.items():
        minutes = sorted(minutes_to_page(labels, pages))
        if minutes:
            ys = [(i + 1) / len(labels) for i in range(len(minutes))]
            ax1.step(minutes, ys, where="post", label=name)
        per_day: dict[str, int] = {}
        for p in pages:
            day = p.at.date().isoformat()
            per_day[day] = per_day.get(day, 0) + 1
        days = sorted(per_day)
        ax2.plot(days, [per_day[d] for d in days], marker="o", label=name)
    ax1.set_xscale("symlog", linthresh=10)
    ax1.set_xlabel("minutes from onset to first page")
    ax1.set_ylabel("share of all episodes detected")
    ax1.set_title("Time to page (cumulative)")
    ax1.legend()
    ax2.set_title("Pages per day")
    ax2.tick_params(axis="x", rotation=60, labelsize=7)
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def cmd_run(args: argparse.Namespace) -> int:
    try:
        with Path(args.events).open("rb") as f:
            messages = parse_events(f, args.events)
        with Path(args.labels).open("rb") as f:
            labels = parse_labels(f, args.labels)
        rulesets = _rulesets(args.rules)
        roster = (
            parse_roster(Path(args.roster).read_text("utf-8"), args.roster)
            if args.roster
            else seed_roster()
        )
    except (OSError, InputError, RuleSetError, RosterError) as exc:
        print(f"dispatcher evaluate run: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = evaluate(messages, labels, rulesets, roster, seed=args.seed)
    seconds = time.perf_counter() - started
    citizens = len({m.citizen_id for m in messages if m.citizen_id})
    result.report["cohort"] = (
        f"{len(messages)} messages from {citizens} citizens ({Path(args.events).name}); "
        f"{len(labels)} labelled episodes ({Path(args.labels).name}); staff seed {args.seed}; "
        f"simulated in {seconds:.0f} s."
    )
    text = markdown(result.report)
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print(text, end="")
    if args.markdown:
        Path(args.markdown).write_text(text, "utf-8")
    if args.doc:
        update_doc(Path(args.doc), text.replace("# Evaluation\n", "", 1).replace("\n## ", "\n### "))
    if args.plot:
        if not plot(result, labels, Path(args.plot)):
            print(
                "dispatcher evaluate run: --plot needs matplotlib, which is in the bench extra: "
                "pip install -e '.[bench]' (the report above is complete without it)",
                file=sys.stderr,
            )
            return 2
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    handler = {"generate": cmd_generate, "run": cmd_run}[args.evaluate_command]
    return handler(args)


def add_subparsers(sub: Any) -> None:
    """``dispatcher evaluate generate|run`` (wired in ``cli/main.py``)."""
    ev = sub.add_parser(
        "evaluate", help="simulate a cohort and measure detection, time to page and page burden"
    )
    esub = ev.add_subparsers(dest="evaluate_command", required=True)
    gen = esub.add_parser("generate", help="write a seeded cohort: EVENTS.ndjson + LABELS.ndjson")
    gen.add_argument("--citizens", type=int, default=300)
    gen.add_argument("--days", type=int, default=14)
    gen.add_argument("--seed", type=int, default=1)
    gen.add_argument("--out", required=True, help="directory to write into")
    gen.add_argument(
        "--start", default=None, help="RFC 3339 start of the window (default 2026-11-02)"
    )
    run = esub.add_parser("run", help="evaluate rule sets and the news2_ge5 baseline on a cohort")
    run.add_argument("--events", required=True)
    run.add_argument("--labels", required=True)
    run.add_argument("--rules", nargs="+", default=None, metavar="FILE", help="rule set file(s)")
    run.add_argument("--json", action="store_true", help="the report as JSON")
    run.add_argument("--plot", default=None, metavar="FILE.png")
    run.add_argument("--roster", default=None, help="roster YAML (default: the seed roster)")
    run.add_argument("--seed", type=int, default=0, help="seed of the simulated staff")
    run.add_argument("--markdown", default=None, metavar="FILE", help="also write the Markdown")
    run.add_argument(
        "--doc", default=None, metavar="FILE", help="put the report between the markers of FILE"
    )


HANDLERS = {"evaluate": cmd_evaluate}
