"""TOBS - Tidlig Opsporing af Begyndende Sygdom (early detection of beginning illness).

The early-warning score Danish municipalities use in home care and nursing homes, recommended
by Sundhedsstyrelsen since late 2017. Five parameters, each 0-3 points, total 0-15: pulse,
consciousness, temperature, respiration rate and systolic blood pressure (no SpO2).

Source: the TOBS pocket card as published by the municipalities (Randers/Favrskov/Norddjurs/
Syddjurs with Regionshospitalet Randers, 2013; e.g. Kalundborg Kommune "Vejledning TOBS"
2016/2019, Holstebro Kommune TOBS page) - the same table everywhere:

=============  ===========================================================================
pulse          >130: 3 | 110-129: 2 | 90-109: 1 | 50-89: 0 | 40-49: 1 | <39: 2
consciousness  agitated: 1 | habitual: 0 | voice only: 1 | pain only: 2 | no response: 3
respiration    >25: 3 | 21-24: 2 | 12-20: 0 | 9-11: 1 | <8: 3
temperature    >40: 3 | 39-39.9: 2 | 38-38.9: 1 | 36-37.9: 0 | 34-35.9: 2 | <33.9: 3
systolic BP    >200: 2 | 100-199: 0 | 80-99: 1 | 70-79: 2 | <69: 3
=============  ===========================================================================

Deliberate readings of that card, each documented and tested at its edge:

* The card leaves single values between rows (pulse 130 and 39, respiration 25 and 8,
  systolic 200 and 69, temperature 40.0 and 33.9). Each such gap value gets the **higher** of
  its two neighbouring scores: no missed deterioration. So pulse >= 130 scores 3, <= 39 scores
  2; respiration >= 25 and <= 8 score 3; systolic >= 200 scores 2, <= 69 scores 3; temperature
  >= 40.0 and <= 33.9 score 3.
* Values are put on the card's resolution first like NEWS2 (``news2.to_chart_resolution``:
  whole numbers, temperature tenths, half-up).
* Consciousness from the observation's ACVPU: A -> habitual (0), V -> voice (1), P -> pain (2),
  U -> no response (3). C (new confusion) -> 1: the card's "agiteret" row, which several
  municipal variants word as new confusion / acute change in behaviour (delirium).
* The card's temperature advice (rectal; oral +0.5, axillary +1) is the measuring nurse's job:
  the value is scored as sent.
* A missing parameter is listed as missing and never scored as normal; the total is then a
  lower bound (as for NEWS2).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

PARAMETERS: tuple[str, ...] = (
    "pulse",
    "consciousness",
    "respiration_rate",
    "temperature",
    "systolic_bp",
)
MAX_TOTAL = 15

CONSCIOUSNESS_POINTS: dict[str, int] = {"A": 0, "C": 1, "V": 1, "P": 2, "U": 3}


def score_pulse(pulse: int) -> int:
    """>= 130 -> 3; 110-129 -> 2; 90-109 -> 1; 50-89 -> 0; 40-49 -> 1; <= 39 -> 2."""
    if pulse >= 130:
        return 3
    if pulse >= 110:
        return 2
    if pulse >= 90:
        return 1
    if pulse >= 50:
        return 0
    if pulse >= 40:
        return 1
    return 2


def score_respiration_rate(rate: int) -> int:
    """>= 25 -> 3; 21-24 -> 2; 12-20 -> 0; 9-11 -> 1; <= 8 -> 3."""
    if rate >= 25:
        return 3
    if rate >= 21:
        return 2
    if rate >= 12:
        return 0
    if rate >= 9:
        return 1
    return 3


def score_systolic_bp(systolic: int) -> int:
    """>= 200 -> 2; 100-199 -> 0; 80-99 -> 1; 70-79 -> 2; <= 69 -> 3."""
    if systolic >= 200:
        return 2
    if systolic >= 100:
        return 0
    if systolic >= 80:
        return 1
    if systolic >= 70:
        return 2
    return 3


def score_temperature(celsius: Decimal) -> int:
    """>= 40.0 -> 3; 39.0-39.9 -> 2; 38.0-38.9 -> 1; 36.0-37.9 -> 0; 34.0-35.9 -> 2;
    <= 33.9 -> 3 (on the value rounded to tenths)."""
    if celsius >= Decimal("40.0"):
        return 3
    if celsius >= Decimal("39.0"):
        return 2
    if celsius >= Decimal("38.0"):
        return 1
    if celsius >= Decimal("36.0"):
        return 0
    if celsius >= Decimal("34.0"):
        return 2
    return 3


def score_consciousness(level: str) -> int:
    """ACVPU -> TOBS: A 0, C 1 (agitated / new confusion), V 1, P 2, U 3."""
    try:
        return CONSCIOUSNESS_POINTS[level]
    except KeyError:
        raise ValueError(f"consciousness must be one of A, C, V, P, U, not {level!r}") from None


@dataclass(frozen=True)
class TobsScore:
    """The scored result: total (0-15), sub-scores and what was missing."""

    total: int
    subscores: dict[str, int]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def score(
    *,
    pulse: int | None = None,
    consciousness: str | None = None,
    respiration_rate: int | None = None,
    temperature: Decimal | float | None = None,
    systolic_bp: int | None = None,
) -> TobsScore:
    """Score the parameters present (already on the card's resolution); list the missing."""
    sub: dict[str, int] = {}
    if pulse is not None:
        sub["pulse"] = score_pulse(pulse)
    if consciousness is not None:
        sub["consciousness"] = score_consciousness(consciousness)
    if respiration_rate is not None:
        sub["respiration_rate"] = score_respiration_rate(respiration_rate)
    if temperature is not None:
        sub["temperature"] = score_temperature(Decimal(str(temperature)))
    if systolic_bp is not None:
        sub["systolic_bp"] = score_systolic_bp(systolic_bp)
    missing = tuple(p for p in PARAMETERS if p not in sub)
    return TobsScore(total=sum(sub.values()), subscores=sub, missing=missing)
