"""The ``news2_ge5`` baseline: page whenever NEWS2 >= 5 or a single parameter scores 3.

What a NEWS2-only alerting system would page, measured on the same accepted, in-order and
plausible measurements as the dispatcher (it reads the audit rows of the simulated run):

* a nurse observation whose NEWS2 (as the real engine scored it, scale included) is >= 5 or has
  a single red parameter pages, every time;
* a vital sensor reading whose own NEWS2 sub-score (RCP 2017 chart 1, the citizen's SpO2 scale)
  is 3 pages: a spot check every time, a continuous device once per run of red readings (the
  first red reading after a non-red one or a gap of more than 30 minutes; paging every second
  of a worn oximeter would not be a baseline anyone runs);
* nothing else: no grouping, no falls, no weights, no glucose, no silence, no worry.

Tier: the palliative team for a palliative citizen, the on-call doctor for NEWS2 >= 7, the
acute nurses otherwise. Stale (out-of-order) and quarantined readings never page, as in the
dispatcher.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatcher.contract.events import DeviceProfile, NurseObservation, SensorKind, SensorReading
from dispatcher.evaluate.scoring import ScoredPage
from dispatcher.ingest.planner import AuditRow
from dispatcher.rules import news2
from dispatcher.rules.context import CitizenContext

NAME = "news2_ge5"
RUN_GAP = timedelta(minutes=30)
CONTINUOUS_MAX_INTERVAL = timedelta(seconds=120)


def sensor_subscore(kind: SensorKind, value: float, scale: int) -> int | None:
    """The NEWS2 chart-1 sub-score of one sensor value; None for a kind NEWS2 does not score."""
    if kind == SensorKind.SPO2:
        v = int(news2.to_chart_resolution("spo2", value))
        return news2.score_spo2_scale2(v, False) if scale == 2 else news2.score_spo2_scale1(v)
    if kind == SensorKind.PULSE:
        return news2.score_pulse(int(news2.to_chart_resolution("pulse", value)))
    if kind == SensorKind.SYSTOLIC_BP:
        return news2.score_systolic_bp(int(news2.to_chart_resolution("systolic_bp", value)))
    if kind == SensorKind.RESPIRATION_RATE:
        return news2.score_respiration_rate(
            int(news2.to_chart_resolution("respiration_rate", value))
        )
    if kind == SensorKind.TEMPERATURE:
        return news2.score_temperature(value)
    return None


GLUCOSE_LOW = 3.9  # mmol/L, ADA 2024 level 1 hypoglycaemia


class News2Baseline:
    """Feed it the audit rows of a run (``Simulator(observe_audit=...)``); read ``pages``."""

    def __init__(self) -> None:
        self.pages: list[ScoredPage] = []
        # Per citizen, when an abnormal measurement was taken (``occurred_at``): every red one
        # (NEWS2 >= 5 or a single 3), a fall alarm, a glucose below 3.9 mmol/L (ADA level 1).
        # The scorer measures the dispatcher's own delay from the first one in an episode.
        self.signals: dict[str, list[datetime]] = {}
        # (citizen, kind) -> (time of the last reading, whether it was red)
        self._last: dict[tuple[str, str], tuple[datetime, bool]] = {}

    def observe(self, now: datetime, audit: AuditRow, ctx: CitizenContext | None) -> None:
        event, assessment = audit.event, audit.assessment
        if assessment.stale or assessment.quarantined:
            return
        palliative = "palliative" in assessment.treatment_limitations
        if isinstance(event, NurseObservation):
            n = assessment.news2
            if n is not None and (n.total >= 5 or n.red_score):
                self._signal(event.citizen_id, event.occurred_at)
                tier = "palliative" if palliative else "doctor" if n.total >= 7 else "nurse"
                rule = "news2.total_ge5" if n.total >= 5 else "news2.single_3"
                self.pages.append(ScoredPage(now, event.citizen_id, tier, (rule,)))
            return
        if not isinstance(event, SensorReading):
            return
        if (event.kind == SensorKind.FALL and event.value >= 1) or (
            event.kind == SensorKind.BLOOD_GLUCOSE and event.value < GLUCOSE_LOW
        ):
            self._signal(event.citizen_id, event.occurred_at)
        scale = ctx.news2_scale if ctx is not None else 1
        sub = sensor_subscore(event.kind, event.value, scale)
        if sub is None:
            return
        red = sub == 3
        if red:
            self._signal(event.citizen_id, event.occurred_at)
        key = (event.citizen_id, event.kind.value)
        previous = self._last.get(key)
        self._last[key] = (event.occurred_at, red)
        if not red:
            return
        profile = event.device_profile
        if profile is None:
            close = (
                previous is not None and event.occurred_at - previous[0] <= CONTINUOUS_MAX_INTERVAL
            )
            profile = DeviceProfile.CONTINUOUS if close else DeviceProfile.SPOT_CHECK
        if (
            profile == DeviceProfile.CONTINUOUS
            and previous is not None
            and previous[1]
            and event.occurred_at - previous[0] <= RUN_GAP
        ):
            return  # the same run of red readings
        tier = "palliative" if palliative else "nurse"
        self.pages.append(
            ScoredPage(now, event.citizen_id, tier, (f"sensor.{event.kind.value}_single_3",))
        )

    def _signal(self, citizen_id: str, at: datetime) -> None:
        self.signals.setdefault(citizen_id, []).append(at)
