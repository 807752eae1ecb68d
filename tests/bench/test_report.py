"""Pure parts of the benchmark report: targets, /proc parsing and the py-spy summary."""

from __future__ import annotations

from typing import Any

from bench.cpu import cores_used, parse_machine_stat, parse_stat
from bench.profile import package_of, parse_frame, summarize
from bench.report import evaluate_targets, render_markdown


def results(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "max_sustainable_rate": 4000.0,
        "baselines": {"raw": {"rate": 10000.0}, "faust": {"rate": 3000.0}},
        "latency_at": [
            {
                "fraction": 0.5,
                "offered_rate": 2000.0,
                "label": "50 % of max",
                "achieved_send_rate": 2000.0,
                "processed_rate": 2000.0,
                "lag_growth_per_s": 0.0,
                "sustainable": True,
                "reasons": [],
                "latency": {"p50_ms": 40.0, "p99_ms": 200.0, "p999_ms": 260.0, "count": 900},
            }
        ],
        "memory": {"mb_per_10k_citizens": 12.0},
        "kill": {"recovery_s": 18.0, "rate": 1000.0},
        "no_loss": {
            "ok": True,
            "audit_rows": 10,
            "accepted_events": 10,
            "dead_letters": 1,
            "bad_events": 1,
            "escalations_missing": 0,
            "escalating_events": 2,
            "produce_errors": 0,
        },
    }
    base.update(over)
    return base


def test_targets_pass() -> None:
    assert [t.passed for t in evaluate_targets(results())] == [True] * 5


def test_targets_fail_and_missing() -> None:
    r = results(max_sustainable_rate=2000.0, memory={}, kill={"recovery_s": None, "rate": 1.0})
    verdicts = {t.name: t.passed for t in evaluate_targets(r)}
    assert verdicts["throughput"] is False  # 0.2 x raw
    assert verdicts["memory per 10k citizens"] is None
    assert verdicts["kill -9 -> next escalation"] is False


def test_markdown_has_the_targets_table() -> None:
    md = render_markdown(results(), None)
    assert "| throughput |" in md
    assert "PASS" in md
    assert "make bench" in md


def test_parse_proc_stat_with_spaces_in_the_name() -> None:
    line = "1234 (python -m (x)) S 77 1 1 0 -1 0 0 0 0 0 150 50 0 0 20 0 3 0 1 1 1"
    assert parse_stat(line) == (77, 200.0)
    busy, total = parse_machine_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n")
    assert (busy, total) == (150.0, 1000.0)


def test_cores_used() -> None:
    before = {"worker": 1.0, "_machine_busy": 0.0, "_machine_total": 10.0}
    after = {"worker": 2.5, "_machine_busy": 5.0, "_machine_total": 20.0}
    cores = cores_used(before, after, 1.5)
    assert cores["worker"] == 1.0
    assert cores["machine"] > 0


def test_py_spy_summary() -> None:
    collapsed = "\n".join(
        [
            "_run_module_as_main (<frozen runpy>:198);handle (dispatcher/service.py:95);"
            "model_validate_json (pydantic/main.py:10) 30",
            "_run_module_as_main (<frozen runpy>:198);handle (dispatcher/service.py:95) 10",
            "_run_module_as_main (<frozen runpy>:198);select (selectors.py:468) 60",
            "Thread._bootstrap (threading.py:1002);run (mode/threads.py:62);"
            "send (aiokafka/conn.py:430) 10",
        ]
    )
    s = summarize(collapsed)
    assert (s.samples, s.idle_samples) == (50, 60)
    assert s.self_top[0] == ("model_validate_json (pydantic/main.py)", 30)
    assert dict(s.dispatcher_inclusive)["handle (dispatcher/service.py)"] == 40
    assert dict(s.threads)["mode ServiceThread (aiokafka consumer)"] == 10
    assert dict(s.packages_inclusive)["pydantic"] == 30


def test_frames_and_packages() -> None:
    f = parse_frame("Fetcher._proc (aiokafka/consumer/fetcher.py:747)")
    assert (f.func, f.file) == ("Fetcher._proc", "aiokafka/consumer/fetcher.py")
    assert package_of(f.file) == "aiokafka"
    assert package_of("/x/site-packages/faust/streams.py") == "faust"
    assert package_of("dispatcher/rules/news2.py") == "dispatcher/rules"
    assert package_of("asyncio/events.py") == "asyncio"


def test_no_loss_sums_the_stacks() -> None:
    from bench.run import combine_no_loss

    one = {
        "stack": "search stack",
        "accepted_events": 10,
        "audit_rows": 10,
        "bad_events": 1,
        "dead_letters": 1,
        "escalating_events": 2,
        "escalations_missing": 0,
        "escalations_unmatched": 0,
        "produce_errors": 0,
        "ok": True,
    }
    two = {**one, "stack": "fresh stack", "audit_rows": 9, "ok": False}
    nl = combine_no_loss([one, two])
    assert (nl["accepted_events"], nl["audit_rows"], nl["ok"]) == (20, 19, False)
    assert combine_no_loss([one])["ok"] is True
    md = render_markdown(results(no_loss=nl), None)
    assert "fresh stack 9/10 audit rows" in md
    assert "NOT ok" in md


def test_markdown_says_latency_ran_on_a_fresh_stack() -> None:
    fresh = {
        "infra_s": 3.0,
        "worker_startup_s": 7.0,
        "warmup_events": 24500,
        "drain_rate": 5000.0,
        "old_stopped_s": 2.0,
        "warmup_s": 9.0,
    }
    md = render_markdown(results(fresh_stack=fresh), None)
    assert "**fresh stack**" in md
    assert "24500 events" in md
    assert "(fresh stack, warmed up)" in md
    assert "fresh stack" not in render_markdown(results(), None)
