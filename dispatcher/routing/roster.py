"""The roster: teams, staff, competences, coverage, shifts and contact channels.

Validated strictly once at load (unknown keys rejected, cross references checked, as
Alertmanager does for receivers): "undefined team 'x' used by staff 'y'" is a load error, not a
routing surprise at 3 a.m. The runtime then trusts it.

Shifts are weekly patterns in local time (``Europe/Copenhagen`` by default) and may run past
midnight (22:00-07:30). Overlapping shifts are how handover is modelled: during the overlap both
the outgoing and the incoming nurse are on shift, and the router prefers the one with less load.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dispatcher.contract.vocab import Tier
from dispatcher.errors import PermanentError

COMPETENCES = frozenset(
    {"copd", "heart_failure", "diabetes", "palliative", "general_acute", "doctor"}
)
_SLUG = r"^[a-z0-9][a-z0-9-]{1,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shift(_Strict):
    """A weekly shift: on these weekdays (0 = Monday), from ``start`` to ``end`` local time.

    ``end`` before ``start`` runs past midnight; ``end`` equal to ``start`` is a 24-hour shift.
    """

    weekdays: list[int] = Field(default_factory=lambda: list(range(7)))
    start: time
    end: time
    timezone: str = "Europe/Copenhagen"

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, days: list[int]) -> list[int]:
        if not days or any(d < 0 or d > 6 for d in days):
            raise ValueError("weekdays must be a non-empty list of 0 (Monday) .. 6 (Sunday)")
        return days

    @field_validator("timezone")
    @classmethod
    def _tz(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except Exception as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
        return tz

    def covers(self, now: datetime) -> bool:
        """True when ``now`` falls inside this shift.

        An overnight shift belongs to the day it starts on."""
        local = now.astimezone(ZoneInfo(self.timezone))
        t = local.time()
        if self.start == self.end:  # a 24-hour shift
            return local.weekday() in self.weekdays
        if self.start < self.end:
            return local.weekday() in self.weekdays and self.start <= t < self.end
        # Overnight: the evening part belongs to today, the morning part to yesterday's shift.
        if t >= self.start:
            return local.weekday() in self.weekdays
        if t < self.end:
            return (local - timedelta(days=1)).weekday() in self.weekdays
        return False


class StaffMember(_Strict):
    staff_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$")
    team_id: str
    competences: list[str] = Field(default_factory=lambda: ["general_acute"])
    shifts: list[Shift] = Field(default_factory=list)

    @field_validator("competences")
    @classmethod
    def _known(cls, comps: list[str]) -> list[str]:
        unknown = sorted(set(comps) - COMPETENCES)
        if unknown:
            raise ValueError(f"unknown competence(s) {unknown}; known: {sorted(COMPETENCES)}")
        return comps

    def on_shift(self, now: datetime) -> bool:
        return any(s.covers(now) for s in self.shifts)


class Webhook(_Strict):
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=16, description="HMAC-SHA256 key for the signature header.")


class Channels(_Strict):
    kafka: bool = Field(default=True, description="Publish pages to acute.pages.<team_id>.")
    webhook: Webhook | None = None


class Team(_Strict):
    team_id: str = Field(pattern=_SLUG)
    name: str
    tier: Tier
    municipalities: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    channels: Channels = Field(default_factory=Channels)
    fallback: str | None = Field(
        default=None, description="Team to try next when nobody here can take the case."
    )

    def covers(self, municipality: str | None, district: str | None) -> int:
        """2 when the district matches, 1 when only the municipality does, 0 otherwise."""
        if district is not None and district in self.districts:
            return 2
        if municipality is not None and municipality in self.municipalities:
            return 1
        return 0


def page_topic(team_id: str) -> str:
    return f"acute.pages.{team_id}"


class Roster(_Strict):
    doctor_team: str = Field(description="The team of the fixed on-call doctor: the last resort.")
    teams: list[Team]
    staff: list[StaffMember] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross_references(self) -> Roster:
        ids = [t.team_id for t in self.teams]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate team id(s) {dupes}")
        by_id = {t.team_id: t for t in self.teams}
        if self.doctor_team not in by_id:
            raise ValueError(f"undefined team {self.doctor_team!r} used as doctor_team")
        if by_id[self.doctor_team].tier != "doctor":
            raise ValueError(f"doctor_team {self.doctor_team!r} must have tier 'doctor'")
        for team in self.teams:
            if team.fallback is not None and team.fallback not in by_id:
                raise ValueError(
                    f"undefined team {team.fallback!r} used as fallback of team {team.team_id!r}"
                )
        seen_fallback: set[str] = set()
        for team in self.teams:
            seen_fallback.clear()
            cur: Team | None = team
            while cur is not None and cur.fallback is not None:
                if cur.team_id in seen_fallback:
                    raise ValueError(f"fallback cycle through team {team.team_id!r}")
                seen_fallback.add(cur.team_id)
                cur = by_id.get(cur.fallback)
        staff_ids = [s.staff_id for s in self.staff]
        dupes = sorted({i for i in staff_ids if staff_ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate staff id(s) {dupes}")
        for member in self.staff:
            if member.team_id not in by_id:
                raise ValueError(
                    f"undefined team {member.team_id!r} used by staff {member.staff_id!r}"
                )
        return self

    def team(self, team_id: str) -> Team:
        for t in self.teams:
            if t.team_id == team_id:
                return t
        raise KeyError(team_id)

    def members(self, team_id: str) -> list[StaffMember]:
        return [s for s in self.staff if s.team_id == team_id]


class RosterError(PermanentError, ValueError):
    """A roster file that does not validate; the message names the file and the field."""


def parse_roster(text: str, source: str = "<roster>") -> Roster:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RosterError(f"{source}: not valid YAML: {exc}") from exc
    try:
        return Roster.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{source}: {'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise RosterError("\n".join(lines)) from exc
