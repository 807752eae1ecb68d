"""Acknowledgement covers what was acknowledged, on the real broker and PostgreSQL.

The case manager runs in the test process against a fresh migrated schema of the session's
PostgreSQL, with the seed roster, an injected clock (so "ten hours later" costs nothing) and its
outbox relayed to the session's real Kafka broker: every page is read back from
``acute.pages.<team>``. The last test goes through the real worker process instead, with its
settings from ``build_runtime``. Behaviours and their unit tables: docs/cases.md,
tests/unit/cases/test_lifecycle_ack.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaProducer

from dispatcher.api import auth as api_tokens
from dispatcher.api.app import create_api
from dispatcher.cases.lifecycle import AckPolicy, acknowledge, resolve
from dispatcher.cases.manager import CaseManager
from dispatcher.contract.events import Escalation, Reason, Route
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.embedded import free_port
from dispatcher.devstack.stack import Stack, seed_roster_text
from dispatcher.ingest.planner import OutboxMessage
from dispatcher.notify import DeliveryWorker, WebhookSender, roster_secrets
from dispatcher.routing.roster import page_topic, parse_roster
from dispatcher.store import cases as store
from dispatcher.store.batches import PostgresRepository
from dispatcher.store.db import Pool, create_pool, transaction
from dispatcher.store.roster import store_roster
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

TEAM = "acute-nurses-gladsaxe"
POLICY = AckPolicy(
    quiet_period=timedelta(minutes=60),
    stale_after=timedelta(hours=12),
    burst_window=timedelta(minutes=5),
)
SEVERITY_MINUTES = {"medium": 30, "high": 15, "critical": 5}
TABLES = (
    "delivery_attempts, deliveries, case_events, case_escalations, cases, outbox, citizen_context"
)


class FakeClock:
    """Wall-clock start (so rosters' shifts and the broker see sane times), moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class KafkaSend:
    """The outbox relay's sender: the session broker, every message acknowledged."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    async def __call__(self, messages: Sequence[OutboxMessage]) -> None:
        def send() -> None:
            futures = [self._producer.send(m.topic, key=m.key, value=m.value) for m in messages]
            for f in futures:
                f.get(10)

        await asyncio.to_thread(send)


@dataclass
class Harness:
    pool: Pool
    manager: CaseManager
    clock: FakeClock
    bootstrap: str

    def escalation(self, cid: str, rule: str, severity: str = "high") -> bytes:
        now = self.clock()
        esc = Escalation(
            escalation_id=uuid4(),
            case_id=uuid4(),
            citizen_id=cid,
            created_at=now,
            severity=severity,
            route=Route(tier="nurse", team=TEAM, competence="general_acute", reason="test"),
            reasons=[Reason(rule_id=rule, rule_version=1, summary=f"{rule} fired")],
            ack_deadline=now + timedelta(minutes=SEVERITY_MINUTES[severity]),
            triggered_by=[uuid4()],
        )
        return esc.model_dump_json().encode()

    async def fire(self, cid: str, rule: str, severity: str = "high") -> str:
        """One escalation through ``CaseManager.handle``; the decision's action."""
        [decision] = await self.manager.handle([self.escalation(cid, rule, severity)])
        return decision.action

    async def citizen(self) -> str:
        cid = helpers.citizen()
        ctx = {"municipality": "Gladsaxe", "district": "Gladsaxe Nord"}
        await self.pool.execute(
            "INSERT INTO citizen_context (citizen_id, context) VALUES ($1, $2::jsonb)",
            cid,
            json.dumps(ctx),
        )
        return cid

    async def current_case(self, cid: str) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT case_id FROM cases WHERE citizen_id = $1 AND resolved_at IS NULL "
                "AND superseded_by IS NULL",
                cid,
            )
            assert row is not None
            case = await store.get_case(conn, row["case_id"])
        assert case is not None
        return store.case_to_dict(case)  # the API's view of the case

    async def ack(self, case_id: str, actor: str = "rn-gla-01") -> str:
        async with transaction(self.pool) as conn:
            case = await store.case_for_update(conn, UUID(case_id))
            assert case is not None
            decision = acknowledge(case, actor, self.clock())
            assert decision.case is not None
            if decision.events:
                await store.save_case(conn, decision.case)
                await store.append_events(conn, case.case_id, decision.events, self.clock())
        return decision.action

    async def events(self, case_id: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self.pool.fetch(
            "SELECT action, detail FROM case_events WHERE case_id = $1::uuid ORDER BY id", case_id
        )
        return [(r["action"], json.loads(r["detail"])) for r in rows]

    def pages(self, team: str = TEAM) -> TopicReader:
        return TopicReader(self.bootstrap, page_topic(team))


@pytest.fixture
async def harness(stack: Stack, schema_dsn: str, producer: KafkaProducer) -> AsyncIterator[Harness]:
    pool = await create_pool(schema_dsn, min_size=1, max_size=4)
    await pool.execute(f"TRUNCATE {TABLES} CASCADE")  # each test's scans see its cases only
    async with transaction(pool) as conn:
        await store_roster(conn, parse_roster(seed_roster_text()))
    repo = PostgresRepository(pool)
    send = KafkaSend(producer)

    async def relay() -> None:
        await repo.relay_outbox(send)

    clock = FakeClock()
    manager = CaseManager(pool, relay, clock=clock, ack_policy=POLICY, roster_ttl_s=3600)
    try:
        yield Harness(pool, manager, clock, stack.bootstrap)
    finally:
        await pool.close()


def of(cid: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: p["citizen_id"] == cid


async def wait_pages(reader: TopicReader, cid: str, count: int) -> list[dict[str, Any]]:
    found = await asyncio.to_thread(reader.wait_for, of(cid), count, 20.0)
    assert len(found) >= count, found
    return found


async def settled(reader: TopicReader, cid: str) -> list[dict[str, Any]]:
    """Every page of the citizen once no more arrive for 2 s (to count extras)."""
    return await asyncio.to_thread(reader.settle, of(cid), 2.0)


class TestAcknowledgedCaseRenotifies:
    async def test_a_fall_ten_hours_after_an_acknowledged_fall_renotifies(
        self, harness: Harness
    ) -> None:
        """Acknowledged fall; ten hours later another fall: an ``update`` page to the same
        nurse with a new deadline; unacknowledged, the deadline scan re-escalates it."""
        h, cid = harness, await harness.citizen()
        reader = h.pages()
        try:
            assert await h.fire(cid, "sensor.fall") == "opened"
            [new] = await wait_pages(reader, cid, 1)
            assert new["kind"] == "new"
            h.clock.advance(timedelta(minutes=4))
            assert await h.ack(new["case_id"]) == "acknowledged"

            h.clock.advance(timedelta(hours=10))
            assert await h.fire(cid, "sensor.fall") == "renotified"
            pages = await wait_pages(reader, cid, 2)
        finally:
            reader.close()
        update = pages[1]
        assert update["kind"] == "update"
        assert update["case_id"] == new["case_id"]
        assert update["target"] == new["target"]  # the assignee
        assert update["page_seq"] == 2
        assert "sensor.fall again after 10.1 h quiet (quiet period 60 min)" in update["reason"]
        assert update["ack_deadline"] == (h.clock() + timedelta(minutes=15)).isoformat()
        assert update["case_state"] == "notified"
        case = await h.current_case(cid)
        assert case["state"] == "notified"
        renotified = [d for a, d in await h.events(new["case_id"]) if a == "renotified"]
        assert renotified[0]["recurring_rules"] == ["sensor.fall"]
        assert "quiet" in renotified[0]["why"]

        # Nobody acknowledges the update: the deadline scan moves the case one rung up.
        h.clock.advance(timedelta(minutes=15))
        [moved] = await h.manager.scan_deadlines()
        assert moved.action == "re_escalated"
        assert moved.page is not None
        assert moved.case is not None
        assert (moved.case.level, moved.page.kind) == (1, "re_escalated")
        assert moved.page.target.as_dict() != new["target"]  # the next rung, not the assignee

    async def test_a_new_rule_on_an_acknowledged_case_pages_update(self, harness: Harness) -> None:
        """A high case acknowledged; a desaturation (a rule the case had not seen) 20 min later
        re-notifies; acknowledging the update makes the same rule quiet again."""
        h, cid = harness, await harness.citizen()
        reader = h.pages()
        try:
            await h.fire(cid, "news2.medium")
            [new] = await wait_pages(reader, cid, 1)
            h.clock.advance(timedelta(minutes=3))
            await h.ack(new["case_id"])
            h.clock.advance(timedelta(minutes=20))
            assert await h.fire(cid, "sensor.spo2_low_sustained", "medium") == "renotified"
            pages = await wait_pages(reader, cid, 2)
            h.clock.advance(timedelta(minutes=2))
            await h.ack(new["case_id"], "rn-gla-02")
            h.clock.advance(timedelta(minutes=10))
            assert await h.fire(cid, "sensor.spo2_low_sustained", "medium") == "attached"
            assert len(await settled(reader, cid)) == 2
        finally:
            reader.close()
        update = pages[1]
        assert update["kind"] == "update"
        assert update["reason"].startswith("update: new finding sensor.spo2_low_sustained")
        assert update["severity"] == "high"  # the case's severity: the update is as urgent
        actions = [a for a, _ in await h.events(new["case_id"])]
        assert actions == [
            "opened",
            "paged",
            "acknowledged",
            "renotified",
            "paged",
            "acknowledged",
            "attached",
        ]
        covered = (await h.events(new["case_id"]))[-1][1]
        assert "covered by the acknowledgement by rn-gla-02" in covered["why"]


class TestBursts:
    async def test_three_falls_in_two_minutes_page_once_counted_three(
        self, harness: Harness
    ) -> None:
        """Three fall alarms within two minutes: one page; the case (API view) counts them,
        and the next page (the re-escalation) says "3 x sensor.fall within 2 min"."""
        h, cid = harness, await harness.citizen()
        reader = h.pages()
        try:
            actions = []
            for _ in range(3):
                actions.append(await h.fire(cid, "sensor.fall"))
                h.clock.advance(timedelta(minutes=1))
            assert actions == ["opened", "attached", "attached"]
            pages = await settled(reader, cid)
        finally:
            reader.close()
        assert [p["kind"] for p in pages] == ["new"]
        case = await h.current_case(cid)
        [fall] = case["findings"]
        assert (fall["rule_id"], fall["count"], fall["burst_count"]) == ("sensor.fall", 3, 3)
        assert fall["summary"] == "3 x sensor.fall within 2 min"
        assert case["detail"]["findings"]["sensor.fall"]["count"] == 3

        h.clock.advance(timedelta(minutes=15))
        doctor_or_fallback = await h.manager.scan_deadlines()
        assert doctor_or_fallback
        team = doctor_or_fallback[0].page.target.team_id  # type: ignore[union-attr]
        next_reader = h.pages(team)
        try:
            [next_page] = [
                p for p in await wait_pages(next_reader, cid, 1) if p["kind"] == "re_escalated"
            ]
        finally:
            next_reader.close()
        assert [f["summary"] for f in next_page["findings"]] == ["3 x sensor.fall within 2 min"]


class TestStaleAcknowledgement:
    async def test_stale_ack_asks_to_resolve_or_renew_and_a_later_finding_opens_a_new_case(
        self, harness: Harness
    ) -> None:
        """12 h after the acknowledgement the team gets one ``resolve_or_renew`` page; a fall
        after that opens a new case (paged ``new``) and the stale case is superseded."""
        h, cid = harness, await harness.citizen()
        reader = h.pages()
        try:
            await h.fire(cid, "news2.medium")
            [new] = await wait_pages(reader, cid, 1)
            h.clock.advance(timedelta(minutes=5))
            await h.ack(new["case_id"])

            h.clock.advance(timedelta(hours=12) - timedelta(seconds=1))
            assert await h.manager.scan_deadlines() == []  # 1 s early: nothing
            h.clock.advance(timedelta(seconds=1))
            [asked] = await h.manager.scan_deadlines()
            assert asked.action == "renewal_asked"
            h.clock.advance(timedelta(minutes=1))
            assert await h.manager.scan_deadlines() == []  # once
            pages = await wait_pages(reader, cid, 2)

            h.clock.advance(timedelta(minutes=30))
            assert await h.fire(cid, "sensor.fall") == "opened"
            pages = await wait_pages(reader, cid, 3)
        finally:
            reader.close()
        renew, successor = pages[1], pages[2]
        assert renew["kind"] == "resolve_or_renew"
        assert renew["case_id"] == new["case_id"]
        assert "resolve it, or acknowledge it again to renew it for 12 h" in renew["reason"]
        assert successor["kind"] == "new"
        assert successor["case_id"] != new["case_id"]
        assert successor["page_seq"] == 1
        assert successor["supersedes"] == new["case_id"]
        old = await h.pool.fetchrow(
            "SELECT state, superseded_by FROM cases WHERE case_id = $1::uuid", new["case_id"]
        )
        assert (old["state"], str(old["superseded_by"])) == ("acknowledged", successor["case_id"])
        current = await h.current_case(cid)
        assert current["case_id"] == successor["case_id"]
        old_events = await h.events(new["case_id"])
        assert [a for a, _ in old_events][-3:] == ["renewal_asked", "paged", "superseded"]
        assert "left unresolved for 12.5 h" in old_events[-1][1]["why"]

    async def test_a_renewed_acknowledgement_keeps_the_case(self, harness: Harness) -> None:
        """Asked to resolve or renew, the nurse acknowledges again: the case is renewed and
        a later repeat of its finding within the quiet period attaches to it."""
        h, cid = harness, await harness.citizen()
        await h.fire(cid, "news2.medium")
        case_id = (await h.current_case(cid))["case_id"]
        await h.ack(case_id)
        h.clock.advance(timedelta(hours=12))
        [asked] = await h.manager.scan_deadlines()
        assert asked.action == "renewal_asked"
        assert await h.ack(case_id, "rn-gla-03") == "renewed"
        assert await h.fire(cid, "sensor.fall") == "renotified"  # new rule, same case
        assert (await h.current_case(cid))["case_id"] == case_id

    async def test_a_resolved_case_stays_closed(self, harness: Harness) -> None:
        h, cid = harness, await harness.citizen()
        await h.fire(cid, "sensor.fall")
        first = (await h.current_case(cid))["case_id"]
        async with transaction(h.pool) as conn:
            case = await store.case_for_update(conn, UUID(first))
            assert case is not None
            done = resolve(case, "rn-gla-01", "treated_at_home", h.clock())
            assert done.case is not None
            await store.save_case(conn, done.case)
        h.clock.advance(timedelta(minutes=2))
        assert await h.fire(cid, "sensor.fall") == "opened"
        assert (await h.current_case(cid))["case_id"] != first


@pytest.mark.usefixtures("worker")
class TestThroughTheWorker:
    async def test_nurse_worry_on_an_acknowledged_case_pages_update(
        self, publish: Publish, stack: Stack, db: Any
    ) -> None:
        """The real pipeline (ingest, rules, worker's case manager with its settings): a high
        NEWS2 case acknowledged, then a worried nurse with normal vitals (nurse.worry, a rule
        the case had not seen) -> an ``update`` page on the team's topic."""
        cid = helpers.citizen()
        dis = helpers.discharge(cid, diagnoses=["I50.9"])
        publish(DISCHARGES, dis, None)
        await asyncio.to_thread(wait_audited, stack, dis["event_id"])
        reader = TopicReader(stack.bootstrap, page_topic(TEAM))
        try:
            obs = helpers.observation(
                cid, respiration_rate=22, spo2=94, pulse=112, temperature=38.4
            )
            publish(NURSE_OBSERVATIONS, obs, None)
            [new] = await asyncio.to_thread(reader.wait_for, of(cid), 1, 30.0)
            assert new["kind"] == "new"
            async with transaction(db) as conn:  # what POST /api/cases/{id}/ack does
                case = await store.case_for_update(conn, UUID(new["case_id"]))
                assert case is not None
                acked = acknowledge(case, "rn-gla-01", datetime.now(UTC))
                assert acked.case is not None
                await store.save_case(conn, acked.case)
                await store.append_events(conn, case.case_id, acked.events, datetime.now(UTC))
            worry = helpers.observation(cid, worried=True)
            publish(NURSE_OBSERVATIONS, worry, None)
            pages = await asyncio.to_thread(reader.wait_for, of(cid), 2, 30.0)
        finally:
            reader.close()
        assert [p["kind"] for p in pages] == ["new", "update"]
        assert "new finding nurse.worry" in pages[1]["reason"]
        assert pages[1]["target"] == new["target"]


class TestRenewalPageReachesTheWebhook:
    async def test_resolve_or_renew_is_pushed_although_the_case_is_acknowledged(
        self, harness: Harness
    ) -> None:
        """The delivery worker cancels pushes of acknowledged cases, but not the stale case's
        resolve-or-renew page: it is delivered (after a 500, retried) to the team's webhook."""
        got: list[tuple[int, dict[str, Any]]] = []

        async def hook(request: web.Request) -> web.Response:
            got.append((len(got), json.loads(await request.read())))
            return web.Response(status=500 if len(got) == 1 else 200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        doc = yaml.safe_load(seed_roster_text())
        for team in doc["teams"]:
            if team["team_id"] == TEAM:
                hook_url = f"http://127.0.0.1:{port}/hook"
                team["channels"] = {
                    "kafka": True,
                    "webhook": {"url": hook_url, "secret": "renewal-secret-0123456789"},
                }
        roster = parse_roster(yaml.safe_dump(doc))
        async with transaction(harness.pool) as conn:
            await store_roster(conn, roster)
        h = harness
        sender = WebhookSender(timeout_s=2.0)
        worker = DeliveryWorker(
            h.pool,
            roster_secrets(lambda: h.manager.current_roster),
            sender,
            h.manager.fail_over,
            clock=h.clock,
        )
        try:
            cid = await h.citizen()
            await h.fire(cid, "news2.medium")
            case_id = (await h.current_case(cid))["case_id"]
            await h.ack(case_id)
            await h.pool.execute(  # as the API's ack does: the first page's push is cancelled
                "UPDATE deliveries SET state = 'cancelled' WHERE case_id = $1::uuid", case_id
            )
            h.clock.advance(timedelta(hours=12))
            [asked] = await h.manager.scan_deadlines()
            assert asked.action == "renewal_asked"
            for _ in range(20):  # the retry after the 500 is due a few seconds later
                await worker.run_once()
                await worker.drain(5.0)
                if any(p["kind"] == "resolve_or_renew" for _, p in got[1:]):
                    break
                h.clock.advance(timedelta(seconds=30))
        finally:
            await worker.aclose()
            await sender.aclose()
            await runner.cleanup()
        kinds = [p["kind"] for _, p in got]
        assert kinds == ["resolve_or_renew", "resolve_or_renew"], kinds  # 500, then 200
        row = await h.pool.fetchrow(
            "SELECT state, attempts FROM deliveries WHERE case_id = $1::uuid AND page_seq = $2",
            case_id,
            asked.page.page_seq if asked.page else 0,
        )
        assert (row["state"], row["attempts"]) == ("delivered", 2)


class TestThroughTheApi:
    async def test_findings_renewal_and_a_superseded_case_over_http(self, harness: Harness) -> None:
        """The team's API on the same database and clock: the case shows its counted findings;
        acknowledging after the resolve-or-renew page renews the case; once a later finding
        opened a new case, acknowledging the stale one is a 409 naming its successor."""
        h = harness
        token = await api_tokens.create(h.pool, "rn-gla-01", team_id=TEAM)
        headers = {"Authorization": f"Bearer {token}"}
        cid = await h.citizen()
        async with TestClient(TestServer(create_api(h.pool, clock=h.clock))) as api:
            for _ in range(2):
                await h.fire(cid, "sensor.fall")
                h.clock.advance(timedelta(minutes=1))
            case_id = (await h.current_case(cid))["case_id"]
            resp = await api.post(f"/api/cases/{case_id}/ack", headers=headers)
            assert resp.status == 200
            resp = await api.get(f"/api/cases/{case_id}", headers=headers)
            detail = await resp.json()
            assert [f["summary"] for f in detail["case"]["findings"]] == [
                "2 x sensor.fall within 1 min"
            ]
            assert detail["history"][-1]["detail"]["covers"] == ["sensor.fall"]

            h.clock.advance(timedelta(hours=12))
            [asked] = await h.manager.scan_deadlines()
            assert asked.action == "renewal_asked"
            resp = await api.post(f"/api/cases/{case_id}/ack", headers=headers)
            assert resp.status == 200
            history = (await (await api.get(f"/api/cases/{case_id}", headers=headers)).json())[
                "history"
            ]
            assert "renewed" in [e["action"] for e in history]

            h.clock.advance(timedelta(hours=12))
            assert await h.fire(cid, "news2.medium") == "opened"
            successor = (await h.current_case(cid))["case_id"]
            resp = await api.post(f"/api/cases/{case_id}/ack", headers=headers)
            assert resp.status == 409
            assert successor in (await resp.json())["error"]["reason"]
            stale = (await (await api.get(f"/api/cases/{case_id}", headers=headers)).json())["case"]
            assert stale["superseded_by"] == successor
            resp = await api.post(
                f"/api/cases/{case_id}/resolve", headers=headers, json={"outcome": "other"}
            )
            assert resp.status == 200  # the stale case is still its team's to resolve
