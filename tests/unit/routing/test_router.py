"""Roster validation and roster-aware routing, as tables of inputs -> expected targets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatcher.routing.roster import RosterError, Shift, parse_roster
from dispatcher.routing.router import RouteRequest, route

# 2026-11-23 is a Monday. 10:00 UTC is 11:00 in Copenhagen (day shift); 22:30 UTC is 23:30
# (night shift, and the 23:00-23:30 evening/night handover is just over).
DAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NIGHT = datetime(2026, 11, 23, 22, 45, tzinfo=UTC)
HANDOVER = datetime(2026, 11, 23, 22, 10, tzinfo=UTC)  # 23:10 local: evening and night overlap

ROSTER = """
doctor_team: doc
teams:
  - {team_id: north, name: North, tier: nurse, municipalities: [Gladsaxe], districts: [Nord],
     fallback: south}
  - {team_id: south, name: South, tier: nurse, municipalities: [Gentofte], districts: [Syd]}
  - {team_id: pall, name: Palliative, tier: palliative, municipalities: [Gladsaxe]}
  - {team_id: doc, name: Doctor, tier: doctor}
staff:
  - {staff_id: n-copd, team_id: north, competences: [copd, general_acute],
     shifts: [{start: "07:00", end: "15:30"}]}
  - {staff_id: n-hf, team_id: north, competences: [heart_failure, general_acute],
     shifts: [{start: "07:00", end: "15:30"}]}
  - {staff_id: n-eve, team_id: north, competences: [general_acute],
     shifts: [{start: "15:00", end: "23:30"}]}
  - {staff_id: n-night, team_id: north, competences: [general_acute],
     shifts: [{start: "23:00", end: "07:30"}]}
  - {staff_id: s-day, team_id: south, competences: [copd, general_acute],
     shifts: [{start: "07:00", end: "15:30"}]}
  - {staff_id: p-day, team_id: pall, competences: [palliative],
     shifts: [{start: "08:00", end: "20:00"}]}
  - {staff_id: d-1, team_id: doc, competences: [doctor], shifts: [{start: "00:00", end: "00:00"}]}
"""


def req(
    severity: str = "high",
    competence: str = "copd",
    district: str | None = "Nord",
    municipality: str | None = "Gladsaxe",
    palliative: bool = False,
) -> RouteRequest:
    return RouteRequest("cit-abc123", severity, competence, municipality, district, palliative)


class TestRoute:
    @pytest.mark.parametrize(
        ("request_", "now", "first"),
        [
            (req(), DAY, ("north", "n-copd")),
            (req(competence="heart_failure"), DAY, ("north", "n-hf")),
            (req(competence="diabetes"), DAY, ("north", "n-copd")),  # general acute, lowest id
            (req(), NIGHT, ("north", "n-night")),
            (req(severity="critical"), DAY, ("doc", "d-1")),
            (req(palliative=True, severity="critical"), DAY, ("pall", "p-day")),
            (req(district=None, municipality="Gentofte"), DAY, ("south", "s-day")),
        ],
        ids=[
            "copd-day",
            "hf-day",
            "no-specialist",
            "night",
            "critical",
            "palliative-critical",
            "by-municipality",
        ],
    )
    def test_first_target(
        self, request_: RouteRequest, now: datetime, first: tuple[str, str]
    ) -> None:
        """The first rung is the competent nurse of the citizen's area on shift now (or the
        doctor when critical, or the palliative team on that pathway)."""
        decision = route(request_, parse_roster(ROSTER), now)
        assert (decision.first.team_id, decision.first.staff_id) == first

    def test_chain_ends_at_the_doctor_after_the_fallback_team(self) -> None:
        """A nurse-level chain goes district team -> fallback team -> the on-call doctor."""
        decision = route(req(), parse_roster(ROSTER), DAY)
        assert [t.team_id for t in decision.chain] == ["north", "south", "doc"]

    def test_least_loaded_nurse_is_chosen(self) -> None:
        """Between two competent nurses on shift, the one with fewer open cases gets it."""
        decision = route(
            req(competence="general_acute"),
            parse_roster(ROSTER),
            DAY,
            load={"n-copd": 3, "n-hf": 1},
        )
        assert decision.first.staff_id == "n-hf"

    def test_handover_overlap_has_both_nurses_on_shift(self) -> None:
        """During the evening/night overlap the less loaded of the two is paged."""
        roster = parse_roster(ROSTER)
        on = {m.staff_id for m in roster.members("north") if m.on_shift(HANDOVER)}
        assert on == {"n-eve", "n-night"}
        decision = route(req(competence="general_acute"), roster, HANDOVER, load={"n-eve": 2})
        assert decision.first.staff_id == "n-night"

    def test_every_choice_is_explained(self) -> None:
        """The decision lists the steps that led to it, naming the chosen nurse."""
        decision = route(req(), parse_roster(ROSTER), DAY)
        assert any("n-copd" in step for step in decision.steps)
        assert decision.steps[-1].startswith("chain ends at the fixed on-call doctor")

    def test_critical_chain_is_the_doctor_alone(self) -> None:
        """A critical case has the on-call doctor as its only rung, no nurse before it."""
        decision = route(req(severity="critical"), parse_roster(ROSTER), DAY)
        assert [(t.team_id, t.staff_id) for t in decision.chain] == [("doc", "d-1")]
        assert decision.steps[0] == "severity critical: the fixed on-call doctor first"

    def test_palliative_citizen_no_palliative_team_covers_gets_acute_nurses(self) -> None:
        """With no palliative team for the citizen's area, the area's acute nurses are paged."""
        decision = route(
            req(palliative=True, district=None, municipality="Gentofte"), parse_roster(ROSTER), DAY
        )
        assert [(t.team_id, t.staff_id) for t in decision.chain] == [
            ("south", "s-day"),
            ("doc", "d-1"),
        ]
        assert "no palliative team covers the citizen: acute nurses instead" in decision.steps

    def test_uncovered_citizen_goes_to_the_doctor(self) -> None:
        """When no team covers the citizen's area the chain is only the on-call doctor."""
        decision = route(
            req(district="Elsewhere", municipality="Nowhere"), parse_roster(ROSTER), DAY
        )
        assert [t.team_id for t in decision.chain] == ["doc"]
        assert (
            "no nurse team covers district 'Elsewhere' / municipality 'Nowhere'" in decision.steps
        )

    def test_nobody_on_shift_pages_the_team_channel(self) -> None:
        """With nobody of the covering teams on shift, the first team is paged as a team."""
        decision = route(req(district=None, municipality="Gentofte"), parse_roster(ROSTER), NIGHT)
        assert (decision.first.team_id, decision.first.staff_id) == ("south", None)
        assert "south: paging the team channel, nobody individually" in decision.steps

    def test_nurse_rungs_are_capped(self) -> None:
        """``max_nurse_rungs`` bounds the nurses before the doctor, so the doctor comes sooner."""
        decision = route(req(), parse_roster(ROSTER), DAY, max_nurse_rungs=1)
        assert [t.team_id for t in decision.chain] == ["north", "doc"]


class TestShift:
    def test_overnight_shift_belongs_to_its_start_day(self) -> None:
        """A Monday-only 23:00-07:30 shift covers Monday night and Tuesday early morning only."""
        shift = Shift(weekdays=[0], start="23:00", end="07:30")  # type: ignore[arg-type]
        assert shift.covers(datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # Mon 23:30 local
        assert shift.covers(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # Tue 06:00 local
        assert not shift.covers(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))  # Mon 06:00 local


class TestRosterValidation:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            (("doctor_team: doc", "doctor_team: nobody"), "undefined team 'nobody'"),
            (("fallback: south}", "fallback: west}"), "undefined team 'west'"),
            (
                ("team_id: north, competences", "team_id: east, competences"),
                "undefined team 'east'",
            ),
            (("competences: [doctor]", "competences: [surgery]"), "unknown competence"),
            (("tier: doctor}", "tier: nurse}"), "must have tier 'doctor'"),
        ],
    )
    def test_bad_roster_is_refused_with_the_reason(
        self, change: tuple[str, str], message: str
    ) -> None:
        """Cross references and vocabularies are checked at load, naming what is wrong."""
        with pytest.raises(RosterError) as err:
            parse_roster(ROSTER.replace(*change, 1), "roster.yaml")
        assert message in str(err.value)
        assert "roster.yaml" in str(err.value)

    def test_fallback_cycle_is_refused(self) -> None:
        """Teams falling back to each other in a circle are a load error."""
        text = ROSTER.replace("districts: [Syd]}", "districts: [Syd], fallback: north}")
        with pytest.raises(RosterError, match="cycle"):
            parse_roster(text)
