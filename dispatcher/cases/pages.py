"""Pages: the notification a case sends to one rung of its chain, and its stable id.

A page is its own concept beside the case lifecycle: the lifecycle decides *that* a rung is
paged, the store turns a page into an outbox row and a webhook delivery. Both sides meet here.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid5

from dispatcher.contract.vocab import Severity
from dispatcher.routing.router import Target

# The uuid5 namespace of page ids. Its value is part of every page id ever sent (the webhook
# Idempotency-Key): changing it would make a re-sent page look new to the receiver.
CASE_NAMESPACE = UUID("0c4f7d2a-9b1e-4c3d-8a6f-2e5b7c9d1f30")

# ``update``: an acknowledged case re-notifies its assignee (a finding the acknowledgement did
# not cover); ``resolve_or_renew``: an acknowledgement left unresolved past
# ``lifecycle.AckPolicy.stale_after`` asks its team to resolve or renew the case (docs/cases.md).
PageKind = Literal[
    "new", "severity_raised", "re_escalated", "delivery_failed", "update", "resolve_or_renew"
]

# Nobody left unacknowledged: once the last rung of a chain (normally the on-call doctor) has
# been paged again this many times without an acknowledgement, every further page of the case
# says so ("not acknowledged after K pages over M minutes") and carries FALLBACK_INSTRUCTION.
# With the critical chain (the doctor only, 5 min) that is the page at minute 10; documented in
# docs/operations.md ("Nobody left unacknowledged").
FALLBACK_AFTER_REPEATS = 2
FALLBACK_INSTRUCTION = (
    "Nobody has acknowledged this case. Do not wait for the dispatcher: call the citizen now, "
    "and call 112 (the emergency line) if they do not answer or are unwell."
)


@dataclass(frozen=True)
class Unacknowledged:
    """What a page says when its last rung has not answered: ``pages`` pages of that rung went
    out before this one over ``minutes`` minutes, and what the reader must do instead."""

    pages: int
    minutes: int
    instruction: str = FALLBACK_INSTRUCTION

    @property
    def summary(self) -> str:
        return f"not acknowledged after {self.pages} pages over {self.minutes} minutes"

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "minutes": self.minutes,
            "summary": self.summary,
            "instruction": self.instruction,
        }


@dataclass(frozen=True)
class Page:
    """A notification to one rung of the chain. ``page_seq`` is per case, from 1.

    ``unacknowledged`` is set once the last rung has been re-paged ``FALLBACK_AFTER_REPEATS``
    times without an acknowledgement (the page then also names the fallback)."""

    case_id: UUID
    page_seq: int
    kind: PageKind
    target: Target
    severity: Severity
    ack_deadline: datetime
    reason: str
    unacknowledged: Unacknowledged | None = None


def page_id_for(case_id: UUID, page_seq: int) -> UUID:
    """Stable page id, also the webhook idempotency key: the same page is the same key."""
    return uuid5(CASE_NAMESPACE, f"page:{case_id}:{page_seq}")
