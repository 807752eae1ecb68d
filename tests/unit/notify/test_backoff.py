"""Webhook retry policy: jitter bounds, cap, Retry-After in both forms, classification, decide."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher.contract.vocab import CaseState
from dispatcher.notify.backoff import (
    BackoffPolicy,
    Decision,
    Verdict,
    classify,
    decide,
    parse_retry_after,
)
from dispatcher.notify.delivery import settle

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(minutes=2)
POLICY = BackoffPolicy(base_s=1.0, cap_s=30.0)


class TestJitter:
    def test_delays_stay_within_zero_and_the_exponential_ceiling(self) -> None:
        """Full jitter draws each delay from [0, min(cap, base * 2**(n-1))]."""
        rng = random.Random(7)
        for attempt in range(1, 12):
            ceiling = min(30.0, 2.0 ** (attempt - 1))
            assert POLICY.ceiling(attempt) == ceiling
            delays = [POLICY.delay(attempt, rng) for _ in range(300)]
            assert all(0.0 <= d <= ceiling for d in delays)
            # Jitter really spreads: the draws use most of the interval, not one point.
            assert max(delays) - min(delays) > ceiling * 0.8

    def test_cap_holds_for_huge_attempt_numbers(self) -> None:
        """A delivery retried thousands of times never waits longer than the cap (no overflow)."""
        rng = random.Random(1)
        assert POLICY.ceiling(10_000) == 30.0
        assert all(POLICY.delay(10_000, rng) <= 30.0 for _ in range(100))

    def test_seeded_rng_makes_delays_reproducible(self) -> None:
        """An injected seeded RNG gives the same schedule twice (tests can pin it)."""
        a = [POLICY.delay(n, random.Random(42)) for n in range(1, 6)]
        b = [POLICY.delay(n, random.Random(42)) for n in range(1, 6)]
        assert a == b

    def test_invalid_policy_is_refused(self) -> None:
        """A cap below the base would make the ceiling meaningless."""
        with pytest.raises(ValueError, match="base_s"):
            BackoffPolicy(base_s=5.0, cap_s=1.0)


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("0", 0.0),
            ("7", 7.0),
            (" 120 ", 120.0),
            ("Sat, 21 Nov 2026 12:00:30 GMT", 30.0),
            ("Sat, 21 Nov 2026 11:59:00 GMT", 0.0),  # in the past: retry now
            ("Sat, 21 Nov 2026 12:01:00 -0000", 60.0),
            (None, None),
            ("", None),
            ("-5", None),
            ("1.5", None),
            ("soon", None),
        ],
    )
    def test_parses_seconds_and_http_dates(self, value: str | None, expected: float | None) -> None:
        """Both RFC 9110 forms are read; anything else is ignored, not trusted."""
        assert parse_retry_after(value, NOW) == expected


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "verdict"),
        [
            (200, Verdict.DELIVERED),
            (202, Verdict.DELIVERED),
            (204, Verdict.DELIVERED),
            (None, Verdict.RETRY),
            (408, Verdict.RETRY),
            (425, Verdict.RETRY),
            (429, Verdict.RETRY),
            (500, Verdict.RETRY),
            (502, Verdict.RETRY),
            (503, Verdict.RETRY),
            (504, Verdict.RETRY),
            (301, Verdict.PERMANENT),
            (400, Verdict.PERMANENT),
            (401, Verdict.PERMANENT),
            (403, Verdict.PERMANENT),
            (404, Verdict.PERMANENT),
            (410, Verdict.PERMANENT),
            (422, Verdict.PERMANENT),
        ],
    )
    def test_classification_table(self, status: int | None, verdict: Verdict) -> None:
        """2xx delivered; 408/425/429/5xx/no response retryable; other statuses permanent."""
        assert classify(status) is verdict


def _decide(
    status: int | None, now: datetime = NOW, retry_after: float | None = None, attempt: int = 1
) -> Decision:
    return decide(
        status,
        attempt,
        now=now,
        deadline=DEADLINE,
        retry_after_s=retry_after,
        policy=POLICY,
        rng=random.Random(3),
    )


class TestDecide:
    def test_success_is_delivered(self) -> None:
        """A 2xx ends the delivery."""
        d = _decide(200)
        assert (d.outcome, d.next_attempt_at) == ("delivered", None)

    def test_permanent_failure_gives_up_at_once(self) -> None:
        """A 404 gives up even with lots of time left before the deadline."""
        d = _decide(404)
        assert d.outcome == "gave_up"
        assert "permanent" in d.reason

    def test_retryable_failure_schedules_within_backoff(self) -> None:
        """A 500 retries no later than the backoff ceiling allows."""
        d = _decide(500, attempt=3)
        assert d.outcome == "retry"
        assert d.next_attempt_at is not None
        assert NOW <= d.next_attempt_at <= NOW + timedelta(seconds=POLICY.ceiling(3))

    def test_retry_after_is_honoured(self) -> None:
        """The next attempt is never earlier than the receiver's Retry-After."""
        d = _decide(429, retry_after=20.0)
        assert d.outcome == "retry"
        assert d.next_attempt_at is not None
        assert d.next_attempt_at >= NOW + timedelta(seconds=20)

    def test_retry_after_past_the_deadline_gives_up(self) -> None:
        """Waiting as asked would miss the deadline, so the fallback is paged now."""
        d = _decide(503, retry_after=600.0)
        assert d.outcome == "gave_up"
        assert "Retry-After" in d.reason

    def test_backoff_is_clamped_to_the_deadline(self) -> None:
        """Close to the deadline the last retry is scheduled at the deadline, not after it."""
        late = DEADLINE - timedelta(seconds=0.5)
        d = decide(
            500,
            10,
            now=late,
            deadline=DEADLINE,
            retry_after_s=None,
            policy=POLICY,
            rng=random.Random(0),
        )
        assert d.outcome == "retry"
        assert d.next_attempt_at is not None
        assert late <= d.next_attempt_at <= DEADLINE

    def test_failure_after_the_deadline_gives_up(self) -> None:
        """Once the deadline has passed, a retryable failure is final."""
        d = _decide(None, now=DEADLINE)
        assert d.outcome == "gave_up"
        assert "deadline" in d.reason


class TestSettle:
    def test_failure_on_an_acknowledged_case_cancels_instead_of_failing_over(self) -> None:
        """An acknowledged case needs no fallback page: the delivery is cancelled."""
        failed = Decision("gave_up", None, "HTTP 404 is permanent")
        assert settle(failed, CaseState.ACKNOWLEDGED.value)[:2] == ("gave_up", "cancelled")
        retry = Decision("retry", NOW, "HTTP 500")
        assert settle(retry, CaseState.RESOLVED.value)[:2] == ("gave_up", "cancelled")

    def test_success_stays_delivered_even_if_the_case_closed(self) -> None:
        """What happened on the wire is recorded as it happened."""
        ok = Decision("delivered", None, "HTTP 200")
        assert settle(ok, CaseState.ACKNOWLEDGED.value)[:2] == ("delivered", "delivered")

    def test_open_case_failure_is_undeliverable_or_pending(self) -> None:
        """On an open case, give-up means undeliverable and retry keeps it pending."""
        assert settle(Decision("gave_up", None, "x"), "notified")[1] == "undeliverable"
        assert settle(Decision("retry", NOW, "x"), "re_escalated")[1:3] == ("pending", NOW)
