"""The Prometheus config and alert rules pass promtool: syntax, rule syntax and rule unit tests.

promtool comes from Debian's ``prometheus`` package, installed by ``make test``. Without it the
tests skip when we are not root (we could not have installed it) and fail when we are root (CI):
there, a missing promtool means the Makefile step broke, which must not pass silently.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
DASHBOARD = PROMETHEUS_DIR.parent / "grafana" / "dashboards" / "dispatcher.json"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is not None:
        return path
    if os.geteuid() != 0:
        pytest.skip(
            "promtool not installed and not root, so `make test` could not apt-get install "
            "prometheus; install it to run these tests"
        )
    pytest.fail("promtool missing although running as root: run `make test` (it installs it)")


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_prometheus_config_is_valid() -> None:
    """`promtool check config` accepts prometheus.yml and the rule files it names."""
    result = run_promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    """`promtool check rules` accepts alerts.yml."""
    result = run_promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    """`promtool test rules` runs alerts_test.yml and every expected alert fires (or not)."""
    result = run_promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_every_alert_has_a_rule_unit_test() -> None:
    """Each alert name in alerts.yml is exercised by at least one case in alerts_test.yml."""
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - tested == set()


def test_dashboard_promql_parses(tmp_path: Path) -> None:
    """Every Grafana panel query is valid PromQL (checked by promtool as recording rules)."""
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        t["expr"].replace("$__rate_interval", "5m")
        for p in dashboard["panels"]
        for t in p.get("targets", [])
    ]
    assert exprs
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
