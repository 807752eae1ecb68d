"""Roster-aware routing: competence -> district/municipality -> on shift now -> least load
-> fallback team -> the fixed on-call doctor, each step a function below.

Pure and deterministic (time and load are passed in). Every step of the choice is written down in
``RouteDecision.steps`` so the case history says *why* this nurse got the page, and ``chain`` is
the ordered list of targets the case re-escalates through when nobody acknowledges, ending at
the fixed on-call doctor (as PagerDuty escalation policies and Grafana OnCall chains do).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dispatcher.contract.vocab import Tier
from dispatcher.routing.roster import Roster, StaffMember, Team


@dataclass(frozen=True)
class RouteRequest:
    citizen_id: str
    severity: str
    competence: str
    municipality: str | None
    district: str | None
    palliative: bool = False


@dataclass(frozen=True)
class Target:
    """One rung of the escalation chain: a team, and a person on it when one is on shift."""

    team_id: str
    tier: Tier
    staff_id: str | None
    competence: str

    def as_dict(self) -> dict[str, str | None]:
        return {
            "team_id": self.team_id,
            "tier": self.tier,
            "staff_id": self.staff_id,
            "competence": self.competence,
        }


@dataclass(frozen=True)
class RouteDecision:
    chain: tuple[Target, ...]
    steps: tuple[str, ...] = field(default=())

    @property
    def first(self) -> Target:
        return self.chain[0]


def _on_shift(team: Team, roster: Roster, now: datetime) -> list[StaffMember]:
    """On shift now. Handover is an overlap of two shifts, so both nurses count as on shift and
    the least-load step decides between them."""
    return [m for m in roster.members(team.team_id) if m.on_shift(now)]


def _competent(
    team: Team, on_shift: list[StaffMember], competence: str, steps: list[str]
) -> list[StaffMember]:
    """Those with the competence the case calls for; failing that a general acute nurse (any
    doctor on a doctor team), because a generalist now beats a specialist later."""
    skilled = [m for m in on_shift if competence in m.competences]
    if skilled:
        return skilled
    pool = [m for m in on_shift if "general_acute" in m.competences or team.tier == "doctor"]
    if not pool:
        steps.append(f"{team.team_id}: nobody on shift with {competence} or general_acute")
        return []
    steps.append(f"{team.team_id}: nobody on shift with {competence}; general acute nurse")
    return pool


def _least_loaded(
    team: Team, pool: list[StaffMember], load: Mapping[str, int], steps: list[str]
) -> StaffMember:
    """The one with the fewest open cases, so work spreads; ties go to the lowest staff id so
    the same inputs always choose the same person."""
    chosen = min(pool, key=lambda m: (load.get(m.staff_id, 0), m.staff_id))
    steps.append(
        f"{team.team_id}: {chosen.staff_id} on shift, load {load.get(chosen.staff_id, 0)}"
        f" (lowest of {len(pool)})"
    )
    return chosen


def _pick_staff(
    team: Team,
    roster: Roster,
    competence: str,
    now: datetime,
    *,
    load: Mapping[str, int],
    steps: list[str],
) -> StaffMember | None:
    """The person on ``team`` to page: on shift, competent, least loaded; None when nobody."""
    on_shift = _on_shift(team, roster, now)
    if not on_shift:
        steps.append(f"{team.team_id}: nobody on shift")
        return None
    pool = _competent(team, on_shift, competence, steps)
    if not pool:
        return None
    return _least_loaded(team, pool, load, steps)


def _doctor(roster: Roster, now: datetime, load: Mapping[str, int], steps: list[str]) -> Target:
    """The fixed on-call doctor: the last rung of every chain. The doctor's team is paged even
    when nobody on it is on shift, so the chain never ends without a target."""
    team = roster.team(roster.doctor_team)
    doc = _pick_staff(team, roster, "doctor", now, load=load, steps=steps)
    return Target(team.team_id, "doctor", doc.staff_id if doc else None, "doctor")


def _critical_first(req: RouteRequest) -> bool:
    """A critical case (emergency response) goes straight to the doctor; a palliative citizen
    stays on the palliative pathway even when critical (treatment limitations)."""
    return req.severity == "critical" and not req.palliative


def _pathway(req: RouteRequest, steps: list[str]) -> tuple[Tier, str]:
    """Competence: the tier of team and the competence the case needs."""
    if req.palliative:
        steps.append("palliative pathway: palliative team, never an emergency-call pathway")
        return "palliative", "palliative"
    return "nurse", req.competence


def _covering(req: RouteRequest, roster: Roster, tier: Tier) -> list[Team]:
    return [t for t in roster.teams if t.tier == tier and t.covers(req.municipality, req.district)]


def _area_teams(req: RouteRequest, roster: Roster, tier: Tier, steps: list[str]) -> list[Team]:
    """District/municipality: the teams of ``tier`` covering the citizen, district matches
    before municipality matches, then by id (deterministic). A palliative citizen no palliative
    team covers gets the acute nurses rather than nobody."""
    teams = _covering(req, roster, tier)
    if not teams and req.palliative:
        steps.append("no palliative team covers the citizen: acute nurses instead")
        teams = _covering(req, roster, "nurse")
    if not teams:
        steps.append(
            f"no {tier} team covers district {req.district!r} / municipality {req.municipality!r}"
        )
    return sorted(teams, key=lambda t: (-t.covers(req.municipality, req.district), t.team_id))


def _with_fallbacks(first: Team, roster: Roster) -> list[Team]:
    """A team followed by its fallback, that team's fallback, and so on (stopping at a repeat)."""
    out = [first]
    cur = first
    while cur.fallback is not None:
        cur = roster.team(cur.fallback)
        if cur in out:
            break
        out.append(cur)
    return out


def _escalation_order(teams: list[Team], roster: Roster) -> list[Team]:
    """Fallback team: each covering team is followed by its fallback teams, each team once.
    The doctor's team is left out here: it is always the last rung, added separately."""
    ordered: list[Team] = []
    for team in teams:
        for t in _with_fallbacks(team, roster):
            if t not in ordered and t.team_id != roster.doctor_team:
                ordered.append(t)
    return ordered


def _nurse_rungs(
    ordered: list[Team],
    roster: Roster,
    competence: str,
    now: datetime,
    *,
    load: Mapping[str, int],
    max_rungs: int,
    steps: list[str],
) -> list[Target]:
    """Up to ``max_rungs`` targets, a person from each team in order that has someone to page.
    With nobody on shift anywhere the first team is paged as a team: its channel still reaches
    someone, which beats going straight to the doctor."""
    chain: list[Target] = []
    for team in ordered:
        if len(chain) >= max_rungs:
            break
        member = _pick_staff(team, roster, competence, now, load=load, steps=steps)
        if member is not None:
            chain.append(Target(team.team_id, team.tier, member.staff_id, competence))
    if not chain and ordered:
        steps.append(f"{ordered[0].team_id}: paging the team channel, nobody individually")
        chain.append(Target(ordered[0].team_id, ordered[0].tier, None, competence))
    return chain


def route(
    req: RouteRequest,
    roster: Roster,
    now: datetime,
    *,
    load: Mapping[str, int] | None = None,
    max_nurse_rungs: int = 2,
) -> RouteDecision:
    """Choose the first target and the re-escalation chain for a case, with the reasons.

    The chain holds at most ``max_nurse_rungs`` nurse-level targets (the best match, then the
    fallback team) before the fixed on-call doctor, so an unacknowledged case reaches the doctor
    after at most that many acknowledgement deadlines.
    """
    load = load or {}
    steps: list[str] = []
    if _critical_first(req):
        steps.append("severity critical: the fixed on-call doctor first")
        return RouteDecision(chain=(_doctor(roster, now, load, steps),), steps=tuple(steps))
    tier, competence = _pathway(req, steps)
    ordered = _escalation_order(_area_teams(req, roster, tier, steps), roster)
    chain = _nurse_rungs(
        ordered, roster, competence, now, load=load, max_rungs=max_nurse_rungs, steps=steps
    )
    chain.append(_doctor(roster, now, load, steps))
    steps.append("chain ends at the fixed on-call doctor")
    return RouteDecision(chain=tuple(chain), steps=tuple(steps))
