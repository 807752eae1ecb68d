"""Pages: the notification a case sends to one rung of its chain, and its stable id.

A page is its own concept beside the case lifecycle: the lifecycle decides *that* a rung is
paged, the store turns a page into an outbox row and a webhook delivery. Both sides meet here.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
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


@dataclass(frozen=True)
class Page:
    """A notification to one rung of the chain. ``page_seq`` is per case, from 1."""

    case_id: UUID
    page_seq: int
    kind: PageKind
    target: Target
    severity: Severity
    ack_deadline: datetime
    reason: str


def page_id_for(case_id: UUID, page_seq: int) -> UUID:
    """Stable page id, also the webhook idempotency key: the same page is the same key."""
    return uuid5(CASE_NAMESPACE, f"page:{case_id}:{page_seq}")
