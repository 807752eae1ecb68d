"""Issue 11 item 4: per citizen, events are decided in occurred_at order across the three topics,
and a discharge that arrives after observations it precedes re-assesses them (pure: planner)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.cli.rules import assess_lines, run_rules_test
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.planner import (
    BatchPlan,
    Incoming,
    decode_batch,
    plan_batch,
    reassessment_escalation_id,
)
from dispatcher.rules import recent
from dispatcher.rules.context import CitizenContext
from dispatcher.rules.recent import RecentObservation
from dispatcher.rules.ruleset import default_ruleset
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
Message = tuple[str, dict[str, Any]]


def _incoming(messages: list[Message], first_offset: int = 0) -> list[Incoming]:
    return [
        Incoming(
            topic, n % 2, first_offset + n, body["citizen_id"].encode(), json.dumps(body).encode()
        )
        for n, (topic, body) in enumerate(messages)
    ]


def _plan(
    messages: list[Message],
    contexts: dict[str, CitizenContext] | None = None,
    seen: set[UUID] | None = None,
    first_offset: int = 0,
) -> BatchPlan:
    accepted, dead = decode_batch(_incoming(messages, first_offset), NOW)
    assert not dead, [d.errors for d in dead]
    return plan_batch(accepted, dead, seen or set(), contexts or {}, NOW)


def _news2_3(cid: str, at: datetime) -> dict[str, Any]:
    """A complete set scoring NEWS2 3 (RR 21: 2, temperature 38.5: 1): no page on its own,
    medium within the post-discharge window."""
    return helpers.observation(cid, at, respiration_rate=21, temperature=38.5)


class TestOrderWithinABatch:
    def test_observation_fetched_first_is_decided_after_the_earlier_discharge(self) -> None:
        """The issue's case: an observation and the discharge before it, in one batch with the
        observation first (another partition came back first). The discharge is decided first,
        so the observation gets SpO2 scale 2 and the post-discharge rule."""
        cid = helpers.citizen()
        dis = helpers.discharge(
            cid, NOW - timedelta(minutes=30), flags=["hypercapnic_respiratory_failure"]
        )
        obs = _news2_3(cid, NOW - timedelta(minutes=5))
        plan = _plan([(NURSE_OBSERVATIONS, obs), (DISCHARGES, dis)])
        # Audit rows keep consumption order (audit_seq follows each partition's offsets) ...
        assert [str(a.event.event_id) for a in plan.audits] == [obs["event_id"], dis["event_id"]]
        a = plan.audits[0].assessment
        # ... but the observation was decided with the discharge.
        assert a.news2 is not None
        assert a.news2.scale == 2
        assert "post_discharge.news2" in {r.rule_id for r in a.reasons}
        assert [e.triggered_by for e in plan.escalations] == [[UUID(obs["event_id"])]]

    def test_at_equal_times_the_discharge_comes_first(self) -> None:
        """Same occurred_at: the discharge (context) is decided before the observation."""
        cid = helpers.citizen()
        at = NOW - timedelta(minutes=1)
        obs = _news2_3(cid, at)
        dis = helpers.discharge(cid, at)
        plan = _plan([(NURSE_OBSERVATIONS, obs), (DISCHARGES, dis)])
        assert plan.audits[0].assessment.escalate

    def test_later_discharge_in_the_batch_re_assesses_the_observation(self) -> None:
        """Discharged before the observation but published after it: the observation is
        decided first (occurred_at order), then the discharge re-assesses it and escalates."""
        cid = helpers.citizen()
        obs = _news2_3(cid, NOW - timedelta(minutes=20))
        dis = helpers.discharge(cid, NOW - timedelta(minutes=10))  # discharged 2 h before
        plan = _plan([(DISCHARGES, dis), (NURSE_OBSERVATIONS, obs)])
        assert not plan.audits[1].assessment.escalate
        [esc] = plan.escalations
        assert esc.escalation_id == reassessment_escalation_id(
            UUID(obs["event_id"]), UUID(dis["event_id"])
        )

    def test_citizens_are_independent_and_stable(self) -> None:
        """Two citizens interleaved: each keeps its own occurred_at order; a sensor reading
        and an observation at the same time keep batch order."""
        a, b = helpers.citizen(), helpers.citizen()
        at = NOW - timedelta(minutes=3)
        msgs: list[Message] = [
            (SENSOR_READINGS, helpers.sensor(a, "pulse", 70, "/min", at)),
            (NURSE_OBSERVATIONS, helpers.observation(b, at)),
            (NURSE_OBSERVATIONS, helpers.observation(a, at)),
            (SENSOR_READINGS, helpers.sensor(b, "pulse", 70, "/min", at - timedelta(minutes=1))),
        ]
        plan = _plan(msgs)
        assert [x.incoming.offset for x in plan.audits] == [0, 1, 2, 3]
        assert plan.contexts[a].last_observation_at == at
        assert plan.contexts[b].last_sensor_at == at - timedelta(minutes=1)

    @settings(max_examples=50, deadline=None)
    @given(st.permutations(range(4)))
    def test_any_arrival_order_decides_the_same(self, order: list[int]) -> None:
        """Whatever order a discharge, two observations and a reading arrive in within a
        batch, every assessment and the final context are the same."""
        cid = "cit-orderx01"
        ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(4)]
        msgs: list[Message] = [
            (DISCHARGES, {**helpers.discharge(cid, NOW - timedelta(hours=3)), "event_id": ids[0]}),
            (NURSE_OBSERVATIONS, {**_news2_3(cid, NOW - timedelta(hours=2)), "event_id": ids[1]}),
            (
                SENSOR_READINGS,
                {
                    **helpers.sensor(cid, "spo2", 95, "%", NOW - timedelta(hours=1)),
                    "event_id": ids[2],
                },
            ),
            (
                NURSE_OBSERVATIONS,
                {**helpers.deteriorating(cid, NOW - timedelta(minutes=1)), "event_id": ids[3]},
            ),
        ]
        reference = _plan(msgs)
        shuffled = _plan([msgs[i] for i in order])
        by_id = {a.event.event_id: a.assessment for a in reference.audits}
        assert {a.event.event_id: a.assessment for a in shuffled.audits} == by_id
        assert shuffled.contexts == reference.contexts
        assert sorted(e.escalation_id for e in shuffled.escalations) == sorted(
            e.escalation_id for e in reference.escalations
        )


class TestLateDischarge:
    def _first_batch(self, cid: str, obs: dict[str, Any]) -> BatchPlan:
        plan = _plan([(NURSE_OBSERVATIONS, obs)])
        assert plan.escalations == []
        return plan

    def test_late_discharge_re_assesses_and_escalates_once(self) -> None:
        """Batch 1: a NEWS2-3 observation, no context: no page. Batch 2: the discharge from
        the hour before it. The observation is re-assessed with the discharge (post-discharge
        vigilance: medium) and escalates, with an id derived from both events."""
        cid = helpers.citizen()
        obs = _news2_3(cid, NOW - timedelta(minutes=30))
        first = self._first_batch(cid, obs)
        dis = helpers.discharge(cid, NOW - timedelta(minutes=5))  # discharged 2 h before NOW
        dis["discharged_at"] = (NOW - timedelta(hours=1)).isoformat()
        second = _plan([(DISCHARGES, dis)], first.contexts, {UUID(obs["event_id"])}, 1)
        [esc] = second.escalations
        assert esc.severity == "medium"
        assert esc.escalation_id == reassessment_escalation_id(
            UUID(obs["event_id"]), UUID(dis["event_id"])
        )
        assert esc.triggered_by == [UUID(obs["event_id"]), UUID(dis["event_id"])]
        assert "post_discharge.news2" in {r.rule_id for r in esc.reasons}
        [audit] = second.audits
        assert audit.outcome == "context_updated"
        assert any("now medium (escalated)" in n for n in audit.assessment.notes)
        assert audit.assessment.notes[-1].startswith("Decision:")
        # Deterministic: planning the same batch again gives the same escalation id ...
        again = _plan([(DISCHARGES, dis)], first.contexts, {UUID(obs["event_id"])}, 1)
        assert [e.escalation_id for e in again.escalations] == [esc.escalation_id]
        # ... and a replay of the discharge is a duplicate: nothing new.
        replay = _plan(
            [(DISCHARGES, dis)],
            second.contexts,
            {UUID(obs["event_id"]), UUID(dis["event_id"])},
            2,
        )
        assert replay.escalations == []
        # A second, different discharge does not page again at the same severity.
        dis2 = helpers.discharge(cid, NOW - timedelta(minutes=4))
        dis2["discharged_at"] = (NOW - timedelta(hours=1)).isoformat()
        third = _plan([(DISCHARGES, dis2)], second.contexts, set(), 3)
        assert third.escalations == []
        assert third.contexts[cid].recent_observations[-1].severity == "medium"

    def test_discharge_after_the_observation_does_not_re_assess_it(self) -> None:
        """discharged_at after the observation: the citizen was still in hospital (or the
        observation is from before this stay), so nothing is re-assessed."""
        cid = helpers.citizen()
        obs = _news2_3(cid, NOW - timedelta(hours=3))
        first = self._first_batch(cid, obs)
        dis = helpers.discharge(cid, NOW)  # discharged 2 h before NOW, after the observation
        second = _plan([(DISCHARGES, dis)], first.contexts, set(), 1)
        assert second.escalations == []
        assert not any("Re-assessed" in n for n in second.audits[0].assessment.notes)

    def test_unchanged_or_better_outcome_does_not_page(self) -> None:
        """A worried nurse's observation paged medium; the discharge leaves it medium: no new
        page, and the discharge's note says nothing got worse."""
        cid = helpers.citizen()
        obs = helpers.observation(cid, NOW - timedelta(minutes=30), worried=True)
        first = _plan([(NURSE_OBSERVATIONS, obs)])
        assert [e.severity for e in first.escalations] == ["medium"]
        dis = helpers.discharge(cid, NOW - timedelta(minutes=5))
        dis["discharged_at"] = (NOW - timedelta(hours=1)).isoformat()
        second = _plan([(DISCHARGES, dis)], first.contexts, set(), 1)
        assert second.escalations == []
        assert any("no outcome got worse" in n for n in second.audits[0].assessment.notes)

    def test_observation_past_the_maximum_age_is_not_re_assessed(self) -> None:
        """A remembered observation that is now older than 24 h would not page: skipped."""
        cid = helpers.citizen()
        obs = _news2_3(cid, NOW - timedelta(hours=25))
        first = _plan([(NURSE_OBSERVATIONS, obs)])  # stale by age: not remembered either
        assert first.contexts[cid].recent_observations == ()
        entry = RecentObservation.of(
            first.audits[0].event,
            "low",  # type: ignore[arg-type]
        )
        ctx = first.contexts[cid].model_copy(update={"recent_observations": (entry,)})
        dis = helpers.discharge(cid, NOW - timedelta(minutes=5))
        dis["discharged_at"] = (NOW - timedelta(hours=30)).isoformat()
        assert _plan([(DISCHARGES, dis)], {cid: ctx}, set(), 1).escalations == []


class TestBoundedWindow:
    def test_keeps_the_newest_three_of_the_last_24_hours(self) -> None:
        """At most KEEP observations, none more than WINDOW older than the newest."""
        cid = helpers.citizen()
        times = [NOW - timedelta(hours=h) for h in (30, 20, 3, 2, 1)]
        ctx: CitizenContext | None = None
        for n, at in enumerate(times):
            obs = helpers.observation(cid, at)
            plan = _plan([(NURSE_OBSERVATIONS, obs)], {cid: ctx} if ctx else None, None, n)
            ctx = plan.contexts[cid]
        assert ctx is not None
        assert [r.at for r in ctx.recent_observations] == times[-recent.KEEP :]

    def test_a_remembered_observation_round_trips(self) -> None:
        """The compact entry rebuilds the observation (decimals and dropped vitals included)
        and survives the context's JSON round trip (PostgreSQL stores it as JSON)."""
        cid = helpers.citizen()
        obs = helpers.observation(cid, NOW, spo2=88.5, pulse="fast", consciousness="C")
        plan = _plan([(NURSE_OBSERVATIONS, obs)])
        ctx = plan.contexts[cid]
        assert CitizenContext.model_validate_json(ctx.model_dump_json()) == ctx
        [entry] = ctx.recent_observations
        rebuilt = entry.observation(cid)
        assert rebuilt.spo2 == 88.5
        assert rebuilt.consciousness == "C"
        assert [d.field for d in rebuilt.dropped] == ["pulse"]
        assert len(entry.model_dump_json()) < 260

    def test_worst_case_window_stays_small(self) -> None:
        """KEEP entries with every vital, a 64-character observer and dropped names: < 1 KB."""
        entry = RecentObservation(
            event_id=UUID("0b0f7c1e-3d7a-4c55-9f2a-1c4b8e2d9a01"),
            at=NOW.replace(microsecond=123456),
            severity="critical",
            observer="n" * 64,
            vitals=(123.456, 123.456, False, 123.456, 123.456, "A", 123.456),
            worried=True,
            dropped=("respiration_rate", "spo2"),
        )
        ctx = CitizenContext(citizen_id="cit-abc123", recent_observations=(entry,) * recent.KEEP)
        empty = CitizenContext(citizen_id="cit-abc123")
        assert len(ctx.model_dump_json()) - len(empty.model_dump_json()) < 1024


class TestCliAgrees:
    def test_rules_test_decides_like_the_batch(self, tmp_path: Any) -> None:
        """`rules test` with the observation before the discharge in the file decides the
        discharge first, as plan_batch does; a late-published discharge shows what it
        re-assessed, with the escalation id plan_batch stores."""
        cid = helpers.citizen()
        msgs: list[Message] = [
            (NURSE_OBSERVATIONS, _news2_3(cid, NOW - timedelta(minutes=20))),
            (DISCHARGES, helpers.discharge(cid, NOW - timedelta(minutes=10))),
            (NURSE_OBSERVATIONS, _news2_3(cid, NOW - timedelta(minutes=5))),
        ]
        streamed = _plan(msgs)
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join(json.dumps(b) for _, b in msgs) + "\n")
        out = io.StringIO()
        run_rules_test(out, event=str(path), context=None, rules=None, now=NOW, as_json=True)
        docs = json.loads(out.getvalue())
        assert [d["assessment"] for d in docs] == [
            a.assessment.model_dump(mode="json") for a in streamed.audits
        ]
        [reassessed] = docs[1]["reassessed"]
        assert reassessed["escalation_id"] in {str(e.escalation_id) for e in streamed.escalations}
        assert reassessed["assessment"]["severity"] == "medium"

    def test_assess_decides_lines_in_occurred_at_order(self) -> None:
        """`dispatcher assess` decides its lines like one batch: an earlier observation on a
        later line is not stale."""
        cid = helpers.citizen()
        newer = helpers.observation(cid, NOW - timedelta(minutes=1))
        older = helpers.observation(cid, NOW - timedelta(minutes=30), worried=True)
        msgs: list[Message] = [(NURSE_OBSERVATIONS, newer), (NURSE_OBSERVATIONS, older)]
        streamed = _plan(msgs)
        docs = list(assess_lines([json.dumps(b) for _, b in msgs], {}, NOW, default_ruleset()))
        for doc, audit in zip(docs, streamed.audits, strict=True):
            expected = audit.assessment.model_dump(mode="json")
            assert {k: doc[k] for k in expected} == expected
        assert docs[1]["escalate"] is True
