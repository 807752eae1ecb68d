"""``dispatcher evaluate generate`` then ``run`` on a tiny cohort: files, JSON shape, Markdown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from dispatcher.cli.main import main

KEYS = {
    "name",
    "episodes",
    "detected",
    "sensitivity",
    "median_minutes_to_page",
    "p90_minutes_to_page",
    "pages",
    "citizen_days",
    "pages_per_100_citizen_days",
    "ppv",
    "by_kind",
    "by_rule",
}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cohort")
    code = main(
        ["evaluate", "generate", "--citizens", "8", "--days", "2", "--seed", "4", "--out", str(out)]
    )
    assert code == 0
    return out


def test_generate_writes_the_interface_files(cohort_dir: Path) -> None:
    events = (cohort_dir / "EVENTS.ndjson").read_text().splitlines()
    labels = (cohort_dir / "LABELS.ndjson").read_text().splitlines()
    first = json.loads(events[0])
    assert set(first) == {"topic", "value", "arrived_at"}
    assert first["topic"] in (
        "hospital.discharges",
        "home.sensor-readings",
        "homecare.nurse-observations",
    )
    for line in labels:
        assert {"citizen_id", "kind", "onset", "harm_by"} <= set(json.loads(line))


def test_run_json_has_the_issue_shape(cohort_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "run",
            "--events",
            str(cohort_dir / "EVENTS.ndjson"),
            "--labels",
            str(cohort_dir / "LABELS.ndjson"),
            "--json",
        ]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in report["rulesets"]]
    assert names == ["default", "news2_ge5"]
    for r in report["rulesets"]:
        assert set(r) >= KEYS
        assert r["citizen_days"] >= 8


def test_run_markdown_and_plot(
    cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "plot.png"
    args = [
        "--events",
        str(cohort_dir / "EVENTS.ndjson"),
        "--labels",
        str(cohort_dir / "LABELS.ndjson"),
    ]
    code = main(["evaluate", "run", *args, "--plot", str(png)])
    out, err = capsys.readouterr()
    assert "| metric | default | news2_ge5 |" in out
    if importlib.util.find_spec("matplotlib") is None:
        assert code == 2
        assert "--plot needs matplotlib" in err
    else:
        assert code == 0
        assert png.stat().st_size > 0


def test_bad_input_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "e.ndjson"
    events.write_text('{"topic": "home.sensor-readings"}\n')
    labels = tmp_path / "l.ndjson"
    labels.write_text("")
    code = main(["evaluate", "run", "--events", str(events), "--labels", str(labels)])
    assert code == 2
    assert "e.ndjson:1: 'value' is missing" in capsys.readouterr().err


def test_several_rule_sets_side_by_side(
    cohort_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packaged = Path(__file__).resolve().parents[3] / "dispatcher/rules/rulesets/default.yaml"
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(packaged.read_text().replace("ruleset: default", "ruleset: stricter"))
    args = [
        "--events",
        str(cohort_dir / "EVENTS.ndjson"),
        "--labels",
        str(cohort_dir / "LABELS.ndjson"),
    ]
    code = main(["evaluate", "run", *args, "--rules", str(packaged), str(stricter), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in report["rulesets"]]
    assert names == ["default", "stricter", "news2_ge5"]
    default, same = report["rulesets"][0], report["rulesets"][1]
    assert {k: v for k, v in default.items() if k not in ("name", "ruleset")} == {
        k: v for k, v in same.items() if k not in ("name", "ruleset")
    }  # the same rules on the same cohort with the same staff seed: the same figures
