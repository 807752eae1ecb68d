"""An acute team's view, end to end: webhook push (flaky receiver), API acknowledgement, and
the acknowledgement stopping re-escalation. Real broker, worker, PostgreSQL and API process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from dispatcher.api import auth as tokens
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.embedded import free_port
from dispatcher.devstack.stack import Stack, WorkerProcess, seed_roster_text
from dispatcher.notify.signing import verify
from tests import helpers
from tests.integration.conftest import Publish

pytestmark = pytest.mark.usefixtures("worker")

SECRET = "test-webhook-secret-0123456789"
TEAM = "acute-nurses-rudersdal"


@dataclass
class FlakyReceiver:
    """Answers 500 twice, then 200; records every request."""

    fail_first: int = 2
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = 500 if len(self.requests) < self.fail_first else 200
        self.requests.append((dict(request.headers), body, status))
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FlakyReceiver, int]]:
    flaky = FlakyReceiver()
    app = web.Application()
    app.router.add_post("/hook", flaky.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield flaky, port
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def api(stack: Stack) -> WorkerProcess:
    return stack.start_api()


async def wait_for(check: Any, timeout_s: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


class TestAcuteTeamFlow:
    async def test_push_ack_and_no_reescalation(
        self,
        stack: Stack,
        api: WorkerProcess,
        db: Any,
        publish: Publish,
        receiver: tuple[FlakyReceiver, int],
    ) -> None:
        """A case for a Rudersdal citizen is pushed to the team's flaky webhook until one 2xx,
        with one idempotency key and valid signatures; another team's token cannot acknowledge
        it; the team's token can, and then a passed deadline no longer re-escalates it, while
        the same deadline scans do re-escalate another citizen's unacknowledged case."""
        flaky, port = receiver
        admin = await tokens.create(db, "ops-admin-01", admin=True)
        mine = await tokens.create(db, "rn-rud-01", team_id=TEAM)
        theirs = await tokens.create(db, "rn-gla-01", team_id="acute-nurses-gladsaxe")
        base = f"http://127.0.0.1:{api.web_port}/api"

        roster = yaml.safe_load(seed_roster_text())
        for team in roster["teams"]:
            if team["team_id"] == TEAM:
                team["channels"] = {
                    "kafka": True,
                    "webhook": {"url": f"http://127.0.0.1:{port}/hook", "secret": SECRET},
                }
        async with aiohttp.ClientSession() as http:
            async with http.put(
                f"{base}/roster", json=roster, headers={"Authorization": f"Bearer {admin}"}
            ) as resp:
                assert resp.status == 200, await resp.text()
            await asyncio.sleep(6.0)  # the workers re-read the roster every 5 s

            cid = helpers.citizen()
            dis = helpers.discharge(
                cid, municipality="Rudersdal", district="Holte", diagnoses=["J44.1"]
            )
            publish(DISCHARGES, dis, None)

            async def audited() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT 1 FROM audit_log WHERE event_id = $1::uuid", dis["event_id"]
                    )
                )

            assert await wait_for(audited)
            publish(
                NURSE_OBSERVATIONS,
                helpers.observation(cid, respiration_rate=22, spo2=94, pulse=112, temperature=38.4),
                None,
            )

            async def delivered() -> bool:
                return any(status == 200 for _, _, status in flaky.requests)

            assert await wait_for(delivered, 45.0)
            await asyncio.sleep(1.0)
            keys = {h["Idempotency-Key"] for h, _, _ in flaky.requests}
            assert len(keys) == 1
            assert [s for _, _, s in flaky.requests] == [500, 500, 200]
            for headers, body, _ in flaky.requests:
                verify(SECRET, headers, body)
            page = json.loads(flaky.requests[-1][1])
            assert page["citizen_id"] == cid
            assert page["target"]["team_id"] == TEAM

            case_id = page["case_id"]
            attempts = await db.fetch(
                "SELECT a.status_code, a.outcome FROM delivery_attempts a "
                "JOIN deliveries d USING (delivery_id) WHERE d.case_id = $1::uuid "
                "ORDER BY a.attempt",
                case_id,
            )
            assert [(a["status_code"], a["outcome"]) for a in attempts] == [
                (500, "retry"),
                (500, "retry"),
                (200, "delivered"),
            ]

            async with http.post(
                f"{base}/cases/{case_id}/ack", headers={"Authorization": f"Bearer {theirs}"}
            ) as resp:
                assert resp.status == 403
            async with http.post(
                f"{base}/cases/{case_id}/ack", headers={"Authorization": f"Bearer {mine}"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["case"]["state"] == "acknowledged"

        # A control: an unacknowledged case of another citizen (not in Rudersdal, so nothing
        # more reaches the receiver above), its deadline passed at the same moment.
        other = helpers.citizen()
        publish(
            NURSE_OBSERVATIONS,
            helpers.observation(other, respiration_rate=22, spo2=94, pulse=112, temperature=38.4),
            None,
        )

        async def control_case() -> Any:
            return await db.fetchval(
                "SELECT case_id::text FROM cases WHERE citizen_id = $1 AND state <> 'resolved'",
                other,
            )

        control = await wait_for(control_case)
        assert control is not None
        await db.execute(
            "UPDATE cases SET ack_deadline = now() - interval '1 minute' "
            "WHERE case_id = ANY($1::uuid[])",
            [case_id, control],
        )

        async def control_re_escalated() -> bool:
            return bool(
                await db.fetchval(
                    "SELECT 1 FROM case_events WHERE case_id = $1::uuid "
                    "AND action = 're_escalated'",
                    control,
                )
            )

        # The deadline scanner ran after both deadlines passed: it moved the control case on
        # and left the acknowledged one alone.
        assert await wait_for(control_re_escalated, 30.0)
        row = await db.fetchrow("SELECT state, level FROM cases WHERE case_id = $1::uuid", case_id)
        assert (row["state"], row["level"]) == ("acknowledged", 0)
        actions = [
            r["action"]
            for r in await db.fetch(
                "SELECT action FROM case_events WHERE case_id = $1::uuid ORDER BY id", case_id
            )
        ]
        assert "acknowledged" in actions
        assert "re_escalated" not in actions
        ack = await db.fetchrow(
            "SELECT actor FROM case_events WHERE case_id = $1::uuid AND action = 'acknowledged'",
            case_id,
        )
        assert ack["actor"] == "rn-rud-01"
