"""The evaluation simulator decides what the real worker decides (issue 14).

The same events go to the embedded stack (Tansu + PostgreSQL + a faust worker) and through
``dispatcher.evaluate.simulator.Simulator`` with the seed roster: the escalations on
``acute.escalations`` (id, severity, rules, route) and the case manager's action for each
(``case_escalations``: opened, attached, raised, inhibited) and the case's tier are the same.
Times differ (the worker decides a few milliseconds later), so they are not compared.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS
from dispatcher.devstack.stack import Stack, seed_roster_text
from dispatcher.evaluate.simulator import Simulator
from dispatcher.routing.roster import parse_roster
from dispatcher.store import db as store_db
from tests import helpers
from tests.integration.conftest import Publish, TopicReader, wait_audited

pytestmark = pytest.mark.usefixtures("worker")


def _sequence(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    a, b = helpers.citizen(), helpers.citizen()
    t = now - timedelta(minutes=10)
    return [
        (DISCHARGES, helpers.discharge(a, t - timedelta(days=2), diagnoses=["J44.1"])),
        (
            DISCHARGES,
            helpers.discharge(b, t - timedelta(days=3), diagnoses=["C34.9"], flags=["palliative"]),
        ),
        # a worried nurse, NEWS2 0: medium -> opens a nurse case
        (NURSE_OBSERVATIONS, helpers.observation(a, t + timedelta(minutes=1), worried=True)),
        # NEWS2 11: critical -> raises the case to the on-call doctor
        (NURSE_OBSERVATIONS, helpers.deteriorating(a, t + timedelta(minutes=2))),
        # NEWS2 6: high, nurse-routed -> inhibited by the open doctor-level case
        (
            NURSE_OBSERVATIONS,
            helpers.observation(
                a,
                t + timedelta(minutes=3),
                respiration_rate=22,
                spo2=94,
                pulse=112,
                temperature=38.4,
            ),
        ),
        # a palliative citizen's NEWS2 11: the palliative pathway, never the doctor first
        (NURSE_OBSERVATIONS, helpers.deteriorating(b, t + timedelta(minutes=4))),
    ]


async def _actions(stack: Stack, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    async with store_db.connection(stack.dsn) as conn:
        rows = await conn.fetch(
            "SELECT e.escalation_id::text AS id, e.action, c.tier FROM case_escalations e "
            "LEFT JOIN cases c ON c.case_id = e.case_id WHERE e.escalation_id = ANY($1::uuid[])",
            ids,
        )
    return {r["id"]: (r["action"], r["tier"]) for r in rows}


async def _wait_actions(stack: Stack, ids: list[str]) -> dict[str, tuple[str, str | None]]:
    for _ in range(100):
        found = await _actions(stack, ids)
        if len(found) == len(ids):
            return found
        await asyncio.sleep(0.2)
    return await _actions(stack, ids)


def test_simulator_matches_the_worker(
    stack: Stack, publish: Publish, escalations: TopicReader
) -> None:
    sequence = _sequence(datetime.now(UTC))
    sim = Simulator(roster=parse_roster(seed_roster_text()))
    for topic, body in sequence:
        publish(topic, body, None)
        wait_audited(stack, body["event_id"])  # one at a time: the order is the test's
        sim.deliver(topic, json.dumps(body).encode(), datetime.now(UTC))
    citizens = {body["citizen_id"] for _, body in sequence}
    expected = [r.escalation for r in sim.log.escalations]
    assert len(expected) == 4
    streamed = escalations.wait_for(lambda e: e["citizen_id"] in citizens, count=len(expected))
    # across citizens the partitions interleave: compare by escalation id
    assert {
        e["escalation_id"]: (e["severity"], [r["rule_id"] for r in e["reasons"]], e["route"])
        for e in streamed
    } == {
        str(e.escalation_id): (
            e.severity,
            [r.rule_id for r in e.reasons],
            e.route.model_dump(mode="json"),
        )
        for e in expected
    }
    ids = [str(e.escalation_id) for e in expected]
    worker_actions = asyncio.run(_wait_actions(stack, ids))
    sim_actions = {str(r.escalation.escalation_id): r.action for r in sim.log.escalations}
    assert {i: a for i, (a, _) in worker_actions.items()} == sim_actions
    assert [sim_actions[i] for i in ids] == ["opened", "raised", "inhibited", "opened"]
    final_tiers = {c.citizen_id: c.tier for c in sim.cases.values()}
    for i, (_, tier) in worker_actions.items():
        esc = next(e for e in expected if str(e.escalation_id) == i)
        assert tier == final_tiers[esc.citizen_id]
