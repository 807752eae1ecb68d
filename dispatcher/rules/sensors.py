"""Home-sensor rules: falls, sustained breaches (debounce), heart-failure weight gain, silence.

Every threshold comes from the rule set (``dispatcher.rules.ruleset``); these functions are pure
and read the bounded history in ``CitizenContext`` *after* the current reading was recorded.

* **Fall** (``sensor_fall``): a fall alarm fires at once. Falls are the commonest cause of harm
  for older people living at home; there is nothing to debounce.
* **Sustained breach**: by time window over a bounded episode summary, in
  ``dispatcher.rules.windows`` (issue 12 item 1).
* **Weight** (gain, loss, artefacts, baseline): ``dispatcher.rules.weight`` (issue 12 item 7).
* **Silence** (``sensor_silence``): a high-risk citizen whose sensors have sent nothing valid
  for ``silent_hours``. Called by a timer, not by an event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatcher.contract.events import SensorReading
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


def silence(
    rule: SensorSilenceRule, ctx: CitizenContext, now: datetime, window: timedelta
) -> Outcome:
    """Fire when a high-risk citizen's sensors have been silent for ``silent_hours``.

    Only citizens who have had a sensor (a valid reading was ever recorded) are checked.
    """
    out = Outcome()
    if ctx.last_sensor_at is None:
        return out
    silent = now - ctx.last_sensor_at
    if silent < timedelta(hours=rule.silent_hours):
        return out
    why = high_risk_because(rule, ctx, now, window)
    if not why:
        return out
    hours = silent / timedelta(hours=1)
    out.fire(
        rule,
        rule.severity,
        f"No valid sensor reading for {hours:.1f} h (limit {rule.silent_hours:g} h) from a "
        f"high-risk citizen ({', '.join(why)}): check the citizen and the device.",
        {
            "last_sensor_at": _iso(ctx.last_sensor_at),
            "silent_hours": round(hours, 2),
            "limit_hours": rule.silent_hours,
            "high_risk_because": why,
        },
    )
    return out
