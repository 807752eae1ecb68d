"""Roster-aware routing: competence -> district/municipality -> on shift now -> least load.

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


def _pick_staff(
    team: Team,
    roster: Roster,
    competence: str,
    now: datetime,
    *,
    load: Mapping[str, int],
    steps: list[str],
) -> StaffMember | None:
    on_shift = [m for m in roster.members(team.team_id) if m.on_shift(now)]
    if not on_shift:
        steps.append(f"{team.team_id}: nobody on shift")
        return None
    skilled = [m for m in on_shift if competence in m.competences]
    pool = skilled
    if not skilled:
        pool = [m for m in on_shift if "general_acute" in m.competences or team.tier == "doctor"]
        if not pool:
            steps.append(f"{team.team_id}: nobody on shift with {competence} or general_acute")
            return None
        steps.append(f"{team.team_id}: nobody on shift with {competence}; general acute nurse")
    chosen = min(pool, key=lambda m: (load.get(m.staff_id, 0), m.staff_id))
    steps.append(
        f"{team.team_id}: {chosen.staff_id} on shift, load {load.get(chosen.staff_id, 0)}"
        f" (lowest of {len(pool)})"
    )
    return chosen


def _doctor(roster: Roster, now: datetime, load: Mapping[str, int], steps: list[str]) -> Target:
    team = roster.team(roster.doctor_team)
    doc = _pick_staff(team, roster, "doctor", now, load=load, steps=steps)
    return Target(team.team_id, "doctor", doc.staff_id if doc else None, "doctor")


def _with_fallbacks(first: Team, roster: Roster) -> list[Team]:
    out = [first]
    cur = first
    while cur.fallback is not None:
        cur = roster.team(cur.fallback)
        if cur in out:
            break
        out.append(cur)
    return out


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
    doctor_target: Target | None = None

    if req.severity == "critical" and not req.palliative:
        steps.append("severity critical: the fixed on-call doctor first")
        doctor_target = _doctor(roster, now, load, steps)
        return RouteDecision(chain=(doctor_target,), steps=tuple(steps))

    wanted_tier: Tier = "palliative" if req.palliative else "nurse"
    competence = "palliative" if req.palliative else req.competence
    if req.palliative:
        steps.append("palliative pathway: palliative team, never an emergency-call pathway")

    candidates = sorted(
        (
            t
            for t in roster.teams
            if t.tier == wanted_tier and t.covers(req.municipality, req.district)
        ),
        key=lambda t: (-t.covers(req.municipality, req.district), t.team_id),
    )
    if not candidates and req.palliative:
        steps.append("no palliative team covers the citizen: acute nurses instead")
        candidates = sorted(
            (
                t
                for t in roster.teams
                if t.tier == "nurse" and t.covers(req.municipality, req.district)
            ),
            key=lambda t: (-t.covers(req.municipality, req.district), t.team_id),
        )
    if not candidates:
        steps.append(
            f"no {wanted_tier} team covers district {req.district!r} / municipality "
            f"{req.municipality!r}"
        )

    chain: list[Target] = []
    ordered: list[Team] = []
    for team in candidates:
        for t in _with_fallbacks(team, roster):
            if t not in ordered and t.team_id != roster.doctor_team:
                ordered.append(t)
    for team in ordered:
        if len(chain) >= max_nurse_rungs:
            break
        member = _pick_staff(team, roster, competence, now, load=load, steps=steps)
        if member is not None:
            chain.append(Target(team.team_id, team.tier, member.staff_id, competence))
    if not chain and ordered:
        # Nobody on shift anywhere: page the team itself (its channel still reaches someone)
        steps.append(f"{ordered[0].team_id}: paging the team channel, nobody individually")
        chain.append(Target(ordered[0].team_id, ordered[0].tier, None, competence))
    doctor_target = _doctor(roster, now, load, steps)
    chain.append(doctor_target)
    steps.append("chain ends at the fixed on-call doctor")
    return RouteDecision(chain=tuple(chain), steps=tuple(steps))
