"""Home-sensor rules: falls, sustained breaches (debounce), heart-failure weight gain, silence.

Every threshold comes from the rule set (``dispatcher.rules.ruleset``); these functions are pure
and read the bounded history in ``CitizenContext`` *after* the current reading was recorded.

* **Fall** (``sensor_fall``): a fall alarm fires at once. Falls are the commonest cause of harm
  for older people living at home; there is nothing to debounce.
* **Sustained breach**: by time window over a bounded episode summary, in
  ``dispatcher.rules.windows`` (issue 12 item 1).
* **Weight** (gain, loss, artefacts, baseline): ``dispatcher.rules.weight`` (issue 12 item 7).
* **Silence** (``sensor_silence``): per sensor kind against its schedule (spot check: daily
  scale, cuff; continuous: worn oximeter), for high-risk citizens. Called by a timer.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dispatcher.contract.events import DeviceProfile, SensorKind, SensorReading
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.findings import Outcome
from dispatcher.rules.ruleset import (
    FallRule,
    SensorSilenceRule,
)


def _iso(at: datetime) -> str:
    return at.isoformat()


def fall(rule: FallRule, reading: SensorReading) -> Outcome:
    """Fire at once for a fall alarm (value >= 1)."""
    out = Outcome()
    if reading.value >= 1:
        out.fire(
            rule,
            rule.severity,
            "Fall alarm from a home sensor: respond at once.",
            {
                "device_id": reading.device_id,
                "value": reading.value,
                "at": _iso(reading.occurred_at),
            },
        )
    return out


def high_risk_because(
    rule: SensorSilenceRule, ctx: CitizenContext, now: datetime, window: timedelta
) -> list[str]:
    """Why the citizen counts as high-risk for the silence rule (empty: not high-risk)."""
    why = [f"condition:{c}" for c in ctx.conditions if c in rule.high_risk_conditions]
    why += [f"flag:{f}" for f in ctx.flags if f in rule.high_risk_flags]
    if rule.post_discharge_is_high_risk and ctx.in_post_discharge_window(now, window):
        why.append("post_discharge_window")
    last = ctx.last_news2()
    if (
        rule.high_risk_news2_at_least is not None
        and last is not None
        and last.total >= rule.high_risk_news2_at_least
    ):
        why.append(f"last_news2:{last.total}")
    return why


def silent_kinds(
    rule: SensorSilenceRule, ctx: CitizenContext, now: datetime
) -> list[dict[str, Any]]:
    """Each sensor kind whose newest reading is older than its limit (kind, profile, times)."""
    newest: list[tuple[SensorKind, datetime]] = [
        (SensorKind(kind), series[-1].at) for kind, series in ctx.readings.items() if series
    ]
    if ctx.weights:
        newest.append((SensorKind.WEIGHT, ctx.weights[-1].at))
    silent: list[dict[str, Any]] = []
    for kind, at in sorted(newest):
        summary = ctx.sensor_summaries.get(kind.value)
        profile = summary.profile if summary is not None else DeviceProfile.SPOT_CHECK
        limit = rule.limit(kind, profile)
        if now - at >= limit:
            silent.append(
                {
                    "kind": kind.value,
                    "device_profile": profile.value,
                    "last_at": _iso(at),
                    "silent_hours": round((now - at) / timedelta(hours=1), 2),
                    "limit_hours": round(limit / timedelta(hours=1), 3),
                }
            )
    return silent


def silence(
    rule: SensorSilenceRule, ctx: CitizenContext, now: datetime, window: timedelta
) -> Outcome:
    """Fire when a high-risk citizen's sensor has been silent beyond its kind's schedule.

    Each kind is judged by the profile of its newest reading (``SensorSilenceRule.limit``): a
    daily scale is not "silent" after 6 hours, a worn oximeter is after minutes. Only
    citizens who have had a sensor (a valid reading was ever recorded) are checked. The
    ``episode_at`` input (the newest last reading among the silent kinds) keys the episode:
    the timer repeats the same event id until a newer silence begins.
    """
    out = Outcome()
    if ctx.last_sensor_at is None:
        return out
    silent = silent_kinds(rule, ctx, now)
    if not silent:
        return out
    why = high_risk_because(rule, ctx, now, window)
    if not why:
        out.notes.append(
            f"{rule.id}: {', '.join(s['kind'] for s in silent)} silent, but the citizen is not "
            "high-risk: not paged."
        )
        return out
    parts = [
        f"{s['kind']} ({s['device_profile']}) for {s['silent_hours']:.1f} h "
        f"(limit {s['limit_hours']:g} h)"
        for s in silent
    ]
    out.fire(
        rule,
        rule.severity,
        f"No valid reading from {'; '.join(parts)} from a high-risk citizen "
        f"({', '.join(why)}): check the citizen and the device.",
        {
            "silent": silent,
            "episode_at": max(s["last_at"] for s in silent),
            "last_sensor_at": _iso(ctx.last_sensor_at),
            "high_risk_because": why,
        },
    )
    return out
