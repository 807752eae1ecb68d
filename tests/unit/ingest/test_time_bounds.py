"""Issue 11 item 3: every timestamp has bounds; an event past its topic's maximum age is shown,
never paged (pure: decoding and the planner, no clock)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher.cli.rules import run_rules_test
from dispatcher.contract.topics import DISCHARGES, NURSE_OBSERVATIONS, SENSOR_READINGS
from dispatcher.ingest.decoding import (
    MAX_EVENT_AGE_BY_TOPIC,
    MAX_FUTURE_SKEW,
    Decoded,
    Rejected,
    decode,
    past_max_age,
)
from dispatcher.ingest.planner import BatchPlan, Incoming, decode_batch, plan_batch
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _raw(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _plan(*messages: tuple[str, dict[str, Any]], now: datetime = NOW) -> BatchPlan:
    batch = [
        Incoming(topic, 0, n, str(body["citizen_id"]).encode(), _raw(body))
        for n, (topic, body) in enumerate(messages)
    ]
    accepted, dead = decode_batch(batch, now)
    assert not dead, [d.errors for d in dead]
    return plan_batch(accepted, dead, set(), {}, now)


class TestHardBounds:
    def test_discharge_in_2099_is_refused_naming_discharged_at(self) -> None:
        """A discharge whose discharged_at is in 2099 is a dead letter: accepted, it would freeze
        the citizen's context (an older discharge never overwrites a newer one)."""
        body = helpers.discharge("cit-abc123", NOW)
        body["discharged_at"] = "2099-01-01T00:00:00+00:00"
        result = decode(DISCHARGES, _raw(body), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["discharged_at"]
        assert "future" in result.errors[0].reason
        assert str(result.event_id) == body["event_id"]

    def test_discharged_at_within_the_skew_is_accepted(self) -> None:
        """Clock skew up to MAX_FUTURE_SKEW is tolerated, as for occurred_at."""
        body = helpers.discharge("cit-abc123", NOW)
        body["discharged_at"] = (NOW + MAX_FUTURE_SKEW - timedelta(seconds=1)).isoformat()
        assert isinstance(decode(DISCHARGES, _raw(body), NOW), Decoded)

    def test_ancient_discharged_at_is_refused(self) -> None:
        """discharged_at older than the hard maximum age (a year) is refused too."""
        body = helpers.discharge("cit-abc123", NOW)
        body["discharged_at"] = (NOW - 400 * DAY).isoformat()
        result = decode(DISCHARGES, _raw(body), NOW)
        assert isinstance(result, Rejected)
        assert result.errors[0].field == "discharged_at"
        assert "older" in result.errors[0].reason

    def test_follow_up_due_by_is_bounded(self) -> None:
        """A follow-up may be due next week, not in 2099: the error names the follow-up."""
        body = helpers.discharge("cit-abc123", NOW)
        body["follow_up"] = [
            {"action": "home visit", "due_by": (NOW + 7 * DAY).isoformat()},
            {"action": "phone call", "due_by": "2099-01-01T00:00:00+00:00"},
        ]
        result = decode(DISCHARGES, _raw(body), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["follow_up.1.due_by"]

    def test_every_bad_timestamp_is_named(self) -> None:
        """occurred_at and discharged_at both in the future: both errors, occurred_at first."""
        body = helpers.discharge("cit-abc123", NOW + 2 * DAY)
        body["discharged_at"] = (NOW + 3 * DAY).isoformat()
        result = decode(DISCHARGES, _raw(body), NOW)
        assert isinstance(result, Rejected)
        assert [e.field for e in result.errors] == ["occurred_at", "discharged_at"]


class TestMaximumAgeByTopic:
    @pytest.mark.parametrize("topic", [SENSOR_READINGS, NURSE_OBSERVATIONS])
    def test_vitals_have_a_24_hour_maximum_age(self, topic: str) -> None:
        """Readings and observations are stale past 24 h; just inside, they are not."""
        assert MAX_EVENT_AGE_BY_TOPIC[topic] == timedelta(hours=24)
        assert past_max_age(topic, NOW - timedelta(hours=24, seconds=1), NOW) == timedelta(hours=24)
        assert past_max_age(topic, NOW - timedelta(hours=23, minutes=59), NOW) is None

    def test_discharges_may_be_older(self) -> None:
        """A discharge has no maximum age beyond the hard one: it is context."""
        assert past_max_age(DISCHARGES, NOW - 200 * DAY, NOW) is None

    def test_ten_day_old_critical_observation_is_audited_and_never_pages(self) -> None:
        """The issue's case: a 10-day-old NEWS2-11 observation paged CRITICAL. Now it is
        audited, its assessment is stale and says why, the rules it matched are suppressed, and
        nothing escalates."""
        cid = helpers.citizen()
        plan = _plan((NURSE_OBSERVATIONS, helpers.deteriorating(cid, NOW - 10 * DAY)))
        assert plan.escalations == []
        [audit] = plan.audits
        a = audit.assessment
        assert audit.outcome == "assessed"
        assert (a.escalate, a.severity, a.stale, a.reasons) == (False, "low", True, [])
        assert "news2.high" in {r.rule_id for r in a.suppressed}
        assert a.response_deadline is None
        assert any("maximum age of 24.0 h" in n for n in a.notes)
        assert a.notes[-1].startswith("Decision: not paged - stale event past the maximum age")
        assert a.news2 is not None
        assert a.news2.total == 11  # still scored, for the record

    def test_a_day_old_fall_alarm_never_pages(self) -> None:
        """A fall alarm that arrives 25 h late is shown, not paged."""
        cid = helpers.citizen()
        fall = helpers.sensor(cid, "fall", 1, "1", NOW - timedelta(hours=25))
        plan = _plan((SENSOR_READINGS, fall))
        assert plan.escalations == []
        assert plan.audits[0].assessment.stale
        assert [r.rule_id for r in plan.audits[0].assessment.suppressed] == ["sensor.fall"]

    def test_a_recent_observation_still_pages(self) -> None:
        """23 hours old is inside the bound: it escalates as before."""
        cid = helpers.citizen()
        plan = _plan((NURSE_OBSERVATIONS, helpers.deteriorating(cid, NOW - timedelta(hours=23))))
        assert [e.severity for e in plan.escalations] == ["critical"]
        assert not plan.audits[0].assessment.stale

    def test_a_stale_event_still_enters_the_history(self) -> None:
        """A late weight is still a weight: it is folded into the context (the trend of the
        next one uses it), only its own assessment never pages."""
        cid = helpers.citizen()
        plan = _plan((SENSOR_READINGS, helpers.sensor(cid, "weight", 80.0, "kg", NOW - 2 * DAY)))
        assert [w.value for w in plan.contexts[cid].weights] == [80.0]

    def test_old_discharge_is_applied(self) -> None:
        """A discharge 10 days old is accepted and updates the context."""
        cid = helpers.citizen()
        plan = _plan((DISCHARGES, helpers.discharge(cid, NOW - 10 * DAY, flags=["palliative"])))
        assert plan.audits[0].outcome == "context_updated"
        assert plan.contexts[cid].palliative


class TestCliAgrees:
    def test_rules_test_gives_the_streaming_assessment_of_a_stale_event(
        self, tmp_path: Any
    ) -> None:
        """`dispatcher rules test` decides through the same bound: same stale assessment."""
        cid = helpers.citizen()
        body = helpers.deteriorating(cid, NOW - 10 * DAY)
        streamed = _plan((NURSE_OBSERVATIONS, body)).audits[0].assessment
        path = tmp_path / "event.json"
        path.write_text(json.dumps(body))
        out = io.StringIO()
        run_rules_test(out, event=str(path), context=None, rules=None, now=NOW, as_json=True)
        [doc] = json.loads(out.getvalue())
        assert doc["assessment"] == streamed.model_dump(mode="json")
        assert doc["route"] is None
