"""Router edges the table tests in test_router.py left open (found by ``make mutation``):
request defaults, the generalist pool on a nurse team, load of staff with no open case,
district-before-municipality order, fallback de-duplication and the nurse-rung cap."""

from __future__ import annotations

from datetime import UTC, datetime

from dispatcher.routing.roster import parse_roster
from dispatcher.routing.router import RouteRequest, route

DAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday, 11:00 in Copenhagen

ALL_DAY = '[{start: "07:00", end: "15:30"}]'

ROSTER = f"""
doctor_team: doc
teams:
  - {{team_id: a-muni, name: A, tier: nurse, municipalities: [Gladsaxe], fallback: shared}}
  - {{team_id: z-district, name: Z, tier: nurse, municipalities: [Other], districts: [Nord],
     fallback: shared}}
  - {{team_id: shared, name: Shared, tier: nurse, municipalities: [Nowhere], fallback: doc}}
  - {{team_id: doc, name: Doctor, tier: doctor}}
staff:
  - {{staff_id: a-1, team_id: a-muni, competences: [general_acute], shifts: {ALL_DAY}}}
  - {{staff_id: z-1, team_id: z-district, competences: [general_acute], shifts: {ALL_DAY}}}
  - {{staff_id: s-1, team_id: shared, competences: [general_acute], shifts: {ALL_DAY}}}
  - {{staff_id: d-1, team_id: doc, competences: [doctor], shifts: {ALL_DAY}}}
"""


def request(**kw: object) -> RouteRequest:
    base: dict[str, object] = {
        "citizen_id": "cit-abc123",
        "severity": "high",
        "competence": "copd",
        "municipality": "Gladsaxe",
        "district": "Nord",
    }
    base.update(kw)
    return RouteRequest(**base)  # type: ignore[arg-type]


def teams(decision: object) -> list[str]:
    return [t.team_id for t in decision.chain]  # type: ignore[attr-defined]


class TestDefaults:
    def test_a_request_is_not_palliative_unless_it_says_so(self) -> None:
        """Without ``palliative`` a critical case goes to the doctor (the default is False)."""
        decision = route(request(severity="critical"), parse_roster(ROSTER), DAY)
        assert teams(decision) == ["doc"]

    def test_at_most_two_nurse_rungs_by_default(self) -> None:
        """Three nurse teams could take the case; the default cap keeps two before the doctor."""
        decision = route(request(), parse_roster(ROSTER), DAY)
        assert teams(decision) == ["z-district", "shared", "doc"]
        assert len(route(request(), parse_roster(ROSTER), DAY, max_nurse_rungs=3).chain) == 4


class TestOrder:
    def test_district_match_before_municipality_match_whatever_the_ids(self) -> None:
        """z-district covers the district, a-muni only the municipality: z-district first,
        although 'a-muni' sorts first by id."""
        decision = route(request(), parse_roster(ROSTER), DAY, max_nurse_rungs=1)
        assert teams(decision) == ["z-district", "doc"]

    def test_a_shared_fallback_appears_once_and_the_doctor_only_last(self) -> None:
        """Each covering team is followed by its fallbacks; both fall back to 'shared', which
        falls back to the doctor's team: 'shared' is one rung, the doctor only the last."""
        decision = route(request(), parse_roster(ROSTER), DAY, max_nurse_rungs=10)
        assert teams(decision) == ["z-district", "shared", "a-muni", "doc"]


class TestStaffChoice:
    def test_a_nurse_without_the_competence_or_general_acute_is_not_paged(self) -> None:
        """On a nurse team only a generalist stands in for a missing specialist (any doctor
        does on the doctor's team): a heart-failure-only nurse is not paged for COPD."""
        roster = parse_roster(
            f"""
doctor_team: doc
teams:
  - {{team_id: north, name: N, tier: nurse, districts: [Nord], municipalities: [Gladsaxe]}}
  - {{team_id: doc, name: Doctor, tier: doctor}}
staff:
  - {{staff_id: n-hf, team_id: north, competences: [heart_failure], shifts: {ALL_DAY}}}
  - {{staff_id: d-1, team_id: doc, competences: [heart_failure], shifts: {ALL_DAY}}}
"""
        )
        decision = route(request(), roster, DAY)
        assert [(t.team_id, t.staff_id) for t in decision.chain] == [
            ("north", None),  # the team channel, nobody individually
            ("doc", "d-1"),  # a doctor without the 'doctor' competence still counts
        ]
        assert any("nobody on shift with copd or general_acute" in s for s in decision.steps)

    def test_staff_missing_from_the_load_map_count_as_zero_open_cases(self) -> None:
        """a-1 has no entry (no open case), b-1 has zero: a tie, so the lowest id, a-1."""
        roster = parse_roster(
            f"""
doctor_team: doc
teams:
  - {{team_id: north, name: N, tier: nurse, districts: [Nord], municipalities: [Gladsaxe]}}
  - {{team_id: doc, name: Doctor, tier: doctor}}
staff:
  - {{staff_id: a-1, team_id: north, competences: [copd], shifts: {ALL_DAY}}}
  - {{staff_id: b-1, team_id: north, competences: [copd], shifts: {ALL_DAY}}}
  - {{staff_id: d-1, team_id: doc, competences: [doctor], shifts: {ALL_DAY}}}
"""
        )
        decision = route(request(), roster, DAY, load={"b-1": 0})
        assert decision.first.staff_id == "a-1"
        assert "north: a-1 on shift, load 0 (lowest of 2)" in decision.steps
