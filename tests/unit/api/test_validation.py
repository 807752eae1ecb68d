"""Pure pieces of the API: cursors, silence windows, roster parsing and redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from dispatcher.api.auth import Principal, token_hash
from dispatcher.api.cases import decode_cursor, encode_cursor
from dispatcher.api.errors import ApiError
from dispatcher.api.models import SilenceBody
from dispatcher.api.roster import parse_roster_body, roster_view
from dispatcher.api.silences import silence_window
from dispatcher.devstack.stack import seed_roster_text
from dispatcher.routing.roster import Roster

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class TestCursor:
    def test_round_trip(self) -> None:
        """A cursor decodes to the exact (opened_at, case_id) it was made from."""
        cid = uuid4()
        assert decode_cursor(encode_cursor(NOW, cid)) == (NOW, cid)

    @pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WyJ4IiwgInkiXQ"])
    def test_garbage_is_a_400_on_cursor(self, cursor: str) -> None:
        """Anything not produced by the API is refused naming the cursor parameter."""
        with pytest.raises(ApiError) as err:
            decode_cursor(cursor)
        assert (err.value.status, err.value.field) == (400, "cursor")


class TestSilenceWindow:
    def test_duration_starts_now_by_default(self) -> None:
        """duration_minutes counts from starts_at, which defaults to the request time."""
        body = SilenceBody(citizen_id="cit-7f3a9c", duration_minutes=90, reason="visit")
        assert silence_window(body, NOW) == (NOW, NOW + timedelta(minutes=90))

    def test_exactly_seven_days_is_allowed(self) -> None:
        """The 7-day limit is inclusive."""
        body = SilenceBody(citizen_id="cit-7f3a9c", ends_at=NOW + timedelta(days=7), reason="r")
        assert silence_window(body, NOW)[1] == NOW + timedelta(days=7)

    @pytest.mark.parametrize(
        "window",
        [
            {},
            {"ends_at": NOW + timedelta(hours=1), "duration_minutes": 60},
            {"starts_at": NOW + timedelta(hours=2), "ends_at": NOW + timedelta(hours=1)},
            {"ends_at": NOW + timedelta(days=7, seconds=1)},
            {"starts_at": NOW - timedelta(hours=2), "ends_at": NOW - timedelta(hours=1)},
        ],
    )
    def test_bad_windows_name_ends_at(self, window: dict[str, object]) -> None:
        """Missing, doubled, inverted, too long or already-over windows are 400 on ends_at."""
        body = SilenceBody.model_validate({"citizen_id": "cit-7f3a9c", "reason": "r", **window})
        with pytest.raises(ApiError) as err:
            silence_window(body, NOW)
        assert (err.value.status, err.value.field) == (400, "ends_at")


class TestRosterBody:
    def test_seed_yaml_parses(self) -> None:
        """The shipped seed roster is a valid PUT body as YAML."""
        roster = parse_roster_body(seed_roster_text(), "application/yaml")
        assert roster.doctor_team == "on-call-doctor"

    def test_field_error_names_the_path(self) -> None:
        """A bad nested value is reported with its dotted path."""
        text = (
            '{"doctor_team": "md-team",'
            ' "teams": [{"team_id": "md-team", "name": "D", "tier": "boss"}]}'
        )
        with pytest.raises(ApiError) as err:
            parse_roster_body(text, "application/json")
        assert err.value.field == "teams.0.tier"

    def test_not_an_object(self) -> None:
        """A YAML list is not a roster."""
        with pytest.raises(ApiError) as err:
            parse_roster_body("- a\n- b\n", "application/yaml")
        assert err.value.field == "$"

    def test_redaction_hides_only_secrets(self) -> None:
        """Members see webhook URLs but never the HMAC secret."""
        roster = Roster.model_validate(
            {
                "doctor_team": "md-team",
                "teams": [
                    {
                        "team_id": "md-team",
                        "name": "Doc",
                        "tier": "doctor",
                        "channels": {"webhook": {"url": "https://x.example", "secret": "k" * 20}},
                    },
                ],
            }
        )
        hidden = roster_view(roster, show_secrets=False)["teams"][0]["channels"]["webhook"]
        shown = roster_view(roster, show_secrets=True)["teams"][0]["channels"]["webhook"]
        assert hidden == {"url": "https://x.example", "secret": "[redacted]"}
        assert shown["secret"] == "k" * 20


class TestPrincipal:
    def test_team_scoping(self) -> None:
        """A member acts on their team only; an admin on every team."""
        nurse = Principal("rn-gla-01", "acute-nurses-gladsaxe", "member")
        assert nurse.may_act_on_team("acute-nurses-gladsaxe")
        assert not nurse.may_act_on_team("acute-nurses-gentofte")
        assert Principal("ops-01", None, "admin").may_act_on_team("acute-nurses-gentofte")
        assert not Principal("rn-x-01", None, "member").may_act_on_team("acute-nurses-gentofte")

    def test_hash_is_sha256_hex(self) -> None:
        """Tokens are stored as 64 hex characters, never in the clear."""
        digest = token_hash("secret-token")
        assert len(digest) == 64
        assert "secret" not in digest
