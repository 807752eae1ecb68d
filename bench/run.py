"""``make bench``: one end-to-end benchmark run against the real broker and database.

Phases (one process clock, ``time.monotonic``, for every latency):

1. infrastructure: embedded Tansu + PostgreSQL via ``Stack`` (or ``DISPATCHER_KAFKA_BOOTSTRAP`` /
   ``DISPATCHER_DATABASE_URL``), topics, migrations, seed roster;
2. baselines: raw aiokafka and plain faust passthrough, drain throughput over a pre-filled topic;
3. one dispatcher worker (``python -m dispatcher worker``), a warm-up, then the memory probe:
   VmRSS before/after the contexts of the workload's citizens are loaded (discharge + reading
   each, sent as fast as possible; the drain rate seeds the rate steps);
4. rate steps: open-loop at an offered rate, lag sampled twice a second, every escalating event's
   produce -> escalation latency; grow until a step is unsustainable, then bisect;
   then the no-loss check on this stack, which is then stopped: the overloaded search steps
   leave the broker degraded (it keeps every message in memory), which would be measured as
   latency by the phases below;
5. a fresh stack (new broker, database and worker, same code path as phase 1 and 3), warmed up
   the same way (the warm-up citizens, then every workload citizen's context), then latency at
   25/50/80 % of the max sustainable rate;
6. py-spy on the worker at the max sustainable rate (if installed);
7. kill -9 the worker under load, start a new one, time until the first escalation of an event
   produced after the kill; then the no-loss check of the fresh stack (audit rows == accepted
   events); ``no_loss`` in the results sums both stacks' checks.

Results: ``bench-results/results.json``, ``summary.md``, ``bench.png`` (``bench.report``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import profile as prof
from bench.baselines import fetch_latency
from bench.cpu import CpuMeter, cores_used, cpu_seconds, postgres_pids
from bench.loadgen import (
    Counters,
    EscalationTracker,
    ProgressProbe,
    SendStats,
    send_open_loop,
    start_producer,
)
from bench.report import write_report
from bench.stats import Criteria, StepResult, judge, max_sustainable, next_rate, summarize_latencies
from bench.workload import Kind, LoadEvent, Workload
from dispatcher.config import Settings
from dispatcher.devstack.stack import SEED_ROSTER, Stack, WorkerProcess, seed_roster_text
from dispatcher.ops.topics import ensure_topics

# The rate search starts at this fraction of the context-load drain rate and grows by GROWTH.
START_FRACTION = 0.4
GROWTH = 1.4
REPO_ROOT = Path(__file__).resolve().parents[1]
BASELINE_TOPICS = ("bench.raw.in", "bench.raw.out", "bench.faust.in", "bench.faust.out")


@dataclass
class Config:
    seed: int = 7
    citizens: int = 10_000
    step_seconds: float = 15.0
    latency_seconds: float = 15.0
    max_steps: int = 8
    profile_seconds: int = 15
    kill_rate_fraction: float = 0.25
    raw_count: int = 200_000
    faust_count: int = 30_000
    baseline_timeout_s: float = 25.0
    out_dir: Path = Path("bench-results")
    docs: Path | None = Path("docs/benchmark.md")
    criteria: Criteria = field(default_factory=Criteria)
    p99_target_ms: float = 250.0
    salt: str = field(default_factory=lambda: secrets.token_hex(3))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Bench:
    def __init__(self, cfg: Config, stack: Stack, settings: Settings | None = None) -> None:
        self.cfg = cfg
        # What the fresh stack is started from (not ``stack.settings``, which names the
        # first stack's embedded broker and database).
        self.settings = settings if settings is not None else Settings.from_env()
        self.stacks: list[Stack] = []
        self.results: dict[str, Any] = {}
        self.workload = Workload(cfg.seed, cfg.citizens, salt=f"{cfg.salt}m")
        self.producer: AIOKafkaProducer | None = None
        self.probe: ProgressProbe | None = None
        self.worker: WorkerProcess | None = None
        self.audits_before = 0
        self.started_at_db: object = None
        self.sent_per_stack: list[dict[str, int]] = []
        self.no_loss_per_stack: list[dict[str, Any]] = []
        self.attach(stack)

    def attach(self, stack: Stack) -> None:
        """Point the bench at ``stack``: new tracker, counters and CPU meter."""
        self.stack = stack
        self.stacks.append(stack)
        self.bootstrap = stack.bootstrap
        self.tracker = EscalationTracker()
        self.counters = Counters()
        self.worker = None
        pg_dir = stack.postgres.data_dir if stack.postgres is not None else None
        broker = stack.broker.process.pid if stack.broker is not None else None
        self.cpu = CpuMeter(
            {
                "worker": lambda: [self.worker.process.pid] if self.worker is not None else [],
                "broker": lambda: [broker] if broker is not None else [],
                "postgres": lambda: postgres_pids(pg_dir) if pg_dir is not None else [],
                "load generator": lambda: [os.getpid()],
            }
        )

    # -- helpers ----------------------------------------------------------------------------

    async def lag(self) -> int:
        assert self.probe is not None
        return max(0, self.counters.accepted - await self.probe.processed())

    async def wait_drained(self, timeout_s: float) -> float | None:
        """Monotonic time when every accepted event has an audit row; None on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.lag() == 0:
                return time.monotonic()
            await asyncio.sleep(0.05)
        return None

    async def settle(self, timeout_s: float = 15.0) -> float:
        """Wait until the worker is idle (< 0.1 core over 0.5 s): pages, outbox relays and
        case work left from the previous step must not slow the next one."""
        assert self.worker is not None
        pid = self.worker.process.pid
        deadline = time.monotonic() + timeout_s
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            before = cpu_seconds(pid) or 0.0
            await asyncio.sleep(0.5)
            if (cpu_seconds(pid) or 0.0) - before < 0.05:
                break
        return time.monotonic() - t0

    async def wait_escalations(self, ids: list[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.tracker.pending(ids) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polls the tracker's dict; no event to wait on

    async def send(
        self, events: list[LoadEvent], rate: float | None, stop: asyncio.Event | None = None
    ) -> SendStats:
        assert self.producer is not None
        return await send_open_loop(
            self.producer, events, rate, self.tracker, self.counters, stop=stop
        )

    async def start_worker(self, name: str) -> tuple[WorkerProcess, float]:
        t0 = time.monotonic()
        worker = self.stack.start_worker(name)
        await asyncio.to_thread(self.stack.wait_healthy, worker, 120.0)
        return worker, time.monotonic() - t0

    # -- phases -----------------------------------------------------------------------------

    async def baselines(self) -> None:
        cfg = self.cfg
        assert self.producer is not None
        out: dict[str, Any] = {}
        source = Workload(cfg.seed, cfg.citizens, salt=f"{cfg.salt}x")
        for kind, count in (("raw", cfg.raw_count), ("faust", cfg.faust_count)):
            events = [
                e
                for e in source.batch(count + count // 50, utcnow(), timedelta(microseconds=1))
                if e.kind is not Kind.BAD
            ][:count]
            src, dst = f"bench.{kind}.in", f"bench.{kind}.out"
            t0 = time.monotonic()
            await send_open_loop(
                self.producer, events, None, EscalationTracker(), Counters(), topic=src
            )
            log(
                f"baseline {kind}: pre-filled {len(events)} messages in "
                f"{time.monotonic() - t0:.1f}s; draining"
            )
            result_path = cfg.out_dir / f"baseline-{kind}.json"
            result_path.unlink(missing_ok=True)
            log_file = (cfg.out_dir / f"baseline-{kind}.log").open("wb")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.baselines",
                kind,
                "--bootstrap",
                self.bootstrap,
                "--in",
                src,
                "--out",
                dst,
                "--count",
                str(len(events)),
                "--timeout",
                str(cfg.baseline_timeout_s),
                "--result",
                str(result_path),
                "--datadir",
                str(cfg.out_dir / "faust-data"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log_file,
                cwd=REPO_ROOT,
            )
            try:
                await asyncio.wait_for(proc.wait(), cfg.baseline_timeout_s + 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            finally:
                log_file.close()
            if result_path.exists():
                res = json.loads(result_path.read_text())
                res["output_messages"] = await self.topic_size(dst)
            else:
                res = {"kind": kind, "error": f"no result; see baseline-{kind}.log", "rate": 0.0}
            out[kind] = res
            log(
                f"baseline {kind}: {res.get('rate', 0):.0f} msg/s "
                f"({res.get('messages')} in {res.get('elapsed_s', 0):.1f}s)"
            )
        self.results["baselines"] = out
        floor: dict[str, Any] = {}
        for wait_ms in (20, 1500):
            lat = await fetch_latency(self.bootstrap, "bench.raw.out", wait_ms)
            floor[str(wait_ms)] = summarize_latencies(lat).as_dict()
            log(f"broker fetch latency at fetch_max_wait_ms={wait_ms}: {floor[str(wait_ms)]}")
        self.results["fetch_latency"] = floor

    async def topic_size(self, topic: str) -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            ends = await consumer.end_offsets(tps) if tps else {}
            begins = await consumer.beginning_offsets(tps) if tps else {}
            return sum(int(ends[tp]) - int(begins[tp]) for tp in tps)
        finally:
            await consumer.stop()

    async def warmup_and_memory(self, key: str = "memory", warm_salt: str = "w") -> float:
        """Warm the worker up, then load every citizen's context; returns the drain rate."""
        assert self.worker is not None
        cfg = self.cfg
        warm = Workload(cfg.seed + 1, 500, salt=f"{cfg.salt}{warm_salt}")
        events = warm.population(utcnow(), timedelta(microseconds=1))
        events += warm.batch(4000, utcnow(), timedelta(microseconds=1))
        await self.send(events, None)
        if await self.wait_drained(90) is None:
            raise RuntimeError("warm-up did not drain in 90 s")
        await asyncio.sleep(1.0)
        pid = self.worker.process.pid
        before = vm_rss_mb(pid)
        population = self.workload.population(utcnow(), timedelta(microseconds=1))
        t0 = time.monotonic()
        await self.send(population, None)
        sent_s = time.monotonic() - t0
        drained = await self.wait_drained(180)
        if drained is None:
            raise RuntimeError("loading the citizens' contexts did not drain in 180 s")
        await asyncio.sleep(1.0)
        after = vm_rss_mb(pid)
        drain_rate = len(population) / (drained - t0)
        per_10k = (after - before) * 10_000 / cfg.citizens
        self.results[key] = {
            "citizens": cfg.citizens,
            "warmup_events": len(events),
            "events": len(population),
            "rss_before_mb": round(before, 1),
            "rss_after_mb": round(after, 1),
            "mb_per_10k_citizens": round(per_10k, 1),
            "send_s": round(sent_s, 2),
            "drain_s": round(drained - t0, 2),
            "drain_rate": round(drain_rate, 1),
        }
        log(
            f"{key}: RSS {before:.1f} -> {after:.1f} MB for {cfg.citizens} citizens; "
            f"contexts loaded at {drain_rate:.0f} events/s (drain)"
        )
        return drain_rate

    async def step(self, rate: float, seconds: float, label: str) -> dict[str, Any]:
        n = max(1, int(rate * seconds))
        events = self.workload.batch(n, utcnow(), timedelta(seconds=1 / rate))
        samples: list[tuple[float, float]] = []
        assert self.probe is not None
        settled = await self.settle()
        start_processed = await self.probe.processed()
        cpu_before = self.cpu.snapshot()
        t0 = time.monotonic()

        async def sample() -> None:
            while True:
                samples.append((time.monotonic() - t0, float(await self.lag())))
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        try:
            stats = await self.send(events, rate)
            end_processed = await self.probe.processed()
            send_end = time.monotonic()
            cores = cores_used(cpu_before, self.cpu.snapshot(), send_end - t0)
            drained = await self.wait_drained(max(20.0, seconds * 2))
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        await self.wait_escalations(stats.escalating_ids, 3.0 if drained else 0.5)
        latency = summarize_latencies(self.tracker.latencies_ms(stats.escalating_ids))
        duration = send_end - t0
        result = StepResult(
            offered_rate=rate,
            duration_s=duration,
            sent=stats.sent,
            send_elapsed_s=stats.elapsed_s,
            lag_samples=[(t, y) for t, y in samples if t <= duration],
            latency=latency,
        )
        verdict = judge(result, self.cfg.criteria)
        row: dict[str, Any] = {
            "label": label,
            "offered_rate": round(rate, 1),
            "achieved_send_rate": round(result.achieved_rate, 1),
            "processed_rate": round((end_processed - start_processed) / duration, 1),
            "seconds": round(duration, 2),
            "events": stats.sent,
            "max_generator_behind_s": round(stats.max_behind_s, 3),
            "lag_growth_per_s": round(result.lag_growth_per_s(), 1),
            "lag_end": samples[-1][1] if samples else None,
            "drain_after_s": round(drained - send_end, 2) if drained else None,
            "latency": latency.as_dict(),
            "cores": cores,
            "settle_s": round(settled, 2),
            "sustainable": verdict.sustainable,
            "generator_limited": verdict.generator_limited,
            "reasons": verdict.reasons,
            "lag_samples": [(round(t, 2), y) for t, y in samples],
        }
        lat = latency.as_dict()
        verdict_text = (
            "OK" if verdict.sustainable else f"NOT sustainable ({'; '.join(verdict.reasons)})"
        )
        log(
            f"{label}: offered {rate:.0f}/s sent {result.achieved_rate:.0f}/s processed "
            f"{row['processed_rate']:.0f}/s lag+{row['lag_growth_per_s']:.0f}/s "
            f"p50 {lat['p50_ms']} p99 {lat['p99_ms']} ms (n={latency.count}, "
            f"missing {latency.missing}) cores {cores} -> {verdict_text}"
        )
        await asyncio.sleep(0.5)
        return row

    async def find_max(self, seed_rate: float) -> float:
        cfg = self.cfg
        history: list[tuple[float, bool]] = []
        rows: list[dict[str, Any]] = []
        start = max(50.0, round(seed_rate * START_FRACTION, -1))
        while rate := next_rate(history, start, factor=GROWTH, max_steps=cfg.max_steps):
            row = await self.step(rate, cfg.step_seconds, f"step {len(rows) + 1}")
            rows.append(row)
            history.append((rate, bool(row["sustainable"])))
            if row["generator_limited"]:
                log("the load generator could not keep the rate: stopping the search here")
                break
        best = max_sustainable(history)
        self.results["steps"] = rows
        self.results["max_sustainable_rate"] = best
        log(f"max sustainable rate: {best}")
        if best is None:
            raise RuntimeError("no offered rate was sustainable")
        return best

    async def latencies(self, best: float) -> None:
        out = []
        for frac in (0.25, 0.5, 0.8):
            row = await self.step(best * frac, self.cfg.latency_seconds, f"{frac:.0%} of max")
            row["fraction"] = frac
            out.append(row)
        self.results["latency_at"] = out

    async def profile(self, best: float) -> None:
        cfg = self.cfg
        assert self.worker is not None
        out = cfg.out_dir / "profile.txt"
        out.unlink(missing_ok=True)
        proc = prof.record(self.worker.process.pid, cfg.profile_seconds, out)
        if proc is None:
            self.results["profile"] = {"error": "py-spy not installed"}
            log("py-spy not installed: no profile")
            return
        await asyncio.sleep(0.5)
        row = await self.step(best, cfg.profile_seconds + 1.0, "under py-spy")
        try:
            _, err = await asyncio.to_thread(proc.communicate, None, 30)
        except Exception as exc:  # report, do not fail the run
            proc.kill()
            self.results["profile"] = {"error": f"py-spy: {exc}"}
            return
        if proc.returncode != 0 or not out.exists():
            msg = (err or b"").decode(errors="replace").strip()[-500:]
            self.results["profile"] = {"error": f"py-spy exited {proc.returncode}: {msg}"}
            log(f"py-spy failed: {msg}")
            return
        summary = prof.summarize(out.read_text())
        self.results["profile"] = {
            "rate": round(best, 1),
            "seconds": cfg.profile_seconds,
            "sampling_hz": 100,
            "step": {k: row[k] for k in ("processed_rate", "latency", "sustainable")},
            **summary.as_dict(),
        }
        log(
            f"py-spy: {summary.samples} samples; top self frame "
            f"{summary.self_top[0][0] if summary.self_top else '-'}"
        )

    async def kill_recovery(self, best: float) -> None:
        cfg = self.cfg
        assert self.worker is not None
        rate = max(10.0, best * cfg.kill_rate_fraction)
        events = self.workload.batch(int(rate * 120), utcnow(), timedelta(seconds=1 / rate))
        stop = asyncio.Event()
        sender = asyncio.create_task(self.send(events, rate, stop))
        await asyncio.sleep(4.0)
        old = self.worker
        t_kill = time.monotonic()
        os.kill(old.process.pid, signal.SIGKILL)
        await asyncio.to_thread(old.process.wait)
        log(f"kill -9 worker pid {old.process.pid} under {rate:.0f} events/s; starting a new one")
        new = self.stack.start_worker("bench-worker-2")
        self.worker = new

        async def healthy_at() -> float:
            await asyncio.to_thread(self.stack.wait_healthy, new, 120.0)
            return time.monotonic()

        healthy = asyncio.create_task(healthy_at())
        first: tuple[float, float] | None = None
        deadline = t_kill + 90
        while time.monotonic() < deadline:
            first = self.tracker.first_arrival_sent_after(t_kill)
            if first is not None:
                break
            await asyncio.sleep(0.05)
        healthy_after: float | None = None
        with contextlib.suppress(Exception):
            healthy_after = round(await asyncio.wait_for(healthy, 60) - t_kill, 2)
        await asyncio.sleep(2.0)
        stop.set()
        stats = await sender
        drained = await self.wait_drained(90)
        await self.wait_escalations(self.counters.escalating_ids, 5.0)
        recovery = (first[1] - t_kill) if first is not None else None
        self.results["kill"] = {
            "rate": round(rate, 1),
            "events_sent": stats.sent,
            "recovery_s": round(recovery, 2) if recovery is not None else None,
            "first_escalated_event_sent_after_kill_s": (
                round(first[0] - t_kill, 3) if first is not None else None
            ),
            "worker_healthy_after_s": healthy_after,
            "drained": drained is not None,
        }
        log(f"kill -9 -> next escalation: {recovery if recovery is None else round(recovery, 2)} s")

    async def audit_rows(self) -> int:
        assert self.probe is not None
        return int(
            str(
                await self.probe.fetchval(
                    "SELECT count(*) FROM audit_log WHERE citizen_id LIKE $1 "
                    "AND source_topic <> 'dispatcher.timer'",
                    f"bench-{self.cfg.salt}%",
                )
            )
        )

    async def no_loss(self, label: str) -> None:
        """The no-loss check of the current stack; ``results["no_loss"]`` sums the stacks."""
        assert self.probe is not None
        audits = await self.audit_rows() - self.audits_before
        dead = int(
            str(
                await self.probe.fetchval(
                    "SELECT count(*) FROM dead_letters WHERE rejected_at >= $1", self.started_at_db
                )
            )
        )
        ids = self.counters.escalating_ids
        missing_esc = self.tracker.pending(ids)
        check: dict[str, Any] = {
            "stack": label,
            "accepted_events": self.counters.accepted,
            "audit_rows": audits,
            "bad_events": self.counters.bad,
            "dead_letters": dead,
            "escalating_events": len(ids),
            "escalations_missing": missing_esc,
            "escalations_unmatched": self.tracker.unmatched,
            "produce_errors": self.counters.errors,
            "ok": audits == self.counters.accepted
            and dead == self.counters.bad
            and missing_esc == 0
            and self.counters.errors == 0,
        }
        self.no_loss_per_stack.append(check)
        self.results["no_loss"] = combine_no_loss(self.no_loss_per_stack)
        log(
            f"no-loss ({label}): {audits} audit rows for {self.counters.accepted} accepted events; "
            f"{dead} dead letters for {self.counters.bad} bad; {missing_esc} escalations missing"
        )

    async def connect(self) -> None:
        """Escalation read-back and progress probe on the current stack."""
        await self.tracker.start(self.bootstrap)
        self.probe = await ProgressProbe.connect(self.stack.dsn)
        self.started_at_db = await self.probe.fetchval("SELECT now()")
        self.audits_before = await self.audit_rows()

    async def disconnect(self) -> None:
        if len(self.sent_per_stack) == len(self.stacks):  # this stack is already closed
            return
        await self.tracker.stop()
        if self.probe is not None:
            await self.probe.close()
            self.probe = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None
        self.sent_per_stack.append(summarize_counts(self.counters, self.tracker))

    async def drain_and_check(self, label: str) -> None:
        drained = await self.wait_drained(90)
        await self.wait_escalations(self.counters.escalating_ids, 5.0 if drained else 0.5)
        await self.no_loss(label)

    async def fresh_stack(self) -> None:
        """Stop the search stack and start a new broker, database and worker, warmed up like
        the first one (the warm-up citizens, then every workload citizen's context)."""
        await self.disconnect()
        t0 = time.monotonic()
        old = self.stack
        await asyncio.to_thread(old.stop)
        stopped_s = time.monotonic() - t0
        log(f"search stack stopped in {stopped_s:.1f}s; starting a fresh one")
        t1 = time.monotonic()
        stack = await asyncio.to_thread(
            Stack.start_infra,
            self.settings,
            self.cfg.out_dir / "stack-fresh",
            roster_text=seed_roster_text(),
        )
        infra_s = time.monotonic() - t1
        self.attach(stack)
        self.producer = await start_producer(self.bootstrap)
        self.worker, startup = await self.start_worker("bench-worker-1")
        await self.connect()
        t2 = time.monotonic()
        drain_rate = await self.warmup_and_memory("memory_fresh", warm_salt="v")
        mem = self.results["memory_fresh"]
        self.results["fresh_stack"] = {
            "old_stopped_s": round(stopped_s, 2),
            "infra_s": round(infra_s, 2),
            "worker_startup_s": round(startup, 2),
            "warmup_s": round(time.monotonic() - t2, 2),
            "warmup_events": mem["warmup_events"] + mem["events"],
            "drain_rate": round(drain_rate, 1),
        }
        log(
            f"fresh stack: infra {infra_s:.1f}s, worker healthy in {startup:.1f}s, warmed up "
            f"with {mem['warmup_events'] + mem['events']} events"
        )

    async def run(self) -> dict[str, Any]:
        self.producer = await start_producer(self.bootstrap)
        try:
            await self.baselines()
            self.worker, startup = await self.start_worker("bench-worker-1")
            self.results["worker_startup_s"] = round(startup, 2)
            log(f"worker healthy in {startup:.1f}s")
            await self.connect()
            drain_rate = await self.warmup_and_memory()
            best = await self.find_max(drain_rate)
            await self.drain_and_check("search stack")
            await self.fresh_stack()
            await self.latencies(best)
            await self.profile(best)
            await self.kill_recovery(best)
            await self.drain_and_check("fresh stack")
        finally:
            await self.disconnect()
        sent = self.sent_per_stack
        self.results["workload_sent"] = {k: sum(s[k] for s in sent) for k in sent[0]}
        return self.results


def summarize_counts(counters: Counters, tracker: EscalationTracker) -> dict[str, int]:
    return {
        "sent": counters.sent,
        "accepted": counters.accepted,
        "bad": counters.bad,
        "escalating": len(counters.escalating_ids),
        "escalations_received": tracker.received,
    }


def combine_no_loss(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """One no-loss result over every stack of the run: counts summed, ok if each stack's is."""
    keys = (
        "accepted_events",
        "audit_rows",
        "bad_events",
        "dead_letters",
        "escalating_events",
        "escalations_missing",
        "escalations_unmatched",
        "produce_errors",
    )
    out: dict[str, Any] = {k: sum(int(c[k]) for c in checks) for k in keys}
    out["ok"] = bool(checks) and all(bool(c["ok"]) for c in checks)
    out["stacks"] = checks
    return out


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def parse_args(argv: list[str] | None) -> Config:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--citizens", type=int, default=10_000)
    p.add_argument("--step-seconds", type=float, default=15.0)
    p.add_argument("--latency-seconds", type=float, default=15.0)
    p.add_argument("--max-steps", type=int, default=8)
    p.add_argument("--profile-seconds", type=int, default=15)
    p.add_argument("--raw-count", type=int, default=200_000)
    p.add_argument("--faust-count", type=int, default=30_000)
    p.add_argument("--out", type=Path, default=Path("bench-results"))
    p.add_argument(
        "--docs", default="docs/benchmark.md", help="copy the Markdown summary here ('' to skip)"
    )
    p.add_argument("--sustain-p99-ms", type=float, default=Criteria().p99_limit_ms)
    a = p.parse_args(argv)
    return Config(
        seed=a.seed,
        citizens=a.citizens,
        step_seconds=a.step_seconds,
        latency_seconds=a.latency_seconds,
        max_steps=a.max_steps,
        profile_seconds=a.profile_seconds,
        raw_count=a.raw_count,
        faust_count=a.faust_count,
        out_dir=a.out,
        docs=Path(a.docs) if a.docs else None,
        criteria=Criteria(p99_limit_ms=a.sustain_p99_ms),
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.monotonic()
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = cfg.out_dir / "stack"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh embedded database every run
    shutil.rmtree(cfg.out_dir / "stack-fresh", ignore_errors=True)
    settings = Settings.from_env()
    log(
        f"starting infrastructure in {run_dir} "
        f"({'external' if settings.kafka_bootstrap else 'embedded'} broker, "
        f"{'external' if settings.database_url else 'embedded'} database)"
    )
    stack = Stack.start_infra(settings, run_dir, roster_text=seed_roster_text())
    results: dict[str, Any] = {
        "command": "make bench",
        "started_at": utcnow().isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "salt": cfg.salt,
        "citizens": cfg.citizens,
        "roster": SEED_ROSTER,
        "partitions": stack.settings.partitions,
        "machine": machine(),
        "criteria": {
            "sustain_p99_ms": cfg.criteria.p99_limit_ms,
            "max_lag_growth_fraction": cfg.criteria.max_lag_growth,
            "min_send_ratio": cfg.criteria.min_send_ratio,
            "p99_target_ms": cfg.p99_target_ms,
        },
        "mix": {
            k: getattr(Workload().mix, k)
            for k in (
                "fall",
                "deterioration",
                "worry",
                "observation",
                "discharge",
                "bad",
                "duplicate",
            )
        },
    }
    stacks = [stack]
    try:
        ensure_topics(
            stack.bootstrap,
            stack.settings.partitions,
            stack.settings.replication,
            extra=BASELINE_TOPICS,
        )
        bench = Bench(cfg, stack, settings)
        stacks = bench.stacks
        bench.results = results
        asyncio.run(bench.run())
    except BaseException as exc:
        results["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log("stopping workers, broker and database")
        for s in stacks:
            s.stop()
        results["wall_s"] = round(time.monotonic() - started, 1)
        (cfg.out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    md = write_report(results, cfg.out_dir)
    if cfg.docs is not None:
        cfg.docs.parent.mkdir(parents=True, exist_ok=True)
        cfg.docs.write_text(md)
    log(f"done in {results['wall_s']} s: {cfg.out_dir / 'results.json'}, summary.md, bench.png")
    print(md)
    return 0 if not math.isnan(results.get("max_sustainable_rate") or math.nan) else 1


if __name__ == "__main__":
    raise SystemExit(main())
