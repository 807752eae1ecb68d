"""What a rule returns: a finding (it fired, with a severity and an explained reason) or notes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dispatcher.contract.events import Reason
from dispatcher.contract.vocab import Severity
from dispatcher.rules.ruleset import _Rule


@dataclass(frozen=True)
class Finding:
    """A rule fired: the severity it asks for and the reason (rule id, version, inputs)."""

    severity: Severity
    reason: Reason


@dataclass
class Outcome:
    """The findings and free-text notes of the rules run for one event."""

    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Ids of the rules that were evaluated for the event (fired or not): the assessment names
    # the ones that did not fire, so it always says why it did or did not escalate.
    evaluated: list[str] = field(default_factory=list)

    def fire(self, rule: _Rule, severity: Severity, summary: str, inputs: dict[str, Any]) -> None:
        self.findings.append(
            Finding(
                severity,
                Reason(rule_id=rule.id, rule_version=rule.version, summary=summary, inputs=inputs),
            )
        )

    def extend(self, other: Outcome) -> None:
        self.findings.extend(other.findings)
        self.notes.extend(other.notes)
        self.evaluated.extend(other.evaluated)
