"""Heart-failure weight (issue 12 item 7): gain in 3 days and over a week, baseline weight,
artefact rejection and weight loss."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from dispatcher.contract.events import InputEvent, SensorKind
from dispatcher.rules.assessment import Assessment, evaluate
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import default_ruleset
from tests.helpers import RULES_NOW as NOW
from tests.helpers import discharge_model as discharge
from tests.helpers import reading_model as reading

RS = default_ruleset()
GAIN = "heart_failure.weight_gain"
WEEK = "heart_failure.weight_gain_week"
LOSS = "heart_failure.weight_loss"


def run(
    events: Sequence[InputEvent], ctx: CitizenContext | None = None
) -> tuple[list[Assessment], CitizenContext]:
    out: list[Assessment] = []
    for ev in events:
        a, ctx = evaluate(ev, ctx, NOW, RS)
        out.append(a)
    assert ctx is not None
    return out, ctx


def hf(**over: object) -> CitizenContext:
    return run([discharge(diagnoses=["I50.0"], at=NOW - timedelta(days=10), **over)])[1]


def daily(kg: list[float], ctx: CitizenContext, every_h: float = 24) -> list[Assessment]:
    n = len(kg)
    events = [
        reading(SensorKind.WEIGHT, w, at=NOW - timedelta(hours=every_h * (n - 1 - i)))
        for i, w in enumerate(kg)
    ]
    return run(events, ctx)[0]


def fired(a: Assessment) -> set[str]:
    return {r.rule_id for r in a.reasons}


class TestArtefacts:
    def test_one_step_off_reading_never_pages(self) -> None:
        """70 -> 89 (a step-off reading, 'weight up 19 kg') -> 70.2: the step is held, then
        rejected as an artefact when the next weight contradicts it; nothing pages."""
        results = daily([70.0, 89.0, 70.2], hf(), every_h=12)
        assert not any(a.escalate for a in results)
        assert not any(fired(a) for a in results)
        assert any("held until the next weight" in n for n in results[1].notes)
        assert any("rejected as an artefact" in n for n in results[2].notes)

    def test_a_low_step_off_reading_is_no_false_baseline(self) -> None:
        """70 -> 51 (partial step) -> 70.5 -> 71: the 51 kg never becomes the lowest weight, so
        no '+20 kg' gain and no weight loss fire."""
        results = daily([70.0, 51.0, 70.5, 71.0], hf(), every_h=12)
        assert not any(fired(a) for a in results)

    def test_a_confirmed_step_pages(self) -> None:
        """A large step confirmed by the next weight is real: it pages on the confirming
        weight (never on the unconfirmed one)."""
        results = daily([70.0, 76.0, 76.3], hf(), every_h=12)
        assert [GAIN in fired(a) for a in results] == [False, False, True]

    def test_step_at_the_edge(self) -> None:
        """A change of exactly artefact_step_kg (5 kg) is not held: it pages at once."""
        results = daily([70.0, 75.0], hf(), every_h=12)
        assert GAIN in fired(results[-1])


class TestGain:
    def test_band_edge_three_days(self) -> None:
        """+2.0 kg within 3 days pages (medium); +1.9 kg does not."""
        assert GAIN in fired(daily([70.0, 71.0, 72.0], hf())[-1])
        assert GAIN not in fired(daily([70.0, 71.0, 71.9], hf())[-1])

    def test_slow_gain_over_a_week_pages_the_week_rule(self) -> None:
        """+0.5 kg a day (never 2 kg in 3 days) reaches +2.5 kg on two weighings within a week:
        the week rule pages once, the 3-day rule never."""
        results = daily([70.0, 70.5, 71.0, 71.5, 72.0, 72.5, 73.0], hf())
        assert not any(GAIN in fired(a) for a in results)
        assert [WEEK in fired(a) for a in results] == [False] * 6 + [True]
        reason = next(r for r in results[-1].reasons if r.rule_id == WEEK)
        assert reason.inputs["reference"] == "lowest weight of 7 days"
        assert reason.inputs["gain_kg"] == 2.5

    def test_a_single_high_weight_is_not_sustained(self) -> None:
        """One weight 2.6 kg above the week's lowest followed by a lower one: no week page."""
        results = daily([70.0, 70.4, 70.8, 72.6, 71.2], hf())
        assert not any(WEEK in fired(a) for a in results)

    def test_discharge_weight_is_the_baseline(self) -> None:
        """With a documented discharge (dry) weight of 68 kg, two home weights of 70.5 and
        70.6 kg are 2.5 kg above it: the week rule pages against the discharge weight."""
        results = daily([70.5, 70.6], hf(weight_kg=68.0))
        reason = next(r for r in results[-1].reasons if r.rule_id == WEEK)
        assert reason.inputs["reference"] == "discharge weight"
        assert reason.inputs["reference_kg"] == 68.0

    def test_without_heart_failure_nothing_fires(self) -> None:
        """The weight rules are for heart-failure citizens only."""
        ctx = run([discharge(diagnoses=["J44.1"])])[1]
        assert not any(fired(a) for a in daily([70.0, 72.5, 73.0], ctx))


class TestLoss:
    def test_loss_is_noted_not_paged(self) -> None:
        """-2.0 kg in 3 days is a low-severity reason (shown, not paged), once."""
        results = daily([72.0, 71.0, 70.0, 69.8], hf())
        assert [LOSS in fired(a) for a in results] == [False, False, True, False]
        assert not any(a.escalate for a in results)
        assert results[2].severity == "low"

    def test_smaller_loss_is_not_noted(self) -> None:
        """-1.9 kg does not fire the loss rule."""
        assert LOSS not in fired(daily([72.0, 71.0, 70.1], hf())[-1])
