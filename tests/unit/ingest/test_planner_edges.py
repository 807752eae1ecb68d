"""Planner edges the other planner tests left open (found by ``make mutation``): the dead
letter's bounds are exact (64 KiB of value, 1 KiB of key, 20 errors, 200-character fields,
500-character reasons), a message without a key, stable dead-letter ids, the reused-id reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from dispatcher.contract.events import DeadLetter, FieldError
from dispatcher.contract.topics import NURSE_OBSERVATIONS
from dispatcher.contract.vocab import DeadLetterCategory
from dispatcher.ingest.decoding import Decoded, decode
from dispatcher.ingest.planner import (
    MAX_DEAD_LETTER_ERRORS,
    MAX_DEAD_LETTER_KEY,
    MAX_DEAD_LETTER_ORIGINAL,
    MAX_ERROR_FIELD,
    MAX_ERROR_REASON,
    Accepted,
    Incoming,
    _with_note,
    content_sha256,
    dead_letter_id_for,
    identity,
    make_dead_letter,
)
from dispatcher.rules.assessment import evaluate
from dispatcher.rules.ruleset import default_ruleset
from tests import helpers

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ERR = [FieldError(field="spo2", reason="must be a number")]


def msg(value: bytes | None = b"{}", key: bytes | None = b"cit-abc123") -> Incoming:
    return Incoming(NURSE_OBSERVATIONS, 0, 7, key, value)


def letter(m: Incoming, errors: list[FieldError] = ERR) -> DeadLetter:
    return make_dead_letter(m, errors, NOW, None, DeadLetterCategory.VALIDATION)


class TestBoundsAreExact:
    def test_the_limits_are_the_documented_ones(self) -> None:
        assert (MAX_DEAD_LETTER_ORIGINAL, MAX_DEAD_LETTER_KEY) == (64 * 1024, 1024)
        assert (MAX_DEAD_LETTER_ERRORS, MAX_ERROR_FIELD, MAX_ERROR_REASON) == (20, 200, 500)

    @pytest.mark.parametrize("extra", [0, 1])
    def test_value_kept_up_to_64_kib(self, extra: int) -> None:
        size = MAX_DEAD_LETTER_ORIGINAL + extra
        d = letter(msg(value=b"x" * size))
        assert len(base64.b64decode(d.original_b64)) == MAX_DEAD_LETTER_ORIGINAL
        assert (d.original_size, d.original_truncated) == (size, extra > 0)

    @pytest.mark.parametrize("extra", [0, 1])
    def test_key_kept_up_to_1_kib(self, extra: int) -> None:
        size = MAX_DEAD_LETTER_KEY + extra
        d = letter(msg(key=b"k" * size))
        assert len(base64.b64decode(d.key_b64)) == MAX_DEAD_LETTER_KEY
        assert (d.key_size, d.key_truncated) == (size, extra > 0)

    @pytest.mark.parametrize("count", [MAX_DEAD_LETTER_ERRORS, MAX_DEAD_LETTER_ERRORS + 1])
    def test_at_most_20_errors(self, count: int) -> None:
        errors = [FieldError(field=f"f{i}", reason="bad") for i in range(count)]
        d = letter(msg(), errors)
        assert [e.field for e in d.errors] == [f"f{i}" for i in range(MAX_DEAD_LETTER_ERRORS)]

    @pytest.mark.parametrize(("field_len", "reason_len"), [(200, 500), (201, 10), (10, 501)])
    def test_field_and_reason_cut_each_on_its_own(self, field_len: int, reason_len: int) -> None:
        d = letter(msg(), [FieldError(field="f" * field_len, reason="r" * reason_len)])
        assert d.error == FieldError(
            field="f" * min(field_len, MAX_ERROR_FIELD),
            reason="r" * min(reason_len, MAX_ERROR_REASON),
        )


class TestWithoutAKey:
    def test_a_keyless_message_says_so_and_nothing_else(self) -> None:
        d = letter(msg(key=None))
        assert (d.key_b64, d.key_size, d.key_sha256) == (None, None, None)
        assert (d.key_truncated, d.key_redacted) == (False, False)


class TestDeadLetterIds:
    def test_the_id_depends_on_the_bytes(self) -> None:
        assert dead_letter_id_for(msg(value=b"a")) != dead_letter_id_for(msg(value=b"b"))
        assert dead_letter_id_for(msg(value=b"a")) == dead_letter_id_for(msg(value=b"a"))

    def test_an_empty_and_a_missing_value_are_the_same_bytes(self) -> None:
        assert dead_letter_id_for(msg(value=None)) == dead_letter_id_for(msg(value=b""))

    def test_the_id_depends_on_the_position(self) -> None:
        a = msg(value=b"a")
        b = Incoming(a.topic, a.partition, a.offset + 1, a.key, a.value)
        assert dead_letter_id_for(a) != dead_letter_id_for(b)


def test_a_letter_for_a_rule_error_keeps_its_event_id() -> None:
    eid = uuid4()
    d = make_dead_letter(msg(), ERR, NOW, eid, DeadLetterCategory.RULE_ERROR)
    assert (d.event_id, d.category, d.error) == (eid, DeadLetterCategory.RULE_ERROR, ERR[0])


def _accepted() -> Accepted:
    body = helpers.observation("cit-abc123", at=NOW)
    raw = json.dumps(body).encode()
    result = decode(NURSE_OBSERVATIONS, raw, NOW)
    assert isinstance(result, Decoded)
    return Accepted(msg(value=raw), result.event)


def test_a_reused_id_names_12_hex_digits_of_both_hashes() -> None:
    item = _accepted()
    known = "f" * 64
    letter = identity(item, {item.event.event_id: known}, NOW)
    assert isinstance(letter, DeadLetter)
    digest = content_sha256(item)
    assert letter.error.reason.endswith(f"sha256 ffffffffffff..., this one {digest[:12]}...")


class TestNotesKeepTheDecisionLast:
    def test_a_note_goes_before_the_closing_decision_note(self) -> None:
        item = _accepted()
        assessment, _ = evaluate(item.event, None, NOW, default_ruleset())
        notes = [*assessment.notes[:-1], "first", "second", assessment.notes[-1]]
        a = assessment.model_copy(update={"notes": notes})
        assert notes[-1].startswith("Decision:")
        assert _with_note(a, "added").notes == [*notes[:-1], "added", notes[-1]]

    @pytest.mark.parametrize("notes", [[], ["one"], ["one", "two", "three"]])
    def test_without_a_decision_note_it_goes_last(self, notes: list[str]) -> None:
        item = _accepted()
        assessment, _ = evaluate(item.event, None, NOW, default_ruleset())
        a = assessment.model_copy(update={"notes": notes})
        assert _with_note(a, "added").notes == [*notes, "added"]
