"""Case lifecycle edges the scenario tests left open (found by ``make mutation``): the target
past the end of the chain, the last-rung boundary, silence windows at their exact ends, the
acknowledgement policy's defaults against the settings, page durations in words."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from dispatcher.cases.lifecycle import AckPolicy, Silence, _span, at_last_rung, on_escalation
from dispatcher.config import Settings
from tests.unit.cases.test_lifecycle import (
    DOCTOR,
    FALLBACK,
    NOW,
    NURSE,
    escalation,
    opened,
    route_for,
)


class TestChainPosition:
    def test_the_target_past_the_end_of_the_chain_is_its_last_rung(self) -> None:
        case = opened("high")
        assert case.chain == (NURSE, FALLBACK, DOCTOR)
        assert [replace(case, level=n).target for n in range(5)] == [
            NURSE,
            FALLBACK,
            DOCTOR,
            DOCTOR,
            DOCTOR,
        ]

    def test_only_the_last_rung_and_beyond_count_as_the_last_rung(self) -> None:
        case = opened("high")
        assert [at_last_rung(replace(case, level=n)) for n in range(4)] == [
            False,
            False,
            True,
            True,
        ]


def silence(**kw: object) -> Silence:
    base: dict[str, object] = {
        "silence_id": uuid4(),
        "citizen_id": "cit-abc123",
        "rule_id": None,
        "starts_at": NOW,
        "ends_at": NOW + timedelta(hours=1),
        "author": "rn-1",
        "reason": "known chronic low SpO2",
    }
    base.update(kw)
    return Silence(**base)  # type: ignore[arg-type]


class TestSilenceWindow:
    @pytest.mark.parametrize(
        ("offset", "active"),
        [
            (-timedelta(microseconds=1), False),
            (timedelta(0), True),  # from its start, inclusive
            (timedelta(hours=1) - timedelta(microseconds=1), True),
            (timedelta(hours=1), False),  # until its end, exclusive
        ],
    )
    def test_half_open_window(self, offset: timedelta, active: bool) -> None:
        assert silence().matches("cit-abc123", ["news2.medium"], "high", NOW + offset) is active

    def test_a_silence_leaves_critical_alone_unless_it_says_so(self) -> None:
        assert not silence().matches("cit-abc123", [], "critical", NOW)
        assert silence(include_critical=True).matches("cit-abc123", [], "critical", NOW)


def test_the_policy_defaults_are_the_settings_defaults() -> None:
    """The pure core's defaults and the worker's settings say the same (docs/cases.md)."""
    s = Settings()
    assert AckPolicy() == AckPolicy(
        quiet_period=timedelta(minutes=s.ack_quiet_period_min),
        stale_after=timedelta(hours=s.ack_stale_after_h),
        burst_window=timedelta(minutes=s.burst_window_min),
    )


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=90), "1.5 min"),
        (timedelta(minutes=119), "119 min"),
        (timedelta(minutes=120), "2 h"),
        (timedelta(minutes=150), "2.5 h"),
    ],
)
def test_page_durations_read_in_minutes_below_two_hours(span: timedelta, text: str) -> None:
    assert _span(span) == text


def test_a_severity_raise_starts_the_new_chain_at_its_first_rung_with_a_fresh_deadline() -> None:
    """A high case already moved on a rung, then a critical escalation: the case restarts at
    rung 0 of the critical chain with the critical deadline from now (5 min), not earlier."""
    case = replace(opened("high"), level=1)
    later = NOW + timedelta(minutes=20)
    d = on_escalation(
        escalation("critical", "news2.high"), case, [], route_for, now=later, page_seq=3
    )
    assert d.action == "raised"
    assert d.case is not None
    assert (d.case.level, d.case.target) == (0, DOCTOR)
    assert d.case.ack_deadline == later + timedelta(minutes=5)
