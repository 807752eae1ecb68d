"""Request bodies of the API, validated strictly (unknown keys rejected) so a typo in a field
name is a 400 that names the field, not a silently ignored option."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatcher.contract.events import PseudonymousId

MAX_SILENCE_MINUTES = 7 * 24 * 60


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResolveBody(_Body):
    outcome: Literal["treated_at_home", "admitted", "false_alarm", "other"]
    note: str | None = Field(default=None, max_length=2000)


class SilenceBody(_Body):
    """A new silence; exactly one of ``ends_at`` and ``duration_minutes`` (checked by the
    handler, which also knows the time)."""

    citizen_id: PseudonymousId
    rule_id: str | None = Field(default=None, min_length=1, max_length=120)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=MAX_SILENCE_MINUTES)
    reason: str = Field(min_length=1, max_length=500)
    include_critical: bool = False
