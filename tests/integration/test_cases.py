"""Cases on the real broker and database: routing, grouping, deadlines across a worker restart."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack
from dispatcher.routing.roster import Roster, page_topic
from dispatcher.store.cases import load_roster
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def high_but_not_critical(cid: str) -> dict[str, Any]:
    """NEWS2 6 (medium band -> severity high): RR 22 (2), SpO2 94 (1), pulse 112 (2), T 38.4 (1)."""
    return helpers.observation(cid, respiration_rate=22, spo2=94, pulse=112, temperature=38.4)


def roster_of(stack: Stack) -> Roster:
    async def _load() -> Roster:
        conn = await asyncpg.connect(stack.dsn)
        try:
            roster = await load_roster(conn)
            assert roster is not None
            return roster
        finally:
            await conn.close()

    return asyncio.run(_load())


def discharged_copd_citizen(publish: Publish, stack: Stack, district: str = "Gladsaxe Nord") -> str:
    cid = helpers.citizen()
    dis = helpers.discharge(cid, municipality="Gladsaxe", district=district, diagnoses=["J44.1"])
    publish(DISCHARGES, dis, None)
    wait_audited(stack, dis["event_id"])
    return cid


class TestRouting:
    def test_case_goes_to_competent_nurse_of_the_district_on_shift(
        self, publish: Publish, stack: Stack
    ) -> None:
        """A COPD citizen's high-severity case pages the district team, a nurse on shift now,
        with COPD competence whenever one is on shift."""
        cid = discharged_copd_citizen(publish, stack)
        pages = TopicReader(stack.bootstrap, page_topic("acute-nurses-gladsaxe"))
        try:
            publish(NURSE_OBSERVATIONS, high_but_not_critical(cid), None)
            found = pages.wait_for(lambda p: p["citizen_id"] == cid)
        finally:
            pages.close()
        assert len(found) == 1
        page = found[0]
        assert page["kind"] == "new"
        assert page["severity"] == "high"
        roster = roster_of(stack)
        now = datetime.now(UTC)
        on_shift = [m for m in roster.members("acute-nurses-gladsaxe") if m.on_shift(now)]
        chosen = page["target"]["staff_id"]
        assert chosen in {m.staff_id for m in on_shift}
        if any("copd" in m.competences for m in on_shift):
            assert "copd" in next(m for m in on_shift if m.staff_id == chosen).competences
        assert page["escalation"]["news2"]["total"] == 6


class TestGrouping:
    async def test_same_situation_pages_once_and_worsening_pages_the_doctor(
        self, publish: Publish, stack: Stack, db: Any
    ) -> None:
        """A second high escalation joins the open case silently; a critical one re-routes the
        case to the on-call doctor with a new page."""
        cid = helpers.citizen()
        dis = helpers.discharge(cid, diagnoses=["I50.9"])
        publish(DISCHARGES, dis, None)
        await asyncio.to_thread(wait_audited, stack, dis["event_id"])
        nurses = TopicReader(stack.bootstrap, page_topic("acute-nurses-gladsaxe"))
        doctor = TopicReader(stack.bootstrap, page_topic("on-call-doctor"))
        try:
            publish(NURSE_OBSERVATIONS, high_but_not_critical(cid), None)
            assert (
                len(await asyncio.to_thread(nurses.wait_for, lambda p: p["citizen_id"] == cid)) == 1
            )
            publish(NURSE_OBSERVATIONS, high_but_not_critical(cid), None)
            publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
            doc_pages = await asyncio.to_thread(doctor.wait_for, lambda p: p["citizen_id"] == cid)
            assert len(doc_pages) == 1
            assert doc_pages[0]["kind"] == "severity_raised"
            assert doc_pages[0]["severity"] == "critical"
            more = await asyncio.to_thread(nurses.settle, lambda p: p["citizen_id"] == cid, 2.0)
            assert len(more) == 1
        finally:
            nurses.close()
            doctor.close()
        cases = await db.fetch(
            "SELECT case_id, severity, tier FROM cases WHERE citizen_id = $1", cid
        )
        assert [(c["severity"], c["tier"]) for c in cases] == [("critical", "doctor")]
        actions = await db.fetch(
            "SELECT action FROM case_escalations WHERE citizen_id = $1 ORDER BY received_at", cid
        )
        assert [a["action"] for a in actions] == ["opened", "attached", "raised"]


class TestDeadlines:
    async def test_unacknowledged_case_reaches_the_doctor_across_a_worker_restart(
        self, publish: Publish, stack: Stack, db: Any
    ) -> None:
        """With the worker killed, deadlines passing meanwhile still re-escalate the case, rung by
        rung, to the on-call doctor once a new worker starts: deadlines live in PostgreSQL."""
        cid = helpers.citizen()
        dis = helpers.discharge(cid, diagnoses=["J44.1"])
        publish(DISCHARGES, dis, None)
        await asyncio.to_thread(wait_audited, stack, dis["event_id"])
        publish(NURSE_OBSERVATIONS, high_but_not_critical(cid), None)
        case = None
        for _ in range(150):
            case = await db.fetchrow("SELECT case_id, chain FROM cases WHERE citizen_id = $1", cid)
            if case:
                break
            await asyncio.sleep(0.1)
        assert case is not None
        chain = json.loads(case["chain"])
        assert chain[-1]["tier"] == "doctor"
        assert len(chain) >= 2

        old = next(w for w in stack.workers if w.alive())
        old.stop(signal.SIGKILL)
        doctor = TopicReader(stack.bootstrap, page_topic("on-call-doctor"))
        try:
            new = stack.start_worker(name="restarted-worker")
            # Every rung's deadline passes while we watch (simulated by moving it to now).
            for _ in range(len(chain) - 1):
                await db.execute(
                    "UPDATE cases SET ack_deadline = now() WHERE case_id = $1", case["case_id"]
                )
                await asyncio.to_thread(stack.wait_healthy, new)
                before = await db.fetchval(
                    "SELECT level FROM cases WHERE case_id = $1", case["case_id"]
                )
                for _ in range(150):
                    level = await db.fetchval(
                        "SELECT level FROM cases WHERE case_id = $1", case["case_id"]
                    )
                    if level > before:
                        break
                    await asyncio.sleep(0.1)
                assert level == before + 1
            pages = await asyncio.to_thread(doctor.wait_for, lambda p: p["citizen_id"] == cid)
        finally:
            doctor.close()
        assert len(pages) == 1
        assert pages[0]["kind"] == "re_escalated"
        state = await db.fetchval("SELECT state FROM cases WHERE case_id = $1", case["case_id"])
        assert state == "re_escalated"
        events = await db.fetch(
            "SELECT action FROM case_events WHERE case_id = $1 ORDER BY id", case["case_id"]
        )
        assert [e["action"] for e in events].count("re_escalated") == len(chain) - 1
