"""The HTTP API on the real aiohttp app and a real PostgreSQL (embedded unless
``DISPATCHER_DATABASE_URL`` is set): tokens, team scoping, ack/resolve audit, silences, roster.

Every test uses its own team and citizen ids, so tests never see each other's cases even on a
shared database.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from dispatcher.api import auth as tokens
from dispatcher.api.app import create_api
from dispatcher.cases.lifecycle import Case
from dispatcher.contract.vocab import CaseState
from dispatcher.devstack.stack import seed_roster_text
from dispatcher.routing.router import Target
from dispatcher.store import cases as store
from dispatcher.store.db import Pool

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
def roster_changes() -> list[int]:
    return []


@pytest.fixture
async def client(pool: Pool, roster_changes: list[int]) -> AsyncIterator[Client]:
    async def hook() -> None:
        roster_changes.append(await store.roster_version(pool))

    async with TestClient(TestServer(create_api(pool, on_roster_change=hook))) as c:
        yield c


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def new_team() -> str:
    return f"team-{uuid4().hex[:8]}"


def new_citizen() -> str:
    return f"cit-{uuid4().hex[:6]}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_case(
    pool: Pool,
    team_id: str,
    citizen_id: str | None = None,
    opened_at: datetime | None = None,
    state: CaseState = CaseState.NOTIFIED,
) -> Case:
    opened = opened_at or datetime.now(UTC)
    case = Case(
        case_id=uuid4(),
        citizen_id=citizen_id or new_citizen(),
        state=state,
        severity="high",
        chain=(
            Target(team_id, "nurse", "rn-api-01", "copd"),
            Target("on-call-doctor", "doctor", None, "general_acute"),
        ),
        level=0,
        ack_minutes=15,
        ack_deadline=opened + timedelta(minutes=15),
        opened_at=opened,
        updated_at=opened,
        detail={"rules": ["news2.medium"]},
        resolved_at=opened if state == CaseState.RESOLVED else None,
        resolved_by="rn-api-01" if state == CaseState.RESOLVED else None,
        outcome="other" if state == CaseState.RESOLVED else None,
    )
    async with pool.acquire() as conn:
        await store.save_case(conn, case)
    return case


async def add_delivery(pool: Pool, case: Case, page_seq: int = 1) -> UUID:
    """A pending webhook delivery with one failed attempt, as the delivery loop leaves it."""
    delivery_id = uuid4()
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO deliveries (delivery_id, case_id, page_seq, team_id, channel, url,
                   idempotency_key, payload, state, attempts, next_attempt_at, deadline_at)
               VALUES ($1, $2, $3, $4, 'webhook', 'http://127.0.0.1:9/hook', $5, $6, 'pending',
                   1, $7, $8)""",
            delivery_id,
            case.case_id,
            page_seq,
            case.team_id,
            str(delivery_id),
            b"{}",
            now,
            now + timedelta(minutes=2),
        )
        await conn.execute(
            """INSERT INTO delivery_attempts (delivery_id, attempt, started_at, duration_ms,
                   status_code, error, outcome) VALUES ($1, 1, $2, 12, 503, 'HTTP 503', 'retry')""",
            delivery_id,
            now,
        )
    return delivery_id


def webhook_of(roster_response: dict[str, Any], team_id: str) -> dict[str, Any]:
    team = next(t for t in roster_response["roster"]["teams"] if t["team_id"] == team_id)
    hook: dict[str, Any] = team["channels"]["webhook"]
    return hook


async def member(pool: Pool, team_id: str, actor: str = "rn-api-01") -> str:
    return await tokens.create(pool, actor, team_id)


async def admin(pool: Pool, actor: str = "ops-admin-01") -> str:
    return await tokens.create(pool, actor, admin=True)


# ---------------------------------------------------------------------------------------------
# authentication and listing
# ---------------------------------------------------------------------------------------------


class TestAuthentication:
    async def test_missing_unknown_and_revoked_tokens_are_401_and_errors_are_json(
        self, client: Client, pool: Pool
    ) -> None:
        """No token, an unknown token and a revoked token are all refused with a JSON 401, and
        router errors (404, 405) use the same JSON error shape."""
        team = new_team()
        actor = f"rn-{uuid4().hex[:6]}"
        token = await member(pool, team, actor)
        ok = await client.get("/api/cases", headers=auth(token))
        assert ok.status == 200

        nowhere = await client.get("/api/nowhere", headers=auth(token))
        assert nowhere.status == 404
        assert (await nowhere.json())["error"]["reason"] == "not found"
        wrong_method = await client.put("/api/cases", headers=auth(token))
        assert wrong_method.status == 405

        missing = await client.get("/api/cases")
        assert missing.status == 401
        assert "reason" in (await missing.json())["error"]
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")

        unknown = await client.get("/api/cases", headers=auth("not-a-real-token"))
        assert unknown.status == 401

        assert await tokens.revoke(pool, actor) == 1
        revoked = await client.get("/api/cases", headers=auth(token))
        assert revoked.status == 401
        stored = await pool.fetchval(
            "SELECT count(*) FROM api_tokens WHERE token_sha256 = $1", tokens.token_hash(token)
        )
        assert stored == 1  # only the hash is stored, and the row stays after revocation

    async def test_openapi_is_public_json(self, client: Client) -> None:
        """The OpenAPI description is served as JSON without a token."""
        resp = await client.get("/api/openapi.json")
        assert resp.status == 200
        spec = await resp.json()
        assert spec["openapi"].startswith("3.1")
        assert "/api/cases/{case_id}/ack" in spec["paths"]


class TestListing:
    async def test_member_sees_only_own_team_and_cannot_list_another(
        self, client: Client, pool: Pool
    ) -> None:
        """A member's list holds only their team's cases; asking for another team is 403."""
        mine, theirs = new_team(), new_team()
        own = await make_case(pool, mine)
        other = await make_case(pool, theirs)
        token = await member(pool, mine)

        resp = await client.get("/api/cases", headers=auth(token))
        assert resp.status == 200
        ids = {c["case_id"] for c in (await resp.json())["cases"]}
        assert str(own.case_id) in ids
        assert str(other.case_id) not in ids
        assert all(c["team_id"] == mine for c in (await resp.json())["cases"])

        forbidden = await client.get("/api/cases", params={"team": theirs}, headers=auth(token))
        assert forbidden.status == 403
        assert (await forbidden.json())["error"]["field"] == "team"

        teamless = "teamless-token-for-test-" + uuid4().hex
        await pool.execute(
            "INSERT INTO api_tokens (token_sha256, actor, team_id, role) "
            "VALUES ($1, 'rn-lost-01', NULL, 'member')",
            tokens.token_hash(teamless),
        )
        nobody = await client.get("/api/cases", headers=auth(teamless))
        assert nobody.status == 403  # a team-less member must not fall through to "all teams"

        as_admin = await client.get(
            "/api/cases", params={"team": theirs}, headers=auth(await admin(pool))
        )
        assert [c["case_id"] for c in (await as_admin.json())["cases"]] == [str(other.case_id)]

    async def test_state_filter_and_paging_newest_first(self, client: Client, pool: Pool) -> None:
        """``open`` hides resolved cases, ``all`` shows them, and cursor paging walks newest
        first without repeats or gaps."""
        team = new_team()
        t0 = datetime.now(UTC) - timedelta(hours=1)
        cases = [await make_case(pool, team, opened_at=t0 + timedelta(minutes=i)) for i in range(3)]
        done = await make_case(
            pool, team, opened_at=t0 - timedelta(minutes=5), state=CaseState.RESOLVED
        )
        token = await member(pool, team)

        page1 = await (
            await client.get("/api/cases", params={"limit": "2"}, headers=auth(token))
        ).json()
        assert [c["case_id"] for c in page1["cases"]] == [
            str(cases[2].case_id),
            str(cases[1].case_id),
        ]
        assert page1["next_cursor"]
        page2 = await (
            await client.get(
                "/api/cases",
                params={"limit": "2", "cursor": page1["next_cursor"]},
                headers=auth(token),
            )
        ).json()
        assert [c["case_id"] for c in page2["cases"]] == [str(cases[0].case_id)]
        assert page2["next_cursor"] is None

        everything = await (
            await client.get("/api/cases", params={"state": "all"}, headers=auth(token))
        ).json()
        assert str(done.case_id) in {c["case_id"] for c in everything["cases"]}
        resolved_only = await (
            await client.get("/api/cases", params={"state": "resolved"}, headers=auth(token))
        ).json()
        assert [c["case_id"] for c in resolved_only["cases"]] == [str(done.case_id)]

        bad = await client.get("/api/cases", params={"state": "closed"}, headers=auth(token))
        assert bad.status == 400
        assert (await bad.json())["error"]["field"] == "state"
        bad_cursor = await client.get("/api/cases", params={"cursor": "xyz"}, headers=auth(token))
        assert (await bad_cursor.json())["error"]["field"] == "cursor"


# ---------------------------------------------------------------------------------------------
# case actions
# ---------------------------------------------------------------------------------------------


class TestCaseActions:
    async def test_ack_changes_state_audits_actor_and_cancels_pending_deliveries(
        self, client: Client, pool: Pool
    ) -> None:
        """Acknowledging moves the case to acknowledged, records the token's actor in
        case_events, cancels the pending webhook delivery, and a second ack changes nothing."""
        team = new_team()
        case = await make_case(pool, team)
        delivery_id = await add_delivery(pool, case)
        token = await member(pool, team, actor="rn-gla-07")

        resp = await client.post(f"/api/cases/{case.case_id}/ack", headers=auth(token))
        assert resp.status == 200
        body = await resp.json()
        assert body["case"]["state"] == "acknowledged"
        assert body["case"]["acknowledged_by"] == "rn-gla-07"
        assert body["cancelled_deliveries"] == [str(delivery_id)]

        row = await pool.fetchrow(
            "SELECT state, finished_at FROM deliveries WHERE delivery_id = $1", delivery_id
        )
        assert row["state"] == "cancelled"
        assert row["finished_at"] is not None
        events = await pool.fetch(
            "SELECT actor, action FROM case_events WHERE case_id = $1 ORDER BY id", case.case_id
        )
        assert [(e["actor"], e["action"]) for e in events] == [
            ("rn-gla-07", "acknowledged"),
            ("rn-gla-07", "deliveries_cancelled"),
        ]
        stored = await store.get_case(pool, case.case_id)
        assert stored is not None
        assert stored.state == CaseState.ACKNOWLEDGED

        again = await client.post(f"/api/cases/{case.case_id}/ack", headers=auth(token))
        assert again.status == 200
        assert (await again.json())["case"]["state"] == "acknowledged"
        assert (await again.json())["case"]["acknowledged_at"] == body["case"]["acknowledged_at"]
        n_events = await pool.fetchval(
            "SELECT count(*) FROM case_events WHERE case_id = $1", case.case_id
        )
        assert n_events == 2

    async def test_other_team_is_refused_for_detail_ack_and_resolve(
        self, client: Client, pool: Pool
    ) -> None:
        """A member of another team gets 403 on detail, ack and resolve; the case is untouched."""
        case = await make_case(pool, new_team())
        stranger = await member(pool, new_team(), actor="rn-other-01")

        detail = await client.get(f"/api/cases/{case.case_id}", headers=auth(stranger))
        ack = await client.post(f"/api/cases/{case.case_id}/ack", headers=auth(stranger))
        res = await client.post(
            f"/api/cases/{case.case_id}/resolve",
            json={"outcome": "admitted"},
            headers=auth(stranger),
        )
        assert (detail.status, ack.status, res.status) == (403, 403, 403)
        stored = await store.get_case(pool, case.case_id)
        assert stored is not None
        assert stored.state == CaseState.NOTIFIED
        assert (
            await pool.fetchval("SELECT count(*) FROM case_events WHERE case_id = $1", case.case_id)
            == 0
        )

        missing = await client.get(f"/api/cases/{uuid4()}", headers=auth(stranger))
        assert missing.status == 404
        malformed = await client.get("/api/cases/not-a-uuid", headers=auth(stranger))
        assert (await malformed.json())["error"]["field"] == "case_id"

    async def test_resolve_validates_outcome_and_refuses_twice(
        self, client: Client, pool: Pool
    ) -> None:
        """A bad outcome is a 400 naming "outcome"; resolving works once, then 409; the note is
        kept in the case history but never written to the log."""
        team = new_team()
        case = await make_case(pool, team)
        delivery_id = await add_delivery(pool, case)
        token = await member(pool, team, actor="rn-gla-08")
        url = f"/api/cases/{case.case_id}/resolve"

        bad = await client.post(url, json={"outcome": "went_home"}, headers=auth(token))
        assert bad.status == 400
        assert (await bad.json())["error"]["field"] == "outcome"
        extra = await client.post(url, json={"outcome": "admitted", "oops": 1}, headers=auth(token))
        assert (await extra.json())["error"]["field"] == "oops"
        not_json = await client.post(url, data=b"{", headers=auth(token))
        assert not_json.status == 400

        note = "borger stabil efter inhalation"
        with capture_logs() as logs:
            ok = await client.post(
                url, json={"outcome": "treated_at_home", "note": note}, headers=auth(token)
            )
        assert ok.status == 200
        body = await ok.json()
        assert body["case"]["state"] == "resolved"
        assert body["case"]["outcome"] == "treated_at_home"
        assert body["case"]["resolved_by"] == "rn-gla-08"
        assert body["cancelled_deliveries"] == [str(delivery_id)]
        assert logs, "the resolution is logged"
        assert note not in repr(logs)
        resolved = await pool.fetchrow(
            "SELECT actor, detail FROM case_events WHERE case_id = $1 AND action = 'resolved'",
            case.case_id,
        )
        assert resolved["actor"] == "rn-gla-08"
        assert orjson.loads(resolved["detail"])["note"] == note

        twice = await client.post(url, json={"outcome": "admitted"}, headers=auth(token))
        assert twice.status == 409
        assert "resolved" in (await twice.json())["error"]["reason"]
        ack_after = await client.post(f"/api/cases/{case.case_id}/ack", headers=auth(token))
        assert ack_after.status == 409

    async def test_detail_has_history_escalations_and_delivery_attempts(
        self, client: Client, pool: Pool
    ) -> None:
        """The detail view joins the escalation payload (reasons, NEWS2) and each delivery's
        attempts to the case and its history."""
        team = new_team()
        case = await make_case(pool, team)
        delivery_id = await add_delivery(pool, case)
        esc_id = uuid4()
        payload = {
            "reasons": [
                {
                    "rule_id": "news2.medium",
                    "rule_version": 1,
                    "summary": "NEWS2 6",
                    "inputs": {"total": 6},
                }
            ],
            "news2": {"total": 6, "risk": "medium", "subscores": {"pulse": 2}, "missing": []},
        }
        async with pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO escalations (escalation_id, case_id, citizen_id, severity,
                       route_tier, route_team, payload, created_at)
                   VALUES ($1, $2, $3, 'high', 'nurse', $4, $5::jsonb, now())""",
                esc_id,
                case.case_id,
                case.citizen_id,
                team,
                orjson.dumps(payload).decode(),
            )
            await conn.execute(
                "INSERT INTO case_escalations (escalation_id, case_id, citizen_id, action) "
                "VALUES ($1, $2, $3, 'opened')",
                esc_id,
                case.case_id,
                case.citizen_id,
            )
        token = await member(pool, team)
        await client.post(f"/api/cases/{case.case_id}/ack", headers=auth(token))

        resp = await client.get(f"/api/cases/{case.case_id}", headers=auth(token))
        assert resp.status == 200
        body = await resp.json()
        assert body["case"]["case_id"] == str(case.case_id)
        assert [h["action"] for h in body["history"]] == ["acknowledged", "deliveries_cancelled"]
        [esc] = body["escalations"]
        assert esc["escalation_id"] == str(esc_id)
        assert esc["reasons"][0]["rule_id"] == "news2.medium"
        assert esc["news2"]["total"] == 6
        [delivery] = body["deliveries"]
        assert delivery["delivery_id"] == str(delivery_id)
        assert delivery["state"] == "cancelled"
        assert delivery["attempt_log"] == [
            {
                "attempt": 1,
                "started_at": delivery["attempt_log"][0]["started_at"],
                "duration_ms": 12,
                "status_code": 503,
                "error": "HTTP 503",
                "outcome": "retry",
            }
        ]
        assert "url" not in delivery  # webhook URLs may carry credentials


# ---------------------------------------------------------------------------------------------
# silences
# ---------------------------------------------------------------------------------------------


class TestSilences:
    async def test_create_list_expire_with_author(self, client: Client, pool: Pool) -> None:
        """A member silences a citizen of their team (author = token actor), sees it listed,
        expires it, and it drops out of the active list but stays in ``state=all``."""
        team = new_team()
        case = await make_case(pool, team)
        token = await member(pool, team, actor="rn-gla-09")

        created = await client.post(
            "/api/silences",
            json={
                "citizen_id": case.citizen_id,
                "duration_minutes": 120,
                "reason": "planned home visit",
                "rule_id": "news2.medium",
            },
            headers=auth(token),
        )
        assert created.status == 201
        silence = (await created.json())["silence"]
        assert silence["author"] == "rn-gla-09"
        assert silence["active"] is True
        assert silence["include_critical"] is False
        starts = datetime.fromisoformat(silence["starts_at"])
        ends = datetime.fromisoformat(silence["ends_at"])
        assert ends - starts == timedelta(minutes=120)
        row = await pool.fetchrow(
            "SELECT author, created_at, expired_at FROM silences WHERE silence_id = $1",
            UUID(silence["silence_id"]),
        )
        assert row["author"] == "rn-gla-09"
        assert row["expired_at"] is None

        listed = await (
            await client.get(
                "/api/silences", params={"citizen_id": case.citizen_id}, headers=auth(token)
            )
        ).json()
        assert [s["silence_id"] for s in listed["silences"]] == [silence["silence_id"]]
        team_wide = await (await client.get("/api/silences", headers=auth(token))).json()
        assert silence["silence_id"] in {s["silence_id"] for s in team_wide["silences"]}

        expired = await client.delete(f"/api/silences/{silence['silence_id']}", headers=auth(token))
        assert expired.status == 200
        first_expiry = (await expired.json())["silence"]["expired_at"]
        assert first_expiry is not None
        again = await client.delete(f"/api/silences/{silence['silence_id']}", headers=auth(token))
        assert (await again.json())["silence"]["expired_at"] == first_expiry

        active = await (
            await client.get(
                "/api/silences", params={"citizen_id": case.citizen_id}, headers=auth(token)
            )
        ).json()
        assert active["silences"] == []
        history = await (
            await client.get(
                "/api/silences",
                params={"citizen_id": case.citizen_id, "state": "all"},
                headers=auth(token),
            )
        ).json()
        assert [s["active"] for s in history["silences"]] == [False]
        async with pool.acquire() as conn:  # the case manager's own query agrees
            assert await store.active_silences(conn, case.citizen_id, datetime.now(UTC)) == []

    async def test_members_silence_only_their_citizens_and_windows_are_checked(
        self, client: Client, pool: Pool
    ) -> None:
        """Another team's citizen is 403 for a member but fine for an admin; a window that ends
        before it starts, runs past 7 days, or is given twice is a 400 naming ends_at."""
        team = new_team()
        foreign = await make_case(pool, new_team())
        token = await member(pool, team)
        body = {"citizen_id": foreign.citizen_id, "duration_minutes": 30, "reason": "visit"}

        refused = await client.post("/api/silences", json=body, headers=auth(token))
        assert refused.status == 403
        assert (await refused.json())["error"]["field"] == "citizen_id"
        peek = await client.get(
            "/api/silences", params={"citizen_id": foreign.citizen_id}, headers=auth(token)
        )
        assert peek.status == 403
        by_admin = await client.post(
            "/api/silences", json=body, headers=auth(await admin(pool, "ops-admin-02"))
        )
        assert by_admin.status == 201
        assert (await by_admin.json())["silence"]["author"] == "ops-admin-02"
        silence_id = (await by_admin.json())["silence"]["silence_id"]
        not_theirs = await client.delete(f"/api/silences/{silence_id}", headers=auth(token))
        assert not_theirs.status == 403

        now = datetime.now(UTC)
        adm = auth(await admin(pool))
        cases = [
            {
                "starts_at": (now + timedelta(hours=2)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat(),
            },
            {"ends_at": (now + timedelta(days=8)).isoformat()},
            {"ends_at": (now + timedelta(hours=1)).isoformat(), "duration_minutes": 60},
            {},
        ]
        for window in cases:
            resp = await client.post(
                "/api/silences",
                json={"citizen_id": foreign.citizen_id, "reason": "visit", **window},
                headers=adm,
            )
            assert resp.status == 400, window
            assert (await resp.json())["error"]["field"] == "ends_at", window
        cpr = await client.post(
            "/api/silences",
            json={"citizen_id": "010190-1234", "duration_minutes": 5, "reason": "x"},
            headers=adm,
        )
        assert cpr.status == 400
        assert (await cpr.json())["error"]["field"] == "citizen_id"


# ---------------------------------------------------------------------------------------------
# roster
# ---------------------------------------------------------------------------------------------


class TestRoster:
    async def test_admin_replaces_roster_member_refused_errors_name_the_field(
        self, client: Client, pool: Pool, roster_changes: list[int]
    ) -> None:
        """An admin PUT (YAML or JSON) stores a new version and fires the hook; an invalid
        roster is a 400 naming the field; a member PUT is 403; members see secrets redacted."""
        adm = auth(await admin(pool))
        mem = auth(await member(pool, "acute-nurses-gladsaxe"))
        seed = seed_roster_text()
        before = await store.roster_version(pool)

        put = await client.put(
            "/api/roster", data=seed.encode(), headers={**adm, "Content-Type": "application/yaml"}
        )
        assert put.status == 200, await put.text()
        assert (await put.json())["version"] == before + 1
        assert roster_changes == [before + 1]

        doc: dict[str, Any] = yaml.safe_load(seed)
        with_hook = copy.deepcopy(doc)
        with_hook["teams"][0]["channels"] = {
            "webhook": {"url": "https://hooks.example.dk/gladsaxe", "secret": "s" * 24}
        }
        put_json = await client.put("/api/roster", json=with_hook, headers=adm)
        assert put_json.status == 200
        seen_by_member = await (await client.get("/api/roster", headers=mem)).json()
        assert seen_by_member["version"] == before + 2
        hooked_team = doc["teams"][0]["team_id"]
        assert webhook_of(seen_by_member, hooked_team)["secret"] == "[redacted]"
        seen_by_admin = await (await client.get("/api/roster", headers=adm)).json()
        assert webhook_of(seen_by_admin, hooked_team)["secret"] == "s" * 24

        bad = copy.deepcopy(doc)
        bad["staff"][0]["competences"] = ["juggling"]
        invalid = await client.put("/api/roster", json=bad, headers=adm)
        assert invalid.status == 400
        error = (await invalid.json())["error"]
        assert error["field"] == "staff.0.competences"
        assert "juggling" in error["reason"]

        dangling = copy.deepcopy(doc)
        dangling["staff"][0]["team_id"] = "no-such-team"
        cross = await client.put("/api/roster", json=dangling, headers=adm)
        assert cross.status == 400
        assert "no-such-team" in (await cross.json())["error"]["reason"]

        broken = await client.put("/api/roster", data=b"teams: [", headers=adm)
        assert broken.status == 400

        refused = await client.put("/api/roster", data=seed.encode(), headers=mem)
        assert refused.status == 403
        assert await store.roster_version(pool) == before + 2  # nothing invalid was stored

        restore = await client.put("/api/roster", data=seed.encode(), headers=adm)
        assert restore.status == 200
        roster = await store.load_roster(pool)
        assert roster is not None
        assert roster.doctor_team == doc["doctor_team"]
