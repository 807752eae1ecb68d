"""Cases on the real broker and database: routing, grouping, deadlines across a worker restart."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from dispatcher.cases.pages import FALLBACK_AFTER_REPEATS, FALLBACK_INSTRUCTION
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack, WorkerProcess
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
                # Read the rung before moving the deadline: the scanner may act at once.
                before = await db.fetchval(
                    "SELECT level FROM cases WHERE case_id = $1", case["case_id"]
                )
                await db.execute(
                    "UPDATE cases SET ack_deadline = now() WHERE case_id = $1", case["case_id"]
                )
                await asyncio.to_thread(stack.wait_healthy, new)
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


def gauge(port: int, name: str, severity: str) -> float:
    """One ``{severity=...}`` sample of a gauge on the worker's /metrics (0 when absent)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        text = resp.read().decode()
    prefix = f'{name}{{severity="{severity}"}} '
    return next((float(ln[len(prefix) :]) for ln in text.splitlines() if ln.startswith(prefix)), 0)


class TestNobodyLeftUnacknowledged:
    async def test_last_rung_unacknowledged_pages_carry_the_fallback_and_the_metric_shows_it(
        self, publish: Publish, stack: Stack, db: Any, worker: WorkerProcess
    ) -> None:
        """A critical case (the on-call doctor only, 5 min) nobody acknowledges: its first
        repeat is a plain re-page, the FALLBACK_AFTER_REPEATS-th says "not acknowledged after K
        pages over M minutes" and carries the fallback instruction, and the worker's
        dispatcher_cases_last_rung_* gauges count it. Each 5 minutes is simulated by moving the
        deadline and the last rung's first page back by the case's minutes."""
        cid = helpers.citizen()
        doctor = TopicReader(stack.bootstrap, page_topic("on-call-doctor"))
        try:
            publish(NURSE_OBSERVATIONS, helpers.deteriorating(cid), None)
            first = await asyncio.to_thread(doctor.wait_for, lambda p: p["citizen_id"] == cid)
            assert [p["kind"] for p in first] == ["new"]
            assert first[0]["unacknowledged"] is None
            case_id = first[0]["case_id"]
            minutes = await db.fetchval(
                "SELECT ack_minutes FROM cases WHERE case_id = $1::uuid", case_id
            )
            assert minutes == 5
            for repeat in range(1, FALLBACK_AFTER_REPEATS + 1):
                await db.execute(
                    "UPDATE cases SET ack_deadline = ack_deadline - make_interval(mins => "
                    "ack_minutes), detail = jsonb_set(detail, '{last_rung,since}', to_jsonb("
                    "(detail->'last_rung'->>'since')::timestamptz - make_interval(mins => "
                    "ack_minutes))) WHERE case_id = $1::uuid",
                    case_id,
                )
                pages = await asyncio.to_thread(
                    doctor.wait_for, lambda p: p["case_id"] == case_id, 1 + repeat
                )
                assert len(pages) == 1 + repeat
            pages.sort(key=lambda p: p["page_seq"])
        finally:
            doctor.close()
        plain, fallback = pages[-2], pages[-1]
        assert plain["kind"] == fallback["kind"] == "re_escalated"
        assert plain["unacknowledged"] is None
        assert "not acknowledged after" not in plain["reason"]
        summary = (
            f"not acknowledged after {FALLBACK_AFTER_REPEATS} pages over "
            f"{FALLBACK_AFTER_REPEATS * 5} minutes"
        )
        assert fallback["unacknowledged"] == {
            "pages": FALLBACK_AFTER_REPEATS,
            "minutes": FALLBACK_AFTER_REPEATS * 5,
            "summary": summary,
            "instruction": FALLBACK_INSTRUCTION,
        }
        assert summary in fallback["reason"]
        assert "112" in fallback["reason"]
        assert fallback["target"]["tier"] == "doctor"
        history = await db.fetch(
            "SELECT detail FROM case_events WHERE case_id = $1::uuid AND action = 're_escalated' "
            "ORDER BY id",
            case_id,
        )
        assert json.loads(history[-1]["detail"])["unacknowledged"]["summary"] == summary

        # The case-stats timer (every case_stats_s) reports it: at least this case, at least
        # as old as the simulated minutes since the doctor was first paged.
        count = oldest = 0.0
        for _ in range(300):
            count = gauge(worker.web_port, "dispatcher_cases_last_rung_overdue", "critical")
            oldest = gauge(
                worker.web_port,
                "dispatcher_cases_last_rung_oldest_unacknowledged_seconds",
                "critical",
            )
            if count >= 1 and oldest >= FALLBACK_AFTER_REPEATS * 5 * 60:
                break
            await asyncio.sleep(0.1)
        assert count >= 1
        assert oldest >= FALLBACK_AFTER_REPEATS * 5 * 60
        await db.execute(  # acknowledged: it stops re-paging and leaves the gauges
            "UPDATE cases SET state = 'acknowledged', acknowledged_at = now(), "
            "acknowledged_by = 'test' WHERE case_id = $1::uuid",
            case_id,
        )
