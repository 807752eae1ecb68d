"""Heart-failure weight rules (issue 12 item 7): gain over 3 days and over a week, loss,
artefact rejection and the baseline weight. Pure: reads ``CitizenContext.weights`` (the bounded
history, newest last, already including the current weight) and the discharge weight.

* **Artefacts**: a bathroom scale gives a wild value when the citizen steps off half-way or
  leans on something. A weight that differs from the previous accepted weight by more than
  ``artefact_step_kg`` is *held*: it neither pages nor becomes a reference until the next
  weight arrives. If the next weight is closer to the weight before the step than to the step,
  the step was an artefact and is dropped for good; otherwise it is confirmed and counts from
  then on (the confirming weight may then page). So "weight up 19 kg" from one step-off
  reading never pages, and a step-off low reading never becomes a false baseline.
* **Gain** (``weight_gain``): the lowest of the newest ``sustained_readings`` accepted weights
  minus the reference, the lowest accepted weight earlier in ``within_days`` (``window``) or
  the discharge weight when documented, else that rolling lowest (``baseline``). It fires when
  the gain reaches ``min_gain_kg`` and did not with the history as it stood one weight
  earlier (once per episode).
* **Loss** (``weight_loss``): the highest accepted weight earlier in ``within_days`` minus the
  newest; noted with its reason at severity ``low`` (never paged), once per episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from dispatcher.rules.findings import Outcome
from dispatcher.rules.ruleset import WeightGainRule, WeightLossRule

if TYPE_CHECKING:  # pragma: no cover
    from dispatcher.rules.context import CitizenContext, Sample

# A step must be confirmed only when it comes this soon after the previous accepted weight;
# after a longer pause a different weight is plausible (a week in hospital, a new scale).
STEP_WINDOW = timedelta(hours=48)


@dataclass(frozen=True)
class Cleaned:
    """Accepted weights (oldest first), the newest weight if it is held, and rejected ones."""

    accepted: tuple[Sample, ...]
    held: Sample | None
    rejected: tuple[Sample, ...]


def clean(weights: tuple[Sample, ...], step_kg: float | None) -> Cleaned:
    """Drop weights that a large step made suspect and the next weight contradicted."""
    if step_kg is None:
        return Cleaned(weights, None, ())
    accepted: list[Sample] = []
    rejected: list[Sample] = []
    held: Sample | None = None
    for i, w in enumerate(weights):
        prev = accepted[-1] if accepted else None
        is_step = (
            prev is not None
            and abs(w.value - prev.value) > step_kg
            and w.at - prev.at <= STEP_WINDOW
        )
        if not is_step:
            accepted.append(w)
            continue
        assert prev is not None
        nxt = weights[i + 1] if i + 1 < len(weights) else None
        if nxt is None:
            held = w
        elif abs(nxt.value - prev.value) < abs(nxt.value - w.value):
            rejected.append(w)
        else:
            accepted.append(w)
    return Cleaned(tuple(accepted), held, tuple(rejected))


def _applies(rule: WeightGainRule | WeightLossRule, ctx: CitizenContext) -> bool:
    return not rule.conditions or bool(set(rule.conditions) & set(ctx.conditions))


def _gain(
    rule: WeightGainRule, accepted: tuple[Sample, ...], discharge_kg: float | None
) -> tuple[float, float, str, tuple[Sample, ...]] | None:
    """(gain, reference kg, reference kind, the newest weights used) or None."""
    n = rule.sustained_readings
    if len(accepted) < n:
        return None
    newest = accepted[-n:]
    within = timedelta(days=rule.within_days)
    earlier = [w for w in accepted[:-n] if newest[-1].at - w.at <= within]
    if rule.reference == "baseline" and discharge_kg is not None:
        ref, kind = discharge_kg, "discharge weight"
    elif earlier:
        ref, kind = min(w.value for w in earlier), f"lowest weight of {rule.within_days:g} days"
    else:
        return None
    return round(min(w.value for w in newest) - ref, 3), ref, kind, newest


def gain(rule: WeightGainRule, ctx: CitizenContext) -> Outcome:
    """Weight gain (once per episode), after artefact rejection."""
    out = Outcome()
    if not _applies(rule, ctx) or not ctx.weights:
        return out
    now = clean(ctx.weights, rule.artefact_step_kg)
    before = clean(ctx.weights[:-1], rule.artefact_step_kg)
    current = ctx.weights[-1]
    if now.held is not None:
        prev = now.accepted[-1] if now.accepted else None
        out.notes.append(
            f"{rule.id}: weight {current.value:g} kg is a step of "
            f"{current.value - (prev.value if prev else current.value):+g} kg from "
            f"{prev.value if prev else 0:g} kg (more than {rule.artefact_step_kg:g} kg): held "
            "until the next weight confirms it (a step-off or scale artefact is likely); "
            "re-weigh to confirm."
        )
        return out
    if before.held is not None and before.held in now.rejected:
        out.notes.append(
            f"{rule.id}: the step to {now.rejected[-1].value:g} kg was contradicted by this "
            f"weight ({current.value:g} kg): rejected as an artefact, never paged."
        )
    result = _gain(rule, now.accepted, ctx.discharge_weight_kg)
    if result is None or result[0] < rule.min_gain_kg:
        return out
    amount, ref, ref_kind, newest = result
    earlier = _gain(rule, before.accepted, ctx.discharge_weight_kg)
    if earlier is not None and earlier[0] >= rule.min_gain_kg:
        out.notes.append(
            f"{rule.id}: weight still {amount:g} kg above the {ref_kind} ({ref:g} kg); "
            "already escalated."
        )
        return out
    inputs: dict[str, Any] = {
        "gain_kg": amount,
        "min_gain_kg": rule.min_gain_kg,
        "within_days": rule.within_days,
        "reference": ref_kind,
        "reference_kg": ref,
        "weights": [[w.at.isoformat(), w.value] for w in newest],
        "sustained_readings": rule.sustained_readings,
        "rejected_artefacts": [[w.at.isoformat(), w.value] for w in now.rejected],
        "conditions": list(ctx.conditions),
        "discharge_weight_kg": ctx.discharge_weight_kg,
        "baseline_weight_kg": ctx.baseline_weight_kg,
    }
    over = f"over {rule.sustained_readings} weights " if rule.sustained_readings > 1 else ""
    out.fire(
        rule,
        rule.severity,
        f"Weight up {amount:g} kg {over}above the {ref_kind} ({ref:g} -> "
        f"{min(w.value for w in newest):g} kg; threshold {rule.min_gain_kg:g} kg within "
        f"{rule.within_days:g} days): possible fluid retention.",
        inputs,
    )
    return out


def _loss(rule: WeightLossRule, accepted: tuple[Sample, ...]) -> tuple[float, Sample] | None:
    if len(accepted) < 2:
        return None
    newest = accepted[-1]
    within = timedelta(days=rule.within_days)
    earlier = [w for w in accepted[:-1] if newest.at - w.at <= within]
    if not earlier:
        return None
    top = max(earlier, key=lambda w: w.value)
    return round(top.value - newest.value, 3), top


def loss(rule: WeightLossRule, ctx: CitizenContext) -> Outcome:
    """Weight loss: noted at the rule's (low) severity, once per episode."""
    out = Outcome()
    if not _applies(rule, ctx) or not ctx.weights:
        return out
    now = clean(ctx.weights, rule.artefact_step_kg)
    if now.held is not None:
        return out  # the gain rule explains the held step
    result = _loss(rule, now.accepted)
    if result is None or result[0] < rule.min_loss_kg:
        return out
    before = _loss(rule, clean(ctx.weights[:-1], rule.artefact_step_kg).accepted)
    if before is not None and before[0] >= rule.min_loss_kg:
        return out
    amount, top = result
    newest = now.accepted[-1]
    out.fire(
        rule,
        rule.severity,
        f"Weight down {amount:g} kg ({top.value:g} -> {newest.value:g} kg) within "
        f"{rule.within_days:g} days: noted (over-diuresis, dehydration or poor intake?); "
        "review at the next visit.",
        {
            "loss_kg": amount,
            "min_loss_kg": rule.min_loss_kg,
            "within_days": rule.within_days,
            "from": [top.at.isoformat(), top.value],
            "to": [newest.at.isoformat(), newest.value],
        },
    )
    return out
