"""Detection, PPV, burden and time-to-page arithmetic on hand-made inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatcher.evaluate.scoring import Label, ScoredPage, citizen_days, markdown, percentile, score

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _min(m: float) -> datetime:
    return T0 + timedelta(minutes=m)


LABELS = [
    Label("cit-aaa", "sepsis", _min(0), _min(600), "doctor"),
    Label("cit-aaa", "copd_exacerbation", _min(2000), _min(3000), "nurse"),
    Label("cit-bbb", "fall_long_lie", _min(100), _min(160), "nurse", continuous=True),
    Label("cit-ccc", "hypoglycaemia", _min(0), _min(60), "nurse"),
]
PAGES = [
    ScoredPage(_min(-10), "cit-aaa", "nurse", ("r.before",)),  # before onset: false positive
    ScoredPage(_min(30), "cit-aaa", "nurse", ("r.a",)),  # detects sepsis at 30, wrong tier
    ScoredPage(_min(45), "cit-aaa", "doctor", ("r.a", "r.b")),  # right tier at 45
    ScoredPage(_min(3001), "cit-aaa", "nurse", ("r.b",)),  # 1 min after harm: missed, FP
    ScoredPage(_min(101), "cit-bbb", "nurse", ("r.fall",)),  # detects the fall at 1 min
    ScoredPage(_min(500), "cit-ddd", "nurse", ("r.a",)),  # citizen without episodes: FP
]


def test_detection_time_to_page_and_ppv() -> None:
    r = score("x", LABELS, PAGES, days=20.0)
    assert r["episodes"] == 4
    assert r["detected"] == 2
    assert r["sensitivity"] == 0.5
    assert r["median_minutes_to_page"] == 15.5  # (30 + 1) / 2
    assert r["p90_minutes_to_page"] == 30.0
    assert r["detected_right_tier"] == 2
    assert r["median_minutes_to_right_tier"] == 23.0  # (45 + 1) / 2
    assert r["pages"] == 6
    assert r["citizen_days"] == 20.0
    assert r["pages_per_100_citizen_days"] == 30.0
    assert r["ppv"] == 0.5  # pages at 30, 45, 101 are in a window
    assert r["continuous_episodes"] == 1
    assert r["median_minutes_to_page_continuous"] == 1.0
    assert r["by_kind"]["sepsis"]["detected"] == 1
    assert r["by_kind"]["copd_exacerbation"]["detected"] == 0
    assert r["by_kind"]["hypoglycaemia"]["sensitivity"] == 0.0
    assert r["by_rule"]["r.a"] == {"pages": 3, "true_positive": 2, "ppv": round(2 / 3, 4)}
    assert r["by_rule"]["r.b"] == {"pages": 2, "true_positive": 1, "ppv": 0.5}
    assert r["pages_by_tier"] == {"doctor": 1, "nurse": 5}


def test_window_edges_are_inclusive() -> None:
    label = [Label("cit-aaa", "sepsis", _min(0), _min(60))]
    assert score("x", label, [ScoredPage(_min(0), "cit-aaa", "nurse", ())], 1)["detected"] == 1
    assert score("x", label, [ScoredPage(_min(60), "cit-aaa", "nurse", ())], 1)["detected"] == 1
    missed = score("x", label, [ScoredPage(_min(60.01), "cit-aaa", "nurse", ())], 1)
    assert missed["detected"] == 0
    assert missed["ppv"] == 0.0
    assert missed["by_rule"] == {"(none)": {"pages": 1, "true_positive": 0, "ppv": 0.0}}


def test_no_pages_no_episodes() -> None:
    r = score("x", [], [], 0.0)
    assert r["sensitivity"] is None
    assert r["ppv"] is None
    assert r["pages_per_100_citizen_days"] is None
    assert r["median_minutes_to_page"] is None


def test_percentile_nearest_rank_and_citizen_days() -> None:
    assert percentile([], 90) is None
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile([5.0], 90) == 5.0
    spans = {"a": (T0, T0 + timedelta(days=3)), "b": (T0, T0 + timedelta(hours=2))}
    assert citizen_days(spans) == 4.0  # at least one day per citizen


def test_markdown_has_the_side_by_side_table() -> None:
    report = {
        "rulesets": [score("default", LABELS, PAGES, 20.0), score("news2_ge5", LABELS, [], 20.0)]
    }
    text = markdown(report)
    assert "| metric | default | news2_ge5 |" in text
    assert "| sensitivity | 50.0 % | 0.0 % |" in text
    assert "| pages per 100 citizen-days | 30 | 0 |" in text


def test_minutes_from_the_first_abnormal_measurement() -> None:
    signals = {
        "cit-aaa": [_min(-50), _min(20), _min(25)],  # before onset: not this episode's
        "cit-bbb": [_min(100)],
        "cit-ccc": [_min(10)],  # hypoglycaemia signalled but never paged
    }
    r = score("x", LABELS, PAGES, 20.0, signals=signals)
    assert r["episodes_with_signal"] == 3
    assert r["median_minutes_signal_to_page"] == 5.5  # sepsis 30 - 20, fall 101 - 100
    assert r["median_minutes_signal_to_page_continuous"] == 1.0
    early = score("x", LABELS, PAGES, 20.0, signals={"cit-aaa": [_min(40)]})
    assert early["median_minutes_signal_to_page"] == 0.0  # paged before the signal


def test_targets_table() -> None:
    good = score("default", LABELS[2:3], PAGES[4:5], 20.0)  # the fall: 1/1, 1 min, continuous
    base = score("news2_ge5", LABELS[2:3], PAGES, 20.0)
    text = markdown({"rulesets": [good, base]})
    assert "| sensitivity >= 95 % before harm | 100.0 % | met |" in text
    assert "| pages per 100 citizen-days <= news2_ge5's (30) | 5 | met |" in text
    assert "continuous-sensor episodes | 1 | met |" in text
    bad = markdown({"rulesets": [score("default", LABELS, PAGES, 20.0), base]})
    assert "| sensitivity >= 95 % before harm | 50.0 % | **not met** |" in bad
