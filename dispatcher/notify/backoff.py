"""Retry policy for webhook pushes, pure: no clock, no I/O, randomness injected.

* **Classification** (as PagerDuty's Events API and Alertmanager's webhook receiver expect of
  a sender): 2xx is delivered; 408, 425, 429, 5xx, timeouts and connection errors are worth
  retrying; any other status (other 4xx, and 3xx because a webhook URL that redirects is
  misconfigured and following it would send health data to an address nobody configured) is
  permanent: retrying cannot help, so the push is undeliverable at once and the case fails over
  without waiting for the deadline.
* **Backoff** is exponential with *full jitter* (``uniform(0, min(cap, base * 2**(n-1)))``),
  which spreads retries of many deliveries to one recovering receiver instead of hitting it in
  synchronised waves.
* **Retry-After** (seconds or an HTTP-date) is honoured: the next attempt is never earlier than
  the receiver asked. It is bounded by the delivery deadline: when the receiver asks us to wait
  past it, we give up now, because the fallback rung must be paged while the citizen still
  needs help, not after.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Literal

RETRYABLE_4XX = frozenset({408, 425, 429})
MAX_EXPONENT = 62  # 2**62 * base is far past any cap; keeps the float finite

AttemptOutcome = Literal["delivered", "retry", "gave_up"]


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT = "permanent"


def classify(status: int | None) -> Verdict:
    """What a response means; ``None`` is no response at all (timeout, connection error)."""
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in RETRYABLE_4XX or 500 <= status < 600:
        return Verdict.RETRY
    return Verdict.PERMANENT


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with full jitter: attempt ``n`` (from 1) waits in ``[0, ceiling(n)]``."""

    base_s: float = 1.0
    cap_s: float = 30.0

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s < self.base_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")

    def ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt ``attempt`` (1-based)."""
        exponent = min(max(attempt, 1) - 1, MAX_EXPONENT)
        return min(self.cap_s, self.base_s * 2.0**exponent)

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling(attempt))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when absent or unreadable.

    Both RFC 9110 forms: ``delay-seconds`` (digits only) and an HTTP-date (a date in the past
    means "now", i.e. 0). An unreadable value is ignored rather than trusted.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class Decision:
    """What to do after one attempt: stop (delivered/gave_up) or retry at ``next_attempt_at``."""

    outcome: AttemptOutcome
    next_attempt_at: datetime | None
    reason: str


def decide(
    status: int | None,
    attempt: int,
    *,
    now: datetime,
    deadline: datetime,
    retry_after_s: float | None,
    policy: BackoffPolicy,
    rng: random.Random,
) -> Decision:
    """The next step after attempt number ``attempt`` (1-based) ended with ``status``.

    A backoff delay that would overshoot the deadline is clamped to it (one last attempt at
    the deadline); a ``Retry-After`` that overshoots it gives up at once (we may not try
    earlier than asked, and later is too late).
    """
    verdict = classify(status)
    if verdict is Verdict.DELIVERED:
        return Decision("delivered", None, f"HTTP {status}")
    if verdict is Verdict.PERMANENT:
        return Decision("gave_up", None, f"HTTP {status} is permanent")
    failure = "no response" if status is None else f"HTTP {status}"
    if now >= deadline:
        return Decision("gave_up", None, f"{failure}; delivery deadline passed")
    delay = policy.delay(attempt, rng)
    if retry_after_s is not None:
        if now + timedelta(seconds=retry_after_s) > deadline:
            return Decision(
                "gave_up", None, f"{failure}; Retry-After {retry_after_s:g}s passes the deadline"
            )
        delay = max(delay, retry_after_s)
    next_at = min(now + timedelta(seconds=delay), deadline)
    return Decision("retry", next_at, failure)
