"""The delivery worker: due ``deliveries`` rows in, signed webhook POSTs out, every attempt
recorded, undeliverable pushes failed over to the next rung of the case's chain.

How it stays correct with several workers and crashes:

* **Claim with a lease.** ``run_once`` takes due pending rows with ``FOR UPDATE SKIP LOCKED``
  and, in the same short transaction, moves their ``next_attempt_at`` to ``now + lease``. The
  row lock lasts only for the claim; the lease keeps other workers off the row while the HTTP
  request runs without holding a database connection. A worker that dies mid-send leaves a
  lease that expires, and another worker sends the attempt again with the same
  ``Idempotency-Key`` (at-least-once on the wire, exactly-once for a receiver that dedups).
* **Fenced result.** The claim's ``(attempts, next_attempt_at)`` pair is the fencing token: a
  result is applied to ``deliveries`` only if the row still carries it and is still pending.
  A worker whose lease ran out (possible only if the database stalled longer than
  ``lease - timeout``) records its attempt but changes nothing else.
* **No head-of-line blocking.** ``run_once`` starts one task per claimed delivery and returns;
  at most ``max_in_flight`` run at once and a claim never takes more rows than there are free
  slots, so a lease never ticks away while a row waits for a slot. A receiver that hangs holds
  one slot for at most the sender's timeout; the next ``run_once`` claims other citizens'
  pushes meanwhile.
* **Fail-over in the same transaction** as marking the delivery ``undeliverable``: the case
  moves one rung up and its new page (and delivery) is queued atomically with the verdict. It
  is skipped when the delivery's page is no longer the case's latest (a later page already
  superseded it and has its own delivery and deadline), so one case never climbs two rungs
  for one failure.
* **Cancelled, not sent**, when the case was acknowledged or resolved: at claim time, and also
  when the acknowledgement arrived while a failing attempt was in flight.

The SQL is in ``store.deliveries`` (claim, attempt, fenced result) and ``store.cases`` (the case
lock, the page number); this module keeps the orchestration.

Health data: the payload is never logged; log lines carry delivery id, case id, team, status
and attempt number only. The URL is not logged either (it may contain a receiver's token).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from dispatcher.clock import utcnow
from dispatcher.contract.vocab import CLOSED_CASE_STATES, DeliveryState
from dispatcher.notify.backoff import (
    AttemptOutcome,
    BackoffPolicy,
    Decision,
    decide,
    parse_retry_after,
)
from dispatcher.notify.signing import sign_headers
from dispatcher.notify.webhook import Sender, SendResult
from dispatcher.routing.roster import Roster
from dispatcher.store import cases as case_store
from dispatcher.store import db
from dispatcher.store import deliveries as store
from dispatcher.store.deliveries import Claim
from dispatcher.store.retry import TRANSIENT_ERRORS

log = structlog.get_logger(__name__)

LEASE_MARGIN_S = 30.0
RECORD_TRIES = 5

FailOver = Callable[[db.Connection, UUID, datetime], Awaitable[object]]
ObserveAttempt = Callable[[str, str, int | None], None]
SecretLookup = Callable[[str], str | None]


def secret_for(roster: Roster | None, team_id: str) -> str | None:
    """The team's webhook secret from the roster, or ``None`` (unknown team, no webhook)."""
    if roster is None:
        return None
    try:
        webhook = roster.team(team_id).channels.webhook
    except KeyError:
        return None
    return webhook.secret if webhook is not None else None


def roster_secrets(get_roster: Callable[[], Roster | None]) -> SecretLookup:
    """A ``secrets`` lookup that reads the current roster on every call (so reloads apply)."""
    return lambda team_id: secret_for(get_roster(), team_id)


class DeliveryWorker:
    """Sends due webhook deliveries. Drive it with ``run_once`` from a timer.

    ``secrets(team_id)`` returns the team's HMAC secret (``None``: the push is undeliverable).
    ``fail_over(conn, case_id, now)`` runs inside the transaction that marks a delivery
    undeliverable (``CaseManager.fail_over``). ``after_fail_over()`` runs after that commit
    (e.g. the outbox relay, so the fallback team's Kafka page goes out without waiting for the
    sweep). ``observe_attempt(team_id, outcome, status_code)`` is called once per attempt.
    """

    def __init__(
        self,
        pool: db.Pool,
        secrets: SecretLookup,
        sender: Sender,
        fail_over: FailOver,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_in_flight: int = 16,
        batch: int = 50,
        policy: BackoffPolicy | None = None,
        rng: random.Random | None = None,
        lease_s: float | None = None,
        observe_attempt: ObserveAttempt | None = None,
        after_fail_over: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if max_in_flight < 1 or batch < 1:
            raise ValueError("max_in_flight and batch must be at least 1")
        lease = sender.timeout_s + LEASE_MARGIN_S if lease_s is None else lease_s
        if lease <= sender.timeout_s:
            raise ValueError("lease_s must exceed the sender's timeout, or two workers may send")
        self._pool = pool
        self._secrets = secrets
        self._sender = sender
        self._fail_over = fail_over
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._batch = batch
        self._policy = policy or BackoffPolicy()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._lease = timedelta(seconds=lease)
        self._observe = observe_attempt
        self._after_fail_over = after_fail_over
        self._slots = asyncio.Semaphore(max_in_flight)
        self._claim_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Deliveries claimed by this worker whose attempt has not been recorded yet."""
        return len(self._tasks)

    async def run_once(self) -> int:
        """Claim due deliveries, start sending them; return how many were claimed (sent or
        cancelled).

        Returns without waiting for the sends (see ``drain``): cancelled deliveries are done
        when this returns, sent ones finish in the background. Database errors propagate
        (nothing was claimed, or the claim rolled back); the caller's timer just runs again.
        """
        async with self._claim_lock:
            free = self._max_in_flight - len(self._tasks)
            if free <= 0:
                return 0
            now = self._clock()
            claims = await store.claim_due(
                self._pool, now, min(self._batch, free), now + self._lease, CLOSED_CASE_STATES
            )
            for claim in claims:
                if claim.cancelled:
                    log.info(
                        "webhook_delivery_cancelled",
                        delivery_id=str(claim.delivery_id),
                        case_id=str(claim.case_id),
                        team=claim.team_id,
                        attempt=claim.attempts,
                    )
                    continue
                task = asyncio.create_task(self._deliver(claim))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return len(claims)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait for the in-flight sends; ``False`` when some were still running at the timeout."""
        if not self._tasks:
            return True
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not pending

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Wait for in-flight sends, then cancel the rest (their leases expire and another
        worker sends them again under the same idempotency key)."""
        if not await self.drain(timeout_s):
            tasks = set(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, claim: Claim) -> None:
        async with self._slots:
            try:
                started_at = self._clock()
                secret = self._secrets(claim.team_id)
                if secret is None:
                    result = SendResult(None, "no webhook secret for the team", 0)
                    decision = Decision("gave_up", None, "no webhook secret for the team")
                else:
                    headers = sign_headers(
                        secret,
                        claim.payload,
                        claim.idempotency_key,
                        claim.attempt,
                        int(started_at.timestamp()),
                    )
                    result = await self._sender.send(claim.url, claim.payload, headers)
                    now = self._clock()
                    decision = decide(
                        result.status,
                        claim.attempt,
                        now=now,
                        deadline=claim.deadline_at,
                        retry_after_s=parse_retry_after(result.retry_after, now),
                        policy=self._policy,
                        rng=self._rng,
                    )
                await self._record(claim, started_at, result, decision)
            except Exception:
                # Never let one delivery take the worker down; the lease expires and the
                # attempt is made again (same idempotency key).
                log.exception(
                    "webhook_delivery_crashed",
                    delivery_id=str(claim.delivery_id),
                    case_id=str(claim.case_id),
                    team=claim.team_id,
                    attempt=claim.attempt,
                )

    async def _record(
        self, claim: Claim, started_at: datetime, result: SendResult, decision: Decision
    ) -> None:
        delay = 0.2
        for tries in range(1, RECORD_TRIES + 1):
            try:
                outcome, failed_over = await self._record_once(claim, started_at, result, decision)
                break
            except TRANSIENT_ERRORS as exc:
                if tries == RECORD_TRIES:
                    raise
                log.warning(
                    "webhook_record_retrying",
                    delivery_id=str(claim.delivery_id),
                    error=type(exc).__name__,
                )
                await asyncio.sleep(delay)
                delay *= 2
        self._observe_attempt(claim.team_id, outcome, result.status)
        if failed_over and self._after_fail_over is not None:
            try:
                await self._after_fail_over()
            except Exception:
                log.exception("webhook_after_fail_over_failed", case_id=str(claim.case_id))

    async def _record_once(
        self, claim: Claim, started_at: datetime, result: SendResult, decision: Decision
    ) -> tuple[str, bool]:
        """Store the attempt and its consequence in one transaction; (outcome, failed over)."""
        now = self._clock()
        fields: dict[str, Any] = {
            "delivery_id": str(claim.delivery_id),
            "case_id": str(claim.case_id),
            "team": claim.team_id,
            "attempt": claim.attempt,
            "status": result.status,
            "error": result.error,
            "duration_ms": result.duration_ms,
        }
        async with db.transaction(self._pool) as conn:
            # Case first, then delivery: the same lock order as the case manager's paths.
            case_state = await case_store.case_state_for_update(conn, claim.case_id)
            renewal = await store.is_renewal_page(conn, claim.case_id, claim.page_seq)
            outcome, new_state, next_at, error = settle(decision, case_state, wanted=renewal)
            finished = None if new_state == DeliveryState.PENDING else now
            await store.record_attempt(
                conn,
                claim.delivery_id,
                claim.attempt,
                started_at,
                result.duration_ms,
                result.status,
                result.error,
                outcome,
            )
            applied = await store.apply_result(
                conn, claim, new_state, next_at, finished, _clip(error)
            )
            failed_over = superseded = False
            if applied and new_state == DeliveryState.UNDELIVERABLE:
                latest = await case_store.next_page_seq(conn, claim.case_id) - 1
                superseded = claim.page_seq < latest
                if not superseded:
                    await self._fail_over(conn, claim.case_id, now)
                    failed_over = True
        # Logged after the commit, so a line never reports what a rollback undid.
        if not applied:
            log.warning("webhook_lease_lost", outcome=outcome, **fields)
        else:
            _log_outcome(new_state, outcome, decision, fields)
            if superseded:
                log.info("webhook_superseded_no_fail_over", **fields)
        return outcome, failed_over

    def _observe_attempt(self, team_id: str, outcome: str, status: int | None) -> None:
        if self._observe is None:
            return
        try:
            self._observe(team_id, outcome, status)
        except Exception:
            log.exception("webhook_observe_failed", team=team_id)


def settle(
    decision: Decision, case_state: str | None, *, wanted: bool = False
) -> tuple[AttemptOutcome, DeliveryState, datetime | None, str | None]:
    """(attempt outcome, new delivery state, next attempt, last error) for a finished attempt.

    A failed attempt for a case that was acknowledged or resolved meanwhile ends the delivery
    as ``cancelled``: nobody needs the push any more, and failing over would page a second
    team for a citizen already being looked after. A successful one stays ``delivered``
    (that is what happened on the wire).

    ``wanted``: the page must reach its team whatever the case's state (the resolve-or-renew
    page of a stale acknowledged case, docs/cases.md).
    """
    closed = not wanted and (case_state is None or case_state in CLOSED_CASE_STATES)
    if decision.outcome == "delivered":
        return "delivered", DeliveryState.DELIVERED, None, None
    if closed:
        why = f"cancelled: case {case_state or 'missing'}; last attempt: {decision.reason}"
        return "gave_up", DeliveryState.CANCELLED, None, why
    if decision.outcome == "retry":
        return "retry", DeliveryState.PENDING, decision.next_attempt_at, decision.reason
    return "gave_up", DeliveryState.UNDELIVERABLE, None, decision.reason


def _clip(text: str | None, limit: int = 500) -> str | None:
    return None if text is None else text[:limit]


def _log_outcome(
    new_state: DeliveryState, outcome: str, decision: Decision, fields: dict[str, Any]
) -> None:
    if new_state == DeliveryState.DELIVERED:
        log.info("webhook_delivered", **fields)
    elif new_state == DeliveryState.PENDING:
        assert decision.next_attempt_at is not None
        log.info(
            "webhook_attempt_failed_retrying",
            next_attempt_at=decision.next_attempt_at.isoformat(),
            **fields,
        )
    elif new_state == DeliveryState.CANCELLED:
        log.info("webhook_delivery_cancelled", outcome=outcome, **fields)
    else:
        log.warning("webhook_undeliverable_failing_over", reason=decision.reason, **fields)
