"""The one vocabulary: every severity, tier, risk band, case state and dead-letter category.

Each word is defined here once and imported everywhere else, SQL literals included (queries
take these values as parameters), so a new state or severity is a one-line change and a stray
spelling is caught by ``tests/unit/contract/test_vocab.py``. Nothing here does I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal, get_args

# --- clinical ------------------------------------------------------------------------------

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
# Order of urgency, low < medium < high < critical (rules and case grouping both compare by it).
SEVERITY_RANK: dict[str, int] = {s: i for i, s in enumerate(SEVERITIES)}

EscalatingSeverity = Literal["medium", "high", "critical"]

# NEWS2 aggregate risk bands (RCP 2017, chart 3); "low-medium" is a single red parameter.
RiskBand = Literal["low", "low-medium", "medium", "high"]
RISK_BANDS: tuple[RiskBand, ...] = get_args(RiskBand)


def max_severity(a: Severity, b: Severity) -> Severity:
    """The more urgent of two severities (``a`` on a tie)."""
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b


# --- routing -------------------------------------------------------------------------------

Tier = Literal["nurse", "doctor", "palliative"]
TIERS: tuple[Tier, ...] = get_args(Tier)

# --- cases ---------------------------------------------------------------------------------


class CaseState(StrEnum):
    """``open`` -> ``notified`` -> ``acknowledged`` -> ``resolved``; ``re_escalated`` when a
    deadline passed or a push could not be delivered and the case moved one rung up."""

    OPEN = "open"
    NOTIFIED = "notified"
    ACKNOWLEDGED = "acknowledged"
    RE_ESCALATED = "re_escalated"
    RESOLVED = "resolved"


AWAITING_ACK: frozenset[CaseState] = frozenset(
    {CaseState.OPEN, CaseState.NOTIFIED, CaseState.RE_ESCALATED}
)
# A page for a case in one of these states no longer needs to reach anybody.
CLOSED_CASE_STATES: tuple[CaseState, ...] = (CaseState.ACKNOWLEDGED, CaseState.RESOLVED)
UNRESOLVED_STATES: tuple[CaseState, ...] = tuple(s for s in CaseState if s != CaseState.RESOLVED)

Outcome = Literal["treated_at_home", "admitted", "false_alarm", "other"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

# What the audit log says became of an input event.
AuditOutcome = Literal["escalated", "assessed", "context_updated"]

# --- push delivery -------------------------------------------------------------------------


class DeliveryState(StrEnum):
    """A push: ``pending`` until it was ``delivered``, became ``undeliverable`` (the case fails
    over a rung) or was ``cancelled`` (the case was acknowledged or resolved meanwhile)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    CANCELLED = "cancelled"


# One delivery attempt's outcome (the attempt log).
AttemptOutcome = Literal["delivered", "retry", "gave_up"]
Channel = Literal["webhook"]

# --- access --------------------------------------------------------------------------------

Role = Literal["member", "admin"]

# --- dead letters --------------------------------------------------------------------------


class DeadLetterCategory(StrEnum):
    """Why an input could not be used; the ``category`` of every dead letter and metric label."""

    MALFORMED = "malformed"  # not a JSON object of our contract (bytes, encoding, size, shape)
    SCHEMA_VERSION = "schema_version"  # a version of the contract we do not speak
    VALIDATION = "validation"  # a field failed validation
    RULE_ERROR = "rule_error"  # the rules raised on a valid event (a bug: kept, not lost)
    STORE_ERROR = "store_error"  # PostgreSQL refused the event for a non-transient reason
    # The event_id was seen before with different content (another citizen, other values): not
    # a duplicate to skip silently, nor an event to decide under an id that is already taken.
    ID_REUSED = "id_reused"


# The field name a whole-message error is reported on (the JSON root), as in JSON Pointer "".
WHOLE_MESSAGE = "$"

# --- privacy -------------------------------------------------------------------------------

# A CPR number is DDMMYY-SSSS (the dash optional), DDMM a calendar day. One pattern for the whole
# code base: ids that match are refused at the border and log text that matches is redacted. Ten
# digits that cannot start with a day and month (offsets, unix times like 1717171717) are left.
CPR_PATTERN = re.compile(r"(?<!\d)(?:0[1-9]|[12]\d|3[01])(?:0[1-9]|1[0-2])\d{2}-?\d{4}(?!\d)")

# --- sources -------------------------------------------------------------------------------

# ``source`` of the events the dispatcher itself writes (the silent-sensor timer).
TIMER_SOURCE = "dispatcher.timer"
