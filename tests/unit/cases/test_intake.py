"""Issue 11 item 1: the case manager's decoding of raw escalation bytes never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.cases.intake import MAX_ESCALATION_BYTES, decode_escalation, store_error
from dispatcher.contract.events import DeadLetter, Escalation, Reason, Route
from dispatcher.contract.topics import ESCALATIONS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.ingest.planner import Incoming

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def body(**over: Any) -> dict[str, Any]:
    esc = Escalation(
        escalation_id=uuid4(),
        case_id=uuid4(),
        citizen_id="cit-abcxdef",
        created_at=NOW,
        severity="high",
        route=Route(tier="nurse", team="t", competence="general_acute", reason="r"),
        reasons=[Reason(rule_id="sensor.fall", rule_version=1, summary="fall")],
        ack_deadline=NOW + timedelta(minutes=15),
        triggered_by=[uuid4()],
    )
    out: dict[str, Any] = json.loads(esc.model_dump_json())
    out.update(over)
    return out


def msg(raw: bytes | None) -> Incoming:
    return Incoming(ESCALATIONS, 2, 41, b"cit-abcxdef", raw)


def test_valid_escalation_decodes() -> None:
    b = body()
    esc = decode_escalation(msg(json.dumps(b).encode()), NOW)
    assert isinstance(esc, Escalation)
    assert str(esc.escalation_id) == b["escalation_id"]


@pytest.mark.parametrize(
    ("raw", "category", "field"),
    [
        (b"", DeadLetterCategory.MALFORMED, "$"),
        (None, DeadLetterCategory.MALFORMED, "$"),
        (b"not json", DeadLetterCategory.MALFORMED, "$"),
        (b"\xff\xfe", DeadLetterCategory.MALFORMED, "$"),
        (b"[1, 2]", DeadLetterCategory.MALFORMED, "$"),
        (b"x" * (MAX_ESCALATION_BYTES + 1), DeadLetterCategory.MALFORMED, "$"),
        (json.dumps(body(severity="urgent")).encode(), DeadLetterCategory.VALIDATION, "severity"),
        (
            json.dumps(
                body(route={"tier": "nurse", "team": "t\u0000", "competence": "c", "reason": "r"})
            ).encode(),
            DeadLetterCategory.VALIDATION,
            "route.team",
        ),
    ],
    ids=["empty", "none", "not-json", "not-utf8", "array", "too-large", "invalid", "nul"],
)
def test_unusable_bytes_are_a_dead_letter_naming_field_and_category(
    raw: bytes | None, category: DeadLetterCategory, field: str
) -> None:
    letter = decode_escalation(msg(raw), NOW)
    assert isinstance(letter, DeadLetter)
    assert letter.category == category
    assert letter.error.field == field
    assert (letter.source_topic, letter.partition, letter.offset) == (ESCALATIONS, 2, 41)


def test_nul_in_a_nested_list_is_named() -> None:
    b = body()
    b["reasons"][0]["summary"] = "fa\u0000ll"
    letter = decode_escalation(msg(json.dumps(b).encode()), NOW)
    assert isinstance(letter, DeadLetter)
    assert letter.error.field == "reasons.0.summary"
    assert "NUL" in letter.error.reason


def test_store_error_letter() -> None:
    letter = store_error(msg(b"{}"), ValueError("unsupported Unicode escape sequence"), NOW)
    assert letter.category == DeadLetterCategory.STORE_ERROR
    assert "ValueError" in letter.error.reason


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_never_raises(raw: bytes) -> None:
    assert isinstance(decode_escalation(msg(raw), NOW), Escalation | DeadLetter)
