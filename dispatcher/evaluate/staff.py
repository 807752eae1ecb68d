"""Simulated staff: who answers a page, how fast, and what they find. Seeded, pure.

Per tier an acknowledgement delay (log-normal: median and 90th percentile in minutes) and a miss
rate (the page is never acknowledged by its recipient: phone in a pocket, in a visit, asleep);
after acknowledging, the case is resolved after a visit/call time. The outcome depends on the
truth: when the citizen is inside a labelled episode the case ends ``admitted`` or
``treated_at_home``, otherwise mostly ``false_alarm``. The numbers are assumptions for a
simulation (docs/evaluation.md says so), not measurements.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dispatcher.contract.vocab import Outcome
from dispatcher.evaluate.simulator import PageRecord, Response


@dataclass(frozen=True)
class TierBehaviour:
    ack_median_min: float
    ack_p90_min: float
    miss_rate: float
    resolve_median_min: float

    def sigma(self) -> float:
        # log-normal: p90 = median * exp(1.2816 * sigma)
        return max(1e-6, math.log(self.ack_p90_min / self.ack_median_min) / 1.2816)


DEFAULT_TIERS: dict[str, TierBehaviour] = {
    # An acute-team nurse on shift: usually within minutes, sometimes in a visit.
    "nurse": TierBehaviour(
        ack_median_min=4.0, ack_p90_min=14.0, miss_rate=0.08, resolve_median_min=75.0
    ),
    # The fixed on-call doctor: quick, rarely misses.
    "doctor": TierBehaviour(
        ack_median_min=2.0, ack_p90_min=6.0, miss_rate=0.03, resolve_median_min=45.0
    ),
    # The palliative network: smaller team, slower.
    "palliative": TierBehaviour(
        ack_median_min=6.0, ack_p90_min=20.0, miss_rate=0.10, resolve_median_min=90.0
    ),
}


@dataclass
class SimulatedStaff:
    """Answers each page with a seeded draw. ``in_episode(citizen_id, at)`` is the truth the
    visiting nurse finds (from the labels)."""

    seed: int = 0
    tiers: dict[str, TierBehaviour] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    in_episode: Callable[[str, datetime], bool] = lambda _c, _t: False
    p_admitted_if_ill: float = 0.4
    p_false_alarm_if_well: float = 0.85

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - simulation, not secrets

    def respond(self, page: PageRecord) -> Response:
        rng = self._rng
        tier = self.tiers.get(page.tier, DEFAULT_TIERS["nurse"])
        missed = rng.random() < tier.miss_rate
        delay = tier.ack_median_min * math.exp(rng.gauss(0.0, tier.sigma()))
        resolve_min = tier.resolve_median_min * math.exp(rng.gauss(0.0, 0.5))
        ill = self.in_episode(page.citizen_id, page.at)
        outcome: Outcome
        if ill:
            outcome = "admitted" if rng.random() < self.p_admitted_if_ill else "treated_at_home"
        else:
            outcome = "false_alarm" if rng.random() < self.p_false_alarm_if_well else "other"
        actor = page.staff_id or f"{page.team_id}-member"
        return Response(
            ack_at=None if missed else page.at + timedelta(minutes=delay),
            actor=actor,
            resolve_after=timedelta(minutes=resolve_min),
            outcome=outcome,
        )
