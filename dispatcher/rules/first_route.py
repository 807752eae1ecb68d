"""First routing: which tier, team and competence should take an escalation.

A deliberately small first version (the full roster-aware router is its own piece of work):

* critical (emergency response) -> the fixed on-call doctor;
* palliative citizens -> the palliative pathway, never an emergency-call pathway;
* otherwise -> the acute-team nurses of the citizen's district, with the competence the
  citizen's conditions call for.
"""

from __future__ import annotations

from dispatcher.contract.events import Route
from dispatcher.rules.assessment import Assessment
from dispatcher.rules.context import CitizenContext

ON_CALL_DOCTOR_TEAM = "on-call-doctor"
UNKNOWN_DISTRICT = "unassigned"


# A team name is contract ShortText (at most 120 characters); a district name may be up to
# 120 characters itself, so the district part is cut to fit (a name that long is a data error,
# and a page must still go out: a rule error would dead-letter the escalation).
MAX_TEAM_NAME = 120
_TEAM_PREFIX = "acute-nurses-"
_DISTRICT_ROOM = MAX_TEAM_NAME - len(_TEAM_PREFIX)  # the longer prefix of the two


def district_team(ctx: CitizenContext) -> str:
    district = (ctx.district or UNKNOWN_DISTRICT).lower().replace(" ", "-")
    return f"{_TEAM_PREFIX}{district[:_DISTRICT_ROOM]}"


def first_route(assessment: Assessment, ctx: CitizenContext) -> Route:
    """Pick the route for an escalating assessment, and say why."""
    if assessment.competence == "palliative":
        return Route(
            tier="palliative",
            team=f"palliative-{district_team(ctx).removeprefix('acute-nurses-')}",
            competence="palliative",
            reason="Citizen is on a palliative pathway (discharge flag): palliative team, "
            "treatment limitations respected.",
        )
    if assessment.severity == "critical":
        return Route(
            tier="doctor",
            team=ON_CALL_DOCTOR_TEAM,
            competence="doctor",
            reason="Critical severity (emergency response): the fixed on-call doctor.",
        )
    where = ctx.district or "unknown district"
    return Route(
        tier="nurse",
        team=district_team(ctx),
        competence=assessment.competence,
        reason=f"Acute-team nurse for {where} with competence {assessment.competence}.",
    )
