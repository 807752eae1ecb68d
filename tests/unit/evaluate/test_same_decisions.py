"""The simulator decides what the streaming path decides, for the same input.

* Escalations: the real ``BatchProcessor`` (ingest/processor.py) over the in-memory repository
  (store/testing.py), one message per batch at its arrival time and the silent-sensor timer
  every 60 s, publishes exactly the escalations the simulator hands its case manager: same ids,
  severity, rules, route, deadline, in the same order.
* Cases: the real ``CaseManager._decide`` (cases/manager.py: the shell's meta, ``route_for`` and
  ``lifecycle.on_escalation``), fed the situation the store would read, and ``on_ack_timeout``
  at every deadline, gives exactly the simulator's case decisions (action, case, page).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest

from dispatcher.cases.lifecycle import Case, CaseDecision, on_ack_timeout
from dispatcher.cases.manager import CaseManager, _Situation
from dispatcher.contract.events import Escalation
from dispatcher.contract.topics import ESCALATIONS
from dispatcher.contract.vocab import CaseState
from dispatcher.evaluate.cohort import CohortSpec, generate
from dispatcher.evaluate.run import Message, parse_events
from dispatcher.evaluate.simulator import SILENCE_SCAN_S, Simulator
from dispatcher.ingest.planner import Incoming, OutboxMessage
from dispatcher.ingest.processor import BatchProcessor
from dispatcher.observability.metrics import DispatcherMetrics
from dispatcher.routing.roster import Roster, parse_roster
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.ruleset import default_ruleset
from dispatcher.store.testing import InMemoryRepository

ROSTER = Path(__file__).resolve().parents[3] / "dispatcher" / "routing" / "seed_roster.yaml"


@pytest.fixture(scope="module")
def roster() -> Roster:
    return parse_roster(ROSTER.read_text("utf-8"))


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    """A small cohort with every fault the generator makes (late, duplicated, artefacts), three
    continuous oximeters (sustained breaches, continuous-device silences) and spot checks."""
    spec = CohortSpec(
        citizens=24, days=3, seed=8, p_duplicate=0.05, p_late=0.1, continuous_cadence_s=300
    )
    cohort = generate(spec)
    lines = [__import__("orjson").dumps(e.as_json()) for e in cohort.events]
    return parse_events(lines)


def _simulate(messages: Sequence[Message], roster: Roster | None) -> Simulator:
    sim = Simulator(ruleset=default_ruleset(), roster=roster, keep_decisions=True)
    for m in messages:
        sim.deliver(m.topic, m.value, m.arrived_at, m.citizen_id.encode() if m.citizen_id else None)
    return sim


async def _streaming_escalations(messages: Sequence[Message]) -> list[Escalation]:
    """The shell's ingest, driven by a virtual clock: the timer, then each message."""
    clock: list[datetime] = [messages[0].arrived_at]
    published: list[OutboxMessage] = []

    async def send(batch: Sequence[OutboxMessage]) -> None:
        published.extend(batch)

    processor = BatchProcessor(
        InMemoryRepository(), send, DispatcherMetrics(), clock=lambda: clock[0]
    )
    next_scan = messages[0].arrived_at + timedelta(seconds=SILENCE_SCAN_S)
    for offset, m in enumerate(messages, 1):
        while next_scan <= m.arrived_at:
            clock[0] = next_scan
            await processor.check_silent_sensors()
            next_scan += timedelta(seconds=SILENCE_SCAN_S)
        clock[0] = max(clock[0], m.arrived_at)
        key = m.citizen_id.encode() if m.citizen_id else None
        await processor.handle([Incoming(m.topic, 0, offset, key, m.value)])
    return [Escalation.model_validate_json(p.value) for p in published if p.topic == ESCALATIONS]


async def test_same_escalations_as_the_batch_processor(messages: list[Message]) -> None:
    sim = _simulate(messages, roster=None)
    streamed = await _streaming_escalations(messages)
    simulated = [r.escalation for r in sim.log.escalations]
    assert len(streamed) >= 10  # the cohort exercises the rules, the silence timer included
    assert len({e.severity for e in streamed}) >= 2
    rules = {r.rule_id for e in streamed for r in e.reasons}
    assert {"sensor.silent", "sensor.spo2_low_sustained", "sensor.spo2_low_spot"} <= rules
    assert [e.escalation_id for e in simulated] == [e.escalation_id for e in streamed]
    assert [(e.severity, [r.rule_id for r in e.reasons]) for e in simulated] == [
        (e.severity, [r.rule_id for r in e.reasons]) for e in streamed
    ]
    assert [e.model_dump() for e in simulated] == [e.model_dump() for e in streamed]


def _reference_cases(
    escalations: Sequence[Escalation], contexts: dict[str, CitizenContext], roster: Roster
) -> list[CaseDecision]:
    """The shell's case decisions: ``CaseManager._decide`` with the situation the store reads
    (open case, no silences, roster, stored context JSON, staff load, next page number), and
    the deadline scan's ``on_ack_timeout`` whenever a deadline passes."""
    manager = CaseManager(cast(Any, None), relay=lambda: None)  # _decide reads no pool
    cases: dict[UUID, Case] = {}
    paged: dict[UUID, int] = {}
    out: list[CaseDecision] = []

    def store(decision: CaseDecision) -> None:
        out.append(decision)
        if decision.case is not None:
            cases[decision.case.case_id] = decision.case
            if decision.page is not None:
                paged[decision.case.case_id] = paged.get(decision.case.case_id, 0) + 1

    def scan(until: datetime) -> None:
        while True:
            overdue = sorted(
                (
                    c
                    for c in cases.values()
                    if c.state != CaseState.RESOLVED and c.ack_deadline <= until
                ),
                key=lambda c: (c.ack_deadline, str(c.case_id)),
            )
            due = [c for c in overdue if on_ack_timeout(c, c.ack_deadline, 0) is not None]
            if not due:
                return
            case = due[0]
            decision = on_ack_timeout(case, case.ack_deadline, paged.get(case.case_id, 0) + 1)
            assert decision is not None
            store(decision)

    for esc in escalations:
        now = esc.created_at
        scan(now)
        open_case = next(
            (
                c
                for c in cases.values()
                if c.citizen_id == esc.citizen_id and c.state != CaseState.RESOLVED
            ),
            None,
        )
        load: dict[str, int] = {}
        for c in cases.values():
            if c.state != CaseState.RESOLVED and c.target.staff_id is not None:
                load[c.target.staff_id] = load.get(c.target.staff_id, 0) + 1
        ctx = contexts[esc.citizen_id].model_dump(mode="json")
        seq = paged.get(open_case.case_id, 0) + 1 if open_case else 1
        situation = _Situation(open_case, [], roster, ctx, load, seq)
        store(manager._decide(esc, situation, now))
    return out


def test_same_case_decisions_as_the_case_manager(messages: list[Message], roster: Roster) -> None:
    sim = _simulate(messages, roster)
    escalations = [r.escalation for r in sim.log.escalations]
    # The manager reads municipality and district from the stored context; both come from the
    # discharge, which precedes every escalation of the citizen, so the final contexts serve.
    reference = _reference_cases(escalations, sim.contexts, roster)
    # The simulator ran its deadline timers up to the last message; the reference scans up to
    # the last escalation: compare the decisions both made.
    last = escalations[-1].created_at
    simulated = [d for d in sim.log.decisions if _at(d) <= last]
    assert {d.action for d in simulated} >= {"opened", "re_escalated", "inhibited"}
    assert any(d.page is not None and d.page.kind == "re_escalated" for d in simulated)
    assert simulated == reference


def _at(d: CaseDecision) -> datetime:
    assert d.case is not None
    return d.case.updated_at
