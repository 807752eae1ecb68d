"""NEWS2, exactly as the Royal College of Physicians chart.

Source: Royal College of Physicians. *National Early Warning Score (NEWS) 2: Standardising the
assessment of acute-illness severity in the NHS.* Updated report of a working party. London: RCP,
2017. Chart 1 (the NEWS2 scoring system), Chart 2 (thresholds and triggers) and Chart 4 (clinical
response).

Design choices, each deliberate:

* A missing parameter is listed in ``missing`` and contributes nothing; it is never scored as
  normal. The total over the parameters present is therefore a *lower bound*, and ``complete``
  says whether all seven parameters were there.
* SpO2 scale 2 is used only when the citizen has documented hypercapnic respiratory failure
  (from the discharge flags or care plan); the caller decides and passes ``scale``.
* On scale 2, saturations of 93 % or more score 1-3 only when the citizen is on oxygen; on air
  they score 0 (chart 1, "SpO2 Scale 2", "on oxygen" rows). When it is not known whether the
  citizen is on oxygen, a scale-2 saturation of 93 % or more cannot be scored (it scores 0 on air
  and up to 3 on oxygen): ``spo2`` is then reported as missing rather than guessed as 0.
  Saturations of 92 % or less score the same on air and oxygen and are always scored.
* Chart 2 bands the aggregate: 0-4 low, a single parameter scoring 3 low-medium, 5-6 medium,
  7 or more high. Chart 4 gives the response: an aggregate of 0 means continued routine
  monitoring, which ``urgency`` says explicitly.
* Numbers arrive as devices send them (SpO2 88.5, temperature 37.85). RCP 2017 asks that
  observations be recorded as measured; the chart's bands, however, are written at a fixed
  resolution, so a value between two bands (SpO2 91.5: 91 scores 3, 92 scores 2) must be put on
  the chart first. We round **half-up to the chart's resolution** (``CHART_RESOLUTION``): whole
  numbers for respiration rate, SpO2, systolic BP and pulse (88.5 -> 89, 88.4 -> 88, 90.5 -> 91),
  one decimal for temperature (bands 35.0 / 35.1, 36.0 / 36.1, 38.0 / 38.1, 39.0 / 39.1;
  37.85 -> 37.9, 38.04 -> 38.0). Rounding is decimal, on the value as written (``str``), so a
  binary float artefact never moves a value across a band edge. The value as measured is kept
  in the event; the assessment notes every value that rounding changed.
* Consciousness: A scores 0; new Confusion, V, P and U score 3 (the "C" of ACVPU, added in
  NEWS2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from dispatcher.contract.vocab import RiskBand

Scale = Literal[1, 2]

PARAMETERS: tuple[str, ...] = (
    "respiration_rate",
    "spo2",
    "air_or_oxygen",
    "systolic_bp",
    "pulse",
    "consciousness",
    "temperature",
)

Urgency = Literal[
    "routine monitoring",
    "incomplete set",
    "ward-based response",
    "urgent ward-based response",
    "urgent response",
    "emergency response",
]

# Chart 4: clinical response to NEWS2 trigger thresholds (1-4, single 3, 5-6, 7+).
RESPONSE: dict[RiskBand, str] = {
    "low": "Inform a registered nurse, who must assess the citizen and decide whether "
    "monitoring must be more frequent or care escalated (NEWS2 1-4; at least 4-6-hourly).",
    "low-medium": "Urgent ward-based response: the registered nurse informs the clinical team, "
    "who review and decide whether escalation is needed (a single parameter scored 3; "
    "at least hourly).",
    "medium": "Urgent response (key threshold): urgent assessment by a clinician competent in "
    "the care of acutely ill patients (NEWS2 5-6; at least hourly).",
    "high": "Emergency response: emergency assessment by a team with critical-care "
    "competencies (NEWS2 7 or more; continuous monitoring).",
}
# Chart 4, first row: an aggregate of 0.
ROUTINE_RESPONSE = "Continue routine NEWS2 monitoring (NEWS2 0; at least 12-hourly)."
# Not a chart row: 0 over an incomplete set is not an aggregate of 0 (see ``urgency_for``).
INCOMPLETE_RESPONSE = (
    "Not a NEWS2 of 0: parameters are missing, so routine monitoring cannot be concluded; "
    "measure the missing parameters now and score the full set."
)

# Chart 2 ("clinical risk" -> "response") with chart 4's row for an aggregate of 0.
URGENCY: dict[RiskBand, Urgency] = {
    "low": "ward-based response",
    "low-medium": "urgent ward-based response",
    "medium": "urgent response",
    "high": "emergency response",
}


@dataclass(frozen=True)
class Vitals:
    """The seven NEWS2 inputs; ``None`` means not measured."""

    respiration_rate: int | None = None
    spo2: int | None = None
    on_oxygen: bool | None = None
    systolic_bp: int | None = None
    pulse: int | None = None
    consciousness: str | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class News2Score:
    """The scored result: total, sub-scores, risk band and what was missing."""

    total: int
    subscores: dict[str, int]
    missing: tuple[str, ...]
    scale: Scale
    red_score: bool
    risk: RiskBand
    complete: bool
    urgency: Urgency
    response: str = field(repr=False)


def score_respiration_rate(rate: int) -> int:
    """Chart 1: <=8 -> 3; 9-11 -> 1; 12-20 -> 0; 21-24 -> 2; >=25 -> 3."""
    if rate <= 8:
        return 3
    if rate <= 11:
        return 1
    if rate <= 20:
        return 0
    if rate <= 24:
        return 2
    return 3


def score_spo2_scale1(spo2: int) -> int:
    """Chart 1, SpO2 scale 1: <=91 -> 3; 92-93 -> 2; 94-95 -> 1; >=96 -> 0."""
    if spo2 <= 91:
        return 3
    if spo2 <= 93:
        return 2
    if spo2 <= 95:
        return 1
    return 0


def score_spo2_scale2(spo2: int, on_oxygen: bool) -> int:
    """Chart 1, SpO2 scale 2 (target 88-92 %, hypercapnic respiratory failure).

    <=83 -> 3; 84-85 -> 2; 86-87 -> 1; 88-92 -> 0; >=93 on air -> 0;
    93-94 on oxygen -> 1; 95-96 on oxygen -> 2; >=97 on oxygen -> 3.
    """
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0
    if spo2 <= 94:
        return 1
    if spo2 <= 96:
        return 2
    return 3


def score_air_or_oxygen(on_oxygen: bool) -> int:
    """Chart 1: oxygen -> 2; air -> 0."""
    return 2 if on_oxygen else 0


def score_systolic_bp(systolic: int) -> int:
    """Chart 1: <=90 -> 3; 91-100 -> 2; 101-110 -> 1; 111-219 -> 0; >=220 -> 3."""
    if systolic <= 90:
        return 3
    if systolic <= 100:
        return 2
    if systolic <= 110:
        return 1
    if systolic <= 219:
        return 0
    return 3


def score_pulse(pulse: int) -> int:
    """Chart 1: <=40 -> 3; 41-50 -> 1; 51-90 -> 0; 91-110 -> 1; 111-130 -> 2; >=131 -> 3."""
    if pulse <= 40:
        return 3
    if pulse <= 50:
        return 1
    if pulse <= 90:
        return 0
    if pulse <= 110:
        return 1
    if pulse <= 130:
        return 2
    return 3


def score_consciousness(level: str) -> int:
    """Chart 1: Alert -> 0; new Confusion, Voice, Pain or Unresponsive -> 3."""
    if level == "A":
        return 0
    if level in ("C", "V", "P", "U"):
        return 3
    raise ValueError(f"consciousness must be one of A, C, V, P, U, not {level!r}")


# The resolution each NEWS2 parameter's bands are written in (RCP 2017 chart 1).
CHART_RESOLUTION: dict[str, Decimal] = {
    "respiration_rate": Decimal("1"),
    "spo2": Decimal("1"),
    "systolic_bp": Decimal("1"),
    "pulse": Decimal("1"),
    "temperature": Decimal("0.1"),
}


def to_chart_resolution(name: str, value: float) -> Decimal:
    """Round ``value`` half-up to the resolution parameter ``name`` is charted in."""
    return Decimal(str(value)).quantize(CHART_RESOLUTION[name], rounding=ROUND_HALF_UP)


def round_temperature(celsius: float) -> Decimal:
    """Round half-up to one decimal, the resolution the chart's bands are written in."""
    return to_chart_resolution("temperature", celsius)


def score_temperature(celsius: float) -> int:
    """Chart 1: <=35.0 -> 3; 35.1-36.0 -> 1; 36.1-38.0 -> 0; 38.1-39.0 -> 1; >=39.1 -> 2."""
    t = round_temperature(celsius)
    if t <= Decimal("35.0"):
        return 3
    if t <= Decimal("36.0"):
        return 1
    if t <= Decimal("38.0"):
        return 0
    if t <= Decimal("39.0"):
        return 1
    return 2


def risk_band(total: int, red_score: bool) -> RiskBand:
    """Chart 2: 7+ high; 5-6 medium; a single red score (3) low-medium; otherwise low."""
    if total >= 7:
        return "high"
    if total >= 5:
        return "medium"
    if red_score:
        return "low-medium"
    return "low"


def urgency_for(total: int, band: RiskBand, complete: bool = True) -> Urgency:
    """Chart 2 response per band; chart 4: an aggregate of 0 is routine monitoring.

    0 over an incomplete set is no aggregate of 0 (a missing parameter is never normal), so it
    says "incomplete set" instead of "routine monitoring". A total of 1 or more over an
    incomplete set keeps its band: the response is at least that urgent.
    """
    if total == 0:
        return "routine monitoring" if complete else "incomplete set"
    return URGENCY[band]


def response_for(total: int, band: RiskBand, complete: bool = True) -> str:
    """Chart 4 clinical response text for the aggregate and band."""
    if total == 0:
        return ROUTINE_RESPONSE if complete else INCOMPLETE_RESPONSE
    return RESPONSE[band]


def score(vitals: Vitals, scale: Scale = 1) -> News2Score:
    """Score the vitals present; list the ones missing; band the result (charts 1, 2 and 4).

    ``scale`` 2 is for documented hypercapnic respiratory failure only (chart 1, SpO2 scale 2).
    """
    sub: dict[str, int] = {}
    if vitals.respiration_rate is not None:
        sub["respiration_rate"] = score_respiration_rate(vitals.respiration_rate)
    if vitals.spo2 is not None:
        if scale == 2:
            # Scale 2 at >= 93 % scores 0 on air but 1-3 on oxygen: without knowing which, the
            # sub-score is unknown, so spo2 is reported missing instead of guessed as normal.
            if vitals.on_oxygen is not None or vitals.spo2 <= 92:
                sub["spo2"] = score_spo2_scale2(vitals.spo2, bool(vitals.on_oxygen))
        else:
            sub["spo2"] = score_spo2_scale1(vitals.spo2)
    if vitals.on_oxygen is not None:
        sub["air_or_oxygen"] = score_air_or_oxygen(vitals.on_oxygen)
    if vitals.systolic_bp is not None:
        sub["systolic_bp"] = score_systolic_bp(vitals.systolic_bp)
    if vitals.pulse is not None:
        sub["pulse"] = score_pulse(vitals.pulse)
    if vitals.consciousness is not None:
        sub["consciousness"] = score_consciousness(vitals.consciousness)
    if vitals.temperature is not None:
        sub["temperature"] = score_temperature(vitals.temperature)

    missing = tuple(p for p in PARAMETERS if p not in sub)
    total = sum(sub.values())
    red = any(v == 3 for v in sub.values())
    band = risk_band(total, red)
    return News2Score(
        total=total,
        subscores=sub,
        missing=missing,
        scale=scale,
        red_score=red,
        risk=band,
        complete=not missing,
        urgency=urgency_for(total, band, not missing),
        response=response_for(total, band, not missing),
    )
