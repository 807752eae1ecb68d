"""Plausibility: physiologically impossible values are a fault, never a measurement.

An SpO2 of 120 % or a pulse of 400 /min cannot be scored: scoring it would either raise a false
alarm or, worse, look normal (SpO2 120 would score 0 on NEWS2 scale 1). Such a value is
quarantined with a reason naming the field and the plausible range from the rule set
(``kind: plausibility``). In a nurse observation the other, valid vitals are still scored and
the quarantined field is reported as missing.
"""

from __future__ import annotations

from dispatcher.contract.events import FieldError
from dispatcher.rules.ruleset import PlausibilityRule


def check(field: str, value: float, rule: PlausibilityRule) -> FieldError | None:
    """A ``FieldError`` naming ``field`` when ``value`` is outside its plausible range."""
    limits = rule.limits.for_field(field)
    if limits is None or limits.contains(value):
        return None
    return FieldError(
        field=field,
        reason=(
            f"implausible value {value:g} (possible range {limits.min:g}-{limits.max:g}): "
            f"sensor or entry fault, not scored [{rule.id} v{rule.version}]"
        ),
    )
