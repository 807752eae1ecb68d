"""Webhook push delivery against a real PostgreSQL and a real aiohttp receiver on loopback.

PostgreSQL is an embedded pgserver started for this module (or ``DISPATCHER_DATABASE_URL``);
either way the tables live in a fresh schema dropped at the end. Time is a fake clock that the
tests move to each delivery's ``next_attempt_at``, so backoffs cost no wall time; only the
sender's timeouts are real (and short).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import orjson
import pytest
from aiohttp import web

from dispatcher.cases.lifecycle import (
    SYSTEM,
    Case,
    CaseEvent,
    CaseState,
    acknowledge,
)
from dispatcher.cases.manager import CaseManager
from dispatcher.cases.pages import Page, page_id_for
from dispatcher.notify.backoff import BackoffPolicy
from dispatcher.notify.delivery import DeliveryWorker, roster_secrets
from dispatcher.notify.signing import (
    ATTEMPT_HEADER,
    IDEMPOTENCY_HEADER,
    SignatureError,
    verify,
)
from dispatcher.notify.webhook import WebhookSender
from dispatcher.routing.roster import Channels, Roster, Team, Tier, Webhook
from dispatcher.routing.router import Target
from dispatcher.store import cases as store
from dispatcher.store.db import Pool, Record, create_pool

TABLES = (
    "delivery_attempts, deliveries, case_events, case_escalations, cases, outbox, "
    "roster_staff, roster_teams, roster_meta"
)
SECRETS = {
    "nurse-a": "secret-nurse-a-0123456789",
    "nurse-b": "secret-nurse-b-0123456789",
    "doctor-on-call": "secret-doctor-0123456789",
}
CHAIN_TAIL = Target("doctor-on-call", "doctor", None, "doctor")
WAIT_S = 5.0


# --- database ------------------------------------------------------------------------------


@pytest.fixture
async def pool(schema_dsn: str) -> AsyncIterator[Pool]:
    """The module's schema on the session PostgreSQL, emptied for each test."""
    p = await create_pool(schema_dsn, min_size=1, max_size=8)
    await p.execute(f"TRUNCATE {TABLES} CASCADE")
    try:
        yield p
    finally:
        await p.close()


# --- fake clock and receiver ---------------------------------------------------------------


class FakeClock:
    """Wall-clock start, moved only by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance_to(self, when: datetime) -> None:
        self.now = max(self.now, when)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Received:
    hook: str
    headers: dict[str, str]
    body: bytes
    reply: str  # "200", "500", "429", ... or "hang"
    at: datetime  # the fake clock at arrival


Reply = Callable[[], web.Response] | str  # a response factory, or "hang"


def status(code: int, **headers: str) -> Reply:
    return lambda: web.Response(status=code, headers=headers)


@dataclass
class Receiver:
    """Answers per hook from a script (then 200), and records every request it gets."""

    clock: FakeClock
    base_url: str = ""
    scripts: dict[str, list[Reply]] = field(default_factory=dict)
    defaults: dict[str, Reply] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    hanging: set[str] = field(default_factory=set)  # idempotency keys held open right now
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, hook: str) -> str:
        return f"{self.base_url}/hook/{hook}"

    def of(self, hook: str) -> list[Received]:
        return [r for r in self.requests if r.hook == hook]

    async def handle(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        body = await request.read()
        script = self.scripts.get(hook, [])
        reply = script.pop(0) if script else self.defaults.get(hook, status(200))
        if isinstance(reply, str):
            key = request.headers[IDEMPOTENCY_HEADER]
            self.requests.append(Received(hook, dict(request.headers), body, "hang", self.clock()))
            self.hanging.add(key)
            try:
                await asyncio.wait_for(self.release.wait(), 30)
            finally:
                self.hanging.discard(key)
            return web.Response(status=200)
        resp = reply()
        self.requests.append(
            Received(hook, dict(request.headers), body, str(resp.status), self.clock())
        )
        return resp


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def receiver(clock: FakeClock) -> AsyncIterator[Receiver]:
    rec = Receiver(clock)
    app = web.Application()
    app.router.add_post("/hook/{hook}", rec.handle)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    rec.base_url = f"http://{host}:{port}"
    try:
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


# --- roster, cases, workers ----------------------------------------------------------------


def make_roster(rec: Receiver) -> Roster:
    def team(team_id: str, tier: Tier) -> Team:
        hook = Webhook(url=rec.url(team_id), secret=SECRETS[team_id])
        return Team(
            team_id=team_id,
            name=f"Team {team_id}",
            tier=tier,
            channels=Channels(kafka=False, webhook=hook),
        )

    return Roster(
        doctor_team="doctor-on-call",
        teams=[
            team("nurse-a", "nurse"),
            team("nurse-b", "nurse"),
            team("doctor-on-call", "doctor"),
        ],
    )


@pytest.fixture
async def roster(pool: Pool, receiver: Receiver) -> Roster:
    r = make_roster(receiver)
    async with pool.acquire() as conn, conn.transaction():
        await store.store_roster(conn, r)
    return r


async def open_case(
    pool: Pool,
    roster: Roster,
    clock: FakeClock,
    team_id: str = "nurse-a",
    delivery_deadline: timedelta = timedelta(seconds=60),
) -> Case:
    """A notified case on ``team_id`` (doctor as the next rung) with its first page queued."""
    now = clock()
    first = Target(team_id, "nurse", None, "copd")
    case = Case(
        case_id=uuid.uuid4(),
        citizen_id=f"cit-{uuid.uuid4().hex[:6]}",
        state=CaseState.NOTIFIED,
        severity="high",
        chain=(first, CHAIN_TAIL),
        level=0,
        ack_minutes=15,
        ack_deadline=now + timedelta(minutes=15),
        opened_at=now,
        updated_at=now,
        detail={"rules": ["news2_high"]},
    )
    page = Page(case.case_id, 1, "new", first, "high", case.ack_deadline, "new case: news2_high")
    async with pool.acquire() as conn, conn.transaction():
        await store.save_case(conn, case)
        await store.append_events(
            conn,
            case.case_id,
            [CaseEvent(SYSTEM, "paged", {"page_seq": 1, **first.as_dict()})],
            now,
        )
        await store.emit_page(conn, roster, case, page, None, now, delivery_deadline)
    return case


async def _noop_relay() -> None:
    return None


@dataclass
class Harness:
    pool: Pool
    clock: FakeClock
    roster: Roster
    manager: CaseManager
    observed: list[tuple[str, str, int | None]] = field(default_factory=list)
    after_fail_over_calls: int = 0
    senders: list[WebhookSender] = field(default_factory=list)

    def worker(self, timeout_s: float = 0.3, **kw: Any) -> DeliveryWorker:
        sender = WebhookSender(timeout_s=timeout_s)
        self.senders.append(sender)

        async def after() -> None:
            self.after_fail_over_calls += 1

        return DeliveryWorker(
            self.pool,
            roster_secrets(lambda: self.roster),
            sender,
            self.manager.fail_over,
            clock=self.clock,
            policy=BackoffPolicy(base_s=1.0, cap_s=8.0),
            rng=random.Random(11),
            observe_attempt=lambda *a: self.observed.append(a),
            after_fail_over=after,
            **kw,
        )


@pytest.fixture
async def harness(pool: Pool, clock: FakeClock, roster: Roster) -> AsyncIterator[Harness]:
    h = Harness(pool, clock, roster, CaseManager(pool, relay=_noop_relay, clock=clock))
    try:
        yield h
    finally:
        for s in h.senders:
            await s.aclose()


async def delivery_of(pool: Pool, case_id: uuid.UUID, page_seq: int = 1) -> Record:
    row = await pool.fetchrow(
        "SELECT * FROM deliveries WHERE case_id = $1 AND page_seq = $2", case_id, page_seq
    )
    assert row is not None, f"no delivery for page {page_seq}"
    return row


async def attempts_of(pool: Pool, delivery_id: uuid.UUID) -> list[Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
            delivery_id,
        )
    )


async def drive(
    worker: DeliveryWorker, h: Harness, delivery_id: uuid.UUID, max_ticks: int = 40
) -> str:
    """Tick the worker, moving the fake clock to each retry, until the delivery is final."""
    for _ in range(max_ticks):
        await worker.run_once()
        assert await worker.drain(WAIT_S)
        row = await h.pool.fetchrow(
            "SELECT state, next_attempt_at FROM deliveries WHERE delivery_id = $1", delivery_id
        )
        if row["state"] != "pending":
            return str(row["state"])
        h.clock.advance_to(row["next_attempt_at"])
    raise AssertionError(f"delivery still pending after {max_ticks} ticks")


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` every 10 ms (bounded), for events that happen on another task."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def assert_signed(r: Received, secret: str) -> None:
    try:
        verify(secret, r.headers, r.body, tolerance_s=60, now=r.at.timestamp())
    except SignatureError as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"bad signature on {r.hook}: {exc.reason}") from exc


# --- tests ---------------------------------------------------------------------------------


async def test_flaky_receiver_gets_the_push_exactly_once(
    harness: Harness, receiver: Receiver
) -> None:
    """500, timeout, 429+Retry-After, 503+HTTP-date Retry-After, then 200: one success, one key."""

    def retry_after_date() -> web.Response:
        # Rounded up to a whole second after +4 s, so the honoured wait is at least 4 s.
        when = (harness.clock() + timedelta(seconds=5)).replace(microsecond=0)
        return web.Response(status=503, headers={"Retry-After": format_datetime(when, True)})

    receiver.scripts["nurse-a"] = [
        status(500),
        "hang",
        status(429, **{"Retry-After": "7"}),
        retry_after_date,
        status(200),
    ]
    case = await open_case(harness.pool, harness.roster, harness.clock)
    delivery = await delivery_of(harness.pool, case.case_id)
    worker = harness.worker(timeout_s=0.3)

    assert await drive(worker, harness, delivery["delivery_id"]) == "delivered"
    for _ in range(3):  # later ticks send nothing more
        harness.clock.advance(60)
        assert await worker.run_once() == 0

    got = receiver.of("nurse-a")
    assert [r.reply for r in got] == ["500", "hang", "429", "503", "200"]
    key = str(page_id_for(case.case_id, 1))
    assert {r.headers[IDEMPOTENCY_HEADER] for r in got} == {key}
    assert [r.headers[ATTEMPT_HEADER] for r in got] == ["1", "2", "3", "4", "5"]
    assert {r.body for r in got} == {bytes(delivery["payload"])}
    assert orjson.loads(got[0].body)["page_id"] == key
    for r in got:
        assert_signed(r, SECRETS["nurse-a"])

    rows = await attempts_of(harness.pool, delivery["delivery_id"])
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in rows] == [
        (1, 500, "retry"),
        (2, None, "retry"),
        (3, 429, "retry"),
        (4, 503, "retry"),
        (5, 200, "delivered"),
    ]
    assert rows[1]["error"] == "timeout"
    assert rows[1]["duration_ms"] >= 250
    # Retry-After honoured in both forms (the backoff alone could have been shorter).
    assert rows[3]["started_at"] - rows[2]["started_at"] >= timedelta(seconds=7)
    assert rows[4]["started_at"] - rows[3]["started_at"] >= timedelta(seconds=4)

    final = await delivery_of(harness.pool, case.case_id)
    assert (final["state"], final["attempts"], final["last_error"]) == ("delivered", 5, None)
    assert final["finished_at"] == rows[4]["started_at"]
    assert harness.observed == [
        ("nurse-a", "retry", 500),
        ("nurse-a", "retry", None),
        ("nurse-a", "retry", 429),
        ("nurse-a", "retry", 503),
        ("nurse-a", "delivered", 200),
    ]
    case_now = await store.get_case(harness.pool, case.case_id)
    assert case_now is not None
    assert case_now.level == 0  # delivered: no fail-over


async def test_never_succeeding_receiver_fails_over_after_the_deadline(
    harness: Harness, receiver: Receiver
) -> None:
    """A receiver that always answers 500 makes the push undeliverable at its deadline, and the
    case moves to the doctor, whose webhook then receives the new page."""
    receiver.defaults["nurse-a"] = status(500)
    case = await open_case(
        harness.pool, harness.roster, harness.clock, delivery_deadline=timedelta(seconds=20)
    )
    delivery = await delivery_of(harness.pool, case.case_id)
    worker = harness.worker()

    assert await drive(worker, harness, delivery["delivery_id"]) == "undeliverable"

    rows = await attempts_of(harness.pool, delivery["delivery_id"])
    assert len(rows) >= 3
    assert [a["outcome"] for a in rows] == ["retry"] * (len(rows) - 1) + ["gave_up"]
    assert all(a["status_code"] == 500 for a in rows)
    assert all(a["started_at"] < delivery["deadline_at"] for a in rows[:-1])
    assert rows[-1]["started_at"] >= delivery["deadline_at"]
    failed = await delivery_of(harness.pool, case.case_id)
    assert failed["attempts"] == len(rows) == len(receiver.of("nurse-a"))
    assert failed["finished_at"] is not None
    assert "deadline" in failed["last_error"]

    moved = await store.get_case(harness.pool, case.case_id)
    assert moved is not None
    assert (moved.level, moved.state, moved.team_id) == (
        1,
        CaseState.RE_ESCALATED,
        "doctor-on-call",
    )
    actions = await harness.pool.fetch(
        "SELECT action FROM case_events WHERE case_id = $1 ORDER BY id", case.case_id
    )
    assert [a["action"] for a in actions] == ["paged", "delivery_failed", "paged"]
    assert harness.after_fail_over_calls == 1

    fallback = await delivery_of(harness.pool, case.case_id, page_seq=2)
    assert (fallback["team_id"], fallback["state"]) == ("doctor-on-call", "pending")
    assert fallback["idempotency_key"] == str(page_id_for(case.case_id, 2))
    assert await drive(worker, harness, fallback["delivery_id"]) == "delivered"
    (doc,) = receiver.of("doctor-on-call")
    assert_signed(doc, SECRETS["doctor-on-call"])
    body = orjson.loads(doc.body)
    assert (body["page_seq"], body["kind"], body["target"]["team_id"]) == (
        2,
        "delivery_failed",
        "doctor-on-call",
    )


async def test_permanent_failure_fails_over_at_once(harness: Harness, receiver: Receiver) -> None:
    """A 410 is not retried: one attempt, undeliverable, and the case moves up immediately."""
    receiver.defaults["nurse-a"] = status(410)
    case = await open_case(harness.pool, harness.roster, harness.clock)
    delivery = await delivery_of(harness.pool, case.case_id)
    worker = harness.worker()

    await worker.run_once()
    assert await worker.drain(WAIT_S)

    final = await delivery_of(harness.pool, case.case_id)
    assert (final["state"], final["attempts"]) == ("undeliverable", 1)
    assert harness.clock() < delivery["deadline_at"]
    rows = await attempts_of(harness.pool, delivery["delivery_id"])
    assert [(a["status_code"], a["outcome"]) for a in rows] == [(410, "gave_up")]
    moved = await store.get_case(harness.pool, case.case_id)
    assert moved is not None
    assert moved.level == 1
    assert (await delivery_of(harness.pool, case.case_id, 2))["team_id"] == "doctor-on-call"
    assert harness.observed == [("nurse-a", "gave_up", 410)]


async def test_hanging_receiver_does_not_delay_other_citizens(
    harness: Harness, receiver: Receiver
) -> None:
    """While citizen A's receiver hangs, B (same tick) and C (a later tick) are delivered."""
    receiver.scripts["nurse-a"] = ["hang"]
    worker = harness.worker(timeout_s=20.0)  # A really stays in flight for the whole test
    case_a = await open_case(harness.pool, harness.roster, harness.clock, team_id="nurse-a")
    case_b = await open_case(harness.pool, harness.roster, harness.clock, team_id="nurse-b")
    key_a = str(page_id_for(case_a.case_id, 1))

    async def state(case: Case) -> str:
        return str((await delivery_of(harness.pool, case.case_id))["state"])

    async def a_hangs() -> bool:
        return key_a in receiver.hanging

    def delivered(case: Case) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await state(case) == "delivered"

        return check

    assert await worker.run_once() == 2
    await until(a_hangs, "A's request to hang")
    await until(delivered(case_b), "B delivered")
    assert key_a in receiver.hanging
    assert worker.in_flight == 1

    # A new citizen's page queued while A still hangs is claimed and sent on the next tick.
    case_c = await open_case(harness.pool, harness.roster, harness.clock, team_id="nurse-b")
    assert await worker.run_once() == 1
    await until(delivered(case_c), "C delivered")
    assert key_a in receiver.hanging
    assert await state(case_a) == "pending"

    receiver.release.set()
    assert await worker.drain(WAIT_S)
    assert await state(case_a) == "delivered"
    assert sorted(r.hook for r in receiver.requests) == ["nurse-a", "nurse-b", "nurse-b"]


async def test_acknowledged_case_cancels_its_pending_delivery(
    harness: Harness, receiver: Receiver
) -> None:
    """After a failed first attempt the nurse acknowledges in the app: no retry is sent."""
    receiver.scripts["nurse-a"] = [status(500)]
    case = await open_case(harness.pool, harness.roster, harness.clock)
    delivery = await delivery_of(harness.pool, case.case_id)
    worker = harness.worker()

    await worker.run_once()
    assert await worker.drain(WAIT_S)
    pending = await delivery_of(harness.pool, case.case_id)
    assert (pending["state"], pending["attempts"]) == ("pending", 1)

    async with harness.pool.acquire() as conn, conn.transaction():
        current = await store.case_for_update(conn, case.case_id)
        assert current is not None
        decision = acknowledge(current, "nurse-17", harness.clock())
        assert decision.case is not None
        await store.save_case(conn, decision.case)

    harness.clock.advance_to(pending["next_attempt_at"])
    assert await worker.run_once() == 1
    assert worker.in_flight == 0

    final = await delivery_of(harness.pool, case.case_id)
    assert (final["state"], final["attempts"]) == ("cancelled", 1)
    assert final["finished_at"] == harness.clock()
    assert "acknowledged" in final["last_error"]
    assert len(receiver.of("nurse-a")) == 1
    assert len(await attempts_of(harness.pool, delivery["delivery_id"])) == 1
    still = await store.get_case(harness.pool, case.case_id)
    assert still is not None
    assert (still.level, still.state) == (0, CaseState.ACKNOWLEDGED)
    n = await harness.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE case_id = $1", case.case_id
    )
    assert n == 1


async def test_two_workers_never_send_the_same_delivery(
    harness: Harness, receiver: Receiver
) -> None:
    """Two workers ticking at the same instant split the due deliveries between them."""
    cases = [
        await open_case(
            harness.pool, harness.roster, harness.clock, team_id=("nurse-a", "nurse-b")[i % 2]
        )
        for i in range(10)
    ]
    w1, w2 = harness.worker(batch=5), harness.worker(batch=5)

    claimed = await asyncio.gather(w1.run_once(), w2.run_once())
    assert await w1.drain(WAIT_S)
    assert await w2.drain(WAIT_S)

    assert list(claimed) == [5, 5]
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests]
    assert sorted(keys) == sorted(str(page_id_for(c.case_id, 1)) for c in cases)
    states = await harness.pool.fetch("SELECT state, attempts FROM deliveries")
    assert {(s["state"], s["attempts"]) for s in states} == {("delivered", 1)}


async def test_expired_lease_fences_the_slow_worker(harness: Harness, receiver: Receiver) -> None:
    """A worker whose lease ran out while its request hung records its attempt but cannot
    overwrite the result of the worker that took the delivery over."""
    receiver.scripts["nurse-a"] = ["hang", status(200)]
    case = await open_case(harness.pool, harness.roster, harness.clock)
    delivery = await delivery_of(harness.pool, case.case_id)
    slow, fast = harness.worker(timeout_s=20.0, lease_s=25.0), harness.worker()

    assert await slow.run_once() == 1

    async def hanging() -> bool:
        return bool(receiver.hanging)

    await until(hanging, "the slow worker's request to hang")
    assert await fast.run_once() == 0  # leased: not due for anyone else
    harness.clock.advance(26)  # the lease expires (a stalled worker, in fake time)
    assert await fast.run_once() == 1
    assert await fast.drain(WAIT_S)
    receiver.release.set()
    assert await slow.drain(WAIT_S)

    final = await delivery_of(harness.pool, case.case_id)
    assert (final["state"], final["attempts"]) == ("delivered", 1)
    rows = await attempts_of(harness.pool, delivery["delivery_id"])
    assert [(a["attempt"], a["status_code"]) for a in rows] == [(1, 200), (1, 200)]
    keys = {r.headers[IDEMPOTENCY_HEADER] for r in receiver.of("nurse-a")}
    assert keys == {str(page_id_for(case.case_id, 1))}  # the receiver can drop the repeat


async def test_superseded_page_failure_does_not_climb_a_second_rung(
    harness: Harness, receiver: Receiver
) -> None:
    """When the ack timeout already re-escalated the case, the old page failing later does not
    move the case again: the new page has its own delivery and deadline."""
    receiver.defaults["nurse-a"] = status(410)
    case = await open_case(harness.pool, harness.roster, harness.clock)
    harness.clock.advance(15 * 60)
    assert len(await harness.manager.scan_deadlines()) == 1
    worker = harness.worker()

    assert await worker.run_once() == 2  # the old nurse page and the new doctor page
    assert await worker.drain(WAIT_S)

    old = await delivery_of(harness.pool, case.case_id, 1)
    new = await delivery_of(harness.pool, case.case_id, 2)
    assert (old["state"], new["state"]) == ("undeliverable", "delivered")
    after = await store.get_case(harness.pool, case.case_id)
    assert after is not None
    assert (after.level, after.team_id) == (1, "doctor-on-call")
    assert (
        await harness.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE case_id = $1", case.case_id
        )
        == 2
    )
    assert harness.after_fail_over_calls == 0
