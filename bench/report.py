"""Benchmark report: targets (pass/fail), a Markdown summary and a PNG plot from results.json.

``python -m bench.report bench-results/results.json`` re-renders an earlier run.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_RAW_FRACTION = 0.3
TARGET_P99_MS = 250.0
TARGET_MB_PER_10K = 50.0
TARGET_RECOVERY_S = 30.0
# On every stack of the worker: left out of the "where time goes" tables.
ENTRY_PACKAGES = frozenset(
    {"asyncio", "mode", "<frozen runpy>", "dispatcher/__main__", "dispatcher/cli"}
)
ENTRY_FUNCTIONS = ("main (dispatcher/cli/main.py)", "cmd_worker (", "<module> (dispatcher/__main__")


@dataclass(frozen=True)
class Target:
    name: str
    target: str
    measured: str
    passed: bool | None  # None: not measured


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) else None


def evaluate_targets(results: dict[str, Any]) -> list[Target]:
    """The issue's four targets, plus the no-loss check, against one run's results."""
    out: list[Target] = []
    best = _num(results.get("max_sustainable_rate"))
    base = results.get("baselines", {})
    raw = _num(base.get("raw", {}).get("rate"))
    fst = _num(base.get("faust", {}).get("rate"))
    if best is not None and raw is not None and fst is not None:
        ok = best >= TARGET_RAW_FRACTION * raw and best > fst
        measured = (
            f"{best:.0f}/s = {best / raw:.2f} x raw ({raw:.0f}/s), "
            f"{best / fst:.2f} x faust ({fst:.0f}/s)"
        )
        out.append(
            Target(
                "throughput",
                f">= {TARGET_RAW_FRACTION} x raw passthrough and > plain faust passthrough",
                measured,
                ok,
            )
        )
    else:
        out.append(
            Target(
                "throughput", f">= {TARGET_RAW_FRACTION} x raw and > faust", "not measured", None
            )
        )
    half = next((r for r in results.get("latency_at", []) if r.get("fraction") == 0.5), None)
    p99 = _num(half["latency"].get("p99_ms")) if half else None
    if half is not None:
        shown = f"{p99:.0f} ms at {half['offered_rate']:.0f}/s" if p99 is not None else "missing"
        if results.get("fresh_stack"):
            shown += " (fresh stack, warmed up)"
        out.append(
            Target(
                "p99 latency at 50 %",
                f"<= {TARGET_P99_MS:.0f} ms",
                shown,
                p99 is not None and p99 <= TARGET_P99_MS,
            )
        )
    else:
        out.append(
            Target("p99 latency at 50 %", f"<= {TARGET_P99_MS:.0f} ms", "not measured", None)
        )
    mem = _num(results.get("memory", {}).get("mb_per_10k_citizens"))
    out.append(
        Target(
            "memory per 10k citizens",
            f"<= {TARGET_MB_PER_10K:.0f} MB",
            f"{mem:.1f} MB" if mem is not None else "not measured",
            None if mem is None else mem <= TARGET_MB_PER_10K,
        )
    )
    kill = results.get("kill", {})
    rec = _num(kill.get("recovery_s"))
    out.append(
        Target(
            "kill -9 -> next escalation",
            f"<= {TARGET_RECOVERY_S:.0f} s",
            f"{rec:.1f} s" if rec is not None else "no escalation seen",
            None if not kill else rec is not None and rec <= TARGET_RECOVERY_S,
        )
    )
    nl = results.get("no_loss")
    if nl:
        out.append(
            Target(
                "nothing lost",
                "audit rows == accepted events, dead letters == bad input",
                f"{nl['audit_rows']}/{nl['accepted_events']} audit rows, "
                f"{nl['dead_letters']}/{nl['bad_events']} dead letters, "
                f"{nl['escalations_missing']} escalations missing",
                bool(nl["ok"]),
            )
        )
    return out


def _mark(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _ms(x: Any) -> str:
    v = _num(x)
    return "never" if v is None else f"{v:.0f}"


def _cores(cores: dict[str, float] | None) -> str:
    if not cores:
        return "-"
    keys = ("worker", "broker", "postgres", "load generator", "machine")
    return " / ".join(f"{cores.get(k, 0):.2f}" for k in keys)


def render_markdown(results: dict[str, Any], png_name: str | None = "bench.png") -> str:
    lines: list[str] = []
    m = results.get("machine", {})
    lines += [
        "# Benchmark: dispatcher end to end",
        "",
        f"Run `{results.get('command', 'make bench')}` (results in `bench-results/`: "
        "`results.json`, `summary.md`, `bench.png`). This page is the latest run's summary, "
        "copied by `make bench`.",
        "",
        f"Run of {results.get('started_at', '?')} on {m.get('cpus', '?')} cores, Python "
        f"{m.get('python', '?')}; seed {results.get('seed')}, {results.get('citizens')} "
        f"citizens, {results.get('partitions')} partitions per topic; the broker, PostgreSQL, "
        "the worker and the load generator share the machine. "
        f"Wall time of the run: {results.get('wall_s', '?')} s.",
        "",
        "## Targets",
        "",
        "| target | goal | measured | result |",
        "| --- | --- | --- | --- |",
    ]
    for t in evaluate_targets(results):
        lines.append(f"| {t.name} | {t.target} | {t.measured} | {_mark(t.passed)} |")
    base = results.get("baselines", {})
    lines += ["", "## Throughput", "", "| pipeline | events/s | how |", "| --- | --- | --- |"]
    for kind, how in (
        ("raw", "aiokafka consume -> orjson parse -> produce, drain of a pre-filled topic"),
        ("faust", "plain faust agent, `async for value in stream` -> `send`, drain"),
    ):
        r = base.get(kind, {})
        lines.append(f"| {kind} passthrough | {_ms(r.get('rate'))} | {how} |")
    mem = results.get("memory", {})
    if mem:
        lines.append(
            f"| dispatcher, drain (context load) | {_ms(mem.get('drain_rate'))} | "
            f"{mem.get('events')} discharges + readings sent as fast as possible |"
        )
    lines.append(
        f"| dispatcher, max sustainable | {_ms(results.get('max_sustainable_rate'))} | "
        "open-loop mix: lag flat and p99 <= "
        f"{_ms(results.get('criteria', {}).get('sustain_p99_ms'))} ms |"
    )
    fresh = results.get("fresh_stack")
    lines += [
        "",
        "Rate steps (open loop, every escalating event timed from produce to its "
        "escalation read back from `acute.escalations`):",
    ]
    lines += _fresh_lines(fresh)
    lines += [
        "",
        "| step | offered/s | sent/s | processed/s | lag growth/s | p50 ms | p99 ms | "
        "p99.9 ms | escalations | cores: worker/broker/pg/loadgen/machine | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = [*results.get("steps", []), *results.get("latency_at", [])]
    for r in rows:
        lat = r["latency"]
        verdict = "sustainable" if r["sustainable"] else "; ".join(r["reasons"])
        lines.append(
            f"| {r['label']} | {r['offered_rate']:.0f} | {r['achieved_send_rate']:.0f} | "
            f"{r['processed_rate']:.0f} | {r['lag_growth_per_s']:.0f} | {_ms(lat['p50_ms'])} | "
            f"{_ms(lat['p99_ms'])} | {_ms(lat['p999_ms'])} | {lat['count']} | "
            f"{_cores(r.get('cores'))} | {verdict} |"
        )
    best_row = next(
        (
            r
            for r in results.get("steps", [])
            if r["sustainable"]
            and r["offered_rate"] == _num(results.get("max_sustainable_rate"))
            and r.get("cores")
        ),
        None,
    )
    if best_row is None:
        best_row = max(
            (r for r in results.get("steps", []) if r["sustainable"] and r.get("cores")),
            key=lambda r: r["offered_rate"],
            default=None,
        )
    if best_row is not None:
        c = best_row["cores"]
        lines += [
            "",
            f"At {best_row['offered_rate']:.0f} events/s the worker used "
            f"{c.get('worker', 0):.2f} cores, the broker {c.get('broker', 0):.2f}, "
            f"PostgreSQL {c.get('postgres', 0):.2f}, the load generator "
            f"{c.get('load generator', 0):.2f}; the whole machine {c.get('machine', 0):.2f} "
            f"of {results.get('machine', {}).get('cpus', '?')} cores.",
        ]
    floor = results.get("fetch_latency")
    if floor:
        lo, hi = floor.get("20", {}), floor.get("1500", {})
        lines += [
            "",
            "## Latency floor of the broker",
            "",
            "A bare aiokafka consumer reading a trickle (20 messages/s) from this broker: "
            f"produce -> consume p50 {_ms(lo.get('p50_ms'))} ms, max "
            f"{_ms(lo.get('max_ms'))} ms with `fetch_max_wait_ms=20`; p50 "
            f"{_ms(hi.get('p50_ms'))} ms, max {_ms(hi.get('max_ms'))} ms with "
            "`fetch_max_wait_ms=1500`, the value faust hard-codes for its consumer "
            "(`faust/transport/drivers/aiokafka.py`). The broker holds a fetch for part of "
            "the wait even when data arrives, so every consumed hop of the dispatcher "
            "starts with this delay, whatever the load.",
        ]
    if "rss_before_mb" in mem:
        lines += [
            "",
            "## Memory",
            "",
            f"Worker VmRSS {mem['rss_before_mb']} MB before and {mem['rss_after_mb']} MB "
            f"after loading {mem['citizens']} citizens' contexts ({mem['events']} events: "
            "a discharge and a reading each), after a warm-up of 500 other citizens: "
            f"{mem['mb_per_10k_citizens']} MB per 10,000. The contexts themselves live in "
            "PostgreSQL (`citizen_context`); the difference is what the worker's heap "
            "grew by while processing them.",
        ]
        fm = results.get("memory_fresh")
        if fm and "rss_before_mb" in fm:
            lines[-1] += (
                f" The same warm-up on the fresh stack: {fm['rss_before_mb']} -> "
                f"{fm['rss_after_mb']} MB, {fm['mb_per_10k_citizens']} MB per 10,000."
            )
    kill = results.get("kill", {})
    if kill:
        lines += [
            "",
            "## Crash recovery",
            "",
            f"kill -9 of the worker under {kill['rate']:.0f} events/s"
            f"{' on the fresh stack' if fresh else ''}, a new worker started "
            f"at once: healthy after {kill.get('worker_healthy_after_s')} s, first "
            f"escalation of an event produced after the kill {kill.get('recovery_s')} s "
            "after the kill.",
        ]
    nl = results.get("no_loss")
    if nl:
        lines += [
            "",
            f"No loss over the whole run: {nl['audit_rows']} audit rows for "
            f"{nl['accepted_events']} accepted events, {nl['dead_letters']} dead letters "
            f"for {nl['bad_events']} bad messages, {nl['escalations_missing']} of "
            f"{nl['escalating_events']} escalations missing, "
            f"{nl['produce_errors']} produce errors.",
        ]
        stacks = nl.get("stacks") or []
        if len(stacks) > 1:
            lines[-1] += (
                " Checked on each stack before it was stopped: "
                + "; ".join(
                    f"{c['stack']} {c['audit_rows']}/{c['accepted_events']} audit rows, "
                    f"{c['dead_letters']}/{c['bad_events']} dead letters, "
                    f"{c['escalations_missing']} escalations missing "
                    f"({'ok' if c['ok'] else 'NOT ok'})"
                    for c in stacks
                )
                + "."
            )
    lines += _profile_lines(results.get("profile"))
    lines += [
        "",
        "## Method",
        "",
        "* Workload (`bench/workload.py`): seeded; mostly normal home-sensor readings, "
        "some NEWS2-0 nurse observations and discharges; about 4 % built to escalate "
        "(fall alarm, NEWS2 11, worried nurse); 0.5 % bad input, 1 % duplicate deliveries. "
        "Payloads are serialised before each timed step.",
        "* Latency: send time taken just before `producer.send` and arrival time of the "
        "escalation (matched by `triggered_by`) on the same `time.monotonic` clock. An "
        "escalation that has not arrived when the step has drained counts as infinite.",
        "* Lag: accepted events sent minus `audit_log` rows written (PostgreSQL sequence), "
        "sampled every 0.25 s; flat = least-squares growth over the second half of the step "
        f"<= {results.get('criteria', {}).get('max_lag_growth_fraction', 0.1):.0%} of the "
        "offered rate.",
        "* Sustainable: lag flat, the generator kept the rate, and p99 <= "
        f"{_ms(results.get('criteria', {}).get('sustain_p99_ms'))} ms (bounded; the "
        "250 ms target is judged at 50 % of the max). Max sustainable rate: grow the "
        "offered rate by 1.4x from 0.4x the context-load drain rate until a step fails, "
        "then bisect to 10 %. Before each step the worker must be idle (pages and "
        "outbox work of the previous step done).",
        "* Baselines: separate topics with the same partition count on the same broker, "
        "each in its own process, timed from the first message consumed to the last one "
        "produced and acknowledged (acks=all).",
    ]
    if png_name:
        lines += ["", f"![benchmark plot]({png_name})"]
    else:
        lines += ["", "The plot of the run is `bench-results/bench.png` (not committed)."]
    return "\n".join(lines) + "\n"


def _fresh_lines(fresh: dict[str, Any] | None) -> list[str]:
    if not fresh:
        return []
    return [
        "",
        "The search steps (`step n`) ran on the first stack. The overloaded ones "
        "leave that broker degraded (it keeps every message in memory), so it was "
        "stopped after the search, and the latency steps (`% of max`), the profile "
        "and the kill -9 ran on a **fresh stack**: new broker, database and worker "
        f"(infrastructure up in {fresh['infra_s']} s, worker healthy in "
        f"{fresh['worker_startup_s']} s), warmed up with {fresh['warmup_events']} "
        "events (the 500 warm-up citizens, then a discharge and a reading for every "
        f"workload citizen, drained at {_ms(fresh['drain_rate'])} events/s) before "
        "the first latency step.",
    ]


def _profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if "error" in profile:
        return ["", "## Where time goes", "", f"No profile: {profile['error']}"]
    busy, idle = profile["samples"], profile["idle_samples"]
    expected = profile["seconds"] * profile["sampling_hz"]
    lines = [
        "",
        "## Where time goes",
        "",
        f"py-spy (`--nonblocking`, {profile['sampling_hz']} Hz) on the worker for "
        f"{profile['seconds']} s at {profile['rate']:.0f} events/s: {busy} busy samples "
        f"(+{idle} waiting in epoll) of ~{expected} per thread; shares below are of the "
        "busy samples.",
        "",
        "| thread | % |",
        "| --- | --- |",
    ]
    lines += [f"| {p['frame']} | {p['pct']} |" for p in profile["threads"][:4]]
    lines += [
        "",
        "Package on the stack (inclusive) and innermost (self):",
        "",
        "| package | inclusive % | self % |",
        "| --- | --- | --- |",
    ]
    self_pct = {p["frame"]: p["pct"] for p in profile["packages_self"]}
    lines += [
        f"| {p['frame']} | {p['pct']} | {self_pct.get(p['frame'], 0)} |"
        for p in profile["packages_inclusive"]
        if p["frame"] not in ENTRY_PACKAGES
    ][:12]
    lines += ["", "Dispatcher functions, inclusive:", "", "| function | % |", "| --- | --- |"]
    lines += [
        f"| `{p['frame']}` | {p['pct']} |"
        for p in profile["dispatcher_inclusive"]
        if not p["frame"].startswith(ENTRY_FUNCTIONS)
    ][:12]
    lines += [
        "",
        "Top frames, self (innermost), with their commonest callers:",
        "",
        "| frame | % | called from |",
        "| --- | --- | --- |",
    ]
    callers = profile.get("callers", {})
    for p in profile["self_top"][:12]:
        via = "; ".join(f"`{c['frame']}` {c['pct']}" for c in callers.get(p["frame"], []))
        lines.append(f"| `{p['frame']}` | {p['pct']} | {via} |")
    return lines


def plot(results: dict[str, Any], path: Path) -> bool:
    """Write the PNG; False if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    steps = results.get("steps", [])
    base = results.get("baselines", {})
    ax = axes[0]
    if steps:
        offered = [s["offered_rate"] for s in steps]
        processed = [s["processed_rate"] for s in steps]
        colors = ["tab:green" if s["sustainable"] else "tab:red" for s in steps]
        ax.scatter(offered, processed, c=colors, zorder=3)
        top = max(offered) * 1.1
        ax.plot([0, top], [0, top], ":", color="grey", label="processed = offered")
    for kind, style in (("raw", "--"), ("faust", "-.")):
        rate = _num(base.get(kind, {}).get("rate"))
        if rate:
            ax.axhline(rate, linestyle=style, label=f"{kind} passthrough {rate:.0f}/s")
    best = _num(results.get("max_sustainable_rate"))
    if best:
        ax.axvline(best, color="tab:green", alpha=0.4, label=f"max sustainable {best:.0f}/s")
    ax.set_yscale("log")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("processed events/s (log)")
    ax.set_title("Throughput (green: sustainable)")
    ax.legend(fontsize=8)
    ax = axes[1]
    rows = sorted([*steps, *results.get("latency_at", [])], key=lambda r: r["offered_rate"])
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        pts = [(r["offered_rate"], r["latency"][key]) for r in rows if r["latency"][key]]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
    ax.axhline(TARGET_P99_MS, color="red", linestyle=":", label="250 ms target")
    ax.set_yscale("log")
    ax.set_xlabel("offered events/s")
    ax.set_ylabel("produce -> escalation, ms")
    ax.set_title("Latency")
    ax.legend(fontsize=8)
    ax = axes[2]
    for r in steps:
        pts = r.get("lag_samples") or []
        if pts:
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                label=f"{r['offered_rate']:.0f}/s",
                alpha=0.8,
            )
    ax.set_xlabel("s since step start")
    ax.set_ylabel("events without a durable outcome")
    ax.set_title("Lag during the rate steps")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_report(results: dict[str, Any], out_dir: Path) -> str:
    """Write summary.md and bench.png into ``out_dir``; return the Markdown for docs/ (the
    same, without the image link to the uncommitted PNG)."""
    has_png = plot(results, out_dir / "bench.png")
    (out_dir / "summary.md").write_text(render_markdown(results, "bench.png" if has_png else None))
    return render_markdown(results, None)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "bench-results/results.json")
    results = json.loads(path.read_text())
    print(write_report(results, path.parent))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
